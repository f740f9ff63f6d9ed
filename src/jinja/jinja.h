/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Jinja2 subset large enough for Gramine and MarbleRun manifest templates, with
 * gramine-manifest's environment: StrictUndefined, keep_trailing_newline, no autoescape.
 * Globals: `gramine` (runtimedir(), libos, pkglibdir), `python` (stdlib, platstdlib, purelib,
 * distlib, get_sys_path(), …, from a host interpreter), `env` (the process environment) and
 * `ldd(...)`, plus user variables given with -D.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

/* One -D definition. `-Dname` alone sets the boolean True (value == NULL). */
struct jinja_define {
    const char* name;
    const char* value; /* NULL ⇒ True */
};

/* Where the gramine.* and python.* globals point. Fill with jinja_env_default(). */
struct jinja_env {
    const char* pkglibdir; /* gramine.pkglibdir: moat's install/lib dir */
    const char* libos;     /* gramine.libos: the moat runtime binary (measured as the LibOS) */
    const char* glibc_dir; /* gramine.runtimedir() / runtimedir('glibc'): host libdir */
    const char* musl_dir;  /* runtimedir('musl'), may be NULL */
    const char* python;    /* interpreter whose sysconfig backs python.*; NULL ⇒ python3 */
};

/* Fills env with host defaults (pointers to static or process-lifetime storage). */
void jinja_env_default(struct jinja_env* env);

/* Renders a template. `filename` is used in messages ("t.manifest.template:12: 'foo' is
 * undefined"). Returns 0 and a malloc'd NUL-terminated output, or a negative code with err
 * set (the error names the variable/construct and the line). */
int jinja_render(const char* text, size_t len, const char* filename,
                 const struct jinja_define* defs, size_t ndefs, const struct jinja_env* env,
                 char** ret_out, size_t* ret_len, struct moat_error* err) WARN_UNUSED;
