/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-kbs (`moat kbs serve`): the key broker of attestation.md §4.3 (docs/kbs.md). Internal
 * to the program: main.c (configuration, start-up, shutdown), store.c (keys and transfer
 * policies in the state directory, key material encrypted at rest), jwks.c (the token
 * service's signing keys), api.c (the REST routes).
 */
#pragma once

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common.h"
#include "jwks.h"
#include "jwt.h"
#include "kbs.h"
#include "net.h"

void slog(const char* level, const char* fmt, ...) PRINTF_FMT(2, 3);

struct kbs_config {
    const char* addr;
    const char* state_dir;
    const char* admin_token;
    const char* token_jwks;    /* https URL or file */
    const char* token_ca;      /* PEM for the token service's TLS; NULL: the system store */
    const char* token_root_ca; /* PEM: the root the JWKS keys' x5c must end at; NULL: unchecked */
    const char* token_url;     /* the token service (background-check mode); NULL: off */
    const char* token_api_key;
    const char* tls_cert;
    const char* tls_key;
    bool no_seal;
    bool debug;
};

struct kbs_stored_policy {
    char id[MOAT_UUID_STR_SIZE];
    struct kbs_policy policy;
    json_t* json; /* canonical form with "id" */
};

struct kbs_stored_key {
    char id[MOAT_UUID_STR_SIZE];
    char policy_id[MOAT_UUID_STR_SIZE];
    char algorithm[8]; /* "AES" */
    unsigned key_length;
    uint8_t* sealed; /* iv ‖ tag ‖ AES-256-GCM(master key, aad = id)(secret) */
    size_t sealed_len;
};

struct kbs_store {
    const char* dir;
    uint8_t master[32]; /* encrypts the key material; itself sealed in master.key */
    struct kbs_stored_policy* policies;
    size_t n_policies;
    struct kbs_stored_key* keys;
    size_t n_keys;
};

/* Opens the state directory (0700): the master key (made at first start; sealed with
 * `seal_key` unless NULL), then every policy and key. */
int kbs_store_open(struct kbs_store* s, const char* dir, const uint8_t* seal_key,
                   struct moat_error* err) WARN_UNUSED;
void kbs_store_close(struct kbs_store* s);
const struct kbs_stored_policy* kbs_store_policy(const struct kbs_store* s, const char* id);
const struct kbs_stored_key* kbs_store_key(const struct kbs_store* s, const char* id);
/* Adds a parsed policy (taken over) under a fresh id, written to disk first. */
int kbs_store_add_policy(struct kbs_store* s, struct kbs_policy* p,
                         const struct kbs_stored_policy** ret, struct moat_error* err) WARN_UNUSED;
/* Adds an AES key: `secret` (key_length/8 bytes) or a fresh one when NULL. */
int kbs_store_add_key(struct kbs_store* s, const char* policy_id, unsigned key_length,
                      const uint8_t* secret, const struct kbs_stored_key** ret,
                      struct moat_error* err) WARN_UNUSED;
/* The key material, in *ret (the caller wipes and frees). */
int kbs_store_secret(const struct kbs_store* s, const struct kbs_stored_key* k, uint8_t** ret,
                     size_t* ret_len, struct moat_error* err) WARN_UNUSED;
json_t* kbs_stored_key_json(const struct kbs_stored_key* k);

/* An HTTPS GET (body NULL) or POST of JSON with `Accept: application/json` and, when given,
 * `x-api-key` (jwks.c). TLS verified against `ca` or the system store. *ret is the response
 * body (malloc'd, NUL-terminated), *ret_status its HTTP status. -EIO when no answer. */
int kbs_http(const char* url, const char* ca, const char* api_key, const char* body, char** ret,
             size_t* ret_len, long* ret_status, struct moat_error* err) WARN_UNUSED;

/* The token service's token-signing keys (jwks.c). With `roots`, only the keys whose x5c chain
 * ends at one of them and whose certificates no CRL revokes are kept (§4.2, src/amber/jwks.h),
 * and they are verified again when the earliest CRL's nextUpdate (or an hour) has passed. */
struct kbs_jwks {
    const char* source;
    const char* ca;
    STACK_OF(X509) * roots; /* owned; NULL: the chain is not checked */
    json_t* keys;           /* the "keys" array (only the verified ones with roots) */
    EVP_PKEY** pkeys;       /* keys[i] as a key (made once per load, not per token), or NULL */
    size_t n_pkeys;
    time_t fetched;
    time_t valid_until; /* with roots: when the keys must be verified again */
};
int kbs_jwks_load(struct kbs_jwks* j, struct moat_error* err) WARN_UNUSED;
/* The key the token's `kid` names with its algorithm; refreshes the JWKS once when the kid is
 * unknown (at most every 10 s) or the verification is due. -ENOKEY when none. */
int kbs_jwks_find(struct kbs_jwks* j, const char* kid, EVP_PKEY** ret, enum amber_jwt_alg* ret_alg,
                  struct moat_error* err) WARN_UNUSED;
void kbs_jwks_clear(struct kbs_jwks* j);

struct kbs_server {
    struct kbs_config cfg;
    struct kbs_store store;
    struct kbs_jwks jwks;
    struct event_base* base;
    struct net_http_server* http;
    uint64_t transfers, refusals;
};

int kbs_api_handle(const struct net_http_request* req, struct net_http_response* resp, void* ctx);
