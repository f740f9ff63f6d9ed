/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Jinja's builtin tests (jinja2/tests.py, 3.1), the methods of str, dict, list and
 * pathlib.Path values that templates call (Python semantics), and the argument binding and
 * string helpers shared with the filters.
 */
#include <limits.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "jinja_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* Argument binding and helpers                                                               */

int tbind(struct teval* ev, const struct tentry* t, const struct tval* const* args, size_t nargs,
          const struct tkwarg* kw, size_t nkw, struct fargs* a) {
    *a = (struct fargs){.args = args, .nargs = nargs, .kw = kw, .nkw = nkw};
    if (t->params[0] && !strcmp(t->params[0], "*"))
        return 0;
    size_t n = 0;
    while (n < ARRAY_SIZE(t->params) && t->params[n])
        n++;
    if (nargs > n)
        return teval_fail(ev, "%s() takes at most %zu argument%s (%zu given)", t->name, n,
                          n == 1 ? "" : "s", nargs);
    for (size_t i = 0; i < nargs; i++)
        a->p[i] = args[i];
    for (size_t k = 0; k < nkw; k++) {
        size_t j = 0;
        while (j < n && strcmp(t->params[j], kw[k].name))
            j++;
        if (j == n)
            return teval_fail(ev, "%s() got an unexpected keyword argument '%s'", t->name,
                              kw[k].name);
        if (a->p[j])
            return teval_fail(ev, "%s() got multiple values for argument '%s'", t->name,
                              kw[k].name);
        a->p[j] = kw[k].value;
    }
    for (size_t i = 0; i < t->nrequired; i++)
        if (!a->p[i])
            return teval_fail(ev, "%s() missing required argument '%s'", t->name, t->params[i]);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Argument helpers                                                                           */

int twant_str(struct teval* ev, const char* fn, const struct tval* v) {
    if (tundef_strict(v))
        return tv_undefined_error(ev, v);
    if (v->type != TV_STR)
        return teval_fail(ev, "%s(): expected a string, got %s", fn, tv_type_name(v));
    return 0;
}

int twant_int(struct teval* ev, const char* fn, const struct tval* v, int64_t* ret) {
    if (tundef_strict(v))
        return tv_undefined_error(ev, v);
    if (v->type != TV_INT && v->type != TV_BOOL)
        return teval_fail(ev, "%s(): expected an integer, got %s", fn, tv_type_name(v));
    *ret = v->type == TV_INT ? v->u.i : v->u.b;
    return 0;
}

int ttruth_or(struct teval* ev, const struct tval* v, bool dflt, bool* ret) {
    if (!v) {
        *ret = dflt;
        return 0;
    }
    return tv_truth(ev, v, ret);
}

/* soft_str(v): str() as a string value (fails for StrictUndefined). */
int tstr_of(struct teval* ev, const struct tval* v, const struct tval** ret) {
    *ret = tv_str_of(ev, v);
    return *ret ? 0 : -EINVAL;
}

const struct tval* tstr_from_sb(struct teval* ev, struct strbuf* sb) {
    const struct tval* v = tv_str(ev, sb->buf ? sb->buf : "", sb->len);
    strbuf_free(sb);
    return v;
}

const struct tval* tmap_chars(struct teval* ev, const struct tval* s, char (*f)(char)) {
    char* d = arena_strndup(ev->arena, s->u.str.s, s->u.str.len);
    for (size_t i = 0; i < s->u.str.len; i++)
        d[i] = f(d[i]);
    struct tval* v = (struct tval*)tv_str(ev, "", 0);
    v->u.str.s     = d;
    v->u.str.len   = s->u.str.len;
    return v;
}

/* Jinja's ignore_case / make_attrgetter: the sort and comparison key of an item. */
int titem_key(struct teval* ev, const struct tval* item, const struct tval* attribute,
              bool case_sensitive, const struct tval** ret) {
    const struct tval* v = item;
    if (attribute && attribute->type != TV_NONE) {
        if (attribute->type == TV_INT) {
            if (teval_getitem(ev, v, attribute, &v) < 0)
                return -EINVAL;
        } else {
            if (twant_str(ev, "attribute", attribute) < 0)
                return -EINVAL;
            const char* path = attribute->u.str.s;
            while (*path) {
                size_t n = strcspn(path, ".");
                int64_t idx;
                const struct tval* key = py_parse_int(path, n, 10, &idx) && tis_digit(path[0])
                                             ? tv_int(ev, idx)
                                             : tv_str(ev, path, n);
                if (teval_getitem(ev, v, key, &v) < 0)
                    return -EINVAL;
                path += n + (path[n] == '.');
            }
        }
    }
    *ret = !case_sensitive && v->type == TV_STR ? tmap_chars(ev, v, tlower_c) : v;
    return 0;
}

/* A stable merge sort whose comparison may fail (Python's sorted()). */
static int merge_sort(struct teval* ev, const struct tval** keys, size_t* idx, size_t* tmp,
                      size_t n, bool reverse) {
    if (n < 2)
        return 0;
    size_t h = n / 2;
    if (merge_sort(ev, keys, idx, tmp, h, reverse) < 0 ||
        merge_sort(ev, keys, idx + h, tmp, n - h, reverse) < 0)
        return -EINVAL;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c;
        if (tv_compare(ev, keys[idx[j]], keys[idx[i]], &c) < 0)
            return -EINVAL;
        tmp[k++] = (reverse ? c > 0 : c < 0) ? idx[j++] : idx[i++];
    }
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof(*idx));
    return 0;
}

