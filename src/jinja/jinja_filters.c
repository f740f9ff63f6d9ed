/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Jinja's builtin filters and tests (jinja2/filters.py, jinja2/tests.py, 3.1) and the methods
 * of str, dict, list and pathlib.Path values that templates call. Arguments are bound the way
 * Python binds them (positional, then by keyword) from the tables below.
 */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "jinja_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* Filters                                                                                    */

static int f_default(struct teval* ev, const char* name, const struct tval* v,
                     const struct fargs* a, const struct tval** ret) {
    (void)name;
    bool boolean, use = v->type == TV_UNDEF;
    if (ttruth_or(ev, a->p[1], false, &boolean) < 0)
        return -EINVAL;
    if (!use && boolean) {
        bool t;
        if (tv_truth(ev, v, &t) < 0)
            return -EINVAL;
        use = !t;
    }
    *ret = use ? (a->p[0] ? a->p[0] : tv_cstr(ev, "")) : v;
    return 0;
}

static int f_string(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    (void)name;
    (void)a;
    return tstr_of(ev, v, ret);
}

static int f_case(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)a;
    const struct tval* s;
    if (tstr_of(ev, v, &s) < 0)
        return -EINVAL;
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        *ret = tmap_chars(ev, s, name[0] == 'l' ? tlower_c : tupper_c);
        return 0;
    }
    char* d = arena_strndup(ev->arena, s->u.str.s, s->u.str.len);
    for (size_t i = 0; i < s->u.str.len; i++) {
        bool start = i == 0;
        if (!strcmp(name, "title")) /* jinja's title: words start after [-\s({\[<] */
            start = i == 0 || py_isspace(d[i - 1]) || strchr("-({[<", d[i - 1]);
        d[i] = start ? tupper_c(d[i]) : tlower_c(d[i]);
    }
    *ret = tv_str(ev, d, s->u.str.len);
    return 0;
}

static int iter_of(struct teval* ev, const struct tval* v, const struct tval*** items, size_t* n) {
    return titer(ev, v, items, n);
}

static int f_length(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    (void)name;
    (void)a;
    const struct tval** items;
    size_t n;
    if (v->type == TV_STR)
        n = v->u.str.len;
    else if (v->type == TV_DICT && !(v->flags & TVF_NAMESPACE))
        n = v->u.dict.n;
    else if (v->type != TV_LIST && !(v->type == TV_UNDEF && (v->flags & TVF_LENIENT)))
        return tundef_strict(v)
                   ? tv_undefined_error(ev, v)
                   : teval_fail(ev, "object of type '%s' has no len()", tv_type_name(v));
    else if (iter_of(ev, v, &items, &n) < 0)
        return -EINVAL;
    *ret = tv_int(ev, (int64_t)n);
    return 0;
}

static int f_join(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)name;
    const struct tval** items;
    size_t n;
    const struct tval* sep = tv_cstr(ev, "");
    if ((a->p[0] && tstr_of(ev, a->p[0], &sep) < 0) || iter_of(ev, v, &items, &n) < 0)
        return -EINVAL;
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        const struct tval* item = items[i];
        if (i)
            strbuf_append(&sb, sep->u.str.s, sep->u.str.len);
        if ((a->p[1] && titem_key(ev, item, a->p[1], true, &item) < 0) ||
            tv_to_str(ev, item, &sb) < 0 || tv_check_size(ev, sb.len) < 0) {
            strbuf_free(&sb);
            return -EINVAL;
        }
    }
    *ret = tstr_from_sb(ev, &sb);
    return 0;
}

/* int(value, default=0, base=10) and float(value, default=0.0) */
static int f_number(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    bool to_int  = name[0] == 'i';
    int64_t base = 10;
    if (v->type == TV_UNDEF) /* int(Undefined) fails even for the lenient kind */
        return teval_fail(ev, "%s", v->u.str.s);
    if (to_int && a->p[1] && twant_int(ev, name, a->p[1], &base) < 0)
        return -EINVAL;
    if (v->type == TV_INT || v->type == TV_BOOL) {
        int64_t i = v->type == TV_INT ? v->u.i : v->u.b;
        *ret      = to_int ? tv_int(ev, i) : tv_float(ev, (double)i);
        return 0;
    }
    double d  = 0;
    bool okay = false;
    if (v->type == TV_FLOAT) {
        d    = v->u.f;
        okay = true;
    } else if (v->type == TV_STR) {
        int64_t i;
        if (to_int && py_parse_int(v->u.str.s, v->u.str.len, (int)base, &i)) {
            *ret = tv_int(ev, i);
            return 0;
        }
        /* jinja: "42.23"|int is 42 */
        okay = py_parse_float(v->u.str.s, v->u.str.len, &d);
    }
    if (okay && to_int && isinf(d))
        return teval_fail(ev, "cannot convert float infinity to integer");
    okay = okay && !(to_int && isnan(d));
    if (okay && to_int && fabs(d) >= 9.2e18)
        return teval_fail(ev, "integer overflow (moat's integers are 64-bit)");
    if (!okay)
        *ret = a->p[0] ? a->p[0] : to_int ? tv_int(ev, 0) : tv_float(ev, 0.0);
    else
        *ret = to_int ? tv_int(ev, (int64_t)d) : tv_float(ev, d);
    return 0;
}

