/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-amber (`moat amber serve`): the Amber / Intel Trust Authority compatible token service
 * (../shared/reference/attestation.md §4.1, §4.2; docs/amber.md). Internal to the program:
 * main.c (configuration, start-up, shutdown), pki.c (the service's keys and certificates in
 * the state directory), api.c (the REST routes).
 */
#pragma once

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>

#include "appraisal.h"
#include "collateral.h"
#include "common.h"
#include "net.h"
#include "verify.h"

void slog(const char* level, const char* fmt, ...) PRINTF_FMT(2, 3);

struct amber_config {
    const char* addr;
    const char* state_dir;
    char** api_keys; /* NULL-terminated, owned */
    bool insecure_no_api_key;
    const char* collateral;
    const char* trusted_root;
    const char* trust_simulated;
    const char* accept_tcb;
    const char* issuer;
    const char* public_url;
    const char* tls_cert;
    const char* tls_key;
    long nonce_validity;
    long token_validity;
    bool no_seal;
    const char* pccs;
    const char* pccs_cache;
    time_t verify_at;       /* --insecure-verify-at; 0: now */
    const char* policy_dir; /* <policy id>.rego files */
    bool debug;
};

/* The service's keys (§4.2 "Verification": ITA's own root CA, not the SGX root). The chain has
 * ITA's three levels, as client-for-go's VerifyToken needs them: a root ("Root CA" in its CN),
 * a "Signing CA" whose CRL distribution point is the root's CRL, and the token-signing
 * certificate whose distribution point is the Signing CA's CRL. */
struct amber_pki {
    EVP_PKEY* root_key;
    X509* root;
    EVP_PKEY* ca_key; /* the Signing CA, RSA-3072 */
    X509* ca;
    EVP_PKEY* signing_key; /* token signing, RSA-3072 */
    X509* signing;
    char kid[97];        /* hex SHA-384 of the signing certificate's DER (PS384 tokens) */
    char kid_rs256[97];  /* hex SHA-384 of "RS256" ‖ that DER: the same key for RS256 */
    EVP_PKEY* nonce_key; /* nonce signing, RSA-3072 */
    char nonce_kid[97];
    uint8_t* root_crl_der; /* /crl/root.crl, signed by the root */
    size_t root_crl_len;
    uint8_t* ca_crl_der; /* /crl/signing-ca.crl, signed by the Signing CA */
    size_t ca_crl_len;
    char instance_id[MOAT_UUID_STR_SIZE];
};
void amber_pki_clear(struct amber_pki* p);

/* Loads the token and nonce keys from `dir`, or makes them at first start (root CA and signing
 * certificate naming `public_url`/crl/root.crl). Files 0600 in a 0700 directory, written
 * atomically; private keys sealed (AES-256-GCM) with `seal_key` (32 bytes; NULL: plain PEM).
 * A key sealed with another key, or plain when sealing is on, is refused (-EPERM,
 * -EKEYREJECTED). */
int amber_pki_load(const char* dir, const char* public_url, const uint8_t* seal_key,
                   struct amber_pki* ret, struct moat_error* err) WARN_UNUSED;
/* The TLS credentials: --tls-cert/--tls-key, or a self-signed P-256 certificate for
 * localhost kept in `dir` (tls.pem, tls.key sealed as above). */
int amber_tls_load(const char* dir, const char* cert_file, const char* key_file,
                   const uint8_t* seal_key, struct net_tls_credentials* ret,
                   struct moat_error* err) WARN_UNUSED;
void amber_tls_clear(struct net_tls_credentials* c);

/* One trust configuration for quotes: collateral and anchor. */
struct amber_pccs_entry {
    bool tdx, processor_ca;
    uint8_t fmspc[6];
    time_t fetched;
    struct collateral* collateral;
};

struct amber_trust {
    bool configured;
    struct collateral* collateral; /* NULL: none (never accepted), unless pccs */
    const char* pccs;              /* fetch per platform instead */
    const char* pccs_cache;
    struct amber_pccs_entry* entries;
    size_t n_entries;
    X509* anchor; /* NULL: the Intel SGX Root CA */
    struct attest_verify_cache* cache;
};

struct amber_server {
    struct amber_config cfg;
    struct amber_pki pki;
    struct amber_trust hw;  /* hardware quotes */
    struct amber_trust sim; /* moat SIMULATED quotes: only with --trust-simulated */
    uint32_t accepted_tcb;
    char* public_url;
    char* jku;
    struct event_base* base;
    struct net_http_server* http;
    struct amber_policy* policies; /* sorted by id (policies.c) */
    size_t n_policies;
    uint64_t tokens, nonces, refusals;
    uint64_t refusals_by_status[600]; /* /metrics: by HTTP status */
};

/* policies.c: load every <policy id>.rego of cfg.policy_dir (compile errors name the file,
 * line and construct); evaluate the policies `ids` against a token's claims: each appraisal
 * policy lands in matched or unmatched ({"id", "version"}), the claims customization policies
 * define in `defined`. An unknown id or an evaluation error: <0, *ret_status 400. */
int amber_policies_load(struct amber_server* s, struct moat_error* err) WARN_UNUSED;
void amber_policies_clear(struct amber_server* s);
int amber_policies_evaluate(struct amber_server* s, char* const* ids, size_t n_ids,
                            const json_t* claims, json_t* matched, json_t* unmatched,
                            json_t* defined, int* ret_status, struct moat_error* err) WARN_UNUSED;

/* trust.c: the hardware and simulated trust from the configuration (0, or -errno with `err`),
 * and the collateral for a quote: the configured one, or its platform's from the PCCS. */
int amber_trust_setup(struct amber_server* s, struct moat_error* err) WARN_UNUSED;
void amber_trust_clear(struct amber_trust* t);
int amber_trust_collateral(struct amber_trust* t, const uint8_t* quote, size_t len,
                           const struct collateral** ret, struct moat_error* err) WARN_UNUSED;

/* The HTTP handler (api.c). */
int amber_api_handle(const struct net_http_request* req, struct net_http_response* resp, void* ctx);
