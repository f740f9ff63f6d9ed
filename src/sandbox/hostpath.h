/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: every host path `moat run` opens, stats, creates, renames, removes or
 * binds on the app's behalf or for itself goes through here (STYLE.md rule 14, "Boundaries are
 * resolved, not trusted"; the rule and why it is the right one: hostpath.c).
 *
 * In short: the host directories the app can write natively (sgx.allowed_files) are
 * app-controlled, so a path inside one is resolved beneath it with openat2(2)
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS and its last component is never
 * followed; everything else (read-only content laid out by the host's administrator) resolves
 * as the kernel resolves it, symlinks included, as Gramine's PAL opens host paths.
 *
 * Paths may be relative (to the current directory) and are normalized lexically first, as
 * sgx.allowed_files entries are. All functions are thread-safe; they return 0 (or an fd) or a
 * negative errno: -ELOOP when a symlink stands where an app-controlled path needs a file or a
 * directory, -EXDEV when resolution would leave the allowed directory.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common.h"

struct hostpath;

/* The resolver for `allowed` (normalized absolute host paths, as in struct file_policy; copied,
 * so the array need not outlive it). Opens nothing yet: each allowed entry's parent directory is
 * opened at its first use and kept. Never NULL. */
struct hostpath* hostpath_new(char* const* allowed, size_t nallowed);
void hostpath_free(struct hostpath* hp);
static inline void hostpath_freep(struct hostpath** hp) {
    hostpath_free(*hp);
}
#define _cleanup_hostpath_ _cleanup_(hostpath_freep)

/* True if `path` is at or below an allowed entry: its symlinks are the app's, never followed. */
bool hostpath_app_controlled(const struct hostpath* hp, const char* path);

/* True if `st` (a directory reached by a path that is not app-controlled) is one of the
 * allowed directories as they were when `hp` was made: an alias the view must not enter. */
bool hostpath_is_allowed_dir(const struct hostpath* hp, const struct stat* st);

/* open(2) of `path` with `flags` (O_CLOEXEC is added; `mode` matters with O_CREAT). Below an
 * allowed entry the last component is never followed (O_NOFOLLOW; with O_PATH the fd refers
 * to the symlink itself) and no component may be a symlink (-ELOOP). Returns the fd or
 * -errno. */
int hostpath_open(struct hostpath* hp, const char* path, int flags, mode_t mode) WARN_UNUSED;
/* stat(2) outside allowed entries, lstat(2) below them (a symlink there is S_IFLNK). */
int hostpath_stat(struct hostpath* hp, const char* path, struct stat* ret) WARN_UNUSED;
/* The target of the symlink `path` below an allowed entry (malloc'd, in *ret); -EINVAL when it
 * is not a symlink or not app-controlled (moat presents only the app's symlinks as symlinks). */
int hostpath_readlink(struct hostpath* hp, const char* path, char** ret) WARN_UNUSED;
/* The directory holding `path`, resolved as above (O_PATH | O_DIRECTORY), and in *ret_name the
 * last component (malloc'd): for the *at(2) calls that create, remove or rename a name. */
int hostpath_open_parent(struct hostpath* hp, const char* path, char** ret_name) WARN_UNUSED;
int hostpath_mkdir(struct hostpath* hp, const char* path, mode_t mode) WARN_UNUSED;
/* unlink(2), or rmdir(2) with AT_REMOVEDIR in `flags`; a symlink is removed, not followed. */
int hostpath_unlink(struct hostpath* hp, const char* path, int flags) WARN_UNUSED;
/* renameat2(2) with `flags` (RENAME_NOREPLACE, RENAME_EXCHANGE); names, never link targets. */
int hostpath_rename(struct hostpath* hp, const char* from, const char* to,
                    unsigned flags) WARN_UNUSED;
/* chmod(2) / truncate(2) of the file itself: -ELOOP on an app's symlink. */
int hostpath_chmod(struct hostpath* hp, const char* path, mode_t mode) WARN_UNUSED;
int hostpath_truncate(struct hostpath* hp, const char* path, off_t size) WARN_UNUSED;

/* Writes `buf` to `path` atomically: a temporary file created next to it (in the directory
 * hostpath_open_parent resolves) with O_CREAT | O_EXCL | O_NOFOLLOW, written, made `mode`,
 * fsync'ed with `sync`, renamed over `path` (renameat2 replaces a symlink there, never writes
 * through it). Nothing is left behind on failure; the error names the path. `hp` may be NULL:
 * then no path is app-controlled. */
int hostpath_write_atomic(struct hostpath* hp, const char* path, const void* buf, size_t len,
                          mode_t mode, bool sync, struct moat_error* err) WARN_UNUSED;
