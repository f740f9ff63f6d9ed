/* SPDX-License-Identifier: Apache-2.0 */
/* The Rego subset's parser: tokens → the compiled tree (rego_impl.h). Names are resolved here
 * (locals to slots, rule names to rule indices), so the evaluator never sees an unknown name;
 * everything outside the subset is refused with its line and column. Recursion is bounded
 * by REGO_MAX_DEPTH. */
#include <math.h>
#include <string.h>

#include "rego_parser.h"

int rp_errat(struct parser* ps, const struct rg_token* t, int code, const char* fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return moat_error_set(ps->err, code, "line %d, column %d: %s", t->line, t->col, msg);
}

void* rp_palloc(struct rego_policy* p, size_t size) {
    void* m                 = xcalloc(1, size ? size : 1);
    p->allocs               = xgrow(p->allocs, &p->allocs_cap, p->nallocs + 1, sizeof(*p->allocs));
    p->allocs[p->nallocs++] = m;
    return m;
}

const struct rg_token* rp_cur(struct parser* ps) {
    while (ps->nl_skip > 0 && ps->t[ps->i].type == TK_NEWLINE)
        ps->i++;
    return &ps->t[ps->i];
}
const struct rg_token* rp_next(struct parser* ps) {
    const struct rg_token* t = rp_cur(ps);
    if (t->type != TK_EOF)
        ps->i++;
    return t;
}
void rp_skip_newlines(struct parser* ps) {
    while (ps->t[ps->i].type == TK_NEWLINE)
        ps->i++;
}
bool rp_is_word(const struct rg_token* t, const char* w) {
    return t->type == TK_IDENT && t->len == strlen(w) && memcmp(t->p, w, t->len) == 0;
}

static const char* const keywords[] = {"not",      "some",    "every", "in",    "if",
                                       "contains", "else",    "with",  "as",    "default",
                                       "import",   "package", "true",  "false", "null"};
bool rp_is_keyword(const struct rg_token* t) {
    for (size_t i = 0; i < ARRAY_SIZE(keywords); i++)
        if (rp_is_word(t, keywords[i]))
            return true;
    return false;
}

/* A short quotation of a token for messages. */

int rp_expect(struct parser* ps, enum rg_tok type, const char* what) {
    const struct rg_token* t = rp_cur(ps);
    if (t->type != type)
        return rp_errat(ps, t, -EINVAL, "expected %s, found `%.*s`", what, TOKQ(t));
    ps->i++;
    return 0;
}

static struct rg_node* node_new(struct parser* ps, enum rg_node_kind kind,
                                const struct rg_token* t) {
    struct rg_node* n = rp_palloc(ps->p, sizeof(*n));
    n->kind           = kind;
    n->line           = t->line;
    n->col            = t->col;
    n->slot = n->rule = -1;
    return n;
}

static struct rg_node* const_new(struct parser* ps, const struct rg_token* t, json_t* v) {
    struct rego_policy* p   = ps->p;
    p->consts               = xgrow(p->consts, &p->consts_cap, p->nconsts + 1, sizeof(*p->consts));
    p->consts[p->nconsts++] = v;
    struct rg_node* n       = node_new(ps, N_CONST, t);
    n->value                = v;
    return n;
}

static void kids_set(struct parser* ps, struct rg_node* n, struct rg_node** kids, size_t k) {
    n->kids = rp_palloc(ps->p, k * sizeof(*kids));
    if (k > 0)
        memcpy(n->kids, kids, k * sizeof(*kids));
    n->n = k;
}

int rp_find_local(const struct parser* ps, const struct rg_token* t) {
    for (size_t i = ps->nscope; i-- > 0;)
        if (ps->scope[i].len == t->len && memcmp(ps->scope[i].name, t->p, t->len) == 0)
            return ps->scope[i].slot;
    return -1;
}

int rp_find_rule(const struct parser* ps, const struct rg_token* t) {
    for (size_t i = 0; i < ps->p->nrules; i++)
        if (strlen(ps->p->rules[i].name) == t->len &&
            memcmp(ps->p->rules[i].name, t->p, t->len) == 0)
            return (int)i;
    return -1;
}

