/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mr_policy_check (era's policy on a verified quote; reference/marblerun.md §7 step 3, §3.5
 * /quote: report data = sha256(root DER ‖ nonce)) on results made here, and mr_verify_quote on
 * an empty quote (§6 simulation mode). The end-to-end path is tests/test_marblerun_cli.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "../attest/verify.h"
#include "marblerun.h"

static const uint8_t g_root[]  = "root certificate DER";
static const uint8_t g_nonce[] = "nonce";

static void good(struct attest_verify_result* res, struct mr_era* era) {
    memset(res, 0, sizeof(*res));
    res->parsed        = true;
    res->body_type     = 1;
    res->first_failure = -1;
    res->tcb_evaluated = true;
    res->tcb_status    = TCB_UP_TO_DATE;
    memset(res->sgx.mr_enclave, 0x11, 32);
    memset(res->sgx.mr_signer, 0x22, 32);
    res->sgx.isv_prod_id = 3;
    res->sgx.isv_svn     = 5;
    uint8_t cat[sizeof(g_root) + sizeof(g_nonce)];
    memcpy(cat, g_root, sizeof(g_root));
    memcpy(cat + sizeof(g_root), g_nonce, sizeof(g_nonce));
    assert_int_equal(sha256_buf(cat, sizeof(cat), res->sgx.report_data), 0);
    memset(era, 0, sizeof(*era));
    era->has_unique_id = true;
    memset(era->unique_id, 0x11, 32);
}

static int check(const struct attest_verify_result* res, const struct mr_era* era,
                 uint32_t accepted, struct moat_error* err) {
    struct mr_verify_opts o = {.era = era, .accepted_tcb = accepted};
    struct mr_verdict v;
    return mr_policy_check(res, g_root, sizeof(g_root), g_nonce, sizeof(g_nonce), &o, &v, err);
}

static void expect(int r, const struct moat_error* err, const char* needle) {
    assert_int_equal(r, -EPERM);
    if (!strstr(err->msg, needle))
        fail_msg("message '%s' lacks '%s'", err->msg, needle);
}

static void test_accepts(void** state) {
    (void)state;
    struct attest_verify_result res;
    struct mr_era era;
    struct moat_error err = {0};
    good(&res, &era);
    struct mr_verify_opts o = {.era = &era};
    struct mr_verdict v;
    assert_int_equal(
        mr_policy_check(&res, g_root, sizeof(g_root), g_nonce, sizeof(g_nonce), &o, &v, &err), 0);
    assert_string_equal(v.unique_id,
                        "1111111111111111111111111111111111111111111111111111111111111111");
    assert_string_equal(v.tcb_status, "UpToDate");
    assert_int_equal(v.product_id, 3);
}

/* the binding: another nonce or another root is a replayed / relayed quote */
static void test_binding(void** state) {
    (void)state;
    struct attest_verify_result res;
    struct mr_era era;
    struct moat_error err = {0};
    good(&res, &era);
    struct mr_verify_opts o = {.era = &era};
    struct mr_verdict v;
    expect(mr_policy_check(&res, g_root, sizeof(g_root), (const uint8_t*)"other", 5, &o, &v, &err),
           &err, "report data doesn't match");
    expect(mr_policy_check(&res, (const uint8_t*)"x", 1, g_nonce, sizeof(g_nonce), &o, &v, &err),
           &err, "report data doesn't match");
}

static void test_identity(void** state) {
    (void)state;
    struct attest_verify_result res;
    struct mr_era era;
    struct moat_error err = {0};
    good(&res, &era);
    era.unique_id[31] ^= 1;
    expect(check(&res, &era, 0, &err), &err, "invalid UniqueID");
    good(&res, &era);
    era.has_signer_id = true;
    memset(era.signer_id, 0x23, 32);
    expect(check(&res, &era, 0, &err), &err, "invalid SignerID");
    good(&res, &era);
    era.has_product_id = true;
    era.product_id     = 4;
    expect(check(&res, &era, 0, &err), &err, "invalid ProductID");
    good(&res, &era);
    era.has_security_version = true;
    era.security_version     = 6;
    expect(check(&res, &era, 0, &err), &err, "invalid SecurityVersion");
    era.security_version = 5;
    assert_int_equal(check(&res, &era, 0, &err), 0);
    res.debug = true;
    expect(check(&res, &era, 0, &err), &err, "debug");
    era.debug = true;
    assert_int_equal(check(&res, &era, 0, &err), 0);
}

static void test_tcb(void** state) {
    (void)state;
    struct attest_verify_result res;
    struct mr_era era;
    struct moat_error err = {0};
    good(&res, &era);
    res.tcb_status = TCB_OUT_OF_DATE;
    expect(check(&res, &era, 0, &err), &err, "TCB level invalid: OutOfDate");
    assert_int_equal(check(&res, &era, ATTEST_ACCEPT(TCB_OUT_OF_DATE), &err), 0);
    /* advisories of SWHardeningNeeded must all be accepted when a list is given */
    res.tcb_status          = TCB_SW_HARDENING_NEEDED;
    char* adv[]             = {(char*)"INTEL-SA-00334", (char*)"INTEL-SA-00615"};
    res.advisories          = adv;
    res.n_advisories        = 2;
    char* ok_list[]         = {(char*)"INTEL-SA-00334"};
    struct mr_verify_opts o = {.era                   = &era,
                               .accepted_tcb          = ATTEST_ACCEPT(TCB_SW_HARDENING_NEEDED),
                               .accepted_advisories   = ok_list,
                               .n_accepted_advisories = 1};
    struct mr_verdict v;
    expect(mr_policy_check(&res, g_root, sizeof(g_root), g_nonce, sizeof(g_nonce), &o, &v, &err),
           &err, "INTEL-SA-00615");
    o.n_accepted_advisories = 0;
    assert_int_equal(
        mr_policy_check(&res, g_root, sizeof(g_root), g_nonce, sizeof(g_nonce), &o, &v, &err), 0);
    res.advisories   = NULL;
    res.n_advisories = 0;
    /* no collateral: never accepted */
    good(&res, &era);
    res.tcb_evaluated = false;
    expect(check(&res, &era, 0, &err), &err, "not evaluated");
    /* a failed check */
    good(&res, &era);
    res.first_failure = ATTEST_CHECK_QUOTE_SIGNATURE;
    snprintf(res.reason, sizeof(res.reason), "STATUS_INVALID_QUOTE_SIGNATURE");
    expect(check(&res, &era, 0, &err), &err, "STATUS_INVALID_QUOTE_SIGNATURE");
    /* a TD quote is not a Coordinator */
    good(&res, &era);
    res.body_type = 2;
    expect(check(&res, &era, 0, &err), &err, "not an SGX enclave quote");
}

/* §6: MarbleRun's simulation mode serves an empty quote */
static void test_empty_quote(void** state) {
    (void)state;
    struct mr_era era       = {.has_unique_id = true};
    struct mr_verify_opts o = {.era = &era};
    struct mr_verdict v;
    struct moat_error err = {0};
    expect(mr_verify_quote((const uint8_t*)"", 0, g_root, sizeof(g_root), NULL, 0, &o, &v, &err),
           &err, "simulation mode");
    expect(mr_verify_quote((const uint8_t*)"\1\0\0\0\2\0\0\0\4\0\0\0\0\0\0\0abcd", 20, g_root,
                           sizeof(g_root), NULL, 0, &o, &v, &err),
           &err, "verifying quote failed");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),     cmocka_unit_test(test_binding),
        cmocka_unit_test(test_identity),    cmocka_unit_test(test_tcb),
        cmocka_unit_test(test_empty_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
