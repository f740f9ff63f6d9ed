/* SPDX-License-Identifier: Apache-2.0 */
/* The Rego subset's evaluator, with OPA's semantics (docs/rego.md): undefined propagates, a
 * body is the conjunction of its statements with backtracking over `some … in`, several
 * definitions of a rule are a disjunction, complete rules must not produce conflicting values.
 * Every expression and iteration costs a step (REGO_MAX_STEPS); recursion through rule
 * references, `some` and `every` is bounded by REGO_MAX_EVAL_DEPTH. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "rego_impl.h"

struct rule_cache {
    int state; /* 0 not evaluated, 1 in progress, 2 done */
    struct rg_val v;
};

struct ev {
    const struct rego_policy* p;
    json_t* input;
    int64_t now_ns; /* time.now_ns(): one value per evaluation, as in OPA */
    struct moat_error* err;
    size_t steps;
    int depth;
    struct rule_cache* cache;
};

static void val_drop(struct rg_val* v) {
    json_decref(v->j);
    v->j   = NULL;
    v->set = false;
}

static struct rg_val val_ref(struct rg_val v) {
    return (struct rg_val){.j = json_incref(v.j), .set = v.set};
}

static int step(struct ev* ev, int line) {
    if (++ev->steps > REGO_MAX_STEPS)
        return moat_error_set(ev->err, -E2BIG, "line %d: evaluation exceeded %d steps", line,
                              REGO_MAX_STEPS);
    return 0;
}

/* Top-level element count of a collection (0 for scalars): the cost unit of linear work. */
static size_t width(const json_t* v) {
    return json_is_array(v) ? json_array_size(v) : json_is_object(v) ? json_object_size(v) : 0;
}

/* Charges `cost` steps at once (saturating), then checks the limit. */
static int charge(struct ev* ev, int line, size_t cost) {
    ev->steps = cost > REGO_MAX_STEPS ? (size_t)REGO_MAX_STEPS + 1 : ev->steps + cost;
    return step(ev, line);
}

static int enter(struct ev* ev, int line) {
    if (++ev->depth > REGO_MAX_EVAL_DEPTH)
        return moat_error_set(ev->err, -E2BIG, "line %d: evaluation nested deeper than %d", line,
                              REGO_MAX_EVAL_DEPTH);
    return 0;
}

static int eval(struct ev* ev, const struct rg_node* n, struct rg_val* slots, struct rg_val* ret);
static int eval_rule(struct ev* ev, int ri, struct rg_val* ret);

static int no_sets_inside(struct ev* ev, const struct rg_node* n, const struct rg_val* v) {
    if (v->set)
        return moat_error_set(ev->err, -EINVAL,
                              "line %d: sets inside arrays, objects or sets are not supported",
                              n->line);
    return 0;
}

/* Array, set or object literal; undefined if any part is. */
static int eval_collection(struct ev* ev, const struct rg_node* n, struct rg_val* slots,
                           struct rg_val* ret) {
    json_t* out = n->kind == N_OBJECT ? json_object() : json_array();
    if (!out)
        abort();
    for (size_t i = 0; i < n->n; i++) {
        struct rg_val k = {0}, v = {0};
        int r = eval(ev, n->kids[i], slots, &k);
        if (r == 0 && k.j && n->kind == N_OBJECT && ++i < n->n)
            r = eval(ev, n->kids[i], slots, &v);
        if (r == 0 && k.j && (n->kind != N_OBJECT || v.j)) {
            if ((r = no_sets_inside(ev, n, &k)) == 0)
                r = no_sets_inside(ev, n, &v);
        }
        if (r == 0 && n->kind == N_OBJECT && k.j && v.j && !json_is_string(k.j))
            r = moat_error_set(ev->err, -EINVAL, "line %d: object keys must be strings", n->line);
        if (r == 0 && n->kind == N_OBJECT && k.j && v.j) {
            const char* key = json_string_value(k.j);
            size_t klen     = json_string_length(k.j);
            json_t* old     = json_object_getn(out, key, klen);
            if (old && rg_compare(old, false, v.j, false) != 0)
                r = moat_error_set(ev->err, -EINVAL, "line %d: object key \"%s\" repeated", n->line,
                                   key);
            else if (json_object_setn_nocheck(out, key, klen, v.j) < 0)
                abort();
        } else if (r == 0 && n->kind != N_OBJECT && k.j) {
            if (json_array_append(out, k.j) < 0)
                abort();
        }
        bool undefined = !k.j || (n->kind == N_OBJECT && !v.j);
        val_drop(&k);
        val_drop(&v);
        if (r < 0 || undefined) {
            json_decref(out);
            return r;
        }
    }
    if (n->kind == N_SET)
        rg_set_normalize(out);
    *ret = (struct rg_val){.j = out, .set = n->kind == N_SET};
    return 0;
}

