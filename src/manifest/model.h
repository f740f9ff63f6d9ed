/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The manifest model: one validated, typed struct that every consumer reads (`moat run`,
 * `moat sign`, and what comes later) instead of looking keys up in the TOML tree. Built by
 * manifest_load(): the same schema check `moat manifest check` runs, Graphene-era keys migrated
 * (each one reported), gramine-manifest's and the runtime's defaults applied, every value
 * range-checked. Key names and defaults: reference/gramine.md §1.3.
 *
 * Strings in the model are NUL-free copies; URIs are split into their kind and the path as
 * written (relative host paths are resolved by the consumer, against the directory it runs in).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "check.h"
#include "common.h"

enum manifest_uri_kind {
    MANIFEST_URI_FILE, /* file:<path> */
    MANIFEST_URI_DEV,  /* dev:<path> (devices, untrusted shared memory) */
};

struct manifest_uri {
    enum manifest_uri_kind kind;
    char* path; /* as written after the prefix, not normalized */
    char* text; /* the whole URI as written ("file:./x"), for messages */
};

/* loader.env.<name>: a value, or a host variable passed through. */
struct manifest_env {
    char* name;
    char* value;      /* NULL when passthrough */
    bool passthrough; /* { passthrough = true } */
};

enum manifest_mount_type {
    MANIFEST_MOUNT_CHROOT,
    MANIFEST_MOUNT_ENCRYPTED,
    MANIFEST_MOUNT_TMPFS,
    MANIFEST_MOUNT_UNTRUSTED_SHM,
};

struct manifest_mount {
    enum manifest_mount_type type;
    char* path; /* in-app path as written (absolute; "/" for fs.root) */
    bool has_uri;
    struct manifest_uri uri; /* valid when has_uri (always, except tmpfs) */
    char* key_name;          /* encrypted: default "default" */
    bool enable_recovery;    /* encrypted */
    char key[32];            /* display key: "fs.root", "fs.mounts[3]" */
};

struct manifest_trusted_file {
    struct manifest_uri uri;
    bool has_sha256; /* false only in a manifest that was not rendered (a directory entry) */
    uint8_t sha256[32];
};

struct manifest_insecure_key {
    char* name;
    uint8_t key[16]; /* wiped by manifest_free() */
};

struct manifest_mock_syscall {
    char* name;
    int64_t ret; /* "return", default 0 */
};

enum manifest_log_level {
    MANIFEST_LOG_NONE,
    MANIFEST_LOG_ERROR,
    MANIFEST_LOG_WARNING,
    MANIFEST_LOG_DEBUG,
    MANIFEST_LOG_TRACE,
    MANIFEST_LOG_ALL,
};

enum manifest_cpu_feature {
    MANIFEST_CPU_UNSPECIFIED,
    MANIFEST_CPU_DISABLED,
    MANIFEST_CPU_REQUIRED,
};

struct manifest {
    struct {
        bool has_entrypoint_uri;
        struct manifest_uri entrypoint_uri; /* the LibOS (moat's own, measured) */
        bool has_entrypoint_sha256;
        uint8_t entrypoint_sha256[32];
        bool has_argv; /* loader.argv */
        char** argv;
        size_t argc;
        bool has_argv_src_file;
        struct manifest_uri argv_src_file;
        bool use_cmdline_argv; /* loader.insecure__use_cmdline_argv */
        struct manifest_env* env;
        size_t nenv;
        bool has_env_src_file;
        struct manifest_uri env_src_file;
        bool use_host_env; /* loader.insecure__use_host_env */
        uint32_t uid, gid;
        bool disable_aslr; /* loader.insecure__disable_aslr */
        enum manifest_log_level log_level;
        char* log_file; /* NULL: stderr */
    } loader;
    struct {
        char* entrypoint; /* required; in-app path, maybe relative to fs.start_dir */
        bool check_invalid_pointers;
    } libos;
    struct {
        bool has_root; /* fs.root given; else chroot of file:. */
        struct manifest_mount root;
        struct manifest_mount* mounts;
        size_t nmounts;
        char* start_dir; /* default "/" */
        struct manifest_insecure_key* insecure_keys;
        size_t nkeys;
    } fs;
    struct {
        uint64_t stack_size; /* default 256K */
        bool has_stack_size;
        uint64_t brk_max_size; /* default 256K */
        uint64_t fds_limit;    /* default 900 */
        bool enable_sigterm_injection;
        bool insecure_allow_eventfd;
        bool disallow_subprocesses;
        bool experimental_enable_flock;
        bool enable_extra_runtime_domain_names_conf;
        struct manifest_mock_syscall* mock_syscalls;
        size_t nmock;
    } sys;
    struct {
        struct manifest_trusted_file* trusted_files;
        size_t ntrusted;
        struct manifest_uri* allowed_files;
        size_t nallowed;
        bool file_check_strict; /* "strict" (default) or "allow_all_but_log" */
        uint64_t enclave_size;  /* default 256M, 1024G with EDMM */
        uint64_t max_threads;   /* default 4 */
        bool edmm_enable;
        bool debug;
        uint16_t isvprodid, isvsvn;
        bool remote_attestation_dcap; /* "dcap"; "none" (default) */
        bool use_exinfo;
        bool insecure_allow_memfaults_without_exinfo;
        enum manifest_cpu_feature avx, avx512, amx, mpx, pkru;
        /* sgx.amber_* and sgx.kbs_* (/dev/amber, docs/amber.md): NULL when not set;
         * amber_configured when any of them is (then /dev/amber exists) */
        bool amber_configured;
        char *amber_url, *amber_ip, *amber_apikey, *amber_userdata, *amber_cacerts;
        char *kbs_url, *kbs_ip, *kbs_keyid;
    } sgx;
    struct {
        bool verify_cache; /* moat.verify_cache, default true (docs/manifest.md) */
    } moat;
};

struct manifest_load_opts {
    /* What `moat run` needs beyond the schema: trusted files hashed (a rendered manifest),
     * as Gramine's runtime requires. `moat manifest check --finalized` asks for the same. */
    bool runtime;
    bool finalized; /* also loader.entrypoint.uri, as gramine-manifest writes it */
    bool allow_unknown;
    /* Names the system calls sys.debug__mock_syscalls may mock (the sandbox's seccomp knows
     * them); NULL: any name. */
    bool (*syscall_known)(const char* name);
};

/* Parses `text` (the manifest file `path`, for messages), checks it as `moat manifest check`
 * does, migrates Graphene-era keys (reported as warnings naming what they became) and builds the
 * model. Every finding goes to diags (errors and warnings, with key and line). Returns 0 and the
 * model, or -EINVAL when the manifest has errors (err says how many; diags say which), or another
 * negative code. */
int manifest_load(const char* text, size_t len, const char* path,
                  const struct manifest_load_opts* opts, struct manifest** ret,
                  struct manifest_diags* diags, struct moat_error* err) WARN_UNUSED;

void manifest_free(struct manifest* m);
static inline void manifest_freep(struct manifest** m) {
    manifest_free(*m);
}
#define _cleanup_manifest_ _cleanup_(manifest_freep)

const char* manifest_log_level_name(enum manifest_log_level l);
const char* manifest_mount_type_name(enum manifest_mount_type t);
