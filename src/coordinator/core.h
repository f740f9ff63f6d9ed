/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Coordinator's core without transport (reference/marblerun.md §3, §4.3; MarbleRun's
 * coordinator/core/core.go and marbleapi.go): the state machine, SetManifest and a Marble's
 * Activate. The gRPC and HTTP layers call these and map coord_status to the wire.
 *
 * Persistence (§3.4) goes through store.h. Keys: "state" (decimal), "manifest" (raw, byte-exact),
 * "certificate:{coordinatorRootCert,coordinatorIntermediateCert,marbleRootCert}" (DER),
 * "privateKey:{coordinatorRootKey,coordinatorIntermediateKey}" (PKCS#8, not MarbleRun's SEC1),
 * "rootSecret", "previousRootSecret", "secret:<n>" (JSON {Type, Cert, Private, Public}, bytes
 * base64) and "activations:<type>" (hex counter), as MarbleRun names them.
 *
 * Thread safety: every call takes the core's mutex around what reads or changes the state;
 * activations run concurrently otherwise only in the transport.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct collateral;
struct attest_verify_opts;

/* §3.2 coordinator/state/state.go, values as MarbleRun stores them. */
enum coord_state {
    COORD_STATE_UNINITIALIZED      = 0,
    COORD_STATE_RECOVERY           = 1,
    COORD_STATE_ACCEPTING_MANIFEST = 2,
    COORD_STATE_ACCEPTING_MARBLES  = 3,
};

/* §3.2 the exact status messages ("" for Uninitialized). */
const char* coord_state_message(enum coord_state s);

/* gRPC status codes (the numeric values of google.golang.org/grpc/codes). */
enum coord_status {
    COORD_STATUS_OK                  = 0,
    COORD_STATUS_INVALID_ARGUMENT    = 3,
    COORD_STATUS_PERMISSION_DENIED   = 7,
    COORD_STATUS_FAILED_PRECONDITION = 9,
    COORD_STATUS_INTERNAL            = 13,
    COORD_STATUS_UNAUTHENTICATED     = 16,
};
const char* coord_status_name(enum coord_status s);

struct coord_core_opts {
    const char* seal_dir;         /* NULL: state in memory only */
    const uint8_t* seal_key;      /* 32 bytes; NULL: SealMode "Disabled" (nothing written) */
    const char* seal_key_info;    /* recorded in sealed_key; NULL: "moat-seal-v1" */
    const char* const* dns_names; /* NULL-terminated; NULL: {"localhost"} */
    /* §6: the Coordinator has no quote of its own, so Marble quotes are not validated at all
     * (MarbleRun's inSimulationMode). Logged as a warning at creation. */
    bool simulation;
    /* Otherwise: what marble_quote_validate needs (borrowed; must outlive the core). */
    const struct collateral* collateral;
    const struct attest_verify_opts* verify_opts;
};

struct coord_core;

/* Creates the core (NewCore, §3.2): loads the store. A state: restores the manifest, CA, root and
 * shared secrets. A state that cannot be unsealed: a temporary CA, state Recovery. Nothing:
 * a new CA and root secret, state AcceptingManifest, committed. Returns 0, -EINVAL (bad
 * options: no verifier outside simulation), -EBADMSG (a state that unseals but is corrupt) or
 * I/O errors, with err set. */
int coord_core_new(const struct coord_core_opts* opts, struct coord_core** ret,
                   struct moat_error* err) WARN_UNUSED;
void coord_core_free(struct coord_core* c);
static inline void coord_core_freep(struct coord_core** c) {
    coord_core_free(*c);
}
#define _cleanup_coord_core_ _cleanup_(coord_core_freep)

enum coord_state coord_core_state(struct coord_core* c);
/* The Coordinator root certificate (DER; free with OPENSSL_free), for /quote and the client
 * API. */
int coord_core_root_cert(struct coord_core* c, uint8_t** ret, size_t* ret_len) WARN_UNUSED;

/* The response of SetManifest: RecoveryKeys name → base64 of the encrypted secret. */
struct coord_recovery_secrets {
    size_t n;
    char** names;
    char** secrets_b64;
};
void coord_recovery_secrets_clear(struct coord_recovery_secrets* rs);

/* SetManifest (§3.2, §1.7, §3.6): needs AcceptingManifest or Recovery, else -EPERM "server is
 * not in expected state". Parses and checks the manifest (-EINVAL with MarbleRun's message,
 * wrapped as clientapi does: "checking manifest: ", "generating secrets from manifest: ",
 * "running manifest template dry run: "), runs the TemplateDryRun, keeps it byte-exact, generates
 * the shared secrets and the DEK for the RecoveryKeys, moves to AcceptingMarbles and commits it all
 * in one transaction. ret_recovery may be NULL. */
int coord_core_set_manifest(struct coord_core* c, const void* raw, size_t len,
                            struct coord_recovery_secrets* ret_recovery,
                            struct moat_error* err) WARN_UNUSED;

/* rpc.Parameters: Files path → bytes, Env name → bytes (both sorted by name), Argv. */
struct coord_param {
    char* name;
    uint8_t* data; /* NUL after len for convenience; wiped when cleared */
    size_t len;
};
struct coord_params {
    size_t n_files;
    struct coord_param* files;
    size_t n_env;
    struct coord_param* env;
    size_t argc;
    char** argv;
};
void coord_params_clear(struct coord_params* p);
const struct coord_param* coord_params_file(const struct coord_params* p, const char* name);
const struct coord_param* coord_params_env(const struct coord_params* p, const char* name);

/* Activate (§4.3). `quote` is the OpenEnclave remote report (may be empty in simulation),
 * `csr` the DER CSR, `peer_cert` the Marble's TLS client certificate (DER; NULL:
 * Unauthenticated "couldn't get marble TLS certificate"). Returns 0 with *ret_status OK and
 * *ret_params filled, or a negative code with *ret_status the gRPC code and err holding
 * MarbleRun's message ("marble verification failed: ...", "invalid UUID: ...",
 * "generating marble authentication secrets: ...", "customizing marble parameters: ..."). */
int coord_core_activate(struct coord_core* c, const uint8_t* quote, size_t quote_len,
                        const uint8_t* csr, size_t csr_len, const char* marble_type,
                        const char* uuid, const uint8_t* peer_cert, size_t peer_cert_len,
                        struct coord_params* ret_params, enum coord_status* ret_status,
                        struct moat_error* err) WARN_UNUSED;

/* ---- recovery (core_recover.c; reference/marblerun.md §3.4 "DEK and recovery keys") ------- */

/* GET /api/v2/recover/public-key: the Coordinator's ephemeral RSA-4096 key for encrypting
 * recovery secrets (generated on first use, in memory only, until the recovery ends), as DER
 * SubjectPublicKeyInfo; free *ret_der with OPENSSL_free. Needs Recovery, else -EPERM "server is
 * not in expected state"; -EIO when the key cannot be generated. */
int coord_core_recovery_public_key(struct coord_core* c, uint8_t** ret_der, size_t* ret_len,
                                   struct moat_error* err) WARN_UNUSED;

/* POST /api/v2/recover (MarbleRun's clientapi.Recover). `secret` is a RecoverySecret its owner
 * decrypted (the DEK, an XOR share or a Shamir share: 32 or 33 bytes, 16 for a legacy DEK); any
 * other length is taken as encrypted for the ephemeral key (RSA-OAEP SHA-256) and decrypted
 * first. `sig` is its owner's RSASSA-PKCS1-v1_5 SHA-256 signature over the decrypted secret.
 *
 * Shares are collected until they give a DEK that decrypts the sealed state; then the
 * signatures must match the sealed manifest's RecoveryKeys: one per key, or exactly threshold
 * many for a Shamir split, each secret signed by a different key. Only then is the state loaded
 * (the temporary CA is dropped), the DEK re-sealed with the current seal key and the state
 * made the stored one (normally AcceptingMarbles).
 *
 * Returns 0 with *ret_remaining the number of secrets still needed and *ret_message (malloc'd)
 * MarbleRun's "Secret was processed successfully. Upload the next secret. Remaining secrets: n"
 * or "Recovery successful.". Errors: -EPERM "server is not in expected state" outside
 * Recovery; -EINVAL for a secret that cannot be decrypted, is not one of the state's (or came
 * twice), or does not decrypt the state; -EPERM for signatures that do not match the
 * RecoveryKeys ("recovery keys in manifest do not match the keys used for recovery: expected
 * n, got m", "no matching recovery key found for recovery public key \"name\""). After a
 * failure once all secrets were in, the secrets must be uploaded again. A failed attempt never
 * writes the sealed files; the outputs are written only on success. */
int coord_core_recover(struct coord_core* c, const uint8_t* secret, size_t len, const uint8_t* sig,
                       size_t sig_len, size_t* ret_remaining, char** ret_message,
                       struct moat_error* err) WARN_UNUSED;
/* ---- end of recovery ---------------------------------------------------------------------- */