int tsorted_items(struct teval* ev, const struct tval** items, size_t n,
                  const struct tval* attribute, bool case_sensitive, bool reverse,
                  const struct tval*** ret) {
    const struct tval** keys = arena_alloc(ev->arena, (n + 1) * sizeof(*keys));
    for (size_t i = 0; i < n; i++)
        if (titem_key(ev, items[i], attribute, case_sensitive, &keys[i]) < 0)
            return -EINVAL;
    size_t* idx = arena_alloc(ev->arena, (n + 1) * sizeof(*idx));
    size_t* tmp = arena_alloc(ev->arena, (n + 1) * sizeof(*tmp));
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (merge_sort(ev, keys, idx, tmp, n, reverse) < 0)
        return -EINVAL;
    const struct tval** out = arena_alloc(ev->arena, (n + 1) * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = items[idx[i]];
    *ret = out;
    return 0;
}

/* Python's str.replace(old, new, count) on string values. */
const struct tval* tstr_replace(struct teval* ev, const struct tval* s, const struct tval* old,
                                const struct tval* new, int64_t count) {
    struct strbuf sb = STRBUF_INIT;
    const char* cur  = s->u.str.s;
    const char* end  = cur + s->u.str.len;
    size_t n         = old->u.str.len;
    for (int64_t done = 0; count < 0 || done < count; done++) {
        const char* hit;
        if (n == 0) {
            /* ''.replace: the new text goes before every character and at the end */
            strbuf_append(&sb, new->u.str.s, new->u.str.len);
            if (cur == end)
                break;
            strbuf_putc(&sb, *cur++);
            continue;
        }
        hit = memmem(cur, (size_t)(end - cur), old->u.str.s, n);
        if (!hit)
            break;
        strbuf_append(&sb, cur, (size_t)(hit - cur));
        strbuf_append(&sb, new->u.str.s, new->u.str.len);
        cur = hit + n;
        if (sb.len > MAX_STR_SIZE)
            break;
    }
    strbuf_append(&sb, cur, (size_t)(end - cur));
    return tstr_from_sb(ev, &sb);
}

const struct tval* tstr_strip(struct teval* ev, const struct tval* s, const struct tval* chars,
                              bool left, bool right) {
    const char* b = s->u.str.s;
    const char* e = b + s->u.str.len;
    bool ws       = !chars || chars->type != TV_STR;
#define STRIP_HIT(c) (ws ? py_isspace(c) : memchr(chars->u.str.s, (c), chars->u.str.len) != NULL)
    while (left && b < e && STRIP_HIT(*b))
        b++;
    while (right && e > b && STRIP_HIT(e[-1]))
        e--;
#undef STRIP_HIT
    return tv_str(ev, b, (size_t)(e - b));
}

/* Python's str.center/ljust/rjust. */
const struct tval* tstr_justify(struct teval* ev, const struct tval* s, int64_t width, char fill,
                                char how) {
    if (width <= (int64_t)s->u.str.len || width > (int64_t)MAX_STR_SIZE)
        return s;
    size_t marg      = (size_t)width - s->u.str.len;
    size_t left      = how == 'l' ? 0 : how == 'r' ? marg : marg / 2 + (marg & (size_t)width & 1);
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < left; i++)
        strbuf_putc(&sb, fill);
    strbuf_append(&sb, s->u.str.s, s->u.str.len);
    for (size_t i = left; i < marg; i++)
        strbuf_putc(&sb, fill);
    return tstr_from_sb(ev, &sb);
}

