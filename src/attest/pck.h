/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PCK certificates and Intel's certificate chains (reference/attestation.md §2.1-2.3).
 *
 * A cert_chain is a PEM bundle put in path order (leaf first, root last) by issuer/subject, as
 * Intel's samples come root-first and quotes NUL-terminate the PEM or not. Chains are verified
 * with OpenSSL against one configured trust anchor at a caller-given time, with Intel's CRLs,
 * QVL's name checks and an opt-in mode that accepts CRLs past their nextUpdate but reports it.
 *
 * Errors (negative errno values; the error context names the certificate or CRL):
 *   -EBADMSG      malformed PEM/DER, extension or chain shape
 *   -EKEYREJECTED bad signature, untrusted root, wrong names, unknown issuer
 *   -EKEYEXPIRED  a certificate or CRL outside its validity at the verification time
 *   -EKEYREVOKED  a certificate is listed in its issuer's CRL (QVL STATUS_PCK_REVOKED)
 *   -EINVAL       missing CRL or bad argument
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common.h"

/* ---------------------------------------------------------------------------------------- */
/* OpenSSL ownership helpers for the attestation component (destructors accept NULL).        */

static inline void x509_freep(X509** p) {
    X509_free(*p);
}
static inline void x509_crl_freep(X509_CRL** p) {
    X509_CRL_free(*p);
}
static inline void evp_pkey_freep(EVP_PKEY** p) {
    EVP_PKEY_free(*p);
}
#define _cleanup_x509_     _cleanup_(x509_freep)
#define _cleanup_x509_crl_ _cleanup_(x509_crl_freep)
#define _cleanup_pkey_     _cleanup_(evp_pkey_freep)

/* ---------------------------------------------------------------------------------------- */
/* Trust anchor, certificates and CRLs                                                        */

/* Intel SGX Root CA (§2.1), SHA-256 fingerprint 44:A0:19:6B:…:74:D3: the default anchor. */
extern const char PCK_INTEL_SGX_ROOT_CA_PEM[];

/* Returns a new reference to the parsed Intel SGX Root CA (caller frees). */
int pck_intel_root_ca(X509** ret_cert, struct moat_error* err) WARN_UNUSED;

/* Parses one certificate, PEM or DER. */
int x509_parse(const void* buf, size_t len, X509** ret_cert, struct moat_error* err) WARN_UNUSED;

/* Parses one CRL, DER or PEM (Intel serves both). */
int x509_crl_parse(const void* buf, size_t len, X509_CRL** ret_crl,
                   struct moat_error* err) WARN_UNUSED;

/* Converts an ASN1_TIME to seconds since the epoch. */
int asn1_time_to_time_t(const ASN1_TIME* t, time_t* ret) WARN_UNUSED;

#define CERT_CHAIN_MAX 8

/* Certificates in path order: certs[0] is the leaf, certs[n-1] the self-signed root. */
struct cert_chain {
    X509* certs[CERT_CHAIN_MAX];
    size_t n;
};

void cert_chain_free(struct cert_chain* chain);
static inline void cert_chain_freep(struct cert_chain** p) {
    cert_chain_free(*p);
}
#define _cleanup_cert_chain_ _cleanup_(cert_chain_freep)

/* Parses a PEM bundle (any order, trailing NULs allowed, nothing but whitespace between the
 * certificates) and orders it by issuer/subject into one path ending in a self-signed
 * certificate. Every certificate must be on that path. */
