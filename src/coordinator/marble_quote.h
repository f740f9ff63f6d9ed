/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Marble's quote at activation (reference/marblerun.md §4.4; MarbleRun's ertvalidator,
 * internal/tcb and quote.PackageProperties): the OpenEnclave remote-report header, moat's DCAP
 * verifier, then MarbleRun's policy — TCB status against AcceptedTCBStatuses and
 * AcceptedAdvisories, report data bound to the Marble's TLS certificate, and the package's
 * Debug / UniqueID / SignerID / ProductID / SecurityVersion. Error texts are MarbleRun's (the
 * caller adds "invalid quote: ").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "verify.h"

/* The OpenEnclave header MarbleRun's premain puts in front of a DCAP quote: u32le version 1,
 * u32le type 2 (OE_REPORT_TYPE_SGX_REMOTE), u64le length of the quote that follows. */
#define OE_REPORT_HEADER_SIZE 16

/* A manifest's PackageProperties (§1.1); NULL / "" fields are not required. */
struct marble_package {
    bool debug;
    const char* unique_id; /* hex MRENCLAVE, compared case-insensitively */
    const char* signer_id; /* hex MRSIGNER */
    const uint64_t* product_id;
    const uint64_t* security_version; /* the quote's ISVSVN must be >= */
    const char* const* accepted_tcb_statuses;
    size_t n_accepted_tcb_statuses;
    const char* const* accepted_advisories;
    size_t n_accepted_advisories;
};

/* The DCAP quote inside an OpenEnclave remote report; -EINVAL naming what is wrong. */
int marble_quote_unwrap(const uint8_t* report, size_t len, const uint8_t** ret_quote,
                        size_t* ret_len, struct moat_error* err) WARN_UNUSED;

/* MarbleRun's policy on a verification result (its checks other than the TCB level passed):
 * 0, or -EPERM with MarbleRun's message. `cert_der` is the Marble's TLS certificate. */
int marble_policy_check(const struct attest_verify_result* res, const uint8_t* cert_der,
                        size_t cert_len, const struct marble_package* pkg,
                        struct moat_error* err) WARN_UNUSED;

/* The whole check: unwrap, verify with `c` and `opts` (every TCB status is passed on to the
 * policy; debug quotes too: the package decides), policy. 0, or -EPERM with the message. */
int marble_quote_validate(const uint8_t* report, size_t len, const uint8_t* cert_der,
                          size_t cert_len, const struct marble_package* pkg,
                          const struct collateral* c, const struct attest_verify_opts* opts,
                          struct moat_error* err) WARN_UNUSED;
