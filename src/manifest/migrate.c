/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `moat manifest migrate`: rewrites a Graphene-era manifest into current Gramine syntax
 * (reference/gramine.md §1.4, the "old syntax → replaced by" table). Every rewrite is reported
 * as a note, everything that cannot be expressed any more as a warning saying why.
 */
#include <inttypes.h>
#include <string.h>

#include "schema.h"

struct migration {
    struct toml_value* root;
    struct manifest_diags* diags;
};

#define note(m, key, where, ...) report((m), DIAG_NOTE, (key), (where), __VA_ARGS__)
#define warn(m, key, where, ...) report((m), DIAG_WARNING, (key), (where), __VA_ARGS__)

PRINTF_FMT(5, 6)
static void report(struct migration* m, enum diag_severity sev, const char* key,
                   const struct toml_value* where, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    manifest_diags_vadd(m->diags, sev, key, where ? where->line : 0, where ? where->col : 0, fmt,
                        ap);
    va_end(ap);
}

static bool is_str(const struct toml_value* v) {
    return v && v->type == TOML_STRING;
}

/* Truthiness of a Graphene-era boolean (true/false or 1/0). */
static bool truthy(const struct toml_value* v) {
    return v && ((v->type == TOML_BOOL && v->u.boolean) ||
                 (v->type == TOML_INTEGER && v->u.integer != 0));
}

static struct toml_value* ensure_table(struct toml_value* root, const char* path) {
    struct toml_value* t = toml_get_path(root, path);
    if (t && t->type == TOML_TABLE)
        return t;
    if (toml_set_path(root, path, toml_new_table()) < 0)
        return NULL;
    return toml_get_path(root, path);
}

static struct toml_value* ensure_array(struct toml_value* root, const char* path) {
    struct toml_value* a = toml_get_path(root, path);
    if (a && a->type == TOML_ARRAY)
        return a;
    if (toml_set_path(root, path, toml_new_array()) < 0)
        return NULL;
    return toml_get_path(root, path);
}

/* Moves the value at `from` to `to` unless `to` exists. */
static void rename_key(struct migration* m, const char* from, const char* to) {
    struct toml_value* v = toml_get_path(m->root, from);
    if (!v)
        return;
    if (toml_get_path(m->root, to)) {
        warn(m, from, v, "'%s' removed: '%s' is already set", from, to);
    } else {
        note(m, from, v, "'%s' renamed to '%s'", from, to);
        if (toml_set_path(m->root, to, toml_clone(v)) < 0)
            warn(m, from, v, "could not set '%s': a parent key is not a table", to);
    }
    toml_remove_path(m->root, from);
}

static void drop(struct migration* m, const char* key, const char* why) {
    struct toml_value* v = toml_get_path(m->root, key);
    if (!v)
        return;
    warn(m, key, v, "'%s' removed: %s", key, why);
    toml_remove_path(m->root, key);
}

/* 1/0 → true/false for every boolean key of today's schema. */
static void migrate_int_booleans(struct migration* m) {
    for (size_t i = 0; i < g_schema_len; i++) {
        const struct schema_key* row = &g_schema[i];
        if (row->status != KEY_CURRENT || row->types != VT_BOOL || strchr(row->pattern, '*'))
            continue;
        struct toml_value* v = toml_get_path(m->root, row->pattern);
        if (!v || v->type != TOML_INTEGER)
            continue;
        bool b = v->u.integer != 0;
        note(m, row->pattern, v, "'%s' = %" PRId64 " rewritten as %s (integer booleans)",
             row->pattern, v->u.integer, b ? "true" : "false");
        v->type      = TOML_BOOL;
        v->u.boolean = b;
    }
}

