/* SPDX-License-Identifier: Apache-2.0 */
/* The Rego subset's top level: package, imports, defaults, rule heads with their bodies and
 * else chains, and rego_compile. Rule names are collected first, so that bodies may refer to
 * rules defined further down. */
#include <string.h>

#include "rego_parser.h"

static bool is_reserved_rule_name(const struct rg_token* t) {
    return rp_is_keyword(t) || rp_is_word(t, "input") || rp_is_word(t, "data") ||
           rp_is_word(t, "_");
}

static int add_rule(struct parser* ps, const struct rg_token* t, int* ret) {
    int ri = rp_find_rule(ps, t);
    if (ri < 0) {
        struct rego_policy* p = ps->p;
        if (p->nrules >= REGO_MAX_RULES)
            return rp_errat(ps, t, -E2BIG, "more than %d rules", REGO_MAX_RULES);
        p->rules = xgrow(p->rules, &p->cap, p->nrules + 1, sizeof(*p->rules));
        p->rules[p->nrules] =
            (struct rg_rule){.name = xstrndup(t->p, t->len), .line = t->line, .kind = R_COMPLETE};
        ri = (int)p->nrules++;
    }
    *ret = ri;
    return 0;
}

/* Rule names first, so that bodies may refer to rules defined further down: an identifier at
 * the start of a top-level line (or after `default`). */
static int collect_rule_names(struct parser* ps) {
    int depth = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const struct rg_token* t = &ps->t[i];
        if (t->type == TK_LBRACE || t->type == TK_LBRACK || t->type == TK_LPAREN)
            depth++;
        else if (t->type == TK_RBRACE || t->type == TK_RBRACK || t->type == TK_RPAREN)
            depth--;
        bool line_start = i == 0 || ps->t[i - 1].type == TK_NEWLINE || ps->t[i - 1].type == TK_SEMI;
        if (depth != 0 || !line_start || t->type != TK_IDENT || rp_is_word(t, "package") ||
            rp_is_word(t, "import"))
            continue;
        if (rp_is_word(t, "default"))
            t = &ps->t[i + 1];
        if (t->type != TK_IDENT || is_reserved_rule_name(t))
            continue;
        int ri, r = add_rule(ps, t, &ri);
        if (r < 0)
            return r;
    }
    return 0;
}

/* a.b.c into a string; tokens must be names separated by dots. */
static int parse_dotted(struct parser* ps, struct strbuf* sb) {
    for (;;) {
        const struct rg_token* t = &ps->t[ps->i];
        if (t->type != TK_IDENT)
            return rp_errat(ps, t, -EINVAL, "expected a name, found `%.*s`", TOKQ(t));
        strbuf_append(sb, t->p, t->len);
        ps->i++;
        if (ps->t[ps->i].type != TK_DOT)
            return 0;
        strbuf_putc(sb, '.');
        ps->i++;
    }
}

static int parse_package(struct parser* ps) {
    const struct rg_token* kw         = rp_next(ps);
    _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
    if (ps->p->package)
        return rp_errat(ps, kw, -EINVAL, "more than one `package`");
    int r = parse_dotted(ps, &sb);
    if (r < 0)
        return r;
    ps->p->package = strbuf_take(&sb, NULL);
    return 0;
}

/* The keyword imports are no-ops: the subset always knows in/every/if/contains. */
static int parse_import(struct parser* ps) {
    static const char* const allowed[] = {"future.keywords",
                                          "future.keywords.in",
                                          "future.keywords.every",
                                          "future.keywords.if",
                                          "future.keywords.contains",
                                          "rego.v1",
                                          "input"};
    rp_next(ps);
    const struct rg_token* t          = rp_cur(ps);
    _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
    int r                             = parse_dotted(ps, &sb);
    if (r < 0)
        return r;
    if (rp_is_word(rp_cur(ps), "as"))
        return rp_errat(ps, rp_cur(ps), -EINVAL, "`import … as` is not supported");
    strbuf_putc(&sb, 0);
    for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
        if (strcmp(sb.buf, allowed[i]) == 0)
            return 0;
    return rp_errat(ps, t, -EINVAL, "`import %s` is not supported", sb.buf);
}

static bool is_ground(const struct rg_node* n) {
    if (n->kind != N_CONST && n->kind != N_ARRAY && n->kind != N_OBJECT && n->kind != N_SET)
        return false;
    for (size_t i = 0; i < n->n; i++)
        if (!is_ground(n->kids[i]))
            return false;
    return true;
}

