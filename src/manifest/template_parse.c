/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template expressions: a recursive-descent parser with Jinja2's precedence (conditional
 * expression, or, and, not, comparisons, ~, + -, * / // %, **, unary minus, filters and tests,
 * attribute/subscript/call postfixes, literals).
 */
#include <string.h>

#include "template_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* Expression parser                                                                          */

struct tparser {
    struct teval* ev;
    const char* s;
    size_t len, pos;
    uint32_t line;
    int depth; /* nesting of parse_expr: bounded so hostile templates cannot exhaust the stack */
};

#define MAX_EXPR_DEPTH 64

void tparse_skip_ws(const char* src, size_t len, size_t* pos) {
    while (*pos < len &&
           (src[*pos] == ' ' || src[*pos] == '\t' || src[*pos] == '\n' || src[*pos] == '\r'))
        (*pos)++;
}

static bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c) {
    return is_name_start(c) || (c >= '0' && c <= '9');
}

bool tparse_peek_word(const char* src, size_t len, size_t* pos, const char* word) {
    tparse_skip_ws(src, len, pos);
    size_t n = strlen(word);
    return len - *pos >= n && memcmp(src + *pos, word, n) == 0 &&
           (*pos + n == len || !is_name_char(src[*pos + n]));
}

const char* tparse_name(struct teval* ev, const char* src, size_t len, size_t* pos) {
    tparse_skip_ws(src, len, pos);
    if (*pos >= len || !is_name_start(src[*pos]))
        return NULL;
    size_t start = *pos;
    while (*pos < len && is_name_char(src[*pos]))
        (*pos)++;
    return arena_strndup(ev->arena, src + start, *pos - start);
}

static void ws(struct tparser* p) {
    tparse_skip_ws(p->s, p->len, &p->pos);
}

static bool eat(struct tparser* p, const char* tok) {
    ws(p);
    size_t n = strlen(tok);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, tok, n) != 0)
        return false;
    /* do not split "==" into "=" or "//" into "/" */
    if (n == 1 && p->pos + 1 < p->len &&
        ((tok[0] == '/' && p->s[p->pos + 1] == '/') || (tok[0] == '*' && p->s[p->pos + 1] == '*') ||
         ((tok[0] == '<' || tok[0] == '>' || tok[0] == '=' || tok[0] == '!') &&
          p->s[p->pos + 1] == '=')))
        return false;
    p->pos += n;
    return true;
}

static bool eat_word(struct tparser* p, const char* word) {
    if (!tparse_peek_word(p->s, p->len, &p->pos, word))
        return false;
    p->pos += strlen(word);
    return true;
}

static struct expr* new_expr(struct tparser* p, enum ex_kind kind) {
    struct expr* e = arena_alloc(p->ev->arena, sizeof(*e));
    e->kind        = kind;
    e->line        = p->line;
    return e;
}

static int perr(struct tparser* p, const char* what) {
    ws(p);
    p->ev->line = p->line;
    if (p->pos >= p->len)
        return teval_fail(p->ev, "unexpected end of expression, expected %s", what);
    return teval_fail(p->ev, "unexpected '%.*s' in expression, expected %s",
                      (int)(p->len - p->pos > 10 ? 10 : p->len - p->pos), p->s + p->pos, what);
}

static int parse_expr(struct tparser* p, struct expr** ret);
static int parse_or(struct tparser* p, struct expr** ret);

struct arglist {
    struct expr** items;
    const char** kwnames;
    size_t n, npos, cap;
};

static void arglist_push(struct tparser* p, struct arglist* l, struct expr* e, const char* kw) {
    if (l->n == l->cap) {
        size_t cap       = l->cap ? l->cap * 2 : 4;
        struct expr** ni = arena_alloc(p->ev->arena, cap * sizeof(*ni));
        const char** nk  = arena_alloc(p->ev->arena, cap * sizeof(*nk));
        if (l->n) {
            memcpy(ni, l->items, l->n * sizeof(*ni));
            memcpy(nk, l->kwnames, l->n * sizeof(*nk));
        }
        l->items   = ni;
        l->kwnames = nk;
        l->cap     = cap;
    }
    l->kwnames[l->n] = kw;
    l->items[l->n++] = e;
    if (!kw)
        l->npos = l->n;
}

