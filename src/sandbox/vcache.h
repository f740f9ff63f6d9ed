/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: the verify cache (vcache.c), verdicts on trusted files that last across
 * runs while the kernel guarantees the file is unchanged (issue 15, docs/security.md "The
 * verify cache").
 *
 * An entry says "the file with this identity had this SHA-256": the identity is (device,
 * inode, generation, birth time, size, mtime, ctime, all in nanoseconds) read with statx on an
 * open descriptor, and only on local file systems whose metadata the kernel keeps (ext4, xfs,
 * btrfs, tmpfs, overlayfs; never FUSE or network file systems). ctime changes on every write,
 * truncate, rename over, chmod or utimes and cannot be set from userspace, so a file whose
 * identity is unchanged has unchanged bytes. Entries live in a private directory that does not
 * survive a reboot ($XDG_RUNTIME_DIR/moat/verified, else /run/moat/verified as root; mode 0700,
 * owned by the user, refused otherwise), one file per (device, inode), written atomically. A
 * missing, corrupt, foreign or stale entry means the file is hashed.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "sandbox.h"

struct vcache;

/* What identifies one state of a file's bytes (all fields 64-bit: no padding, memcmp works). */
struct vcache_key {
    uint64_t fstype, dev_major, dev_minor, ino, generation, size;
    int64_t mtime_s, mtime_ns, ctime_s, ctime_ns, btime_s, btime_ns;
};

/* Opens (creating it) the cache directory. NULL with `err` set when there is none to use:
 * $XDG_RUNTIME_DIR unset (not root), or a directory that is not private to this user. */
struct vcache* vcache_open(struct moat_error* err);
void vcache_free(struct vcache* c);

/* The identity of the open file `fd`. 0, or -1 with *ret_why saying why it cannot be cached
 * (not on a local file system). */
int vcache_key_of(int fd, struct vcache_key* ret, const char** ret_why);
/* True if a verdict on the bytes read from `fd` from now on may be stored under `k`: its ctime
 * is at least a second old (a later write gets a different one, whatever the timestamp
 * granularity) and, where the kernel lets us ask (a read lease: root or the file's owner),
 * nobody has it open for writing (a shared writable mapping could change it without touching
 * ctime). Else false with *why set. */
bool vcache_settled(int fd, const struct vcache_key* k, const char** why);
/* The SHA-256 stored for `k`: true and *digest set, or false with *why set. */
bool vcache_lookup(struct vcache* c, const struct vcache_key* k, uint8_t digest[32],
                   const char** why);
/* Records `digest` for `k` (best effort: a failure only costs a hash next time). */
void vcache_store(struct vcache* c, const struct vcache_key* k, const uint8_t digest[32]);
