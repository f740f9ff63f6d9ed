/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template values: the render arena, Python-compatible values (str(), truthiness, equality)
 * and variable scopes.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

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

const struct tval* tv_float(struct teval* ev, double f) {
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

const char* tv_type_name(const struct tval* v) {
    static const char* const names[] = {"Undefined", "NoneType",  "bool", "int",  "float",
                                        "str",       "PosixPath", "list", "dict", "function"};
    return names[v->type];
}

int tv_undefined_error(struct teval* ev, const struct tval* v) {
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
    char buf[64];
    format_double(d, buf, sizeof(buf));
    strbuf_puts(sb, buf);
}

static int to_str(struct teval* ev, const struct tval* v, struct strbuf* sb, bool repr) {
    switch (v->type) {
        case TV_UNDEF:
            return tv_undefined_error(ev, v);
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

const struct tval* tv_str_of(struct teval* ev, const struct tval* v) {
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
            return tv_undefined_error(ev, v);
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

bool tv_equal(const struct tval* a, const struct tval* b) {
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
