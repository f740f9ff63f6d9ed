/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation that aborts on exhaustion: moat's tools cannot do anything useful without memory,
 * and checking every small allocation obscures the real error paths. */
#include <stdarg.h>
#include <string.h>

#include "common.h"

static void __attribute__((noreturn)) oom(void) {
    static const char msg[] = "moat: out of memory\n";
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing left to do */
    }
    abort();
}

void* xmalloc(size_t size) {
    void* p = malloc(size ? size : 1);
    if (!p)
        oom();
    return p;
}

void* xcalloc(size_t nmemb, size_t size) {
    void* p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void* xrealloc(void* ptr, size_t size) {
    void* p = realloc(ptr, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void* xgrow(void* ptr, size_t* cap, size_t need, size_t elem_size) {
    if (need <= *cap)
        return ptr;
    size_t new_cap = *cap ? *cap : 8;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2)
            oom();
        new_cap *= 2;
    }
    if (elem_size && new_cap > SIZE_MAX / elem_size)
        oom();
    ptr  = xrealloc(ptr, new_cap * elem_size);
    *cap = new_cap;
    return ptr;
}

char* xstrdup(const char* s) {
    char* p = strdup(s);
    if (!p)
        oom();
    return p;
}

char* xstrndup(const char* s, size_t n) {
    char* p = strndup(s, n);
    if (!p)
        oom();
    return p;
}

void* xmemdup(const void* p, size_t len) {
    void* q = xmalloc(len ? len : 1);
    if (len)
        memcpy(q, p, len);
    return q;
}

char* xasprintf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char* p = NULL;
    int r   = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (r < 0)
        oom();
    return p;
}