/* Declares a new local; `_` gets an anonymous slot. */
static int declare(struct parser* ps, const struct rg_token* t, int* ret_slot) {
    if (ps->nslots >= REGO_MAX_VARS || ps->nscope >= REGO_MAX_VARS)
        return rp_errat(ps, t, -E2BIG, "more than %d variables in one rule", REGO_MAX_VARS);
    if (rp_is_keyword(t) || rp_is_word(t, "input") || rp_is_word(t, "data"))
        return rp_errat(ps, t, -EINVAL, "`%.*s` cannot be a variable", TOKQ(t));
    if (!rp_is_word(t, "_")) {
        if (rp_find_local(ps, t) >= 0)
            return rp_errat(ps, t, -EINVAL, "var %.*s assigned above", TOKQ(t));
        ps->scope[ps->nscope++] =
            (struct scope_ent){.name = t->p, .len = t->len, .slot = ps->nslots};
    }
    *ret_slot = ps->nslots++;
    return 0;
}

static bool is_unbound_name(const struct parser* ps, size_t i);
static int parse_stmt_into(struct parser* ps, struct rg_stmt** v, size_t* n, size_t* cap);
static bool ends_stmt(const struct rg_token* t);

static int enter(struct parser* ps, const struct rg_token* t) {
    if (++ps->depth > REGO_MAX_DEPTH)
        return rp_errat(ps, t, -E2BIG, "nesting deeper than %d", REGO_MAX_DEPTH);
    return 0;
}

static int parse_number(struct parser* ps, const struct rg_token* t, bool neg,
                        struct rg_node** ret) {
    char buf[64];
    if (t->len + 2 > sizeof(buf))
        return rp_errat(ps, t, -EINVAL, "number `%.*s` is out of range", TOKQ(t));
    snprintf(buf, sizeof(buf), "%s%.*s", neg ? "-" : "", (int)t->len, t->p);
    json_t* v;
    if (!memchr(t->p, '.', t->len) && !memchr(t->p, 'e', t->len) && !memchr(t->p, 'E', t->len)) {
        int64_t i;
        if (parse_i64(buf, 10, &i) < 0)
            return rp_errat(ps, t, -EINVAL, "number `%s` is out of range", buf);
        v = json_integer(i);
    } else {
        char* end;
        double d = strtod(buf, &end);
        if (*end || !isfinite(d))
            return rp_errat(ps, t, -EINVAL, "number `%s` is out of range", buf);
        v = json_real(d);
    }
    if (!v)
        abort();
    *ret = const_new(ps, t, v);
    return 0;
}

/* A `|` at the top level of the literal opened just before i: a comprehension. */
static const struct rg_token* find_comprehension(const struct parser* ps) {
    int depth = 0;
    for (size_t i = ps->i; ps->t[i].type != TK_EOF; i++) {
        enum rg_tok t = ps->t[i].type;
        if (t == TK_LBRACE || t == TK_LBRACK || t == TK_LPAREN)
            depth++;
        else if ((t == TK_RBRACE || t == TK_RBRACK || t == TK_RPAREN) && depth-- == 0)
            return NULL;
        else if (depth == 0 && t == TK_OTHER && *ps->t[i].p == '|')
            return &ps->t[i];
    }
    return NULL;
}

/* [term | body] and {term | body}: the body is parsed first (its names are visible to the
 * term, not outside), then the term. */
