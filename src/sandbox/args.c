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

static bool get_bool(const struct toml_value* m, const char* key) {
    bool b = false;
    return toml_get_bool(m, key, false, &b) == 0 && b;
}

/* Reads a file of NUL-terminated strings (gramine-argv-serializer output). */
static int load_serialized(const char* key, const struct toml_value* uri, struct strv* ret,
                           struct moat_error* err) {
    if (!uri || uri->type != TOML_STRING || strncmp(uri->u.str.ptr, "file:", 5) != 0)
        return moat_error_set(err, -EINVAL, "'%s' must be a 'file:' URI", key);
    _cleanup_free_ char* buf = NULL;
    size_t len;
    struct moat_error rerr = {0};
    if (read_file(uri->u.str.ptr + 5, &buf, &len, &rerr) < 0)
        return moat_error_set(
            err, -EINVAL, "Cannot load %s from '%s': %s",
            strcmp(key, "loader.argv_src_file") == 0 ? "arguments" : "environment", key, rerr.msg);
    if (len == 0 || buf[len - 1] != '\0')
        return moat_error_set(
            err, -EINVAL,
            "Cannot load %s from '%s': '%s' is not a list of NUL-terminated "
            "strings (create it with 'moat manifest argv-serialize')",
            strcmp(key, "loader.argv_src_file") == 0 ? "arguments" : "environment", key,
            uri->u.str.ptr + 5);
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

int sandbox_build_argv(const struct toml_value* m, const char* const* host_argv, size_t host_argc,
                       struct strv* ret, struct strbuf* warn, struct moat_error* err) {
    const struct toml_value* argv = toml_get_path(m, "loader.argv");
    const struct toml_value* src  = toml_get_path(m, "loader.argv_src_file");
    bool cmdline                  = get_bool(m, "loader.insecure__use_cmdline_argv");
    if ((argv != NULL) + (src != NULL) + cmdline > 1)
        return moat_error_set(err, -EINVAL,
                              "Options loader.argv, loader.argv_src_file, and "
                              "loader.insecure__use_cmdline_argv are mutually exclusive");
    const char* entrypoint = NULL;
    if (toml_get_string(m, "libos.entrypoint", NULL, &entrypoint) < 0 || !entrypoint)
        return moat_error_set(err, -EINVAL, "'libos.entrypoint' must be specified in the manifest");

    struct strv v = {0};
    if (argv) {
        if (argv->type != TOML_ARRAY)
            return moat_error_set(err, -EINVAL, "'loader.argv' must be an array of strings");
        if (argv->u.arr.len == 0)
            return moat_error_set(err, -EINVAL,
                                  "'loader.argv' has no arguments, this is unsupported");
        for (size_t i = 0; i < argv->u.arr.len; i++) {
            const struct toml_value* a = argv->u.arr.items[i];
            if (a->type != TOML_STRING) {
                strv_free(&v);
                return moat_error_set(err, -EINVAL, "'loader.argv[%zu]' must be a string", i);
            }
            strv_push(&v, a->u.str.ptr);
        }
        discard_notice(warn, host_argv, host_argc, "loader.argv");
    } else if (src) {
        int r = load_serialized("loader.argv_src_file", src, &v, err);
        if (r < 0) {
            strv_free(&v);
            return r;
        }
        discard_notice(warn, host_argv, host_argc, "loader.argv_src_file");
    } else if (cmdline) {
        /* host argv, with argv[0] replaced by the entrypoint */
        strv_push(&v, entrypoint);
        for (size_t i = 1; i < host_argc; i++)
            strv_push(&v, host_argv[i]);
    } else {
        if (host_argc > 1)
            return moat_error_set(err, -EINVAL,
                                  "argv handling wasn't configured in the manifest, but cmdline "
                                  "arguments were specified.");
        strv_push(&v, entrypoint);
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

int sandbox_build_env(const struct toml_value* m, char* const* host_env, struct strv* ret,
                      struct moat_error* err) {
    bool use_host                     = get_bool(m, "loader.insecure__use_host_env");
    const struct toml_value* src      = toml_get_path(m, "loader.env_src_file");
    const struct toml_value* manifest = toml_get_path(m, "loader.env");
    if (use_host && src)
        return moat_error_set(err, -EINVAL,
                              "cannot use loader.insecure__use_host_env and loader.env_src_file at "
                              "the same time.");
    if (manifest && manifest->type != TOML_TABLE)
        return moat_error_set(err, -EINVAL, "'loader.env' must be a table");

    /* the base environment: the host's, or the serialized file's */
    struct strv file  = {0};
    char* const* base = host_env;
    if (src) {
        int r = load_serialized("loader.env_src_file", src, &file, err);
        if (r < 0)
            return r;
        base = file.items;
    }

    /* validate loader.env first: every error is fatal before anything is built */
    size_t n = manifest ? manifest->u.tab.len : 0;
    for (size_t i = 0; i < n; i++) {
        const struct toml_kv* kv   = &manifest->u.tab.items[i];
        const struct toml_value* v = kv->value;
        if (v->type == TOML_STRING)
            continue;
        const struct toml_value* value = v->type == TOML_TABLE ? toml_table_get(v, "value") : NULL;
        const struct toml_value* pass =
            v->type == TOML_TABLE ? toml_table_get(v, "passthrough") : NULL;
        int r = 0;
        if (pass && pass->type == TOML_BOOL && !pass->u.boolean && !value)
            r = moat_error_set(err, -EACCES,
                               "Detected environment variable '%s' with 'passthrough = false'. For "
                               "security reasons, Gramine doesn't allow this (please see "
                               "documentation on 'loader.env' for details).",
                               kv->key);
        else if (v->type != TOML_TABLE || (value && pass) || (!value && !pass) ||
                 (value && value->type != TOML_STRING) || (pass && pass->type != TOML_BOOL) ||
                 v->u.tab.len != 1)
            r = moat_error_set(err, -EINVAL, "Invalid environment variable in manifest: '%s'",
                               kv->key);
        if (r < 0) {
            strv_free(&file);
            return r;
        }
    }

    struct strv out = {0};
    bool copy_all   = use_host || src;
    for (size_t i = 0; base && base[i]; i++) {
        const char* eq = strchr(base[i], '=');
        if (!eq)
            continue;
        _cleanup_free_ char* name      = xstrndup(base[i], (size_t)(eq - base[i]));
        const struct toml_value* entry = manifest ? toml_table_get(manifest, name) : NULL;
        bool passthrough =
            entry && entry->type == TOML_TABLE && toml_table_get(entry, "passthrough");
        if ((copy_all && !entry) || passthrough)
            strv_push(&out, base[i]);
    }
    for (size_t i = 0; i < n; i++) {
        const struct toml_kv* kv = &manifest->u.tab.items[i];
        const struct toml_value* value =
            kv->value->type == TOML_STRING ? kv->value : toml_table_get(kv->value, "value");
        if (!value)
            continue; /* passthrough: taken from the base above */
        _cleanup_free_ char* entry = xasprintf("%s=%s", kv->key, value->u.str.ptr);
        size_t idx;
        if (env_lookup(out.items, kv->key, &idx)) {
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
