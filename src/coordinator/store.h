/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Coordinator's state store (reference/marblerun.md §3.4): a key → bytes map with
 * transactions. Each commit writes the whole map, sealed, to the seal directory:
 *
 *   sealed_data  u32le len(recovery data) ‖ recovery data ‖ AES-256-GCM(DEK, JSON state)
 *                (nonce 12 ‖ ciphertext ‖ tag 16, no AAD; the JSON maps keys to base64 values)
 *   sealed_key   u32le len(keyinfo) ‖ keyinfo ‖ AES-256-GCM(seal key, DEK)
 *                with AAD = sha256(sealed_data)
 *
 * the layout of MarbleRun's stdstore and ego's sealing. The seal key is moat's sealing key for
 * the manifest's SealMode (MRSIGNER / MRENCLAVE), given by the caller; without one (SealMode
 * "Disabled") the state lives in memory only.
 *
 * Crash safety: each file is replaced atomically (temporary file, fsync, the old one kept as
 * *.old, rename, fsync of the directory), sealed_data before sealed_key; the rename of
 * sealed_key is the commit point. sealed_key authenticates the sealed_data it belongs to, so on
 * load the newest pair that verifies is the last committed state: a kill -9 at any point
 * restarts into it, never into a torn one.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define STORE_KEY_SIZE 32
/* MarbleRun's DEKs before v1.9 (AES-128-GCM), accepted from recovery (§3.4). */
#define STORE_LEGACY_KEY_SIZE 16

struct store;
struct store_txn;

/* A store for `dir` (created 0700 if missing); NULL: in memory only. */
struct store* store_new(const char* dir);
void store_free(struct store* s);

/* The key the DEK is sealed with, and what sealed_key records about it (e.g.
 * "moat-seal-v1 mrsigner"); NULL key: nothing is written (SealMode "Disabled"). */
void store_set_seal_key(struct store* s, const uint8_t key[STORE_KEY_SIZE], const char* keyinfo);
/* A second key (MarbleRun's SealMode: store_set_seal_key's is the ProductKey, this one the
 * UniqueKey). store_load tries both. */
void store_set_other_seal_key(struct store* s, const uint8_t key[STORE_KEY_SIZE],
                              const char* keyinfo);
/* Which key seals the next commits: the first (`other` false) or the second; `disabled`: none,
 * commits are kept in memory only (SealMode Disabled). -ENOKEY when the chosen key was never
 * set while the other was (nothing changes). */
int store_select_seal_key(struct store* s, bool other, bool disabled) WARN_UNUSED;
/* Would store_select_seal_key(s, other, false) succeed? */
bool store_can_select_seal_key(const struct store* s, bool other);
/* The data encryption key (a new manifest, or a recovered one) and the recovery data written in
 * front of the state (JSON; NULL: "null"). */
void store_set_dek(struct store* s, const uint8_t dek[STORE_KEY_SIZE]);
void store_set_recovery_data(struct store* s, const char* json);
bool store_has_dek(const struct store* s);

/* Loads the last committed state with the seal key. 0: loaded; -ENOENT: nothing was ever
 * committed here; -EBADMSG: there is a state but it cannot be unsealed (another machine or
 * identity, or tampered: the Coordinator goes to recovery); other -errno for I/O. */
int store_load(struct store* s, struct moat_error* err) WARN_UNUSED;
/* Loads the sealed state on disk with a DEK from recovery (the seal key is not used; the files
 * are only read). dek_len is STORE_KEY_SIZE or STORE_LEGACY_KEY_SIZE. 0, or -EBADMSG when the
 * DEK does not decrypt it, -ENOENT when there is none. On success the DEK and the state's
 * recovery data are the store's (store_reseal writes them with the current seal key). */
int store_load_with_dek(struct store* s, const uint8_t* dek, size_t dek_len,
                        struct moat_error* err) WARN_UNUSED;
/* Forgets a loaded state (map, DEK, recovery data), e.g. one a recovery then rejected. The
 * files are not touched. */
void store_unload(struct store* s);
/* Writes the loaded state again with its DEK and the current seal key (after a recovery, so a
 * restart unseals it without another one). A no-op without a seal directory or key. */
int store_reseal(struct store* s, struct moat_error* err) WARN_UNUSED;
/* The recovery data of the sealed state on disk (malloc'd, "null" when none), for recovery. */
int store_read_recovery_data(struct store* s, char** ret, struct moat_error* err) WARN_UNUSED;

/* Reads a committed value. 0 and a pointer into the store (valid until the next commit), or
 * -ENOENT. */
int store_get(struct store* s, const char* key, const uint8_t** ret, size_t* ret_len) WARN_UNUSED;

/* Transactions: one at a time (store_begin waits for the previous one to end). Reads see the
 * transaction's own writes. */
struct store_txn* store_begin(struct store* s);
int txn_get(struct store_txn* t, const char* key, const uint8_t** ret, size_t* ret_len) WARN_UNUSED;
void txn_put(struct store_txn* t, const char* key, const void* val, size_t len);
void txn_delete(struct store_txn* t, const char* key);
/* Calls fn for each key with `prefix`, in key order, as the transaction sees them; stops at a
 * non-zero return and returns it. */
int txn_iterate(struct store_txn* t, const char* prefix,
                int (*fn)(const char* key, const uint8_t* val, size_t len, void* ctx), void* ctx);
/* Makes the transaction's writes the store's, durably when a seal directory and key are set.
 * On failure nothing changes (the transaction is ended either way). */
int store_commit(struct store_txn* t, struct moat_error* err) WARN_UNUSED;
void store_rollback(struct store_txn* t);
/* The DEK and recovery data in use, to put them back when a commit under new ones fails
 * (a manifest update that changes the RecoveryKeys). */
void store_get_dek(const struct store* s, uint8_t ret[STORE_KEY_SIZE]);
const char* store_recovery_data(const struct store* s);