static int parse_comprehension(struct parser* ps, const struct rg_token* open,
                               const struct rg_token* bar, enum rg_tok close,
                               struct rg_node** ret) {
    for (size_t i = ps->i; &ps->t[i] < bar; i++)
        if (ps->t[i].type == TK_COLON)
            return rp_errat(ps, &ps->t[i], -EINVAL, "object comprehensions are not supported");
    int r = enter(ps, open);
    if (r < 0)
        return r;
    size_t term_at = ps->i, saved_nscope = ps->nscope;
    int saved_nl   = ps->nl_skip;
    bool saved_gen = ps->gen_ok, saved_head = ps->head_mode;
    ps->i                                = (size_t)(bar - ps->t) + 1;
    ps->nl_skip                          = 0;
    ps->head_mode                        = false;
    _cleanup_free_ struct rg_stmt* stmts = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        while (ps->t[ps->i].type == TK_NEWLINE || ps->t[ps->i].type == TK_SEMI)
            ps->i++;
        if (ps->t[ps->i].type == close)
            break;
        if (ps->t[ps->i].type == TK_EOF)
            return rp_errat(ps, open, -EINVAL, "unterminated comprehension");
        if ((r = parse_stmt_into(ps, &stmts, &n, &cap)) < 0)
            return r;
    }
    if (n == 0)
        return rp_errat(ps, bar, -EINVAL, "found empty body");
    size_t end  = ps->i;
    ps->i       = term_at;
    ps->gen_ok  = false;
    ps->nl_skip = saved_nl + 1;
    struct rg_node* term;
    if ((r = rp_parse_expr(ps, &term)) < 0)
        return r;
    if (rp_cur(ps) != bar)
        return rp_errat(ps, rp_cur(ps), -EINVAL, "expected `|`, found `%.*s`", TOKQ(rp_cur(ps)));
    ps->i             = end + 1;
    ps->nl_skip       = saved_nl;
    ps->gen_ok        = saved_gen;
    ps->head_mode     = saved_head;
    ps->nscope        = saved_nscope;
    struct rg_body* b = rp_palloc(ps->p, sizeof(*b));
    b->stmts          = rp_palloc(ps->p, n * sizeof(*b->stmts));
    memcpy(b->stmts, stmts, n * sizeof(*b->stmts));
    b->n         = n;
    *ret         = node_new(ps, N_COMPR, open);
    (*ret)->body = b;
    (*ret)->set  = close == TK_RBRACE;
    kids_set(ps, *ret, &term, 1);
    ps->depth--;
    return 0;
}

/* [a, b, ...] / {k: v, ...} / {a, b, ...}: comma-separated, trailing comma allowed. */
static int parse_collection(struct parser* ps, const struct rg_token* open, enum rg_tok close,
                            struct rg_node** ret) {
    const struct rg_token* bar = find_comprehension(ps);
    if (bar)
        return parse_comprehension(ps, open, bar, close, ret);
    _cleanup_free_ struct rg_node** kids = NULL;
    size_t k = 0, cap = 0;
    int kind = close == TK_RBRACK ? N_ARRAY : -1; /* for braces: object or set, from the first */
    ps->nl_skip++;
    while (rp_cur(ps)->type != close) {
        const struct rg_token* et = rp_cur(ps);
        kids                      = xgrow(kids, &cap, k + 2, sizeof(*kids));
        int r                     = rp_parse_expr(ps, &kids[k]);
        if (r < 0)
            return r;
        if (kids[k]->kind == N_SET)
            return rp_errat(ps, et, -EINVAL,
                            "sets inside arrays, objects or sets are not supported");
        k++;
        if (kind < 0)
            kind = rp_cur(ps)->type == TK_COLON ? N_OBJECT : N_SET;
        if (kind == N_OBJECT) {
            if (kids[k - 1]->kind == N_CONST && !json_is_string(kids[k - 1]->value))
                return rp_errat(ps, et, -EINVAL, "object keys must be strings");
            if ((r = rp_expect(ps, TK_COLON, "`:`")) < 0 || (r = rp_parse_expr(ps, &kids[k])) < 0)
                return r;
            if (kids[k]->kind == N_SET)
                return rp_errat(ps, et, -EINVAL,
                                "sets inside arrays, objects or sets are not supported");
            k++;
        }
        const struct rg_token* t = rp_cur(ps);
        if (t->type == TK_OTHER && t->len == 1 && *t->p == '|')
            return rp_errat(ps, t, -EINVAL, "comprehensions are not supported");
        if (t->type == TK_COMMA)
            ps->i++;
        else if (t->type != close)
            return rp_errat(ps, t, -EINVAL, "expected `,` or `%s`, found `%.*s`",
                            close == TK_RBRACK ? "]" : "}", TOKQ(t));
    }
    ps->i++;
    ps->nl_skip--;
    struct rg_node* n = node_new(ps, kind < 0 ? N_OBJECT : (enum rg_node_kind)kind, open);
    kids_set(ps, n, kids, k);
    *ret = n;
    return 0;
}

/* A built-in call `name(args)`; only count() (and set() for the empty set) are in the subset. */
static const struct {
    const char* name;
    int nargs;
    enum rg_builtin fn;
} builtins[] = {
    {"count", 1, B_COUNT},
    {"time.now_ns", 0, B_TIME_NOW_NS},
    {"time.parse_rfc3339_ns", 1, B_TIME_PARSE_RFC3339_NS},
    {"time.add_date", 4, B_TIME_ADD_DATE},
    {"object.subset", 2, B_OBJECT_SUBSET},
};