static int f_first_last(struct teval* ev, const char* name, const struct tval* v,
                        const struct fargs* a, const struct tval** ret) {
    (void)a;
    const struct tval** items;
    size_t n;
    if (iter_of(ev, v, &items, &n) < 0)
        return -EINVAL;
    bool first = name[0] == 'f';
    *ret       = n ? items[first ? 0 : n - 1]
                   : tv_undef_msg(ev, false, "No %s item, sequence was empty.", first ? "first" : "last");
    return 0;
}

static int f_list(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)name;
    (void)a;
    const struct tval** items;
    size_t n;
    if (iter_of(ev, v, &items, &n) < 0)
        return -EINVAL;
    *ret = tv_list(ev, items, n);
    return 0;
}

/* sort(reverse=False, case_sensitive=False, attribute=None) */
static int f_sort(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)name;
    const struct tval** items;
    size_t n;
    bool reverse, cs;
    if (iter_of(ev, v, &items, &n) < 0 || ttruth_or(ev, a->p[0], false, &reverse) < 0 ||
        ttruth_or(ev, a->p[1], false, &cs) < 0 ||
        tsorted_items(ev, items, n, a->p[2], cs, reverse, &items) < 0)
        return -EINVAL;
    *ret = tv_list(ev, items, n);
    return 0;
}

/* unique(case_sensitive=False, attribute=None) */
static int f_unique(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    (void)name;
    const struct tval** items;
    size_t n, m = 0;
    bool cs;
    if (iter_of(ev, v, &items, &n) < 0 || ttruth_or(ev, a->p[0], false, &cs) < 0)
        return -EINVAL;
    const struct tval** out  = arena_alloc(ev->arena, (n + 1) * sizeof(*out));
    const struct tval** keys = arena_alloc(ev->arena, (n + 1) * sizeof(*keys));
    for (size_t i = 0; i < n; i++) {
        const struct tval* k;
        if (titem_key(ev, items[i], a->p[1], cs, &k) < 0)
            return -EINVAL;
        if ((k->type == TV_LIST && !(k->flags & TVF_TUPLE)) ||
            (k->type == TV_DICT && !(k->flags & TVF_NAMESPACE)))
            return teval_fail(ev, "unhashable type: '%s'", tv_type_name(k));
        bool dup = false;
        for (size_t j = 0; j < m && !dup; j++)
            dup = tv_equal(keys[j], k);
        if (!dup) {
            keys[m]  = k;
            out[m++] = items[i];
        }
    }
    *ret = tv_list(ev, out, m);
    return 0;
}

/* min/max(case_sensitive=False, attribute=None): the first smallest/largest item */
static int f_minmax(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    const struct tval** items;
    size_t n;
    bool cs;
    if (iter_of(ev, v, &items, &n) < 0 || ttruth_or(ev, a->p[0], false, &cs) < 0)
        return -EINVAL;
    if (!n) {
        *ret = tv_undef_msg(ev, false, "No aggregated item, sequence was empty.");
        return 0;
    }
    size_t best = 0;
    const struct tval* best_key;
    if (titem_key(ev, items[0], a->p[1], cs, &best_key) < 0)
        return -EINVAL;
    for (size_t i = 1; i < n; i++) {
        const struct tval* k;
        int c;
        if (titem_key(ev, items[i], a->p[1], cs, &k) < 0 || tv_compare(ev, k, best_key, &c) < 0)
            return -EINVAL;
        if (name[1] == 'i' ? c < 0 : c > 0) {
            best     = i;
            best_key = k;
        }
    }
    *ret = items[best];
    return 0;
}

/* sum(attribute=None, start=0) */
static int f_sum(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                 const struct tval** ret) {
    (void)name;
    const struct tval** items;
    size_t n;
    const struct tval* acc = a->p[1] ? a->p[1] : tv_int(ev, 0);
    if (acc->type == TV_STR)
        return teval_fail(ev, "sum() can't sum strings [use ''.join(seq) instead]");
    if (iter_of(ev, v, &items, &n) < 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        const struct tval* k;
        if (titem_key(ev, items[i], a->p[0], true, &k) < 0 || teval_add(ev, acc, k, &acc) < 0)
            return -EINVAL;
    }
    *ret = acc;
    return 0;
}

