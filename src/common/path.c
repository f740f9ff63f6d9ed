/* SPDX-License-Identifier: Apache-2.0 */
/* Lexical path normalisation with Gramine's get_norm_path semantics (trusted/allowed file
 * matching depends on it: reference/gramine.md §6). */
#include <string.h>

#include "common.h"

bool path_is_absolute(const char* path) {
    return path[0] == '/';
}

char* path_normalize(const char* path) {
    bool abs     = path_is_absolute(path);
    size_t len   = strlen(path);
    char* out    = xmalloc(len + 2);
    size_t o     = 0;
    size_t depth = 0; /* components that ".." may remove */
    if (abs)
        out[o++] = '/';
    size_t i = 0;
    while (i < len) {
        while (i < len && path[i] == '/')
            i++;
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        size_t n = i - start;
        if (n == 0 || (n == 1 && path[start] == '.'))
            continue;
        if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
            if (depth > 0) {
                /* drop the last component and its separator */
                while (o > 0 && out[o - 1] != '/')
                    o--;
                if (o > (abs ? 1u : 0u))
                    o--;
                depth--;
                continue;
            }
            if (abs)
                continue; /* ".." above "/" stays at "/" */
            /* relative: a leading ".." cannot be resolved and is kept */
        } else {
            depth++;
        }
        if (o > 0 && out[o - 1] != '/')
            out[o++] = '/';
        memcpy(out + o, path + start, n);
        o += n;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = '\0';
    return out;
}

char* path_join(const char* a, const char* b) {
    size_t la = strlen(a);
    while (la > 0 && a[la - 1] == '/')
        la--;
    while (*b == '/')
        b++;
    if (la == 0 && path_is_absolute(a))
        return xasprintf("/%s", b);
    if (!*b)
        return xstrndup(a, la ? la : 1);
    return xasprintf("%.*s/%s", (int)la, a, b);
}