/* name(args): a built-in from the table, or set() (the empty set). */
static int parse_call(struct parser* ps, const struct rg_token* first, struct rg_node** ret) {
    _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
    for (;;) {
        const struct rg_token* t = rp_next(ps);
        strbuf_append(&sb, t->p, t->len);
        if (rp_cur(ps)->type != TK_DOT)
            break;
        strbuf_putc(&sb, '.');
        ps->i++;
    }
    strbuf_putc(&sb, 0);
    const char* name = sb.buf;
    int b            = strcmp(name, "set") == 0 ? -2 : -1;
    for (size_t i = 0; b == -1 && i < ARRAY_SIZE(builtins); i++)
        if (strcmp(name, builtins[i].name) == 0)
            b = (int)i;
    if (b == -1)
        return rp_errat(ps, first, -EINVAL, "built-in `%.60s` is not supported", name);
    int nargs = b >= 0 ? builtins[b].nargs : 0;
    ps->i++; /* ( */
    ps->nl_skip++;
    struct rg_node* args[4];
    size_t n = 0;
    int r;
    while (rp_cur(ps)->type != TK_RPAREN) {
        if (n >= ARRAY_SIZE(args) || (int)n >= nargs)
            return rp_errat(ps, first, -EINVAL, "`%s` takes %d argument%s", name, nargs,
                            nargs == 1 ? "" : "s");
        if ((r = rp_parse_expr(ps, &args[n++])) < 0)
            return r;
        if (rp_cur(ps)->type == TK_COMMA)
            ps->i++;
        else if (rp_cur(ps)->type != TK_RPAREN)
            return rp_errat(ps, rp_cur(ps), -EINVAL, "expected `,` or `)`, found `%.*s`",
                            TOKQ(rp_cur(ps)));
    }
    if ((int)n != nargs)
        return rp_errat(ps, first, -EINVAL, "`%s` takes %d argument%s", name, nargs,
                        nargs == 1 ? "" : "s");
    ps->i++;
    ps->nl_skip--;
    *ret = node_new(ps, b >= 0 ? N_CALL : N_SET, first);
    if (b >= 0) {
        (*ret)->fn = builtins[b].fn;
        kids_set(ps, *ret, args, n);
    }
    return 0;
}

/* Whether the tokens at i are `a.b.c(`: a call to a (dotted) built-in. */
static bool is_call(const struct parser* ps, size_t i) {
    while (ps->t[i].type == TK_IDENT && ps->t[i + 1].type == TK_DOT &&
           ps->t[i + 2].type == TK_IDENT)
        i += 2;
    return ps->t[i].type == TK_IDENT && ps->t[i + 1].type == TK_LPAREN;
}

static int parse_name(struct parser* ps, const struct rg_token* t, struct rg_node** ret) {
    if (rp_is_word(t, "_"))
        return rp_errat(ps, t, -EINVAL, "`_` (iteration) is not supported; use `some x in …`");
    if (rp_is_word(t, "data"))
        return rp_errat(ps, t, -EINVAL, "`data` is not supported: policies see only `input`");
    if (rp_is_word(t, "true") || rp_is_word(t, "false") || rp_is_word(t, "null")) {
        ps->i++;
        *ret = const_new(ps, t,
                         rp_is_word(t, "null") ? json_null() : json_boolean(rp_is_word(t, "true")));
        return 0;
    }
    if (rp_is_word(t, "with"))
        return rp_errat(ps, t, -EINVAL, "`with` is not supported");
    if (rp_is_keyword(t))
        return rp_errat(ps, t, -EINVAL, "unexpected `%.*s`", TOKQ(t));
    int slot = rp_find_local(ps, t);
    if (slot >= 0) {
        ps->i++;
        *ret         = node_new(ps, N_VAR, t);
        (*ret)->slot = slot;
        return 0;
    }
    if (!rp_is_word(t, "input") && is_call(ps, ps->i))
        return parse_call(ps, t, ret);
    int rule = rp_find_rule(ps, t);
    if (rule >= 0 || rp_is_word(t, "input")) {
        ps->i++;
        *ret         = node_new(ps, rule >= 0 ? N_RULE : N_INPUT, t);
        (*ret)->rule = rule;
        return 0;
    }
    if (ps->head_mode && ps->npend < ARRAY_SIZE(ps->pend)) {
        ps->i++;
        *ret                  = node_new(ps, N_VAR, t);
        ps->pend[ps->npend++] = (struct pending){.node = *ret, .tok = t};
        return 0;
    }
    return rp_errat(ps, t, -EINVAL, "var %.*s is unsafe", TOKQ(t));
}

