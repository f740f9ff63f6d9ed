/* SPDX-License-Identifier: Apache-2.0 */
/* Component-private: the FUSE view of the app's chroot mounts (fusefs.c). */
#pragma once

#include "sandbox.h"

struct fusefs;
struct verifier;

/* The view over `plan` with `policy`, verifying trusted files with `verifier`; all must
 * outlive it. Its worker threads start at once and wait for fusefs_start(). */
struct fusefs* fusefs_new(const struct mount_plan* plan, const struct file_policy* policy,
                          struct verifier* verifier, struct moat_error* err);
/* Serves the FUSE connection `fuse_fd` (already mounted by the sandbox child; taken over) on
 * the workers until it ends, when the sandbox's mount namespace is gone. */
int fusefs_start(struct fusefs* fs, int fuse_fd, struct moat_error* err) WARN_UNUSED;
/* Waits for the workers to end (the connection must be ending or never started). */
void fusefs_wait(struct fusefs* fs);
void fusefs_stop(struct fusefs* fs);
/* The keys of encrypted mounts (must outlive the view). */
struct encfs;
void fusefs_set_encfs(struct fusefs* fs, struct encfs* e);
/* --learn: record every file the app opens or creates. */
void fusefs_set_learn(struct fusefs* fs, bool on);
/* Files of moat's own host uid/gid (and synthetic directories) are reported as owned by
 * uid/gid, the app's user (loader.uid/gid) as the FUSE connection's user namespace sees it.
 * `foreign_unmapped`: the connection's user namespace maps moat's own ids only (moat runs as an
 * ordinary user), so other host ids are reported as ids that map to nothing there. */
void fusefs_set_owner(struct fusefs* fs, uid_t uid, gid_t gid, bool foreign_unmapped);
/* Writes the recorded files as sgx.trusted_files / sgx.allowed_files arrays (read-only use
 * vs. written), atomically. */
int fusefs_write_learned(struct fusefs* fs, const char* path, struct moat_error* err) WARN_UNUSED;
void fusefs_free(struct fusefs* fs);
