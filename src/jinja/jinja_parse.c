/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template expressions: a recursive-descent parser following jinja2/parser.py (3.1): conditional
 * expression, or, and, not, comparison chains, + -, ~, * / // %, **, unary minus, filters and
 * tests, attribute/subscript/slice/call postfixes, literals (jinja2/lexer.py's number and string
 * rules).
 */
#include <string.h>

#include "jinja_impl.h"

struct tparser {
    struct teval* ev;
    const char* s;
    size_t len, pos;
    uint32_t line;
    int depth; /* recursion: bounded so hostile templates cannot exhaust the stack */
};

#define MAX_EXPR_DEPTH 64

void tparse_skip_ws(const char* src, size_t len, size_t* pos) {
    while (*pos < len && py_isspace(src[*pos]))
        (*pos)++;
}

static bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static bool is_name_char(char c) {
    return is_name_start(c) || is_digit(c);
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

static bool peek(struct tparser* p, char c) {
    ws(p);
    return p->pos < p->len && p->s[p->pos] == c;
}

/* Consumes an operator token; a one-character token never matches the start of a longer one
 * ("=" in "==", "/" in "//", "*" in "**", "<" in "<="). */
static bool eat(struct tparser* p, const char* tok) {
    ws(p);
    size_t n = strlen(tok);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, tok, n) != 0)
        return false;
    if (n == 1 && p->pos + 1 < p->len) {
        char next = p->s[p->pos + 1];
        if ((tok[0] == '/' && next == '/') || (tok[0] == '*' && next == '*') ||
            (strchr("<>=!", tok[0]) && next == '='))
            return false;
    }
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

static int unknown_name(struct tparser* p, const char* what, const char* name) {
    p->ev->line = p->line;
    return teval_fail(p->ev, "no %s named '%s'", what, name);
}

static int enter(struct tparser* p) {
    if (++p->depth > MAX_EXPR_DEPTH) {
        p->ev->line = p->line;
        return teval_fail(p->ev, "expression nested too deeply (more than %d levels)",
                          MAX_EXPR_DEPTH);
    }
    return 0;
}

static int parse_expr(struct tparser* p, bool with_cond, struct expr** ret);
static int parse_tuple(struct tparser* p, bool with_cond, bool explicit_parens, struct expr** ret);
static int parse_postfix(struct tparser* p, struct expr* e, struct expr** ret);

/* ---------------------------------------------------------------------------------------- */
/* Argument and item lists                                                                    */

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

static void set_args(struct expr* e, const struct arglist* l) {
    e->args    = l->items;
    e->kwnames = l->kwnames;
    e->nargs   = l->n;
    e->npos    = l->npos;
}

/* Comma-separated items up to `close` (a trailing comma is allowed). `call`: name=value keyword
 * arguments; `dict`: key: value pairs. */
