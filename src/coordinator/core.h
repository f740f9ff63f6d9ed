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
    const char* seal_dir;      /* NULL: state in memory only */
    const uint8_t* seal_key;   /* 32 bytes; NULL: SealMode "Disabled" (nothing written) */
    const char* seal_key_info; /* recorded in sealed_key; NULL: "moat-seal-v1" */
    /* The key for a manifest's SealMode "UniqueKey" (bound to this exact Coordinator build,
     * where seal_key is the product key, MarbleRun's default); NULL: such manifests are
     * refused. A state sealed with either key loads. */
    const uint8_t* unique_seal_key;
    const char* unique_seal_key_info;
    const char* const* dns_names; /* NULL-terminated; NULL: {"localhost"} */
    /* §6: the Coordinator has no quote of its own, so Marble quotes are not validated at all
     * (MarbleRun's inSimulationMode). Logged as a warning at creation. */
    bool simulation;
    /* Otherwise: what marble_quote_validate needs (borrowed; must outlive the core). */
    const struct collateral* collateral;
    const struct attest_verify_opts* verify_opts;
    /* Collateral per quote instead of `collateral` (a PCCS: the TCB info depends on the
     * platform's FMSPC and the PCK CRL on its CA). Given the quote without the OpenEnclave
     * header; returns a collateral valid until the core is freed, or an error that refuses the
     * quote ("invalid quote: ..."). Called from several threads at once. */
    int (*collateral_for_quote)(void* ctx, const uint8_t* quote, size_t len,
                                const struct collateral** ret, struct moat_error* err);
    void* collateral_ctx;
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

/* ---------------------------------------------------------------------------------------- */
/* What the listeners and GET endpoints read (core_server.c)                                  */

/* The certificate and key a listener presents (§3.3): the client API the root, the Marble API
 * (mesh) the marble root with the intermediate key. References the caller frees (X509_free,
 * EVP_PKEY_free). */
struct x509_st;
struct evp_pkey_st;
int coord_core_tls_credentials(struct coord_core* c, bool mesh, struct x509_st** ret_cert,
                               struct evp_pkey_st** ret_key) WARN_UNUSED;
/* GET /quote's "cert": PEM of the intermediate, then the root (malloc'd). */
int coord_core_cert_chain_pem(struct coord_core* c, char** ret, size_t* ret_len) WARN_UNUSED;

/* GET /manifest: the raw manifest, its fingerprint (hex sha256) and the root key's ECDSA
 * signature over sha256(raw) (DER). All empty (raw NULL) before a manifest is set. */
struct coord_manifest_info {
    uint8_t* raw;
    size_t raw_len;
    char fingerprint[SHA256_HEX_SIZE];
    uint8_t* signature;
    size_t signature_len;
};
int coord_core_manifest_info(struct coord_core* c, struct coord_manifest_info* ret) WARN_UNUSED;
void coord_manifest_info_clear(struct coord_manifest_info* i);
/* Manifest updates (core_update.c; reference/marblerun.md §1.8, §3.4 updateLog, §3.6)       */

/* GET /update: the update log, one line per entry as MarbleRun's updatelog writes them (JSON
 * objects {"time": RFC 3339 UTC with milliseconds, "update": message, fields...}, e.g.
 * {"time":"…","update":"SecurityVersion increased","user":"admin","package":"frontend",
 * "new version":5}). Needs AcceptingMarbles (-EPERM "server is not in expected state").
 * *ret_lines is a NULL-terminated malloc'd vector of malloc'd strings. */
int coord_core_update_log(struct coord_core* c, char*** ret_lines, size_t* ret_n,
                          struct moat_error* err) WARN_UNUSED;

struct coord_update_result {
    bool applied;           /* the update took effect now */
    uint64_t missing_acks;  /* full update still pending: acknowledgements missing */
    size_t n_missing_users; /* users with updatemanifest who have not acknowledged, sorted */
    char** missing_users;
    struct coord_recovery_secrets recovery; /* new RecoverySecrets (n == 0 if unchanged) */
    char* message;                          /* update-manifest responses; may be NULL */
};
void coord_update_result_clear(struct coord_update_result* r);

