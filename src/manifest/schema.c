/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manifest key table and per-key validators: every Gramine v1.9 key
 * (reference/gramine.md §1.3) and every Graphene-era key (§1.4). Messages reuse Gramine's
 * text where Gramine has one; every message names the key.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "schema.h"

/* ---------------------------------------------------------------------------------------- */
/* Value helpers                                                                              */

unsigned vt_of(const struct toml_value* v) {
    switch (v->type) {
        case TOML_BOOL:
            return VT_BOOL;
        case TOML_INTEGER:
            return VT_INT;
        case TOML_STRING:
            return VT_STRING;
        case TOML_TABLE:
            return VT_TABLE;
        case TOML_ARRAY:
            return VT_ARRAY;
        case TOML_FLOAT:
            return VT_FLOAT;
        case TOML_DATETIME:
            return 0;
    }
    return 0;
}

const char* vt_name(unsigned types) {
    switch (types) {
        case VT_BOOL:
            return "a boolean (true or false)";
        case VT_INT:
            return "an integer";
        case VT_STRING:
            return "a string";
        case VT_TABLE:
            return "a table";
        case VT_ARRAY:
            return "an array";
        case VT_FLOAT:
            return "a float";
        case VT_STRING | VT_TABLE:
            return "a string or a table";
        case VT_ARRAY | VT_TABLE:
            return "an array";
        case 0:
            return "a date-time";
        default:
            return "a value of another type";
    }
}

static bool is_string(const struct toml_value* v) {
    return v && v->type == TOML_STRING && strlen(v->u.str.ptr) == v->u.str.len;
}

static bool one_of(const char* s, const char* const* allowed) {
    for (; *allowed; allowed++)
        if (strcmp(s, *allowed) == 0)
            return true;
    return false;
}

/* "'a', 'b' and 'c'" */
static char* list_allowed(const char* const* allowed) {
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; allowed[i]; i++) {
        if (i)
            strbuf_puts(&sb, allowed[i + 1] ? ", " : " and ");
        strbuf_printf(&sb, "'%s'", allowed[i]);
    }
    return strbuf_take(&sb, NULL);
}

static void check_enum(struct check_ctx* c, const struct checked* k, const char* const* allowed,
                       const char* gramine_msg) {
    if (one_of(k->v->u.str.ptr, allowed))
        return;
    _cleanup_free_ char* list = list_allowed(allowed);
    if (gramine_msg)
        check_report(c, DIAG_ERROR, k, "%s: '%s' = \"%s\" (allowed: %s)", gramine_msg, k->key,
                     k->v->u.str.ptr, list);
    else
        check_report(c, DIAG_ERROR, k, "'%s' = \"%s\" is not one of %s", k->key, k->v->u.str.ptr,
                     list);
}

static bool is_hex(const char* s, size_t n) {
    return strspn(s, "0123456789abcdefABCDEF") >= n; /* glibc's strspn uses a table */
}

/* ---------------------------------------------------------------------------------------- */
/* Validators                                                                                 */

static void v_log_level(struct check_ctx* c, const struct checked* k) {
    static const char* const levels[] = {"none", "error", "warning", "debug", "trace", "all", NULL};
    check_enum(c, k, levels, "Unknown 'loader.log_level'");
}

static void v_file_uri(struct check_ctx* c, const struct checked* k) {
    if (strncmp(k->v->u.str.ptr, "file:", 5) != 0)
        check_report(c, DIAG_ERROR, k, "'%s' is missing the 'file:' prefix", k->key);
    else if (k->v->u.str.ptr[5] == '\0')
        check_report(c, DIAG_ERROR, k, "'%s' has an empty path after 'file:'", k->key);
}

static void v_libos_entrypoint(struct check_ctx* c, const struct checked* k) {
    const char* s = k->v->u.str.ptr;
    if (strncmp(s, "file:", 5) == 0)
        check_report(c, DIAG_ERROR, k,
                     "'libos.entrypoint' should be an in-Gramine path, not URI. (Graphene "
                     "syntax: use \"%s\"; 'moat manifest migrate' rewrites it)",
                     s + 5);
    else if (!*s)
        check_report(c, DIAG_ERROR, k, "'libos.entrypoint' must not be empty");
}

static void v_sha256(struct check_ctx* c, const struct checked* k) {
    const char* s = k->v->u.str.ptr;
    if (strlen(s) != 64 || !is_hex(s, 64))
        check_report(c, DIAG_ERROR, k, "'%s' = \"%s\" is not a SHA-256 hash (64 hex digits)",
                     k->key, s);
}

static void v_argv(struct check_ctx* c, const struct checked* k) {
    if (k->v->u.arr.len == 0) {
        check_report(c, DIAG_ERROR, k, "'loader.argv' has no arguments, this is unsupported");
        return;
    }
    for (size_t i = 0; i < k->v->u.arr.len; i++) {
        const struct toml_value* a = k->v->u.arr.items[i];
        if (!is_string(a)) {
            struct checked item = {k->key, a, a->line, a->col};
            check_report(c, DIAG_ERROR, &item, "'%s[%zu]' must be a string, not %s", k->key, i,
                         vt_name(vt_of(a)));
        }
    }
}

