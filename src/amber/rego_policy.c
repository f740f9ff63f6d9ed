/* SPDX-License-Identifier: Apache-2.0 */
/* The compiled policy: the recursion check (OPA's rego_recursion_error), accessors, freeing. */
#include <string.h>

#include "rego_impl.h"

static void deps_body(const struct rg_body* b, uint8_t* mark);

static void deps_node(const struct rg_node* n, uint8_t* mark) {
    if (!n)
        return;
    deps_body(n->body, mark);
    if (n->kind == N_RULE)
        mark[n->rule] = 1;
    for (size_t i = 0; i < n->n; i++)
        deps_node(n->kids[i], mark);
}

static void deps_body(const struct rg_body* b, uint8_t* mark) {
    for (size_t i = 0; b && i < b->n; i++) {
        deps_node(b->stmts[i].expr, mark);
        deps_body(b->stmts[i].body, mark);
    }
}

/* DFS colours: 0 new, 1 on the path, 2 done. Depth ≤ number of rules. */
static int find_cycle(const uint8_t* adj, size_t n, size_t v, uint8_t* colour) {
    colour[v] = 1;
    for (size_t w = 0; w < n; w++) {
        if (!adj[v * n + w])
            continue;
        if (colour[w] == 1)
            return (int)w;
        if (colour[w] == 0) {
            int c = find_cycle(adj, n, w, colour);
            if (c >= 0)
                return c;
        }
    }
    colour[v] = 2;
    return -1;
}

int rg_check_recursion(const struct rego_policy* p, struct moat_error* err) {
    size_t n                    = p->nrules;
    _cleanup_free_ uint8_t* adj = xcalloc(n * n + 1, 1);
    _cleanup_free_ uint8_t* col = xcalloc(n + 1, 1);
    for (size_t v = 0; v < n; v++) {
        const struct rg_rule* r = &p->rules[v];
        for (size_t i = 0; i < r->ndefs; i++)
            for (const struct rg_def* d = &r->defs[i]; d; d = d->else_def) {
                deps_node(d->value, adj + v * n);
                deps_body(d->body, adj + v * n);
            }
    }
    for (size_t v = 0; v < n; v++) {
        int c = col[v] == 0 ? find_cycle(adj, n, v, col) : -1;
        if (c >= 0)
            return moat_error_set(err, -EINVAL, "line %d: rule %s is recursive", p->rules[c].line,
                                  p->rules[c].name);
    }
    return 0;
}

void rego_policy_free(struct rego_policy* p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->nrules; i++) {
        free(p->rules[i].name);
        free(p->rules[i].defs);
    }
    for (size_t i = 0; i < p->nallocs; i++)
        free(p->allocs[i]);
    for (size_t i = 0; i < p->nconsts; i++)
        json_decref(p->consts[i]);
    free(p->rules);
    free(p->allocs);
    free(p->consts);
    free(p->package);
    free(p);
}

size_t rego_rule_count(const struct rego_policy* p) {
    return p->nrules;
}
const char* rego_rule_name(const struct rego_policy* p, size_t i) {
    return i < p->nrules ? p->rules[i].name : NULL;
}
const char* rego_package(const struct rego_policy* p) {
    return p->package;
}
