/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Template evaluation: expressions with Python's semantics (arithmetic, comparisons, `in`,
 * printf-style `%`), Jinja's attribute/item lookup (a missing attribute is an undefined value,
 * an error only when used: jinja2/environment.py getattr/getitem, StrictUndefined) and the
 * `loop` variable.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "jinja_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* Attribute and item lookup                                                                  */

static int m_loop_cycle(struct teval* ev, const struct tval* fn, const struct tval* const* args,
                        size_t nargs, const struct tkwarg* kw, size_t nkw,
                        const struct tval** ret) {
    (void)kw;
    if (!nargs || nkw)
        return teval_fail(ev, "no items for cycling given");
    *ret = args[fn->u.fn.self->u.loop.i % nargs];
    return 0;
}

static int loop_attr(struct teval* ev, const struct tval* loop, const char* name,
                     const struct tval** ret) {
    size_t i = loop->u.loop.i, n = loop->u.loop.n;
    static const char* const ints[] = {"index",     "index0", "length", "revindex",
                                       "revindex0", "depth",  "depth0"};
    const int64_t values[] = {(int64_t)i + 1,       (int64_t)i, (int64_t)n, (int64_t)(n - i),
                              (int64_t)(n - i - 1), 1,          0};
    for (size_t k = 0; k < ARRAY_SIZE(ints); k++) {
        if (!strcmp(name, ints[k])) {
            *ret = tv_int(ev, values[k]);
            return 0;
        }
    }
    if (!strcmp(name, "first") || !strcmp(name, "last"))
        *ret = tv_bool(name[0] == 'f' ? i == 0 : i + 1 == n);
    else if (!strcmp(name, "previtem"))
        *ret = i ? loop->u.loop.items[i - 1] : tv_undef_msg(ev, false, "there is no previous item");
    else if (!strcmp(name, "nextitem"))
        *ret = i + 1 < n ? loop->u.loop.items[i + 1]
                         : tv_undef_msg(ev, false, "there is no next item");
    else if (!strcmp(name, "cycle"))
        *ret = tv_func(ev, "cycle", m_loop_cycle, loop, NULL);
    else
        *ret = tv_undef_msg(ev, false, "'%s' has no attribute '%s'", tv_object_repr(loop), name);
    return 0;
}

int teval_getattr(struct teval* ev, const struct tval* obj, const char* name,
                  const struct tval** ret) {
    if (obj->type == TV_UNDEF)
        return tv_undefined_error(ev, obj);
    if (obj->type == TV_LOOP)
        return loop_attr(ev, obj, name, ret);
    const struct tval* m = tmethod_get(ev, obj, name);
    if (!m && obj->type == TV_DICT) {
        m = tv_dict_get(obj, name);
        if (m && m->type == TV_FUNC && m->u.fn.lazy)
            return m->u.fn.fn(ev, m, NULL, 0, NULL, 0, ret);
    }
    *ret = m ? m : tv_undef_msg(ev, false, "'%s' has no attribute '%s'", tv_object_repr(obj), name);
    return 0;
}

static const struct tval* no_element(struct teval* ev, const struct tval* obj,
                                     const struct tval* key) {
    struct strbuf sb = STRBUF_INIT;
    tv_repr(key, &sb);
    const struct tval* u =
        tv_undef_msg(ev, false, "%s has no element %s", tv_object_repr(obj), sb.buf);
    strbuf_free(&sb);
    return u;
}

