/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: files of `type = "encrypted"` mounts (encfs.c), in Gramine's encrypted
 * format (src/pf), served by the FUSE view. All opens of a file share one encfile, so every
 * process of the app sees the same content. Failures reach the app as EACCES, with Gramine's
 * log lines ("pf_open failed: Invalid path", "key 'x' is not set").
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "sandbox.h"

struct encfs;
struct encfile;

struct encfs* encfs_new(void);
void encfs_free(struct encfs* e);
/* fs.insecure__keys.<name>, or a key set at run time (thread-safe, as the rest). */
void encfs_set_key(struct encfs* e, const char* name, const uint8_t key[16]);
/* Host files are opened, created and removed through `hp` (hostpath.h; must outlive e). */
struct hostpath;
void encfs_set_hostpath(struct encfs* e, struct hostpath* hp);
/* Makes a key name known without a key (a mount's key_name): /dev/attestation/keys lists it
 * and a write there sets it. */
void encfs_declare_key(struct encfs* e, const char* name);
/* 1 and the key in ret when set, 0 when known but unset, -ENOENT when unknown. */
int encfs_get_key(struct encfs* e, const char* name, uint8_t ret[16]);
/* The i-th known key name (malloc'd), or NULL past the end. */
char* encfs_key_name(struct encfs* e, size_t i);
/* Takes fs.insecure__keys from the manifest model (decoded and checked there). */
void encfs_load_keys(struct encfs* e, const struct manifest* m);

/* Opens (or with `create`, creates) the encrypted file at `host`, bound to `bind` (the
 * normalized host path as the mount URI gives it), with the mount's key; with the mount's
 * enable_recovery, flushes keep undo records in <host>.gramine.recovery and an interrupted
 * flush is rolled back at the next open. -EACCES (logged) when it cannot be opened, -errno for
 * host errors. */
int encfile_open(struct encfs* e, const struct mount_entry* m, const char* host, const char* bind,
                 bool create, struct encfile** ret) WARN_UNUSED;
bool encfile_writable(const struct encfile* f);
uint64_t encfile_size(struct encfile* f);
int encfile_read(struct encfile* f, off_t off, size_t size, char* out, size_t* ret_len);
/* Large writes are queued and applied by a thread of the file's own (write-behind): every
 * other call waits for them first, and a failure among them is returned by the next write,
 * flush or close. */
int encfile_write(struct encfile* f, off_t off, size_t size, const char* in);
int encfile_set_size(struct encfile* f, uint64_t size);
int encfile_rename(struct encfile* f, const char* new_bind);
/* After the host file was renamed: its recovery file follows. */
void encfile_moved(struct encfile* f, const char* new_host);
int encfile_flush(struct encfile* f);
/* Flushes and closes; -EACCES (logged) when the flush failed. */
int encfile_close(struct encfile* f);
/* The plaintext size of a closed encrypted file, or -errno (stat of a file not open). */
int encfile_peek_size(struct encfs* e, const struct mount_entry* m, const char* host,
                      const char* bind, uint64_t* ret);