/* Python's str.splitlines() line ends (ASCII part). */
size_t tline_end(const char* s, size_t len, size_t i) {
    if (s[i] == '\r' && i + 1 < len && s[i + 1] == '\n')
        return 2;
    return strchr("\n\r\v\f\x1c\x1d\x1e", s[i]) && s[i] ? 1 : 0;
}

#define P(...) \
    { __VA_ARGS__, NULL }

const struct tentry* tfind_entry(const struct tentry* table, size_t n, const char* name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* str methods                                                                                */

static const struct tval* substr(struct teval* ev, const struct tval* s, size_t from, size_t to) {
    return tv_str(ev, s->u.str.s + from, to - from);
}

static int m_affix(struct teval* ev, const char* name, const struct tval* s, const struct fargs* a,
                   const struct tval** ret) {
    const struct tval* x           = a->p[0];
    const struct tval* const* alts = &x;
    size_t n                       = 1;
    if (x->type == TV_LIST && (x->flags & TVF_TUPLE)) {
        alts = x->u.list.items;
        n    = x->u.list.n;
    }
    bool hit = false;
    for (size_t i = 0; i < n && !hit; i++) {
        if (twant_str(ev, name, alts[i]) < 0)
            return -EINVAL;
        size_t k = alts[i]->u.str.len;
        hit      = k <= s->u.str.len &&
              !memcmp(name[0] == 's' ? s->u.str.s : s->u.str.s + s->u.str.len - k, alts[i]->u.str.s,
                      k);
    }
    *ret = tv_bool(hit);
    return 0;
}

static char swap_c(char c) {
    return tlower_c(c) == c ? tupper_c(c) : tlower_c(c);
}

static int m_case(struct teval* ev, const char* name, const struct tval* s, const struct fargs* a,
                  const struct tval** ret) {
    (void)a;
    if (!strcmp(name, "upper"))
        *ret = tmap_chars(ev, s, tupper_c);
    else if (!strcmp(name, "lower") || !strcmp(name, "casefold"))
        *ret = tmap_chars(ev, s, tlower_c);
    else if (!strcmp(name, "swapcase"))
        *ret = tmap_chars(ev, s, swap_c);
    else {
        char* d = arena_strndup(ev->arena, s->u.str.s, s->u.str.len);
        for (size_t i = 0; i < s->u.str.len; i++) {
            /* capitalize: first character; title: every letter after a non-letter */
            bool start = i == 0 || (name[0] == 't' && !tis_alpha(d[i - 1]));
            d[i]       = start ? tupper_c(d[i]) : tlower_c(d[i]);
        }
        *ret = tv_str(ev, d, s->u.str.len);
    }
    return 0;
}

static int m_strip(struct teval* ev, const char* name, const struct tval* s, const struct fargs* a,
                   const struct tval** ret) {
    if (a->p[0] && a->p[0]->type != TV_NONE && twant_str(ev, name, a->p[0]) < 0)
        return -EINVAL;
    *ret = tstr_strip(ev, s, a->p[0], name[0] != 'r', name[0] != 'l');
    return 0;
}

static int m_replace(struct teval* ev, const char* name, const struct tval* s,
                     const struct fargs* a, const struct tval** ret) {
    int64_t count = -1;
    if (twant_str(ev, name, a->p[0]) < 0 || twant_str(ev, name, a->p[1]) < 0 ||
        (a->p[2] && twant_int(ev, name, a->p[2], &count) < 0))
        return -EINVAL;
    *ret = tstr_replace(ev, s, a->p[0], a->p[1], count);
    return tv_check_size(ev, (*ret)->u.str.len);
}

struct parts {
    const struct tval** items;
    size_t n, cap;
};

static void parts_add(struct teval* ev, struct parts* p, const struct tval* v) {
    if (p->n == p->cap) {
        size_t cap                = p->cap ? 2 * p->cap : 8;
        const struct tval** items = arena_alloc(ev->arena, cap * sizeof(*items));
        if (p->n)
            memcpy(items, p->items, p->n * sizeof(*items));
        p->items = items;
        p->cap   = cap;
    }
    p->items[p->n++] = v;
}

/* split/rsplit(sep=None, maxsplit=-1), CPython's algorithms */
static int m_split(struct teval* ev, const char* name, const struct tval* s, const struct fargs* a,
                   const struct tval** ret) {
    const struct tval* sep = a->p[0] && a->p[0]->type != TV_NONE ? a->p[0] : NULL;
    int64_t max            = -1;
    if ((sep && twant_str(ev, name, sep) < 0) ||
        (a->p[1] && twant_int(ev, name, a->p[1], &max) < 0))
        return -EINVAL;
    if (sep && !sep->u.str.len)
        return teval_fail(ev, "empty separator");
    bool right     = name[0] == 'r';
    const char* b  = s->u.str.s;
    size_t n       = s->u.str.len;
    struct parts p = {0};
    uint64_t left  = max < 0 ? UINT64_MAX : (uint64_t)max;
    if (sep) {
        size_t k = sep->u.str.len, lo = 0, hi = n;
        while (left-- > 0) {
            const char* hit = NULL;
            if (!right) {
                hit = memmem(b + lo, hi - lo, sep->u.str.s, k);
            } else {
                for (size_t i = hi; i >= lo + k && !hit; i--)
                    if (!memcmp(b + i - k, sep->u.str.s, k))
                        hit = b + i - k;
            }
            if (!hit)
                break;
            size_t at = (size_t)(hit - b);
            parts_add(ev, &p, right ? substr(ev, s, at + k, hi) : substr(ev, s, lo, at));
            if (right)
                hi = at;
            else
                lo = at + k;
        }
        parts_add(ev, &p, substr(ev, s, lo, hi));
    } else if (!right) {
        size_t i = 0;
        while (left-- > 0) {
            while (i < n && py_isspace(b[i]))
                i++;
            if (i == n)
                break;
            size_t j = i++;
            while (i < n && !py_isspace(b[i]))
                i++;
            parts_add(ev, &p, substr(ev, s, j, i));
        }
        while (i < n && py_isspace(b[i]))
            i++;
        if (i < n)
            parts_add(ev, &p, substr(ev, s, i, n));
    } else {
        size_t i = n; /* one past the character looked at */
        while (left-- > 0) {
            while (i > 0 && py_isspace(b[i - 1]))
                i--;
            if (i == 0)
                break;
            size_t j = i--;
            while (i > 0 && !py_isspace(b[i - 1]))
                i--;
            parts_add(ev, &p, substr(ev, s, i, j));
        }
        while (i > 0 && py_isspace(b[i - 1]))
            i--;
        if (i > 0)
            parts_add(ev, &p, substr(ev, s, 0, i));
    }
    if (right) /* collected from the end */
        for (size_t i = 0; i < p.n / 2; i++) {
            const struct tval* t = p.items[i];
            p.items[i]           = p.items[p.n - 1 - i];
            p.items[p.n - 1 - i] = t;
        }
    *ret = tv_list(ev, p.items, p.n);
    return 0;
}

static int m_splitlines(struct teval* ev, const char* name, const struct tval* s,
                        const struct fargs* a, const struct tval** ret) {
    (void)name;
    bool keep;
    if (ttruth_or(ev, a->p[0], false, &keep) < 0)
        return -EINVAL;
    struct parts p = {0};
    size_t start   = 0;
    for (size_t i = 0; i < s->u.str.len; i++) {
        size_t le = tline_end(s->u.str.s, s->u.str.len, i);
        if (!le)
            continue;
        parts_add(ev, &p, substr(ev, s, start, keep ? i + le : i));
        i += le - 1;
        start = i + 1;
    }
    if (start < s->u.str.len)
        parts_add(ev, &p, substr(ev, s, start, s->u.str.len));
    *ret = tv_list(ev, p.items, p.n);
    return 0;
}

static int m_join(struct teval* ev, const char* name, const struct tval* s, const struct fargs* a,
                  const struct tval** ret) {
    (void)name;
    const struct tval** items;
    size_t n;
    if (titer(ev, a->p[0], &items, &n) < 0)
        return -EINVAL;
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (items[i]->type != TV_STR) {
            strbuf_free(&sb);
            return teval_fail(ev, "sequence item %zu: expected str instance, %s found", i,
                              tv_type_name(items[i]));
        }
        if (i)
            strbuf_append(&sb, s->u.str.s, s->u.str.len);
        strbuf_append(&sb, items[i]->u.str.s, items[i]->u.str.len);
        if (sb.len > MAX_STR_SIZE) {
            strbuf_free(&sb);
            return tv_check_size(ev, MAX_STR_SIZE + 1);
        }
    }
    *ret = tstr_from_sb(ev, &sb);
    return 0;
}

