/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the template engine (lexer, statement parser, expressions, filters).
 * Fuzzing builds never start subprocesses (ldd, python). */
#include <stdint.h>
#include <stdlib.h>

#include "jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const struct jinja_env env = {
        .pkglibdir = "/usr/lib/moat",
        .libos     = "/usr/bin/moat",
        .glibc_dir = "/lib/x86_64-linux-gnu",
        .python    = "/nonexistent/python3",
    };
    static const struct jinja_define defs[] = {{"log_level", "error"},
                                               {"arch_libdir", "/lib/x86_64-linux-gnu"},
                                               {"entrypoint", "/usr/bin/python3"},
                                               {"flag", NULL}};
    char* out                               = NULL;
    size_t len;
    struct moat_error err = {0};
    if (jinja_render((const char*)data, size, "fuzz", defs, 4, &env, &out, &len, &err) == 0)
        free(out);
    return 0;
}
