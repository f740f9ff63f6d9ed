/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Collateral from a PCCS or Intel PCS compatible service (../shared/reference/attestation.md
 * §2.4), fetched with libcurl and kept on disk: the TCB info for the FMSPC, the QE identity,
 * the PCK CRL of the CA that issued the PCK certificate, with their issuer chains (from the
 * response headers), and the root CA CRL. Nothing fetched is trusted: collateral_verify checks
 * it against the trust anchor like any other collateral.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "collateral.h"

struct pccs_request {
    const char* url;       /* the service root, e.g. https://localhost:8081 (paths below it are
                              /sgx|tdx/certification/v4/...) */
    const char* cache_dir; /* where responses are kept (made 0700 if missing); NULL:
                              $XDG_CACHE_HOME/moat/pccs, else ~/.cache/moat/pccs */
    bool tdx;
    uint8_t fmspc[6];
    bool processor_ca; /* the PCK certificate's issuer: PCK Processor CA (else Platform CA) */
    unsigned max_age;  /* seconds a kept response is used without asking again (0: 86400) */
    bool insecure__no_tls_verify; /* tests with a local service only */
};

/* The platform of a quote for a request (`url`, `cache_dir`, `max_age` are left to the
 * caller): SGX or TDX from its header, FMSPC and PCK CA from its PCK certificate, which is
 * `given` (a chain whose first certificate is the PCK leaf) or the quote's own certification
 * data. -EINVAL when there is no PCK certificate. */
struct cert_chain;
int pccs_request_for_quote(const uint8_t* quote, size_t len, const struct cert_chain* given,
                           struct pccs_request* req, struct moat_error* err) WARN_UNUSED;

/* The collateral for `req`: kept responses younger than max_age, else fetched (and kept); when
 * the service cannot be reached, kept responses of any age are used with a warning. */
int pccs_collateral(const struct pccs_request* req, struct collateral** ret,
                    struct moat_error* err) WARN_UNUSED;
