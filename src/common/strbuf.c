/* SPDX-License-Identifier: Apache-2.0 */
/* A growable, always NUL-terminated string buffer. */
#include <string.h>

#include "common.h"

static void strbuf_reserve(struct strbuf* sb, size_t extra) {
    if (extra > SIZE_MAX - sb->len - 1)
        abort();
    sb->buf = xgrow(sb->buf, &sb->cap, sb->len + extra + 1, 1);
}

void strbuf_append(struct strbuf* sb, const char* s, size_t n) {
    strbuf_reserve(sb, n);
    if (n)
        memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void strbuf_puts(struct strbuf* sb, const char* s) {
    strbuf_append(sb, s, strlen(s));
}

void strbuf_putc(struct strbuf* sb, char c) {
    strbuf_append(sb, &c, 1);
}

void strbuf_vprintf(struct strbuf* sb, const char* fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        abort();
    strbuf_reserve(sb, (size_t)n);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

void strbuf_printf(struct strbuf* sb, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(sb, fmt, ap);
    va_end(ap);
}

char* strbuf_take(struct strbuf* sb, size_t* ret_len) {
    if (!sb->buf) {
        strbuf_reserve(sb, 0);
        sb->buf[0] = '\0';
    }
    char* s = sb->buf;
    if (ret_len)
        *ret_len = sb->len;
    sb->buf = NULL;
    sb->len = sb->cap = 0;
    return s;
}

void strbuf_free(struct strbuf* sb) {
    free(sb->buf);
    sb->buf = NULL;
    sb->len = sb->cap = 0;
}

void strbuf_put_utf8(struct strbuf* sb, uint32_t cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n    = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n    = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n    = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n    = 4;
    }
    strbuf_append(sb, b, n);
}