static int parse_default(struct parser* ps) {
    const struct rg_token* kw = rp_next(ps);
    const struct rg_token* t  = &ps->t[ps->i];
    int ri, r;
    if (t->type != TK_IDENT || is_reserved_rule_name(t))
        return rp_errat(ps, t, -EINVAL, "expected a rule name after `default`");
    if ((r = add_rule(ps, t, &ri)) < 0)
        return r;
    ps->i++;
    const struct rg_token* op = &ps->t[ps->i];
    if (op->type != TK_UNIFY && op->type != TK_ASSIGN)
        return rp_errat(ps, op, -EINVAL, "expected `=` or `:=` after `default %.*s`", TOKQ(t));
    ps->i++;
    ps->nscope = 0;
    struct rg_node* v;
    r = rp_parse_expr(ps, &v);
    if (r < 0)
        return r;
    struct rg_rule* rule = &ps->p->rules[ri];
    if (!is_ground(v))
        return rp_errat(ps, kw, -EINVAL, "default rule value of %s must be a constant", rule->name);
    if (rule->default_value)
        return rp_errat(ps, kw, -EINVAL, "multiple default rules %s found", rule->name);
    if (rule->ndefs > 0 && rule->kind == R_SET)
        return rp_errat(ps, kw, -EINVAL,
                        "conflicting rules %s found (default on a partial set rule)", rule->name);
    rule->default_value = v;
    return 0;
}

/* The head's value (or set element) is parsed before the body that binds its variables:
 * unknown names become pending and are resolved against the body's scope afterwards. */
static int parse_head_term(struct parser* ps, struct rg_node** ret) {
    ps->head_mode = true;
    int r         = rp_parse_expr(ps, ret);
    ps->head_mode = false;
    return r;
}

/* Binds the head's pending names to the body just parsed. */
static int resolve_pending(struct parser* ps) {
    for (size_t i = 0; i < ps->npend; i++) {
        int slot = rp_find_local(ps, ps->pend[i].tok);
        if (slot < 0)
            return rp_errat(ps, ps->pend[i].tok, -EINVAL, "var %.*s is unsafe",
                            TOKQ(ps->pend[i].tok));
        ps->pend[i].node->slot = slot;
    }
    ps->npend = 0;
    return 0;
}

/* The optional body after a head: `{ … }`, `if { … }`, `if stmt`, also on the next line. */
static int parse_opt_body(struct parser* ps, struct rg_def* def, bool need_body) {
    size_t save = ps->i;
    rp_skip_newlines(ps);
    const struct rg_token* t = &ps->t[ps->i];
    if (rp_is_word(t, "if") || t->type == TK_LBRACE)
        return rp_parse_rule_body(ps, &def->body);
    ps->i = save;
    if (need_body)
        return rp_errat(ps, t, -EINVAL, "expected `{` or `if` after the rule head, found `%.*s`",
                        TOKQ(t));
    return 0;
}

/* else [= value] [body] ... : each alternative has its own locals (slots continue). */
static int parse_else_chain(struct parser* ps, struct rg_def* def, enum rg_rule_kind kind) {
    struct rg_def* prev = def;
    for (;;) {
        size_t save = ps->i;
        rp_skip_newlines(ps);
        const struct rg_token* t = &ps->t[ps->i];
        if (!rp_is_word(t, "else")) {
            ps->i = save;
            return 0;
        }
        if (kind == R_SET)
            return rp_errat(ps, t, -EINVAL, "`else` cannot be used on partial set rules");
        if (!prev->body)
            return rp_errat(ps, t, -EINVAL, "`else` must follow a rule body");
        ps->i++;
        struct rg_def* e = rp_palloc(ps->p, sizeof(*e));
        e->line          = t->line;
        ps->nscope       = 0;
        int r;
        if (ps->t[ps->i].type == TK_UNIFY || ps->t[ps->i].type == TK_ASSIGN) {
            ps->i++;
            if ((r = parse_head_term(ps, &e->value)) < 0)
                return r;
        }
        if ((r = parse_opt_body(ps, e, false)) < 0 || (r = resolve_pending(ps)) < 0)
            return r;
        prev->else_def = e;
        prev           = e;
    }
}

static int parse_rule_tail(struct parser* ps, struct rg_def* def, bool need_body,
                           enum rg_rule_kind kind) {
    int r = parse_opt_body(ps, def, need_body);
    if (r < 0 || (r = resolve_pending(ps)) < 0 || (r = parse_else_chain(ps, def, kind)) < 0)
        return r;
    const struct rg_token* t = &ps->t[ps->i];
    if (t->type == TK_LBRACE)
        return rp_errat(ps, t, -EINVAL, "more than one body per rule head is not supported");
    return 0;
}

