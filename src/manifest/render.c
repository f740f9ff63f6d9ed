/* SPDX-License-Identifier: Apache-2.0 */
/* The render pipeline; each step is its own module, this file only sequences them in
 * gramine-manifest's order (reference/gramine.md §2, steps 1-5). */
#include <string.h>

#include "render.h"
#include "toml.h"
#include "trusted.h"

int manifest_render_text(const char* text, size_t len, const char* name,
                         const struct render_opts* opts, char** ret_out, size_t* ret_len,
                         struct manifest_diags* diags, struct moat_error* err) {
    struct jinja_env default_env;
    const struct jinja_env* env = opts->env;
    if (!env) {
        jinja_env_default(&default_env);
        env = &default_env;
    }

    /* 1. Jinja (StrictUndefined) */
    _cleanup_free_ char* rendered = NULL;
    size_t rendered_len           = 0;
    int ret =
        jinja_render(text, len, name, opts->defs, opts->ndefs, env, &rendered, &rendered_len, err);
    if (ret < 0)
        return ret;

    /* 2. TOML; positions refer to the rendered text, so say so */
    _cleanup_free_ char* where             = xasprintf("%s (rendered)", name);
    _cleanup_toml_ struct toml_value* root = NULL;
    struct toml_error terr;
    ret = toml_parse(rendered, rendered_len, where, &root, &terr, err);
    if (ret < 0)
        return moat_error_prefix(err, "failed to parse manifest template");

    /* 3. defaults, as gramine-manifest injects them */
    ret = manifest_inject_defaults(root, env->libos, err);
    if (ret < 0)
        return ret;

    /* 4. schema check before the (possibly long) hashing step */
    if (opts->check) {
        struct manifest_check_opts copts = {.allow_unknown = false, .finalized = false};
        int nerr                         = manifest_check(root, &copts, diags);
        if (nerr > 0)
            return moat_error_set(err, -EINVAL, "%s: manifest failed validation (%d %s)", name,
                                  nerr, nerr == 1 ? "error" : "errors");
    }

    /* 5. trusted files: expand directories, hash everything */
    struct trusted_opts topts = {.chroot = opts->chroot, .threads = 0, .progress = opts->progress};
    ret                       = manifest_expand_trusted_files(root, &topts, err);
    if (ret < 0)
        return ret;

    *ret_out = toml_write(root, ret_len);
    return 0;
}