int teval_getitem(struct teval* ev, const struct tval* obj, const struct tval* key,
                  const struct tval** ret) {
    if (obj->type == TV_UNDEF)
        return tv_undefined_error(ev, obj);
    if (key->type == TV_UNDEF)
        return tv_undefined_error(ev, key);
    if (obj->type == TV_DICT && !(obj->flags & TVF_NAMESPACE) && key->type == TV_STR) {
        const struct tval* v = tv_dict_get(obj, key->u.str.s);
        if (v && v->type == TV_FUNC && v->u.fn.lazy)
            return v->u.fn.fn(ev, v, NULL, 0, NULL, 0, ret);
        if (v) {
            *ret = v;
            return 0;
        }
    }
    bool indexable =
        (obj->type == TV_LIST && !(obj->flags & (TVF_KEYS | TVF_VALUES | TVF_ITEMS))) ||
        obj->type == TV_STR;
    if (indexable && (key->type == TV_INT || key->type == TV_BOOL)) {
        int64_t n = obj->type == TV_LIST ? (int64_t)obj->u.list.n : (int64_t)obj->u.str.len;
        int64_t i = key->type == TV_INT ? key->u.i : key->u.b;
        if (i < 0 && i >= -n)
            i += n;
        if (i >= 0 && i < n) {
            *ret = obj->type == TV_LIST ? obj->u.list.items[i] : tv_str(ev, obj->u.str.s + i, 1);
            return 0;
        }
    }
    if (key->type == TV_STR) /* Jinja falls back to getattr */
        return teval_getattr(ev, obj, key->u.str.s, ret);
    *ret = no_element(ev, obj, key);
    return 0;
}

static int slice_index(struct teval* ev, const struct tval* v, int64_t* ret) {
    if (v->type == TV_INT || v->type == TV_BOOL) {
        *ret = v->type == TV_INT ? v->u.i : v->u.b;
        return 0;
    }
    if (v->type == TV_UNDEF)
        return tv_undefined_error(ev, v);
    return teval_fail(ev, "slice indices must be integers or None, not %s", tv_type_name(v));
}

/* obj[start:stop:step] with CPython's PySlice_AdjustIndices. */
static int eval_slice(struct teval* ev, const struct expr* e, const struct tval* obj,
                      const struct tval** ret) {
    int64_t bound[3] = {0, 0, 1};
    bool given[3]    = {false, false, false};
    for (int k = 0; k < 3; k++) {
        const struct tval* v;
        if (!e->args[k])
            continue;
        if (teval_expr(ev, e->args[k], &v) < 0)
            return -EINVAL;
        if (v->type == TV_NONE)
            continue;
        if (slice_index(ev, v, &bound[k]) < 0)
            return -EINVAL;
        given[k] = true;
    }
    if (obj->type == TV_UNDEF)
        return tv_undefined_error(ev, obj);
    bool is_str = obj->type == TV_STR;
    /* Jinja compiles a slice to a plain Python subscript: no undefined fallback */
    if (!is_str && (obj->type != TV_LIST || (obj->flags & (TVF_KEYS | TVF_VALUES | TVF_ITEMS))))
        return teval_fail(ev, "'%s' object is not subscriptable", tv_type_name(obj));
    int64_t step = bound[2];
    if (step == 0)
        return teval_fail(ev, "slice step cannot be zero");
    int64_t len = is_str ? (int64_t)obj->u.str.len : (int64_t)obj->u.list.n;
    int64_t se[2];
    for (int k = 0; k < 2; k++) {
        int64_t x = bound[k];
        if (!given[k])
            x = k == 0 ? (step > 0 ? 0 : len - 1) : (step > 0 ? len : -1);
        else if (x < 0)
            x = x < -len ? (step < 0 ? -1 : 0) : x + len;
        else if (x >= len)
            x = step < 0 ? len - 1 : len;
        se[k] = x;
    }
    int64_t count = 0;
    if (step < 0 && se[1] < se[0])
        count = (se[0] - se[1] - 1) / -step + 1;
    else if (step > 0 && se[0] < se[1])
        count = (se[1] - se[0] - 1) / step + 1;
    const struct tval** items = arena_alloc(ev->arena, ((size_t)count + 1) * sizeof(*items));
    struct strbuf sb          = STRBUF_INIT;
    for (int64_t k = 0, i = se[0]; k < count; k++, i += step) {
        if (is_str)
            strbuf_putc(&sb, obj->u.str.s[i]);
        else
            items[k] = obj->u.list.items[i];
    }
    if (is_str)
        *ret = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
    else
        *ret = obj->flags & TVF_TUPLE ? tv_tuple(ev, items, (size_t)count)
                                      : tv_list(ev, items, (size_t)count);
    strbuf_free(&sb);
    return 0;
}