static void v_env(struct check_ctx* c, const struct checked* k) {
    const char* name = k->key + strlen("loader.env."); /* as written: quoted if need be */
    if (!strcmp(name, "\"\"") || strchr(name, '=')) {  /* another variable, or none */
        check_report(c, DIAG_ERROR, k,
                     "Invalid environment variable in manifest: '%s' (a name is not empty and "
                     "has no '=')",
                     name);
        return;
    }
    if (k->v->type == TOML_STRING)
        return;
    const struct toml_value* value       = toml_table_get(k->v, "value");
    const struct toml_value* passthrough = toml_table_get(k->v, "passthrough");
    bool bad_shape = k->v->u.tab.len != (value ? 1u : 0u) + (passthrough ? 1u : 0u) ||
                     (!value && !passthrough) || (value && !is_string(value)) ||
                     (passthrough && passthrough->type != TOML_BOOL);
    if (value && passthrough) {
        check_report(c, DIAG_ERROR, k,
                     "environment variable '%s' has both 'value' and 'passthrough' ('%s')", name,
                     k->key);
    } else if (passthrough && passthrough->type == TOML_BOOL && !passthrough->u.boolean) {
        check_report(c, DIAG_ERROR, k,
                     "Detected environment variable '%s' with 'passthrough = false'. For "
                     "security reasons, Gramine doesn't allow this (please see documentation on "
                     "'loader.env' for details). ('%s')",
                     name, k->key);
    } else if (bad_shape) {
        check_report(c, DIAG_ERROR, k,
                     "Invalid environment variable in manifest: '%s' (expected a string, "
                     "{ value = \"...\" } or { passthrough = true })",
                     name);
    }
}

static void v_nonneg(struct check_ctx* c, const struct checked* k) {
    if (k->v->u.integer < 0)
        check_report(c, DIAG_ERROR, k, "'%s' = %" PRId64 " must not be negative", k->key,
                     k->v->u.integer);
}

static void range(struct check_ctx* c, const struct checked* k, int64_t lo, int64_t hi) {
    if (k->v->u.integer < lo || k->v->u.integer > hi)
        check_report(c, DIAG_ERROR, k,
                     "'%s' = %" PRId64 " is out of range (%" PRId64 "..%" PRId64 ")", k->key,
                     k->v->u.integer, lo, hi);
}

static void v_id(struct check_ctx* c, const struct checked* k) {
    range(c, k, 0, 4294967294); /* a Linux uid_t; (uid_t)-1 means "unchanged" */
}

static void v_fds_limit(struct check_ctx* c, const struct checked* k) {
    range(c, k, 0, 65536);
}

static void v_max_threads(struct check_ctx* c, const struct checked* k) {
    range(c, k, 1, 4096); /* 0 is rejected by Gramine; MAX_DBG_THREADS = 4096 */
}

static void v_u16(struct check_ctx* c, const struct checked* k) {
    range(c, k, 0, 65535); /* SIGSTRUCT fields are 16-bit */
}

static void v_rpc_threads(struct check_ctx* c, const struct checked* k) {
    range(c, k, 0, 256); /* MAX_RPC_THREADS */
}

static bool check_size(struct check_ctx* c, const struct checked* k, uint64_t* ret) {
    if (parse_size_str(k->v->u.str.ptr, ret) == 0)
        return true;
    check_report(c, DIAG_ERROR, k,
                 "'%s' = \"%s\" is not a valid size (decimal number with an optional K, M or G "
                 "suffix, e.g. \"256M\")",
                 k->key, k->v->u.str.ptr);
    return false;
}

static void v_size(struct check_ctx* c, const struct checked* k) {
    uint64_t size;
    (void)check_size(c, k, &size);
}

static void v_enclave_size(struct check_ctx* c, const struct checked* k) {
    uint64_t size;
    if (!check_size(c, k, &size))
        return;
    if (size == 0 || (size & (size - 1)) != 0)
        check_report(c, DIAG_ERROR, k,
                     "'%s' = \"%s\" is not a power of two: Enclave size not a power of two (an "
                     "SGX-imposed requirement)",
                     k->key, k->v->u.str.ptr);
}

static void v_remote_attestation(struct check_ctx* c, const struct checked* k) {
    if (k->v->type != TOML_STRING) {
        check_report(c, DIAG_ERROR, k,
                     "Cannot parse 'sgx.remote_attestation': Graphene-era %s value; use \"dcap\" "
                     "or \"none\" ('moat manifest migrate' rewrites it)",
                     k->v->type == TOML_BOOL ? "boolean" : "integer");
        return;
    }
    static const char* const types[] = {"none", "dcap", NULL};
    if (!one_of(k->v->u.str.ptr, types))
        check_report(
            c, DIAG_ERROR, k,
            "Unknown 'sgx.remote_attestation' type (recognized values are \"none\" and "
            "\"dcap\"): \"%s\"%s",
            k->v->u.str.ptr,
            strcmp(k->v->u.str.ptr, "epid") == 0 ? " (EPID was removed in Gramine v1.9)" : "");
}

/* ---------------------------------------------------------------------------------------- */
/* sgx.amber_* and sgx.kbs_*: /dev/amber (reference/attestation.md §4.4, docs/amber.md)        */

#define AMBER_URL_MAX 2048

static void v_amber_url(struct check_ctx* c, const struct checked* k) {
    const char* v = k->v->u.str.ptr;
    if (!*v)
        return; /* set at run time through /dev/amber */
    if (strncasecmp(v, "https://", 8) != 0 || !v[8])
        check_report(c, DIAG_ERROR, k,
                     "'%s' = \"%s\" is not an https:// URL (/dev/amber speaks TLS only, verified "
                     "against sgx.amber_cacerts or the system's CAs)",
                     k->key, v);
    else if (strlen(v) > AMBER_URL_MAX)
        check_report(c, DIAG_ERROR, k, "'%s' is longer than %d characters", k->key, AMBER_URL_MAX);
    const struct toml_value* ra = toml_get_path(c->root, "sgx.remote_attestation");
    /* a Graphene-era true / 1 has its own error ('moat manifest migrate' makes it "dcap") */
    bool dcap = ra && (ra->type == TOML_STRING ? !strcmp(ra->u.str.ptr, "dcap")
                                               : ra->type == TOML_BOOL || ra->type == TOML_INTEGER);
    if (!strcmp(k->key, "sgx.amber_url") && !dcap)
        check_report(c, DIAG_ERROR, k,
                     "'sgx.amber_url' needs sgx.remote_attestation = \"dcap\": /dev/amber/token "
                     "sends the service a DCAP quote");
}

