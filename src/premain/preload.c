/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmoat-premain.so: the Marble premain as an LD_PRELOAD library (seed 000's form; docs/
 * marblerun.md). A constructor activates the process with the Coordinator before main and
 * applies Files and Env; argv stays what the manifest (or loader.argv_src_file) gives. It then
 * takes itself out of LD_PRELOAD in environ, so the app's children do not activate again.
 * On failure the process exits with status 2, as Go's premain panics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "premain.h"

#define SELF "libmoat-premain.so"

/* LD_PRELOAD without this library (entries are separated by spaces or colons) */
static void drop_self_from_preload(void) {
    const char* v = premain_getenv("LD_PRELOAD");
    if (!v)
        return;
    struct strbuf rest       = {0};
    _cleanup_free_ char* all = xstrdup(v);
    char* save               = NULL;
    for (char* e = strtok_r(all, ": ", &save); e; e = strtok_r(NULL, ": ", &save)) {
        const char* base = strrchr(e, '/');
        if (strcmp(base ? base + 1 : e, SELF) == 0)
            continue;
        if (rest.len)
            strbuf_putc(&rest, ':');
        strbuf_puts(&rest, e);
    }
    if (rest.len)
        premain_setenv("LD_PRELOAD", rest.buf);
    else
        premain_unsetenv("LD_PRELOAD");
    strbuf_free(&rest);
}

__attribute__((constructor)) static void premain_preload(void) {
    struct premain_params p = {0};
    struct moat_error err   = {0};
    drop_self_from_preload();
    if (premain_run(&p, &err) < 0) {
        fprintf(stderr, "panic: %s\n", err.msg);
        fflush(stderr);
        _exit(2);
    }
    premain_params_clear(&p);
}
