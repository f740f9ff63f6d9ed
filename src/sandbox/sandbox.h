/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `moat run`: runs an application under a Gramine manifest's rules in a Linux sandbox
 * (../shared/ARCHITECTURE.md, "moat run: how the sandbox works"; reference/gramine.md §1, §6).
 *
 * The supervisor stays in the host mount namespace and serves one FUSE file system: the app's
 * view of every chroot mount, where trusted files are verified (whole-file SHA-256 at the first
 * open, only verified bytes served: verify.h) and unlisted files are refused under
 * sgx.file_check_policy = "strict". The child enters new user/mount/pid/ipc/uts namespaces,
 * mounts that view as its root plus tmpfs mounts, bind mounts for allowed directories, /proc,
 * a minimal /dev and a read-only /sys, pivots into it, drops privileges, installs a seccomp
 * filter and executes the entrypoint with the manifest's argv and environment.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "model.h"

/* ---------------------------------------------------------------------------------------- */
/* argv and environment (reference §1.3)                                                      */

struct strv {
    char** items; /* NULL-terminated */
    size_t len, cap;
};
void strv_push(struct strv* v, const char* s);
void strv_pushn(struct strv* v, const char* s, size_t n);
void strv_free(struct strv* v);

/* Builds the app's argv from the manifest and the host arguments (host_argv[0] is the stem).
 * Fails with Gramine's messages ("argv handling wasn't configured in the manifest, but cmdline
 * arguments were specified.", ...). `warn` receives non-fatal messages (may be NULL). */
int sandbox_build_argv(const struct manifest* manifest, const char* const* host_argv,
                       size_t host_argc, struct strv* ret, struct strbuf* warn,
                       struct moat_error* err) WARN_UNUSED;
/* Builds the app's environment (Gramine's build_envs): host_env is NULL-terminated. */
int sandbox_build_env(const struct manifest* manifest, char* const* host_env, struct strv* ret,
                      struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* File policy (reference §6)                                                                 */

enum file_class {
    FILE_NONE,    /* not listed */
    FILE_ALLOWED, /* sgx.allowed_files (exact or directory prefix) */
    FILE_TRUSTED, /* sgx.trusted_files (exact host path) */
};

struct trusted_entry {
    char* path; /* normalized host path */
    char* uri;  /* h-fs: the URI's path normalized, not made absolute (Gramine's tf->path) */
    uint8_t sha256[32];
};

struct file_policy {
    bool strict; /* sgx.file_check_policy = "strict" */
    struct trusted_entry* trusted;
    size_t ntrusted;
    char** allowed; /* normalized host paths */
    size_t nallowed;
};

int file_policy_load(const struct manifest* manifest, struct file_policy* ret,
                     struct moat_error* err) WARN_UNUSED;
void file_policy_free(struct file_policy* p);
/* Classifies a normalized host path; *ret_trusted is set for FILE_TRUSTED. */
enum file_class file_policy_classify(const struct file_policy* p, const char* host_path,
                                     const struct trusted_entry** ret_trusted);

/* ---------------------------------------------------------------------------------------- */
/* Mount plan (reference §1.3 fs.*)                                                           */

enum mount_type {
    MOUNT_CHROOT,
    MOUNT_TMPFS,
    MOUNT_ENCRYPTED,
    MOUNT_PSEUDO,      /* /proc, /dev, /sys: mounted by the sandbox itself */
    MOUNT_PSEUDO_FILE, /* /etc/hosts etc.: a file the sandbox binds over an empty placeholder */
};

struct mount_entry {
    enum mount_type type;
    char* path; /* in-app absolute path, normalized ("/" for the root) */
    char* host; /* host path (normalized, absolute) for chroot; NULL for tmpfs */
    char* key_name;
    char* bind;    /* encrypted: the URI's path, normalized but not made absolute: files are
                    * bound to bind/<path below the mount> (reference/gramine.md §4.5) */
    bool recovery; /* encrypted: enable_recovery (<host path>.gramine.recovery files) */
    char* uri;     /* h-fs: the URI's path as written ("." for the default root): Gramine's log
                    * lines name host files <uri>/<path below the mount> (chroot_dentry_uri) */
};

struct mount_plan {
    struct mount_entry* items; /* items[0] is the root */
    size_t len;
    char* start_dir;
    char* entrypoint; /* libos.entrypoint, in-app path */
};

/* Reads fs.root, fs.mounts, fs.start_dir and libos.entrypoint. Relative host paths are made
 * absolute against `cwd`. Fails with Gramine's messages. */
int mount_plan_load(const struct manifest* manifest, const char* cwd, struct mount_plan* ret,
                    struct moat_error* err) WARN_UNUSED;
void mount_plan_free(struct mount_plan* p);
/* The chroot or encrypted mount covering an in-app path (the last one in order whose path is
 * a prefix), or NULL if another kind covers it. *ret_host gets the host path (malloc'd). */
const struct mount_entry* mount_plan_resolve(const struct mount_plan* p, const char* app_path,
                                             char** ret_host);
/* True if app_path is a strict ancestor of some mount point (a synthetic directory). */
bool mount_plan_is_synthetic_dir(const struct mount_plan* p, const char* app_path);
/* Adds placeholders for the files sys.enable_extra_runtime_domain_names_conf generates
 * (/etc/hostname, /etc/hosts, /etc/resolv.conf); they shadow the user's mounts. */
void mount_plan_add_domain_files(struct mount_plan* p);
/* Adds /lib64/ld-linux-x86-64.so.2 -> the app's /lib/ld-linux-x86-64.so.2 when the manifest
 * provides only the latter (Gramine templates mount the C library at /lib). */
void mount_plan_add_interpreter(struct mount_plan* p);
/* Maps /lib64/ld-linux-x86-64.so.2 to the app's /lib/ld-linux-x86-64.so.2 as well when the
 * former is a host file the policy does not list and the latter one it trusts or allows
 * (Gramine finds the interpreter in /lib first; fs.root.uri = "file:/"). */
void mount_plan_prefer_lib_interpreter(struct mount_plan* p, const struct file_policy* policy);
/* The in-app path through which a host path is visible, or NULL. */
char* mount_plan_app_path(const struct mount_plan* p, const char* host_path);

/* ---------------------------------------------------------------------------------------- */
/* Running                                                                                    */

struct run_opts {
    const char* stem;        /* <stem>.manifest */
    const char* const* argv; /* host arguments, argv[0] = stem */
    size_t argc;
    const char* learn;       /* --learn[=FILE]: allow and record every file (NULL: off) */
    bool emulate_sgx_limits; /* sgx.enclave_size -> RLIMIT_AS, sgx.max_threads -> NPROC */
    bool no_verify_cache;    /* --no-verify-cache: hash every trusted file (verify.h) */
};

/* Runs the app; returns its exit status (128+signal if killed) or MOAT_EXIT_* on errors
 * before the app started (message already printed). */
int sandbox_run(const struct run_opts* opts);

/* Writes the seccomp profile every process of the sandbox runs under, one rule a line
 * (`moat run --print-seccomp [STEM]`; docs/security.md explains each); with a STEM, the app's
 * own rules from its manifest too (mocked calls, sys.disallow_subprocesses). Returns 0, or a
 * negative errno when the manifest cannot be read (message printed). */
int sandbox_print_seccomp(FILE* out, const char* stem) WARN_UNUSED;

/* True if `name` is a system call the sandbox's seccomp knows: what sys.debug__mock_syscalls
 * may name (manifest_load_opts.syscall_known, for moat run and moat manifest check alike). */
bool sandbox_syscall_known(const char* name);