static void v_amber_ip(struct check_ctx* c, const struct checked* k) {
    const char* v = k->v->u.str.ptr;
    unsigned char a[16];
    if (*v && inet_pton(AF_INET, v, a) != 1 && inet_pton(AF_INET6, v, a) != 1)
        check_report(c, DIAG_ERROR, k,
                     "'%s' = \"%s\" is not a numeric IPv4 or IPv6 address (the address to "
                     "connect to; the URL names the host for TLS)",
                     k->key, v);
}

static void v_amber_apikey(struct check_ctx* c, const struct checked* k) {
    if (strlen(k->v->u.str.ptr) > 256)
        check_report(c, DIAG_ERROR, k, "'%s' is longer than 256 characters", k->key);
}

static void v_amber_userdata(struct check_ctx* c, const struct checked* k) {
    const char* v = k->v->u.str.ptr;
    uint8_t* out  = NULL;
    size_t len    = 0;
    if (*v && base64_decode_alloc(v, strlen(v), &out, &len) < 0)
        check_report(c, DIAG_WARNING, k,
                     "'%s' is not base64: /dev/amber/token will fail until the app writes "
                     "base64 to /dev/amber/userdata (the seed's dummy value is such a string)",
                     k->key);
    else if (len > 8192)
        check_report(c, DIAG_ERROR, k, "'%s' decodes to %zu bytes (at most 8192)", k->key, len);
    free(out);
}

static void v_kbs_keyid(struct check_ctx* c, const struct checked* k) {
    uint8_t id[16];
    if (*k->v->u.str.ptr && moat_uuid_parse(k->v->u.str.ptr, id, NULL) < 0)
        check_report(c, DIAG_ERROR, k, "'%s' = \"%s\" is not a UUID", k->key, k->v->u.str.ptr);
}

/* PEM certificates in the manifest itself (measured with it), or a file: URI that is one of
 * sgx.trusted_files (so its hash is measured): a CA file the host could swap would let it
 * impersonate the token service and the key broker. */
static void v_amber_cacerts(struct check_ctx* c, const struct checked* k) {
    const char* v = k->v->u.str.ptr;
    if (!*v || strstr(v, "-----BEGIN CERTIFICATE-----"))
        return;
    if (strncmp(v, "file:", 5) != 0) {
        check_report(c, DIAG_ERROR, k,
                     "'%s' is neither PEM certificates (-----BEGIN CERTIFICATE-----) nor a "
                     "'file:' URI",
                     k->key);
        return;
    }
    const struct toml_value* tf = toml_get_path(c->root, "sgx.trusted_files");
    size_t n                    = !tf                      ? 0
                                  : tf->type == TOML_ARRAY ? tf->u.arr.len
                                  : tf->type == TOML_TABLE ? tf->u.tab.len /* Graphene's sgx.trusted_files.<id> */
                                                           : 0;
    for (size_t i = 0; i < n; i++) {
        const struct toml_value* e =
            tf->type == TOML_ARRAY ? tf->u.arr.items[i] : tf->u.tab.items[i].value;
        if (e->type == TOML_TABLE)
            e = toml_get_path(e, "uri");
        if (e && e->type == TOML_STRING && !strcmp(e->u.str.ptr, v))
            return;
    }
    check_report(c, DIAG_ERROR, k,
                 "'%s' = \"%s\" is not one of sgx.trusted_files: list it there, so that its hash "
                 "is part of the measurement (a CA file the host could change would let it "
                 "impersonate the token service), or put the PEM text in the manifest",
                 k->key, v);
}

static void v_file_check_policy(struct check_ctx* c, const struct checked* k) {
    static const char* const policies[] = {"strict", "allow_all_but_log", NULL};
    check_enum(c, k, policies, "Unknown value for 'sgx.file_check_policy'");
}

static void v_cpu_feature3(struct check_ctx* c, const struct checked* k) {
    static const char* const values[] = {"unspecified", "disabled", "required", NULL};
    check_enum(c, k, values, NULL);
}

static void v_cpu_feature2(struct check_ctx* c, const struct checked* k) {
    static const char* const values[] = {"disabled", "required", NULL};
    check_enum(c, k, values, NULL);
}

static void v_hex_mask(struct check_ctx* c, const struct checked* k) {
    const char* s = k->v->u.str.ptr;
    size_t n      = strlen(s);
    if (n < 3 || n > 18 || strncmp(s, "0x", 2) != 0 || !is_hex(s + 2, n - 2))
        check_report(c, DIAG_ERROR, k,
                     "'%s' = \"%s\" is not a hex mask (expected \"0x\" and up to 16 hex digits)",
                     k->key, s);
}

static void v_profile_enable(struct check_ctx* c, const struct checked* k) {
    static const char* const values[] = {"none", "main", "all", NULL};
    check_enum(c, k, values, NULL);
}

static void v_profile_mode(struct check_ctx* c, const struct checked* k) {
    static const char* const values[] = {"aex", "ocall_inner", "ocall_outer", NULL};
    check_enum(c, k, values, NULL);
}

static void v_insecure_key(struct check_ctx* c, const struct checked* k) {
    /* never echo the key itself */
    const char* s = k->v->u.str.ptr;
    if (strlen(s) != 32 || !is_hex(s, 32))
        check_report(c, DIAG_ERROR, k,
                     "Cannot parse hex key: '%s' must be 32 hex digits (16 bytes), got %zu "
                     "characters",
                     k->key, strlen(s));
}

static void v_fs_type(struct check_ctx* c, const struct checked* k) {
    static const char* const types[] = {"chroot", "encrypted", "tmpfs", "untrusted_shm", NULL};
    check_enum(c, k, types, NULL);
}

