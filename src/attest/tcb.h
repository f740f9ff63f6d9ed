/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCB info (v2, v3 "SGX"/"TDX") and enclave identity (QE / TD_QE) models, and Intel QVL's TCB
 * level matching and status convergence (reference/attestation.md §2.2 steps 3-4, 7, 9-11;
 * §2.4 for the JSON; QVL TcbLevelCheck.cpp, TdxModuleCheck.cpp, TDRelaunchCheck.cpp,
 * EnclaveReportVerifier.cpp).
 *
 * The parsers take the exact signed JSON text of the inner object (collateral.h checks the
 * signature first). Errors: -EBADMSG for malformed JSON or a field of the wrong type/size;
 * -EKEYREJECTED for a platform/collateral mismatch (FMSPC, PCE-ID, id, TDX module, QE
 * identity), with QVL's status name in the message.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common.h"

/* Status names exactly as Intel QVL / PCS spell them (tcb_status_name). */
enum tcb_status {
    TCB_UP_TO_DATE = 0,
    TCB_SW_HARDENING_NEEDED,
    TCB_CONFIGURATION_NEEDED,
    TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED,
    TCB_OUT_OF_DATE,
    TCB_OUT_OF_DATE_CONFIGURATION_NEEDED,
    TCB_REVOKED,
    TCB_TD_RELAUNCH_ADVISED,
    TCB_TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
    TCB_NOT_SUPPORTED, /* no level matched: reject */
};

/* "UpToDate", "SWHardeningNeeded", …, "TcbNotSupported". */
const char* tcb_status_name(enum tcb_status status);
/* Parses the seven TCB-info level statuses ("UpToDate" … "Revoked"); -EINVAL otherwise. */
int tcb_status_parse(const char* name, enum tcb_status* ret) WARN_UNUSED;

struct tcb_advisories {
    char** ids; /* "INTEL-SA-00289", … */
    size_t n;
};

struct tcb_level {
    uint8_t sgx_svn[16];
    uint16_t pcesvn;
    uint8_t tdx_svn[16]; /* TDX TCB info only */
    enum tcb_status status;
    char tcb_date[32]; /* as served, "2024-03-13T00:00:00Z" */
    struct tcb_advisories advisories;
};

/* A level of a TDX module identity or an enclave identity: judged by one ISVSVN. */
struct isv_level {
    uint16_t isvsvn;
    enum tcb_status status; /* UpToDate, OutOfDate or Revoked */
    char tcb_date[32];
    struct tcb_advisories advisories;
};

struct tdx_module_identity {
    char id[16]; /* "TDX_01"; "" for the plain tdxModule */
    uint8_t mrsigner[48];
    uint8_t attributes[8];
    uint8_t attributes_mask[8];
    struct isv_level* levels; /* sorted by isvsvn, highest first */
    size_t n_levels;
};

enum tcb_info_id { TCB_INFO_SGX, TCB_INFO_TDX };

struct tcb_info {
    int version;         /* 2 or 3 */
    enum tcb_info_id id; /* v2 has no id: SGX */
    time_t issue_date, next_update;
    uint8_t fmspc[6];
    uint8_t pceid[2];
    int64_t tcb_type;
    int64_t tcb_evaluation_data_number;
    /* QVL order: descending by (SGX components, PCESVN, TDX components); duplicates dropped */
    struct tcb_level* levels;
    size_t n_levels;
    bool has_tdx_module;
    struct tdx_module_identity tdx_module; /* no levels */
    struct tdx_module_identity* module_ids;
    size_t n_module_ids;
};

struct qe_identity {
    char id[8]; /* "QE", "QVE", "TD_QE" */
    int version;
    time_t issue_date, next_update;
    int64_t tcb_evaluation_data_number;
    uint8_t miscselect[4], miscselect_mask[4]; /* report byte order (§2.2 step 7) */
    uint8_t attributes[16], attributes_mask[16];
    uint8_t mrsigner[32];
    uint16_t isvprodid;
    struct isv_level* levels; /* highest isvsvn first */
    size_t n_levels;
};

/* Parses "YYYY-MM-DDTHH:MM:SSZ" (UTC). */
int iso8601_parse(const char* s, time_t* ret) WARN_UNUSED;

