/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template expressions: parser, evaluator, Python-compatible values, filters, tests and the
 * string/dict/path methods the Gramine and MarbleRun templates use. Semantics follow Jinja2
 * with StrictUndefined (as gramine-manifest configures it).
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "template_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* Arena                                                                                      */

struct arena_block {
    struct arena_block* next;
    size_t used, size;
    max_align_t data[];
};

void* arena_alloc(struct arena* a, size_t size) {
    size = (size + 15) & ~(size_t)15;
    if (!a->head || a->head->size - a->head->used < size) {
        size_t bsize          = size > 32768 ? size : 32768;
        struct arena_block* b = xmalloc(sizeof(*b) + bsize);
        b->next               = a->head;
        b->used               = 0;
        b->size               = bsize;
        a->head               = b;
    }
    void* p = (char*)a->head->data + a->head->used;
    a->head->used += size;
    memset(p, 0, size);
    return p;
}

char* arena_strndup(struct arena* a, const char* s, size_t n) {
    char* d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char* arena_strdup(struct arena* a, const char* s) {
    return arena_strndup(a, s, strlen(s));
}

void arena_free(struct arena* a) {
    while (a->head) {
        struct arena_block* next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                     */

int teval_fail(struct teval* ev, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    struct strbuf sb = STRBUF_INIT;
    strbuf_vprintf(&sb, fmt, ap);
    va_end(ap);
    if (!ev->err->msg[0] || ev->err->code == 0)
        moat_error_set(ev->err, -EINVAL, "%s:%u: %s", ev->filename, ev->line, sb.buf);
    strbuf_free(&sb);
    return -EINVAL;
}

static const struct tval g_none  = {.type = TV_NONE};
static const struct tval g_true  = {.type = TV_BOOL, .u.b = true};
static const struct tval g_false = {.type = TV_BOOL, .u.b = false};

const struct tval* tv_none(void) {
    return &g_none;
}

const struct tval* tv_bool(bool b) {
    return b ? &g_true : &g_false;
}

static struct tval* tv_new(struct teval* ev, enum tv_type t) {
    struct tval* v = arena_alloc(ev->arena, sizeof(*v));
    v->type        = t;
    return v;
}

const struct tval* tv_int(struct teval* ev, int64_t i) {
    struct tval* v = tv_new(ev, TV_INT);
    v->u.i         = i;
    return v;
}

static const struct tval* tv_float(struct teval* ev, double f) {
    struct tval* v = tv_new(ev, TV_FLOAT);
    v->u.f         = f;
    return v;
}

const struct tval* tv_str(struct teval* ev, const char* s, size_t len) {
    struct tval* v = tv_new(ev, TV_STR);
    v->u.str.s     = arena_strndup(ev->arena, s, len);
    v->u.str.len   = len;
    return v;
}

const struct tval* tv_cstr(struct teval* ev, const char* s) {
    return tv_str(ev, s, strlen(s));
}

const struct tval* tv_path(struct teval* ev, const char* s) {
    struct tval* v = (struct tval*)tv_cstr(ev, s);
    v->type        = TV_PATH;
    return v;
}

const struct tval* tv_list(struct teval* ev, const struct tval** items, size_t n) {
    struct tval* v  = tv_new(ev, TV_LIST);
    v->u.list.items = arena_alloc(ev->arena, (n ? n : 1) * sizeof(*items));
    v->u.list.n     = n;
    if (n)
        memcpy(v->u.list.items, items, n * sizeof(*items));
    return v;
}

const struct tval* tv_func(struct teval* ev, const char* name, tbuiltin fn, const struct tval* self,
                           const char* as_str) {
    struct tval* v = tv_new(ev, TV_FUNC);
    v->u.fn.name   = name;
    v->u.fn.fn     = fn;
    v->u.fn.self   = self;
    v->u.fn.as_str = as_str;
    return v;
}

const struct tval* tv_undef(struct teval* ev, const char* name) {
    struct tval* v = tv_new(ev, TV_UNDEF);
    v->u.str.s     = arena_strdup(ev->arena, name);
    v->u.str.len   = strlen(name);
    return v;
}

const struct tval* tv_dict(struct teval* ev, const char* const* keys,
                           const struct tval* const* values, size_t n) {
    struct tval* v  = tv_new(ev, TV_DICT);
    v->u.dict.items = arena_alloc(ev->arena, (n ? n : 1) * sizeof(struct tdict_entry));
    v->u.dict.n     = n;
    for (size_t i = 0; i < n; i++) {
        v->u.dict.items[i].key   = arena_strdup(ev->arena, keys[i]);
        v->u.dict.items[i].value = values[i];
    }
    return v;
}

const struct tval* tv_dict_get(const struct tval* dict, const char* key) {
    for (size_t i = 0; i < dict->u.dict.n; i++)
        if (strcmp(dict->u.dict.items[i].key, key) == 0)
            return dict->u.dict.items[i].value;
    return NULL;
}

static const char* type_name(const struct tval* v) {
    static const char* const names[] = {"Undefined", "NoneType",  "bool", "int",  "float",
                                        "str",       "PosixPath", "list", "dict", "function"};
    return names[v->type];
}

static int undefined_error(struct teval* ev, const struct tval* v) {
    return teval_fail(ev, "'%s' is undefined", v->u.str.s);
}

static void repr_str(struct strbuf* sb, const char* s, size_t len) {
    bool has_single = memchr(s, '\'', len) && !memchr(s, '"', len);
    char q          = has_single ? '"' : '\'';
    strbuf_putc(sb, q);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == (unsigned char)q)
            strbuf_printf(sb, "\\%c", c);
        else if (c == '\n')
            strbuf_puts(sb, "\\n");
        else if (c == '\t')
            strbuf_puts(sb, "\\t");
        else if (c == '\r')
            strbuf_puts(sb, "\\r");
        else if (c < 0x20 || c == 0x7f)
            strbuf_printf(sb, "\\x%02x", c);
        else
            strbuf_putc(sb, (char)c);
    }
    strbuf_putc(sb, q);
}

static void format_float(struct strbuf* sb, double d) {
    if (isnan(d)) {
        strbuf_puts(sb, "nan");
        return;
    }
    if (isinf(d)) {
        strbuf_puts(sb, d < 0 ? "-inf" : "inf");
        return;
    }
    char buf[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    strbuf_puts(sb, buf);
    if (!strpbrk(buf, ".e"))
        strbuf_puts(sb, ".0");
}

static int to_str(struct teval* ev, const struct tval* v, struct strbuf* sb, bool repr) {
    switch (v->type) {
        case TV_UNDEF:
            return undefined_error(ev, v);
        case TV_NONE:
            strbuf_puts(sb, "None");
            return 0;
        case TV_BOOL:
            strbuf_puts(sb, v->u.b ? "True" : "False");
            return 0;
        case TV_INT:
            strbuf_printf(sb, "%" PRId64, v->u.i);
            return 0;
        case TV_FLOAT:
            format_float(sb, v->u.f);
            return 0;
        case TV_STR:
            if (repr)
                repr_str(sb, v->u.str.s, v->u.str.len);
            else
                strbuf_append(sb, v->u.str.s, v->u.str.len);
            return 0;
        case TV_PATH:
            if (repr) {
                strbuf_puts(sb, "PosixPath(");
                repr_str(sb, v->u.str.s, v->u.str.len);
                strbuf_putc(sb, ')');
            } else {
                strbuf_append(sb, v->u.str.s, v->u.str.len);
            }
            return 0;
        case TV_LIST:
            strbuf_putc(sb, '[');
            for (size_t i = 0; i < v->u.list.n; i++) {
                if (i)
                    strbuf_puts(sb, ", ");
                if (to_str(ev, v->u.list.items[i], sb, true) < 0)
                    return -EINVAL;
            }
            strbuf_putc(sb, ']');
            return 0;
        case TV_DICT:
            strbuf_putc(sb, '{');
            for (size_t i = 0; i < v->u.dict.n; i++) {
                if (i)
                    strbuf_puts(sb, ", ");
                repr_str(sb, v->u.dict.items[i].key, strlen(v->u.dict.items[i].key));
                strbuf_puts(sb, ": ");
                if (to_str(ev, v->u.dict.items[i].value, sb, true) < 0)
                    return -EINVAL;
            }
            strbuf_putc(sb, '}');
            return 0;
        case TV_FUNC:
            if (v->u.fn.as_str)
                strbuf_puts(sb, v->u.fn.as_str);
            else
                strbuf_printf(sb, "<function %s>", v->u.fn.name);
            return 0;
    }
    return 0;
}

int tv_to_str(struct teval* ev, const struct tval* v, struct strbuf* sb) {
    return to_str(ev, v, sb, false);
}

static const struct tval* str_of(struct teval* ev, const struct tval* v) {
    if (v->type == TV_STR)
        return v;
    struct strbuf sb = STRBUF_INIT;
    if (to_str(ev, v, &sb, false) < 0) {
        strbuf_free(&sb);
        return NULL;
    }
    const struct tval* s = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
    strbuf_free(&sb);
    return s;
}

int tv_truth(struct teval* ev, const struct tval* v, bool* ret) {
    switch (v->type) {
        case TV_UNDEF:
            return undefined_error(ev, v);
        case TV_NONE:
            *ret = false;
            break;
        case TV_BOOL:
            *ret = v->u.b;
            break;
        case TV_INT:
            *ret = v->u.i != 0;
            break;
        case TV_FLOAT:
            *ret = v->u.f != 0.0;
            break;
        case TV_STR:
            *ret = v->u.str.len != 0;
            break;
        case TV_LIST:
            *ret = v->u.list.n != 0;
            break;
        case TV_DICT:
            *ret = v->u.dict.n != 0;
            break;
        case TV_PATH:
        case TV_FUNC:
            *ret = true;
            break;
    }
    return 0;
}

static bool tv_equal(const struct tval* a, const struct tval* b) {
    bool an = a->type == TV_INT || a->type == TV_FLOAT || a->type == TV_BOOL;
    bool bn = b->type == TV_INT || b->type == TV_FLOAT || b->type == TV_BOOL;
    if (an && bn) {
        double x = a->type == TV_FLOAT ? a->u.f : a->type == TV_INT ? (double)a->u.i : a->u.b;
        double y = b->type == TV_FLOAT ? b->u.f : b->type == TV_INT ? (double)b->u.i : b->u.b;
        if (a->type != TV_FLOAT && b->type != TV_FLOAT) {
            int64_t xi = a->type == TV_INT ? a->u.i : a->u.b;
            int64_t yi = b->type == TV_INT ? b->u.i : b->u.b;
            return xi == yi;
        }
        return x == y;
    }
    if (a->type != b->type)
        return false;
    switch (a->type) {
        case TV_NONE:
            return true;
        case TV_STR:
        case TV_PATH:
            return a->u.str.len == b->u.str.len &&
                   memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
        case TV_LIST:
            if (a->u.list.n != b->u.list.n)
                return false;
            for (size_t i = 0; i < a->u.list.n; i++)
                if (!tv_equal(a->u.list.items[i], b->u.list.items[i]))
                    return false;
            return true;
        case TV_DICT:
            if (a->u.dict.n != b->u.dict.n)
                return false;
            for (size_t i = 0; i < a->u.dict.n; i++) {
                const struct tval* o = tv_dict_get(b, a->u.dict.items[i].key);
                if (!o || !tv_equal(a->u.dict.items[i].value, o))
                    return false;
            }
            return true;
        default:
            return a == b;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Scopes                                                                                     */

void tscope_set(struct tscope* s, const char* name, const struct tval* v) {
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->names[i], name) == 0) {
            s->values[i] = v;
            return;
        }
    }
    if (s->n == s->cap) {
        s->cap    = s->cap ? s->cap * 2 : 8;
        s->names  = xrealloc(s->names, s->cap * sizeof(*s->names));
        s->values = xrealloc(s->values, s->cap * sizeof(*s->values));
    }
    s->names[s->n]    = name;
    s->values[s->n++] = v;
}

const struct tval* tscope_get(const struct tscope* s, const char* name) {
    for (; s; s = s->parent)
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->names[i], name) == 0)
                return s->values[i];
    return NULL;
}