/* POST /update by the authenticated `user` (§1.8). A package update (coord_manifest_is_update)
 * needs updatesecurityversion on every listed package, passes CheckUpdate and is applied at
 * once: new SecurityVersions, a new intermediate CA and marble root, shared cert secrets
 * regenerated, the raw manifest unchanged. A full update needs updatemanifest, passes Check and
 * becomes the pending update, acknowledged by the submitter; it is applied when UpdateThreshold
 * users (0: all users with updatemanifest) acknowledged it. Errors: -EPERM "server is not in
 * expected state"; -EACCES "user <u> is not allowed to update one or more packages of [a b]" /
 * "user <u> is not allowed to update the complete manifest"; -EINVAL "unmarshaling update
 * manifest: …", "checking update manifest: …", "invalid manifest: …" (and errors of the apply
 * step: "generating secrets from manifest: …", "running manifest template dry run: …"); -EBUSY
 * "update already in progress. Acknowledge the update to apply it, or cancel it to start a new
 * one". `ret` is filled on success only. */
int coord_core_update_manifest(struct coord_core* c, const char* user, const void* raw, size_t len,
                               struct coord_update_result* ret, struct moat_error* err) WARN_UNUSED;
/* GET /update-manifest: the pending manifest (malloc'd), a message and the missing users; or
 * -ENOENT "no update in progress". */
int coord_core_pending_update(struct coord_core* c, uint8_t** ret_raw, size_t* ret_len,
                              struct coord_update_result* ret, struct moat_error* err) WARN_UNUSED;
/* POST /update-manifest: `user` acknowledges; `raw` must equal the pending manifest
 * byte-exact. Applies the update when the acknowledgements are complete. Errors: -ENOENT "no
 * update in progress"; -EACCES "user <u> is not allowed to acknowledge manifest updates";
 * -EINVAL "provided manifest does not match the pending manifest"; apply errors as above (the
 * pending update is then cancelled, as MarbleRun does). */
int coord_core_ack_update(struct coord_core* c, const char* user, const void* raw, size_t len,
                          struct coord_update_result* ret, struct moat_error* err) WARN_UNUSED;
/* POST /update-cancel: -EACCES "user <u> is not allowed to cancel the manifest update",
 * -ENOENT "no update in progress". */
int coord_core_cancel_update(struct coord_core* c, const char* user,
                             struct moat_error* err) WARN_UNUSED;
/* Changes whenever the intermediate / marble root changes: the server swaps its mesh TLS
 * credentials when it sees a new value. */
uint64_t coord_core_ca_generation(struct coord_core* c);
/* ======================================================================================== */
/* Users, roles, user-defined secrets, monotonic counters, sign-quote (core_users.c,         */
/* core_marble.c; reference/marblerun.md §1.3, §1.4, §1.6, §3.4, §3.5). Every function takes */
/* the core's lock: do not call them while holding it.                                       */

struct json_t;

/* User authentication (§3.5 "User auth", clientapi.VerifyUser): the client certificate's DER
 * is compared byte for byte with each manifest user's certificate (no chain, issuer or expiry
 * check). Errors: -ENOKEY "no client certificate provided" (cert_der NULL or empty); -EPERM
 * "server is not in expected state" (no manifest, i.e. not AcceptingMarbles); -EACCES
 * "unauthorized user: client certificate did not match any MarbleRun users". On success
 * *ret_user is the user's name (malloc'd). */
int coord_core_auth_user(struct coord_core* c, const uint8_t* cert_der, size_t len, char** ret_user,
                         struct moat_error* err) WARN_UNUSED;

/* Does `user` hold `action` (compared case-insensitively: "readsecret", "writesecret",
 * "updatesecurityversion", "updatemanifest") on `resource_name`? MarbleRun's user.IsGranted
 * (§1.4): any of the user's Roles that lists the action, whose ResourceType equals
 * `resource_type` ("Secrets", "Packages", "Manifest"; NULL: any) and whose ResourceNames hold
 * `resource_name` (case-sensitive; NULL: the action on anything, as for "updatemanifest").
 * False when there is no manifest or no such user. */
bool coord_core_user_allowed(struct coord_core* c, const char* user, const char* resource_type,
                             const char* resource_name, const char* action);