static int parse_rule(struct parser* ps) {
    const struct rg_token* name = rp_next(ps);
    int ri, r;
    if (rp_is_word(name, "with"))
        return rp_errat(ps, name, -EINVAL, "`with` is not supported");
    if (is_reserved_rule_name(name))
        return rp_errat(ps, name, -EINVAL, "unexpected `%.*s` at the top level", TOKQ(name));
    if ((r = add_rule(ps, name, &ri)) < 0)
        return r;
    ps->nscope = ps->npend   = 0;
    ps->nslots               = 0;
    struct rg_def def        = {.line = name->line};
    enum rg_rule_kind kind   = R_COMPLETE;
    const struct rg_token* t = &ps->t[ps->i];
    bool need_body           = false;
    if (t->type == TK_LPAREN)
        return rp_errat(ps, t, -EINVAL, "functions are not supported");
    if (t->type == TK_DOT)
        return rp_errat(ps, t, -EINVAL, "rule heads with references (`a.b`) are not supported");
    if (t->type == TK_LBRACK || rp_is_word(t, "contains")) {
        ps->i++;
        kind = R_SET;
        if ((r = parse_head_term(ps, &def.value)) < 0)
            return r;
        if (t->type == TK_LBRACK && (r = rp_expect(ps, TK_RBRACK, "`]`")) < 0)
            return r;
        const struct rg_token* u = &ps->t[ps->i];
        if (u->type == TK_UNIFY || u->type == TK_ASSIGN)
            return rp_errat(ps, u, -EINVAL, "partial object rules are not supported");
    } else if (t->type == TK_UNIFY || t->type == TK_ASSIGN) {
        ps->i++;
        if ((r = parse_head_term(ps, &def.value)) < 0)
            return r;
    } else {
        need_body = true;
    }
    if ((r = parse_rule_tail(ps, &def, need_body, kind)) < 0)
        return r;
    def.nslots           = ps->nslots;
    struct rg_rule* rule = &ps->p->rules[ri];
    if ((rule->ndefs > 0 && rule->kind != kind) || (kind == R_SET && rule->default_value))
        return rp_errat(ps, name, -EINVAL, "conflicting rules %s found", rule->name);
    rule->kind                = kind;
    rule->defs                = xgrow(rule->defs, &rule->cap, rule->ndefs + 1, sizeof(*rule->defs));
    rule->defs[rule->ndefs++] = def;
    return 0;
}

/* ---- API ---- */

int rp_parse_policy(struct parser* ps) {
    int r = collect_rule_names(ps);
    while (r == 0) {
        while (ps->t[ps->i].type == TK_NEWLINE || ps->t[ps->i].type == TK_SEMI)
            ps->i++;
        const struct rg_token* t = &ps->t[ps->i];
        if (t->type == TK_EOF)
            break;
        if (rp_is_word(t, "package"))
            r = parse_package(ps);
        else if (rp_is_word(t, "import"))
            r = parse_import(ps);
        else if (rp_is_word(t, "default"))
            r = parse_default(ps);
        else if (t->type == TK_IDENT)
            r = parse_rule(ps);
        else
            r = rp_errat(ps, t, -EINVAL, "unexpected `%.*s` at the top level", TOKQ(t));
        const struct rg_token* e = &ps->t[ps->i];
        if (r == 0 && e->type != TK_NEWLINE && e->type != TK_SEMI && e->type != TK_EOF)
            r = rp_errat(ps, e, -EINVAL, "unexpected `%.*s`", TOKQ(e));
    }
    for (size_t i = 0; r == 0 && i < ps->p->nrules; i++)
        if (ps->p->rules[i].ndefs == 0 && !ps->p->rules[i].default_value)
            r = moat_error_set(ps->err, -EINVAL, "line %d: rule %s has no definition",
                               ps->p->rules[i].line, ps->p->rules[i].name);
    return r < 0 ? r : rg_check_recursion(ps->p, ps->err);
}

int rego_compile(const char* text, size_t len, struct rego_policy** ret_policy,
                 struct moat_error* err) {
    if (len > REGO_MAX_TEXT)
        return moat_error_set(err, -E2BIG, "policy is %zu bytes, more than the limit of %u", len,
                              REGO_MAX_TEXT);
    struct rg_token* toks = NULL;
    size_t n              = 0;
    int r                 = rg_lex(text, len, &toks, &n, err);
    if (r < 0)
        return r;
    struct parser* ps     = xcalloc(1, sizeof(*ps));
    ps->t                 = toks;
    ps->n                 = n;
    ps->p                 = xcalloc(1, sizeof(*ps->p));
    ps->err               = err;
    r                     = rp_parse_policy(ps);
    struct rego_policy* p = ps->p;
    free(ps);
    rg_tokens_free(toks, n);
    if (r < 0) {
        rego_policy_free(p);
        return r;
    }
    *ret_policy = p;
    return 0;
}
