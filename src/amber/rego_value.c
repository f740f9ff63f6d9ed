/* SPDX-License-Identifier: Apache-2.0 */
/* Value order and sets for the Rego subset: OPA's ast.Compare over JSON values. Values inside
 * arrays and objects are plain JSON (the evaluator refuses sets there), so only the top level
 * carries the set flag. Nesting is bounded by the input's own depth (jansson limits parsing
 * depth) and by REGO_MAX_DEPTH for literals. */
#include <math.h>
#include <string.h>

#include "rego_impl.h"

/* OPA's sortOrder: null, boolean, number, string, (var, ref), array, object, set. */
static int type_rank(const json_t* v, bool set) {
    if (set)
        return 6;
    switch (json_typeof(v)) {
        case JSON_NULL:
            return 0;
        case JSON_TRUE:
        case JSON_FALSE:
            return 1;
        case JSON_INTEGER:
        case JSON_REAL:
            return 2;
        case JSON_STRING:
            return 3;
        case JSON_ARRAY:
            return 4;
        case JSON_OBJECT:
            return 5;
    }
    return 7;
}

static int cmp_numbers(const json_t* a, const json_t* b) {
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    /* an integer against a real: exact when the real is integral and in range */
    double x = json_number_value(a), y = json_number_value(b);
    if (json_is_integer(a) && isfinite(y) && y >= -0x1p63 && y < 0x1p63 && y == floor(y)) {
        json_int_t xi = json_integer_value(a), yi = (json_int_t)y;
        return xi < yi ? -1 : xi > yi;
    }
    if (json_is_integer(b) && isfinite(x) && x >= -0x1p63 && x < 0x1p63 && x == floor(x)) {
        json_int_t xi = (json_int_t)x, yi = json_integer_value(b);
        return xi < yi ? -1 : xi > yi;
    }
    return x < y ? -1 : x > y;
}

static int cmp_strings(const json_t* a, const json_t* b) {
    size_t la = json_string_length(a), lb = json_string_length(b);
    int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return la < lb ? -1 : la > lb;
}

static int cmp_arrays(const json_t* a, const json_t* b) {
    size_t na = json_array_size(a), nb = json_array_size(b);
    for (size_t i = 0; i < na && i < nb; i++) {
        int c = rg_compare(json_array_get(a, i), false, json_array_get(b, i), false);
        if (c != 0)
            return c;
    }
    return na < nb ? -1 : na > nb;
}

/* Keys by bytes and length: a key may hold NULs (a \u0000 escape). */
static int cmp_key_bytes(void* x, void* y) {
    size_t lx = json_object_iter_key_len(x), ly = json_object_iter_key_len(y);
    int c = memcmp(json_object_iter_key(x), json_object_iter_key(y), lx < ly ? lx : ly);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return lx < ly ? -1 : lx > ly;
}

static int cmp_iters(const void* x, const void* y) {
    return cmp_key_bytes(*(void* const*)x, *(void* const*)y);
}

static void** sorted_iters(const json_t* o) {
    void** its = xcalloc(json_object_size(o) + 1, sizeof(*its));
    size_t n   = 0;
    for (void* it = json_object_iter((json_t*)o); it; it = json_object_iter_next((json_t*)o, it))
        its[n++] = it;
    qsort(its, n, sizeof(*its), cmp_iters);
    return its;
}

/* OPA compares objects by their sorted keys, then by the values under those keys. */
static int cmp_objects(const json_t* a, const json_t* b) {
    _cleanup_free_ void** ia = sorted_iters(a);
    _cleanup_free_ void** ib = sorted_iters(b);
    size_t na = json_object_size(a), nb = json_object_size(b);
    for (size_t i = 0; i < na && i < nb; i++) {
        int c = cmp_key_bytes(ia[i], ib[i]);
        if (c != 0)
            return c;
        c = rg_compare(json_object_iter_value(ia[i]), false, json_object_iter_value(ib[i]), false);
        if (c != 0)
            return c;
    }
    return na < nb ? -1 : na > nb;
}

int rg_compare(const json_t* a, bool a_set, const json_t* b, bool b_set) {
    int ra = type_rank(a, a_set), rb = type_rank(b, b_set);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
        case 0:
            return 0;
        case 1:
            return json_is_true(a) == json_is_true(b) ? 0 : (json_is_true(a) ? 1 : -1);
        case 2:
            return cmp_numbers(a, b);
        case 3:
            return cmp_strings(a, b);
        case 4:
        case 6: /* sets are sorted arrays: element-wise order is OPA's set order */
            return cmp_arrays(a, b);
        default:
            return cmp_objects(a, b);
    }
}

static int cmp_elems(const void* x, const void* y) {
    return rg_compare(*(json_t* const*)x, false, *(json_t* const*)y, false);
}

void rg_set_normalize(json_t* arr) {
    size_t n = json_array_size(arr);
    if (n < 2)
        return;
    _cleanup_free_ json_t** elems = xcalloc(n, sizeof(*elems));
    for (size_t i = 0; i < n; i++)
        elems[i] = json_incref(json_array_get(arr, i));
    qsort(elems, n, sizeof(*elems), cmp_elems);
    json_array_clear(arr);
    json_t* last = NULL; /* owned by arr once appended */
    for (size_t i = 0; i < n; i++) {
        if (last && rg_compare(last, false, elems[i], false) == 0) {
            json_decref(elems[i]);
            continue;
        }
        last = elems[i];
        if (json_array_append_new(arr, elems[i]) < 0)
            abort();
    }
}

bool rg_set_contains(const json_t* set, const json_t* v) {
    size_t lo = 0, hi = json_array_size(set);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c      = rg_compare(json_array_get(set, mid), false, v, false);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}
