/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hex and base64 without data-dependent branches or table lookups, so that encoding keys and
 * secrets does not leak them through timing (the technique of WireGuard's encoding.c).
 * Only lengths and padding positions, which are public, influence control flow.
 */
#include <string.h>

#include "common.h"

static char hex_char(unsigned n) {
    /* 0..9 -> '0'..'9', 10..15 -> 'a'..'f' */
    return (char)(87U + n + (((n - 10U) >> 8) & ~38U));
}

int hex_encode(const void* in, size_t len, char* out, size_t out_size) {
    if (len > (SIZE_MAX - 1) / 2 || out_size < 2 * len + 1)
        return -ENOBUFS;
    const uint8_t* p = in;
    for (size_t i = 0; i < len; i++) {
        out[2 * i]     = hex_char(p[i] >> 4);
        out[2 * i + 1] = hex_char(p[i] & 0xf);
    }
    out[2 * len] = '\0';
    return (int)(2 * len);
}

char* hex_encode_alloc(const void* in, size_t len) {
    char* out = xmalloc(2 * len + 1);
    if (hex_encode(in, len, out, 2 * len + 1) < 0)
        abort();
    return out;
}

/* Returns the nibble; ORs 0xff into *bad if c is not a hex digit. */
static unsigned hex_nibble(unsigned char ch, unsigned* bad) {
    unsigned c        = ch;
    unsigned c_num    = c ^ 48U;
    unsigned c_num0   = ((c_num - 10U) >> 8) & 0xffU;
    unsigned c_alpha  = (c & ~32U) - 55U;
    unsigned c_alpha0 = (((c_alpha - 10U) ^ (c_alpha - 16U)) >> 8) & 0xffU;
    *bad |= ~(c_num0 | c_alpha0) & 0xffU;
    return ((c_num0 & c_num) | (c_alpha0 & c_alpha)) & 0xfU;
}

int hex_decode(const char* in, size_t in_len, void* out, size_t out_size) {
    if (in_len % 2 != 0 || in_len / 2 > out_size)
        return -EINVAL;
    uint8_t* o   = out;
    unsigned bad = 0;
    for (size_t i = 0; i < in_len / 2; i++) {
        unsigned hi = hex_nibble((unsigned char)in[2 * i], &bad);
        unsigned lo = hex_nibble((unsigned char)in[2 * i + 1], &bad);
        o[i]        = (uint8_t)((hi << 4) | lo);
    }
    if (bad) {
        memset(out, 0, in_len / 2);
        return -EINVAL;
    }
    return (int)(in_len / 2);
}

static char b64_char(int b) {
    return (char)(b + 'A' + (((25 - b) >> 8) & 6) - (((51 - b) >> 8) & 75) -
                  (((61 - b) >> 8) & 15) + (((62 - b) >> 8) & 3));
}

char* base64_encode_alloc(const void* in, size_t len) {
    const uint8_t* p = in;
    size_t out_len   = 4 * ((len + 2) / 3);
    char* out        = xmalloc(out_len + 1);
    size_t o         = 0;
    size_t i         = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        out[o++]   = b64_char((int)(v >> 18) & 63);
        out[o++]   = b64_char((int)(v >> 12) & 63);
        out[o++]   = b64_char((int)(v >> 6) & 63);
        out[o++]   = b64_char((int)v & 63);
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        out[o++] = b64_char((int)(v >> 18) & 63);
        out[o++] = b64_char((int)(v >> 12) & 63);
        out[o++] = i + 1 < len ? b64_char((int)(v >> 6) & 63) : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

/* Value of one base64 character, or -1 (all bits) if invalid. */
static int b64_val(int c) {
    return -1 + (((('A' - 1 - c) & (c - ('Z' + 1))) >> 8) & (c - 64)) +
           (((('a' - 1 - c) & (c - ('z' + 1))) >> 8) & (c - 70)) +
           (((('0' - 1 - c) & (c - ('9' + 1))) >> 8) & (c + 5)) +
           (((('+' - 1 - c) & (c - ('+' + 1))) >> 8) & 63) +
           (((('/' - 1 - c) & (c - ('/' + 1))) >> 8) & 64);
}

int base64_decode_alloc(const char* in, size_t in_len, uint8_t** ret, size_t* ret_len) {
    if (in_len % 4 != 0)
        return -EINVAL;
    size_t pad = 0;
    if (in_len >= 4 && in[in_len - 1] == '=')
        pad = in[in_len - 2] == '=' ? 2 : 1;
    size_t out_len = in_len / 4 * 3 - pad;
    uint8_t* out   = xmalloc(out_len + 1);
    int bad        = 0;
    size_t o       = 0;
    for (size_t i = 0; i < in_len; i += 4) {
        bool last  = i + 4 == in_len;
        int n      = last ? 4 - (int)pad : 4;
        uint32_t v = 0;
        for (int k = 0; k < 4; k++) {
            int d = k < n ? b64_val((unsigned char)in[i + k]) : 0;
            bad |= d;
            v = (v << 6) | ((uint32_t)d & 63);
        }
        out[o++] = (uint8_t)(v >> 16);
        if (n > 2)
            out[o++] = (uint8_t)(v >> 8);
        if (n > 3)
            out[o++] = (uint8_t)v;
        /* non-zero bits beyond the padding make the encoding non-canonical */
        if (last && ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff))))
            bad = -1;
    }
    if (bad < 0) {
        free(out);
        return -EINVAL;
    }
    *ret     = out;
    *ret_len = out_len;
    return 0;
}

int hex_digit_value(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char* base64url_encode_alloc(const void* in, size_t len) {
    char* out = base64_encode_alloc(in, len);
    size_t n  = strlen(out);
    while (n > 0 && out[n - 1] == '=')
        out[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

int base64url_decode_alloc(const char* in, size_t in_len, uint8_t** ret, size_t* ret_len) {
    if (in_len % 4 == 1)
        return -EINVAL;
    size_t padded             = (in_len + 3) / 4 * 4;
    _cleanup_free_ char* copy = xmalloc(padded + 1);
    for (size_t i = 0; i < in_len; i++) {
        char c = in[i];
        if (c == '+' || c == '/' || c == '=')
            return -EINVAL;
        copy[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    memset(copy + in_len, '=', padded - in_len);
    copy[padded] = '\0';
    return base64_decode_alloc(copy, padded, ret, ret_len);
}

size_t utf8_seq_len(const void* p, size_t avail) {
    const unsigned char* s = p;
    unsigned c             = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
        n  = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n  = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n  = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}