int cert_chain_parse_pem(const void* pem, size_t len, struct cert_chain** ret_chain,
                         struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* Chain verification                                                                         */

struct chain_verify_opts {
    X509* anchor;         /* trust anchor (not owned); NULL = the Intel SGX Root CA */
    time_t at;            /* verification time (certificates, CRLs) */
    bool allow_stale_crl; /* accept CRLs past nextUpdate; reported in the result */
    /* No revocation check at all when the CRLs are NULL (quotes without collateral). */
    bool insecure__no_crl;
};

struct chain_verify_result {
    bool stale_crl;         /* a CRL past its nextUpdate was accepted */
    bool crl_checked;       /* revocation was checked with CRLs */
    time_t earliest_expiry; /* min notAfter (and CRL nextUpdate) along the chain */
};

/* PCK chain (§2.2 steps 1-2): exactly leaf, PCK Platform/Processor CA, root; root equal to the
 * anchor; signatures, validity at opts->at; root_crl must not list the intermediate and
 * pck_crl (same raw issuer as the leaf's) must not list the leaf. CN checks: "SGX PCK
 * Certificate", "SGX PCK Platform CA"/"SGX PCK Processor CA", "SGX Root CA". CRLs are not
 * owned and may be NULL only with opts->insecure__no_crl. */
int pck_chain_verify(const struct cert_chain* chain, X509_CRL* root_crl, X509_CRL* pck_crl,
                     const struct chain_verify_opts* opts, struct chain_verify_result* ret,
                     struct moat_error* err) WARN_UNUSED;

/* TCB-info / QE-identity signing chain (§2.2 steps 3 and 7): "SGX TCB Signing" leaf and the
 * anchor, root_crl must not list the leaf. */
int tcb_signing_chain_verify(const struct cert_chain* chain, X509_CRL* root_crl,
                             const struct chain_verify_opts* opts, struct chain_verify_result* ret,
                             struct moat_error* err) WARN_UNUSED;

/* PCK CRL issuer chain: "SGX PCK Platform CA" or "SGX PCK Processor CA" and the anchor,
 * root_crl must not list the CA. */
int pck_ca_chain_verify(const struct cert_chain* chain, X509_CRL* root_crl,
                        const struct chain_verify_opts* opts, struct chain_verify_result* ret,
                        struct moat_error* err) WARN_UNUSED;

/* Checks a CRL: signed by `issuer`, issuer name equal to its subject, thisUpdate <= at and
 * (unless opts->allow_stale_crl, which sets *ret_stale) at <= nextUpdate. */
int crl_verify(X509_CRL* crl, X509* issuer, const struct chain_verify_opts* opts, bool* ret_stale,
               struct moat_error* err) WARN_UNUSED;

/* Verifies a raw r||s ECDSA P-256 / SHA-256 signature (64 bytes) of msg by cert's key.
 * -EKEYREJECTED if it does not verify. */
int ecdsa_p256_verify_raw(X509* cert, const void* msg, size_t msg_len, const uint8_t sig[64],
                          struct moat_error* err) WARN_UNUSED;

/* The same by a raw P-256 public key x||y (64 bytes, no 0x04 prefix; the quote's attestation
 * key, reference §1.3). -EKEYREJECTED if the key is not on the curve or the signature does not
 * verify. */
int ecdsa_p256_verify_raw_key(const uint8_t pub[64], const void* msg, size_t msg_len,
                              const uint8_t sig[64], struct moat_error* err) WARN_UNUSED;

/* ---------------------------------------------------------------------------------------- */
/* The PCK certificate SGX extension, OID 1.2.840.113741.1.13.1 (§2.3)                        */

enum sgx_type {
    SGX_TYPE_STANDARD                = 0,
    SGX_TYPE_SCALABLE                = 1,
    SGX_TYPE_SCALABLE_WITH_INTEGRITY = 2,
};

struct pck_ext {
    uint8_t ppid[16];
    uint8_t tcb_comp_svn[16]; /* SGX TCB COMP01..16 SVN */
    uint16_t pcesvn;
    uint8_t cpusvn[16];
    uint8_t pceid[2];
    uint8_t fmspc[6];
    uint8_t sgx_type;
    bool has_platform_instance_id; /* Platform-CA certificates only */
    uint8_t platform_instance_id[16];
    bool has_configuration;
    /* -1 when absent from the Configuration sequence, else 0/1 */
    int8_t dynamic_platform, cached_keys, smt_enabled;
};

/* Reads the SGX extension of a PCK leaf. PPID, TCB (all 18 entries), PCE-ID, FMSPC and SGX
 * type are required; PlatformInstanceID and Configuration too when the issuer is a Platform CA.
 * Duplicate OIDs are rejected, unknown ones ignored. -EBADMSG on any malformation. */
int pck_ext_parse(X509* leaf, struct pck_ext* ret, struct moat_error* err) WARN_UNUSED;
