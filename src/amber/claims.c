/* SPDX-License-Identifier: Apache-2.0 */
/* Token claims from a DCAP verdict (attestation.md §4.2): see appraisal.h. */
#include <errno.h>
#include <string.h>

#include "appraisal.h"
#include "verify.h"

#define EAT_PROFILE "https://portal.trustauthority.intel.com/eat_profile.html"

static void set_hex(json_t* o, const char* key, const void* p, size_t len) {
    _cleanup_free_ char* h = hex_encode_alloc(p, len);
    json_object_set_new(o, key, json_string(h));
}

static uint64_t le64(const uint8_t b[8]) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* §4.2 "ITA v1 SGX token claims": the enclave's identity from the report body. */
static void sgx_claims(json_t* o, const struct quote_sgx_body* b, bool debug) {
    set_hex(o, "sgx_mrenclave", b->mr_enclave, 32);
    set_hex(o, "sgx_mrsigner", b->mr_signer, 32);
    json_object_set_new(o, "sgx_isvprodid", json_integer(b->isv_prod_id));
    json_object_set_new(o, "sgx_isvsvn", json_integer(b->isv_svn));
    set_hex(o, "sgx_report_data", b->report_data, 64);
    json_object_set_new(o, "sgx_is_debuggable", json_boolean(debug));
    set_hex(o, "sgx_config_id", b->config_id, 64);
}

/* §4.2 "TDX v1 claims": the TD report body; attribute bits per the TDX module spec
 * (TUD.DEBUG bit 0, SEPT_VE_DISABLE 28, PKS 30, KL 31, PERFMON 63). */
static void tdx_claims(json_t* o, const struct quote_td_body* t, bool debug) {
    set_hex(o, "tdx_tee_tcb_svn", t->tee_tcb_svn, 16);
    set_hex(o, "tdx_mrseam", t->mr_seam, 48);
    set_hex(o, "tdx_mrsignerseam", t->mr_signer_seam, 48);
    set_hex(o, "tdx_seam_attributes", t->seam_attributes, 8);
    set_hex(o, "tdx_td_attributes", t->td_attributes, 8);
    set_hex(o, "tdx_xfam", t->xfam, 8);
    set_hex(o, "tdx_mrtd", t->mr_td, 48);
    set_hex(o, "tdx_mrconfigid", t->mr_config_id, 48);
    set_hex(o, "tdx_mrowner", t->mr_owner, 48);
    set_hex(o, "tdx_mrownerconfig", t->mr_owner_config, 48);
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof(key), "tdx_rtmr%d", i);
        set_hex(o, key, t->rtmr[i], 48);
    }
    set_hex(o, "tdx_report_data", t->report_data, 64);
    /* tee_tcb_svn[0] the SEAM module's minor SVN, [1] its major (KBS doc: major*256+minor) */
    json_object_set_new(o, "tdx_seamsvn",
                        json_integer(t->tee_tcb_svn[1] * 256 + t->tee_tcb_svn[0]));
    uint64_t a = le64(t->td_attributes);
    json_object_set_new(o, "tdx_td_attributes_debug", json_boolean(a & 1));
    json_object_set_new(o, "tdx_td_attributes_septve_disable", json_boolean(a >> 28 & 1));
    json_object_set_new(o, "tdx_td_attributes_protection_keys", json_boolean(a >> 30 & 1));
    json_object_set_new(o, "tdx_td_attributes_key_locker", json_boolean(a >> 31 & 1));
    json_object_set_new(o, "tdx_td_attributes_perfmon", json_boolean(a >> 63 & 1));
    json_object_set_new(o, "tdx_is_debuggable", json_boolean(debug));
}

/* The attester_* claims (verdict, held data) and the collateral hashes. */
static void attester_claims(json_t* o, const struct amber_attest_request* req,
                            const struct attest_verify_result* res,
                            const struct amber_claims_opts* opts, bool tdx) {
    if (req->has_runtime_data) {
        _cleanup_free_ char* b = base64_encode_alloc(req->runtime_data, req->runtime_data_len);
        json_object_set_new(o, "attester_held_data", json_string(b));
        json_t* j = json_loadb((const char*)req->runtime_data, req->runtime_data_len, 0, NULL);
        if (json_is_object(j))
            json_object_set(o, "attester_runtime_data", j);
        json_decref(j);
    }
    if (req->has_user_data) {
        _cleanup_free_ char* b = base64_encode_alloc(req->user_data, req->user_data_len);
        json_object_set_new(o, "attester_user_data", json_string(b));
    }
    json_object_set_new(o, "attester_tcb_status", json_string(res->status));
    if (res->tcb_date[0])
        json_object_set_new(o, "attester_tcb_date", json_string(res->tcb_date));
    json_t* adv = json_array();
    for (size_t i = 0; i < res->n_advisories; i++)
        json_array_append_new(adv, json_string(res->advisories[i]));
    json_object_set_new(o, "attester_advisory_ids", adv);
    json_object_set_new(o, "attester_type", json_string(tdx ? "TDX" : "SGX"));
    if (opts->collateral_hashes)
        json_object_set(o, tdx ? "tdx_collateral" : "sgx_collateral",
                        (json_t*)opts->collateral_hashes);
}