static int f_reverse(struct teval* ev, const char* name, const struct tval* v,
                     const struct fargs* a, const struct tval** ret) {
    (void)name;
    (void)a;
    if (v->type == TV_STR) {
        char* d = arena_strndup(ev->arena, v->u.str.s, v->u.str.len);
        for (size_t i = 0; i < v->u.str.len; i++)
            d[i] = v->u.str.s[v->u.str.len - 1 - i];
        *ret = tv_str(ev, d, v->u.str.len);
        return 0;
    }
    const struct tval** items;
    size_t n;
    if (iter_of(ev, v, &items, &n) < 0)
        return -EINVAL;
    const struct tval** out = arena_alloc(ev->arena, (n + 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = items[n - 1 - i];
    *ret = tv_list(ev, out, n);
    return 0;
}

static int f_abs(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                 const struct tval** ret) {
    (void)name;
    (void)a;
    if (v->type == TV_INT || v->type == TV_BOOL) {
        int64_t i = v->type == TV_INT ? v->u.i : v->u.b;
        if (i == INT64_MIN)
            return teval_fail(ev, "integer overflow (moat's integers are 64-bit)");
        *ret = tv_int(ev, i < 0 ? -i : i);
    } else if (v->type == TV_FLOAT) {
        *ret = tv_float(ev, fabs(v->u.f));
    } else {
        return tundef_strict(v)
                   ? tv_undefined_error(ev, v)
                   : teval_fail(ev, "bad operand type for abs(): '%s'", tv_type_name(v));
    }
    return 0;
}

/* round(precision=0, method='common'): Python's round() (half to even on the exact binary
 * value, which printf's %.Nf also does), or math.ceil/floor scaled by 10**precision. */
static int f_round(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                   const struct tval** ret) {
    (void)name;
    int64_t prec = 0;
    if (a->p[0] && twant_int(ev, "round", a->p[0], &prec) < 0)
        return -EINVAL;
    const char* method = "common";
    if (a->p[1]) {
        if (twant_str(ev, "round", a->p[1]) < 0)
            return -EINVAL;
        method = a->p[1]->u.str.s;
    }
    bool common = !strcmp(method, "common");
    if (!common && strcmp(method, "ceil") && strcmp(method, "floor"))
        return teval_fail(ev, "method must be common, ceil or floor");
    if (v->type != TV_INT && v->type != TV_BOOL && v->type != TV_FLOAT)
        return tundef_strict(v)
                   ? tv_undefined_error(ev, v)
                   : teval_fail(ev, "round(): expected a number, got %s", tv_type_name(v));
    double d = v->type == TV_FLOAT ? v->u.f : (double)(v->type == TV_INT ? v->u.i : v->u.b);
    if (prec < 0 || prec > 330) {
        if (prec < 0)
            return teval_fail(ev, "round(): negative precision is not supported");
        *ret = common && v->type != TV_FLOAT ? v : tv_float(ev, d);
        return 0;
    }
    if (common) {
        if (v->type != TV_FLOAT) {
            *ret = tv_int(ev, v->type == TV_INT ? v->u.i : v->u.b);
            return 0;
        }
        struct strbuf sb = STRBUF_INIT;
        strbuf_printf(&sb, "%.*f", (int)prec, d);
        *ret = tv_float(ev, isfinite(d) ? strtod(sb.buf, NULL) : d);
        strbuf_free(&sb);
        return 0;
    }
    double scale = pow(10.0, (double)prec);
    double r     = method[0] == 'c' ? ceil(d * scale) : floor(d * scale);
    *ret         = tv_float(ev, r / scale);
    return 0;
}

static int f_replace(struct teval* ev, const char* name, const struct tval* v,
                     const struct fargs* a, const struct tval** ret) {
    (void)name;
    const struct tval *s, *old, *new;
    int64_t count = -1;
    if (tstr_of(ev, v, &s) < 0 || tstr_of(ev, a->p[0], &old) < 0 ||
        tstr_of(ev, a->p[1], &new) < 0 ||
        (a->p[2] && a->p[2]->type != TV_NONE && twant_int(ev, "replace", a->p[2], &count) < 0))
        return -EINVAL;
    *ret = tstr_replace(ev, s, old, new, count);
    return tv_check_size(ev, (*ret)->u.str.len);
}

static int f_trim(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)name;
    const struct tval* s;
    if (tstr_of(ev, v, &s) < 0 ||
        (a->p[0] && a->p[0]->type != TV_NONE && twant_str(ev, "trim", a->p[0]) < 0))
        return -EINVAL;
    *ret = tstr_strip(ev, s, a->p[0], true, true);
    return 0;
}

static int f_center(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    (void)name;
    const struct tval* s;
    int64_t width = 80;
    if (tstr_of(ev, v, &s) < 0 || (a->p[0] && twant_int(ev, "center", a->p[0], &width) < 0))
        return -EINVAL;
    *ret = tstr_justify(ev, s, width, ' ', 'c');
    return 0;
}

/* indent(width=4, first=False, blank=False) */
static int f_indent(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    (void)name;
    bool first, blank;
    if (twant_str(ev, "indent", v) < 0 || ttruth_or(ev, a->p[1], false, &first) < 0 ||
        ttruth_or(ev, a->p[2], false, &blank) < 0)
        return -EINVAL;
    const struct tval* ind = NULL;
    if (a->p[0] && a->p[0]->type == TV_STR) {
        ind = a->p[0];
    } else {
        int64_t w = 4;
        if (a->p[0] && twant_int(ev, "indent", a->p[0], &w) < 0)
            return -EINVAL;
        ind = tstr_justify(ev, tv_cstr(ev, ""), w, ' ', 'l');
    }
    struct strbuf sb = STRBUF_INIT;
    if (first)
        strbuf_append(&sb, ind->u.str.s, ind->u.str.len);
    const char* s = v->u.str.s;
    size_t len = v->u.str.len, start = 0;
    bool first_line = true;
    /* s + "\n" split into lines, joined with "\n" + indent (blank lines too with blank=True) */
    for (size_t i = 0; i <= len; i++) {
        size_t le = i < len ? tline_end(s, len, i) : 1;
        if (!le)
            continue;
        if (!first_line) {
            strbuf_putc(&sb, '\n');
            if (blank || i > start)
                strbuf_append(&sb, ind->u.str.s, ind->u.str.len);
        }
        strbuf_append(&sb, s + start, i - start);
        first_line = false;
        i += le - 1;
        start = i + 1;
        if (sb.len > MAX_STR_SIZE)
            break;
    }
    *ret = tstr_from_sb(ev, &sb);
    return tv_check_size(ev, (*ret)->u.str.len);
}

/* truncate(length=255, killwords=False, end='...', leeway=None) */
static int f_truncate(struct teval* ev, const char* name, const struct tval* v,
                      const struct fargs* a, const struct tval** ret) {
    (void)name;
    int64_t length = 255, leeway = 5;
    bool killwords;
    const struct tval* end = a->p[2] ? a->p[2] : tv_cstr(ev, "...");
    if (v->type != TV_STR) { /* len(s) <= length + leeway: returned as it is (lists too) */
        const struct tval* n;
        struct fargs none = {0};
        if (f_length(ev, "length", v, &none, &n) < 0)
            return -EINVAL;
        if (n->u.i <= (a->p[0] && a->p[0]->type == TV_INT ? a->p[0]->u.i : 255) + 5) {
            *ret = v;
            return 0;
        }
    }
    if (twant_str(ev, "truncate", v) < 0 ||
        (a->p[0] && twant_int(ev, "truncate", a->p[0], &length) < 0) ||
        ttruth_or(ev, a->p[1], false, &killwords) < 0 || twant_str(ev, "truncate", end) < 0 ||
        (a->p[3] && a->p[3]->type != TV_NONE && twant_int(ev, "truncate", a->p[3], &leeway) < 0))
        return -EINVAL;
    if (length < (int64_t)end->u.str.len)
        return teval_fail(ev, "expected length >= %zu, got %lld", end->u.str.len,
                          (long long)length);
    if (leeway < 0)
        return teval_fail(ev, "expected leeway >= 0, got %lld", (long long)leeway);
    if ((int64_t)v->u.str.len <= length + leeway) {
        *ret = v;
        return 0;
    }
    size_t keep = (size_t)length - end->u.str.len;
    if (!killwords) {
        const char* sp = NULL;
        for (size_t i = keep; i > 0 && !sp; i--)
            if (v->u.str.s[i - 1] == ' ')
                sp = v->u.str.s + i - 1;
        if (sp)
            keep = (size_t)(sp - v->u.str.s);
    }
    struct strbuf sb = STRBUF_INIT;
    strbuf_append(&sb, v->u.str.s, keep);
    strbuf_append(&sb, end->u.str.s, end->u.str.len);
    *ret = tstr_from_sb(ev, &sb);
    return 0;
}

static int f_wordcount(struct teval* ev, const char* name, const struct tval* v,
                       const struct fargs* a, const struct tval** ret) {
    (void)name;
    (void)a;
    const struct tval* s;
    if (tstr_of(ev, v, &s) < 0)
        return -EINVAL;
    int64_t n    = 0;
    bool in_word = false;
    for (size_t i = 0; i < s->u.str.len; i++) {
        char c = s->u.str.s[i];
        bool w = tis_alpha(c) || tis_digit(c) || c == '_' || (unsigned char)c >= 0x80;
        n += w && !in_word;
        in_word = w;
    }
    *ret = tv_int(ev, n);
    return 0;
}

static const struct tval* markup(struct teval* ev, const struct tval* s) {
    struct tval* m = (struct tval*)tv_str(ev, s->u.str.s, s->u.str.len);
    m->flags       = TVF_MARKUP;
    return m;
}

/* markupsafe.escape: a Markup value is already escaped (forceescape escapes it again) */
static int f_escape(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    (void)a;
    const struct tval* s;
    if (v->type == TV_STR && (v->flags & TVF_MARKUP) && name[0] != 'f') {
        *ret = v;
        return 0;
    }
    if (tstr_of(ev, v, &s) < 0)
        return -EINVAL;
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < s->u.str.len; i++) {
        char c          = s->u.str.s[i];
        const char* rep = c == '&'    ? "&amp;"
                          : c == '<'  ? "&lt;"
                          : c == '>'  ? "&gt;"
                          : c == '"'  ? "&#34;"
                          : c == '\'' ? "&#39;"
                                      : NULL;
        if (rep)
            strbuf_puts(&sb, rep);
        else
            strbuf_putc(&sb, c);
    }
    *ret = markup(ev, tstr_from_sb(ev, &sb));
    return tv_check_size(ev, (*ret)->u.str.len);
}