/* find, rfind, index, rindex, count (of a substring) */
static int m_find(struct teval* ev, const char* name, const struct tval* s, const struct fargs* a,
                  const struct tval** ret) {
    if (twant_str(ev, name, a->p[0]) < 0)
        return -EINVAL;
    const struct tval* sub = a->p[0];
    size_t k = sub->u.str.len, n = s->u.str.len;
    if (!strcmp(name, "count")) {
        int64_t c = 0;
        for (size_t i = 0; i + k <= n;) {
            if (!memcmp(s->u.str.s + i, sub->u.str.s, k)) {
                c++;
                i += k ? k : 1;
            } else {
                i++;
            }
        }
        *ret = tv_int(ev, k ? c : (int64_t)n + 1);
        return 0;
    }
    int64_t at = -1;
    bool right = name[0] == 'r';
    for (size_t i = 0; i + k <= n; i++) {
        size_t pos = right ? n - k - i : i;
        if (!memcmp(s->u.str.s + pos, sub->u.str.s, k)) {
            at = (int64_t)pos;
            break;
        }
    }
    if (at < 0 && strstr(name, "index"))
        return teval_fail(ev, "substring not found");
    *ret = tv_int(ev, at);
    return 0;
}

static int m_is(struct teval* ev, const char* name, const struct tval* s, const struct fargs* a,
                const struct tval** ret) {
    (void)a;
    (void)ev;
    bool r = s->u.str.len > 0, cased = false;
    for (size_t i = 0; i < s->u.str.len; i++) {
        char c = s->u.str.s[i];
        if (!strcmp(name, "isdigit") || !strcmp(name, "isdecimal") || !strcmp(name, "isnumeric"))
            r &= tis_digit(c);
        else if (!strcmp(name, "isalpha"))
            r &= tis_alpha(c);
        else if (!strcmp(name, "isalnum"))
            r &= tis_alpha(c) || tis_digit(c);
        else if (!strcmp(name, "isspace"))
            r &= py_isspace(c);
        else if (tis_alpha(c)) { /* islower, isupper */
            cased = true;
            r &= name[2] == 'l' ? tlower_c(c) == c : tupper_c(c) == c;
        }
    }
    if (!strcmp(name, "islower") || !strcmp(name, "isupper"))
        r = r && cased;
    *ret = tv_bool(r);
    return 0;
}