static void migrate_loader(struct migration* m) {
    struct toml_value* exec = toml_get_path(m->root, "loader.exec");
    if (exec) {
        if (is_str(exec) && !toml_get_path(m->root, "libos.entrypoint")) {
            const char* s = exec->u.str.ptr;
            if (strncmp(s, "file:", 5) == 0)
                s += 5;
            note(m, "loader.exec", exec, "'loader.exec' replaced by libos.entrypoint = \"%s\"", s);
            if (toml_set_path(m->root, "libos.entrypoint", toml_new_string(s)) < 0)
                warn(m, "loader.exec", exec, "could not set libos.entrypoint");
        } else {
            warn(m, "loader.exec", exec, "'loader.exec' removed (libos.entrypoint is set)");
        }
        toml_remove_path(m->root, "loader.exec");
    }

    struct toml_value* ep = toml_get_path(m->root, "libos.entrypoint");
    if (is_str(ep) && strncmp(ep->u.str.ptr, "file:", 5) == 0) {
        _cleanup_free_ char* path = xstrdup(ep->u.str.ptr + 5);
        note(m, "libos.entrypoint", ep,
             "libos.entrypoint \"%s\" is now an in-Gramine path: \"%s\" (resolved from "
             "fs.start_dir, default \"/\")",
             ep->u.str.ptr, path);
        toml_table_set(toml_get_path(m->root, "libos"), "entrypoint", toml_new_string(path));
    }

    struct toml_value* lep = toml_get_path(m->root, "loader.entrypoint");
    if (lep && lep->type != TOML_TABLE) {
        note(m, "loader.entrypoint", lep,
             "'loader.entrypoint' (the Graphene LibOS path) removed: moat injects its LibOS as "
             "loader.entrypoint.uri when rendering");
        toml_remove_path(m->root, "loader.entrypoint");
    }
    struct toml_value* preload = toml_get_path(m->root, "loader.preload");
    if (preload) {
        note(m, "loader.preload", preload,
             "'loader.preload' removed: the LibOS is loaded through loader.entrypoint.uri");
        toml_remove_path(m->root, "loader.preload");
    }
    drop(m, "loader.pal_internal_mem_size",
         "Gramine sizes its internal memory itself; there is no replacement (raise "
         "sgx.enclave_size if the app runs out of memory)");
    drop(m, "loader.debug_type", "use GDB=1 instead");

    struct toml_value* a0 = toml_get_path(m->root, "loader.argv0_override");
    if (a0) {
        bool cmdline = truthy(toml_get_path(m->root, "loader.insecure__use_cmdline_argv"));
        if (!is_str(a0)) {
            warn(m, "loader.argv0_override", a0, "'loader.argv0_override' removed: not a string");
        } else if (cmdline) {
            warn(m, "loader.argv0_override", a0,
                 "'loader.argv0_override' removed: with loader.insecure__use_cmdline_argv Gramine "
                 "sets argv[0] to libos.entrypoint, and an override of argv[0] alone cannot be "
                 "expressed any more");
        } else if (toml_get_path(m->root, "loader.argv") ||
                   toml_get_path(m->root, "loader.argv_src_file")) {
            warn(m, "loader.argv0_override", a0,
                 "'loader.argv0_override' removed: loader.argv or loader.argv_src_file already "
                 "sets argv");
        } else {
            struct toml_value* argv = toml_new_array();
            toml_array_append(argv, toml_new_string(a0->u.str.ptr));
            note(m, "loader.argv0_override", a0,
                 "'loader.argv0_override' replaced by loader.argv = [\"%s\"]", a0->u.str.ptr);
            if (toml_set_path(m->root, "loader.argv", argv) < 0)
                warn(m, "loader.argv0_override", a0, "could not set loader.argv");
        }
        toml_remove_path(m->root, "loader.argv0_override");
    }
}

static struct toml_value* new_mount(const char* type, const char* path, const char* uri) {
    struct toml_value* t = toml_new_table();
    toml_table_set(t, "type", toml_new_string(type));
    toml_table_set(t, "path", toml_new_string(path));
    if (uri)
        toml_table_set(t, "uri", toml_new_string(uri));
    return t;
}

