/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DCAP collateral: CRLs, TCB info, QE identity and their issuer chains
 * (reference/attestation.md §2.2 steps 2-3 and 7, §2.4, §2.5).
 *
 * Two input forms: dcap-qvl's QuoteCollateralV3 JSON (one object, inner JSON kept as strings,
 * CRLs as hex DER) and Intel PCS responses as separate files. TCB info and QE identity
 * signatures cover the exact bytes of the inner JSON value, so the PCS form is cut with a
 * span scanner (json_member_span) and the bytes are kept verbatim.
 *
 * Errors: as pck.h (-EBADMSG malformed, -EKEYREJECTED signature/chain, -EKEYEXPIRED dates,
 * -EKEYREVOKED revoked, -ENOENT missing piece).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "pck.h"
#include "tcb.h"

struct collateral {
    struct cert_chain* pck_crl_issuer_chain; /* optional */
    X509_CRL* root_ca_crl;
    X509_CRL* pck_crl;
    struct cert_chain* tcb_info_issuer_chain;
    char* tcb_info; /* the exact signed bytes of the tcbInfo object (NUL-terminated copy) */
    size_t tcb_info_len;
    uint8_t tcb_info_signature[64]; /* raw r||s */
    struct cert_chain* qe_identity_issuer_chain;
    char* qe_identity; /* the exact signed bytes of the enclaveIdentity object */
    size_t qe_identity_len;
    uint8_t qe_identity_signature[64];
};

void collateral_free(struct collateral* c);
static inline void collateral_freep(struct collateral** p) {
    collateral_free(*p);
}
#define _cleanup_collateral_ _cleanup_(collateral_freep)

/* Finds the member `key` of the top-level JSON object in text[0..len) and returns the span of
 * its value (offset, length). Strings, escapes and nesting are scanned with bounds checks and a
 * depth limit; the document is not otherwise validated (parse it with jansson as well).
 * -ENOENT if absent, -EBADMSG if the text is not a well-formed object at the level scanned. */
int json_member_span(const char* text, size_t len, const char* key, size_t* ret_off,
                     size_t* ret_len) WARN_UNUSED;

/* dcap-qvl QuoteCollateralV3 JSON: pck_crl_issuer_chain, root_ca_crl, pck_crl (hex DER),
 * tcb_info_issuer_chain, tcb_info (JSON text), tcb_info_signature (hex), qe_identity_issuer_chain,
 * qe_identity, qe_identity_signature. */
int collateral_parse_qvl_json(const char* text, size_t len, struct collateral** ret,
                              struct moat_error* err) WARN_UNUSED;
int collateral_load_qvl_json(const char* path, struct collateral** ret,
                             struct moat_error* err) WARN_UNUSED;

/* A PCS response {"<member>": {...}, "signature": "<128 hex>"} ("tcbInfo" or
 * "enclaveIdentity"): copies the exact bytes of the member's value and decodes the signature. */
int pcs_signed_json_split(const char* text, size_t len, const char* member, char** ret_json,
                          size_t* ret_json_len, uint8_t ret_sig[64],
                          struct moat_error* err) WARN_UNUSED;

/* Individual Intel PCS files; pck_crl_issuer_chain may be NULL. */
struct collateral_pcs_files {
    const char* tcb_info;              /* {"tcbInfo":…,"signature":…} */
    const char* tcb_info_issuer_chain; /* PEM */
    const char* qe_identity;           /* {"enclaveIdentity":…,"signature":…} */
    const char* qe_identity_issuer_chain;
    const char* root_ca_crl; /* DER or PEM */
    const char* pck_crl;
    const char* pck_crl_issuer_chain;
};
int collateral_load_pcs_files(const struct collateral_pcs_files* files, struct collateral** ret,
                              struct moat_error* err) WARN_UNUSED;

/* The verified, parsed collateral. */
struct collateral_verified {
    struct tcb_info* tcb_info;       /* owned */
    struct qe_identity* qe_identity; /* owned */
    bool stale_crl;                  /* a CRL past nextUpdate was accepted (opts) */
    time_t earliest_expiry;          /* min of nextUpdate and notAfter over all collateral */
};
void collateral_verified_clear(struct collateral_verified* v);

/*
 * §2.2 steps 2-3 and 7 for the collateral itself, at opts->at against opts->anchor: the TCB
 * info and QE identity issuer chains (with the root CA CRL), their ECDSA signatures over the
 * exact JSON bytes, issueDate <= at <= nextUpdate; the root CA CRL (signed by the anchor) and,
 * when the PCK CRL issuer chain is present, that chain and the PCK CRL's signature. The PCK
 * CRL's own check against the PCK chain is collateral_verify_pck's.
 */
int collateral_verify(const struct collateral* c, const struct chain_verify_opts* opts,
                      struct collateral_verified* ret, struct moat_error* err) WARN_UNUSED;

/* pck_chain_verify with the collateral's CRLs. */
int collateral_verify_pck(const struct collateral* c, const struct cert_chain* pck_chain,
                          const struct chain_verify_opts* opts, struct chain_verify_result* ret,
                          struct moat_error* err) WARN_UNUSED;