/* coll[idx]: object member, array element (integral index), set member; else undefined. */
static struct rg_val index_value(const struct rg_val* coll, const struct rg_val* idx) {
    json_t* c = coll->j;
    json_t* k = idx->j;
    if (idx->set)
        return (struct rg_val){0};
    if (coll->set)
        return rg_set_contains(c, k) ? (struct rg_val){.j = json_incref(k)} : (struct rg_val){0};
    if (json_is_object(c) && json_is_string(k))
        return (struct rg_val){
            .j = json_incref(json_object_getn(c, json_string_value(k), json_string_length(k)))};
    if (json_is_array(c) && json_is_number(k)) {
        double d = json_number_value(k);
        if (d >= 0 && d < (double)json_array_size(c) && d == floor(d))
            return (struct rg_val){.j = json_incref(json_array_get(c, (size_t)d))};
    }
    return (struct rg_val){0};
}

static int eval_ref(struct ev* ev, const struct rg_node* n, struct rg_val* slots,
                    struct rg_val* ret) {
    struct rg_val cur = {0};
    int r             = eval(ev, n->kids[0], slots, &cur);
    for (size_t i = 1; r == 0 && cur.j && i < n->n; i++) {
        struct rg_val idx = {0};
        if ((r = eval(ev, n->kids[i], slots, &idx)) == 0 && idx.j) {
            struct rg_val nxt = index_value(&cur, &idx);
            val_drop(&cur);
            cur = nxt;
        } else {
            val_drop(&cur);
        }
        val_drop(&idx);
    }
    if (r < 0) {
        val_drop(&cur);
        return r;
    }
    *ret = cur;
    return 0;
}

static bool member(const struct rg_val* x, const struct rg_val* coll) {
    if (coll->set)
        return !x->set && rg_set_contains(coll->j, x->j);
    if (json_is_array(coll->j)) {
        for (size_t i = 0; i < json_array_size(coll->j); i++)
            if (rg_compare(json_array_get(coll->j, i), false, x->j, x->set) == 0)
                return true;
    } else if (json_is_object(coll->j)) {
        const char* k;
        json_t* v;
        json_object_foreach(coll->j, k, v) {
            if (rg_compare(v, false, x->j, x->set) == 0)
                return true;
        }
    }
    return false;
}

static bool cmp_holds(enum rg_cmp op, int c) {
    switch (op) {
        case CMP_EQ:
            return c == 0;
        case CMP_NE:
            return c != 0;
        case CMP_LT:
            return c < 0;
        case CMP_LE:
            return c <= 0;
        case CMP_GT:
            return c > 0;
        case CMP_GE:
            return c >= 0;
    }
    return false;
}

static int eval_binary(struct ev* ev, const struct rg_node* n, struct rg_val* slots,
                       struct rg_val* ret) {
    struct rg_val a = {0}, b = {0};
    int r = eval(ev, n->kids[0], slots, &a);
    if (r == 0 && a.j)
        r = eval(ev, n->kids[1], slots, &b);
    /* a linear membership test costs a step per element it may look at, a comparison of
     * collections one per element pair it may compare */
    if (r == 0 && a.j && b.j && n->kind == N_IN && !b.set)
        r = charge(ev, n->line, width(b.j));
    else if (r == 0 && a.j && b.j)
        r = charge(ev, n->line, width(a.j) < width(b.j) ? width(a.j) : width(b.j));
    if (r == 0 && a.j && b.j) {
        bool holds =
            n->kind == N_IN ? member(&a, &b) : cmp_holds(n->op, rg_compare(a.j, a.set, b.j, b.set));
        ret->j   = json_boolean(holds);
        ret->set = false;
    }
    val_drop(&a);
    val_drop(&b);
    return r;
}

static int eval_comprehension(struct ev* ev, const struct rg_node* n, struct rg_val* slots,
                              struct rg_val* ret);

