/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON Web Tokens as Intel Trust Authority issues them (../shared/reference/attestation.md
 * §4.2; RFC 7515/7518/7519): compact JWS signed with PS384 (RSASSA-PSS, SHA-384, MGF1-SHA-384,
 * salt = hash length) or RS256, header {alg, jku, kid, typ}, and the JWKS that publishes the
 * signing key (RFC 7517: kty RSA, n, e, alg, kid, x5c).
 *
 * Verification takes only PS384 and RS256 (never "none" or an HMAC with the public key as
 * secret) and only the algorithm the caller's key was published for.
 */
#pragma once

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

enum amber_jwt_alg { AMBER_JWT_PS384, AMBER_JWT_RS256 };

/* "PS384" / "RS256"; -EINVAL "unsupported token signing algorithm \"X\"" otherwise */
int amber_jwt_alg_parse(const char* name, enum amber_jwt_alg* ret, struct moat_error* err);
const char* amber_jwt_alg_name(enum amber_jwt_alg alg);

/* header.claims.signature; the header is {"alg", "jku" (when given), "kid", "typ": "JWT"}.
 * key: an RSA private key. *ret is malloc'd. */
int amber_jwt_sign(enum amber_jwt_alg alg, EVP_PKEY* key, const char* kid, const char* jku,
                   const json_t* claims, char** ret, struct moat_error* err) WARN_UNUSED;

struct amber_jwt {
    json_t* header;
    json_t* claims;
};
void amber_jwt_clear(struct amber_jwt* t);

/* The header and claims of a token, unverified (to find the key by "kid"). Every part must
 * decode and the header and claims must be JSON objects. */
int amber_jwt_decode(const char* token, struct amber_jwt* ret, struct moat_error* err) WARN_UNUSED;
/* The header alone, unverified (the claims part is not decoded): what a verifier needs to pick
 * the key, without parsing the claims twice. */
int amber_jwt_decode_header(const char* token, json_t** ret, struct moat_error* err) WARN_UNUSED;

/* Decodes and verifies: the header's alg must be `alg`, the signature good under `key` (RSA),
 * and at `now` the token neither expired ("exp", required) nor not yet valid ("nbf"), each with
 * `leeway` seconds. Errors name what failed ("token expired at …"). */
int amber_jwt_verify(const char* token, enum amber_jwt_alg alg, EVP_PKEY* key, time_t now,
                     long leeway, struct amber_jwt* ret, struct moat_error* err) WARN_UNUSED;

/* A JWK for an RSA public key: {"alg", "e", "kid", "kty": "RSA", "n", "x5c": [DER b64…]}
 * (x5c only when chain has certificates, leaf first). */
json_t* amber_jwk_new(EVP_PKEY* key, enum amber_jwt_alg alg, const char* kid,
                      const STACK_OF(X509) * chain);
/* The RSA public key of a JWK (kty RSA, n, e); its alg when it says one. */
int amber_jwk_key(const json_t* jwk, EVP_PKEY** ret, struct moat_error* err) WARN_UNUSED;