/* zfill(width), ljust/rjust/center(width, fillchar=' ') */
static int m_justify(struct teval* ev, const char* name, const struct tval* s,
                     const struct fargs* a, const struct tval** ret) {
    int64_t width;
    char fill = ' ';
    if (twant_int(ev, name, a->p[0], &width) < 0)
        return -EINVAL;
    if (a->p[1]) {
        if (twant_str(ev, name, a->p[1]) < 0)
            return -EINVAL;
        if (a->p[1]->u.str.len != 1)
            return teval_fail(ev, "The fill character must be exactly one character long");
        fill = a->p[1]->u.str.s[0];
    }
    if (name[0] != 'z') {
        *ret = tstr_justify(ev, s, width, fill, name[0]);
        return 0;
    }
    /* zfill: zeros after the sign */
    bool sign                 = s->u.str.len && (s->u.str.s[0] == '-' || s->u.str.s[0] == '+');
    const struct tval* body   = sign ? substr(ev, s, 1, s->u.str.len) : s;
    const struct tval* padded = tstr_justify(ev, body, width - sign, '0', 'r');
    if (!sign) {
        *ret = padded;
        return 0;
    }
    struct strbuf sb = STRBUF_INIT;
    strbuf_putc(&sb, s->u.str.s[0]);
    strbuf_append(&sb, padded->u.str.s, padded->u.str.len);
    *ret = tstr_from_sb(ev, &sb);
    return 0;
}