/* A built-in: undefined when an argument is. */
static int eval_call(struct ev* ev, const struct rg_node* n, struct rg_val* slots,
                     struct rg_val* ret) {
    struct rg_val args[4] = {0};
    size_t got            = 0;
    int r                 = 0;
    while (r == 0 && got < n->n && got < ARRAY_SIZE(args)) {
        r = eval(ev, n->kids[got], slots, &args[got]);
        if (r == 0 && !args[got++].j)
            break;
    }
    /* object.subset may compare every element of one side with every element of the other */
    if (r == 0 && got == n->n && n->fn == B_OBJECT_SUBSET && args[1].j)
        r = charge(ev, n->line, width(args[0].j) * width(args[1].j));
    if (r == 0 && got == n->n && (got == 0 || args[got - 1].j))
        r = rg_builtin(n->fn, args, ev->now_ns, n->line, ret, ev->err);
    for (size_t i = 0; i < got; i++)
        val_drop(&args[i]);
    return r;
}

static int eval(struct ev* ev, const struct rg_node* n, struct rg_val* slots, struct rg_val* ret) {
    int r = step(ev, n->line);
    if (r < 0 || (r = enter(ev, n->line)) < 0)
        return r;
    *ret = (struct rg_val){0};
    switch (n->kind) {
        case N_CONST:
            ret->j = json_incref(n->value);
            break;
        case N_ARRAY:
        case N_OBJECT:
        case N_SET:
            r = eval_collection(ev, n, slots, ret);
            break;
        case N_INPUT:
            ret->j = json_incref(ev->input);
            break;
        case N_VAR:
            *ret = val_ref(slots[n->slot]);
            break;
        case N_RULE:
            r = eval_rule(ev, n->rule, ret);
            break;
        case N_REF:
            r = eval_ref(ev, n, slots, ret);
            break;
        case N_CALL:
            r = eval_call(ev, n, slots, ret);
            break;
        case N_CMP:
        case N_IN:
            r = eval_binary(ev, n, slots, ret);
            break;
        case N_COMPR:
            r = eval_comprehension(ev, n, slots, ret);
            break;
    }
    ev->depth--;
    return r;
}

/* ---- bodies ------------------------------------------------------------------------- */

/* Called for each solution of a body: <0 error, 0 look for more, 1 stop. */
typedef int (*success_fn)(struct ev* ev, void* ctx, struct rg_val* slots);

static void bind(struct rg_val* slots, int slot, struct rg_val v) {
    val_drop(&slots[slot]);
    slots[slot] = v;
}

static int eval_stmts(struct ev* ev, const struct rg_body* b, size_t i, struct rg_val* slots,
                      success_fn fn, void* ctx);

/* Binds (key, value) for each element of coll and evaluates the rest of the body. Sets give
 * the element as both; a non-collection has no elements. */
static int each(struct ev* ev, const struct rg_stmt* st, const struct rg_val* coll,
                struct rg_val* slots,
                int (*k)(struct ev*, const struct rg_stmt*, struct rg_val*, void*), void* kctx) {
    json_t* c = coll->j;
    int r     = 0;
    if (json_is_array(c)) {
        for (size_t i = 0; r == 0 && i < json_array_size(c); i++) {
            if ((r = step(ev, st->line)) < 0)
                break;
            json_t* key =
                coll->set ? json_incref(json_array_get(c, i)) : json_integer((json_int_t)i);
            if (st->key_slot >= 0)
                bind(slots, st->key_slot, (struct rg_val){.j = key});
            else
                json_decref(key);
            bind(slots, st->slot, (struct rg_val){.j = json_incref(json_array_get(c, i))});
            r = k(ev, st, slots, kctx);
        }
    } else if (json_is_object(c)) {
        for (void* it = json_object_iter(c); it && r == 0; it = json_object_iter_next(c, it)) {
            if ((r = step(ev, st->line)) < 0)
                break;
            if (st->key_slot >= 0) {
                /* keys may hold NULs (a \u0000 escape): take the length from jansson */
                json_t* kj =
                    json_stringn_nocheck(json_object_iter_key(it), json_object_iter_key_len(it));
                if (!kj)
                    abort();
                bind(slots, st->key_slot, (struct rg_val){.j = kj});
            }
            bind(slots, st->slot, (struct rg_val){.j = json_incref(json_object_iter_value(it))});
            r = k(ev, st, slots, kctx);
        }
    }
    return r;
}

struct rest_ctx {
    const struct rg_body* b;
    size_t i;
    success_fn fn;
    void* ctx;
};

