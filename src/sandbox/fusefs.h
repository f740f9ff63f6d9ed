/* SPDX-License-Identifier: Apache-2.0 */
/* Component-private: the FUSE view of the app's chroot mounts (fusefs.c). */
#pragma once

#include "sandbox.h"

struct fusefs;

/* The view over `plan` with `policy`; both must outlive it. */
struct fusefs* fusefs_new(const struct mount_plan* plan, const struct file_policy* policy);
/* Serves the FUSE connection `fuse_fd` (already mounted by the sandbox child) until it is
 * unmounted or fusefs_stop() is called. Multi-threaded. */
int fusefs_serve(struct fusefs* fs, int fuse_fd, struct moat_error* err) WARN_UNUSED;
void fusefs_stop(struct fusefs* fs);
/* --learn: record every file the app opens or creates. */
void fusefs_set_learn(struct fusefs* fs, bool on);
/* Writes the recorded files as sgx.trusted_files / sgx.allowed_files arrays (read-only use
 * vs. written), atomically. */
int fusefs_write_learned(struct fusefs* fs, const char* path, struct moat_error* err) WARN_UNUSED;
void fusefs_free(struct fusefs* fs);