static void migrate_mounts(struct migration* m) {
    struct toml_value* fs = toml_get_path(m->root, "fs");
    if (!fs || fs->type != TOML_TABLE)
        return;

    /* fs.root.<id>.{type,path,uri} */
    struct toml_value* root = toml_table_get(fs, "root");
    if (root && root->type == TOML_TABLE && root->u.tab.len &&
        root->u.tab.items[0].value->type == TOML_TABLE) {
        struct toml_value* first = root->u.tab.items[0].value;
        struct toml_value* nr    = toml_new_table();
        struct toml_value* type  = toml_table_get(first, "type");
        struct toml_value* uri   = toml_table_get(first, "uri");
        toml_table_set(nr, "type", toml_new_string(is_str(type) ? type->u.str.ptr : "chroot"));
        if (is_str(uri))
            toml_table_set(nr, "uri", toml_new_string(uri->u.str.ptr));
        note(m, "fs.root", root, "'fs.root.%s' rewritten as fs.root = { type, uri }",
             root->u.tab.items[0].key);
        if (root->u.tab.len > 1)
            warn(m, "fs.root", root,
                 "only the first fs.root entry was kept: Gramine has exactly one root");
        toml_table_set(fs, "root", nr);
    }

    struct toml_value* old = toml_table_get(fs, "mount");
    if (!old || old->type != TOML_TABLE)
        return;
    struct toml_value* mounts = ensure_array(m->root, "fs.mounts");
    if (!mounts) {
        warn(m, "fs.mounts", old, "'fs.mounts' is not an array: fs.mount entries not migrated");
        return;
    }
    for (size_t i = 0; i < old->u.tab.len; i++) {
        const struct toml_kv* kv = &old->u.tab.items[i];
        _cleanup_free_ char* key = xasprintf("fs.mount.%s", kv->key);
        if (kv->value->type != TOML_TABLE) {
            warn(m, key, kv->value, "'%s' dropped: not a table", key);
            continue;
        }
        struct toml_value* type = toml_table_get(kv->value, "type");
        struct toml_value* path = toml_table_get(kv->value, "path");
        struct toml_value* uri  = toml_table_get(kv->value, "uri");
        const char* type_s      = is_str(type) ? type->u.str.ptr : "chroot";
        if (!is_str(path)) {
            warn(m, key, kv->value, "'%s' dropped: it has no path", key);
            continue;
        }
        _cleanup_free_ char* abs = path->u.str.ptr[0] == '/' ? xstrdup(path->u.str.ptr)
                                                             : xasprintf("/%s", path->u.str.ptr);
        if (path->u.str.ptr[0] != '/')
            note(m, key, path, "relative mount path \"%s\" made absolute: \"%s\"", path->u.str.ptr,
                 abs);
        if (strcmp(abs, "/") == 0) {
            if (toml_table_get(fs, "root")) {
                warn(m, key, kv->value, "'%s' at \"/\" dropped: fs.root is already set", key);
            } else {
                struct toml_value* nr = toml_new_table();
                toml_table_set(nr, "type", toml_new_string(type_s));
                if (is_str(uri))
                    toml_table_set(nr, "uri", toml_new_string(uri->u.str.ptr));
                toml_table_set(fs, "root", nr);
                note(m, key, kv->value, "'%s' mounts \"/\": rewritten as fs.root", key);
            }
            continue;
        }
        toml_array_append(
            mounts, new_mount(type_s, abs,
                              is_str(uri) && strcmp(type_s, "tmpfs") != 0 ? uri->u.str.ptr : NULL));
        note(m, key, kv->value, "'%s' rewritten as fs.mounts entry { path = \"%s\" }", key, abs);
    }
    toml_table_remove(fs, "mount");
}

