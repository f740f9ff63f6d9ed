/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `moat manifest render`: gramine-manifest's pipeline (reference/gramine.md §2): render the
 * Jinja template, parse the TOML, inject defaults, validate, expand and hash trusted files,
 * write the finalized manifest.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "check.h"
#include "common.h"
#include "jinja.h"

struct render_opts {
    const struct jinja_define* defs; /* -D definitions */
    size_t ndefs;
    bool check;                  /* --check (default) / --no-check */
    const char* chroot;          /* --chroot DIR, or NULL */
    bool progress;               /* progress bar while hashing (TTY only) */
    const struct jinja_env* env; /* NULL ⇒ jinja_env_default() */
};

/* Renders template text (read from `name`, used in messages) into a finalized manifest.
 * Validation findings (warnings, and errors when the check fails) are appended to diags.
 * Returns 0 and a malloc'd document, -EINVAL with diags filled when the manifest is invalid,
 * or another negative code with err set. */
int manifest_render_text(const char* text, size_t len, const char* name,
                         const struct render_opts* opts, char** ret_out, size_t* ret_len,
                         struct manifest_diags* diags, struct moat_error* err) WARN_UNUSED;
