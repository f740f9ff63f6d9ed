/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The app's argv and environment, with Gramine's algorithm and messages (reference/gramine.md
 * §1.3, pal_main.c): loader.argv / loader.argv_src_file / loader.insecure__use_cmdline_argv /
 * none of them; loader.env.<NAME> (string, {value}, {passthrough = true}), loader.env_src_file,
 * loader.insecure__use_host_env.
 */
#include <string.h>

#include "sandbox.h"

void strv_pushn(struct strv* v, const char* s, size_t n) {
    v->items           = xgrow(v->items, &v->cap, v->len + 2, sizeof(*v->items));
    v->items[v->len++] = xstrndup(s, n);
    v->items[v->len]   = NULL;
}

void strv_push(struct strv* v, const char* s) {
    strv_pushn(v, s, strlen(s));
}

void strv_free(struct strv* v) {
    for (size_t i = 0; i < v->len; i++)
        free(v->items[i]);
    free(v->items);
    memset(v, 0, sizeof(*v));
}

/* Reads a file of NUL-terminated strings (gramine-argv-serializer output). */
static int load_serialized(const char* key, const struct manifest_uri* uri, struct strv* ret,
                           struct moat_error* err) {
    const char* what = strcmp(key, "loader.argv_src_file") == 0 ? "arguments" : "environment";
    _cleanup_free_ char* buf = NULL;
    size_t len;
    struct moat_error rerr = {0};
    if (read_file(uri->path, &buf, &len, &rerr) < 0)
        return moat_error_set(err, -EINVAL, "Cannot load %s from '%s': %s", what, key, rerr.msg);
    if (len == 0 || buf[len - 1] != '\0')
        return moat_error_set(err, -EINVAL,
                              "Cannot load %s from '%s': '%s' is not a list of NUL-terminated "
                              "strings (create it with 'moat manifest argv-serialize')",
                              what, key, uri->path);
    for (size_t i = 0; i < len;) {
        size_t n = strlen(buf + i);
        strv_pushn(ret, buf + i, n);
        i += n + 1;
    }
    return 0;
}

static void discard_notice(struct strbuf* warn, const char* const* host_argv, size_t host_argc,
                           const char* because) {
    if (!warn || host_argc <= 1)
        return;
    strbuf_puts(warn, "Discarding cmdline arguments (");
    for (size_t i = 1; i < host_argc && i < 4; i++)
        strbuf_printf(warn, "%s%s", i > 1 ? " " : "", host_argv[i]);
    if (host_argc > 4)
        strbuf_puts(warn, " [...]");
    strbuf_printf(warn, ") because %s was specified in the manifest.\n", because);
}

int sandbox_build_argv(const struct manifest* m, const char* const* host_argv, size_t host_argc,
                       struct strv* ret, struct strbuf* warn, struct moat_error* err) {
    /* loader.argv, loader.argv_src_file and loader.insecure__use_cmdline_argv are mutually
     * exclusive: the model's check said so already */
    struct strv v = {0};
    if (m->loader.has_argv) {
        for (size_t i = 0; i < m->loader.argc; i++)
            strv_push(&v, m->loader.argv[i]);
        discard_notice(warn, host_argv, host_argc, "loader.argv");
    } else if (m->loader.has_argv_src_file) {
        int r = load_serialized("loader.argv_src_file", &m->loader.argv_src_file, &v, err);
        if (r < 0) {
            strv_free(&v);
            return r;
        }
        discard_notice(warn, host_argv, host_argc, "loader.argv_src_file");
    } else if (m->loader.use_cmdline_argv) {
        /* host argv, with argv[0] replaced by the entrypoint */
        strv_push(&v, m->libos.entrypoint);
        for (size_t i = 1; i < host_argc; i++)
            strv_push(&v, host_argv[i]);
    } else {
        if (host_argc > 1)
            return moat_error_set(err, -EINVAL,
                                  "argv handling wasn't configured in the manifest, but cmdline "
                                  "arguments were specified.");
        strv_push(&v, m->libos.entrypoint);
    }
    *ret = v;
    return 0;
}

/* "NAME=value" lookups in a NULL-terminated environment block. */
static const char* env_lookup(char* const* env, const char* name, size_t* ret_index) {
    size_t n = strlen(name);
    for (size_t i = 0; env && env[i]; i++) {
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=') {
            if (ret_index)
                *ret_index = i;
            return env[i] + n + 1;
        }
    }
    return NULL;
}

static const struct manifest_env* env_entry(const struct manifest* m, const char* name) {
    for (size_t i = 0; i < m->loader.nenv; i++)
        if (strcmp(m->loader.env[i].name, name) == 0)
            return &m->loader.env[i];
    return NULL;
}

int sandbox_build_env(const struct manifest* m, char* const* host_env, struct strv* ret,
                      struct moat_error* err) {
    /* the base environment: the host's, or the serialized file's (never both: checked) */
    struct strv file  = {0};
    char* const* base = host_env;
    if (m->loader.has_env_src_file) {
        int r = load_serialized("loader.env_src_file", &m->loader.env_src_file, &file, err);
        if (r < 0)
            return r;
        base = file.items;
    }
    struct strv out = {0};
    bool copy_all   = m->loader.use_host_env || m->loader.has_env_src_file;
    for (size_t i = 0; base && base[i]; i++) {
        const char* eq = strchr(base[i], '=');
        if (!eq)
            continue;
        _cleanup_free_ char* name        = xstrndup(base[i], (size_t)(eq - base[i]));
        const struct manifest_env* entry = env_entry(m, name);
        if ((copy_all && !entry) || (entry && entry->passthrough))
            strv_push(&out, base[i]);
    }
    for (size_t i = 0; i < m->loader.nenv; i++) {
        const struct manifest_env* e = &m->loader.env[i];
        if (!e->value)
            continue; /* passthrough: taken from the base above */
        _cleanup_free_ char* entry = xasprintf("%s=%s", e->name, e->value);
        size_t idx;
        if (env_lookup(out.items, e->name, &idx)) {
            free(out.items[idx]);
            out.items[idx] = TAKE_PTR(entry);
        } else {
            strv_push(&out, entry);
        }
    }
    if (!out.items) { /* an empty environment is still a NULL-terminated array */
        out.items = xcalloc(1, sizeof(*out.items));
        out.cap   = 1;
    }
    strv_free(&file);
    *ret = out;
    return 0;
}
