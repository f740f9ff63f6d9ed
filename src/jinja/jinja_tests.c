/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Jinja's builtin tests (`x is defined`, `x is divisibleby 3`; jinja2/tests.py, 3.1).
 * StrictUndefined values fail only in the tests that use the value, as in Jinja.
 */
#include <math.h>
#include <string.h>

#include "jinja_impl.h"

#define P(...) \
    { __VA_ARGS__, NULL }

static bool is_num(const struct tval* v) {
    return v->type == TV_INT || v->type == TV_BOOL || v->type == TV_FLOAT;
}

static int t_type(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)a;
    bool r       = false;
    bool lenient = v->type == TV_UNDEF && (v->flags & TVF_LENIENT);
    bool mapping = v->type == TV_DICT && !(v->flags & TVF_NAMESPACE);
    if (!strcmp(name, "defined") || !strcmp(name, "undefined"))
        r = (v->type != TV_UNDEF) == (name[0] == 'd');
    else if (!strcmp(name, "none"))
        r = v->type == TV_NONE;
    else if (!strcmp(name, "boolean"))
        r = v->type == TV_BOOL;
    else if (!strcmp(name, "true") || !strcmp(name, "false"))
        r = v->type == TV_BOOL && v->u.b == (name[0] == 't');
    else if (!strcmp(name, "integer"))
        r = v->type == TV_INT;
    else if (!strcmp(name, "float"))
        r = v->type == TV_FLOAT;
    else if (!strcmp(name, "number"))
        r = is_num(v);
    else if (!strcmp(name, "string"))
        r = v->type == TV_STR;
    else if (!strcmp(name, "mapping"))
        r = mapping;
    else if (!strcmp(name, "sequence"))
        r = v->type == TV_STR || mapping ||
            (v->type == TV_LIST && !(v->flags & (TVF_KEYS | TVF_VALUES | TVF_ITEMS)));
    else if (!strcmp(name, "iterable")) {
        if (tundef_strict(v))
            return tv_undefined_error(ev, v);
        r = v->type == TV_STR || v->type == TV_LIST || mapping || lenient;
    } else if (!strcmp(name, "callable"))
        r = v->type == TV_FUNC || v->type == TV_UNDEF || v->type == TV_LOOP;
    else if (!strcmp(name, "escaped"))
        r = false;
    *ret = tv_bool(r);
    return 0;
}

static int t_case(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                  const struct tval** ret) {
    (void)a;
    const struct tval* s;
    if (tstr_of(ev, v, &s) < 0)
        return -EINVAL;
    bool cased = false, ok = true;
    for (size_t i = 0; i < s->u.str.len; i++) {
        char c = s->u.str.s[i];
        if (tis_alpha(c)) {
            cased = true;
            ok &= name[0] == 'l' ? tlower_c(c) == c : tupper_c(c) == c;
        }
    }
    *ret = tv_bool(cased && ok);
    return 0;
}

/* odd, even, divisibleby(num): value % 2, value % num */
static int t_mod(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                 const struct tval** ret) {
    const struct tval* d = name[0] == 'd' ? a->p[0] : NULL;
    if (tundef_strict(v))
        return tv_undefined_error(ev, v);
    if (!is_num(v) || (d && !is_num(d)))
        return teval_fail(ev, "unsupported operand type(s) for %%: '%s' and '%s'", tv_type_name(v),
                          d ? tv_type_name(d) : "int");
    double x = v->type == TV_FLOAT ? v->u.f : (double)(v->type == TV_INT ? v->u.i : v->u.b);
    double y = !d                    ? 2
               : d->type == TV_FLOAT ? d->u.f
                                     : (double)(d->type == TV_INT ? d->u.i : d->u.b);
    if (y == 0)
        return teval_fail(ev, "integer division or modulo by zero");
    /* Python's %: the result has the sign of the divisor; odd is `value % 2 == 1` */
    bool ints = v->type != TV_FLOAT && (!d || d->type != TV_FLOAT);
    double m  = ints ? (y == -1 ? 0 : (double)((v->type == TV_INT ? v->u.i : v->u.b) % (int64_t)y))
                     : fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0)))
        m += y;
    *ret = tv_bool(name[0] == 'o' ? m == 1 : m == 0);
    return 0;
}