/* Comma-separated items up to `close`. With `call`, name=value keyword arguments. */
static int parse_items(struct tparser* p, const char* close, bool call, bool dict,
                       struct arglist* l) {
    while (!eat(p, close)) {
        if (l->n) {
            if (!eat(p, ","))
                return perr(p, close);
            if (eat(p, close))
                break;
        }
        const char* kw = NULL;
        if (call) {
            size_t save    = p->pos;
            const char* nm = tparse_name(p->ev, p->s, p->len, &p->pos);
            if (nm && eat(p, "="))
                kw = nm;
            else
                p->pos = save;
            if (!kw && l->n > l->npos)
                return teval_fail(p->ev, "positional argument follows keyword argument");
        }
        struct expr* e;
        if (parse_expr(p, &e) < 0)
            return -EINVAL;
        arglist_push(p, l, e, kw);
        if (dict) {
            if (!eat(p, ":"))
                return perr(p, "':' in dict literal");
            if (parse_expr(p, &e) < 0)
                return -EINVAL;
            arglist_push(p, l, e, NULL);
        }
    }
    return 0;
}

static void set_args(struct expr* e, const struct arglist* l) {
    e->args    = l->items;
    e->kwnames = l->kwnames;
    e->nargs   = l->n;
    e->npos    = l->npos;
}

static int parse_string_lit(struct tparser* p, struct strbuf* sb) {
    char q = p->s[p->pos++];
    while (p->pos < p->len && p->s[p->pos] != q) {
        char c = p->s[p->pos++];
        if (c == '\\' && p->pos < p->len) {
            char e = p->s[p->pos++];
            switch (e) {
                case 'n':
                    c = '\n';
                    break;
                case 't':
                    c = '\t';
                    break;
                case 'r':
                    c = '\r';
                    break;
                case '0':
                    c = '\0';
                    break;
                case '\\':
                case '\'':
                case '"':
                    c = e;
                    break;
                default:
                    strbuf_putc(sb, '\\');
                    c = e;
            }
        }
        strbuf_putc(sb, c);
    }
    if (p->pos >= p->len)
        return teval_fail(p->ev, "unterminated string literal");
    p->pos++;
    return 0;
}