/* Parse the inner tcbInfo / enclaveIdentity object (exact JSON text, not NUL-terminated). */
int tcb_info_parse(const char* json, size_t len, struct tcb_info** ret,
                   struct moat_error* err) WARN_UNUSED;
void tcb_info_free(struct tcb_info* info);
static inline void tcb_info_freep(struct tcb_info** p) {
    tcb_info_free(*p);
}
int qe_identity_parse(const char* json, size_t len, struct qe_identity** ret,
                      struct moat_error* err) WARN_UNUSED;
void qe_identity_free(struct qe_identity* qe);
static inline void qe_identity_freep(struct qe_identity** p) {
    qe_identity_free(*p);
}

/* The QE report fields QE identity matching needs (quote: QE report body, §1.2). */
struct qe_report_fields {
    uint8_t miscselect[4]; /* bytes as in the report */
    uint8_t attributes[16];
    uint8_t mrsigner[32];
    uint16_t isvprodid;
    uint16_t isvsvn;
};

/* §2.2 step 7 (QVL 4.1.2.9.5-10): miscselect/attributes under their masks, mrsigner and
 * isvprodid must match (-EKEYREJECTED naming the QVL status); then *ret_status is the status of
 * the first level with isvsvn <= the report's (UpToDate, OutOfDate, Revoked), or
 * TCB_NOT_SUPPORTED, and *ret_level that level (NULL when none). `expect_id` ("QE"/"TD_QE")
 * may be NULL to skip the id check. */
int qe_identity_match(const struct qe_identity* qe, const char* expect_id,
                      const struct qe_report_fields* report, enum tcb_status* ret_status,
                      const struct isv_level** ret_level, struct moat_error* err) WARN_UNUSED;

/* What TCB level matching needs from the quote and its PCK certificate. */
struct tcb_platform {
    bool is_tdx;         /* quote tee_type 0x81 */
    int quote_version;   /* 3, 4, 5 */
    uint8_t fmspc[6];    /* PCK extension */
    uint8_t pceid[2];    /* PCK extension */
    uint8_t sgx_svn[16]; /* PCK extension: SGX TCB comp SVNs */
    uint16_t pcesvn;     /* PCK extension */
    /* TDX only: TD report body */
    uint8_t tee_tcb_svn[16];
    uint8_t mr_signer_seam[48];
    uint8_t seam_attributes[8];
    bool has_tee_tcb_svn2; /* v5 body type 3 (TD report 1.5) */
    uint8_t tee_tcb_svn2[16];
};

struct tcb_verdict {
    enum tcb_status status;               /* final, converged (step 10) */
    const struct tcb_level* sgx_level;    /* borrowed from the tcb_info; NULL: none */
    const struct tcb_level* tdx_level;    /* TDX only */
    enum tcb_status module_status;        /* TDX only; UpToDate when the module is not judged */
    const struct isv_level* module_level; /* TDX only, may be NULL */
    enum tcb_status qe_status;
    const char* tcb_date; /* of the deciding level (TDX level for TDX); NULL: none */
    /* Union, in this order and without repeats, of the advisory IDs of the deciding level, the
     * TDX module level and the QE identity level. Strings borrowed from the models. */
    const char** advisories;
    size_t n_advisories;
};
void tcb_verdict_clear(struct tcb_verdict* v);

/*
 * §2.2 steps 3 (id, FMSPC, PCE-ID), 4 (TDX module identity), 9 (level matching) and 10
 * (convergence with the TDX module and QE statuses, TD relaunch for TD report 1.5).
 * `qe_status` is qe_identity_match's result. A platform that matches no level gives 0 and
 * status TCB_NOT_SUPPORTED; mismatches give -EKEYREJECTED ("TCB_INFO_MISMATCH",
 * "TDX_MODULE_MISMATCH"). The verdict borrows from `info` and `qe_level`'s model.
 */
int tcb_evaluate(const struct tcb_info* info, const struct tcb_platform* platform,
                 enum tcb_status qe_status, const struct isv_level* qe_level,
                 struct tcb_verdict* ret, struct moat_error* err) WARN_UNUSED;

/* QVL convergeTcbStatusWithQeTcbStatus / …WithTdxModuleStatus (§2.2 step 10): `other` is the
 * QE or module status (UpToDate, OutOfDate, Revoked, TcbNotSupported). */
enum tcb_status tcb_converge(enum tcb_status level, enum tcb_status other);