int titer(struct teval* ev, const struct tval* v, const struct tval*** ret_items, size_t* ret_n) {
    if (v->type == TV_UNDEF) {
        if (!(v->flags & TVF_LENIENT))
            return tv_undefined_error(ev, v);
        *ret_items = NULL;
        *ret_n     = 0;
        return 0;
    }
    if (v->type == TV_LIST) {
        *ret_items = (const struct tval**)v->u.list.items;
        *ret_n     = v->u.list.n;
        return 0;
    }
    if ((v->type == TV_DICT && !(v->flags & TVF_NAMESPACE)) || v->type == TV_STR) {
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

/* ---------------------------------------------------------------------------------------- */
/* Arithmetic                                                                                 */

static bool is_int(const struct tval* v) {
    return v->type == TV_INT || v->type == TV_BOOL;
}

static int64_t int_of(const struct tval* v) {
    return v->type == TV_INT ? v->u.i : v->u.b;
}

static bool is_num(const struct tval* v) {
    return is_int(v) || v->type == TV_FLOAT;
}

static double dbl_of(const struct tval* v) {
    return v->type == TV_FLOAT ? v->u.f : (double)int_of(v);
}

static int operand_error(struct teval* ev, const char* op, const struct tval* a,
                         const struct tval* b) {
    return teval_fail(ev, "unsupported operand type(s) for %s: '%s' and '%s'", op, tv_type_name(a),
                      tv_type_name(b));
}

int teval_add(struct teval* ev, const struct tval* a, const struct tval* b,
              const struct tval** ret) {
    if (a->type == TV_UNDEF || b->type == TV_UNDEF)
        return tv_undefined_error(ev, a->type == TV_UNDEF ? a : b);
    if (is_int(a) && is_int(b)) {
        int64_t r;
        if (__builtin_add_overflow(int_of(a), int_of(b), &r))
            return teval_fail(ev, "integer overflow (moat's integers are 64-bit)");
        *ret = tv_int(ev, r);
        return 0;
    }
    if (is_num(a) && is_num(b)) {
        *ret = tv_float(ev, dbl_of(a) + dbl_of(b));
        return 0;
    }
    if (a->type == TV_STR && b->type == TV_STR) {
        if (tv_check_size(ev, a->u.str.len + b->u.str.len) < 0)
            return -EINVAL;
        char* s = arena_alloc(ev->arena, a->u.str.len + b->u.str.len + 1);
        memcpy(s, a->u.str.s, a->u.str.len);
        memcpy(s + a->u.str.len, b->u.str.s, b->u.str.len);
        struct tval* v = (struct tval*)tv_str(ev, "", 0);
        v->u.str.s     = s;
        v->u.str.len   = a->u.str.len + b->u.str.len;
        *ret           = v;
        return 0;
    }
    if (a->type == TV_LIST && b->type == TV_LIST && a->flags == b->flags &&
        !(a->flags & (TVF_KEYS | TVF_VALUES | TVF_ITEMS))) {
        size_t n = a->u.list.n + b->u.list.n;
        if (n > MAX_LIST_ITEMS)
            return teval_fail(ev, "list too long (more than %zu items)", MAX_LIST_ITEMS);
        const struct tval** items = arena_alloc(ev->arena, (n + 1) * sizeof(*items));
        memcpy(items, a->u.list.items, a->u.list.n * sizeof(*items));
        memcpy(items + a->u.list.n, b->u.list.items, b->u.list.n * sizeof(*items));
        *ret = a->flags & TVF_TUPLE ? tv_tuple(ev, items, n) : tv_list(ev, items, n);
        return 0;
    }
    if ((a->type == TV_LIST && b->type == TV_LIST) || a->type == TV_STR)
        return teval_fail(ev, "can only concatenate %s (not \"%s\") to %s", tv_type_name(a),
                          tv_type_name(b), tv_type_name(a));
    return operand_error(ev, "+", a, b);
}

/* str * n, list * n */
static int repeat(struct teval* ev, const struct tval* seq, int64_t times,
                  const struct tval** ret) {
    size_t n     = seq->type == TV_STR ? seq->u.str.len : seq->u.list.n;
    size_t count = times > 0 ? (size_t)times : 0;
    if (n && count > (seq->type == TV_STR ? MAX_STR_SIZE : MAX_LIST_ITEMS) / n)
        return teval_fail(ev, "repetition result too large");
    if (seq->type == TV_STR) {
        char* s = arena_alloc(ev->arena, n * count + 1);
        for (size_t i = 0; i < count; i++)
            memcpy(s + i * n, seq->u.str.s, n);
        struct tval* v = (struct tval*)tv_str(ev, "", 0);
        v->u.str.s     = s;
        v->u.str.len   = n * count;
        *ret           = v;
        return 0;
    }
    const struct tval** items = arena_alloc(ev->arena, (n * count + 1) * sizeof(*items));
    for (size_t i = 0; i < count; i++)
        memcpy(items + i * n, seq->u.list.items, n * sizeof(*items));
    *ret = seq->flags & TVF_TUPLE ? tv_tuple(ev, items, n * count) : tv_list(ev, items, n * count);
    return 0;
}

static int int_pow(struct teval* ev, int64_t base, int64_t exp, const struct tval** ret) {
    int64_t r = 1;
    while (exp > 0) {
        if ((exp & 1) && __builtin_mul_overflow(r, base, &r))
            return teval_fail(ev, "integer overflow (moat's integers are 64-bit)");
        exp >>= 1;
        if (exp && __builtin_mul_overflow(base, base, &base))
            return teval_fail(ev, "integer overflow (moat's integers are 64-bit)");
    }
    *ret = tv_int(ev, r);
    return 0;
}

static int int_arith(struct teval* ev, enum ex_op op, int64_t x, int64_t y,
                     const struct tval** ret) {
    int64_t r = 0;
    bool of   = false;
    switch (op) {
        case OP_SUB:
            of = __builtin_sub_overflow(x, y, &r);
            break;
        case OP_MUL:
            of = __builtin_mul_overflow(x, y, &r);
            break;
        case OP_POW:
            if (y >= 0)
                return int_pow(ev, x, y, ret);
            if (x == 0)
                return teval_fail(ev, "0.0 cannot be raised to a negative power");
            *ret = tv_float(ev, pow((double)x, (double)y));
            return 0;
        default: /* // and %: Python floors */
            if (y == 0)
                return teval_fail(ev, "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) {
                of = op == OP_FLOORDIV;
                break;
            }
            r = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0)))
                r--;
            if (op == OP_MOD)
                r = x - r * y;
    }
    if (of)
        return teval_fail(ev, "integer overflow (moat's integers are 64-bit)");
    *ret = tv_int(ev, r);
    return 0;
}

