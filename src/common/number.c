/* SPDX-License-Identifier: Apache-2.0 */
/* Number and size-string parsing with complete checks (no atoi, no silent truncation). */
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "common.h"

int parse_size_str(const char* str, uint64_t* ret_size) {
    /* reference/gramine.md §1.2: decimal digits, one optional K/M/G suffix, nothing else */
    if (!str || !isdigit((unsigned char)str[0]))
        return -EINVAL;
    uint64_t v = 0;
    size_t i   = 0;
    for (; isdigit((unsigned char)str[i]); i++) {
        unsigned d = (unsigned)(str[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    unsigned shift = 0;
    switch (str[i]) {
        case '\0':
            break;
        case 'K':
        case 'k':
            shift = 10;
            break;
        case 'M':
        case 'm':
            shift = 20;
            break;
        case 'G':
        case 'g':
            shift = 30;
            break;
        default:
            return -EINVAL;
    }
    if (shift) {
        if (str[i + 1] != '\0')
            return -EINVAL;
        if (v > (UINT64_MAX >> shift))
            return -ERANGE;
        v <<= shift;
    }
    *ret_size = v;
    return 0;
}

int parse_i64(const char* str, int base, int64_t* ret) {
    if (!str || !*str || isspace((unsigned char)*str))
        return -EINVAL;
    char* end;
    errno       = 0;
    long long v = strtoll(str, &end, base);
    if (errno == ERANGE)
        return -ERANGE;
    if (errno || *end != '\0')
        return -EINVAL;
    *ret = v;
    return 0;
}

int parse_u64(const char* str, int base, uint64_t* ret) {
    if (!str || !*str || isspace((unsigned char)*str) || *str == '-' || *str == '+')
        return -EINVAL;
    char* end;
    errno                = 0;
    unsigned long long v = strtoull(str, &end, base);
    if (errno == ERANGE)
        return -ERANGE;
    if (errno || *end != '\0')
        return -EINVAL;
    *ret = v;
    return 0;
}

int cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

void format_double(double d, char* buf, size_t size) {
    if (isnan(d)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, size, d < 0 ? "-inf" : "inf");
        return;
    }
    /* the fewest significant digits that read back exactly */
    char e[64];
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    snprintf(e, sizeof(e), "%.*e", prec - 1, d);
    long exp = strtol(strchr(e, 'e') + 1, NULL, 10);
    if (exp < -4 || exp >= 16) { /* Python's repr switches to exponent notation here */
        snprintf(buf, size, "%s", e);
        return;
    }
    int decimals = prec - 1 - (int)exp;
    snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, d);
    if (!strchr(buf, '.')) {
        size_t n = strlen(buf);
        if (n + 2 < size)
            memcpy(buf + n, ".0", 3);
    }
}