void tscope_free(struct tscope* s) {
    free(s->names);
    free(s->values);
    s->names  = NULL;
    s->values = NULL;
    s->n = s->cap = 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Expression parser                                                                          */

struct tparser {
    struct teval* ev;
    const char* s;
    size_t len, pos;
    uint32_t line;
};

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
    struct expr* e;
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

static int parse_expr(struct tparser* p, struct expr** ret) {
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

/* ---------------------------------------------------------------------------------------- */
/* Methods, filters, tests                                                                    */

static int want_args(struct teval* ev, const char* name, size_t nargs, size_t lo, size_t hi) {
    if (nargs < lo || nargs > hi)
        return teval_fail(ev, "%s() takes %zu to %zu arguments (%zu given)", name, lo, hi, nargs);
    return 0;
}

static int want_str(struct teval* ev, const char* name, const struct tval* v) {
    if (v->type == TV_UNDEF)
        return undefined_error(ev, v);
    if (v->type != TV_STR && v->type != TV_PATH)
        return teval_fail(ev, "%s(): expected a string, got %s", name, type_name(v));
    return 0;
}

static int m_dict_get(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                      size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    (void)kw;
    if (want_args(ev, "get", nargs + nkw, 1, 2) < 0 || want_str(ev, "get", args[0]) < 0)
        return -EINVAL;
    const struct tval* v = tv_dict_get(fn->u.fn.self, args[0]->u.str.s);
    *ret                 = v ? v : nargs > 1 ? args[1] : tv_none();
    return 0;
}

static int m_dict_keys(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                       size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    (void)args;
    (void)kw;
    if (want_args(ev, fn->u.fn.name, nargs + nkw, 0, 0) < 0)
        return -EINVAL;
    const struct tval* d      = fn->u.fn.self;
    const struct tval** items = arena_alloc(ev->arena, (d->u.dict.n + 1) * sizeof(*items));
    bool want_items           = strcmp(fn->u.fn.name, "items") == 0;
    bool want_values          = strcmp(fn->u.fn.name, "values") == 0;
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const struct tval* k = tv_cstr(ev, d->u.dict.items[i].key);
        if (want_items) {
            const struct tval* pair[2] = {k, d->u.dict.items[i].value};
            items[i]                   = tv_list(ev, pair, 2);
        } else {
            items[i] = want_values ? d->u.dict.items[i].value : k;
        }
    }
    *ret = tv_list(ev, items, d->u.dict.n);
    return 0;
}

static int m_path(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                  size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    (void)args;
    (void)kw;
    if (want_args(ev, fn->u.fn.name, nargs + nkw, 0, 0) < 0)
        return -EINVAL;
    struct stat st;
    bool ok = stat(fn->u.fn.self->u.str.s, &st) == 0;
    if (strcmp(fn->u.fn.name, "is_dir") == 0)
        *ret = tv_bool(ok && S_ISDIR(st.st_mode));
    else if (strcmp(fn->u.fn.name, "is_file") == 0)
        *ret = tv_bool(ok && S_ISREG(st.st_mode));
    else
        *ret = tv_bool(ok);
    return 0;
}

static int m_str(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                 size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    (void)kw;
    const char* name     = fn->u.fn.name;
    const struct tval* s = fn->u.fn.self;
    if (nkw)
        return teval_fail(ev, "%s() takes no keyword arguments", name);
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        if (want_args(ev, name, nargs, 1, 1) < 0 || want_str(ev, name, args[0]) < 0)
            return -EINVAL;
        size_t n = args[0]->u.str.len;
        bool r =
            n <= s->u.str.len && memcmp(name[0] == 's' ? s->u.str.s : s->u.str.s + s->u.str.len - n,
                                        args[0]->u.str.s, n) == 0;
        *ret = tv_bool(r);
        return 0;
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower")) {
        char* d = arena_strndup(ev->arena, s->u.str.s, s->u.str.len);
        for (char* c = d; *c; c++)
            *c = name[0] == 'u' ? (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c)
                                : (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        *ret = tv_str(ev, d, s->u.str.len);
        return 0;
    }
    if (!strcmp(name, "strip") || !strcmp(name, "rstrip") || !strcmp(name, "lstrip")) {
        const char* b = s->u.str.s;
        const char* e = b + s->u.str.len;
        if (name[0] != 'r')
            while (b < e && strchr(" \t\n\r", *b))
                b++;
        if (name[0] != 'l')
            while (e > b && strchr(" \t\n\r", e[-1]))
                e--;
        *ret = tv_str(ev, b, (size_t)(e - b));
        return 0;
    }
    if (!strcmp(name, "replace")) {
        if (want_args(ev, name, nargs, 2, 2) < 0 || want_str(ev, name, args[0]) < 0 ||
            want_str(ev, name, args[1]) < 0)
            return -EINVAL;
        struct strbuf sb = STRBUF_INIT;
        const char* cur  = s->u.str.s;
        const char* end  = cur + s->u.str.len;
        size_t n         = args[0]->u.str.len;
        while (cur < end) {
            const char* hit = n ? memmem(cur, (size_t)(end - cur), args[0]->u.str.s, n) : NULL;
            if (!hit) {
                strbuf_append(&sb, cur, (size_t)(end - cur));
                break;
            }
            strbuf_append(&sb, cur, (size_t)(hit - cur));
            strbuf_append(&sb, args[1]->u.str.s, args[1]->u.str.len);
            cur = hit + n;
        }
        *ret = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
        strbuf_free(&sb);
        return 0;
    }
    if (!strcmp(name, "split")) {
        if (want_args(ev, name, nargs, 0, 1) < 0 || (nargs && want_str(ev, name, args[0]) < 0))
            return -EINVAL;
        const char* sep = nargs ? args[0]->u.str.s : NULL;
        if (sep && !*sep)
            return teval_fail(ev, "split(): empty separator");
        size_t cap = 8, n = 0;
        const struct tval** items = xmalloc(cap * sizeof(*items));
        const char* cur           = s->u.str.s;
        const char* end           = cur + s->u.str.len;
        while (cur <= end) {
            const char* hit;
            if (sep) {
                hit = memmem(cur, (size_t)(end - cur), sep, strlen(sep));
            } else {
                while (cur < end && strchr(" \t\n\r", *cur))
                    cur++;
                if (cur == end)
                    break;
                hit = cur;
                while (hit < end && !strchr(" \t\n\r", *hit))
                    hit++;
            }
            if (n == cap)
                items = xrealloc(items, (cap *= 2) * sizeof(*items));
            const char* stop = hit ? hit : end;
            items[n++]       = tv_str(ev, cur, (size_t)(stop - cur));
            if (!hit || (!sep && hit == end))
                break;
            cur = hit + (sep ? strlen(sep) : 0);
        }
        *ret = tv_list(ev, items, n);
        free(items);
        return 0;
    }
    if (!strcmp(name, "format")) {
        /* "{}".format(x): positional {} only */
        struct strbuf sb = STRBUF_INIT;
        size_t next      = 0;
        for (size_t i = 0; i < s->u.str.len; i++) {
            if (s->u.str.s[i] == '{' && i + 1 < s->u.str.len && s->u.str.s[i + 1] == '}') {
                if (next >= nargs || tv_to_str(ev, args[next++], &sb) < 0) {
                    strbuf_free(&sb);
                    return next > nargs || ev->err->code ? -EINVAL
                                                         : teval_fail(ev,
                                                                      "format(): too few "
                                                                      "arguments");
                }
                i++;
            } else {
                strbuf_putc(&sb, s->u.str.s[i]);
            }
        }
        *ret = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
        strbuf_free(&sb);
        return 0;
    }
    return teval_fail(ev, "'str' object has no attribute '%s'", name);
}

static const char* const g_str_methods[] = {"startswith", "endswith", "upper",  "lower",
                                            "strip",      "rstrip",   "lstrip", "replace",
                                            "split",      "format",   NULL};

/* Attribute lookup (Jinja: getattr, then getitem). */
static int get_attr(struct teval* ev, const struct tval* obj, const char* name,
                    const struct tval** ret) {
    switch (obj->type) {
        case TV_UNDEF:
            return undefined_error(ev, obj);
        case TV_DICT: {
            if (!strcmp(name, "get"))
                *ret = tv_func(ev, "get", m_dict_get, obj, NULL);
            else if (!strcmp(name, "keys") || !strcmp(name, "values") || !strcmp(name, "items"))
                *ret = tv_func(ev, arena_strdup(ev->arena, name), m_dict_keys, obj, NULL);
            else {
                const struct tval* v = tv_dict_get(obj, name);
                if (!v)
                    return teval_fail(ev, "'dict object' has no attribute '%s'", name);
                if (v->type == TV_FUNC && v->u.fn.lazy)
                    return v->u.fn.fn(ev, v, NULL, 0, NULL, 0, ret);
                *ret = v;
            }
            return 0;
        }
        case TV_STR:
            for (size_t i = 0; g_str_methods[i]; i++) {
                if (!strcmp(name, g_str_methods[i])) {
                    *ret = tv_func(ev, g_str_methods[i], m_str, obj, NULL);
                    return 0;
                }
            }
            break;
        case TV_PATH:
            if (!strcmp(name, "is_dir") || !strcmp(name, "is_file") || !strcmp(name, "exists")) {
                *ret = tv_func(ev, arena_strdup(ev->arena, name), m_path, obj, NULL);
                return 0;
            }
            if (!strcmp(name, "name")) {
                const char* slash = strrchr(obj->u.str.s, '/');
                *ret              = tv_cstr(ev, slash ? slash + 1 : obj->u.str.s);
                return 0;
            }
            if (!strcmp(name, "parent")) {
                const char* slash = strrchr(obj->u.str.s, '/');
                _cleanup_free_ char* parent =
                    slash ? (slash == obj->u.str.s
                                 ? xstrdup("/")
                                 : xstrndup(obj->u.str.s, (size_t)(slash - obj->u.str.s)))
                          : xstrdup(".");
                *ret = tv_path(ev, parent);
                return 0;
            }
            break;
        default:
            break;
    }
    return teval_fail(ev, "'%s' object has no attribute '%s'", type_name(obj), name);
}

static int get_item(struct teval* ev, const struct tval* obj, const struct tval* key,
                    const struct tval** ret) {
    if (obj->type == TV_UNDEF)
        return undefined_error(ev, obj);
    if (key->type == TV_UNDEF)
        return undefined_error(ev, key);
    if (obj->type == TV_DICT) {
        if (key->type != TV_STR)
            return teval_fail(ev, "dict keys are strings, got %s", type_name(key));
        const struct tval* v = tv_dict_get(obj, key->u.str.s);
        if (!v)
            return teval_fail(ev, "'dict object' has no attribute '%s'", key->u.str.s);
        *ret = v;
        return 0;
    }
    if ((obj->type == TV_LIST || obj->type == TV_STR) && key->type == TV_INT) {
        int64_t n = obj->type == TV_LIST ? (int64_t)obj->u.list.n : (int64_t)obj->u.str.len;
        int64_t i = key->u.i < 0 ? key->u.i + n : key->u.i;
        if (i < 0 || i >= n)
            return teval_fail(ev, "index %" PRId64 " out of range", key->u.i);
        *ret = obj->type == TV_LIST ? obj->u.list.items[i] : tv_str(ev, obj->u.str.s + i, 1);
        return 0;
    }
    if (key->type == TV_STR)
        return get_attr(ev, obj, key->u.str.s, ret);
    return teval_fail(ev, "'%s' object is not subscriptable with %s", type_name(obj),
                      type_name(key));
}

/* Items of an iterable: list, dict (keys), string (characters). */
static int iter_items(struct teval* ev, const struct tval* v, const struct tval*** ret_items,
                      size_t* ret_n) {
    if (v->type == TV_UNDEF)
        return undefined_error(ev, v);
    if (v->type == TV_LIST) {
        *ret_items = (const struct tval**)v->u.list.items;
        *ret_n     = v->u.list.n;
        return 0;
    }
    if (v->type == TV_DICT || v->type == TV_STR) {
        size_t n                  = v->type == TV_DICT ? v->u.dict.n : v->u.str.len;
        const struct tval** items = arena_alloc(ev->arena, (n + 1) * sizeof(*items));
        for (size_t i = 0; i < n; i++)
            items[i] = v->type == TV_DICT ? tv_cstr(ev, v->u.dict.items[i].key)
                                          : tv_str(ev, v->u.str.s + i, 1);
        *ret_items = items;
        *ret_n     = n;
        return 0;
    }
    return teval_fail(ev, "'%s' object is not iterable", type_name(v));
}

int titer(struct teval* ev, const struct tval* v, const struct tval*** ret_items, size_t* ret_n) {
    return iter_items(ev, v, ret_items, ret_n);
}

static int compare_values(struct teval* ev, const struct tval* a, const struct tval* b, int* ret) {
    bool an = a->type == TV_INT || a->type == TV_FLOAT || a->type == TV_BOOL;
    bool bn = b->type == TV_INT || b->type == TV_FLOAT || b->type == TV_BOOL;
    if (an && bn) {
        double x = a->type == TV_FLOAT ? a->u.f : a->type == TV_INT ? (double)a->u.i : a->u.b;
        double y = b->type == TV_FLOAT ? b->u.f : b->type == TV_INT ? (double)b->u.i : b->u.b;
        *ret     = (x > y) - (x < y);
        return 0;
    }
    if ((a->type == TV_STR || a->type == TV_PATH) && a->type == b->type) {
        size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
        int c    = memcmp(a->u.str.s, b->u.str.s, n);
        *ret =
            c ? (c > 0) - (c < 0) : (a->u.str.len > b->u.str.len) - (a->u.str.len < b->u.str.len);
        return 0;
    }
    return teval_fail(ev, "'<' not supported between instances of '%s' and '%s'", type_name(a),
                      type_name(b));
}

static int sort_cmp_fail;
static struct teval* sort_ev;
static int sort_cmp(const void* x, const void* y) {
    int c = 0;
    if (compare_values(sort_ev, *(const struct tval* const*)x, *(const struct tval* const*)y, &c) <
        0)
        sort_cmp_fail = 1;
    return c;
}

static int apply_filter(struct teval* ev, const char* name, const struct tval* v,
                        const struct tval* const* args, size_t nargs, const struct tval** ret) {
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        bool use_default = v->type == TV_UNDEF;
        bool boolean     = nargs > 1 && args[1]->type == TV_BOOL && args[1]->u.b;
        if (!use_default && boolean && tv_truth(ev, v, &use_default) == 0)
            use_default = !use_default;
        *ret = use_default ? (nargs ? args[0] : tv_cstr(ev, "")) : v;
        return 0;
    }
    if (v->type == TV_UNDEF)
        return undefined_error(ev, v);
    if (!strcmp(name, "string")) {
        *ret = str_of(ev, v);
        return *ret ? 0 : -EINVAL;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper") || !strcmp(name, "trim") ||
        !strcmp(name, "replace")) {
        const struct tval* s = str_of(ev, v);
        if (!s)
            return -EINVAL;
        const struct tval* fn = tv_func(ev, !strcmp(name, "trim") ? "strip" : name, m_str, s, NULL);
        return m_str(ev, fn, args, nargs, NULL, 0, ret);
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        const struct tval** items;
        size_t n;
        if (iter_items(ev, v, &items, &n) < 0)
            return -EINVAL;
        *ret = tv_int(ev, (int64_t)n);
        return 0;
    }
    if (!strcmp(name, "join")) {
        const struct tval** items;
        size_t n;
        if (iter_items(ev, v, &items, &n) < 0)
            return -EINVAL;
        struct strbuf sb = STRBUF_INIT;
        for (size_t i = 0; i < n; i++) {
            if (i && nargs)
                strbuf_append(&sb, args[0]->u.str.s,
                              args[0]->type == TV_STR ? args[0]->u.str.len : 0);
            if (tv_to_str(ev, items[i], &sb) < 0) {
                strbuf_free(&sb);
                return -EINVAL;
            }
        }
        *ret = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
        strbuf_free(&sb);
        return 0;
    }
    if (!strcmp(name, "int") || !strcmp(name, "float")) {
        bool is_int = name[0] == 'i';
        if (v->type == TV_INT || v->type == TV_BOOL) {
            int64_t i = v->type == TV_INT ? v->u.i : v->u.b;
            *ret      = is_int ? tv_int(ev, i) : tv_float(ev, (double)i);
        } else if (v->type == TV_FLOAT) {
            *ret = is_int ? tv_int(ev, (int64_t)v->u.f) : v;
        } else {
            const struct tval* s = str_of(ev, v);
            char* end;
            double d    = s ? strtod(s->u.str.s, &end) : 0;
            bool parsed = s && end != s->u.str.s && *end == '\0';
            *ret        = parsed  ? (is_int ? tv_int(ev, (int64_t)d) : tv_float(ev, d))
                          : nargs ? args[0]
                                  : (is_int ? tv_int(ev, 0) : tv_float(ev, 0));
        }
        return 0;
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        const struct tval** items;
        size_t n;
        if (iter_items(ev, v, &items, &n) < 0)
            return -EINVAL;
        *ret = n ? items[name[0] == 'f' ? 0 : n - 1] : tv_undef(ev, "first/last of empty");
        return 0;
    }
    if (!strcmp(name, "list") || !strcmp(name, "sort") || !strcmp(name, "unique")) {
        const struct tval** items;
        size_t n;
        if (iter_items(ev, v, &items, &n) < 0)
            return -EINVAL;
        const struct tval** copy = arena_alloc(ev->arena, (n + 1) * sizeof(*copy));
        size_t m                 = 0;
        for (size_t i = 0; i < n; i++) {
            bool dup = false;
            for (size_t j = 0; name[0] == 'u' && j < m && !dup; j++)
                dup = tv_equal(copy[j], items[i]);
            if (!dup)
                copy[m++] = items[i];
        }
        if (name[0] == 's') {
            sort_ev       = ev;
            sort_cmp_fail = 0;
            qsort(copy, m, sizeof(*copy), sort_cmp);
            if (sort_cmp_fail)
                return -EINVAL;
        }
        *ret = tv_list(ev, copy, m);
        return 0;
    }
    if (!strcmp(name, "abs")) {
        if (v->type == TV_INT)
            *ret = tv_int(ev, v->u.i < 0 ? -v->u.i : v->u.i);
        else if (v->type == TV_FLOAT)
            *ret = tv_float(ev, fabs(v->u.f));
        else
            return teval_fail(ev, "abs: bad operand type '%s'", type_name(v));
        return 0;
    }
    if (!strcmp(name, "tojson")) {
        /* enough for strings and numbers in manifests */
        const struct tval* s = str_of(ev, v);
        if (!s)
            return -EINVAL;
        struct strbuf sb = STRBUF_INIT;
        if (v->type == TV_STR || v->type == TV_PATH) {
            strbuf_putc(&sb, '"');
            for (size_t i = 0; i < s->u.str.len; i++) {
                unsigned char c = (unsigned char)s->u.str.s[i];
                if (c == '"' || c == '\\')
                    strbuf_printf(&sb, "\\%c", c);
                else if (c < 0x20)
                    strbuf_printf(&sb, "\\u%04x", c);
                else
                    strbuf_putc(&sb, (char)c);
            }
            strbuf_putc(&sb, '"');
        } else if (v->type == TV_BOOL || v->type == TV_NONE) {
            strbuf_puts(&sb, v->type == TV_NONE ? "null" : v->u.b ? "true" : "false");
        } else {
            strbuf_append(&sb, s->u.str.s, s->u.str.len);
        }
        *ret = tv_str(ev, sb.buf, sb.len);
        strbuf_free(&sb);
        return 0;
    }
    return teval_fail(ev, "no filter named '%s'", name);
}

