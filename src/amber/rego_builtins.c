/* SPDX-License-Identifier: Apache-2.0 */
/* The built-ins ITA lists for policies ("Policy language functions": count, time.now_ns,
 * time.parse_rfc3339_ns, time.add_date, object.subset), with OPA's behaviour: a type error or
 * an unparsable argument makes the call undefined (OPA's default, strict-builtin-errors off).
 * Time is Go's: nanoseconds since the epoch in int64, the proleptic Gregorian calendar. */
#include <math.h>
#include <string.h>

#include "rego_impl.h"

#define NS_PER_SEC 1000000000LL

/* Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t* y, int64_t* m, int64_t* d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp  = (5 * doy + 2) / 153;
    *d          = doy - (153 * mp + 2) / 5 + 1;
    *m          = mp < 10 ? mp + 3 : mp - 9;
    *y          = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int64_t m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Seconds since the epoch and nanoseconds into one int64, -ERANGE when it does not fit. */
static int to_ns(int64_t days, int64_t sec_of_day, int64_t nsec, int64_t* ret) {
    int64_t s, ns;
    if (__builtin_mul_overflow(days, 86400, &s) || __builtin_add_overflow(s, sec_of_day, &s) ||
        __builtin_mul_overflow(s, NS_PER_SEC, &ns) || __builtin_add_overflow(ns, nsec, &ns))
        return -ERANGE;
    *ret = ns;
    return 0;
}

static int digits(const char* s, size_t n, int64_t* ret) {
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return 0;
}

/* time.RFC3339 = "2006-01-02T15:04:05Z07:00"; Go also takes a fraction after the seconds. */
int rg_parse_rfc3339_ns(const char* s, size_t len, int64_t* ret_ns) {
    int64_t y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0;
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return -EINVAL;
    if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
        digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
        return -EINVAL;
    size_t i = 19;
    if (s[i] == '.' || s[i] == ',') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        size_t n = i - start;
        if (n == 0 || n > 9 || digits(s + start, n, &frac))
            return -EINVAL;
        for (; n < 9; n++)
            frac *= 10;
    }
    if (i < len && s[i] == 'Z') {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        if (s[i] == '-') {
            oh = -oh;
            om = -om;
        }
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != len || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59)
        return -EINVAL;
    int64_t sod = h * 3600 + mi * 60 + sec - (oh * 3600 + om * 60);
    return to_ns(days_from_civil(y, mo, d), sod, frac, ret_ns) < 0 ? -EINVAL : 0;
}

/* Go's AddDate: normalise the month into the year, then count days from the 1st. */
int rg_add_date(int64_t ns, int64_t years, int64_t months, int64_t days, int64_t* ret_ns) {
    const int64_t lim = 1000000000; /* far beyond int64 nanoseconds, far from overflow */
    if (years < -lim || years > lim || months < -lim || months > lim || days < -lim * 400 ||
        days > lim * 400)
        return -ERANGE;
    int64_t secs = floor_div(ns, NS_PER_SEC), nsec = ns - secs * NS_PER_SEC;
    int64_t day = floor_div(secs, 86400), sod = secs - day * 86400;
    int64_t y, m, d;
    civil_from_days(day, &y, &m, &d);
    y += years;
    int64_t m0 = m - 1 + months;
    y += floor_div(m0, 12);
    m = m0 - floor_div(m0, 12) * 12 + 1;
    return to_ns(days_from_civil(y, m, 1) + d - 1 + days, sod, nsec, ret_ns);
}

static bool as_int64(const json_t* v, int64_t* ret) {
    if (json_is_integer(v)) {
        *ret = json_integer_value(v);
        return true;
    }
    double d = json_number_value(v);
    if (!json_is_real(v) || d != floor(d) || d < -0x1p63 || d >= 0x1p63)
        return false;
    *ret = (int64_t)d;
    return true;
}

static bool array_has(const json_t* arr, const json_t* v) {
    for (size_t i = 0; i < json_array_size(arr); i++)
        if (rg_compare(json_array_get(arr, i), false, v, false) == 0)
            return true;
    return false;
}

/* sub appears contiguously, in order, in super (OPA: arrays are not recursed into). */
static bool array_run(const json_t* super, const json_t* sub) {
    size_t n = json_array_size(super), k = json_array_size(sub);
    for (size_t i = 0; i + k <= n; i++) {
        size_t j = 0;
        while (j < k &&
               rg_compare(json_array_get(super, i + j), false, json_array_get(sub, j), false) == 0)
            j++;
        if (j == k)
            return true;
    }
    return k == 0;
}

