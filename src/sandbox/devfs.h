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
 *   attestation_type       "dcap" with sgx.remote_attestation = "dcap" and a provider, else
 *                          "none"
 *   user_report_data       64 bytes, target_info 512 (shorter writes zero-padded): kept per
 *                          process of the app, for its report and quote
 *   my_target_info         the app's 512-byte TARGETINFO
 *   report                 432 bytes: the app's report body with its user_report_data, a key
 *                          ID and a MAC with no hardware key behind it
 *   quote                  (sgx.remote_attestation = "dcap" only) the provider's quote for
 *                          the process's user_report_data; EACCES with a log line when there
 *                          is none
 *
 * Keys are shared by all processes of the app (Gramine's are per process and inherited by
 * children): encrypted files opened after the write use the key.
 */
#pragma once

#include "provider.h"
#include "sandbox.h"

struct devfs;
struct encfs;

/* `provider` (may be NULL: none) makes the quotes, of `id`, whose MRENCLAVE is the measurement
 * of `manifest` — taken at the first report, quote or sealing key unless `measured`; the quote
 * file exists only with `remote_dcap` (sgx.remote_attestation = "dcap"). The provider and the
 * manifest bytes must outlive the devfs. */
struct devfs* devfs_new(struct encfs* keys, struct attest_provider* provider,
                        const struct attest_identity* id, bool measured, const char* manifest,
                        size_t manifest_len, bool remote_dcap, struct moat_error* err);
/* A quote of the app over `report_data` from the provider (as /dev/attestation/quote makes it);
 * /dev/amber asks for one per token. Thread-safe. -EACCES (err says why) when there is none. */
int devfs_quote(struct devfs* d, const uint8_t report_data[64], uint8_t** ret_quote,
                size_t* ret_len, struct moat_error* err) WARN_UNUSED;
/* Whether the provider's quotes are a confidential VM's (TDX: SHA-512 report-data binding). */
bool devfs_quote_is_vm(const struct devfs* d);
/* Whether they are the SIMULATED platform's (proving nothing about hardware). */
bool devfs_quote_is_simulated(const struct devfs* d);
/* The sandbox's init (moat's pid namespace): the per-process state finds a thread's process
 * through it. */
void devfs_set_sandbox(struct devfs* d, pid_t init);
/* The owner /dev/attestation's files are reported with: the app's user (loader.uid/gid) as the
 * connection's user namespace sees it (as fusefs_set_owner). */
void devfs_set_owner(struct devfs* d, uid_t uid, gid_t gid);
/* Serves the FUSE connection `fuse_fd` (mounted by the sandbox child; taken over) on a thread
 * of its own until the connection ends. */
int devfs_start(struct devfs* d, int fuse_fd, struct moat_error* err) WARN_UNUSED;
/* Waits for the thread to end (the connection must be ending or never started). */
void devfs_wait(struct devfs* d);
void devfs_free(struct devfs* d);
