/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DCAP quote verifier (reference/attestation.md §2.2 steps 0-12, in Intel QVL's order):
 * the parts of quote.h, pck.h, collateral.h and tcb.h put together into one verdict.
 *
 * Every check runs whose inputs exist, also after an earlier one failed, so that a report names
 * every problem; a check whose input is missing (no collateral, no PCK chain) is "skipped" with
 * the reason. A quote is accepted only when no check failed, the TCB was evaluated with verified
 * collateral and its status is in the accepted set. Without collateral only the signatures, the
 * QE report-data binding and the PCK chain (without CRLs) are checked, and the status is
 * "TcbUnverified": never accepted.
 *
 * Failure reasons carry Intel QVL's status names where QVL has one (STATUS_INVALID_QUOTE_SIGNATURE,
 * STATUS_TCB_INFO_MISMATCH, …); the debug policy (§2.2 step 12) is moat's: DEBUG_ENCLAVE /
 * DEBUG_TD.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "collateral.h"
#include "common.h"
#include "pck.h"
#include "quote.h"
#include "tcb.h"

/* The checks, in the order they run (§2.2). */
enum attest_check_id {
    ATTEST_CHECK_PARSE = 0,           /* step 0: format, QE vendor id */
    ATTEST_CHECK_PCK_CHAIN,           /* steps 1-2: PCK chain to the anchor, CRLs */
    ATTEST_CHECK_COLLATERAL,          /* step 3 (+7): TCB info / QE identity chains, signatures,
                                         dates, CRLs; TCB info id/FMSPC/PCE-ID */
    ATTEST_CHECK_TDX_MODULE,          /* step 4, TDX only */
    ATTEST_CHECK_QE_REPORT_SIGNATURE, /* step 5 */
    ATTEST_CHECK_QE_REPORT_DATA,      /* step 6 */
    ATTEST_CHECK_QE_IDENTITY,         /* step 7 */
    ATTEST_CHECK_QUOTE_SIGNATURE,     /* step 8 */
    ATTEST_CHECK_TCB_LEVEL,           /* steps 9-10 */
    ATTEST_CHECK_DEBUG,               /* step 12 */
    ATTEST_CHECK_COUNT,
};

enum attest_check_result {
    ATTEST_SKIPPED = 0, /* not run: an input is missing (the detail says which) */
    ATTEST_PASS,
    ATTEST_FAIL,
};

struct attest_check {
    enum attest_check_result result;
    const char* status; /* a failure's status name (static string), else NULL */
    char detail[512];
};

/* "parse", "pck_chain", "collateral", "tdx_module", "qe_report_signature", "qe_report_data",
 * "qe_identity", "quote_signature", "tcb_level", "debug". */
const char* attest_check_name(enum attest_check_id id);
/* "pass", "fail", "skipped". */
const char* attest_check_result_name(enum attest_check_result r);

/* A bit per enum tcb_status in attest_verify_opts.accepted. */
#define ATTEST_ACCEPT(status) (1u << (unsigned)(status))

struct attest_verify_opts {
    X509* anchor;         /* trust anchor (not owned); NULL = the Intel SGX Root CA */
    time_t at;            /* verification time */
    bool allow_stale_crl; /* accept CRLs past nextUpdate (reported in the result) */
    bool allow_debug;     /* accept debug enclaves / TDs */
    uint32_t accepted;    /* ATTEST_ACCEPT() bits; 0 = UpToDate only */
    /* The PCK chain when the quote's certification data does not carry one (type 1-4, e.g. the
     * PPID; not owned). NULL: the quote's type-5 PEM chain. */
    const struct cert_chain* pck_chain;
    /* Results kept across verifications (NULL: none): see attest_verify_cache_new. */
    struct attest_verify_cache* cache;
};