/* fs.mounts[i] and fs.root share these fields. */
struct mount_field {
    const char* name;
    unsigned types;
    key_validator validate;
};

static const struct mount_field g_mount_fields[] = {
    {"type", VT_STRING, v_fs_type}, {"path", VT_STRING, NULL},          {"uri", VT_STRING, NULL},
    {"key_name", VT_STRING, NULL},  {"enable_recovery", VT_BOOL, NULL},
};

static void check_uri_prefix(struct check_ctx* c, const struct checked* k, const char* type) {
    const char* uri = k->v->u.str.ptr;
    bool shm        = type && strcmp(type, "untrusted_shm") == 0;
    bool chroot     = !type || strcmp(type, "chroot") == 0;
    bool dev        = strncmp(uri, "dev:", 4) == 0;
    bool file       = strncmp(uri, "file:", 5) == 0;
    /* chroot takes file: and dev: (devices), untrusted_shm dev:, encrypted file: (Gramine's
     * chroot_mount, shm_mount, encrypted_mount) */
    if (shm ? !dev : chroot ? !(dev || file) : !file) {
        check_report(c, DIAG_ERROR, k, "'%s' = \"%s\" must start with %s", k->key, uri,
                     shm      ? "'dev:'"
                     : chroot ? "'file:' or 'dev:'"
                              : "'file:'");
        return;
    }
    const char* path                  = uri + (dev ? 4 : 5);
    static const char* const pseudo[] = {"/proc", "/sys", "/dev"};
    for (size_t i = 0; i < ARRAY_SIZE(pseudo) && !shm && !dev; i++) {
        size_t n = strlen(pseudo[i]);
        if (strncmp(path, pseudo[i], n) == 0 && (path[n] == '\0' || path[n] == '/'))
            check_report(c, DIAG_WARNING, k,
                         "'%s' mounts host '%s': this is not recommended for production (it "
                         "exposes host state to the app)",
                         k->key, path);
    }
}

/* Checks one mount table; `is_root` for fs.root (no path). */
static void check_mount(struct check_ctx* c, const struct checked* k, bool is_root) {
    const struct toml_value* t = k->v;
    for (size_t i = 0; i < t->u.tab.len; i++) {
        const struct toml_kv* kv    = &t->u.tab.items[i];
        const struct mount_field* f = NULL;
        for (size_t j = 0; j < ARRAY_SIZE(g_mount_fields); j++)
            if (strcmp(kv->key, g_mount_fields[j].name) == 0)
                f = &g_mount_fields[j];
        _cleanup_free_ char* fkey = xasprintf("%s.%s", k->key, kv->key);
        struct checked fk         = {fkey, kv->value, kv->line, kv->col};
        if (!f || (is_root && strcmp(kv->key, "path") == 0)) {
            check_report(c, DIAG_ERROR, &fk, "unknown key '%s'%s", fkey,
                         is_root ? " (fs.root takes type, uri, key_name and enable_recovery)"
                                 : " (a mount takes type, path, uri, key_name and "
                                   "enable_recovery)");
            continue;
        }
        if (!(vt_of(kv->value) & f->types) || (f->types == VT_STRING && !is_string(kv->value))) {
            check_report(c, DIAG_ERROR, &fk, "'%s' must be %s, not %s", fkey, vt_name(f->types),
                         vt_name(vt_of(kv->value)));
            continue;
        }
        if (f->validate)
            f->validate(c, &fk);
    }

    const struct toml_value* type = toml_table_get(t, "type");
    const char* type_s            = is_string(type) ? type->u.str.ptr : "chroot";
    const struct toml_value* uri  = toml_table_get(t, "uri");
    const struct toml_value* path = toml_table_get(t, "path");
    if (!is_root) {
        if (!path) {
            check_report(c, DIAG_ERROR, k, "No value provided for '%s.path'", k->key);
        } else if (is_string(path) && path->u.str.ptr[0] != '/') {
            const struct toml_kv* pkv = toml_table_get_kv(t, "path");
            struct checked pk         = {k->key, path, pkv->line, pkv->col};
            check_report(c, DIAG_ERROR, &pk,
                         "Relative mount path: '%s.path' (\"%s\") is disallowed! Consider "
                         "converting it to absolute by adding \"/\" at the beginning.",
                         k->key, path->u.str.ptr);
        } else if (is_string(path) && strcmp(path->u.str.ptr, "/") == 0) {
            const struct toml_kv* pkv = toml_table_get_kv(t, "path");
            struct checked pk         = {k->key, path, pkv->line, pkv->col};
            check_report(c, DIAG_ERROR, &pk,
                         "'%s.path' cannot be \"/\". The root mount (\"/\") can be customized "
                         "via the 'fs.root' manifest entry.",
                         k->key);
        }
    }
    if (strcmp(type_s, "tmpfs") != 0) {
        if (!uri && (!is_root || type)) {
            check_report(c, DIAG_ERROR, k, "No value provided for '%s.uri'", k->key);
        } else if (is_string(uri)) {
            const struct toml_kv* ukv = toml_table_get_kv(t, "uri");
            _cleanup_free_ char* ukey = xasprintf("%s.uri", k->key);
            struct checked uk         = {ukey, uri, ukv->line, ukv->col};
            check_uri_prefix(c, &uk, type_s);
        }
    }
    if (strcmp(type_s, "encrypted") != 0 &&
        (toml_table_get(t, "key_name") || toml_table_get(t, "enable_recovery")))
        check_report(c, DIAG_WARNING, k,
                     "'%s': key_name and enable_recovery only apply to type = \"encrypted\"",
                     k->key);
}