static int float_arith(struct teval* ev, enum ex_op op, double x, double y,
                       const struct tval** ret) {
    double r;
    switch (op) {
        case OP_SUB:
            r = x - y;
            break;
        case OP_MUL:
            r = x * y;
            break;
        case OP_DIV:
            if (y == 0)
                return teval_fail(ev, "division by zero");
            r = x / y;
            break;
        case OP_POW:
            if (x == 0 && y < 0)
                return teval_fail(ev, "0.0 cannot be raised to a negative power");
            if (x < 0 && isfinite(y) && floor(y) != y)
                return teval_fail(ev, "negative number raised to a fractional power");
            r = pow(x, y);
            if (isinf(r) && isfinite(x) && isfinite(y))
                return teval_fail(ev, "numerical result out of range");
            break;
        default: { /* CPython's float_divmod */
            if (y == 0)
                return teval_fail(ev, "float %s by zero",
                                  op == OP_MOD ? "modulo" : "floor division");
            double mod = fmod(x, y), div = (x - mod) / y;
            if (mod != 0) {
                if ((y < 0) != (mod < 0)) {
                    mod += y;
                    div -= 1.0;
                }
            } else {
                mod = copysign(0.0, y);
            }
            double floordiv;
            if (div != 0) {
                floordiv = floor(div);
                if (div - floordiv > 0.5)
                    floordiv += 1.0;
            } else {
                floordiv = copysign(0.0, x / y);
            }
            r = op == OP_MOD ? mod : floordiv;
        }
    }
    *ret = tv_float(ev, r);
    return 0;
}