static int parse_primary(struct parser* ps, struct rg_node** ret) {
    const struct rg_token* t = rp_cur(ps);
    switch (t->type) {
        case TK_STRING: {
            ps->i++;
            json_t* v = json_stringn_nocheck(t->str, t->str_len);
            if (!v)
                abort();
            *ret = const_new(ps, t, v);
            return 0;
        }
        case TK_NUMBER:
            ps->i++;
            return parse_number(ps, t, false, ret);
        case TK_LBRACK:
        case TK_LBRACE:
            ps->i++;
            return parse_collection(ps, t, t->type == TK_LBRACK ? TK_RBRACK : TK_RBRACE, ret);
        case TK_LPAREN: {
            ps->i++;
            ps->nl_skip++;
            int r = rp_parse_expr(ps, ret);
            if (r < 0 || (r = rp_expect(ps, TK_RPAREN, "`)`")) < 0)
                return r;
            ps->nl_skip--;
            return 0;
        }
        case TK_IDENT:
            return parse_name(ps, t, ret);
        case TK_OTHER:
            if (*t->p == '-' && ps->t[ps->i + 1].type == TK_NUMBER &&
                ps->t[ps->i + 1].p == t->p + 1) {
                ps->i += 2;
                return parse_number(ps, &ps->t[ps->i - 1], true, ret);
            }
            return rp_errat(ps, t, -EINVAL, "operator `%.*s` is not supported", TOKQ(t));
        default:
            return rp_errat(ps, t, -EINVAL, "unexpected `%.*s`", TOKQ(t));
    }
}

/* `ref[_]` or `ref[x]` with a new x in a body statement iterates, as OPA's generators do: it
 * becomes `some x, v in ref` placed before the statement, and the reference continues from v.
 * Inside `not`, an `every` domain, a rule head or a default, moving the iteration out would
 * change the meaning, so it is refused there. */
static int add_generator(struct parser* ps, const struct rg_token* start, const struct rg_token* it,
                         struct rg_node** kids, size_t k) {
    if (!ps->gen_ok)
        return rp_errat(ps, it, -EINVAL,
                        "iteration over `[%.*s]` is not supported here (inside `not`, an `every` "
                        "domain, a rule head or a default); use `some … in …`",
                        TOKQ(it));
    struct rg_stmt g = {.kind = S_SOME_IN, .line = it->line, .col = it->col, .key_slot = -1};
    if (k == 1) {
        g.expr = kids[0];
    } else {
        g.expr = node_new(ps, N_REF, start);
        kids_set(ps, g.expr, kids, k);
    }
    int r;
    if (!rp_is_word(it, "_") && (r = declare(ps, it, &g.key_slot)) < 0)
        return r;
    if (ps->nslots >= REGO_MAX_VARS)
        return rp_errat(ps, it, -E2BIG, "more than %d variables in one rule", REGO_MAX_VARS);
    g.slot              = ps->nslots++;
    ps->pre             = xgrow(ps->pre, &ps->pre_cap, ps->npre + 1, sizeof(*ps->pre));
    ps->pre[ps->npre++] = g;
    kids[0]             = node_new(ps, N_VAR, it);
    kids[0]->slot       = g.slot;
    return 0;
}

