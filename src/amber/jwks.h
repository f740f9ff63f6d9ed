/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token service's JWKS and the certificate chain of its keys, checked the way Intel Trust
 * Authority's client-for-go `VerifyToken` does (../shared/reference/attestation.md §4.2
 * "Verification"): the key's `x5c` (≤ 10 certificates) is classified — a CA whose CN contains
 * "Root CA" is the root, a CN containing "Signing CA" the intermediate, anything else the leaf —,
 * verified up to a trust anchor the caller gives, the leaf checked against the CRL its CRL
 * distribution point names (issued by the intermediate) and the intermediate against the root's
 * CRL, each CRL's signature and nextUpdate checked. The leaf's key must be the JWK's (n, e).
 *
 * Library code: nothing is printed; errors name the certificate (role and CN), the CRL (URL)
 * and the field that failed.
 */
#pragma once

#include <jansson.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common.h"
#include "jwt.h"

#define AMBER_X5C_MAX_CERTS      10 /* §4.2: x5c chain ≤ 10 certificates */
#define AMBER_X5C_MAX_CERT_BYTES (16 * 1024)
#define AMBER_CRL_MAX_BYTES      (1024 * 1024)
#define AMBER_JWKS_MAX_BYTES     (1024 * 1024)
#define AMBER_CRL_SKEW           300 /* seconds a CRL's thisUpdate may lie in the future */

enum amber_x5c_role { AMBER_X5C_LEAF, AMBER_X5C_INTERMEDIATE, AMBER_X5C_ROOT };
/* "leaf" / "intermediate (Signing CA)" / "root CA" */
const char* amber_x5c_role_name(enum amber_x5c_role role);

/* The classification of one certificate (§4.2, as client-for-go): is_ca and the subject CN. */
enum amber_x5c_role amber_x5c_classify(X509* cert);

/* A classified x5c: one of each role; the root may be absent from the JWK (the trust anchor
 * then comes from the caller). Owned. */
struct amber_x5c {
    X509* leaf;
    X509* intermediate;
    X509* root;
};
void amber_x5c_clear(struct amber_x5c* c);

/* Decodes and classifies a JWK's "x5c" array (standard base64 DER, RFC 7517 §4.7). Errors
 * (-EINVAL, -EBADMSG): not an array, more than AMBER_X5C_MAX_CERTS, an entry that is not
 * base64 DER of one certificate or larger than AMBER_X5C_MAX_CERT_BYTES, no leaf or no
 * intermediate, two of one role. */
int amber_x5c_parse(const json_t* x5c, struct amber_x5c* ret, struct moat_error* err) WARN_UNUSED;

/* The first http(s) URI of a certificate's CRL distribution points (malloc'd), NULL if none. */
char* amber_cert_crl_url(X509* cert);

/* The subject CN of a certificate (malloc'd; "(no CN)" when there is none). */
char* amber_cert_cn(X509* cert);

/* Checks a CRL (DER, or PEM) for `subject`, which `issuer` issued: the CRL's issuer name is
 * `issuer`'s subject, its signature verifies with `issuer`'s key, thisUpdate is not more than
 * AMBER_CRL_SKEW in the future, nextUpdate is present and after `now`, and `subject`'s serial
 * is not listed. `what` names the subject in errors ("leaf"). *ret_next_update (may be NULL)
 * gets nextUpdate. -EBADMSG (malformed, wrong issuer, bad signature), -ESTALE (expired),
 * -EKEYREVOKED (listed), -EFBIG (over AMBER_CRL_MAX_BYTES). */
int amber_crl_check(const uint8_t* crl, size_t len, X509* issuer, X509* subject, const char* what,
                    time_t now, time_t* ret_next_update, struct moat_error* err) WARN_UNUSED;

/* Fetches a CRL: 0 with *ret (malloc'd) and *ret_len, or <0 with err set. */
typedef int (*amber_crl_fetch_fn)(void* ctx, const char* url, uint8_t** ret, size_t* ret_len,
                                  struct moat_error* err);

struct amber_x5c_options {
    /* The trust anchors (a PEM file of roots, amber_roots_load). NULL or empty: only with
     * allow_self_root, the x5c's own self-signed root is the anchor (the caller warns). */
    STACK_OF(X509) * roots;
    bool allow_self_root;
    bool skip_crl;            /* no CRL fetched (the caller warns) */
    const char* cacerts;      /* TLS trust for CRL fetches over https (NULL: the system store) */
    time_t now;               /* 0: time(NULL) */
    amber_crl_fetch_fn fetch; /* NULL: https_request (https, or http: CRLs are signed) */
    void* fetch_ctx;
};

struct amber_x5c_result {
    bool self_anchored; /* trusted only because allow_self_root */
    bool crl_checked;
    time_t next_update; /* the earliest nextUpdate of the CRLs checked; 0: none */
    char root[256];     /* the subject CN of the anchor the chain ends at */
};

/* Verifies the x5c of `jwk` (§4.2): classification, the chain to an anchor at `now`, the leaf's
 * key equal to the JWK's, and (unless skip_crl) both CRLs. 0 or <0: -ENOKEY (no x5c), -EINVAL /
 * -EBADMSG (malformed), -EPERM (no anchor given or the chain does not verify), -EKEYREVOKED,
 * -ESTALE, or the fetch's error. */
int amber_jwk_verify_x5c(const json_t* jwk, const struct amber_x5c_options* o,
                         struct amber_x5c_result* ret, struct moat_error* err) WARN_UNUSED;

/* The certificates of a PEM file (at least one); *ret owned (sk_X509_pop_free). */
int amber_roots_load(const char* path, STACK_OF(X509) * *ret, struct moat_error* err) WARN_UNUSED;

/* A JWKS from an https:// URL (TLS verified against `cacerts` or the system store; connect to
 * `connect_ip` when given) or a file: the document, which must have a "keys" array. *ret is a
 * new reference. http:// is refused. */
int amber_jwks_load(const char* source, const char* cacerts, const char* connect_ip, json_t** ret,
                    struct moat_error* err) WARN_UNUSED;

/* The key of `jwks` (a document with "keys") whose "kid" is `kid`; borrowed. NULL if none. */
const json_t* amber_jwks_find(const json_t* jwks, const char* kid);

/* The algorithm the verifier uses with `jwk`: its "alg" (PS384 or RS256), PS384 when it has
 * none (ITA's default). Never the token header's. */
int amber_jwk_alg(const json_t* jwk, enum amber_jwt_alg* ret, struct moat_error* err) WARN_UNUSED;