static int continue_rest(struct ev* ev, const struct rg_stmt* st, struct rg_val* slots,
                         void* kctx) {
    (void)st;
    struct rest_ctx* rc = kctx;
    return eval_stmts(ev, rc->b, rc->i, slots, rc->fn, rc->ctx);
}

static int found(struct ev* ev, void* ctx, struct rg_val* slots) {
    (void)ev;
    (void)slots;
    *(bool*)ctx = true;
    return 1;
}

struct every_ctx {
    bool all;
};

static int every_elem(struct ev* ev, const struct rg_stmt* st, struct rg_val* slots, void* kctx) {
    bool ok = false;
    int r   = eval_stmts(ev, st->body, 0, slots, found, &ok);
    if (r < 0)
        return r;
    if (!ok) {
        ((struct every_ctx*)kctx)->all = false;
        return 1; /* a counterexample: stop */
    }
    return 0;
}

static bool truthy(const struct rg_val* v) {
    return v->j && !json_is_false(v->j);
}

/* Statements i.. of b; returns <0 error, 0 (no more solutions wanted or failed), 1 stop. */
static int eval_stmts(struct ev* ev, const struct rg_body* b, size_t i, struct rg_val* slots,
                      success_fn fn, void* ctx) {
    int r = enter(ev, b->n ? b->stmts[0].line : 0);
    for (; r == 0 && i < b->n; i++) {
        const struct rg_stmt* st = &b->stmts[i];
        struct rg_val v          = {0};
        if ((r = eval(ev, st->expr, slots, &v)) < 0)
            break;
        bool ok = true;
        switch (st->kind) {
            case S_EXPR:
                ok = truthy(&v);
                break;
            case S_NOT:
                ok = !truthy(&v);
                break;
            case S_ASSIGN:
                ok = v.j != NULL;
                if (ok) {
                    bind(slots, st->slot, v);
                    v = (struct rg_val){0};
                }
                break;
            case S_SOME_IN: {
                struct rest_ctx rc = {.b = b, .i = i + 1, .fn = fn, .ctx = ctx};
                if (v.j)
                    r = each(ev, st, &v, slots, continue_rest, &rc);
                val_drop(&v);
                ev->depth--;
                return r;
            }
            case S_EVERY: {
                /* an undefined or non-collection domain fails (see docs/rego.md) */
                struct every_ctx ec = {.all = true};
                ok                  = v.j && (v.set || json_is_array(v.j) || json_is_object(v.j));
                if (ok && (r = each(ev, st, &v, slots, every_elem, &ec)) < 0)
                    ok = false;
                ok = ok && ec.all;
                r  = r < 0 ? r : 0;
                break;
            }
        }
        val_drop(&v);
        if (r < 0 || !ok) {
            ev->depth--;
            return r;
        }
    }
    if (r == 0)
        r = fn(ev, ctx, slots);
    ev->depth--;
    return r;
}

/* ---- comprehensions ----------------------------------------------------------------- */

struct compr_ctx {
    const struct rg_node* n;
    json_t* out;
};

static int compr_success(struct ev* ev, void* ctx, struct rg_val* slots) {
    struct compr_ctx* cc = ctx;
    struct rg_val v      = {0};
    int r                = eval(ev, cc->n->kids[0], slots, &v);
    if (r == 0 && v.j) {
        if ((r = no_sets_inside(ev, cc->n, &v)) == 0 && json_array_append(cc->out, v.j) < 0)
            abort();
    }
    val_drop(&v);
    return r;
}

/* Always defined: the (possibly empty) array or set of the term over the body's solutions. */
static int eval_comprehension(struct ev* ev, const struct rg_node* n, struct rg_val* slots,
                              struct rg_val* ret) {
    struct compr_ctx cc = {.n = n, .out = json_array()};
    if (!cc.out)
        abort();
    int r = eval_stmts(ev, n->body, 0, slots, compr_success, &cc);
    if (r < 0) {
        json_decref(cc.out);
        return r;
    }
    if (n->set)
        rg_set_normalize(cc.out);
    *ret = (struct rg_val){.j = cc.out, .set = n->set};
    return 0;
}

/* ---- rules -------------------------------------------------------------------------- */

struct rule_ctx {
    const struct rg_rule* rule;
    const struct rg_def* def;
    struct rg_val val; /* complete: the value so far; set: the elements (an array) */
    bool found;        /* the current alternative's body had a solution */
};