static int arith(struct teval* ev, enum ex_op op, const struct tval* a, const struct tval* b,
                 const struct tval** ret) {
    static const char* const names[] = {
        [OP_SUB] = "-", [OP_MUL] = "*",       [OP_DIV] = "/",
        [OP_MOD] = "%", [OP_FLOORDIV] = "//", [OP_POW] = "** or pow()"};
    /* str % Undefined: CPython takes anything with __getitem__ as a mapping */
    if (op == OP_MOD && a->type == TV_STR)
        return teval_percent_format(ev, a, b, ret);
    if (a->type == TV_UNDEF || b->type == TV_UNDEF)
        return tv_undefined_error(ev, a->type == TV_UNDEF ? a : b);
    if (op == OP_ADD)
        return teval_add(ev, a, b, ret);
    if (op == OP_MUL && (a->type == TV_STR || a->type == TV_LIST) && is_int(b))
        return a->type == TV_LIST && (a->flags & ~TVF_TUPLE) ? operand_error(ev, "*", a, b)
                                                             : repeat(ev, a, int_of(b), ret);
    if (op == OP_MUL && (b->type == TV_STR || b->type == TV_LIST) && is_int(a))
        return b->type == TV_LIST && (b->flags & ~TVF_TUPLE) ? operand_error(ev, "*", a, b)
                                                             : repeat(ev, b, int_of(a), ret);
    if (op == OP_DIV) {
        /* pathlib: Path / str, str / Path; gramine.runtimedir / 'x' */
        const char* pa = a->type == TV_PATH                     ? a->u.str.s
                         : a->type == TV_FUNC && a->u.fn.as_str ? a->u.fn.as_str
                                                                : NULL;
        bool b_ok      = b->type == TV_STR || b->type == TV_PATH;
        if (pa && b_ok) {
            *ret = tv_path_join(ev, pa, b->u.str.s);
            return 0;
        }
        if (a->type == TV_STR && b->type == TV_PATH) {
            *ret = tv_path_join(ev, a->u.str.s, b->u.str.s);
            return 0;
        }
    }
    if (!is_num(a) || !is_num(b))
        return operand_error(ev, names[op], a, b);
    if (is_int(a) && is_int(b) && op != OP_DIV)
        return int_arith(ev, op, int_of(a), int_of(b), ret);
    return float_arith(ev, op, dbl_of(a), dbl_of(b), ret);
}

int teval_equal(struct teval* ev, const struct tval* a, const struct tval* b, bool* ret) {
    if (a->type == TV_UNDEF && !(a->flags & TVF_LENIENT))
        return tv_undefined_error(ev, a);
    if (b->type == TV_UNDEF && !(b->flags & TVF_LENIENT))
        return tv_undefined_error(ev, b);
    *ret = tv_equal(a, b);
    return 0;
}

