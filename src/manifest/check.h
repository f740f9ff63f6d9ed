/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manifest schema (every Gramine v1.9 key and every Graphene-era key), validation that
 * reports every problem at once, gramine-manifest's defaults, and Graphene → Gramine
 * migration. See reference/gramine.md §1.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "common.h"
#include "toml.h"

enum diag_severity {
    DIAG_ERROR,
    DIAG_WARNING,
    DIAG_NOTE,
};

/* One finding. `key` is the dotted manifest key ("fs.mounts[2].path"), line/col where the key
 * or value is written (0 if unknown). */
struct manifest_diag {
    enum diag_severity sev;
    char* key;
    uint32_t line, col;
    char* msg;
};

struct manifest_diags {
    struct manifest_diag* items;
    size_t len, cap;
};

void manifest_diags_add(struct manifest_diags* d, enum diag_severity sev, const char* key,
                        uint32_t line, uint32_t col, const char* fmt, ...) PRINTF_FMT(6, 7);
void manifest_diags_vadd(struct manifest_diags* d, enum diag_severity sev, const char* key,
                         uint32_t line, uint32_t col, const char* fmt, va_list ap) PRINTF_FMT(6, 0);
void manifest_diags_free(struct manifest_diags* d);
size_t manifest_diags_count(const struct manifest_diags* d, enum diag_severity sev);
/* Prints each diag as "<file>:<line>:<col>: error: <msg>" (line/col omitted when 0), in
 * line order. */
void manifest_diags_print(const struct manifest_diags* d, const char* filename, FILE* out);

struct manifest_check_opts {
    bool allow_unknown; /* --no-check: keys moat does not know pass without a diagnostic */
    bool finalized;     /* the manifest went through render (defaults present, files hashed):
                           trusted-file entries must then be {uri, sha256} tables, and
                           loader.entrypoint.uri must be there */
    bool runtime;       /* what `moat run` requires (as Gramine's runtime): trusted-file
                           entries hashed, but no loader.entrypoint.uri (moat is the LibOS) */
    bool legacy_read;   /* Graphene-era keys are read (migrated in memory), not ignored: the
                           warning says so */
    /* the system calls sys.debug__mock_syscalls may name (the sandbox's seccomp knows them);
       NULL: any name */
    bool (*syscall_known)(const char* name);
};

/* Validates the whole tree and appends every problem to diags. Returns the number of errors
 * (>= 0); warnings (e.g. legacy keys, naming the replacement) do not count. */
int manifest_check(const struct toml_value* root, const struct manifest_check_opts* opts,
                   struct manifest_diags* diags);

/* Injects gramine-manifest's defaults (reference §2 step 2): sgx.* defaults,
 * loader.entrypoint.uri = "file:<libos>" (its sha256 is filled by trusted-file hashing), string
 * trusted files → {uri} tables. Fails if loader.entrypoint has the Graphene string form
 * ("Unknown loader.entrypoint format (not a TOML table)"). */
int manifest_inject_defaults(struct toml_value* root, const char* libos_path,
                             struct moat_error* err) WARN_UNUSED;

/* Rewrites a Graphene-era manifest into current Gramine syntax in place. Everything it changed
 * is reported as DIAG_NOTE, everything it could not migrate as DIAG_WARNING (with why). */
int manifest_migrate(struct toml_value* root, struct manifest_diags* diags,
                     struct moat_error* err) WARN_UNUSED;
/* Only the Graphene-era protected files: sgx.protected_files, sgx.protected_mrenclave_files,
 * sgx.protected_mrsigner_files become encrypted fs.mounts entries, sgx.protected_files_key and
 * sgx.insecure__protected_files_key become fs.insecure__keys.default (what `moat run` honours
 * where Gramine ignores them). */
void manifest_migrate_protected(struct toml_value* root, struct manifest_diags* diags);