static void v_mounts(struct check_ctx* c, const struct checked* k) {
    for (size_t i = 0; i < k->v->u.arr.len; i++) {
        const struct toml_value* m = k->v->u.arr.items[i];
        _cleanup_free_ char* mkey  = xasprintf("fs.mounts[%zu]", i);
        struct checked mk          = {mkey, m, m->line, m->col};
        if (m->type != TOML_TABLE) {
            check_report(c, DIAG_ERROR, &mk,
                         "Invalid mount in manifest at index %zu (not a TOML table)", i);
            continue;
        }
        check_mount(c, &mk, false);
    }
}

static void v_root(struct check_ctx* c, const struct checked* k) {
    /* Graphene's fs.root.<id>.{type,path,uri}: a table of tables */
    for (size_t i = 0; i < k->v->u.tab.len; i++) {
        if (k->v->u.tab.items[i].value->type == TOML_TABLE) {
            check_report(c, DIAG_WARNING, k,
                         "Graphene-era 'fs.root.%s' is ignored: use 'fs.root = { type, uri }' "
                         "('moat manifest migrate' rewrites it)",
                         k->v->u.tab.items[i].key);
            return;
        }
    }
    check_mount(c, k, true);
}

static void v_legacy_mounts(struct check_ctx* c, const struct checked* k) {
    for (size_t i = 0; i < k->v->u.tab.len; i++) {
        const struct toml_kv* kv  = &k->v->u.tab.items[i];
        _cleanup_free_ char* mkey = xasprintf("fs.mount.%s", kv->key);
        struct checked mk         = {mkey, kv->value, kv->line, kv->col};
        if (kv->value->type != TOML_TABLE)
            check_report(c, DIAG_ERROR, &mk, "'%s' must be a table with type, path and uri", mkey);
    }
}

/* Key names for array elements and their fields, built without printf or malloc while
 * nothing is wrong: these checks run once per trusted file, thousands of times in a large
 * manifest. key_join returns buf, or a malloc'd string (*heap) when buf is too small. */
static const char* key_index(char buf[static 64], const char* base, size_t i) {
    size_t n = strlen(base);
    if (n > 40)
        n = 40;
    memcpy(buf, base, n);
    char digits[24];
    size_t d = 0;
    do {
        digits[d++] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    buf[n++] = '[';
    while (d)
        buf[n++] = digits[--d];
    buf[n++] = ']';
    buf[n]   = '\0';
    return buf;
}

static const char* key_join(char buf[static 64], char** heap, const char* a, const char* b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > 64)
        return *heap = xasprintf("%s%s", a, b);
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb + 1);
    return buf;
}

/* "at index N" of "sgx.trusted_files[N]", Gramine's runtime wording (reference §6); the key
 * itself for a Graphene-era "sgx.trusted_files.<id>". */
static const char* index_of(const char* key, char buf[static 32]) {
    const char* open = strrchr(key, '[');
    if (open)
        snprintf(buf, 32, "at index %.*s", (int)strcspn(open + 1, "]"), open + 1);
    else
        snprintf(buf, 32, "'%.20s'", key);
    return buf;
}

/* An element of sgx.trusted_files (or a Graphene-era sgx.trusted_files.<id> value). */
static void check_trusted_entry(struct check_ctx* c, const struct checked* k) {
    const struct toml_value* e = k->v;
    bool need_hash             = c->opts->finalized || c->opts->runtime;
    char at[32]; /* formatted only for a message: this runs once per trusted file */
    if (e->type == TOML_STRING) {
        if (!is_string(e) || strncmp(e->u.str.ptr, "file:", 5) != 0)
            check_report(c, DIAG_ERROR, k,
                         "Invalid URI [%s]: Trusted files must start with 'file:' ('%s')",
                         e->u.str.ptr, k->key);
        else if (need_hash)
            check_report(c, DIAG_ERROR, k,
                         "Invalid trusted file in manifest %s (not a TOML table): \"%s\" has no "
                         "sha256, the manifest is not finalized (run 'moat manifest render')",
                         index_of(k->key, at), e->u.str.ptr);
        return;
    }
    if (e->type != TOML_TABLE) {
        check_report(c, DIAG_ERROR, k,
                     "Invalid trusted file in manifest %s (not a TOML table): '%s' must be a "
                     "string or a { uri, sha256 } table, not %s",
                     index_of(k->key, at), k->key, vt_name(vt_of(e)));
        return;
    }
    const struct toml_value* uri    = toml_table_get(e, "uri");
    const struct toml_value* sha256 = toml_table_get(e, "sha256");
    for (size_t i = 0; i < e->u.tab.len; i++) {
        const char* name = e->u.tab.items[i].key;
        if (strcmp(name, "uri") != 0 && strcmp(name, "sha256") != 0) {
            struct checked ek = {k->key, e, e->u.tab.items[i].line, e->u.tab.items[i].col};
            check_report(c, DIAG_ERROR, &ek, "unknown key '%s.%s' (entries take uri and sha256)",
                         k->key, name);
        }
    }
    if (!uri) {
        check_report(c, DIAG_ERROR, k, "Invalid trusted file in manifest %s (no 'uri' key)",
                     index_of(k->key, at));
        return;
    }
    if (!is_string(uri) || strncmp(uri->u.str.ptr, "file:", 5) != 0) {
        check_report(c, DIAG_ERROR, k,
                     "Invalid URI [%s]: Trusted files must start with 'file:' ('%s.uri')",
                     is_string(uri) ? uri->u.str.ptr : "?", k->key);
        return;
    }
    if (sha256) {
        char buf[64];
        _cleanup_free_ char* heap = NULL;
        const char* skey          = key_join(buf, &heap, k->key, ".sha256");
        struct checked sk         = {skey, sha256, sha256->line, sha256->col};
        if (!is_string(sha256))
            check_report(c, DIAG_ERROR, &sk, "'%s' must be a string", skey);
        else
            v_sha256(c, &sk);
    } else if (c->opts->runtime ||
               (c->opts->finalized && uri->u.str.ptr[strlen(uri->u.str.ptr) - 1] != '/')) {
        check_report(c, DIAG_ERROR, k,
                     "Invalid trusted file in manifest %s (no 'sha256' key): \"%s\" has no "
                     "sha256, the manifest is not finalized (run 'moat manifest render')",
                     index_of(k->key, at), uri->u.str.ptr);
    }
}