static int m_partition(struct teval* ev, const char* name, const struct tval* s,
                       const struct fargs* a, const struct tval** ret) {
    if (twant_str(ev, name, a->p[0]) < 0)
        return -EINVAL;
    const struct tval* sep = a->p[0];
    if (!sep->u.str.len)
        return teval_fail(ev, "empty separator");
    const struct tval* fa;
    if (m_find(ev, name[0] == 'r' ? "rfind" : "find", s, a, &fa) < 0)
        return -EINVAL;
    const struct tval* empty = tv_cstr(ev, "");
    const struct tval* out[3];
    if (fa->u.i < 0) {
        out[0] = name[0] == 'r' ? empty : s;
        out[1] = empty;
        out[2] = name[0] == 'r' ? s : empty;
    } else {
        size_t at = (size_t)fa->u.i;
        out[0]    = substr(ev, s, 0, at);
        out[1]    = sep;
        out[2]    = substr(ev, s, at + sep->u.str.len, s->u.str.len);
    }
    *ret = tv_tuple(ev, out, 3);
    return 0;
}

static int m_remove_affix(struct teval* ev, const char* name, const struct tval* s,
                          const struct fargs* a, const struct tval** ret) {
    const struct tval* hit;
    if (twant_str(ev, name, a->p[0]) < 0 ||
        m_affix(ev, strstr(name, "prefix") ? "startswith" : "endswith", s, a, &hit) < 0)
        return -EINVAL;
    size_t k = hit->u.b ? a->p[0]->u.str.len : 0;
    *ret     = strstr(name, "prefix") ? substr(ev, s, k, s->u.str.len)
                                      : substr(ev, s, 0, s->u.str.len - k);
    return 0;
}

static int m_format(struct teval* ev, const char* name, const struct tval* s, const struct fargs* a,
                    const struct tval** ret) {
    (void)name;
    return teval_str_format(ev, s, a->args, a->nargs, a->kw, a->nkw, ret);
}

static const struct tentry g_str_methods[] = {
    {"capitalize", m_case, P(NULL), 0},
    {"casefold", m_case, P(NULL), 0},
    {"center", m_justify, P("width", "fillchar"), 1},
    {"count", m_find, P("sub"), 1},
    {"endswith", m_affix, P("suffix"), 1},
    {"find", m_find, P("sub"), 1},
    {"format", m_format, P("*"), 0},
    {"index", m_find, P("sub"), 1},
    {"isalnum", m_is, P(NULL), 0},
    {"isalpha", m_is, P(NULL), 0},
    {"isdecimal", m_is, P(NULL), 0},
    {"isdigit", m_is, P(NULL), 0},
    {"islower", m_is, P(NULL), 0},
    {"isnumeric", m_is, P(NULL), 0},
    {"isspace", m_is, P(NULL), 0},
    {"isupper", m_is, P(NULL), 0},
    {"join", m_join, P("iterable"), 1},
    {"ljust", m_justify, P("width", "fillchar"), 1},
    {"lower", m_case, P(NULL), 0},
    {"lstrip", m_strip, P("chars"), 0},
    {"partition", m_partition, P("sep"), 1},
    {"removeprefix", m_remove_affix, P("prefix"), 1},
    {"removesuffix", m_remove_affix, P("suffix"), 1},
    {"replace", m_replace, P("old", "new", "count"), 2},
    {"rfind", m_find, P("sub"), 1},
    {"rindex", m_find, P("sub"), 1},
    {"rjust", m_justify, P("width", "fillchar"), 1},
    {"rpartition", m_partition, P("sep"), 1},
    {"rsplit", m_split, P("sep", "maxsplit"), 0},
    {"rstrip", m_strip, P("chars"), 0},
    {"split", m_split, P("sep", "maxsplit"), 0},
    {"splitlines", m_splitlines, P("keepends"), 0},
    {"startswith", m_affix, P("prefix"), 1},
    {"strip", m_strip, P("chars"), 0},
    {"swapcase", m_case, P(NULL), 0},
    {"title", m_case, P(NULL), 0},
    {"upper", m_case, P(NULL), 0},
    {"zfill", m_justify, P("width"), 1},
};

