/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Component-private: /dev/attestation in the sandbox (devfs.c), a FUSE connection of its own
 * with Gramine's pseudo-file semantics (reference/gramine.md §5): a file's content is made
 * when it is opened and read from that snapshot; every write() is taken whole and replaces it.
 *
 *   keys/<name>            one entry per known key name (fs.insecure__keys, the key_name of
 *                          every encrypted mount): reads 16 raw bytes, or nothing while unset;
 *                          a single 16-byte write sets it (any other size: EACCES); names
 *                          beginning with '_' are read-only
 *   protected_files_key    Graphene's form: a write of 32 hex digits sets key "default";
 *                          reads the key in hex, or nothing while unset
 *
 * Keys are shared by all processes of the app (Gramine's are per process and inherited by
 * children): encrypted files opened after the write use the key.
 */
#pragma once

#include "sandbox.h"

struct devfs;
struct encfs;

struct devfs* devfs_new(struct encfs* keys, struct moat_error* err);
/* Serves the FUSE connection `fuse_fd` (mounted by the sandbox child; taken over) on a thread
 * of its own until the connection ends. */
int devfs_start(struct devfs* d, int fuse_fd, struct moat_error* err) WARN_UNUSED;
/* Waits for the thread to end (the connection must be ending or never started). */
void devfs_wait(struct devfs* d);
void devfs_free(struct devfs* d);