int teval_contains(struct teval* ev, const struct tval* seq, const struct tval* x, bool* ret) {
    if (seq->type == TV_UNDEF && !(seq->flags & TVF_LENIENT))
        return tv_undefined_error(ev, seq);
    /* an undefined x fails when compared or hashed: not against an empty list */
    if (x->type == TV_UNDEF && !(x->flags & TVF_LENIENT) &&
        !(seq->type == TV_LIST && seq->u.list.n == 0))
        return tv_undefined_error(ev, x);
    *ret = false;
    switch (seq->type) {
        case TV_UNDEF:
            return 0;
        case TV_STR:
            if (x->type != TV_STR)
                return teval_fail(ev, "'in <string>' requires string as left operand, not %s",
                                  tv_type_name(x));
            *ret = x->u.str.len == 0 ||
                   memmem(seq->u.str.s, seq->u.str.len, x->u.str.s, x->u.str.len) != NULL;
            return 0;
        case TV_DICT:
            if (seq->flags & TVF_NAMESPACE)
                break;
            *ret = x->type == TV_STR && tv_dict_get(seq, x->u.str.s);
            return 0;
        case TV_LIST:
            for (size_t i = 0; i < seq->u.list.n && !*ret; i++)
                *ret = tv_equal(x, seq->u.list.items[i]);
            return 0;
        default:
            break;
    }
    return teval_fail(ev, "argument of type '%s' is not iterable", tv_type_name(seq));
}

