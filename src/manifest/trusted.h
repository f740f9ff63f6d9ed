/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sgx.trusted_files expansion and hashing, exactly as gramine-manifest / gramine-sgx-sign do
 * it (reference/gramine.md §3): directory URIs (trailing '/') expanded recursively in sorted
 * order, non-regular and unreadable entries skipped, symlinked directories not followed,
 * existing sha256 values kept, duplicates merged, lowercase hex.
 */
#pragma once

#include <stdbool.h>

#include "common.h"
#include "toml.h"

struct trusted_opts {
    const char* chroot; /* --chroot DIR: hash DIR/<abs path>, resolve symlinks inside DIR */
    int threads;        /* 0 ⇒ all cores */
    bool progress;      /* show a progress bar on stderr if it is a TTY and hashing > 1 s */
};

/* Rewrites root's sgx.trusted_files array into fully expanded, hashed {uri, sha256} tables,
 * and hashes loader.entrypoint.uri into loader.entrypoint.sha256 when that is missing. Errors
 * name the URI ("Missing trusted file: 'x'", "Directory URI ('x') does not end with \"/\"").
 */
int manifest_expand_trusted_files(struct toml_value* root, const struct trusted_opts* opts,
                                  struct moat_error* err) WARN_UNUSED;

/* Hashes a list of host paths in parallel. hex_out[i] receives the lowercase hex of paths[i]
 * (SHA256_HEX_SIZE bytes each). Returns 0 or the first error (naming the path). */
int hash_files_parallel(const char* const* paths, size_t n, char (*hex_out)[SHA256_HEX_SIZE],
                        const struct trusted_opts* opts, struct moat_error* err) WARN_UNUSED;
