/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client side of MarbleRun (reference/marblerun.md §7, the `marblerun` CLI; §3.5, the
 * client REST API): what `moat marblerun` (the moat-marblerun program) needs to trust a
 * Coordinator and talk to it.
 *
 *   era config   MarbleRun's coordinator-era.json: the identity a Coordinator's quote must have
 *   verification GET /quote?nonce=N: moat's DCAP verifier (src/attest), then the report data
 *                (sha256(root DER ‖ N)), the identity and the TCB status (era's policy)
 *   cache        the root certificate of the last verified Coordinator (certcache), later the
 *                TLS trust anchor
 *   http         HTTPS over libcurl with the root as the only anchor, an optional client
 *                certificate, and MarbleRun's JSend envelopes
 *
 * Library code: nothing here prints; errors fill a struct moat_error. Verification refusals are
 * -EPERM, transport failures -EIO, bad input -EINVAL, a missing file -ENOENT.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "common.h"

/* ---------------------------------------------------------------------------------------- */
/* The era config (MarbleRun's coordinator-era.json; §7 --era-config)                        */

/* The identity a Coordinator must prove. A field that is not set is not checked. */
struct mr_era {
    bool has_unique_id, has_signer_id, has_product_id, has_security_version;
    uint8_t unique_id[32];     /* MRENCLAVE */
    uint8_t signer_id[32];     /* MRSIGNER */
    uint64_t product_id;       /* ISVPRODID must be equal */
    uint64_t security_version; /* ISVSVN must be >= */
    bool debug;                /* a debug Coordinator is accepted */
};

/* Parses coordinator-era.json: {"SecurityVersion": n, "ProductID": n, "SignerID": "hex",
 * "UniqueID": "hex", "Debug": bool} (every member optional; unknown members are ignored, as Go's
 * encoding/json does; an empty "UniqueID"/"SignerID" is not set). At least one of UniqueID and
 * SignerID is required: without them nothing about the Coordinator's code is checked. -EINVAL
 * naming the member. */
int mr_era_parse(const char* text, size_t len, struct mr_era* ret,
                 struct moat_error* err) WARN_UNUSED;
/* read_file + mr_era_parse; errors name the path. */
int mr_era_load(const char* path, struct mr_era* ret, struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Verifying a Coordinator's quote                                                            */

struct collateral;
struct attest_verify_result;

struct mr_verify_opts {
    const struct mr_era* era;
    const struct collateral* collateral; /* not owned; NULL: no TCB verdict, never accepted */
    X509* anchor;                        /* not owned; NULL: the Intel SGX Root CA */
    time_t at;                           /* verification time */
    uint32_t accepted_tcb;               /* ATTEST_ACCEPT bits besides UpToDate */
    char** accepted_advisories;          /* for SWHardeningNeeded; NULL/0: any */
    size_t n_accepted_advisories;
};

/* What a verified quote said. */
struct mr_verdict {
    bool simulated; /* moat's simulated platform: proves nothing about hardware */
    bool debug;
    char tcb_status[64];
    char unique_id[65], signer_id[65];
    uint16_t product_id, security_version;
};

/* The intermediate and the root of /quote's "cert" (PEM, intermediate then root, §7). Both are
 * owned by the caller (X509_free). -EINVAL when it is not two certificates or the intermediate
 * is not issued by the root. */
int mr_chain_parse(const char* pem, size_t len, X509** ret_intermediate, X509** ret_root,
                   struct moat_error* err) WARN_UNUSED;

/* Era's policy on a verification result (`res` from attest_verify): no failed check; a TCB
 * verdict that is UpToDate or accepted (SWHardeningNeeded with only accepted advisories); an
 * SGX enclave; report data = sha256(root DER ‖ nonce) in its first 32 bytes; the era identity
 * and debug flag. Fills *ret (also on -EPERM, as far as the quote was read). */
int mr_policy_check(const struct attest_verify_result* res, const uint8_t* root_der,
                    size_t root_len, const uint8_t* nonce, size_t nonce_len,
                    const struct mr_verify_opts* opts, struct mr_verdict* ret,
                    struct moat_error* err) WARN_UNUSED;

/* The whole check of /quote's quote (with the OpenEnclave header; an empty quote — MarbleRun's
 * simulation mode — is refused with a message that says so). 0 or -EPERM. */
int mr_verify_quote(const uint8_t* quote, size_t len, const uint8_t* root_der, size_t root_len,
                    const uint8_t* nonce, size_t nonce_len, const struct mr_verify_opts* opts,
                    struct mr_verdict* ret, struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* The certificate cache (§7 --coordinator-cert)                                               */

/* $XDG_CONFIG_HOME/marblerun/coordinator-cert.pem, else ~/.config/marblerun/… (malloc'd). */
char* mr_cache_default_path(void);
/* The cached PEM (intermediate + root, as /quote gave them) and its root. -ENOENT when there is
 * none; -EINVAL when it holds no certificate. */
int mr_cache_load(const char* path, char** ret_pem, X509** ret_root,
                  struct moat_error* err) WARN_UNUSED;
/* Writes the PEM atomically (directories made 0700, the file 0644). */
int mr_cache_store(const char* path, const char* pem, struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* HTTPS and JSend (§3.5)                                                                      */

struct mr_http_opts {
    const char* cert;   /* client certificate (PEM file) or NULL */
    const char* key;    /* its private key (PEM file) */
    const char* ca_pem; /* the only trust anchor; NULL: the peer is not verified */
    long timeout_s;     /* 0: 60 */
};

struct mr_http;
/* A client for https://<addr> ("host:port"); the strings of `opts` are copied. */
int mr_http_new(const char* addr, const struct mr_http_opts* opts, struct mr_http** ret,
                struct moat_error* err) WARN_UNUSED;
void mr_http_free(struct mr_http* h);

/* A response: the HTTP status, the JSend envelope's data (NULL if none) and message. */
struct mr_response {
    long status;
    json_t* data;
    char* message;
    bool tls_peer_refused; /* the server's certificate was not the anchor's */
};
void mr_response_clear(struct mr_response* r);

/* One request: `body` (may be NULL) is sent as application/json. 0 when a response arrived
 * (whatever its status); -EIO with curl's reason otherwise (r->tls_peer_refused says whether
 * the certificate was the cause). */
int mr_http_call(struct mr_http* h, const char* method, const char* path, const json_t* body,
                 struct mr_response* r, struct moat_error* err) WARN_UNUSED;

/* A success (200 "success") or an error in MarbleRun's CLI words: "GET https://a/p: 500
 * Internal Server Error: msg" ("unable to authorize user: msg" for 401). */
int mr_http_expect(struct mr_http* h, const char* method, const char* path, const json_t* body,
                   struct mr_response* r, struct moat_error* err) WARN_UNUSED;