/* sgx.<name>.<id> = "uri" tables → arrays of strings (trusted: with checksums if given). */
static void migrate_file_table(struct migration* m, const char* name) {
    _cleanup_free_ char* key = xasprintf("sgx.%s", name);
    struct toml_value* t     = toml_get_path(m->root, key);
    if (!t || t->type != TOML_TABLE)
        return;
    struct toml_value* checksums =
        strcmp(name, "trusted_files") == 0 ? toml_get_path(m->root, "sgx.trusted_checksum") : NULL;
    struct toml_value* arr = toml_new_array();
    for (size_t i = 0; i < t->u.tab.len; i++) {
        const struct toml_kv* kv = &t->u.tab.items[i];
        if (!is_str(kv->value)) {
            warn(m, key, kv->value, "'%s.%s' dropped: not a string URI", key, kv->key);
            continue;
        }
        struct toml_value* sum =
            checksums && checksums->type == TOML_TABLE ? toml_table_get(checksums, kv->key) : NULL;
        if (is_str(sum)) {
            struct toml_value* e = toml_new_table();
            toml_table_set(e, "uri", toml_new_string(kv->value->u.str.ptr));
            toml_table_set(e, "sha256", toml_new_string(sum->u.str.ptr));
            toml_array_append(arr, e);
        } else {
            toml_array_append(arr, toml_new_string(kv->value->u.str.ptr));
        }
    }
    note(m, key, t, "'%s.<id>' table rewritten as an array of %zu entries", key, arr->u.arr.len);
    toml_table_set(toml_get_path(m->root, "sgx"), name, arr);
    if (checksums) {
        note(m, "sgx.trusted_checksum", checksums,
             "'sgx.trusted_checksum' merged into sgx.trusted_files entries as sha256");
        toml_remove_path(m->root, "sgx.trusted_checksum");
    }
}

/* The in-app path of host path `host`: through the chroot mount that covers it, else the root
 * (default "file:." = the host's current directory at "/"). */
static char* app_path_for(struct migration* m, const char* host, bool* ret_guess) {
    _cleanup_free_ char* norm       = path_normalize(host);
    *ret_guess                      = false;
    const struct toml_value* mounts = toml_get_path(m->root, "fs.mounts");
    size_t best_len                 = 0;
    char* best                      = NULL;
    for (size_t i = 0; mounts && mounts->type == TOML_ARRAY && i < mounts->u.arr.len; i++) {
        const struct toml_value* mt   = mounts->u.arr.items[i];
        const struct toml_value* uri  = toml_table_get(mt, "uri");
        const struct toml_value* path = toml_table_get(mt, "path");
        if (!is_str(uri) || !is_str(path) || strncmp(uri->u.str.ptr, "file:", 5) != 0)
            continue;
        _cleanup_free_ char* base = path_normalize(uri->u.str.ptr + 5);
        size_t n                  = strlen(base);
        bool covers = strcmp(norm, base) == 0 || (strncmp(norm, base, n) == 0 && norm[n] == '/') ||
                      (strcmp(base, ".") == 0 && norm[0] != '/');
        if (covers && n >= best_len) {
            free(best);
            const char* rest = strcmp(base, ".") == 0 ? norm : norm + n;
            best             = path_join(path->u.str.ptr, rest[0] == '/' ? rest + 1 : rest);
            best_len         = n;
        }
    }
    if (best)
        return best;
    if (norm[0] != '/')
        return xasprintf("/%s", strcmp(norm, ".") == 0 ? "" : norm);
    *ret_guess = true;
    return xstrdup(norm);
}