/* primary { .name | [expr] } */
static int parse_operand(struct parser* ps, struct rg_node** ret) {
    const struct rg_token* start = rp_cur(ps);
    int r                        = enter(ps, start);
    struct rg_node* kids[64];
    size_t k = 1;
    if (r < 0 || (r = parse_primary(ps, &kids[0])) < 0)
        return r;
    for (;;) {
        const struct rg_token* t = &ps->t[ps->i]; /* no newline before . or [ */
        if (k >= ARRAY_SIZE(kids))
            return rp_errat(ps, t, -E2BIG, "reference longer than %zu parts", ARRAY_SIZE(kids));
        if (t->type == TK_DOT) {
            ps->i++;
            const struct rg_token* f = &ps->t[ps->i];
            if (f->type != TK_IDENT)
                return rp_errat(ps, f, -EINVAL, "expected a name after `.`");
            ps->i++;
            json_t* key = json_stringn_nocheck(f->p, f->len);
            if (!key)
                abort();
            kids[k++] = const_new(ps, f, key);
        } else if (t->type == TK_LBRACK) {
            ps->i++;
            ps->nl_skip++;
            const struct rg_token* it = rp_cur(ps);
            if (!ps->head_mode && (rp_is_word(it, "_") || is_unbound_name(ps, ps->i)) &&
                ps->t[ps->i + 1].type == TK_RBRACK) {
                if ((r = add_generator(ps, start, it, kids, k)) < 0)
                    return r;
                k = 1;
                ps->i += 2;
                ps->nl_skip--;
                continue;
            }
            if ((r = rp_parse_expr(ps, &kids[k++])) < 0 ||
                (r = rp_expect(ps, TK_RBRACK, "`]`")) < 0)
                return r;
            ps->nl_skip--;
        } else if (t->type == TK_LPAREN) {
            return rp_errat(ps, t, -EINVAL, "functions are not supported");
        } else {
            break;
        }
    }
    ps->depth--;
    if (k == 1) {
        *ret = kids[0];
        return 0;
    }
    *ret = node_new(ps, N_REF, start);
    kids_set(ps, *ret, kids, k);
    return 0;
}

static int cmp_op(const struct rg_token* t, enum rg_cmp* ret) {
    static const struct {
        enum rg_tok tok;
        enum rg_cmp op;
    } ops[] = {{TK_EQ, CMP_EQ}, {TK_NE, CMP_NE}, {TK_LT, CMP_LT},
               {TK_LE, CMP_LE}, {TK_GT, CMP_GT}, {TK_GE, CMP_GE}};
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
        if (t->type == ops[i].tok) {
            *ret = ops[i].op;
            return 0;
        }
    return -1;
}

/* operand [ (== | != | < | <= | > | >= | in) operand ] */
int rp_parse_expr(struct parser* ps, struct rg_node** ret) {
    struct rg_node* l;
    int r = parse_operand(ps, &l);
    if (r < 0)
        return r;
    const struct rg_token* t = rp_cur(ps);
    enum rg_cmp op           = CMP_EQ;
    bool in                  = rp_is_word(t, "in");
    if (t->type == TK_OTHER && *t->p != '|') /* `|` ends a comprehension's term */
        return rp_errat(ps, t, -EINVAL, "operator `%.*s` is not supported", TOKQ(t));
    if (!in && cmp_op(t, &op) < 0) {
        *ret = l;
        return 0;
    }
    ps->i++;
    ps->nl_skip++;
    struct rg_node* kids[2] = {l, NULL};
    r                       = parse_operand(ps, &kids[1]);
    ps->nl_skip--;
    if (r < 0)
        return r;
    const struct rg_token* t2 = rp_cur(ps);
    enum rg_cmp op2;
    if (rp_is_word(t2, "in") || cmp_op(t2, &op2) == 0 || t2->type == TK_OTHER)
        return rp_errat(ps, t2, -EINVAL,
                        "chained operator `%.*s` is not supported; use parentheses", TOKQ(t2));
    *ret       = node_new(ps, in ? N_IN : N_CMP, t);
    (*ret)->op = op;
    kids_set(ps, *ret, kids, 2);
    return 0;
}

static int parse_body(struct parser* ps, struct rg_body** ret);

/* some x in e | some k, v in e | every x in e { … } | every k, v in e { … } */
static int parse_quantifier(struct parser* ps, struct rg_stmt* st, bool every) {
    const struct rg_token* kw = rp_next(ps);
    const struct rg_token* a  = rp_cur(ps);
    const struct rg_token* b  = NULL;
    if (a->type != TK_IDENT)
        return rp_errat(ps, a, -EINVAL, "expected a variable after `%.*s`", TOKQ(kw));
    ps->i++;
    if (rp_cur(ps)->type == TK_COMMA) {
        ps->i++;
        b = rp_cur(ps);
        if (b->type != TK_IDENT)
            return rp_errat(ps, b, -EINVAL, "expected a variable after `,`");
        ps->i++;
    }
    if (!rp_is_word(rp_cur(ps), "in"))
        return rp_errat(ps, kw, -EINVAL, "`%.*s` without `in` is not supported; use `%.*s x in …`",
                        TOKQ(kw), TOKQ(kw));
    ps->i++;
    bool saved_gen = ps->gen_ok;
    ps->gen_ok     = ps->gen_ok && !every;
    int r          = rp_parse_expr(ps, &st->expr);
    ps->gen_ok     = saved_gen;
    if (r < 0)
        return r;
    st->kind     = every ? S_EVERY : S_SOME_IN;
    st->key_slot = -1;
    size_t saved = ps->nscope;
    if (b && (r = declare(ps, a, &st->key_slot)) < 0)
        return r;
    if ((r = declare(ps, b ? b : a, &st->slot)) < 0)
        return r;
    if (every) {
        if (rp_cur(ps)->type != TK_LBRACE)
            return rp_errat(ps, rp_cur(ps), -EINVAL, "expected `{` after `every … in …`");
        if ((r = parse_body(ps, &st->body)) < 0)
            return r;
        ps->nscope = saved; /* the body's names (and x) do not leak out of every */
    }
    return 0;
}

