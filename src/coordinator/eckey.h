/* SPDX-License-Identifier: Apache-2.0 */
/* NIST-curve EC keys without OpenSSL 3's encoder and decoder round trips.
 *
 * An activation makes two fresh EC keys and puts each into a certificate, a PKCS#8 private key
 * and a SubjectPublicKeyInfo. OpenSSL 3.0 does each of those by building an OSSL_ENCODER (and
 * X509_PUBKEY_set a decoder too) over every provider's implementations: a fifth of the
 * Coordinator's CPU per activation. These functions write the same DER from the key's raw
 * parameters: the bytes are identical to OpenSSL's (tests/test_eckey.c checks it for every
 * curve). Keys that are not on P-224/256/384/521 are left to OpenSSL (return 0). */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

/* A fresh key on `curve` ("P-224", "P-256", "P-384", "P-521") from a per-curve parameter
 * template made once (no curve set-up per key). NULL on failure (OpenSSL's error queue says). */
EVP_PKEY* moat_ec_keygen(const char* curve);

/* X509_set_pubkey for an EC key: 1 done, 0 not an EC key on a known curve, -EIO on failure.
 * The certificate's X509_PUBKEY then caches no EVP_PKEY (X509_get0_pubkey returns NULL until
 * the certificate is re-read); it encodes and signs as usual. */
int moat_ec_x509_set_pubkey(X509* x, const EVP_PKEY* key);

/* i2d_PUBKEY and PKCS#8 (i2d_PKCS8_PRIV_KEY_INFO of EVP_PKEY2PKCS8, the form of Go's
 * x509.MarshalPKCS8PrivateKey) for an EC key: the length (> 0) with *der OPENSSL_malloc'd,
 * 0 not an EC key on a known curve, -EIO on failure. */
int moat_ec_spki_der(const EVP_PKEY* key, unsigned char** der);
int moat_ec_pkcs8_der(const EVP_PKEY* key, unsigned char** der);

/* The public key `point` (SEC 1, uncompressed or compressed) on the curve `nid`, built from its
 * parameters (d2i_PUBKEY goes through a decoder): 1 and *ret, 0 the curve is not one of the four
 * (use OpenSSL), -EINVAL the point is not on the curve or does not parse. */
int moat_ec_public_key(int nid, const unsigned char* point, size_t len, EVP_PKEY** ret);