/* What a verifier that sees many quotes keeps (as QVL's callers keep verified collateral):
 * the verified collateral, the verified PCK chain (by the hash of its PEM) and the QE report
 * whose signature verified. A kept result is used again only with collateral of the same
 * content (every byte of its chains, CRLs, TCB info, QE identity and signatures, compared in
 * full: not the same object, which may have been freed, reallocated or changed in place), a
 * trust anchor of the same DER and the same stale-CRL mode, at a time from the one it was
 * checked at up to its earliest expiry; anything else is checked anew (and drops what was
 * kept). Not thread-safe. */
struct attest_verify_cache;
struct attest_verify_cache* attest_verify_cache_new(void);
void attest_verify_cache_free(struct attest_verify_cache* cache);

/* How often a kept result was used (hits) or a check ran with a cache (misses); for tests and
 * benchmarks. NULL cache: zeros. */
struct attest_verify_cache_stats {
    uint64_t collateral_hits, collateral_misses;
    uint64_t chain_hits, chain_misses;
    uint64_t qe_hits, qe_misses;
};
void attest_verify_cache_get_stats(const struct attest_verify_cache* cache,
                                   struct attest_verify_cache_stats* ret);

/* Marks a simulated quote (sim.c): header user_data starts with this. */
#define ATTEST_SIMULATED_MARK "MOAT SIMULATED"

struct attest_verify_result {
    struct attest_check checks[ATTEST_CHECK_COUNT];
    bool parsed; /* the fields below the checks are set */
    uint16_t version;
    uint32_t tee_type;
    uint16_t body_type;
    struct quote_sgx_body sgx; /* body_type 1 */
    struct quote_td_body td;   /* body_type 2, 3 */
    bool simulated;            /* a moat SIMULATED quote: proves nothing about hardware */
    bool debug;                /* the enclave / TD is a debug one */

    bool tcb_evaluated;         /* collateral verified and a TCB verdict computed */
    enum tcb_status tcb_status; /* valid when tcb_evaluated */
    char** advisories;          /* owned; of the deciding levels (tcb.h) */
    size_t n_advisories;
    char tcb_date[32];      /* "" when none */
    time_t earliest_expiry; /* of the chain and collateral used; 0 when unknown */
    bool crl_checked;       /* revocation was checked with CRLs */
    bool stale_crl;         /* a CRL past its nextUpdate was accepted */
    int first_failure;      /* enum attest_check_id of the first failed check, -1: none */
    /* The outcome: the first failed check's status, else the TCB status name, else
     * "TcbUnverified" (no collateral). Static string. */
    const char* status;
    bool accepted;
    char reason[640]; /* why not accepted (the first failed check, or the status); "" if accepted */
};
void attest_verify_result_clear(struct attest_verify_result* res);

/*
 * Verifies `len` bytes of quote (an OpenEnclave header is removed) with collateral `c` (NULL:
 * no collateral, see above) under `opts`, and fills *res (clear it with
 * attest_verify_result_clear afterwards, also after a failure). Returns 0 when the quote was
 * verified — whether or not it is accepted: see res->accepted — and -EBADMSG / -ENOTSUP when it
 * is not a DCAP quote moat reads (res->checks[ATTEST_CHECK_PARSE] and `err` say why), -EINVAL
 * for bad options.
 */
int attest_verify(const uint8_t* quote, size_t len, const struct collateral* c,
                  const struct attest_verify_opts* opts, struct attest_verify_result* res,
                  struct moat_error* err) WARN_UNUSED;

/* Parses "UpToDate,SWHardeningNeeded,…" (TCB status names, comma-separated) into ATTEST_ACCEPT
 * bits. TcbNotSupported cannot be accepted. -EINVAL with `err` naming the word. */
int attest_accept_parse(const char* list, uint32_t* ret_mask, struct moat_error* err) WARN_UNUSED;

/* The result as JSON (new reference; aborts on OOM): status, accepted, simulated, tcb_status,
 * advisories, tcb_date, earliest_expiry, stale_crl, crl_checked, measurements, report_data,
 * checks[] {name, result, status, detail}. */
json_t* attest_verify_result_to_json(const struct attest_verify_result* res);

/* One line per check and a summary, for people (moat quote verify). */
void attest_verify_format_text(const struct attest_verify_result* res, struct strbuf* out);
