/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The typed manifest model (model.h): the tree that passed manifest_check() becomes one struct
 * with Gramine's defaults applied (reference/gramine.md §1.3). The schema has already checked
 * every type, format and range the tree can express; what is checked here is what only the
 * runtime requires (rendered trusted files, as Gramine's LibOS does at start-up, §6).
 */
#include <string.h>

#include <openssl/crypto.h>

#include "model.h"
#include "toml.h"

#define KIB (1024ULL)
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)

struct build {
    const struct toml_value* root;
    const struct manifest_load_opts* opts;
    struct manifest_diags* diags;
    int errors;
};

static void error_at(struct build* b, const char* key, const struct toml_value* v, const char* fmt,
                     ...) PRINTF_FMT(4, 5);
static void error_at(struct build* b, const char* key, const struct toml_value* v, const char* fmt,
                     ...) {
    va_list ap;
    va_start(ap, fmt);
    manifest_diags_vadd(b->diags, DIAG_ERROR, key, v ? v->line : 0, v ? v->col : 0, fmt, ap);
    va_end(ap);
    b->errors++;
}

static const struct toml_value* get(const struct build* b, const char* key) {
    return toml_get_path(b->root, key);
}

static const char* get_str(const struct build* b, const char* key, const char* def) {
    const struct toml_value* v = get(b, key);
    return v && v->type == TOML_STRING ? v->u.str.ptr : def;
}

static bool get_bool(const struct build* b, const char* key, bool def) {
    const struct toml_value* v = get(b, key);
    return v && v->type == TOML_BOOL ? v->u.boolean : def;
}

static int64_t get_int(const struct build* b, const char* key, int64_t def) {
    const struct toml_value* v = get(b, key);
    return v && v->type == TOML_INTEGER ? v->u.integer : def;
}

static uint64_t get_size(const struct build* b, const char* key, uint64_t def) {
    uint64_t size;
    const char* s = get_str(b, key, NULL);
    return s && parse_size_str(s, &size) == 0 ? size : def;
}

static void uri_set(struct manifest_uri* u, const char* text) {
    u->kind = strncmp(text, "dev:", 4) == 0 ? MANIFEST_URI_DEV : MANIFEST_URI_FILE;
    u->text = xstrdup(text);
    u->path = xstrdup(text + (u->kind == MANIFEST_URI_DEV ? 4 : 5));
}

static void uri_free(struct manifest_uri* u) {
    free(u->path);
    free(u->text);
}