static void v_trusted_files(struct check_ctx* c, const struct checked* k) {
    if (k->v->type == TOML_TABLE) {
        check_report(c, DIAG_WARNING, k,
                     "Graphene-era table syntax 'sgx.trusted_files.<id>' is ignored by the "
                     "runtime (every file would be denied) and refused by gramine-manifest "
                     "(Unsupported trusted files syntax): use an array, 'sgx.trusted_files = "
                     "[ \"file:...\" ]' ('moat manifest migrate' rewrites it)");
        return;
    }
    for (size_t i = 0; i < k->v->u.arr.len; i++) {
        const struct toml_value* e = k->v->u.arr.items[i];
        char ekey[64];
        struct checked ek = {key_index(ekey, "sgx.trusted_files", i), e, e->line, e->col};
        check_trusted_entry(c, &ek);
    }
}

static void v_allowed_files(struct check_ctx* c, const struct checked* k) {
    if (k->v->type == TOML_TABLE) {
        check_report(c, DIAG_WARNING, k,
                     "Graphene-era table syntax 'sgx.allowed_files.<id>' is ignored by the "
                     "runtime (the files would be denied): use an array, 'sgx.allowed_files = "
                     "[ \"file:...\" ]' ('moat manifest migrate' rewrites it)");
        return;
    }
    for (size_t i = 0; i < k->v->u.arr.len; i++) {
        const struct toml_value* e = k->v->u.arr.items[i];
        char buf[64];
        const char* ekey  = key_index(buf, "sgx.allowed_files", i);
        struct checked ek = {ekey, e, e->line, e->col};
        if (!is_string(e))
            check_report(c, DIAG_ERROR, &ek, "'%s' must be a string URI, not %s", ekey,
                         vt_name(vt_of(e)));
        else if (strncmp(e->u.str.ptr, "file:", 5) != 0 && strncmp(e->u.str.ptr, "dev:", 4) != 0)
            check_report(c, DIAG_ERROR, &ek, "'%s' = \"%s\" must start with 'file:' or 'dev:'",
                         ekey, e->u.str.ptr);
    }
}