static int f_safe(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)name;
    (void)a;
    const struct tval* s;
    if (tstr_of(ev, v, &s) < 0)
        return -EINVAL;
    *ret = markup(ev, s);
    return 0;
}

/* format(*args, **kwargs): str(value) % (kwargs or args) */
static int f_format(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    (void)name;
    const struct tval* s;
    if (tstr_of(ev, v, &s) < 0)
        return -EINVAL;
    if (a->nargs && a->nkw)
        return teval_fail(ev, "can't handle positional and keyword arguments at the same time");
    const struct tval* args;
    if (a->nkw) {
        const char** keys          = arena_alloc(ev->arena, a->nkw * sizeof(*keys));
        const struct tval** values = arena_alloc(ev->arena, a->nkw * sizeof(*values));
        for (size_t i = 0; i < a->nkw; i++) {
            keys[i]   = a->kw[i].name;
            values[i] = a->kw[i].value;
        }
        args = tv_dict(ev, keys, values, a->nkw);
    } else {
        args = tv_tuple(ev, (const struct tval**)a->args, a->nargs);
    }
    return teval_percent_format(ev, s, args, ret);
}

/* json.dumps(value, sort_keys=True, indent=indent) made HTML-safe as jinja's htmlsafe_json_dumps
 * does (<, >, &, ' as \u escapes). */