static bool is_unbound_name(const struct parser* ps, size_t i) {
    const struct rg_token* t = &ps->t[i];
    return t->type == TK_IDENT && !rp_is_keyword(t) && !rp_is_word(t, "input") &&
           !rp_is_word(t, "data") && !rp_is_word(t, "_") && rp_find_local(ps, t) < 0 &&
           rp_find_rule(ps, t) < 0 && !is_call(ps, i);
}

static bool ends_stmt(const struct rg_token* t) {
    return t->type == TK_NEWLINE || t->type == TK_SEMI || t->type == TK_RBRACE ||
           t->type == TK_RBRACK || t->type == TK_EOF;
}

/* `[a, b] := e` and the like: a `:=` at the top level of a statement not led by a name. */
static const struct rg_token* find_destructuring(const struct parser* ps) {
    int depth = 0;
    for (size_t i = ps->i; ps->t[i].type != TK_EOF; i++) {
        enum rg_tok t = ps->t[i].type;
        if (t == TK_LBRACE || t == TK_LBRACK || t == TK_LPAREN)
            depth++;
        else if (t == TK_RBRACE || t == TK_RBRACK || t == TK_RPAREN)
            depth--;
        if (depth < 0 || (depth == 0 && (t == TK_NEWLINE || t == TK_SEMI)))
            return NULL;
        if (depth == 0 && t == TK_ASSIGN)
            return &ps->t[i];
    }
    return NULL;
}

static int parse_stmt_inner(struct parser* ps, struct rg_stmt* st) {
    const struct rg_token* t = rp_cur(ps);
    int r;
    if (t->type != TK_IDENT && find_destructuring(ps))
        return rp_errat(ps, find_destructuring(ps), -EINVAL,
                        "only a variable can be assigned with `:=`");
    st->line = t->line;
    st->col  = t->col;
    if (rp_is_word(t, "some") || rp_is_word(t, "every")) {
        r = parse_quantifier(ps, st, rp_is_word(t, "every"));
    } else if (rp_is_word(t, "not")) {
        ps->i++;
        st->kind   = S_NOT;
        ps->gen_ok = false;
        r          = rp_parse_expr(ps, &st->expr);
    } else if (t->type == TK_IDENT &&
               (ps->t[ps->i + 1].type == TK_ASSIGN ||
                (ps->t[ps->i + 1].type == TK_UNIFY && is_unbound_name(ps, ps->i)))) {
        ps->i += 2;
        st->kind = S_ASSIGN;
        r        = rp_parse_expr(ps, &st->expr);
        if (r == 0) /* declared after the value: `x := x` refers to an outer x, not itself */
            r = declare(ps, t, &st->slot);
    } else {
        st->kind                 = S_EXPR;
        r                        = rp_parse_expr(ps, &st->expr);
        const struct rg_token* u = rp_cur(ps);
        if (r == 0 && u->type == TK_ASSIGN)
            return rp_errat(ps, u, -EINVAL, "only a variable can be assigned with `:=`");
        if (r == 0 && u->type == TK_UNIFY) {
            ps->i++;
            const struct rg_token* v = rp_cur(ps);
            if (is_unbound_name(ps, ps->i) && ends_stmt(&ps->t[ps->i + 1])) {
                /* e = x with x new: assignment */
                ps->i++;
                st->kind = S_ASSIGN;
                return declare(ps, v, &st->slot);
            }
            struct rg_node* kids[2] = {st->expr, NULL};
            ps->nl_skip++;
            r = parse_operand(ps, &kids[1]);
            ps->nl_skip--;
            if (r < 0)
                return r;
            st->expr = node_new(ps, N_CMP, u);
            kids_set(ps, st->expr, kids, 2);
        }
    }
    if (r < 0)
        return r;
    if (rp_is_word(rp_cur(ps), "with"))
        return rp_errat(ps, rp_cur(ps), -EINVAL, "`with` is not supported");
    if (!ends_stmt(rp_cur(ps)))
        return rp_errat(ps, rp_cur(ps), -EINVAL, "unexpected `%.*s` after a statement",
                        TOKQ(rp_cur(ps)));
    return 0;
}