static int t_compare(struct teval* ev, const char* name, const struct tval* v,
                     const struct fargs* a, const struct tval** ret) {
    const struct tval* o = a->p[0];
    bool r;
    if (!strcmp(name, "in"))
        return teval_contains(ev, o, v, &r) < 0 ? -EINVAL : (*ret = tv_bool(r), 0);
    if (!strcmp(name, "sameas")) {
        bool value_identity =
            v->type == o->type && (v->type == TV_NONE || v->type == TV_BOOL ||
                                   (v->type == TV_INT && v->u.i >= -5 && v->u.i <= 256));
        *ret = tv_bool(v == o || (value_identity && tv_equal(v, o)));
        return 0;
    }
    if (!strcmp(name, "eq") || !strcmp(name, "==") || !strcmp(name, "equalto") ||
        !strcmp(name, "ne") || !strcmp(name, "!=")) {
        if (teval_equal(ev, v, o, &r) < 0)
            return -EINVAL;
        *ret = tv_bool(r == (name[0] == 'e' || name[0] == '='));
        return 0;
    }
    int c;
    if (tv_compare(ev, v, o, &c) < 0)
        return -EINVAL;
    bool lt = name[0] == 'l' || name[0] == '<';
    bool eq =
        !strcmp(name, "le") || !strcmp(name, "ge") || !strcmp(name, "<=") || !strcmp(name, ">=");
    *ret = tv_bool(eq ? (lt ? c <= 0 : c >= 0) : (lt ? c < 0 : c > 0));
    return 0;
}

static int t_names(struct teval* ev, const char* name, const struct tval* v, const struct fargs* a,
                   const struct tval** ret) {
    (void)ev;
    (void)a;
    *ret = tv_bool(v->type == TV_STR &&
                   (name[0] == 'f' ? tfilter_exists(v->u.str.s) : ttest_exists(v->u.str.s)));
    return 0;
}

static const struct tentry g_tests[] = {
    {"!=", t_compare, P("other"), 1},
    {"<", t_compare, P("other"), 1},
    {"<=", t_compare, P("other"), 1},
    {"==", t_compare, P("other"), 1},
    {">", t_compare, P("other"), 1},
    {">=", t_compare, P("other"), 1},
    {"boolean", t_type, P(NULL), 0},
    {"callable", t_type, P(NULL), 0},
    {"defined", t_type, P(NULL), 0},
    {"divisibleby", t_mod, P("num"), 1},
    {"eq", t_compare, P("other"), 1},
    {"equalto", t_compare, P("other"), 1},
    {"escaped", t_type, P(NULL), 0},
    {"even", t_mod, P(NULL), 0},
    {"false", t_type, P(NULL), 0},
    {"filter", t_names, P(NULL), 0},
    {"float", t_type, P(NULL), 0},
    {"ge", t_compare, P("other"), 1},
    {"greaterthan", t_compare, P("other"), 1},
    {"gt", t_compare, P("other"), 1},
    {"in", t_compare, P("seq"), 1},
    {"integer", t_type, P(NULL), 0},
    {"iterable", t_type, P(NULL), 0},
    {"le", t_compare, P("other"), 1},
    {"lessthan", t_compare, P("other"), 1},
    {"lower", t_case, P(NULL), 0},
    {"lt", t_compare, P("other"), 1},
    {"mapping", t_type, P(NULL), 0},
    {"ne", t_compare, P("other"), 1},
    {"none", t_type, P(NULL), 0},
    {"number", t_type, P(NULL), 0},
    {"odd", t_mod, P(NULL), 0},
    {"sameas", t_compare, P("other"), 1},
    {"sequence", t_type, P(NULL), 0},
    {"string", t_type, P(NULL), 0},
    {"test", t_names, P(NULL), 0},
    {"true", t_type, P(NULL), 0},
    {"undefined", t_type, P(NULL), 0},
    {"upper", t_case, P(NULL), 0},
};

bool ttest_exists(const char* name) {
    return tfind_entry(g_tests, ARRAY_SIZE(g_tests), name) != NULL;
}

int ttest_apply(struct teval* ev, const char* name, const struct tval* v,
                const struct tval* const* args, size_t nargs, const struct tkwarg* kw, size_t nkw,
                bool* ret) {
    const struct tentry* t = tfind_entry(g_tests, ARRAY_SIZE(g_tests), name);
    if (!t)
        return teval_fail(ev, "no test named '%s'", name);
    struct fargs a;
    const struct tval* r;
    if (tbind(ev, t, args, nargs, kw, nkw, &a) < 0 || t->fn(ev, name, v, &a, &r) < 0)
        return -EINVAL;
    *ret = r->u.b;
    return 0;
}