static int json_str(struct strbuf* sb, const char* s, size_t len) {
    strbuf_putc(sb, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp     = c;
        size_t n        = 1;
        if (c >= 0x80) { /* ensure_ascii: decode UTF-8 */
            n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (i + n > len)
                return -EINVAL;
            cp = c & (0x7f >> n);
            for (size_t k = 1; k < n; k++)
                cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3f);
        }
        i += n;
        const char* short_esc = cp == '"'    ? "\\\""
                                : cp == '\\' ? "\\\\"
                                : cp == '\n' ? "\\n"
                                : cp == '\r' ? "\\r"
                                : cp == '\t' ? "\\t"
                                : cp == '\b' ? "\\b"
                                : cp == '\f' ? "\\f"
                                             : NULL;
        if (short_esc)
            strbuf_puts(sb, short_esc);
        else if (cp >= 0x10000)
            strbuf_printf(sb, "\\u%04x\\u%04x", 0xd800 + ((cp - 0x10000) >> 10),
                          0xdc00 + ((cp - 0x10000) & 0x3ff));
        else if (cp < 0x20 || cp >= 0x7f || strchr("<>&'", (int)cp))
            strbuf_printf(sb, "\\u%04x", cp);
        else
            strbuf_putc(sb, (char)cp);
    }
    strbuf_putc(sb, '"');
    return 0;
}