/* GET /secrets (§3.5, clientapi.GetSecrets). Needs AcceptingMarbles (-EPERM "server is not in
 * expected state"); the user must have readsecret on every name, else -EACCES "user <u> is not
 * allowed to read one or more secrets of: [a b]". *ret is a new JSON object name → MarbleRun's
 * manifest.Secret JSON {Type, Size, Shared, UserDefined, Cert, ValidFor, Private, Public}
 * (bytes base64, Cert the DER, nil as null; a user-defined secret never uploaded reads as its
 * definition: Cert/Private/Public null). It holds key material: the caller wipes its text. */
int coord_core_get_secrets(struct coord_core* c, const char* user, const char* const* names,
                           size_t n, struct json_t** ret, struct moat_error* err) WARN_UNUSED;

/* POST /secrets (§3.5, clientapi.WriteSecrets, manifest.ParseUserSecrets). `json` is the map
 * name → UserSecret {Cert (base64 DER), Private (base64), Key (base64)}. Errors (-EINVAL unless
 * said otherwise), MarbleRun's texts after "parsing new secrets: ": "no new secrets defined",
 * "secret manifest specifies a secret which the original manifest does not contain", "secret
 * <n> is not writeable", "invalid secret size: <n>", "declared size and actual size don't
 * match: <n>", "secret <n> is set to be of type symmetric-key but specified values for a
 * certificate" (also for plain), "secret <n> is set to be of type <t> but specified values for
 * a symmetric-key", "x509: unsupported public key type: <nil>" (a cert-* secret without Cert);
 * "running manifest template dry run: ..."; then -EACCES "user <u> is not allowed to update
 * secret: <n>". All or nothing, in one store transaction; activations afterwards render the
 * new values. -EPERM outside AcceptingMarbles. */
int coord_core_write_secrets(struct coord_core* c, const char* user, const void* json, size_t len,
                             struct moat_error* err) WARN_UNUSED;

/* A Marble's client certificate for /monotonic-counter (clientapi.VerifyMarble): it must
 * verify against the current marble root alone, its CN must be a UUID and it must carry the
 * 1.3.9903.2.1 extension (raw value = the marble type). -ENOKEY "no client certificate
 * provided", -EPERM outside AcceptingMarbles, -EACCES with the reason ("x509: certificate signed
 * by unknown authority (...)", "invalid UUID length: N", "MarbleType extension not found in
 * certificate"). On success *ret_type and *ret_uuid (canonical form) are malloc'd. */
int coord_core_auth_marble(struct coord_core* c, const uint8_t* cert_der, size_t len,
                           char** ret_type, char** ret_uuid, struct moat_error* err) WARN_UNUSED;

/* SetMonotonicCounter (§3.5): the counter (type, uuid, name) becomes max(old, value), committed
 * at once; *ret_prev is the value before. -EPERM outside AcceptingMarbles, -EOPNOTSUPP
 * "MonotonicCounter feature is not enabled in the manifest", -EINVAL "invalid UUID: ...". */
int coord_core_set_monotonic_counter(struct coord_core* c, const char* type, const char* uuid,
                                     const char* name, uint64_t value, uint64_t* ret_prev,
                                     struct moat_error* err) WARN_UNUSED;

/* True when the current manifest's Config.FeatureGates names `gate` (case-insensitively;
 * "SignQuoteEndpoint", "MonotonicCounter"). False without a manifest. */
bool coord_core_feature_gate(struct coord_core* c, const char* gate);

/* POST /sign-quote (§3.5, clientapi.verifyAndSignQuote): verifies the SGX quote (raw or behind
 * an OpenEnclave header) with the core's verifier, accepting any TCB level and debug enclaves
 * as ego does, and signs sha256(base64(quote) || tcbStatus) with the Coordinator root key
 * (ECDSA P-384, ASN.1 DER). *ret_tcb_status ("UpToDate", "SWHardeningNeeded", ...) and
 * *ret_sig are malloc'd. -EOPNOTSUPP "SignQuoteEndpoint feature is not enabled in the
 * manifest" or in simulation mode (no verifier); -EINVAL "quote verification failed: ...". */
int coord_core_sign_quote(struct coord_core* c, const uint8_t* quote, size_t len,
                          char** ret_tcb_status, uint8_t** ret_sig, size_t* ret_sig_len,
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
