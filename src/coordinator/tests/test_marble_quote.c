/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for a Marble's quote at activation (marble_quote.h; reference/marblerun.md §4.4):
 * the OpenEnclave header, MarbleRun's TCB, binding and package rules with its messages, and
 * the whole check on quotes of moat's simulated platform (verified for real against its root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <stdlib.h>
#include <time.h>

#include "marble_quote.h"
#include "sim.h"

static const uint8_t CERT[] = "the marble's self-signed certificate (DER in real life)";

static void test_unwrap(void** state) {
    (void)state;
    uint8_t r[16 + 4] = {1, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 'q', 'u', 'o', 't'};
    const uint8_t* q;
    size_t n;
    struct moat_error err = {0};
    assert_int_equal(marble_quote_unwrap(r, sizeof(r), &q, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(q, "quot", 4);
    r[8] = 5; /* the length says more than follows */
    assert_int_equal(marble_quote_unwrap(r, sizeof(r), &q, &n, &err), -EINVAL);
    r[8] = 4;
    r[4] = 1; /* OE_REPORT_TYPE_SGX_LOCAL */
    assert_int_equal(marble_quote_unwrap(r, sizeof(r), &q, &n, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not an OpenEnclave SGX remote report"));
    assert_int_equal(marble_quote_unwrap(r, 10, &q, &n, &err), -EINVAL);
    assert_int_equal(marble_quote_unwrap(r, 0, &q, &n, &err), -EINVAL);
}

/* A verification result as moat's verifier would leave it for an SGX quote of CERT. */
static struct attest_verify_result result(enum tcb_status status) {
    struct attest_verify_result res = {.parsed = true, .body_type = 1, .tcb_evaluated = true};
    res.tcb_status                  = status;
    res.first_failure               = -1;
    memset(res.sgx.mr_enclave, 0xab, 32);
    memset(res.sgx.mr_signer, 0xcd, 32);
    res.sgx.isv_prod_id = 7;
    res.sgx.isv_svn     = 3;
    assert_int_equal(sha256_buf(CERT, sizeof(CERT), res.sgx.report_data), 0);
    return res;
}

static void expect(const struct attest_verify_result* res, const struct marble_package* pkg,
                   const char* message) {
    struct moat_error err = {0};
    int r                 = marble_policy_check(res, CERT, sizeof(CERT), pkg, &err);
    if (!message) {
        if (r != 0)
            fail_msg("refused: %s", err.msg);
        return;
    }
    assert_int_equal(r, -EPERM);
    if (!strstr(err.msg, message))
        fail_msg("'%s' lacks '%s'", err.msg, message);
}

static void test_tcb_rules(void** state) {
    (void)state;
    struct marble_package pkg      = {0};
    struct attest_verify_result up = result(TCB_UP_TO_DATE), sw = result(TCB_SW_HARDENING_NEEDED);
    struct attest_verify_result old = result(TCB_OUT_OF_DATE);
    expect(&up, &pkg, NULL);
    expect(&sw, &pkg, NULL); /* an empty list means SWHardeningNeeded */
    expect(&old, &pkg, "TCB level invalid: OutOfDate");
    const char* const accepted[] = {"OutOfDate"};
    pkg.accepted_tcb_statuses    = accepted;
    pkg.n_accepted_tcb_statuses  = 1;
    expect(&old, &pkg, NULL);
    expect(&sw, &pkg, "TCB level invalid: SWHardeningNeeded"); /* the list replaces the default */

    char* advisories[]          = {(char*)"INTEL-SA-00615", (char*)"INTEL-SA-00657"};
    sw.advisories               = advisories;
    sw.n_advisories             = 2;
    const char* const sw_only[] = {"SWHardeningNeeded"};
    const char* const one[]     = {"INTEL-SA-00615"};
    struct marble_package p2    = {.accepted_tcb_statuses   = sw_only,
                                   .n_accepted_tcb_statuses = 1,
                                   .accepted_advisories     = one,
                                   .n_accepted_advisories   = 1};
    expect(&sw, &p2,
           "TCB status SWHardeningNeeded contains advisories not accepted by "
           "configuration: [INTEL-SA-00657]");
    p2.n_accepted_advisories = 0; /* none listed: not checked */
    expect(&sw, &p2, NULL);
}

static void test_binding_and_package(void** state) {
    (void)state;
    struct attest_verify_result res = result(TCB_UP_TO_DATE);
    struct marble_package pkg       = {0};
    res.sgx.report_data[5] ^= 1;
    expect(&res, &pkg, "hash(cert) != report.Data: [");
    res.sgx.report_data[5] ^= 1;

    const char* upper = "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB";
    uint64_t prod = 7, svn_ok = 2, svn_high = 4, other = 8;
    pkg.unique_id        = upper; /* case-insensitive */
    pkg.product_id       = &prod;
    pkg.security_version = &svn_ok;
    expect(&res, &pkg, NULL);
    pkg.security_version = &svn_high; /* the quote's ISVSVN 3 < 4 */
    expect(&res, &pkg,
           "PackageProperties not compliant:\nexpected: {Debug: false, UniqueID: \"ABAB");
    expect(&res, &pkg,
           ", ProductID: 7, SecurityVersion: 4}\ngot: {Debug: false, UniqueID: "
           "\"abababab");
    pkg.security_version = &svn_ok;
    pkg.product_id       = &other;
    expect(&res, &pkg, "PackageProperties not compliant");
    pkg.product_id = &prod;
    pkg.signer_id  = "cdcd"; /* not the whole MRSIGNER */
    expect(&res, &pkg, "SignerID: \"cdcd\"");
    pkg.signer_id = NULL;
    pkg.debug     = true; /* Debug must be equal, both ways */
    expect(&res, &pkg, "expected: {Debug: true");
    res.debug = true;
    expect(&res, &pkg, NULL);
    pkg.debug = false;
    expect(&res, &pkg, "got: {Debug: true");
}

/* The whole check on the simulated platform: the same verifier as for hardware quotes. */
static void test_validate_sim_quotes(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-marble-sim-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct moat_error err = {0};
    assert_int_equal(sim_create(dir, 30, true, &err), 0);
    struct sim_platform* p = NULL;
    assert_int_equal(sim_load(dir, &p, &err), 0);
    struct sim_enclave e = {.isvprodid = 7, .isvsvn = 3};
    memset(e.mrenclave, 0x11, 32);
    assert_int_equal(sha256_buf(CERT, sizeof(CERT), e.report_data), 0);
    uint8_t* raw = NULL;
    size_t len   = 0;
    assert_int_equal(sim_quote(p, &e, &raw, &len, &err), 0);
    uint8_t* report      = xmalloc(len + OE_REPORT_HEADER_SIZE);
    const uint8_t hdr[8] = {1, 0, 0, 0, 2, 0, 0, 0};
    memcpy(report, hdr, 8);
    for (int i = 0; i < 8; i++)
        report[8 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(report + OE_REPORT_HEADER_SIZE, raw, len);

    _cleanup_collateral_ struct collateral* c = NULL;
    _cleanup_x509_ X509* root                 = NULL;
    assert_int_equal(sim_load_verifier(dir, &c, &root, &err), 0);
    struct attest_verify_opts opts = {.anchor = root, .at = time(NULL)};

    struct marble_package pkg = {
        .unique_id = "1111111111111111111111111111111111111111111111111111111111111111"};
    size_t total = len + OE_REPORT_HEADER_SIZE;
    assert_int_equal(marble_quote_validate(report, total, CERT, sizeof(CERT), &pkg, c, &opts, &err),
                     0);
    /* another certificate than the one quoted */
    assert_int_equal(marble_quote_validate(report, total, CERT, 10, &pkg, c, &opts, &err), -EPERM);
    assert_non_null(strstr(err.msg, "hash(cert) != report.Data"));
    /* the wrong enclave */
    pkg.unique_id = "2222222222222222222222222222222222222222222222222222222222222222";
    assert_int_equal(marble_quote_validate(report, total, CERT, sizeof(CERT), &pkg, c, &opts, &err),
                     -EPERM);
    assert_non_null(strstr(err.msg, "PackageProperties not compliant"));
    pkg.unique_id = NULL;
    /* a flipped byte in the signed body */
    report[OE_REPORT_HEADER_SIZE + 48 + 100] ^= 1;
    assert_int_equal(marble_quote_validate(report, total, CERT, sizeof(CERT), &pkg, c, &opts, &err),
                     -EPERM);
    assert_non_null(strstr(err.msg, "verifying quote failed: "));
    report[OE_REPORT_HEADER_SIZE + 48 + 100] ^= 1;
    /* against Intel's root (the default anchor): a simulated quote proves nothing */
    struct attest_verify_opts intel = {.at = time(NULL)};
    assert_int_equal(
        marble_quote_validate(report, total, CERT, sizeof(CERT), &pkg, c, &intel, &err), -EPERM);
    assert_non_null(strstr(err.msg, "verifying quote failed: "));

    free(report);
    free(raw);
    sim_free(p);
    _cleanup_free_ char* cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwrap),
        cmocka_unit_test(test_tcb_rules),
        cmocka_unit_test(test_binding_and_package),
        cmocka_unit_test(test_validate_sim_quotes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