static int apply_test(struct teval* ev, const char* name, const struct tval* v,
                      const struct tval* const* args, size_t nargs, bool* ret) {
    if (!strcmp(name, "defined") || !strcmp(name, "undefined")) {
        *ret = (v->type != TV_UNDEF) == (name[0] == 'd');
        return 0;
    }
    if (v->type == TV_UNDEF)
        return undefined_error(ev, v);
    if (!strcmp(name, "none"))
        *ret = v->type == TV_NONE;
    else if (!strcmp(name, "string"))
        *ret = v->type == TV_STR;
    else if (!strcmp(name, "number"))
        *ret = v->type == TV_INT || v->type == TV_FLOAT;
    else if (!strcmp(name, "boolean"))
        *ret = v->type == TV_BOOL;
    else if (!strcmp(name, "true") || !strcmp(name, "false"))
        *ret = v->type == TV_BOOL && v->u.b == (name[0] == 't');
    else if (!strcmp(name, "mapping"))
        *ret = v->type == TV_DICT;
    else if (!strcmp(name, "sequence") || !strcmp(name, "iterable"))
        *ret = v->type == TV_LIST || v->type == TV_STR || v->type == TV_DICT;
    else if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "sameas")) {
        if (nargs != 1)
            return teval_fail(ev, "test '%s' takes one argument", name);
        *ret = tv_equal(v, args[0]);
    } else
        return teval_fail(ev, "no test named '%s'", name);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Evaluation                                                                                 */