static int parse_stmt(struct parser* ps, struct rg_stmt* st) {
    bool saved = ps->gen_ok;
    ps->gen_ok = true;
    int r      = parse_stmt_inner(ps, st);
    ps->gen_ok = saved;
    return r;
}

/* One statement appended to a body, after the generators its references need. */
static int parse_stmt_into(struct parser* ps, struct rg_stmt** v, size_t* n, size_t* cap) {
    struct rg_stmt* saved = ps->pre;
    size_t saved_n = ps->npre, saved_cap = ps->pre_cap;
    ps->pre  = NULL;
    ps->npre = ps->pre_cap   = 0;
    struct rg_stmt st        = {0};
    const struct rg_token* t = rp_cur(ps);
    int r                    = parse_stmt(ps, &st);
    if (r == 0 && *n + ps->npre + 1 > REGO_MAX_STMTS)
        r = rp_errat(ps, t, -E2BIG, "body with more than %d statements", REGO_MAX_STMTS);
    if (r == 0) {
        *v = xgrow(*v, cap, *n + ps->npre + 1, sizeof(**v));
        for (size_t i = 0; i < ps->npre; i++)
            (*v)[(*n)++] = ps->pre[i];
        (*v)[(*n)++] = st;
    }
    free(ps->pre);
    ps->pre     = saved;
    ps->npre    = saved_n;
    ps->pre_cap = saved_cap;
    return r;
}

/* { stmt (; | newline) ... } */
static int parse_body(struct parser* ps, struct rg_body** ret) {
    const struct rg_token* open = rp_cur(ps);
    int r                       = enter(ps, open);
    if (r < 0)
        return r;
    int saved_nl = ps->nl_skip;
    ps->nl_skip  = 0;
    ps->i++;
    _cleanup_free_ struct rg_stmt* stmts = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        while (ps->t[ps->i].type == TK_NEWLINE || ps->t[ps->i].type == TK_SEMI)
            ps->i++;
        const struct rg_token* t = &ps->t[ps->i];
        if (t->type == TK_RBRACE)
            break;
        if (t->type == TK_EOF)
            return rp_errat(ps, open, -EINVAL, "unterminated body: missing `}`");
        if ((r = parse_stmt_into(ps, &stmts, &n, &cap)) < 0)
            return r;
    }
    if (n == 0)
        return rp_errat(ps, open, -EINVAL, "found empty body");
    ps->i++;
    ps->nl_skip       = saved_nl;
    struct rg_body* b = rp_palloc(ps->p, sizeof(*b));
    b->stmts          = rp_palloc(ps->p, n * sizeof(*b->stmts));
    memcpy(b->stmts, stmts, n * sizeof(*b->stmts));
    b->n = n;
    ps->depth--;
    *ret = b;
    return 0;
}

static struct rg_body* body_new(struct parser* ps, const struct rg_stmt* stmts, size_t n) {
    struct rg_body* b = rp_palloc(ps->p, sizeof(*b));
    b->stmts          = rp_palloc(ps->p, n * sizeof(*b->stmts));
    memcpy(b->stmts, stmts, n * sizeof(*b->stmts));
    b->n = n;
    return b;
}

/* `if stmt` (a one-statement body) or `if { … }` or `{ … }`. */
int rp_parse_rule_body(struct parser* ps, struct rg_body** ret) {
    if (rp_is_word(rp_cur(ps), "if")) {
        ps->i++;
        if (rp_cur(ps)->type != TK_LBRACE) {
            _cleanup_free_ struct rg_stmt* stmts = NULL;
            size_t n = 0, cap = 0;
            int r = parse_stmt_into(ps, &stmts, &n, &cap);
            if (r == 0)
                *ret = body_new(ps, stmts, n);
            return r;
        }
    }
    return parse_body(ps, ret);
}