static int json_dump(struct teval* ev, const struct tval* v, int64_t indent, int depth,
                     struct strbuf* sb) {
    if (depth > 64)
        return teval_fail(ev, "tojson: value nested too deeply");
    switch (v->type) {
        case TV_NONE:
            strbuf_puts(sb, "null");
            return 0;
        case TV_BOOL:
            strbuf_puts(sb, v->u.b ? "true" : "false");
            return 0;
        case TV_INT:
            return tv_to_str(ev, v, sb);
        case TV_FLOAT:
            if (isnan(v->u.f) || isinf(v->u.f)) {
                strbuf_puts(sb, isnan(v->u.f) ? "NaN" : v->u.f > 0 ? "Infinity" : "-Infinity");
                return 0;
            }
            return tv_to_str(ev, v, sb);
        case TV_STR:
            if (json_str(sb, v->u.str.s, v->u.str.len) < 0)
                return teval_fail(ev, "tojson: invalid UTF-8 in a string");
            return 0;
        case TV_LIST:
        case TV_DICT: {
            bool is_dict              = v->type == TV_DICT;
            size_t n                  = is_dict ? v->u.dict.n : v->u.list.n;
            const struct tval** order = NULL;
            if (is_dict) { /* sort_keys=True */
                const struct tval** keys = arena_alloc(ev->arena, (n + 1) * sizeof(*keys));
                for (size_t i = 0; i < n; i++)
                    keys[i] = tv_cstr(ev, v->u.dict.items[i].key);
                if (tsorted_items(ev, keys, n, NULL, true, false, &order) < 0)
                    return -EINVAL;
            }
            strbuf_putc(sb, is_dict ? '{' : '[');
            for (size_t i = 0; i < n; i++) {
                if (i)
                    strbuf_putc(sb, ',');
                if (indent >= 0) {
                    strbuf_putc(sb, '\n');
                    for (int64_t k = 0; k < indent * (depth + 1); k++)
                        strbuf_putc(sb, ' ');
                } else if (i) {
                    strbuf_putc(sb, ' ');
                }
                const struct tval* item =
                    is_dict ? tv_dict_get(v, order[i]->u.str.s) : v->u.list.items[i];
                if (is_dict) {
                    (void)json_str(sb, order[i]->u.str.s, order[i]->u.str.len);
                    strbuf_puts(sb, ": ");
                }
                if (json_dump(ev, item, indent, depth + 1, sb) < 0)
                    return -EINVAL;
                if (sb->len > MAX_STR_SIZE)
                    return tv_check_size(ev, sb->len);
            }
            if (indent >= 0 && n) {
                strbuf_putc(sb, '\n');
                for (int64_t k = 0; k < indent * depth; k++)
                    strbuf_putc(sb, ' ');
            }
            strbuf_putc(sb, is_dict ? '}' : ']');
            return 0;
        }
        case TV_UNDEF:
            if (tundef_strict(v))
                return tv_undefined_error(ev, v);
            /* fallthrough */
        default:
            return teval_fail(ev, "Object of type %s is not JSON serializable", tv_type_name(v));
    }
}

static int f_tojson(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    (void)name;
    int64_t indent = -1;
    if (a->p[0] && a->p[0]->type != TV_NONE &&
        (twant_int(ev, "tojson", a->p[0], &indent) < 0 || indent > 64))
        return indent > 64 ? teval_fail(ev, "tojson: indent too large") : -EINVAL;
    struct strbuf sb = STRBUF_INIT;
    if (json_dump(ev, v, indent < 0 ? -1 : indent, 0, &sb) < 0) {
        strbuf_free(&sb);
        return -EINVAL;
    }
    *ret = markup(ev, tstr_from_sb(ev, &sb));
    return 0;
}

static const struct tval* dict_items(struct teval* ev, const struct tval* d) {
    const struct tval** items = arena_alloc(ev->arena, (d->u.dict.n + 1) * sizeof(*items));
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const struct tval* pair[2] = {tv_cstr(ev, d->u.dict.items[i].key),
                                      d->u.dict.items[i].value};
        items[i]                   = tv_tuple(ev, pair, 2);
    }
    return tv_list(ev, items, d->u.dict.n);
}

static bool is_mapping(const struct tval* v) {
    return v->type == TV_DICT && !(v->flags & TVF_NAMESPACE);
}

static int f_items(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                   const struct tval** ret) {
    (void)name;
    (void)a;
    if (v->type == TV_UNDEF) {
        *ret = tv_list(ev, NULL, 0);
        return 0;
    }
    if (!is_mapping(v))
        return teval_fail(ev, "Can only get item pairs from a mapping.");
    *ret = dict_items(ev, v);
    return 0;
}