static int eval_args(struct teval* ev, const struct expr* e, const struct tval*** ret_args,
                     struct tkwarg** ret_kw) {
    const struct tval** args = arena_alloc(ev->arena, (e->npos + 1) * sizeof(*args));
    struct tkwarg* kw        = arena_alloc(ev->arena, (e->nargs - e->npos + 1) * sizeof(*kw));
    for (size_t i = 0; i < e->nargs; i++) {
        const struct tval* v;
        if (teval_expr(ev, e->args[i], &v) < 0)
            return -EINVAL;
        if (i < e->npos)
            args[i] = v;
        else
            kw[i - e->npos] = (struct tkwarg){e->kwnames[i], v};
    }
    *ret_args = args;
    *ret_kw   = kw;
    return 0;
}

static int arith(struct teval* ev, enum ex_op op, const struct tval* a, const struct tval* b,
                 const struct tval** ret) {
    if (op == OP_ADD && a->type == TV_LIST && b->type == TV_LIST) {
        const struct tval** items =
            arena_alloc(ev->arena, (a->u.list.n + b->u.list.n + 1) * sizeof(*items));
        memcpy(items, a->u.list.items, a->u.list.n * sizeof(*items));
        memcpy(items + a->u.list.n, b->u.list.items, b->u.list.n * sizeof(*items));
        *ret = tv_list(ev, items, a->u.list.n + b->u.list.n);
        return 0;
    }
    if (op == OP_ADD && a->type == TV_STR && b->type == TV_STR) {
        struct strbuf sb = STRBUF_INIT;
        strbuf_append(&sb, a->u.str.s, a->u.str.len);
        strbuf_append(&sb, b->u.str.s, b->u.str.len);
        *ret = tv_str(ev, sb.buf, sb.len);
        strbuf_free(&sb);
        return 0;
    }
    if (op == OP_DIV && a->type == TV_PATH && (b->type == TV_STR || b->type == TV_PATH)) {
        _cleanup_free_ char* joined = path_join(a->u.str.s, b->u.str.s);
        *ret                        = tv_path(ev, joined);
        return 0;
    }
    if (op == OP_MOD && a->type == TV_STR)
        return teval_fail(ev, "printf-style '%%' formatting is not supported; use '~' or format()");
    bool ai = a->type == TV_INT || a->type == TV_BOOL;
    bool bi = b->type == TV_INT || b->type == TV_BOOL;
    if (!(ai || a->type == TV_FLOAT) || !(bi || b->type == TV_FLOAT))
        return teval_fail(ev, "unsupported operand types for arithmetic: '%s' and '%s'",
                          type_name(a), type_name(b));
    if (ai && bi && op != OP_DIV && op != OP_POW) {
        int64_t x = a->type == TV_INT ? a->u.i : a->u.b, y = b->type == TV_INT ? b->u.i : b->u.b;
        int64_t r;
        switch (op) {
            case OP_ADD:
                if (__builtin_add_overflow(x, y, &r))
                    return teval_fail(ev, "integer overflow");
                break;
            case OP_SUB:
                if (__builtin_sub_overflow(x, y, &r))
                    return teval_fail(ev, "integer overflow");
                break;
            case OP_MUL:
                if (__builtin_mul_overflow(x, y, &r))
                    return teval_fail(ev, "integer overflow");
                break;
            default: /* // and %: Python floors */
                if (y == 0)
                    return teval_fail(ev, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1)
                    return teval_fail(ev, "integer overflow");
                r = x / y;
                if ((x % y != 0) && ((x < 0) != (y < 0)))
                    r--;
                if (op == OP_MOD)
                    r = x - r * y;
        }
        *ret = tv_int(ev, r);
        return 0;
    }
    double x = a->type == TV_FLOAT ? a->u.f : (double)(a->type == TV_INT ? a->u.i : a->u.b);
    double y = b->type == TV_FLOAT ? b->u.f : (double)(b->type == TV_INT ? b->u.i : b->u.b);
    double r;
    switch (op) {
        case OP_ADD:
            r = x + y;
            break;
        case OP_SUB:
            r = x - y;
            break;
        case OP_MUL:
            r = x * y;
            break;
        case OP_POW:
            r = pow(x, y);
            if (ai && bi && y >= 0 && fabs(r) < 9.0e18) {
                *ret = tv_int(ev, (int64_t)r);
                return 0;
            }
            break;
        default:
            if (y == 0)
                return teval_fail(ev, "division by zero");
            r = op == OP_DIV ? x / y : op == OP_FLOORDIV ? floor(x / y) : x - floor(x / y) * y;
    }
    *ret = tv_float(ev, r);
    return 0;
}