static int rule_success(struct ev* ev, void* ctx, struct rg_val* slots) {
    struct rule_ctx* rc = ctx;
    struct rg_val v     = {0};
    rc->found           = true;
    if (rc->def->value) {
        int r = eval(ev, rc->def->value, slots, &v);
        if (r < 0 || !v.j)
            return r;
    } else {
        v.j = json_true();
    }
    int r = 0;
    if (rc->rule->kind == R_SET) {
        if (v.set)
            r = moat_error_set(ev->err, -EINVAL,
                               "line %d: sets inside arrays, objects or sets are not supported",
                               rc->def->line);
        else if (json_array_append(rc->val.j, v.j) < 0)
            abort();
    } else if (!rc->val.j) {
        rc->val = val_ref(v);
    } else if (rg_compare(rc->val.j, rc->val.set, v.j, v.set) != 0) {
        r = moat_error_set(ev->err, -EINVAL,
                           "line %d: rule %s: complete rules must not produce multiple outputs",
                           rc->def->line, rc->rule->name);
    }
    val_drop(&v);
    return r;
}

/* One definition: its body, or, when that has no solution, its else alternatives in order. */
static int eval_def(struct ev* ev, struct rule_ctx* rc, const struct rg_def* def) {
    struct rg_val* slots = xcalloc((size_t)def->nslots + 1, sizeof(*slots));
    int r                = 0;
    rc->found            = false;
    for (const struct rg_def* d = def; r >= 0 && d && !rc->found; d = d->else_def) {
        rc->def = d;
        r       = d->body ? eval_stmts(ev, d->body, 0, slots, rule_success, rc)
                          : rule_success(ev, rc, slots);
    }
    for (int i = 0; i < def->nslots; i++)
        val_drop(&slots[i]);
    free(slots);
    return r < 0 ? r : 0;
}

static int eval_rule(struct ev* ev, int ri, struct rg_val* ret) {
    const struct rg_rule* rule = &ev->p->rules[ri];
    struct rule_cache* c       = &ev->cache[ri];
    if (c->state == 2) {
        *ret = val_ref(c->v);
        return 0;
    }
    if (c->state == 1) /* the compiler refuses recursion; keep the evaluator safe anyway */
        return moat_error_set(ev->err, -EINVAL, "line %d: rule %s is recursive", rule->line,
                              rule->name);
    c->state           = 1;
    struct rule_ctx rc = {.rule = rule};
    if (rule->kind == R_SET && !(rc.val.j = json_array()))
        abort();
    rc.val.set = rule->kind == R_SET;
    int r      = 0;
    for (size_t d = 0; r == 0 && d < rule->ndefs; d++)
        r = eval_def(ev, &rc, &rule->defs[d]);
    if (r == 0 && rule->kind == R_SET)
        rg_set_normalize(rc.val.j);
    if (r == 0 && !rc.val.j && rule->default_value)
        r = eval(ev, rule->default_value, NULL, &rc.val);
    if (r < 0) {
        val_drop(&rc.val);
        c->state = 0;
        return r;
    }
    c->v     = rc.val;
    c->state = 2;
    *ret     = val_ref(c->v);
    return 0;
}

int rego_eval_at(const struct rego_policy* p, json_t* input, int64_t now_ns, json_t** ret_values,
                 struct moat_error* err) {
    struct ev ev = {.p = p, .input = input, .now_ns = now_ns, .err = err};
    ev.cache     = xcalloc(p->nrules + 1, sizeof(*ev.cache));
    json_t* out  = json_object();
    if (!out)
        abort();
    int r = 0;
    for (size_t i = 0; r == 0 && i < p->nrules; i++) {
        struct rg_val v = {0};
        if ((r = eval_rule(&ev, (int)i, &v)) == 0 && v.j &&
            json_object_set_new(out, p->rules[i].name, json_deep_copy(v.j)) < 0)
            abort();
        val_drop(&v);
    }
    for (size_t i = 0; i < p->nrules; i++)
        val_drop(&ev.cache[i].v);
    free(ev.cache);
    if (r < 0) {
        json_decref(out);
        return r;
    }
    *ret_values = out;
    return 0;
}

int rego_eval(const struct rego_policy* p, json_t* input, json_t** ret_values,
              struct moat_error* err) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
        return moat_error_set_errno(err, -errno, "clock_gettime");
    return rego_eval_at(p, input, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, ret_values, err);
}

bool rego_rule_is_true(const json_t* values, const char* rule) {
    return json_is_true(json_object_get(values, rule));
}
