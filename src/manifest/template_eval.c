/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template evaluation: expressions, the string/dict/path methods, filters and tests the
 * Gramine and MarbleRun templates use. Semantics follow Jinja2 with StrictUndefined (as
 * gramine-manifest configures it).
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "template_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* Methods, filters, tests                                                                    */

static int want_args(struct teval* ev, const char* name, size_t nargs, size_t lo, size_t hi) {
    if (nargs < lo || nargs > hi)
        return teval_fail(ev, "%s() takes %zu to %zu arguments (%zu given)", name, lo, hi, nargs);
    return 0;
}

static int want_str(struct teval* ev, const char* name, const struct tval* v) {
    if (v->type == TV_UNDEF)
        return tv_undefined_error(ev, v);
    if (v->type != TV_STR && v->type != TV_PATH)
        return teval_fail(ev, "%s(): expected a string, got %s", name, tv_type_name(v));
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
            return tv_undefined_error(ev, obj);
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
    return teval_fail(ev, "'%s' object has no attribute '%s'", tv_type_name(obj), name);
}

static int get_item(struct teval* ev, const struct tval* obj, const struct tval* key,
                    const struct tval** ret) {
    if (obj->type == TV_UNDEF)
        return tv_undefined_error(ev, obj);
    if (key->type == TV_UNDEF)
        return tv_undefined_error(ev, key);
    if (obj->type == TV_DICT) {
        if (key->type != TV_STR)
            return teval_fail(ev, "dict keys are strings, got %s", tv_type_name(key));
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
    return teval_fail(ev, "'%s' object is not subscriptable with %s", tv_type_name(obj),
                      tv_type_name(key));
}

/* Items of an iterable: list, dict (keys), string (characters). */
static int iter_items(struct teval* ev, const struct tval* v, const struct tval*** ret_items,
                      size_t* ret_n) {
    if (v->type == TV_UNDEF)
        return tv_undefined_error(ev, v);
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
    return teval_fail(ev, "'%s' object is not iterable", tv_type_name(v));
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
    return teval_fail(ev, "'<' not supported between instances of '%s' and '%s'", tv_type_name(a),
                      tv_type_name(b));
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
        return tv_undefined_error(ev, v);
    if (!strcmp(name, "string")) {
        *ret = tv_str_of(ev, v);
        return *ret ? 0 : -EINVAL;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper") || !strcmp(name, "trim") ||
        !strcmp(name, "replace")) {
        const struct tval* s = tv_str_of(ev, v);
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
            const struct tval* s = tv_str_of(ev, v);
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
            return teval_fail(ev, "abs: bad operand type '%s'", tv_type_name(v));
        return 0;
    }
    if (!strcmp(name, "tojson")) {
        /* enough for strings and numbers in manifests */
        const struct tval* s = tv_str_of(ev, v);
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
        return tv_undefined_error(ev, v);
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
                          tv_type_name(a), tv_type_name(b));
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
        return tv_undefined_error(ev, a);
    if (b->type == TV_UNDEF)
        return tv_undefined_error(ev, b);
    int c = 0;
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
                return teval_fail(ev, "argument of type '%s' is not iterable", tv_type_name(b));
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
                return tv_undefined_error(ev, a);
            if (a->type != TV_FUNC)
                return teval_fail(ev, "'%s' object is not callable", tv_type_name(a));
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
                return tv_undefined_error(ev, a);
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