/* An optional "file:" URI key; the schema checked its prefix. */
static bool opt_uri(const struct build* b, const char* key, struct manifest_uri* ret) {
    const char* s = get_str(b, key, NULL);
    if (s)
        uri_set(ret, s);
    return s != NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* loader.*, libos.*                                                                          */

static void build_env(struct manifest* m, const struct toml_value* env) {
    if (!env || env->type != TOML_TABLE)
        return;
    m->loader.env = xcalloc(env->u.tab.len + 1, sizeof(*m->loader.env));
    for (size_t i = 0; i < env->u.tab.len; i++) {
        const struct toml_kv* kv     = &env->u.tab.items[i];
        struct manifest_env* e       = &m->loader.env[m->loader.nenv++];
        const struct toml_value* val = kv->value;
        e->name                      = xstrdup(kv->key);
        if (val->type == TOML_TABLE) {
            const struct toml_value* pass = toml_table_get(val, "passthrough");
            e->passthrough                = pass && pass->type == TOML_BOOL && pass->u.boolean;
            val                           = toml_table_get(val, "value");
        }
        if (val && val->type == TOML_STRING)
            e->value = xstrdup(val->u.str.ptr);
    }
}

static enum manifest_log_level log_level_of(const char* s) {
    static const char* const names[] = {"none", "error", "warning", "debug", "trace", "all"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcmp(s, names[i]) == 0)
            return (enum manifest_log_level)i;
    return MANIFEST_LOG_ERROR;
}

const char* manifest_log_level_name(enum manifest_log_level l) {
    static const char* const names[] = {"none", "error", "warning", "debug", "trace", "all"};
    return (size_t)l < ARRAY_SIZE(names) ? names[l] : "?";
}

static void build_loader(struct build* b, struct manifest* m) {
    m->loader.has_entrypoint_uri = opt_uri(b, "loader.entrypoint.uri", &m->loader.entrypoint_uri);
    const char* sha              = get_str(b, "loader.entrypoint.sha256", NULL);
    m->loader.has_entrypoint_sha256 =
        sha && hex_decode(sha, strlen(sha), m->loader.entrypoint_sha256, 32) == 32;

    const struct toml_value* argv = get(b, "loader.argv");
    if (argv && argv->type == TOML_ARRAY) {
        m->loader.has_argv = true;
        m->loader.argv     = xcalloc(argv->u.arr.len + 1, sizeof(char*));
        for (size_t i = 0; i < argv->u.arr.len; i++)
            m->loader.argv[m->loader.argc++] = xstrdup(argv->u.arr.items[i]->u.str.ptr);
    }
    m->loader.has_argv_src_file = opt_uri(b, "loader.argv_src_file", &m->loader.argv_src_file);
    m->loader.use_cmdline_argv  = get_bool(b, "loader.insecure__use_cmdline_argv", false);
    build_env(m, get(b, "loader.env"));
    m->loader.has_env_src_file = opt_uri(b, "loader.env_src_file", &m->loader.env_src_file);
    m->loader.use_host_env     = get_bool(b, "loader.insecure__use_host_env", false);
    m->loader.uid              = (uint32_t)get_int(b, "loader.uid", 0);
    m->loader.gid              = (uint32_t)get_int(b, "loader.gid", 0);
    m->loader.disable_aslr     = get_bool(b, "loader.insecure__disable_aslr", false);
    m->loader.log_level        = log_level_of(get_str(b, "loader.log_level", "error"));
    const char* log_file       = get_str(b, "loader.log_file", NULL);
    m->loader.log_file         = log_file ? xstrdup(log_file) : NULL;

    m->libos.entrypoint             = xstrdup(get_str(b, "libos.entrypoint", ""));
    m->libos.check_invalid_pointers = get_bool(b, "libos.check_invalid_pointers", true);
}

/* ---------------------------------------------------------------------------------------- */
/* fs.*                                                                                       */

const char* manifest_mount_type_name(enum manifest_mount_type t) {
    static const char* const names[] = {"chroot", "encrypted", "tmpfs", "untrusted_shm"};
    return (size_t)t < ARRAY_SIZE(names) ? names[t] : "?";
}

static void build_mount(const struct toml_value* t, const char* key, bool is_root,
                        struct manifest_mount* ret) {
    const struct toml_value* type = toml_table_get(t, "type");
    const struct toml_value* path = toml_table_get(t, "path");
    const struct toml_value* uri  = toml_table_get(t, "uri");
    const struct toml_value* kn   = toml_table_get(t, "key_name");
    const struct toml_value* rec  = toml_table_get(t, "enable_recovery");
    ret->type                     = MANIFEST_MOUNT_CHROOT;
    for (int i = 0; type && i <= MANIFEST_MOUNT_UNTRUSTED_SHM; i++)
        if (strcmp(type->u.str.ptr, manifest_mount_type_name((enum manifest_mount_type)i)) == 0)
            ret->type = (enum manifest_mount_type)i;
    ret->path = xstrdup(is_root ? "/" : path->u.str.ptr);
    if (uri && ret->type != MANIFEST_MOUNT_TMPFS) {
        ret->has_uri = true;
        uri_set(&ret->uri, uri->u.str.ptr);
    }
    ret->key_name        = xstrdup(kn ? kn->u.str.ptr : "default");
    ret->enable_recovery = rec && rec->u.boolean;
    snprintf(ret->key, sizeof(ret->key), "%s", key);
}

static void build_fs(struct build* b, struct manifest* m) {
    const struct toml_value* root = get(b, "fs.root");
    if (root && root->type == TOML_TABLE && root->u.tab.len) {
        m->fs.has_root = true;
        build_mount(root, "fs.root", true, &m->fs.root);
    } else {
        m->fs.root = (struct manifest_mount){.type = MANIFEST_MOUNT_CHROOT, .has_uri = true};
        uri_set(&m->fs.root.uri, "file:.");
        m->fs.root.path     = xstrdup("/");
        m->fs.root.key_name = xstrdup("default");
        snprintf(m->fs.root.key, sizeof(m->fs.root.key), "fs.root");
    }
    const struct toml_value* mounts = get(b, "fs.mounts");
    size_t n                        = mounts && mounts->type == TOML_ARRAY ? mounts->u.arr.len : 0;
    m->fs.mounts                    = xcalloc(n + 1, sizeof(*m->fs.mounts));
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "fs.mounts[%zu]", i);
        build_mount(mounts->u.arr.items[i], key, false, &m->fs.mounts[m->fs.nmounts++]);
    }
    m->fs.start_dir = xstrdup(get_str(b, "fs.start_dir", "/"));

    const struct toml_value* keys = get(b, "fs.insecure__keys");
    n                             = keys && keys->type == TOML_TABLE ? keys->u.tab.len : 0;
    m->fs.insecure_keys           = xcalloc(n + 1, sizeof(*m->fs.insecure_keys));
    for (size_t i = 0; i < n; i++) {
        const struct toml_kv* kv        = &keys->u.tab.items[i];
        struct manifest_insecure_key* k = &m->fs.insecure_keys[m->fs.nkeys++];
        k->name                         = xstrdup(kv->key);
        if (hex_decode(kv->value->u.str.ptr, kv->value->u.str.len, k->key, 16) != 16)
            error_at(b, "fs.insecure__keys", kv->value, "Cannot parse hex key: '%s'", kv->key);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* sys.*, sgx.*                                                                               */

static void build_sys(struct build* b, struct manifest* m) {
    m->sys.has_stack_size            = get(b, "sys.stack.size") != NULL;
    m->sys.stack_size                = get_size(b, "sys.stack.size", 256 * KIB);
    m->sys.brk_max_size              = get_size(b, "sys.brk.max_size", 256 * KIB);
    m->sys.fds_limit                 = (uint64_t)get_int(b, "sys.fds.limit", 900);
    m->sys.enable_sigterm_injection  = get_bool(b, "sys.enable_sigterm_injection", false);
    m->sys.insecure_allow_eventfd    = get_bool(b, "sys.insecure__allow_eventfd", false);
    m->sys.disallow_subprocesses     = get_bool(b, "sys.disallow_subprocesses", false);
    m->sys.experimental_enable_flock = get_bool(b, "sys.experimental__enable_flock", false);
    m->sys.enable_extra_runtime_domain_names_conf =
        get_bool(b, "sys.enable_extra_runtime_domain_names_conf", false);
    m->moat.verify_cache = get_bool(b, "moat.verify_cache", true);

    const struct toml_value* mocks = get(b, "sys.debug__mock_syscalls");
    size_t n                       = mocks && mocks->type == TOML_ARRAY ? mocks->u.arr.len : 0;
    m->sys.mock_syscalls           = xcalloc(n + 1, sizeof(*m->sys.mock_syscalls));
    for (size_t i = 0; i < n; i++) {
        const struct toml_value* e      = mocks->u.arr.items[i];
        const struct toml_value* ret    = toml_table_get(e, "return");
        struct manifest_mock_syscall* s = &m->sys.mock_syscalls[m->sys.nmock++];
        s->name                         = xstrdup(toml_table_get(e, "name")->u.str.ptr);
        s->ret                          = ret ? ret->u.integer : 0;
    }
}

static enum manifest_cpu_feature cpu_feature(const struct build* b, const char* key,
                                             const char* def) {
    const char* s = get_str(b, key, def);
    return !strcmp(s, "required")   ? MANIFEST_CPU_REQUIRED
           : !strcmp(s, "disabled") ? MANIFEST_CPU_DISABLED
                                    : MANIFEST_CPU_UNSPECIFIED;
}

/* sgx.trusted_files (reference §6, init_trusted_allowed_files); in runtime mode the check
 * required every element to be a { uri, sha256 } table, as `moat manifest render` writes. */
static void build_trusted(struct build* b, struct manifest* m) {
    const struct toml_value* tf = get(b, "sgx.trusted_files");
    size_t n                    = tf && tf->type == TOML_ARRAY ? tf->u.arr.len : 0;
    m->sgx.trusted_files        = xcalloc(n + 1, sizeof(*m->sgx.trusted_files));
    for (size_t i = 0; i < n; i++) {
        const struct toml_value* e   = tf->u.arr.items[i];
        const struct toml_value* uri = e->type == TOML_TABLE ? toml_table_get(e, "uri") : e;
        const struct toml_value* sha = e->type == TOML_TABLE ? toml_table_get(e, "sha256") : NULL;
        struct manifest_trusted_file* t = &m->sgx.trusted_files[m->sgx.ntrusted++];
        uri_set(&t->uri, uri->u.str.ptr);
        t->has_sha256 = sha && hex_decode(sha->u.str.ptr, sha->u.str.len, t->sha256, 32) == 32;
        /* an unhashed entry passed the check only outside runtime mode (a manifest that is
         * checked, not run): the consumer refuses to run it */
    }
    const struct toml_value* af = get(b, "sgx.allowed_files");
    n                           = af && af->type == TOML_ARRAY ? af->u.arr.len : 0;
    m->sgx.allowed_files        = xcalloc(n + 1, sizeof(*m->sgx.allowed_files));
    for (size_t i = 0; i < n; i++)
        uri_set(&m->sgx.allowed_files[m->sgx.nallowed++], af->u.arr.items[i]->u.str.ptr);
}

static void build_sgx(struct build* b, struct manifest* m) {
    build_trusted(b, m);
    m->sgx.file_check_strict =
        strcmp(get_str(b, "sgx.file_check_policy", "strict"), "allow_all_but_log") != 0;
    m->sgx.edmm_enable = get_bool(b, "sgx.edmm_enable", false);
    m->sgx.enclave_size =
        get_size(b, "sgx.enclave_size", m->sgx.edmm_enable ? 1024 * GIB : 256 * MIB);
    m->sgx.max_threads             = (uint64_t)get_int(b, "sgx.max_threads", 4);
    m->sgx.debug                   = get_bool(b, "sgx.debug", false);
    m->sgx.isvprodid               = (uint16_t)get_int(b, "sgx.isvprodid", 0);
    m->sgx.isvsvn                  = (uint16_t)get_int(b, "sgx.isvsvn", 0);
    m->sgx.remote_attestation_dcap = !strcmp(get_str(b, "sgx.remote_attestation", "none"), "dcap");
    m->sgx.use_exinfo              = get_bool(b, "sgx.use_exinfo", false);
    m->sgx.insecure_allow_memfaults_without_exinfo =
        get_bool(b, "sgx.insecure__allow_memfaults_without_exinfo", false);
    m->sgx.avx    = cpu_feature(b, "sgx.cpu_features.avx", "unspecified");
    m->sgx.avx512 = cpu_feature(b, "sgx.cpu_features.avx512", "unspecified");
    m->sgx.amx    = cpu_feature(b, "sgx.cpu_features.amx", "unspecified");
    m->sgx.mpx    = cpu_feature(b, "sgx.cpu_features.mpx", "disabled");
    m->sgx.pkru   = cpu_feature(b, "sgx.cpu_features.pkru", "disabled");
    struct {
        const char* key;
        char** field;
    } amber[] = {
        {"sgx.amber_url", &m->sgx.amber_url},
        {"sgx.amber_ip", &m->sgx.amber_ip},
        {"sgx.amber_apikey", &m->sgx.amber_apikey},
        {"sgx.amber_userdata", &m->sgx.amber_userdata},
        {"sgx.amber_cacerts", &m->sgx.amber_cacerts},
        {"sgx.kbs_url", &m->sgx.kbs_url},
        {"sgx.kbs_ip", &m->sgx.kbs_ip},
        {"sgx.kbs_keyid", &m->sgx.kbs_keyid},
    };
    for (size_t i = 0; i < ARRAY_SIZE(amber); i++) {
        const char* v = get_str(b, amber[i].key, NULL);
        if (v) {
            *amber[i].field         = xstrdup(v);
            m->sgx.amber_configured = true;
        }
    }
}

/* ---------------------------------------------------------------------------------------- */

static int model_build(const struct toml_value* root, const struct manifest_load_opts* opts,
                       struct manifest** ret, struct manifest_diags* diags) {
    struct build b     = {.root = root, .opts = opts, .diags = diags};
    struct manifest* m = xcalloc(1, sizeof(*m));
    build_loader(&b, m);
    build_fs(&b, m);
    build_sys(&b, m);
    build_sgx(&b, m);
    if (b.errors) {
        manifest_free(m);
        return -EINVAL;
    }
    *ret = m;
    return 0;
}

/* Graphene-era keys the check reported (as read, not ignored) become what `moat manifest
 * migrate` writes; what each became (where a protected file is now mounted, ...) and what could
 * not be migrated are warnings. */
static int migrate_in_memory(struct toml_value* root, struct manifest_diags* diags,
                             struct moat_error* err) {
    struct manifest_diags notes = {0};
    int r                       = manifest_migrate(root, &notes, err);
    for (size_t i = 0; r == 0 && i < notes.len; i++) {
        const struct manifest_diag* d = &notes.items[i]; /* what each key became, too */
        manifest_diags_add(diags, DIAG_WARNING, d->key, d->line, d->col, "%s", d->msg);
    }
    manifest_diags_free(&notes);
    return r;
}

int manifest_load(const char* text, size_t len, const char* path,
                  const struct manifest_load_opts* opts, struct manifest** ret,
                  struct manifest_diags* diags, struct moat_error* err) {
    _cleanup_toml_ struct toml_value* root = NULL;
    struct toml_error terr;
    if (toml_parse(text, len, path, &root, &terr, err) < 0) {
        manifest_diags_add(diags, DIAG_ERROR, "", terr.line, terr.col, "%s", terr.msg);
        return moat_error_set(err, -EINVAL, "%s:%u:%u: %s", path, terr.line, terr.col, terr.msg);
    }
    struct manifest_check_opts copts = {
        .allow_unknown = opts->allow_unknown,
        .finalized     = opts->finalized,
        .runtime       = opts->runtime,
        .legacy_read   = true,
        .syscall_known = opts->syscall_known,
    };
    int errors = manifest_check(root, &copts, diags);
    if (errors == 0 && migrate_in_memory(root, diags, err) < 0)
        return -EINVAL;
    if (errors == 0 && model_build(root, opts, ret, diags) < 0)
        errors = (int)manifest_diags_count(diags, DIAG_ERROR);
    if (errors > 0)
        return moat_error_set(err, -EINVAL, "%s: the manifest is invalid (%d %s)", path, errors,
                              errors == 1 ? "error" : "errors");
    return 0;
}

static void mount_free(struct manifest_mount* mt) {
    free(mt->path);
    if (mt->has_uri)
        uri_free(&mt->uri);
    free(mt->key_name);
}

void manifest_free(struct manifest* m) {
    if (!m)
        return;
    uri_free(&m->loader.entrypoint_uri);
    for (size_t i = 0; i < m->loader.argc; i++)
        free(m->loader.argv[i]);
    free(m->loader.argv);
    uri_free(&m->loader.argv_src_file);
    for (size_t i = 0; i < m->loader.nenv; i++) {
        free(m->loader.env[i].name);
        free(m->loader.env[i].value);
    }
    free(m->loader.env);
    uri_free(&m->loader.env_src_file);
    free(m->loader.log_file);
    free(m->libos.entrypoint);
    mount_free(&m->fs.root);
    for (size_t i = 0; i < m->fs.nmounts; i++)
        mount_free(&m->fs.mounts[i]);
    free(m->fs.mounts);
    free(m->fs.start_dir);
    for (size_t i = 0; i < m->fs.nkeys; i++)
        free(m->fs.insecure_keys[i].name);
    if (m->fs.insecure_keys)
        OPENSSL_cleanse(m->fs.insecure_keys, m->fs.nkeys * sizeof(*m->fs.insecure_keys));
    free(m->fs.insecure_keys);
    for (size_t i = 0; i < m->sys.nmock; i++)
        free(m->sys.mock_syscalls[i].name);
    free(m->sys.mock_syscalls);
    for (size_t i = 0; i < m->sgx.ntrusted; i++)
        uri_free(&m->sgx.trusted_files[i].uri);
    free(m->sgx.trusted_files);
    for (size_t i = 0; i < m->sgx.nallowed; i++)
        uri_free(&m->sgx.allowed_files[i]);
    free(m->sgx.allowed_files);
    free(m->sgx.amber_url);
    free(m->sgx.amber_ip);
    if (m->sgx.amber_apikey)
        OPENSSL_cleanse(m->sgx.amber_apikey, strlen(m->sgx.amber_apikey));
    free(m->sgx.amber_apikey);
    free(m->sgx.amber_userdata);
    free(m->sgx.amber_cacerts);
    free(m->sgx.kbs_url);
    free(m->sgx.kbs_ip);
    free(m->sgx.kbs_keyid);
    free(m);
}
