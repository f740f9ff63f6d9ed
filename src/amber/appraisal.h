/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The appraisal side of the Amber / Intel Trust Authority token service
 * (../shared/reference/attestation.md §4.1, §4.2): signed verifier nonces, the attest request
 * of every API generation parsed into one typed struct, the report-data binding, and the
 * token claims made from moat's DCAP verdict.
 *
 * Library code: nothing here prints or touches the network; errors fill a moat_error whose
 * message is safe to return to the client (never a key byte).
 */
#pragma once

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"
#include "jwt.h"

struct attest_verify_result;

/* The request shapes of §4.1's table. */
enum amber_api {
    AMBER_API_BETA, /* Amber beta: `nonce`, `user_data` bound, raw JWT answer */
    AMBER_API_V1,   /* ITA v1: `verifier_nonce`, `runtime_data` bound, {"token"} answer */
    AMBER_API_V2,   /* ITA v2: evidence nested under "sgx" / "tdx", claims nested likewise */
};

/* ------------------------------------------------------------------------------------------ */
/* Verifier nonces (§4.1 "Nonce"): {"val", "iat", "signature"}, each base64 of bytes.           */

#define AMBER_NONCE_VAL_SIZE 64
#define AMBER_NONCE_MAX_SIZE 1024 /* val, iat: refused beyond */

struct amber_nonce {
    uint8_t* val;
    size_t val_len;
    uint8_t* iat; /* ASCII, "2022-07-05 09:39:19.35105366 +0000 UTC" (Go's time.String) */
    size_t iat_len;
    uint8_t* signature;
    size_t signature_len;
};
void amber_nonce_clear(struct amber_nonce* n);

/* A fresh nonce: 64 random bytes, `now` (CLOCK_REALTIME) as iat, signed with PS384 (RSA-PSS,
 * SHA-384, salt = 48) by `key` over val ‖ iat. Returns the JSON object (new reference) or NULL
 * with `err` set. */
json_t* amber_nonce_new(EVP_PKEY* key, const struct timespec* now, struct moat_error* err);

/* Checks a nonce sent back by a client: the signature under `key` over val ‖ iat, then that
 * iat is no older than `max_age` seconds at `now` (and not from the future beyond 60 s).
 * -EKEYREJECTED "verifier nonce signature is not valid", -ETIME "verifier nonce expired …",
 * -EINVAL for a malformed iat. */
int amber_nonce_check(EVP_PKEY* key, const struct amber_nonce* n, time_t now, long max_age,
                      struct moat_error* err) WARN_UNUSED;

/* The nonce's JSON form (as sent): {"val", "iat", "signature"} in base64. New reference. */
json_t* amber_nonce_to_json(const struct amber_nonce* n);

/* ------------------------------------------------------------------------------------------ */
/* Attest requests                                                                              */

#define AMBER_MAX_POLICY_IDS 16

struct amber_attest_request {
    enum amber_api api;
    const char* tee; /* v2: "sgx" or "tdx" (the key the evidence came under); NULL when the
                        evidence is flat (beta, v1, and v1's shape sent to v2) */
    uint8_t* quote;
    size_t quote_len;
    bool has_nonce;
    struct amber_nonce nonce;
    bool has_runtime_data; /* the data bound into report data (beta: user_data) */
    uint8_t* runtime_data;
    size_t runtime_data_len;
    bool has_user_data; /* v1/v2: echoed only, not bound */
    uint8_t* user_data;
    size_t user_data_len;
    uint8_t* event_log;
    size_t event_log_len;
    char** policy_ids; /* canonical lowercase UUIDs */
    size_t n_policy_ids;
    bool policy_must_match;
    enum amber_jwt_alg alg;
};
void amber_attest_request_clear(struct amber_attest_request* r);

/*
 * Parses an attest request body of the shape `api` (§4.1 "Attest request v1", the beta
 * renames, the v2 nesting; v2 also takes v1's flat shape, as client-for-go's GetToken sends it).
 * Every []byte field must be standard base64; policy_ids UUIDs; token_signing_alg "PS384" (default)
 * or "RS256"; unknown members are ignored (as Go's encoding/json does). -EINVAL with a message
 * naming the member. *ret is written only on success.
 */
int amber_attest_request_parse(const char* body, size_t len, enum amber_api api,
                               struct amber_attest_request* ret,
                               struct moat_error* err) WARN_UNUSED;

/*
 * The report data the quote must carry (§4.1 "Report-data binding"): SGX: SHA-256(val ‖ iat ‖
 * runtime_data) in bytes 0-31, zeros after; TDX: SHA-512 of the same, 64 bytes. Without a nonce
 * the hash is over the runtime data only. Returns 1 and fills `out` when there is something to
 * bind, 0 when the request has neither nonce nor runtime data (nothing is checked).
 */
int amber_expected_report_data(const struct amber_attest_request* r, bool tdx, uint8_t out[64]);

/* ------------------------------------------------------------------------------------------ */
/* Token claims (§4.2)                                                                          */

struct amber_claims_opts {
    const char* issuer;      /* "iss" */
    const char* instance_id; /* verifier_instance_ids[0] / amber-faithful-service-ids[0] */
    long validity;           /* exp = iat + validity */
    time_t now;
    const json_t* collateral_hashes; /* sgx_/tdx_collateral object or NULL (borrowed) */
    const json_t* policy_matched;    /* [] of {id, version} (borrowed; NULL = []) */
    const json_t* policy_unmatched;
};

/* The claims of a token for an accepted verification `res` of the request `req`: the ITA v1
 * names (flat), nested under "sgx"/"tdx" for v2, or the amber_* names for beta; `jti` a fresh
 * UUID v4; `moat_simulated: true` when the quote was a moat SIMULATED one. New reference. */
json_t* amber_claims_build(const struct amber_attest_request* req,
                           const struct attest_verify_result* res,
                           const struct amber_claims_opts* opts);
