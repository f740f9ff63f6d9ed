/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Go's base64 and hex decoders, byte-compatible in what they accept and in their error texts,
 * because MarbleRun reports them verbatim for File values of Encoding "base64"/"hex"
 * (reference/marblerun.md §1.2). Secrets never pass through here (File data is manifest text).
 */
#include <string.h>

#include "manifest_internal.h"

static int b64_value(uint8_t c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static bool is_nl(uint8_t c) {
    return c == '\r' || c == '\n';
}

/* One 4-character quantum, as Go's (*Encoding).decodeQuantum (non-strict, '=' padding).
 * Returns the number of bytes produced (0..3), sets *done at the end, or -1 with *bad = the
 * offset Go reports. */
static int quantum(const uint8_t* src, size_t len, size_t* si, uint8_t out[3], bool* done,
                   size_t* bad) {
    uint8_t dbuf[4] = {0};
    int dlen        = 4;
    for (int j = 0; j < 4; j++) {
        if (*si == len) {
            if (j == 0) {
                *done = true;
                return 0;
            }
            *bad = *si - (size_t)j; /* padding is required */
            return -1;
        }
        uint8_t in = src[(*si)++];
        int v      = b64_value(in);
        if (v >= 0) {
            dbuf[j] = (uint8_t)v;
            continue;
        }
        if (is_nl(in)) {
            j--;
            continue;
        }
        if (in != '=' || j < 2) {
            *bad = *si - 1;
            return -1;
        }
        if (j == 2) { /* "==" expected, the first one consumed */
            while (*si < len && is_nl(src[*si]))
                (*si)++;
            if (*si == len) {
                *bad = len;
                return -1;
            }
            if (src[*si] != '=') {
                *bad = *si - 1;
                return -1;
            }
            (*si)++;
        }
        while (*si < len && is_nl(src[*si]))
            (*si)++;
        if (*si < len) { /* trailing garbage */
            *bad = *si;
            return -1;
        }
        dlen  = j;
        *done = true;
        break;
    }
    uint32_t val =
        (uint32_t)dbuf[0] << 18 | (uint32_t)dbuf[1] << 12 | (uint32_t)dbuf[2] << 6 | dbuf[3];
    out[0] = (uint8_t)(val >> 16);
    out[1] = (uint8_t)(val >> 8);
    out[2] = (uint8_t)val;
    return dlen - 1;
}

int go_base64_decode(const char* in, size_t len, uint8_t** ret, size_t* ret_len, char* msg,
                     size_t msg_size) {
    const uint8_t* src          = (const uint8_t*)in;
    _cleanup_free_ uint8_t* out = xmalloc(len / 4 * 3 + 4);
    size_t n = 0, si = 0;
    bool done = false;
    while (!done) {
        uint8_t q[3];
        size_t bad = 0;
        int k      = quantum(src, len, &si, q, &done, &bad);
        if (k < 0) {
            snprintf(msg, msg_size, "illegal base64 data at input byte %zu", bad);
            return -EINVAL;
        }
        memcpy(out + n, q, (size_t)k);
        n += (size_t)k;
    }
    *ret     = TAKE_PTR(out);
    *ret_len = n;
    return 0;
}

/* Go's InvalidByteError: fmt "%#U" of the byte taken as a rune (Latin-1). */
static void invalid_byte(uint8_t c, char* msg, size_t msg_size) {
    bool printable = (c >= 0x20 && c < 0x7f) || (c >= 0xa1 && c != 0xad);
    if (!printable)
        snprintf(msg, msg_size, "encoding/hex: invalid byte: U+%04X", c);
    else if (c < 0x80)
        snprintf(msg, msg_size, "encoding/hex: invalid byte: U+%04X '%c'", c, c);
    else /* the rune in UTF-8 */
        snprintf(msg, msg_size, "encoding/hex: invalid byte: U+%04X '%c%c'", c, 0xc0 | (c >> 6),
                 0x80 | (c & 0x3f));
}

int go_hex_decode(const char* in, size_t len, uint8_t** ret, size_t* ret_len, char* msg,
                  size_t msg_size) {
    const uint8_t* src          = (const uint8_t*)in;
    _cleanup_free_ uint8_t* out = xmalloc(len / 2 + 1);
    size_t i = 0, j = 1;
    for (; j < len; j += 2) {
        int a = hex_digit_value(src[j - 1]), b = hex_digit_value(src[j]);
        if (a < 0) {
            invalid_byte(src[j - 1], msg, msg_size);
            return -EINVAL;
        }
        if (b < 0) {
            invalid_byte(src[j], msg, msg_size);
            return -EINVAL;
        }
        out[i++] = (uint8_t)(a << 4 | b);
    }
    if (len % 2 == 1) { /* an invalid character is reported before the bad length */
        if (hex_digit_value(src[j - 1]) < 0)
            invalid_byte(src[j - 1], msg, msg_size);
        else
            snprintf(msg, msg_size, "encoding/hex: odd length hex string");
        return -EINVAL;
    }
    *ret     = TAKE_PTR(out);
    *ret_len = i;
    return 0;
}

static bool digits(const char* s, int n, int* ret) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return true;
}

/* days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil) */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int go_parse_rfc3339(const char* s, time_t* ret, bool* ret_zero) {
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, se;
    size_t len = strlen(s);
    if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) || s[13] != ':' ||
        !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return -EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || se > 59)
        return -EINVAL;
    const char* p     = s + 19;
    bool frac_nonzero = false;
    if (*p == '.' || *p == ',') {
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++)
            frac_nonzero |= *p != '0';
    }
    int off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (strlen(p) != 6 || !digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) ||
            oh > 23 || om > 59)
            return -EINVAL;
        off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    *ret      = (time_t)t;
    *ret_zero = t == -62135596800LL && !frac_nonzero;
    return 0;
}
