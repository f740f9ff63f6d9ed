/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: verification of trusted files (verify.c), shared by every FUSE node
 * that names the same host file.
 *
 * A trusted file is hashed once, at its first open (reference/gramine.md §6: SHA-256 of the
 * whole file against sgx.trusted_files), or earlier by the prefetcher, which hashes the files
 * the previous run of the same manifest opened, in that order, on another core while the
 * sandbox starts; its results are compared with the manifest when the app opens the file. What
 * the app reads is always verified bytes: files up to a size limit are copied into a sealed
 * memfd while they are hashed; larger ones keep an AES-GMAC tag per 16 KiB chunk and every
 * chunk is re-read and re-checked when it is served. A file the verify cache (vcache.h) knows
 * unchanged since an earlier run is read the same way but not hashed.
 */
#pragma once

#include <sys/types.h>

#include "sandbox.h"

struct verifier;
struct prefetched;

struct vfile {
    uint8_t state;          /* VF_* */
    off_t size;             /* verified size */
    int copy;               /* sealed memfd holding the verified bytes, or -1 */
    int32_t backing_id;     /* the copy registered for FUSE passthrough (0: none) */
    uint8_t (*chunks)[16];  /* chunk tags when there is no copy */
    uint32_t tag_id;        /* the chunk tags' IV prefix, unique per hashing */
    uint32_t order;         /* 1 + rank of the app's first open (0: not opened by the app) */
    struct prefetched* pre; /* the prefetcher's work on this file, if it has any */
};
enum { VF_UNCHECKED, VF_OK, VF_BAD };

/* `copy_max`: largest file kept as a verified copy. */
struct verifier* verifier_new(size_t copy_max);
/* Starts hashing, in the background, the files listed in `order_file` (host paths, one a line,
 * as written by verifier_save_order). A missing or unreadable list is not an error. */
void verifier_prefetch(struct verifier* v, const char* order_file);
/* Takes verdicts from, and stores them in, the verify cache (vcache.h) unless `on` is false
 * or there is no private runtime directory (logged); before verifier_prefetch. */
void verifier_use_cache(struct verifier* v, bool on);
/* The manifest's trusted files (`policy` must outlive the verifier); before verifier_open. */
void verifier_set_policy(struct verifier* v, const struct file_policy* policy);
/* Verifies `t` unless done (using or waiting for the prefetcher's hash) and marks it used by
 * the app. 0 with *ret set, -EPERM on a hash mismatch (logged with Gramine's message), or a
 * negative errno. */
int verifier_open(struct verifier* v, const struct trusted_entry* t, struct vfile** ret);
/* Reads [off, off+size) of a verified file: from its copy, or from `host_fd` with every
 * covering chunk re-checked (-EPERM, logged, when the host file changed). */
int verifier_read(struct verifier* v, const struct vfile* f, const struct trusted_entry* t,
                  int host_fd, off_t off, size_t size, char* out, size_t* ret_len);
/* Runs `fn` on f under the file's lock (used to register the copy for passthrough once). */
void verifier_locked(struct verifier* v, const struct vfile* f, void (*fn)(void*, struct vfile*),
                     void* arg);
/* Stops the prefetcher (it finishes the file it is on). */
void verifier_stop(struct verifier* v);
/* Writes the trusted files the app opened, in first-open order, for the next run (nothing
 * when that order is what the run started from). */
int verifier_save_order(struct verifier* v, const char* order_file,
                        struct moat_error* err) WARN_UNUSED;
/* Statistics for loader.log_level = "debug". */
void verifier_stats(const struct verifier* v, size_t* hashed, size_t* prefetched, double* hash_ms,
                    double* wait_ms);
void verifier_free(struct verifier* v);