/* Gramine v1.9 libos/src/libos_syscalls.c init_syscalls' messages. */
static void v_mock_syscalls(struct check_ctx* c, const struct checked* k) {
    for (size_t i = 0; i < k->v->u.arr.len; i++) {
        const struct toml_value* e    = k->v->u.arr.items[i];
        _cleanup_free_ char* ekey     = xasprintf("%s[%zu]", k->key, i);
        struct checked ek             = {ekey, e, e->line, e->col};
        const struct toml_value* name = e->type == TOML_TABLE ? toml_table_get(e, "name") : NULL;
        const struct toml_value* ret  = e->type == TOML_TABLE ? toml_table_get(e, "return") : NULL;
        if (e->type != TOML_TABLE)
            check_report(c, DIAG_ERROR, &ek,
                         "Invalid mock syscall in manifest at index %zu (not a TOML table)", i);
        else if (!is_string(name))
            check_report(c, DIAG_ERROR, &ek,
                         "Invalid mock syscall in manifest at index %zu (can't parse `name`)", i);
        else if (ret && ret->type != TOML_INTEGER)
            check_report(c, DIAG_ERROR, &ek,
                         "Invalid mock syscall in manifest at index %zu (can't parse `return`)", i);
        else if (c->opts->syscall_known && !c->opts->syscall_known(name->u.str.ptr))
            check_report(c, DIAG_ERROR, &ek,
                         "Unrecognized mock syscall `%s` in manifest at index %zu", name->u.str.ptr,
                         i);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The table                                                                                  */

#define KEY(p, t, v) \
    { p, t, KEY_CURRENT, v, NULL }
#define LEGACY(p, t, replacement) \
    { p, t, KEY_LEGACY, NULL, replacement }
#define LEGACY_V(p, t, v, replacement) \
    { p, t, KEY_LEGACY, v, replacement }
#define REMOVED(p, msg) \
    { p, VT_ANY, KEY_REMOVED, NULL, msg }

const struct schema_key g_schema[] = {
    /* loader.* */
    KEY("loader.entrypoint.uri", VT_STRING, v_file_uri),
    KEY("loader.entrypoint.sha256", VT_STRING, v_sha256),
    KEY("loader.argv", VT_ARRAY, v_argv),
    KEY("loader.argv_src_file", VT_STRING, v_file_uri),
    KEY("loader.insecure__use_cmdline_argv", VT_BOOL, NULL),
    KEY("loader.env.*", VT_STRING | VT_TABLE, v_env),
    KEY("loader.env_src_file", VT_STRING, v_file_uri),
    KEY("loader.insecure__use_host_env", VT_BOOL, NULL),
    KEY("loader.uid", VT_INT, v_id),
    KEY("loader.gid", VT_INT, v_id),
    KEY("loader.insecure__disable_aslr", VT_BOOL, NULL),
    KEY("loader.log_level", VT_STRING, v_log_level),
    KEY("loader.log_file", VT_STRING, NULL),
    /* libos.* */
    KEY("libos.entrypoint", VT_STRING, v_libos_entrypoint),
    KEY("libos.check_invalid_pointers", VT_BOOL, NULL),
    KEY("libos.sync.enable", VT_BOOL, NULL),
    /* fs.* */
    KEY("fs.root", VT_TABLE, v_root),
    KEY("fs.mounts", VT_ARRAY, v_mounts),
    KEY("fs.start_dir", VT_STRING, NULL),
    KEY("fs.insecure__keys.*", VT_STRING, v_insecure_key),
    /* sys.* */
    KEY("sys.stack.size", VT_STRING, v_size),
    KEY("sys.brk.max_size", VT_STRING, v_size),
    KEY("sys.fds.limit", VT_INT, v_fds_limit),
    KEY("sys.enable_sigterm_injection", VT_BOOL, NULL),
    KEY("sys.insecure__allow_eventfd", VT_BOOL, NULL),
    KEY("sys.disallow_subprocesses", VT_BOOL, NULL),
    KEY("sys.debug__mock_syscalls", VT_ARRAY, v_mock_syscalls),
    KEY("sys.experimental__enable_flock", VT_BOOL, NULL),
    KEY("sys.enable_extra_runtime_domain_names_conf", VT_BOOL, NULL),
    KEY("sys.ioctl_structs.*", VT_ARRAY | VT_TABLE | VT_STRING, NULL),
    KEY("sys.allowed_ioctls", VT_ARRAY, NULL),
    /* sgx.* */
    KEY("sgx.trusted_files", VT_ARRAY | VT_TABLE, v_trusted_files),
    KEY("sgx.allowed_files", VT_ARRAY | VT_TABLE, v_allowed_files),
    KEY("sgx.file_check_policy", VT_STRING, v_file_check_policy),
    KEY("sgx.enclave_size", VT_STRING, v_enclave_size),
    KEY("sgx.max_threads", VT_INT, v_max_threads),
    KEY("sgx.edmm_enable", VT_BOOL, NULL),
    KEY("sgx.debug", VT_BOOL, NULL),
    KEY("sgx.isvprodid", VT_INT, v_u16),
    KEY("sgx.isvsvn", VT_INT, v_u16),
    KEY("sgx.remote_attestation", VT_STRING | VT_BOOL | VT_INT, v_remote_attestation),
    KEY("sgx.amber_url", VT_STRING, v_amber_url),
    KEY("sgx.amber_ip", VT_STRING, v_amber_ip),
    KEY("sgx.amber_apikey", VT_STRING, v_amber_apikey),
    KEY("sgx.amber_userdata", VT_STRING, v_amber_userdata),
    KEY("sgx.amber_cacerts", VT_STRING, v_amber_cacerts),
    KEY("sgx.kbs_url", VT_STRING, v_amber_url),
    KEY("sgx.kbs_ip", VT_STRING, v_amber_ip),
    KEY("sgx.kbs_keyid", VT_STRING, v_kbs_keyid),
    KEY("sgx.use_exinfo", VT_BOOL, NULL),
    KEY("sgx.insecure__allow_memfaults_without_exinfo", VT_BOOL, NULL),
    KEY("sgx.cpu_features.avx", VT_STRING, v_cpu_feature3),
    KEY("sgx.cpu_features.avx512", VT_STRING, v_cpu_feature3),
    KEY("sgx.cpu_features.amx", VT_STRING, v_cpu_feature3),
    KEY("sgx.cpu_features.mpx", VT_STRING, v_cpu_feature2),
    KEY("sgx.cpu_features.pkru", VT_STRING, v_cpu_feature2),
    KEY("sgx.seal_key.flags_mask", VT_STRING, v_hex_mask),
    KEY("sgx.seal_key.xfrm_mask", VT_STRING, v_hex_mask),
    KEY("sgx.seal_key.misc_mask", VT_STRING, v_hex_mask),
    KEY("sgx.insecure__rpc_thread_num", VT_INT, v_rpc_threads),
    KEY("sgx.preheat_enclave", VT_BOOL, NULL),
    KEY("sgx.enable_stats", VT_BOOL, NULL),
    KEY("sgx.vtune_profile", VT_BOOL, NULL),
    KEY("sgx.profile.enable", VT_STRING, v_profile_enable),
    KEY("sgx.profile.mode", VT_STRING, v_profile_mode),
    KEY("sgx.profile.with_stack", VT_BOOL, NULL),
    KEY("sgx.profile.frequency", VT_INT, v_nonneg),
    /* moat.* (moat's own: no Gramine counterpart) */
    KEY("moat.verify_cache", VT_BOOL, NULL),

    /* Graphene-era keys (reference §1.4) */
    LEGACY("loader.argv0_override", VT_STRING, "loader.argv = [ \"<argv0>\", ... ]"),
    LEGACY("loader.preload", VT_STRING,
           "nothing: the LibOS is loaded through loader.entrypoint.uri (removed in v1.2)"),
    LEGACY("loader.pal_internal_mem_size", VT_STRING,
           "nothing: PAL memory is managed automatically (removed in v1.5)"),
    LEGACY("loader.debug_type", VT_STRING, "nothing: use GDB=1 (removed)"),
    LEGACY_V("fs.mount", VT_TABLE, v_legacy_mounts,
             "fs.mounts = [ { type, path, uri }, ... ] (removed in v1.5)"),
    LEGACY("fs.root.*", VT_TABLE, "fs.root = { type, uri }"),
    LEGACY("fs.experimental__enable_sysfs_topology", VT_BOOL,
           "nothing: sysfs topology is always on (removed in v1.5)"),
    LEGACY("sgx.thread_num", VT_INT, "sgx.max_threads (renamed in v1.4)"),
    LEGACY("sgx.rpc_thread_num", VT_INT, "sgx.insecure__rpc_thread_num"),
    LEGACY("sgx.protected_files", VT_ARRAY | VT_TABLE,
           "fs.mounts entries with type = \"encrypted\" and key_name = \"default\""),
    LEGACY("sgx.protected_mrenclave_files", VT_ARRAY | VT_TABLE,
           "fs.mounts entries with type = \"encrypted\" and key_name = \"_sgx_mrenclave\""),
    LEGACY("sgx.protected_mrsigner_files", VT_ARRAY | VT_TABLE,
           "fs.mounts entries with type = \"encrypted\" and key_name = \"_sgx_mrsigner\""),
    LEGACY("sgx.protected_files_key", VT_STRING, "fs.insecure__keys.default"),
    LEGACY("sgx.insecure__protected_files_key", VT_STRING, "fs.insecure__keys.default"),
    LEGACY("sgx.ra_client_spid", VT_STRING,
           "nothing: EPID was removed in v1.9, DCAP needs no SPID (sgx.remote_attestation = "
           "\"dcap\")"),
    LEGACY("sgx.ra_client_linkable", VT_BOOL | VT_INT,
           "nothing: EPID was removed in v1.9 (sgx.remote_attestation = \"dcap\")"),
    LEGACY("sgx.require_avx", VT_BOOL | VT_INT, "sgx.cpu_features.avx = \"required\""),
    LEGACY("sgx.require_avx512", VT_BOOL | VT_INT, "sgx.cpu_features.avx512 = \"required\""),
    LEGACY("sgx.require_mpx", VT_BOOL | VT_INT, "sgx.cpu_features.mpx = \"required\""),
    LEGACY("sgx.require_pkru", VT_BOOL | VT_INT, "sgx.cpu_features.pkru = \"required\""),
    LEGACY("sgx.require_amx", VT_BOOL | VT_INT, "sgx.cpu_features.amx = \"required\""),
    LEGACY("sgx.support_exinfo", VT_BOOL | VT_INT, "sgx.use_exinfo"),
    LEGACY("sgx.nonpie_binary", VT_BOOL | VT_INT, "nothing: non-PIE binaries need no flag (v1.5)"),
    LEGACY("sgx.trusted_checksum", VT_TABLE, "sha256 in sgx.trusted_files entries"),
    LEGACY("sgx.static_address", VT_BOOL | VT_INT, "nothing (removed)"),
    REMOVED("loader.exec",
            "'loader.exec' is not supported anymore. Please update your manifest according to "
            "the current documentation. (use libos.entrypoint)"),
    REMOVED("sgx.sigfile",
            "sgx.sigfile is not supported anymore. Please update your manifest according to the "
            "current documentation. (the .sig file is found next to the manifest)"),
};
const size_t g_schema_len = ARRAY_SIZE(g_schema);

/* ---------------------------------------------------------------------------------------- */
/* Lookup                                                                                     */

/* Matches pattern components against comps[0..n). With `prefix`, the pattern may be longer. */
static bool pattern_match(const char* pattern, const char* const* comps, size_t n, bool prefix,
                          bool* ret_wild) {
    const char* p = pattern;
    *ret_wild     = false;
    for (size_t i = 0; i < n; i++) {
        if (!*p)
            return false;
        const char* end = strchr(p, '.');
        size_t len      = end ? (size_t)(end - p) : strlen(p);
        if (len == 1 && *p == '*')
            *ret_wild = true;
        else if (strlen(comps[i]) != len || memcmp(p, comps[i], len) != 0)
            return false;
        p = end ? end + 1 : p + len;
    }
    return prefix ? *p != '\0' : *p == '\0';
}

const struct schema_key* schema_lookup(const char* const* comps, size_t n) {
    const struct schema_key* wild = NULL;
    for (size_t i = 0; i < g_schema_len; i++) {
        bool is_wild;
        if (pattern_match(g_schema[i].pattern, comps, n, false, &is_wild)) {
            if (!is_wild)
                return &g_schema[i];
            if (!wild)
                wild = &g_schema[i];
        }
    }
    return wild;
}

bool schema_is_prefix(const char* const* comps, size_t n) {
    for (size_t i = 0; i < g_schema_len; i++) {
        bool is_wild;
        if (pattern_match(g_schema[i].pattern, comps, n, true, &is_wild))
            return true;
    }
    return false;
}

static size_t edit_distance(const char* a, const char* b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 200 || lb > 200)
        return SIZE_MAX;
    size_t row[201];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0]      = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up   = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag   = up;
        }
    }
    return row[lb];
}