/* Claims every generation shares: the JWT and EAT ones, the verifier's. */
static void common_claims(json_t* o, const struct amber_claims_opts* opts, bool beta) {
    char jti[MOAT_UUID_STR_SIZE];
    moat_uuid4(jti);
    json_object_set_new(o, "ver", json_string(beta ? "1.0" : "1.0.0"));
    json_object_set_new(o, "iss", json_string(opts->issuer));
    json_object_set_new(o, "iat", json_integer(opts->now));
    json_object_set_new(o, "nbf", json_integer(opts->now));
    json_object_set_new(o, "exp", json_integer(opts->now + opts->validity));
    json_object_set_new(o, "jti", json_string(jti));
}

static json_t* copy_or_empty(const json_t* a) {
    return a ? json_deep_copy(a) : json_array();
}

/* §4.2 "Amber-era (beta) claims". */
static json_t* beta_claims(const struct amber_attest_request* req,
                           const struct attest_verify_result* res,
                           const struct amber_claims_opts* opts, bool tdx) {
    json_t* o = json_object();
    if (tdx) {
        const struct quote_td_body* t = &res->td;
        set_hex(o, "amber_tdx_mrseam", t->mr_seam, 48);
        set_hex(o, "amber_tdx_mrsignerseam", t->mr_signer_seam, 48);
        set_hex(o, "amber_tdx_mrtd", t->mr_td, 48);
        for (int i = 0; i < 4; i++) {
            char key[24];
            snprintf(key, sizeof(key), "amber_tdx_rtmr%d", i);
            set_hex(o, key, t->rtmr[i], 48);
        }
        json_object_set_new(o, "amber_tdx_seamsvn",
                            json_integer(t->tee_tcb_svn[1] * 256 + t->tee_tcb_svn[0]));
        set_hex(o, "amber_report_data", t->report_data, 64);
    } else {
        const struct quote_sgx_body* b = &res->sgx;
        set_hex(o, "amber_sgx_mrenclave", b->mr_enclave, 32);
        set_hex(o, "amber_sgx_mrsigner", b->mr_signer, 32);
        json_object_set_new(o, "amber_sgx_isvprodid", json_integer(b->isv_prod_id));
        json_object_set_new(o, "amber_sgx_isvsvn", json_integer(b->isv_svn));
        json_object_set_new(o, "amber_sgx_is_debuggable", json_boolean(res->debug));
        set_hex(o, "amber_sgx_config_id", b->config_id, 64);
        set_hex(o, "amber_report_data", b->report_data, 64);
    }
    json_object_set_new(o, "amber_tee_is_debuggable", json_boolean(res->debug));
    if (req->has_runtime_data) {
        _cleanup_free_ char* b = base64_encode_alloc(req->runtime_data, req->runtime_data_len);
        json_object_set_new(o, "amber_tee_held_data", json_string(b));
    }
    json_object_set_new(o, "amber_tcb_status", json_string(res->status));
    json_object_set_new(o, "amber_evidence_type", json_string(tdx ? "TDX" : "SGX"));
    if (req->has_nonce)
        json_object_set_new(o, "amber_signed_nonce", amber_nonce_to_json(&req->nonce));
    json_object_set_new(o, "amber_matched_policy_ids", copy_or_empty(opts->policy_matched));
    json_object_set_new(o, "amber_unmatched_policy_ids", copy_or_empty(opts->policy_unmatched));
    json_object_set_new(o, "amber-faithful-service-ids",
                        json_pack("[s]", opts->instance_id ? opts->instance_id : ""));
    return o;
}

json_t* amber_claims_build(const struct amber_attest_request* req,
                           const struct attest_verify_result* res,
                           const struct amber_claims_opts* opts) {
    bool tdx  = res->tee_type == QUOTE_TEE_TDX;
    json_t* o = NULL;
    if (req->api == AMBER_API_BETA) {
        o = beta_claims(req, res, opts, tdx);
    } else {
        /* v1: flat; v2: the TEE's claims nested under its name (§4.1) */
        json_t* tee = json_object();
        if (tdx)
            tdx_claims(tee, &res->td, res->debug);
        else
            sgx_claims(tee, &res->sgx, res->debug);
        attester_claims(tee, req, res, opts, tdx);
        if (req->api == AMBER_API_V2) {
            o = json_object();
            json_object_set_new(o, tdx ? "tdx" : "sgx", tee);
        } else {
            o = tee;
        }
        if (req->has_nonce)
            json_object_set_new(o, "verifier_nonce", amber_nonce_to_json(&req->nonce));
        json_object_set_new(o, "verifier_instance_ids",
                            json_pack("[s]", opts->instance_id ? opts->instance_id : ""));
        json_object_set_new(o, "policy_ids_matched", copy_or_empty(opts->policy_matched));
        json_object_set_new(o, "policy_ids_unmatched", copy_or_empty(opts->policy_unmatched));
        json_object_set_new(o, "dbgstat", json_string(res->debug ? "enabled" : "disabled"));
        json_object_set_new(o, "eat_profile", json_string(EAT_PROFILE));
        json_object_set_new(o, "intuse", json_string("generic"));
    }
    common_claims(o, opts, req->api == AMBER_API_BETA);
    if (res->simulated)
        json_object_set_new(o, "moat_simulated", json_true());
    return o;
}