static int parse_items(struct tparser* p, char close, bool call, bool dict, struct arglist* l) {
    const char close_s[2] = {close, '\0'};
    for (bool first = true; !eat(p, close_s); first = false) {
        if (!first && !eat(p, ","))
            return perr(p, close == ')'   ? "',' or ')'"
                           : close == ']' ? "',' or ']'"
                                          : "',' or '}'");
        if (eat(p, close_s))
            break;
        const char* kw = NULL;
        if (call) {
            if (peek(p, '*'))
                return perr(p, "an argument (*args and **kwargs are not supported)");
            size_t save    = p->pos;
            const char* nm = tparse_name(p->ev, p->s, p->len, &p->pos);
            if (nm && eat(p, "="))
                kw = nm;
            else
                p->pos = save;
            if (!kw && l->n > l->npos) {
                p->ev->line = p->line;
                return teval_fail(p->ev, "positional argument follows keyword argument");
            }
        }
        struct expr* e;
        if (parse_expr(p, true, &e) < 0)
            return -EINVAL;
        arglist_push(p, l, e, kw);
        if (dict) {
            if (!eat(p, ":"))
                return perr(p, "':' in a dict literal");
            if (parse_expr(p, true, &e) < 0)
                return -EINVAL;
            arglist_push(p, l, e, NULL);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Literals                                                                                   */

/* One escape after a backslash, as Python's "unicode-escape" codec decodes it (Jinja decodes
 * string literals with it). */
static int parse_escape(struct tparser* p, struct strbuf* sb) {
    char e                         = p->s[p->pos++];
    static const char simple_in[]  = "\\'\"abfnrtv";
    static const char simple_out[] = "\\'\"\a\b\f\n\r\t\v";
    const char* hit                = strchr(simple_in, e);
    if (e && hit) {
        strbuf_putc(sb, simple_out[hit - simple_in]);
        return 0;
    }
    if (e == '\n')
        return 0; /* line continuation */
    if (e >= '0' && e <= '7') {
        uint32_t cp = (uint32_t)(e - '0');
        for (int i = 0; i < 2 && p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '7'; i++)
            cp = cp * 8 + (uint32_t)(p->s[p->pos++] - '0');
        strbuf_put_utf8(sb, cp);
        return 0;
    }
    int ndigits = e == 'x' ? 2 : e == 'u' ? 4 : e == 'U' ? 8 : 0;
    if (!ndigits) {
        if (e == 'N')
            return teval_fail(p->ev, "\\N{...} escapes are not supported");
        strbuf_putc(sb, '\\');
        strbuf_putc(sb, e);
        return 0;
    }
    uint32_t cp = 0;
    for (int i = 0; i < ndigits; i++) {
        char c = p->pos < p->len ? p->s[p->pos] : '\0';
        int d  = is_digit(c)                              ? c - '0'
                 : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                          : -1;
        if (d < 0)
            return teval_fail(p->ev, "truncated \\%c escape in a string literal", e);
        cp = cp * 16 + (uint32_t)d;
        p->pos++;
    }
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return teval_fail(p->ev, "invalid \\%c escape in a string literal", e);
    strbuf_put_utf8(sb, cp);
    return 0;
}

static int parse_string_lit(struct tparser* p, struct strbuf* sb) {
    char q = p->s[p->pos++];
    while (p->pos < p->len && p->s[p->pos] != q) {
        char c = p->s[p->pos++];
        if (c == '\\' && p->pos < p->len) {
            if (parse_escape(p, sb) < 0)
                return -EINVAL;
            continue;
        }
        if (c == '\r') { /* Jinja normalises newlines in literals too */
            if (p->pos < p->len && p->s[p->pos] == '\n')
                p->pos++;
            c = '\n';
        }
        strbuf_putc(sb, c);
        if (sb->len > MAX_STR_SIZE)
            return tv_check_size(p->ev, sb->len);
    }
    if (p->pos >= p->len)
        return teval_fail(p->ev, "unterminated string literal");
    p->pos++;
    return 0;
}

/* (\d+_)*\d+ from pos; returns the end (== pos when there is no digit). */
static size_t scan_digits(const struct tparser* p, size_t pos) {
    size_t i = pos;
    while (i < p->len && is_digit(p->s[i])) {
        i++;
        if (i + 1 < p->len && p->s[i] == '_' && is_digit(p->s[i + 1]))
            i++;
    }
    return i;
}

static bool digit_ok(char c, int radix) {
    int d = is_digit(c)                              ? c - '0'
            : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                     : 99;
    return d < radix;
}

/* jinja2/lexer.py float_re and integer_re. */
static int parse_number(struct tparser* p, struct expr* e) {
    size_t start = p->pos, end = start;
    bool is_float = false;
    if (!(start > 0 && p->s[start - 1] == '.')) { /* float_re's (?<!\.) */
        size_t i = scan_digits(p, start), f = i;
        if (i < p->len && p->s[i] == '.' && scan_digits(p, i + 1) > i + 1)
            f = scan_digits(p, i + 1);
        if (f < p->len && (p->s[f] | 0x20) == 'e') {
            size_t x = f + 1 + (f + 1 < p->len && (p->s[f + 1] == '+' || p->s[f + 1] == '-'));
            size_t y = scan_digits(p, x);
            if (y > x) {
                end      = y;
                is_float = true;
            }
        }
        if (!is_float && f > i) {
            end      = f;
            is_float = true;
        }
    }
    if (!is_float) {
        char c0    = p->s[start];
        char pfx   = start + 1 < p->len ? (char)(p->s[start + 1] | 0x20) : 0;
        int radix  = c0 != '0' ? 10 : pfx == 'x' ? 16 : pfx == 'o' ? 8 : pfx == 'b' ? 2 : 0;
        size_t i   = start + (radix == 10 || radix == 0 ? 1 : 2);
        end        = start + 1;
        int digits = radix ? radix : 1; /* 0(_?0)*: only zeros */
        for (;;) {
            size_t skip = i < p->len && p->s[i] == '_' ? 1 : 0;
            if (i + skip >= p->len || !digit_ok(p->s[i + skip], digits))
                break;
            i += skip + 1;
            end = i;
        }
        if (radix && radix != 10 && end == start + 1)
            end = start + 1; /* "0x" without digits: the integer 0, then a name */
    }
    p->pos = end;
    if (is_float) {
        double d;
        if (!py_parse_float(p->s + start, end - start, &d))
            return teval_fail(p->ev, "invalid number '%.*s'", (int)(end - start), p->s + start);
        e->lit = tv_float(p->ev, d);
        return 0;
    }
    int64_t v;
    if (!py_parse_int(p->s + start, end - start, 0, &v))
        return teval_fail(p->ev, "integer literal '%.*s' out of range (moat's integers are 64-bit)",
                          (int)(end - start), p->s + start);
    e->lit = tv_int(p->ev, v);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Expressions                                                                                */

static int parse_primary(struct tparser* p, struct expr** ret) {
    ws(p);
    if (p->pos >= p->len)
        return perr(p, "a value");
    char c         = p->s[p->pos];
    struct expr* e = new_expr(p, EX_LIT);
    if (c == '\'' || c == '"') {
        struct strbuf sb = STRBUF_INIT;
        do { /* adjacent literals concatenate */
            if (parse_string_lit(p, &sb) < 0) {
                strbuf_free(&sb);
                return -EINVAL;
            }
            ws(p);
        } while (p->pos < p->len && (p->s[p->pos] == '\'' || p->s[p->pos] == '"'));
        e->lit = tv_str(p->ev, sb.buf ? sb.buf : "", sb.len);
        strbuf_free(&sb);
    } else if (is_digit(c)) {
        if (parse_number(p, e) < 0)
            return -EINVAL;
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
        if (parse_tuple(p, true, true, &e) < 0)
            return -EINVAL;
        if (!eat(p, ")"))
            return perr(p, "')'");
    } else if (eat(p, "[")) {
        struct arglist l = {0};
        if (parse_items(p, ']', false, false, &l) < 0)
            return -EINVAL;
        e->kind = EX_LIST;
        set_args(e, &l);
    } else if (eat(p, "{")) {
        struct arglist l = {0};
        if (parse_items(p, '}', false, true, &l) < 0)
            return -EINVAL;
        e->kind = EX_DICT;
        set_args(e, &l);
    } else {
        return perr(p, "a value");
    }
    *ret = e;
    return 0;
}

/* Jinja's parse_subscribed: an expression or a slice a:b:c. */
static int parse_subscript(struct tparser* p, struct expr* obj, struct expr** ret) {
    struct expr* parts[3] = {NULL, NULL, NULL};
    bool slice            = false;
    if (!peek(p, ':') && parse_expr(p, true, &parts[0]) < 0)
        return -EINVAL;
    for (int i = 1; i < 3 && eat(p, ":"); i++) {
        slice = true;
        if (!peek(p, ':') && !peek(p, ']') && parse_expr(p, true, &parts[i]) < 0)
            return -EINVAL;
    }
    if (!eat(p, "]"))
        return perr(p, peek(p, ',') ? "']' (tuple subscripts are not supported)" : "']'");
    struct expr* e = new_expr(p, slice ? EX_SLICE : EX_ITEM);
    e->a           = obj;
    if (slice) {
        e->args = arena_alloc(p->ev->arena, 3 * sizeof(*e->args));
        memcpy(e->args, parts, sizeof(parts));
        e->nargs = e->npos = 3;
    } else {
        e->b = parts[0];
    }
    *ret = e;
    return 0;
}

static int parse_call(struct tparser* p, struct expr* fn, struct expr** ret) {
    struct expr* a   = new_expr(p, EX_CALL);
    a->a             = fn;
    struct arglist l = {0};
    if (parse_items(p, ')', true, false, &l) < 0)
        return -EINVAL;
    set_args(a, &l);
    *ret = a;
    return 0;
}

static int parse_postfix(struct tparser* p, struct expr* e, struct expr** ret) {
    for (;;) {
        if (eat(p, ".")) {
            ws(p);
            if (p->pos < p->len && is_digit(p->s[p->pos])) {
                /* foo.0 is foo[0] */
                struct expr* idx = new_expr(p, EX_LIT);
                size_t start     = p->pos;
                while (p->pos < p->len && is_digit(p->s[p->pos]))
                    p->pos++;
                int64_t i;
                if (!py_parse_int(p->s + start, p->pos - start, 10, &i))
                    return teval_fail(p->ev, "invalid index '%.*s'", (int)(p->pos - start),
                                      p->s + start);
                idx->lit       = tv_int(p->ev, i);
                struct expr* a = new_expr(p, EX_ITEM);
                a->a           = e;
                a->b           = idx;
                e              = a;
                continue;
            }
            struct expr* a = new_expr(p, EX_ATTR);
            a->name        = tparse_name(p->ev, p->s, p->len, &p->pos);
            if (!a->name)
                return perr(p, "an attribute name after '.'");
            a->a = e;
            e    = a;
        } else if (eat(p, "[")) {
            if (parse_subscript(p, e, &e) < 0)
                return -EINVAL;
        } else if (eat(p, "(")) {
            if (parse_call(p, e, &e) < 0)
                return -EINVAL;
        } else {
            *ret = e;
            return 0;
        }
    }
}

static int parse_test(struct tparser* p, struct expr* e, struct expr** ret) {
    struct expr* a = new_expr(p, EX_TEST);
    a->a           = e;
    a->negate      = eat_word(p, "not");
    a->name        = tparse_name(p->ev, p->s, p->len, &p->pos);
    if (!a->name)
        return perr(p, "a test name after 'is'");
    if (!ttest_exists(a->name))
        return unknown_name(p, "test", a->name);
    if (eat(p, "(")) {
        struct arglist l = {0};
        if (parse_items(p, ')', true, false, &l) < 0)
            return -EINVAL;
        set_args(a, &l);
    } else {
        /* one argument without parentheses: `x is divisibleby 3`, `x is sameas none` */
        ws(p);
        char c = p->pos < p->len ? p->s[p->pos] : '\0';
        if ((is_name_start(c) || is_digit(c) || strchr("'\"[{", c)) && c &&
            !tparse_peek_word(p->s, p->len, &p->pos, "else") &&
            !tparse_peek_word(p->s, p->len, &p->pos, "or") &&
            !tparse_peek_word(p->s, p->len, &p->pos, "and")) {
            if (tparse_peek_word(p->s, p->len, &p->pos, "is"))
                return perr(p, "an expression (tests cannot be chained with 'is')");
            struct expr* arg;
            if (parse_primary(p, &arg) < 0 || parse_postfix(p, arg, &arg) < 0)
                return -EINVAL;
            struct arglist l = {0};
            arglist_push(p, &l, arg, NULL);
            set_args(a, &l);
        }
    }
    *ret = a;
    return 0;
}

/* Jinja's parse_filter_expr: `| filter(args)`, `is [not] test args` and calls. */
static int parse_filters(struct tparser* p, struct expr* e, struct expr** ret) {
    for (;;) {
        if (eat(p, "|")) {
            struct expr* a = new_expr(p, EX_FILTER);
            a->a           = e;
            a->name        = tparse_name(p->ev, p->s, p->len, &p->pos);
            if (!a->name)
                return perr(p, "a filter name after '|'");
            if (!tfilter_exists(a->name)) /* Jinja checks names when compiling */
                return unknown_name(p, "filter", a->name);
            if (eat(p, "(")) {
                struct arglist l = {0};
                if (parse_items(p, ')', true, false, &l) < 0)
                    return -EINVAL;
                set_args(a, &l);
            }
            e = a;
        } else if (eat_word(p, "is")) {
            if (parse_test(p, e, &e) < 0)
                return -EINVAL;
        } else if (eat(p, "(")) {
            if (parse_call(p, e, &e) < 0)
                return -EINVAL;
        } else {
            *ret = e;
            return 0;
        }
    }
}

static int parse_unary(struct tparser* p, bool with_filter, struct expr** ret) {
    if (enter(p) < 0)
        return -EINVAL;
    struct expr* e = NULL;
    int r          = 0;
    if (eat(p, "-") || eat(p, "+")) {
        e = new_expr(p, p->s[p->pos - 1] == '-' ? EX_NEG : EX_POS);
        r = parse_unary(p, false, &e->a);
    } else {
        r = parse_primary(p, &e);
    }
    if (r == 0)
        r = parse_postfix(p, e, &e);
    if (r == 0 && with_filter)
        r = parse_filters(p, e, &e);
    p->depth--;
    if (r == 0)
        *ret = e;
    return r;
}

static struct expr* binary(struct tparser* p, enum ex_op op, struct expr* a, struct expr* b) {
    struct expr* e = new_expr(p, EX_BINARY);
    e->op          = op;
    e->a           = a;
    e->b           = b;
    return e;
}

static int parse_pow(struct tparser* p, struct expr** ret) {
    if (parse_unary(p, true, ret) < 0)
        return -EINVAL;
    while (eat(p, "**")) {
        struct expr* b;
        if (parse_unary(p, true, &b) < 0)
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

/* `~` binds tighter than + and - in Jinja (parse_math1 -> parse_concat -> parse_math2). */
static int parse_concat(struct tparser* p, struct expr** ret) {
    if (parse_mul(p, ret) < 0)
        return -EINVAL;
    while (eat(p, "~")) {
        struct expr* b;
        if (parse_mul(p, &b) < 0)
            return -EINVAL;
        *ret = binary(p, OP_CONCAT, *ret, b);
    }
    return 0;
}

static int parse_add(struct tparser* p, struct expr** ret) {
    if (parse_concat(p, ret) < 0)
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
        if (parse_concat(p, &b) < 0)
            return -EINVAL;
        *ret = binary(p, op, *ret, b);
    }
}

/* a < b < c is (a < b) and (b < c), as in Python. */
static int parse_compare(struct tparser* p, struct expr** ret) {
    struct expr* left;
    if (parse_add(p, &left) < 0)
        return -EINVAL;
    struct expr* result = NULL;
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
            break;
        }
        struct expr* right;
        if (parse_add(p, &right) < 0)
            return -EINVAL;
        struct expr* cmp = binary(p, op, left, right);
        if (result) {
            struct expr* both = new_expr(p, EX_AND);
            both->a           = result;
            both->b           = cmp;
            cmp               = both;
        }
        result = cmp;
        left   = right;
    }
    *ret = result ? result : left;
    return 0;
}

static int parse_not(struct tparser* p, struct expr** ret) {
    if (!eat_word(p, "not"))
        return parse_compare(p, ret);
    if (enter(p) < 0)
        return -EINVAL;
    struct expr* e = new_expr(p, EX_NOT);
    int r          = parse_not(p, &e->a);
    p->depth--;
    *ret = e;
    return r;
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

/* Jinja's parse_condexpr: `a if b`, `a if b else c`, chained. */
static int parse_cond(struct tparser* p, struct expr** ret) {
    if (parse_or(p, ret) < 0)
        return -EINVAL;
    while (eat_word(p, "if")) {
        struct expr* e = new_expr(p, EX_COND);
        e->a           = *ret;
        if (parse_or(p, &e->b) < 0)
            return -EINVAL;
        if (eat_word(p, "else") && parse_expr(p, true, &e->c) < 0)
            return -EINVAL;
        *ret = e;
    }
    return 0;
}

static int parse_expr(struct tparser* p, bool with_cond, struct expr** ret) {
    if (enter(p) < 0)
        return -EINVAL;
    int r = with_cond ? parse_cond(p, ret) : parse_or(p, ret);
    p->depth--;
    return r;
}

/* Jinja's parse_tuple: `a`, `a, b`, `a,` (and `()` inside parentheses). */
static int parse_tuple(struct tparser* p, bool with_cond, bool explicit_parens, struct expr** ret) {
    struct arglist l = {0};
    bool is_tuple    = false;
    for (;;) {
        if (l.n && !eat(p, ","))
            break;
        ws(p);
        if (p->pos >= p->len || p->s[p->pos] == ')')
            break;
        struct expr* e;
        if (parse_expr(p, with_cond, &e) < 0)
            return -EINVAL;
        arglist_push(p, &l, e, NULL);
        if (peek(p, ','))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple && l.n) {
        *ret = l.items[0];
        return 0;
    }
    if (!is_tuple && !explicit_parens)
        return perr(p, "an expression");
    struct expr* t = new_expr(p, EX_TUPLE);
    set_args(t, &l);
    *ret = t;
    return 0;
}

int tparse_expr(struct teval* ev, const char* src, size_t len, size_t* pos, uint32_t line,
                unsigned flags, struct expr** ret) {
    struct tparser p = {.ev = ev, .s = src, .len = len, .pos = *pos, .line = line};
    ev->line         = line;
    bool with_cond   = !(flags & TPARSE_NO_COND);
    int r            = flags & TPARSE_TUPLE ? parse_tuple(&p, with_cond, false, ret)
                                            : parse_expr(&p, with_cond, ret);
    if (r < 0)
        return -EINVAL;
    *pos = p.pos;
    return 0;
}

int tparse_filter_chain(struct teval* ev, const char* src, size_t len, size_t* pos, uint32_t line,
                        struct expr* base, struct expr** ret) {
    struct tparser p = {.ev = ev, .s = src, .len = len, .pos = *pos, .line = line};
    ev->line         = line;
    /* {% filter upper %}: the first filter has no '|' */
    struct expr* a = new_expr(&p, EX_FILTER);
    a->a           = base;
    a->name        = tparse_name(ev, src, len, &p.pos);
    if (!a->name)
        return perr(&p, "a filter name");
    if (!tfilter_exists(a->name))
        return unknown_name(&p, "filter", a->name);
    if (eat(&p, "(")) {
        struct arglist l = {0};
        if (parse_items(&p, ')', true, false, &l) < 0)
            return -EINVAL;
        set_args(a, &l);
    }
    if (parse_filters(&p, a, ret) < 0)
        return -EINVAL;
    *pos = p.pos;
    return 0;
}