/* dictsort(case_sensitive=False, by='key', reverse=False) */
static int f_dictsort(struct teval* ev, const char* name, const struct tval* v,
                      const struct fargs* a, const struct tval** ret) {
    (void)name;
    bool cs, reverse;
    if (tundef_strict(v))
        return tv_undefined_error(ev, v);
    if (!is_mapping(v))
        return teval_fail(ev, "dictsort(): expected a mapping, got %s", tv_type_name(v));
    if (ttruth_or(ev, a->p[0], false, &cs) < 0 || ttruth_or(ev, a->p[2], false, &reverse) < 0)
        return -EINVAL;
    int64_t pos = 0;
    if (a->p[1]) {
        if (twant_str(ev, "dictsort", a->p[1]) < 0)
            return -EINVAL;
        if (strcmp(a->p[1]->u.str.s, "key") && strcmp(a->p[1]->u.str.s, "value"))
            return teval_fail(ev, "You can only sort by either \"key\" or \"value\"");
        pos = a->p[1]->u.str.s[0] == 'v';
    }
    const struct tval* items = dict_items(ev, v);
    const struct tval** sorted;
    if (tsorted_items(ev, items->u.list.items, items->u.list.n, tv_int(ev, pos), cs, reverse,
                      &sorted) < 0)
        return -EINVAL;
    *ret = tv_list(ev, sorted, items->u.list.n);
    return 0;
}

/* batch(linecount, fill_with=None) */
static int f_batch(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                   const struct tval** ret) {
    (void)name;
    int64_t count;
    const struct tval** items;
    size_t n;
    if (twant_int(ev, "batch", a->p[0], &count) < 0 || iter_of(ev, v, &items, &n) < 0)
        return -EINVAL;
    if (count <= 0)
        return teval_fail(ev, "batch(): linecount must be positive");
    size_t per = (size_t)count, nb = (n + per - 1) / per;
    if (a->p[1] && a->p[1]->type != TV_NONE && per > MAX_LIST_ITEMS)
        return teval_fail(ev, "batch(): linecount too large");
    const struct tval** out = arena_alloc(ev->arena, (nb + 1) * sizeof(*out));
    for (size_t b = 0; b < nb; b++) {
        size_t m                  = n - b * per < per ? n - b * per : per;
        bool fill                 = m < per && a->p[1] && a->p[1]->type != TV_NONE;
        const struct tval** chunk = arena_alloc(ev->arena, ((fill ? per : m) + 1) * sizeof(*chunk));
        memcpy(chunk, items + b * per, m * sizeof(*chunk));
        for (size_t k = m; fill && k < per; k++)
            chunk[k] = a->p[1];
        out[b] = tv_list(ev, chunk, fill ? per : m);
    }
    *ret = tv_list(ev, out, nb);
    return 0;
}

static int f_attr(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)name;
    if (twant_str(ev, "attr", a->p[0]) < 0)
        return -EINVAL;
    if (v->type == TV_UNDEF)
        return tv_undefined_error(ev, v);
    /* getattr only: dict keys are not attributes */
    const struct tval* m = tmethod_get(ev, v, a->p[0]->u.str.s);
    if (!m && (v->type == TV_LOOP || (v->flags & TVF_NAMESPACE)))
        return teval_getattr(ev, v, a->p[0]->u.str.s, ret);
    *ret = m ? m
             : tv_undef_msg(ev, false, "'%s' has no attribute '%s'", tv_object_repr(v),
                            a->p[0]->u.str.s);
    return 0;
}