static int parse_primary(struct tparser* p, struct expr** ret) {
    ws(p);
    if (p->pos >= p->len)
        return perr(p, "a value");
    char c         = p->s[p->pos];
    struct expr* e = new_expr(p, EX_LIT);
    if (c == '\'' || c == '"') {
        struct strbuf sb = STRBUF_INIT;
        do {
            if (parse_string_lit(p, &sb) < 0) {
                strbuf_free(&sb);
                return -EINVAL;
            }
            ws(p);
        } while (p->pos < p->len && (p->s[p->pos] == '\'' || p->s[p->pos] == '"'));
        e->lit = tv_str(p->ev, sb.buf ? sb.buf : "", sb.len);
        strbuf_free(&sb);
    } else if (c >= '0' && c <= '9') {
        size_t start  = p->pos;
        bool is_float = false;
        while (p->pos < p->len &&
               ((p->s[p->pos] >= '0' && p->s[p->pos] <= '9') || p->s[p->pos] == '_' ||
                p->s[p->pos] == '.' || p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
            if (p->s[p->pos] == '.' &&
                !(p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9'))
                break;
            is_float |= p->s[p->pos] == '.' || p->s[p->pos] == 'e' || p->s[p->pos] == 'E';
            p->pos++;
        }
        char buf[64];
        size_t n = 0;
        for (size_t i = start; i < p->pos && n + 1 < sizeof(buf); i++)
            if (p->s[i] != '_')
                buf[n++] = p->s[i];
        buf[n] = '\0';
        if (is_float) {
            e->lit = tv_float(p->ev, strtod(buf, NULL));
        } else {
            int64_t v;
            if (parse_i64(buf, 10, &v) < 0)
                return teval_fail(p->ev, "invalid integer literal '%s'", buf);
            e->lit = tv_int(p->ev, v);
        }
    } else if (is_name_start(c)) {
        const char* name = tparse_name(p->ev, p->s, p->len, &p->pos);
        if (!strcmp(name, "true") || !strcmp(name, "True"))
            e->lit = tv_bool(true);
        else if (!strcmp(name, "false") || !strcmp(name, "False"))
            e->lit = tv_bool(false);
        else if (!strcmp(name, "none") || !strcmp(name, "None"))
            e->lit = tv_none();
        else {
            e->kind = EX_NAME;
            e->name = name;
        }
    } else if (eat(p, "(")) {
        struct expr* inner;
        if (eat(p, ")")) {
            e->kind = EX_TUPLE;
        } else {
            if (parse_expr(p, &inner) < 0)
                return -EINVAL;
            if (eat(p, ")")) {
                *ret = inner;
                return 0;
            }
            struct arglist l = {0};
            arglist_push(p, &l, inner, NULL);
            if (!eat(p, ","))
                return perr(p, "')'");
            if (parse_items(p, ")", false, false, &l) < 0)
                return -EINVAL;
            e->kind = EX_TUPLE;
            set_args(e, &l);
        }
    } else if (eat(p, "[")) {
        struct arglist l = {0};
        if (parse_items(p, "]", false, false, &l) < 0)
            return -EINVAL;
        e->kind = EX_LIST;
        set_args(e, &l);
    } else if (eat(p, "{")) {
        struct arglist l = {0};
        if (parse_items(p, "}", false, true, &l) < 0)
            return -EINVAL;
        e->kind = EX_DICT;
        set_args(e, &l);
    } else {
        return perr(p, "a value");
    }
    *ret = e;
    return 0;
}

static int parse_postfix(struct tparser* p, struct expr** ret) {
    struct expr* e = NULL;
    if (parse_primary(p, &e) < 0)
        return -EINVAL;
    for (;;) {
        if (eat(p, ".")) {
            struct expr* a = new_expr(p, EX_ATTR);
            ws(p);
            if (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
                /* foo.0 is foo[0] */
                size_t start = p->pos;
                while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
                    p->pos++;
                a->kind          = EX_ITEM;
                struct expr* idx = new_expr(p, EX_LIT);
                int64_t i        = 0;
                char buf[24];
                snprintf(buf, sizeof(buf), "%.*s", (int)(p->pos - start), p->s + start);
                if (parse_i64(buf, 10, &i) < 0)
                    return teval_fail(p->ev, "invalid index '%s'", buf);
                idx->lit = tv_int(p->ev, i);
                a->b     = idx;
            } else {
                a->name = tparse_name(p->ev, p->s, p->len, &p->pos);
                if (!a->name)
                    return perr(p, "an attribute name after '.'");
            }
            a->a = e;
            e    = a;
        } else if (eat(p, "[")) {
            struct expr* a = new_expr(p, EX_ITEM);
            a->a           = e;
            if (parse_expr(p, &a->b) < 0)
                return -EINVAL;
            if (!eat(p, "]"))
                return perr(p, "']'");
            e = a;
        } else if (eat(p, "(")) {
            struct expr* a   = new_expr(p, EX_CALL);
            a->a             = e;
            struct arglist l = {0};
            if (parse_items(p, ")", true, false, &l) < 0)
                return -EINVAL;
            set_args(a, &l);
            e = a;
        } else {
            *ret = e;
            return 0;
        }
    }
}

/* Jinja's parse_filter_expr: `| filter(args)` and `is [not] test(args)`, after unary minus. */
static int parse_filters(struct tparser* p, struct expr* e, struct expr** ret) {
    for (;;) {
        if (eat(p, "|")) {
            struct expr* a = new_expr(p, EX_FILTER);
            a->a           = e;
            a->name        = tparse_name(p->ev, p->s, p->len, &p->pos);
            if (!a->name)
                return perr(p, "a filter name after '|'");
            if (eat(p, "(")) {
                struct arglist l = {0};
                if (parse_items(p, ")", true, false, &l) < 0)
                    return -EINVAL;
                set_args(a, &l);
            }
            e = a;
        } else if (eat_word(p, "is")) {
            struct expr* a = new_expr(p, EX_TEST);
            a->a           = e;
            a->negate      = eat_word(p, "not");
            a->name        = tparse_name(p->ev, p->s, p->len, &p->pos);
            if (!a->name)
                return perr(p, "a test name after 'is'");
            if (eat(p, "(")) {
                struct arglist l = {0};
                if (parse_items(p, ")", true, false, &l) < 0)
                    return -EINVAL;
                set_args(a, &l);
            }
            e = a;
        } else {
            *ret = e;
            return 0;
        }
    }
}

static int parse_unary_f(struct tparser* p, bool with_filter, struct expr** ret) {
    struct expr* e = NULL;
    if (eat(p, "-") || eat(p, "+")) {
        e = new_expr(p, p->s[p->pos - 1] == '-' ? EX_NEG : EX_POS);
        if (parse_unary_f(p, false, &e->a) < 0)
            return -EINVAL;
    } else if (parse_postfix(p, &e) < 0) {
        return -EINVAL;
    }
    if (!with_filter) {
        *ret = e;
        return 0;
    }
    return parse_filters(p, e, ret);
}

static int parse_unary(struct tparser* p, struct expr** ret) {
    return parse_unary_f(p, true, ret);
}

static struct expr* binary(struct tparser* p, enum ex_op op, struct expr* a, struct expr* b) {
    struct expr* e = new_expr(p, EX_BINARY);
    e->op          = op;
    e->a           = a;
    e->b           = b;
    return e;
}

static int parse_pow(struct tparser* p, struct expr** ret) {
    if (parse_unary(p, ret) < 0)
        return -EINVAL;
    while (eat(p, "**")) {
        struct expr* b;
        if (parse_unary(p, &b) < 0)
            return -EINVAL;
        *ret = binary(p, OP_POW, *ret, b);
    }
    return 0;
}

static int parse_mul(struct tparser* p, struct expr** ret) {
    if (parse_pow(p, ret) < 0)
        return -EINVAL;
    for (;;) {
        enum ex_op op;
        if (eat(p, "//"))
            op = OP_FLOORDIV;
        else if (eat(p, "/"))
            op = OP_DIV;
        else if (eat(p, "*"))
            op = OP_MUL;
        else if (eat(p, "%"))
            op = OP_MOD;
        else
            return 0;
        struct expr* b;
        if (parse_pow(p, &b) < 0)
            return -EINVAL;
        *ret = binary(p, op, *ret, b);
    }
}

static int parse_add(struct tparser* p, struct expr** ret) {
    if (parse_mul(p, ret) < 0)
        return -EINVAL;
    for (;;) {
        enum ex_op op;
        if (eat(p, "+"))
            op = OP_ADD;
        else if (eat(p, "-"))
            op = OP_SUB;
        else
            return 0;
        struct expr* b;
        if (parse_mul(p, &b) < 0)
            return -EINVAL;
        *ret = binary(p, op, *ret, b);
    }
}

static int parse_concat(struct tparser* p, struct expr** ret) {
    if (parse_add(p, ret) < 0)
        return -EINVAL;
    while (eat(p, "~")) {
        struct expr* b;
        if (parse_add(p, &b) < 0)
            return -EINVAL;
        *ret = binary(p, OP_CONCAT, *ret, b);
    }
    return 0;
}

static int parse_compare(struct tparser* p, struct expr** ret) {
    if (parse_concat(p, ret) < 0)
        return -EINVAL;
    for (;;) {
        enum ex_op op;
        size_t save = p->pos;
        if (eat(p, "=="))
            op = OP_EQ;
        else if (eat(p, "!="))
            op = OP_NE;
        else if (eat(p, "<="))
            op = OP_LE;
        else if (eat(p, ">="))
            op = OP_GE;
        else if (eat(p, "<"))
            op = OP_LT;
        else if (eat(p, ">"))
            op = OP_GT;
        else if (eat_word(p, "in"))
            op = OP_IN;
        else if (eat_word(p, "not") && eat_word(p, "in"))
            op = OP_NOT_IN;
        else {
            p->pos = save;
            return 0;
        }
        struct expr* b;
        if (parse_concat(p, &b) < 0)
            return -EINVAL;
        *ret = binary(p, op, *ret, b);
    }
}

static int parse_not(struct tparser* p, struct expr** ret) {
    if (eat_word(p, "not")) {
        struct expr* e = new_expr(p, EX_NOT);
        if (parse_not(p, &e->a) < 0)
            return -EINVAL;
        *ret = e;
        return 0;
    }
    return parse_compare(p, ret);
}

static int parse_and(struct tparser* p, struct expr** ret) {
    if (parse_not(p, ret) < 0)
        return -EINVAL;
    while (eat_word(p, "and")) {
        struct expr* e = new_expr(p, EX_AND);
        e->a           = *ret;
        if (parse_not(p, &e->b) < 0)
            return -EINVAL;
        *ret = e;
    }
    return 0;
}

static int parse_or(struct tparser* p, struct expr** ret) {
    if (parse_and(p, ret) < 0)
        return -EINVAL;
    while (eat_word(p, "or")) {
        struct expr* e = new_expr(p, EX_OR);
        e->a           = *ret;
        if (parse_and(p, &e->b) < 0)
            return -EINVAL;
        *ret = e;
    }
    return 0;
}

static int parse_expr_inner(struct tparser* p, struct expr** ret);

static int parse_expr(struct tparser* p, struct expr** ret) {
    if (++p->depth > MAX_EXPR_DEPTH) {
        p->ev->line = p->line;
        return teval_fail(p->ev, "expression nested too deeply (more than %d levels)",
                          MAX_EXPR_DEPTH);
    }
    int r = parse_expr_inner(p, ret);
    p->depth--;
    return r;
}

static int parse_expr_inner(struct tparser* p, struct expr** ret) {
    if (parse_or(p, ret) < 0)
        return -EINVAL;
    if (eat_word(p, "if")) {
        struct expr* e = new_expr(p, EX_COND);
        e->a           = *ret;
        if (parse_or(p, &e->b) < 0)
            return -EINVAL;
        if (eat_word(p, "else") && parse_expr(p, &e->c) < 0)
            return -EINVAL;
        *ret = e;
    }
    return 0;
}

int tparse_expr(struct teval* ev, const char* src, size_t len, size_t* pos, uint32_t line,
                struct expr** ret) {
    struct tparser p = {.ev = ev, .s = src, .len = len, .pos = *pos, .line = line};
    ev->line         = line;
    if (parse_expr(&p, ret) < 0)
        return -EINVAL;
    *pos = p.pos;
    return 0;
}