static int eval_binary(struct teval* ev, const struct expr* e, const struct tval** ret) {
    const struct tval *a, *b;
    if (teval_expr(ev, e->a, &a) < 0 || teval_expr(ev, e->b, &b) < 0)
        return -EINVAL;
    ev->line = e->line;
    bool t;
    int c = 0;
    switch (e->op) {
        case OP_EQ:
        case OP_NE:
            if (teval_equal(ev, a, b, &t) < 0)
                return -EINVAL;
            *ret = tv_bool(t == (e->op == OP_EQ));
            return 0;
        case OP_LT:
        case OP_GT:
        case OP_LE:
        case OP_GE:
            if (is_num(a) && is_num(b) && (a->type == TV_FLOAT || b->type == TV_FLOAT)) {
                double x = dbl_of(a), y = dbl_of(b); /* NaN compares false, as in Python */
                t = e->op == OP_LT   ? x < y
                    : e->op == OP_GT ? x > y
                    : e->op == OP_LE ? x <= y
                                     : x >= y;
            } else {
                if (tv_compare(ev, a, b, &c) < 0)
                    return -EINVAL;
                t = e->op == OP_LT   ? c < 0
                    : e->op == OP_GT ? c > 0
                    : e->op == OP_LE ? c <= 0
                                     : c >= 0;
            }
            *ret = tv_bool(t);
            return 0;
        case OP_IN:
        case OP_NOT_IN:
            if (teval_contains(ev, b, a, &t) < 0)
                return -EINVAL;
            *ret = tv_bool(t == (e->op == OP_IN));
            return 0;
        case OP_CONCAT: {
            struct strbuf sb = STRBUF_INIT;
            int r            = tv_to_str(ev, a, &sb);
            if (r == 0)
                r = tv_to_str(ev, b, &sb);
            if (r == 0)
                r = tv_check_size(ev, sb.len);
            if (r == 0)
                *ret = tv_str(ev, sb.buf ? sb.buf : "", sb.len);
            strbuf_free(&sb);
            return r;
        }
        default:
            return arith(ev, e->op, a, b, ret);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Expressions                                                                                */

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

int teval_call(struct teval* ev, const struct tval* fn, const struct tval* const* args,
               size_t nargs, const struct tkwarg* kw, size_t nkw, const struct tval** ret) {
    if (fn->type == TV_UNDEF)
        return tv_undefined_error(ev, fn);
    if (fn->type != TV_FUNC)
        return teval_fail(ev, "'%s' object is not callable", tv_type_name(fn));
    return fn->u.fn.fn(ev, fn, args, nargs, kw, nkw, ret);
}

static int eval_unary(struct teval* ev, const struct expr* e, const struct tval** ret) {
    const struct tval* a;
    if (teval_expr(ev, e->a, &a) < 0)
        return -EINVAL;
    ev->line = e->line;
    if (a->type == TV_UNDEF)
        return tv_undefined_error(ev, a);
    if (!is_num(a))
        return teval_fail(ev, "bad operand type for unary %c: '%s'", e->kind == EX_NEG ? '-' : '+',
                          tv_type_name(a));
    if (a->type == TV_FLOAT)
        *ret = tv_float(ev, e->kind == EX_NEG ? -a->u.f : a->u.f);
    else if (e->kind == EX_POS)
        *ret = tv_int(ev, int_of(a));
    else if (int_of(a) == INT64_MIN)
        return teval_fail(ev, "integer overflow (moat's integers are 64-bit)");
    else
        *ret = tv_int(ev, -int_of(a));
    return 0;
}

static int eval_seq(struct teval* ev, const struct expr* e, const struct tval** ret) {
    const struct tval** items = arena_alloc(ev->arena, (e->nargs + 1) * sizeof(*items));
    for (size_t i = 0; i < e->nargs; i++)
        if (teval_expr(ev, e->args[i], &items[i]) < 0)
            return -EINVAL;
    *ret = e->kind == EX_TUPLE ? tv_tuple(ev, items, e->nargs) : tv_list(ev, items, e->nargs);
    return 0;
}

static int eval_dict(struct teval* ev, const struct expr* e, const struct tval** ret) {
    size_t n                   = e->nargs / 2;
    const char** keys          = arena_alloc(ev->arena, (n + 1) * sizeof(*keys));
    const struct tval** values = arena_alloc(ev->arena, (n + 1) * sizeof(*values));
    for (size_t i = 0; i < n; i++) {
        const struct tval* k;
        if (teval_expr(ev, e->args[2 * i], &k) < 0 ||
            teval_expr(ev, e->args[2 * i + 1], &values[i]) < 0)
            return -EINVAL;
        if (k->type == TV_UNDEF)
            return tv_undefined_error(ev, k);
        if (k->type != TV_STR)
            return teval_fail(ev, "dict keys must be strings in moat templates, got %s",
                              tv_type_name(k));
        keys[i] = k->u.str.s;
    }
    *ret = tv_dict(ev, keys, values, n);
    return 0;
}

int teval_expr(struct teval* ev, const struct expr* e, const struct tval** ret) {
    ev->line = e->line;
    const struct tval *a, *b;
    const struct tval** args;
    struct tkwarg* kw;
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
            return teval_getattr(ev, a, e->name, ret);
        case EX_ITEM:
            if (teval_expr(ev, e->a, &a) < 0 || teval_expr(ev, e->b, &b) < 0)
                return -EINVAL;
            ev->line = e->line;
            return teval_getitem(ev, a, b, ret);
        case EX_SLICE:
            if (teval_expr(ev, e->a, &a) < 0)
                return -EINVAL;
            return eval_slice(ev, e, a, ret);
        case EX_CALL:
            if (teval_expr(ev, e->a, &a) < 0 || eval_args(ev, e, &args, &kw) < 0)
                return -EINVAL;
            ev->line = e->line;
            return teval_call(ev, a, args, e->npos, kw, e->nargs - e->npos, ret);
        case EX_FILTER:
            if (teval_expr(ev, e->a, &a) < 0 || eval_args(ev, e, &args, &kw) < 0)
                return -EINVAL;
            ev->line = e->line;
            return tfilter_apply(ev, e->name, a, args, e->npos, kw, e->nargs - e->npos, ret);
        case EX_TEST:
            if (teval_expr(ev, e->a, &a) < 0 || eval_args(ev, e, &args, &kw) < 0)
                return -EINVAL;
            ev->line = e->line;
            if (ttest_apply(ev, e->name, a, args, e->npos, kw, e->nargs - e->npos, &t) < 0)
                return -EINVAL;
            *ret = tv_bool(t != e->negate);
            return 0;
        case EX_NEG:
        case EX_POS:
            return eval_unary(ev, e, ret);
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
            /* jinja2's compiler uses the plain Undefined here, even with StrictUndefined */
            *ret = tv_undef_msg(ev, true,
                                "the inline if-expression on line %u evaluated to false and no "
                                "else section was defined.",
                                e->line);
            return 0;
        case EX_LIST:
        case EX_TUPLE:
            return eval_seq(ev, e, ret);
        case EX_DICT:
            return eval_dict(ev, e, ret);
    }
    return teval_fail(ev, "internal error: unknown expression");
}