/* map(filter, *args, **kwargs) or map(attribute=..., default=...) */
static int f_map(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                 const struct tval** ret) {
    (void)name;
    const struct tval** items = NULL;
    size_t n                  = 0;
    bool any;
    if (tv_truth(ev, v, &any) < 0 || (any && iter_of(ev, v, &items, &n) < 0))
        return -EINVAL;
    if (!any) /* jinja: `if value:` before iterating */
        n = 0;
    const struct tval *attribute = NULL, *dflt = NULL;
    if (!a->nargs) {
        for (size_t k = 0; k < a->nkw; k++) {
            if (!strcmp(a->kw[k].name, "attribute"))
                attribute = a->kw[k].value;
            else if (!strcmp(a->kw[k].name, "default"))
                dflt = a->kw[k].value;
            else
                return teval_fail(ev, "Unexpected keyword argument '%s'", a->kw[k].name);
        }
        if (!attribute)
            return teval_fail(ev, "map requires a filter argument");
    } else if (twant_str(ev, "map", a->args[0]) < 0) {
        return -EINVAL;
    }
    const struct tval** out = arena_alloc(ev->arena, (n + 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        if (attribute) {
            if (titem_key(ev, items[i], attribute, true, &out[i]) < 0)
                return -EINVAL;
            if (out[i]->type == TV_UNDEF && dflt)
                out[i] = dflt;
        } else if (tfilter_apply(ev, a->args[0]->u.str.s, items[i], a->args + 1, a->nargs - 1,
                                 a->kw, a->nkw, &out[i]) < 0) {
            return -EINVAL;
        }
    }
    *ret = tv_list(ev, out, n);
    return 0;
}

/* select/reject(test, *args) and selectattr/rejectattr(attribute, test, *args) */
static int f_select(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                    const struct tval** ret) {
    bool by_attr = strstr(name, "attr") != NULL, want = name[0] == 's';
    const struct tval** items = NULL;
    size_t n = 0, m = 0, first = by_attr;
    bool any;
    if (tv_truth(ev, v, &any) < 0 || (any && iter_of(ev, v, &items, &n) < 0))
        return -EINVAL;
    if (!any) /* jinja: `if value:` before iterating */
        n = 0;
    if (by_attr && !a->nargs)
        return teval_fail(ev, "Missing parameter for attribute name");
    const char* test = NULL;
    if (a->nargs > first) {
        if (twant_str(ev, name, a->args[first]) < 0)
            return -EINVAL;
        test = a->args[first]->u.str.s;
    }
    const struct tval** out = arena_alloc(ev->arena, (n + 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        const struct tval* x = items[i];
        bool t;
        if (by_attr && titem_key(ev, x, a->args[0], true, &x) < 0)
            return -EINVAL;
        if (test ? ttest_apply(ev, test, x, a->args + first + 1, a->nargs - first - 1, a->kw,
                               a->nkw, &t) < 0
                 : tv_truth(ev, x, &t) < 0)
            return -EINVAL;
        if (t == want)
            out[m++] = items[i];
    }
    *ret = tv_list(ev, out, m);
    return 0;
}

#define P(...) \
    { __VA_ARGS__, NULL }
static const struct tentry g_filters[] = {
    {"abs", f_abs, P(NULL), 0},
    {"attr", f_attr, P("name"), 1},
    {"batch", f_batch, P("linecount", "fill_with"), 1},
    {"capitalize", f_case, P(NULL), 0},
    {"center", f_center, P("width"), 0},
    {"count", f_length, P(NULL), 0},
    {"d", f_default, P("default_value", "boolean"), 0},
    {"default", f_default, P("default_value", "boolean"), 0},
    {"dictsort", f_dictsort, P("case_sensitive", "by", "reverse"), 0},
    {"e", f_escape, P(NULL), 0},
    {"escape", f_escape, P(NULL), 0},
    {"first", f_first_last, P(NULL), 0},
    {"float", f_number, P("default"), 0},
    {"forceescape", f_escape, P(NULL), 0},
    {"format", f_format, P("*"), 0},
    {"indent", f_indent, P("width", "first", "blank"), 0},
    {"int", f_number, P("default", "base"), 0},
    {"items", f_items, P(NULL), 0},
    {"join", f_join, P("d", "attribute"), 0},
    {"last", f_first_last, P(NULL), 0},
    {"length", f_length, P(NULL), 0},
    {"list", f_list, P(NULL), 0},
    {"lower", f_case, P(NULL), 0},
    {"map", f_map, P("*"), 0},
    {"max", f_minmax, P("case_sensitive", "attribute"), 0},
    {"min", f_minmax, P("case_sensitive", "attribute"), 0},
    {"reject", f_select, P("*"), 0},
    {"rejectattr", f_select, P("*"), 0},
    {"replace", f_replace, P("old", "new", "count"), 2},
    {"reverse", f_reverse, P(NULL), 0},
    {"round", f_round, P("precision", "method"), 0},
    {"safe", f_safe, P(NULL), 0},
    {"select", f_select, P("*"), 0},
    {"selectattr", f_select, P("*"), 0},
    {"sort", f_sort, P("reverse", "case_sensitive", "attribute"), 0},
    {"string", f_string, P(NULL), 0},
    {"sum", f_sum, P("attribute", "start"), 0},
    {"title", f_case, P(NULL), 0},
    {"tojson", f_tojson, P("indent"), 0},
    {"trim", f_trim, P("chars"), 0},
    {"truncate", f_truncate, P("length", "killwords", "end", "leeway"), 0},
    {"unique", f_unique, P("case_sensitive", "attribute"), 0},
    {"upper", f_case, P(NULL), 0},
    {"wordcount", f_wordcount, P(NULL), 0},
};

bool tfilter_exists(const char* name) {
    return tfind_entry(g_filters, ARRAY_SIZE(g_filters), name) != NULL;
}

int tfilter_apply(struct teval* ev, const char* name, const struct tval* v,
                  const struct tval* const* args, size_t nargs, const struct tkwarg* kw, size_t nkw,
                  const struct tval** ret) {
    const struct tentry* t = tfind_entry(g_filters, ARRAY_SIZE(g_filters), name);
    if (!t)
        return teval_fail(ev, "no filter named '%s'", name);
    struct fargs a;
    if (tbind(ev, t, args, nargs, kw, nkw, &a) < 0)
        return -EINVAL;
    /* only default() and items() look at an undefined value without failing */
    if (tundef_strict(v) && t->fn != f_default && t->fn != f_items)
        return tv_undefined_error(ev, v);
    return t->fn(ev, name, v, &a, ret);
}