static int eval_binary(struct teval* ev, const struct expr* e, const struct tval** ret) {
    const struct tval *a, *b;
    if (teval_expr(ev, e->a, &a) < 0 || teval_expr(ev, e->b, &b) < 0)
        return -EINVAL;
    if (a->type == TV_UNDEF)
        return undefined_error(ev, a);
    if (b->type == TV_UNDEF)
        return undefined_error(ev, b);
    int c;
    switch (e->op) {
        case OP_EQ:
        case OP_NE:
            *ret = tv_bool(tv_equal(a, b) == (e->op == OP_EQ));
            return 0;
        case OP_LT:
        case OP_GT:
        case OP_LE:
        case OP_GE:
            if (compare_values(ev, a, b, &c) < 0)
                return -EINVAL;
            *ret = tv_bool(e->op == OP_LT   ? c < 0
                           : e->op == OP_GT ? c > 0
                           : e->op == OP_LE ? c <= 0
                                            : c >= 0);
            return 0;
        case OP_IN:
        case OP_NOT_IN: {
            bool found = false;
            if (b->type == TV_STR) {
                if (a->type != TV_STR)
                    return teval_fail(ev, "'in <string>' requires string as left operand");
                found = a->u.str.len == 0 ||
                        memmem(b->u.str.s, b->u.str.len, a->u.str.s, a->u.str.len) != NULL;
            } else if (b->type == TV_DICT) {
                found = a->type == TV_STR && tv_dict_get(b, a->u.str.s);
            } else if (b->type == TV_LIST) {
                for (size_t i = 0; i < b->u.list.n && !found; i++)
                    found = tv_equal(a, b->u.list.items[i]);
            } else {
                return teval_fail(ev, "argument of type '%s' is not iterable", type_name(b));
            }
            *ret = tv_bool(found == (e->op == OP_IN));
            return 0;
        }
        case OP_CONCAT: {
            struct strbuf sb = STRBUF_INIT;
            if (tv_to_str(ev, a, &sb) < 0 || tv_to_str(ev, b, &sb) < 0) {
                strbuf_free(&sb);
                return -EINVAL;
            }
            *ret = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
            strbuf_free(&sb);
            return 0;
        }
        default:
            return arith(ev, e->op, a, b, ret);
    }
}