char* schema_suggest(const char* const* comps, size_t n) {
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++)
        strbuf_printf(&sb, "%s%s", i ? "." : "", comps[i]);
    _cleanup_free_ char* key = strbuf_take(&sb, NULL);
    const char* last         = comps[n - 1];

    const char* best = NULL;
    char* best_buf   = NULL;
    size_t best_dist = SIZE_MAX;
    for (size_t i = 0; i < g_schema_len; i++) {
        if (g_schema[i].status != KEY_CURRENT)
            continue;
        /* compare with the pattern cut to as many components as the key has, so that an
         * unknown table ("sgxx") is matched against table names ("sgx") */
        const char* pat = g_schema[i].pattern;
        const char* cut = pat;
        for (size_t c = 0; c < n && cut; c++) {
            cut = strchr(cut, '.');
            if (cut && c + 1 < n)
                cut++;
        }
        _cleanup_free_ char* cand = cut ? xstrndup(pat, (size_t)(cut - pat)) : xstrdup(pat);
        if (strchr(cand, '*'))
            continue;
        size_t d = edit_distance(key, cand);
        /* the same last component under another table ("loader.max_threads") */
        const char* plast = strrchr(cand, '.');
        if (plast && strcmp(plast + 1, last) == 0 && d > 1)
            d = 2;
        if (d < best_dist) {
            best_dist = d;
            best      = pat;
            free(best_buf);
            best_buf = xstrdup(cand);
        }
    }
    size_t limit = strlen(key) / 4 + 1;
    if (limit < 2)
        limit = 2;
    char* ret = NULL;
    if (best && best_dist > 0 && best_dist <= limit)
        ret = TAKE_PTR(best_buf);
    free(best_buf);
    return ret;
}