static void migrate_protected(struct migration* m) {
    static const struct {
        const char* key;
        const char* key_name;
    } kinds[] = {
        {"sgx.protected_files", "default"},
        {"sgx.protected_mrenclave_files", "_sgx_mrenclave"},
        {"sgx.protected_mrsigner_files", "_sgx_mrsigner"},
    };
    for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
        struct toml_value* pf = toml_get_path(m->root, kinds[k].key);
        if (!pf)
            continue;
        struct toml_value* mounts = ensure_array(m->root, "fs.mounts");
        size_t n                  = pf->type == TOML_TABLE   ? pf->u.tab.len
                                    : pf->type == TOML_ARRAY ? pf->u.arr.len
                                                             : 0;
        for (size_t i = 0; i < n && mounts; i++) {
            const struct toml_value* v =
                pf->type == TOML_TABLE ? pf->u.tab.items[i].value : pf->u.arr.items[i];
            if (!is_str(v) || strncmp(v->u.str.ptr, "file:", 5) != 0) {
                warn(m, kinds[k].key, v, "a '%s' entry is not a 'file:' URI: dropped",
                     kinds[k].key);
                continue;
            }
            bool guess;
            _cleanup_free_ char* path = app_path_for(m, v->u.str.ptr + 5, &guess);
            struct toml_value* mt     = new_mount("encrypted", path, v->u.str.ptr);
            toml_table_set(mt, "key_name", toml_new_string(kinds[k].key_name));
            toml_array_append(mounts, mt);
            note(m, kinds[k].key, v,
                 "protected file \"%s\" rewritten as an encrypted mount at \"%s\" (key_name = "
                 "\"%s\")",
                 v->u.str.ptr, path, kinds[k].key_name);
            if (guess)
                warn(m, kinds[k].key, v,
                     "no mount covers host path \"%s\": the encrypted mount assumes the app sees "
                     "it at the same path; check fs.mounts",
                     v->u.str.ptr + 5);
        }
        toml_remove_path(m->root, kinds[k].key);
    }

    static const char* const key_keys[] = {"sgx.protected_files_key",
                                           "sgx.insecure__protected_files_key"};
    for (size_t i = 0; i < ARRAY_SIZE(key_keys); i++) {
        struct toml_value* key = toml_get_path(m->root, key_keys[i]);
        if (!key)
            continue;
        if (toml_get_path(m->root, "fs.insecure__keys.default")) {
            warn(m, key_keys[i], key, "'%s' removed: fs.insecure__keys.default is already set",
                 key_keys[i]);
        } else if (is_str(key) && ensure_table(m->root, "fs.insecure__keys")) {
            note(m, key_keys[i], key, "'%s' renamed to 'fs.insecure__keys.default'", key_keys[i]);
            toml_table_set(toml_get_path(m->root, "fs.insecure__keys"), "default",
                           toml_new_string(key->u.str.ptr));
        }
        toml_remove_path(m->root, key_keys[i]);
    }
}

