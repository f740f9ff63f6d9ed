/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attester's side of Amber / Intel Trust Authority (../shared/reference/attestation.md
 * §4.1, §4.3, §4.4): get a verifier nonce, have a quote made over the report data that binds
 * it, trade the quote for a token; and trade a token for a wrapped key at a key broker. Used by
 * /dev/amber in `moat run` and by `moat amber token`; any ITA-compatible service will do (moat's
 * own, or Intel's SaaS). The HTTPS exchanges go through https.h (libcurl loaded on first use).
 *
 * The URL decides the protocol generation (amber_client_api_of), as Gramine's manifests name it:
 *   ".../appraisal/v1/"  Amber beta, as Gramine PR #1065 speaks it: GET {url}nonce,
 *                        POST {url}appraise {"quote","nonce","user_data"} with
 *                        Accept: application/jwt, the body is the token
 *   ".../appraisal/v2/"  ITA v2: GET {url}nonce, POST {url}attest {"sgx"|"tdx": {...}}
 *   anything else        a service root (https://api.trustauthority.intel.com): ITA v1,
 *                        GET /appraisal/v1/nonce, POST /appraisal/v1/attest {"token": ...}
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum amber_client_api {
    AMBER_CLIENT_BETA,
    AMBER_CLIENT_V1,
    AMBER_CLIENT_V2,
};

/* Where a service is and how it is trusted. Strings are borrowed. */
struct amber_endpoint {
    const char* url;         /* https:// only */
    const char* ip;          /* connect here, the URL names the TLS peer; NULL/"": resolve */
    const char* api_key;     /* x-api-key; NULL/"": none sent */
    const char* cacerts;     /* PEM file or directory; NULL/"": the system store */
    const char* cacerts_pem; /* or the PEM text (takes precedence) */
    size_t cacerts_pem_len;
    const volatile bool* cancel; /* ends an exchange when it turns true */
    long timeout_ms;             /* per exchange; 0: 30 s */
};

/* The generation `url` speaks (see above). */
enum amber_client_api amber_client_api_of(const char* url);
const char* amber_client_api_name(enum amber_client_api api);

/* Makes the quote for 64 bytes of report data: 0, or <0 with err set. */
typedef int (*amber_quote_fn)(void* ctx, const uint8_t report_data[64], uint8_t** ret_quote,
                              size_t* ret_len, struct moat_error* err);

struct amber_token_request {
    const struct amber_endpoint* service;
    enum amber_client_api api;
    bool tdx; /* the evidence is a TDX quote: SHA-512 binding, "tdx" nesting in v2 */
    const uint8_t* runtime_data; /* bound into report data (beta: sent as user_data) */
    size_t runtime_data_len;
    const char* const* policy_ids; /* v1/v2: UUIDs; may be NULL */
    size_t n_policy_ids;
    bool policy_must_match;
    const char* signing_alg; /* v1/v2: "PS384" or "RS256"; NULL: the service's default */
    amber_quote_fn quote;
    void* quote_ctx;
};

/* The token (a JWT, malloc'd) for a fresh nonce and a quote binding it. Errors name the step
 * and, for an HTTP error, the status and the service's message; the return is -EACCES for
 * 401/403 (the API key), -EPROTO for other refusals and malformed answers, or https_request's
 * (-EHOSTUNREACH, -ENOPKG, -EINVAL...). */
int amber_client_token(const struct amber_token_request* req, char** ret_token,
                       struct moat_error* err) WARN_UNUSED;

/* The parsers of the services' answers (exposed for the fuzzer):
 * a verifier nonce {"val", "iat", "signature"} — val and iat decoded into *ret_val and *ret_iat
 * (malloc'd), *ret_nonce the JSON object as received (a new reference, sent back verbatim);
 * and the token of an attest answer (beta: the body itself; v1/v2: {"token": ...}), checked to be
 * a JWS compact serialization, malloc'd. -EPROTO with err naming what is wrong. */
int amber_client_parse_nonce(const char* body, size_t len, void** ret_nonce, uint8_t** ret_val,
                             size_t* ret_val_len, uint8_t** ret_iat, size_t* ret_iat_len,
                             struct moat_error* err) WARN_UNUSED;
int amber_client_parse_token(enum amber_client_api api, const char* body, size_t len,
                             char** ret_token, struct moat_error* err) WARN_UNUSED;

/* The transfer URL of key `key_id` at a key broker `url`: Gramine's
 * "https://host:9443/kbs/v1/keys/" form takes "{id}/transfer"; a service root takes
 * "/kbs/v1/keys/{id}/transfer". NULL (err set) when key_id is not a UUID. */
char* amber_client_transfer_url(const char* url, const char* key_id, struct moat_error* err);

/* Passport mode (§4.3): POST {"attestation_token": token} to the key's transfer URL; the raw
 * JSON answer ({"wrapped_key", "wrapped_swk"}, checked to be that) is returned, malloc'd. */
int amber_client_transfer(const struct amber_endpoint* kbs, const char* key_id, const char* token,
                          char** ret_json, size_t* ret_len, struct moat_error* err) WARN_UNUSED;
