/* SPDX-License-Identifier: Apache-2.0 */
/* Component-private: the parts of the simulated platform (sim.c, sim_pki.c). */
#pragma once

#include <openssl/x509.h>

#include "sim.h"

/* What the PCK certificate says about the platform (reference §2.3), and what its quotes'
 * headers and QE reports carry. */
struct sim_params {
    uint8_t ppid[16], cpusvn[16], fmspc[6], pceid[2];
    uint8_t comp_svn[16];
    uint16_t pcesvn;
};

struct sim_platform {
    struct sim_params params;
    EVP_PKEY* pck_key; /* signs QE reports */
    EVP_PKEY* att_key; /* the attestation key: signs quotes */
    char* pck_chain;   /* PEM: leaf, PCK CA, root */
    size_t pck_chain_len;
};

/* sim_pki.c */
X509* simi_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                unsigned days, const struct strbuf* sgx_ext);
X509_CRL* simi_crl(X509* issuer, EVP_PKEY* key, unsigned days);
void simi_sgx_extension(const struct sim_params* sp, struct strbuf* ret);