/* ---------------------------------------------------------------------------------------- */
/* dict, list and Path methods                                                                */

static int m_dict_get(struct teval* ev, const char* name, const struct tval* d,
                      const struct fargs* a, const struct tval** ret) {
    (void)name;
    if (tundef_strict(a->p[0]))
        return tv_undefined_error(ev, a->p[0]);
    const struct tval* v = a->p[0]->type == TV_STR ? tv_dict_get(d, a->p[0]->u.str.s) : NULL;
    *ret                 = v ? v : a->p[1] ? a->p[1] : tv_none();
    return 0;
}

static int m_dict_view(struct teval* ev, const char* name, const struct tval* d,
                       const struct fargs* a, const struct tval** ret) {
    (void)a;
    size_t n                  = d->u.dict.n;
    const struct tval** items = arena_alloc(ev->arena, (n + 1) * sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        const struct tval* k = tv_cstr(ev, d->u.dict.items[i].key);
        if (name[0] == 'i') {
            const struct tval* pair[2] = {k, d->u.dict.items[i].value};
            items[i]                   = tv_tuple(ev, pair, 2);
        } else {
            items[i] = name[0] == 'v' ? d->u.dict.items[i].value : k;
        }
    }
    struct tval* v = (struct tval*)tv_list(ev, items, n);
    v->flags       = name[0] == 'i' ? TVF_ITEMS : name[0] == 'v' ? TVF_VALUES : TVF_KEYS;
    *ret           = v;
    return 0;
}

static int m_list_find(struct teval* ev, const char* name, const struct tval* l,
                       const struct fargs* a, const struct tval** ret) {
    if (tundef_strict(a->p[0]))
        return tv_undefined_error(ev, a->p[0]);
    int64_t count = 0, at = -1;
    for (size_t i = 0; i < l->u.list.n; i++) {
        if (tv_equal(l->u.list.items[i], a->p[0])) {
            count++;
            if (at < 0)
                at = (int64_t)i;
        }
    }
    if (name[0] == 'i' && at < 0)
        return teval_fail(ev, "value is not in list");
    *ret = tv_int(ev, name[0] == 'i' ? at : count);
    return 0;
}

static int m_path_stat(struct teval* ev, const char* name, const struct tval* p,
                       const struct fargs* a, const struct tval** ret) {
    (void)a;
    struct stat st;
    bool link = !strcmp(name, "is_symlink");
    bool ok   = (link ? lstat(p->u.str.s, &st) : stat(p->u.str.s, &st)) == 0;
    if (!strcmp(name, "is_dir"))
        ok = ok && S_ISDIR(st.st_mode);
    else if (!strcmp(name, "is_file"))
        ok = ok && S_ISREG(st.st_mode);
    else if (link)
        ok = ok && S_ISLNK(st.st_mode);
    *ret = tv_bool(ok);
    (void)ev;
    return 0;
}

static int m_path_misc(struct teval* ev, const char* name, const struct tval* p,
                       const struct fargs* a, const struct tval** ret) {
    if (!strcmp(name, "is_absolute")) {
        *ret = tv_bool(p->u.str.s[0] == '/');
    } else if (!strcmp(name, "as_posix")) {
        *ret = tv_cstr(ev, p->u.str.s);
    } else if (!strcmp(name, "joinpath")) {
        const struct tval* r = p;
        for (size_t i = 0; i < a->nargs; i++) {
            if (a->args[i]->type != TV_STR && a->args[i]->type != TV_PATH)
                return tundef_strict(a->args[i])
                           ? tv_undefined_error(ev, a->args[i])
                           : teval_fail(ev, "joinpath(): expected str, got %s",
                                        tv_type_name(a->args[i]));
            r = tv_path_join(ev, r->u.str.s, a->args[i]->u.str.s);
        }
        *ret = r;
    } else { /* resolve(): os.path.realpath, lexical for what does not exist */
        char buf[PATH_MAX];
        if (realpath(p->u.str.s, buf)) {
            *ret = tv_path(ev, buf);
        } else {
            _cleanup_free_ char* abs = NULL;
            if (p->u.str.s[0] != '/' && getcwd(buf, sizeof(buf)))
                abs = xasprintf("%s/%s", buf, p->u.str.s);
            _cleanup_free_ char* norm = path_normalize(abs ? abs : p->u.str.s);
            *ret                      = tv_path(ev, norm);
        }
    }
    return 0;
}

