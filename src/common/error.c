/* SPDX-License-Identifier: Apache-2.0 */
/* The error context: library code fills it once, the caller reports it once. */
#include <stdarg.h>
#include <string.h>

#include "common.h"

PRINTF_FMT(3, 0) static void verror(struct moat_error* err, int code, const char* fmt, va_list ap) {
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int moat_error_set(struct moat_error* err, int code, const char* fmt, ...) {
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    verror(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int moat_error_set_errno(struct moat_error* err, int code, const char* fmt, ...) {
    if (!err)
        return code;
    va_list ap;
    va_start(ap, fmt);
    verror(err, code, fmt, ap);
    va_end(ap);
    size_t len = strlen(err->msg);
    snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(code < 0 ? -code : code));
    return code;
}

int moat_error_prefix(struct moat_error* err, const char* fmt, ...) {
    if (!err)
        return -EINVAL;
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len > sizeof(err->msg) - 1)
        len = sizeof(err->msg) - 1;
    /* append ": old", truncating the tail if the whole message does not fit */
    static const char sep[] = ": ";
    size_t room             = sizeof(err->msg) - 1 - len;
    size_t sl               = room < 2 ? room : 2;
    memcpy(err->msg + len, sep, sl);
    len += sl;
    room -= sl;
    size_t ol = strnlen(old, sizeof(old) - 1);
    if (ol > room)
        ol = room;
    memcpy(err->msg + len, old, ol);
    err->msg[len + ol] = '\0';
    if (err->code == 0)
        err->code = -EINVAL;
    return err->code;
}

void moat_error_clear(struct moat_error* err) {
    if (!err)
        return;
    err->code   = 0;
    err->msg[0] = '\0';
}