/* Objects: every key of sub in super; object values recurse, other values must be equal.
 * Arrays under the same key are refused: OPA's rule for them is not pinned down here. */
static int object_subset(const json_t* super, const json_t* sub, int line, int depth, bool* ret,
                         struct moat_error* err) {
    if (depth > REGO_MAX_DEPTH)
        return moat_error_set(err, -E2BIG, "line %d: object.subset nested deeper than %d", line,
                              REGO_MAX_DEPTH);
    *ret = true;
    for (void* it = json_object_iter((json_t*)sub); it && *ret;
         it       = json_object_iter_next((json_t*)sub, it)) {
        json_t* sv = json_object_iter_value(it);
        json_t* pv =
            json_object_getn(super, json_object_iter_key(it), json_object_iter_key_len(it));
        if (!pv) {
            *ret = false;
        } else if (json_is_object(pv) && json_is_object(sv)) {
            int r = object_subset(pv, sv, line, depth + 1, ret, err);
            if (r < 0)
                return r;
        } else if (json_is_array(pv) && json_is_array(sv) && rg_compare(pv, false, sv, false)) {
            return moat_error_set(err, -EINVAL,
                                  "line %d: object.subset of objects holding different arrays "
                                  "is not supported",
                                  line);
        } else {
            *ret = rg_compare(pv, false, sv, false) == 0;
        }
    }
    return 0;
}

static int subset(const struct rg_val* super, const struct rg_val* sub, int line,
                  struct rg_val* ret, struct moat_error* err) {
    bool holds;
    if (super->set && sub->set) {
        holds = true;
        for (size_t i = 0; holds && i < json_array_size(sub->j); i++)
            holds = rg_set_contains(super->j, json_array_get(sub->j, i));
    } else if (json_is_array(super->j) && !super->set && sub->set) {
        holds = true;
        for (size_t i = 0; holds && i < json_array_size(sub->j); i++)
            holds = array_has(super->j, json_array_get(sub->j, i));
    } else if (json_is_array(super->j) && json_is_array(sub->j) && !super->set && !sub->set) {
        holds = array_run(super->j, sub->j);
    } else if (json_is_object(super->j) && json_is_object(sub->j)) {
        int r = object_subset(super->j, sub->j, line, 0, &holds, err);
        if (r < 0)
            return r;
    } else {
        return 0; /* a type error: undefined */
    }
    ret->j = json_boolean(holds);
    return 0;
}

/* OPA's count: elements of a collection, code points of a string. */
static void count_of(const struct rg_val* v, struct rg_val* ret) {
    size_t n = 0;
    if (json_is_array(v->j)) {
        n = json_array_size(v->j);
    } else if (json_is_object(v->j)) {
        n = json_object_size(v->j);
    } else if (json_is_string(v->j)) {
        const unsigned char* s = (const unsigned char*)json_string_value(v->j);
        for (size_t i = 0; i < json_string_length(v->j); i++)
            n += (s[i] & 0xc0) != 0x80;
    } else {
        return;
    }
    ret->j = json_integer((json_int_t)n);
}

int rg_builtin(enum rg_builtin fn, const struct rg_val* args, int64_t now_ns, int line,
               struct rg_val* ret, struct moat_error* err) {
    int64_t ns, y, m, d;
    *ret = (struct rg_val){0};
    switch (fn) {
        case B_COUNT:
            count_of(&args[0], ret);
            break;
        case B_TIME_NOW_NS:
            ret->j = json_integer(now_ns);
            break;
        case B_TIME_PARSE_RFC3339_NS:
            if (json_is_string(args[0].j) &&
                rg_parse_rfc3339_ns(json_string_value(args[0].j), json_string_length(args[0].j),
                                    &ns) == 0)
                ret->j = json_integer(ns);
            break;
        case B_TIME_ADD_DATE:
            if (!args[0].set && as_int64(args[0].j, &ns) && as_int64(args[1].j, &y) &&
                as_int64(args[2].j, &m) && as_int64(args[3].j, &d) &&
                rg_add_date(ns, y, m, d, &ns) == 0)
                ret->j = json_integer(ns);
            break;
        case B_OBJECT_SUBSET:
            return subset(&args[0], &args[1], line, ret, err);
    }
    return 0;
}