static const struct tentry g_dict_methods[] = {
    {"get", m_dict_get, P("key", "default"), 1},
    {"items", m_dict_view, P(NULL), 0},
    {"keys", m_dict_view, P(NULL), 0},
    {"values", m_dict_view, P(NULL), 0},
};

static const struct tentry g_list_methods[] = {
    {"count", m_list_find, P("value"), 1},
    {"index", m_list_find, P("value"), 1},
};

static const struct tentry g_path_methods[] = {
    {"as_posix", m_path_misc, P(NULL), 0},    {"exists", m_path_stat, P(NULL), 0},
    {"is_absolute", m_path_misc, P(NULL), 0}, {"is_dir", m_path_stat, P(NULL), 0},
    {"is_file", m_path_stat, P(NULL), 0},     {"is_symlink", m_path_stat, P(NULL), 0},
    {"joinpath", m_path_misc, P("*"), 0},     {"resolve", m_path_misc, P(NULL), 0},
};

/* Path.name, .stem, .suffix, .parent, .parts (pathlib 3.11) */
static const struct tval* path_property(struct teval* ev, const struct tval* p, const char* prop) {
    const char* s     = p->u.str.s;
    size_t root       = s[0] == '/' ? (s[1] == '/' ? 2 : 1) : 0;
    const char* slash = strrchr(s + root, '/');
    const char* name  = slash ? slash + 1 : s + root;
    if (!strcmp(name, "."))
        name = "";
    const char* dot = strrchr(name, '.');
    bool has_suffix = dot && dot > name && dot[1];
    if (!strcmp(prop, "name"))
        return tv_cstr(ev, name);
    if (!strcmp(prop, "suffix"))
        return tv_cstr(ev, has_suffix ? dot : "");
    if (!strcmp(prop, "stem"))
        return tv_str(ev, name, has_suffix ? (size_t)(dot - name) : strlen(name));
    if (!strcmp(prop, "parent")) {
        if (!*name)
            return p;
        size_t keep = slash ? (size_t)(slash - s) : root;
        return tv_path(ev, keep ? arena_strndup(ev->arena, s, keep) : root ? s : ".");
    }
    if (!strcmp(prop, "parts")) {
        struct parts parts = {0};
        if (root)
            parts_add(ev, &parts, tv_str(ev, s, root));
        for (const char* c = s + root; *c;) {
            size_t n = strcspn(c, "/");
            parts_add(ev, &parts, tv_str(ev, c, n));
            c += n + (c[n] == '/');
        }
        return tv_tuple(ev, parts.items, parts.n);
    }
    return NULL;
}

static const struct tentry* methods_of(const struct tval* v, size_t* n) {
    switch (v->type) {
        case TV_STR:
            *n = ARRAY_SIZE(g_str_methods);
            return g_str_methods;
        case TV_DICT:
            *n = ARRAY_SIZE(g_dict_methods);
            return v->flags & TVF_NAMESPACE ? NULL : g_dict_methods;
        case TV_LIST:
            *n = ARRAY_SIZE(g_list_methods);
            return v->flags & (TVF_KEYS | TVF_VALUES | TVF_ITEMS) ? NULL : g_list_methods;
        case TV_PATH:
            *n = ARRAY_SIZE(g_path_methods);
            return g_path_methods;
        default:
            return NULL;
    }
}

static int m_call(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                  size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    size_t n                   = 0;
    const struct tentry* table = methods_of(fn->u.fn.self, &n);
    const struct tentry* t     = tfind_entry(table, n, fn->u.fn.name);
    struct fargs a;
    if (tbind(ev, t, args, nargs, kw, nkw, &a) < 0)
        return -EINVAL;
    return t->fn(ev, t->name, fn->u.fn.self, &a, ret);
}

const struct tval* tmethod_get(struct teval* ev, const struct tval* v, const char* name) {
    if (v->type == TV_PATH) {
        const struct tval* prop = path_property(ev, v, name);
        if (prop)
            return prop;
    }
    size_t n;
    const struct tentry* table = methods_of(v, &n);
    const struct tentry* t     = table ? tfind_entry(table, n, name) : NULL;
    return t ? tv_func(ev, t->name, m_call, v, NULL) : NULL;
}