int teval_expr(struct teval* ev, const struct expr* e, const struct tval** ret) {
    ev->line = e->line;
    const struct tval *a, *b;
    bool t;
    switch (e->kind) {
        case EX_LIT:
            *ret = e->lit;
            return 0;
        case EX_NAME: {
            const struct tval* v = tscope_get(ev->scope, e->name);
            *ret                 = v ? v : tv_undef(ev, e->name);
            return 0;
        }
        case EX_ATTR:
            if (teval_expr(ev, e->a, &a) < 0)
                return -EINVAL;
            ev->line = e->line;
            return get_attr(ev, a, e->name, ret);
        case EX_ITEM:
            if (teval_expr(ev, e->a, &a) < 0 || teval_expr(ev, e->b, &b) < 0)
                return -EINVAL;
            return get_item(ev, a, b, ret);
        case EX_CALL: {
            if (teval_expr(ev, e->a, &a) < 0)
                return -EINVAL;
            if (a->type == TV_UNDEF)
                return undefined_error(ev, a);
            if (a->type != TV_FUNC)
                return teval_fail(ev, "'%s' object is not callable", type_name(a));
            const struct tval** args;
            struct tkwarg* kw;
            if (eval_args(ev, e, &args, &kw) < 0)
                return -EINVAL;
            ev->line = e->line;
            return a->u.fn.fn(ev, a, args, e->npos, kw, e->nargs - e->npos, ret);
        }
        case EX_FILTER: {
            if (teval_expr(ev, e->a, &a) < 0)
                return -EINVAL;
            const struct tval** args;
            struct tkwarg* kw;
            if (eval_args(ev, e, &args, &kw) < 0)
                return -EINVAL;
            ev->line = e->line;
            return apply_filter(ev, e->name, a, args, e->npos, ret);
        }
        case EX_TEST: {
            if (teval_expr(ev, e->a, &a) < 0)
                return -EINVAL;
            const struct tval** args;
            struct tkwarg* kw;
            if (eval_args(ev, e, &args, &kw) < 0 ||
                apply_test(ev, e->name, a, args, e->npos, &t) < 0)
                return -EINVAL;
            *ret = tv_bool(t != e->negate);
            return 0;
        }
        case EX_NEG:
        case EX_POS:
            if (teval_expr(ev, e->a, &a) < 0)
                return -EINVAL;
            if (a->type == TV_UNDEF)
                return undefined_error(ev, a);
            if (e->kind == EX_POS)
                return arith(ev, OP_ADD, tv_int(ev, 0), a, ret);
            return arith(ev, OP_SUB, tv_int(ev, 0), a, ret);
        case EX_NOT:
            if (teval_expr(ev, e->a, &a) < 0 || tv_truth(ev, a, &t) < 0)
                return -EINVAL;
            *ret = tv_bool(!t);
            return 0;
        case EX_AND:
        case EX_OR:
            if (teval_expr(ev, e->a, &a) < 0 || tv_truth(ev, a, &t) < 0)
                return -EINVAL;
            if (t == (e->kind == EX_OR)) {
                *ret = a;
                return 0;
            }
            return teval_expr(ev, e->b, ret);
        case EX_BINARY:
            return eval_binary(ev, e, ret);
        case EX_COND:
            if (teval_expr(ev, e->b, &b) < 0 || tv_truth(ev, b, &t) < 0)
                return -EINVAL;
            if (t)
                return teval_expr(ev, e->a, ret);
            if (e->c)
                return teval_expr(ev, e->c, ret);
            *ret = tv_undef(ev, "(conditional expression without 'else')");
            return 0;
        case EX_LIST:
        case EX_TUPLE: {
            const struct tval** items = arena_alloc(ev->arena, (e->nargs + 1) * sizeof(*items));
            for (size_t i = 0; i < e->nargs; i++)
                if (teval_expr(ev, e->args[i], &items[i]) < 0)
                    return -EINVAL;
            *ret = tv_list(ev, items, e->nargs);
            return 0;
        }
        case EX_DICT: {
            size_t n                   = e->nargs / 2;
            const char** keys          = arena_alloc(ev->arena, (n + 1) * sizeof(*keys));
            const struct tval** values = arena_alloc(ev->arena, (n + 1) * sizeof(*values));
            for (size_t i = 0; i < n; i++) {
                const struct tval* k;
                if (teval_expr(ev, e->args[2 * i], &k) < 0 ||
                    teval_expr(ev, e->args[2 * i + 1], &values[i]) < 0)
                    return -EINVAL;
                if (k->type != TV_STR)
                    return teval_fail(ev, "dict keys must be strings");
                keys[i] = k->u.str.s;
            }
            *ret = tv_dict(ev, keys, values, n);
            return 0;
        }
    }
    return teval_fail(ev, "internal error: unknown expression");
}