static void migrate_sgx(struct migration* m) {
    rename_key(m, "sgx.thread_num", "sgx.max_threads");
    rename_key(m, "sgx.rpc_thread_num", "sgx.insecure__rpc_thread_num");

    struct toml_value* ra = toml_get_path(m->root, "sgx.remote_attestation");
    if (ra && ra->type != TOML_STRING) {
        bool on                       = truthy(ra);
        const struct toml_value* spid = toml_get_path(m->root, "sgx.ra_client_spid");
        bool epid                     = on && is_str(spid) && spid->u.str.len > 0;
        note(m, "sgx.remote_attestation", ra, "'sgx.remote_attestation' rewritten as \"%s\"",
             on ? "dcap" : "none");
        if (epid)
            warn(m, "sgx.ra_client_spid", spid,
                 "EPID attestation (non-empty sgx.ra_client_spid) was removed in Gramine v1.9: "
                 "the manifest now asks for DCAP quotes; verifiers must accept DCAP");
        toml_table_set(toml_get_path(m->root, "sgx"), "remote_attestation",
                       toml_new_string(on ? "dcap" : "none"));
    }
    struct toml_value* spid = toml_get_path(m->root, "sgx.ra_client_spid");
    if (spid) {
        note(m, "sgx.ra_client_spid", spid, "'sgx.ra_client_spid' removed: DCAP needs no SPID");
        toml_remove_path(m->root, "sgx.ra_client_spid");
    }
    struct toml_value* link = toml_get_path(m->root, "sgx.ra_client_linkable");
    if (link) {
        note(m, "sgx.ra_client_linkable", link, "'sgx.ra_client_linkable' removed (EPID only)");
        toml_remove_path(m->root, "sgx.ra_client_linkable");
    }

    static const char* const features[] = {"avx", "avx512", "mpx", "pkru", "amx"};
    for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
        _cleanup_free_ char* key = xasprintf("sgx.require_%s", features[i]);
        struct toml_value* v     = toml_get_path(m->root, key);
        if (!v)
            continue;
        if (truthy(v)) {
            _cleanup_free_ char* to = xasprintf("sgx.cpu_features.%s", features[i]);
            if (ensure_table(m->root, "sgx.cpu_features"))
                toml_table_set(toml_get_path(m->root, "sgx.cpu_features"), features[i],
                               toml_new_string("required"));
            note(m, key, v, "'%s' rewritten as %s = \"required\"", key, to);
        } else {
            note(m, key, v, "'%s' = false removed (the default)", key);
        }
        toml_remove_path(m->root, key);
    }
    struct toml_value* exinfo = toml_get_path(m->root, "sgx.support_exinfo");
    if (exinfo) {
        bool on = truthy(exinfo);
        note(m, "sgx.support_exinfo", exinfo, "'sgx.support_exinfo' renamed to 'sgx.use_exinfo'");
        toml_table_set(toml_get_path(m->root, "sgx"), "use_exinfo", toml_new_bool(on));
        toml_remove_path(m->root, "sgx.support_exinfo");
    }
    static const char* const gone[] = {"sgx.nonpie_binary", "sgx.static_address",
                                       "fs.experimental__enable_sysfs_topology"};
    for (size_t i = 0; i < ARRAY_SIZE(gone); i++) {
        struct toml_value* v = toml_get_path(m->root, gone[i]);
        if (v) {
            note(m, gone[i], v, "'%s' removed: Gramine no longer needs it", gone[i]);
            toml_remove_path(m->root, gone[i]);
        }
    }
    struct toml_value* sigfile = toml_get_path(m->root, "sgx.sigfile");
    if (sigfile) {
        note(m, "sgx.sigfile", sigfile,
             "'sgx.sigfile' removed: the .sig file is found next to the manifest");
        toml_remove_path(m->root, "sgx.sigfile");
    }

    /* Graphene's sgx.debug defaulted to true, Gramine's to false: keep the behaviour */
    struct toml_value* sgx = toml_get_path(m->root, "sgx");
    if (sgx && sgx->type == TOML_TABLE && !toml_table_get(sgx, "debug")) {
        toml_table_set(sgx, "debug", toml_new_bool(true));
        note(m, "sgx.debug", sgx,
             "sgx.debug = true added: Graphene's default was a debug enclave, Gramine's is not "
             "(set it to false for production)");
    }
}

void manifest_migrate_protected(struct toml_value* root, struct manifest_diags* diags) {
    struct migration m = {.root = root, .diags = diags};
    if (root && root->type == TOML_TABLE)
        migrate_protected(&m);
}

int manifest_migrate(struct toml_value* root, struct manifest_diags* diags,
                     struct moat_error* err) {
    if (!root || root->type != TOML_TABLE)
        return moat_error_set(err, -EINVAL, "manifest is not a TOML table");
    struct migration m = {.root = root, .diags = diags};
    migrate_loader(&m);
    migrate_mounts(&m);
    migrate_file_table(&m, "trusted_files");
    migrate_file_table(&m, "allowed_files");
    migrate_protected(&m);
    migrate_sgx(&m);
    migrate_int_booleans(&m);
    return 0;
}
