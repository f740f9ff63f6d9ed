/* SPDX-License-Identifier: Apache-2.0 */
/* The verifier (verify.c, reference/attestation.md §2.2 steps 0-12) on simulated quotes: a sim
 * platform made in a temp dir (sim.h) verifies against its own root (accepted, marked
 * simulated), fails at the PCK chain against the Intel SGX Root CA, and every tampered part
 * fails at the check QVL assigns it. The real vectors are tests/test_quote_verify.py's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "collateral.h"
#include "pck.h"
#include "sim.h"
#include "verify.h"

static char g_dir[64];
static struct collateral* g_coll;
static X509* g_root;

static char* sim_path(const char* name) {
    return path_join(g_dir, name);
}

/* A new collateral object from the simulated platform's files. */
static struct collateral* load_collateral(void) {
    struct moat_error err = {0};
    struct collateral* c  = NULL;
    X509* anchor          = NULL;
    assert_int_equal(sim_load_verifier(g_dir, &c, &anchor, &err), 0);
    X509_free(anchor);
    return c;
}

/* A new object of the simulated root certificate. */
static X509* load_root(void) {
    struct moat_error err     = {0};
    _cleanup_free_ char* root = sim_path(SIM_ROOT_CERT);
    _cleanup_free_ char* pem  = NULL;
    size_t len;
    X509* x = NULL;
    assert_int_equal(read_file(root, &pem, &len, &err), 0);
    assert_int_equal(x509_parse(pem, len, &x, &err), 0);
    return x;
}

static int setup(void** state) {
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/moat-verify-test-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    struct moat_error err = {0};
    assert_int_equal(sim_create(g_dir, 30, false, &err), 0);
    g_coll = load_collateral();
    g_root = load_root();
    return 0;
}

static int teardown(void** state) {
    (void)state;
    collateral_free(g_coll);
    X509_free(g_root);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static uint8_t* make_quote(bool debug, size_t* len) {
    struct sim_platform* p = NULL;
    struct moat_error err  = {0};
    assert_int_equal(sim_load(g_dir, &p, &err), 0);
    struct sim_enclave e = {.isvprodid = 5, .isvsvn = 9, .debug = debug};
    memset(e.mrenclave, 0xaa, 32);
    memset(e.mrsigner, 0xbb, 32);
    for (int i = 0; i < 64; i++)
        e.report_data[i] = (uint8_t)(i * 3);
    uint8_t* q = NULL;
    assert_int_equal(sim_quote(p, &e, &q, len, &err), 0);
    sim_free(p);
    return q;
}

static struct attest_verify_opts sim_opts(void) {
    return (struct attest_verify_opts){.anchor = g_root, .at = time(NULL)};
}

static void verify(const uint8_t* q, size_t len, const struct collateral* c,
                   const struct attest_verify_opts* opts, struct attest_verify_result* res) {
    struct moat_error err = {0};
    if (attest_verify(q, len, c, opts, res, &err) < 0)
        fail_msg("attest_verify: %s", err.msg);
}

static void assert_check(const struct attest_verify_result* res, enum attest_check_id id,
                         enum attest_check_result want, const char* status) {
    const struct attest_check* c = &res->checks[id];
    if (c->result != want)
        fail_msg("check %s: %s (%s), expected %s", attest_check_name(id),
                 attest_check_result_name(c->result), c->detail, attest_check_result_name(want));
    if (status)
        assert_string_equal(c->status, status);
}

/* Accepted against the simulated root, flagged simulated, measurements exposed (§1.8). */
static void test_sim_accepted(void** state) {
    (void)state;
    size_t len;
    _cleanup_free_ uint8_t* q       = make_quote(false, &len);
    struct attest_verify_opts opts  = sim_opts();
    struct attest_verify_result res = {0};
    verify(q, len, g_coll, &opts, &res);
    for (int i = 0; i < ATTEST_CHECK_COUNT; i++)
        assert_check(&res, (enum attest_check_id)i,
                     i == ATTEST_CHECK_TDX_MODULE ? ATTEST_SKIPPED : ATTEST_PASS, NULL);
    assert_true(res.accepted);
    assert_true(res.simulated);
    assert_true(res.crl_checked);
    assert_false(res.stale_crl);
    assert_string_equal(res.status, "UpToDate");
    assert_int_equal(res.first_failure, -1);
    assert_int_equal(res.sgx.isv_prod_id, 5);
    assert_int_equal(res.sgx.isv_svn, 9);
    assert_int_equal(res.sgx.mr_enclave[0], 0xaa);
    assert_int_equal(res.sgx.report_data[1], 3);
    assert_true(res.earliest_expiry > time(NULL));
    json_t* o = attest_verify_result_to_json(&res);
    assert_true(json_is_true(json_object_get(o, "simulated")));
    assert_non_null(strstr(json_string_value(json_object_get(o, "warning")), "proves nothing"));
    assert_int_equal(json_array_size(json_object_get(o, "checks")), ATTEST_CHECK_COUNT);
    json_decref(o);
    struct strbuf text = STRBUF_INIT;
    attest_verify_format_text(&res, &text);
    assert_non_null(strstr(text.buf, "SIMULATED quote: proves nothing about hardware"));
    strbuf_free(&text);
    attest_verify_result_clear(&res);
}

/* Against the Intel SGX Root CA (the default anchor) the sim chain is refused. */
static void test_sim_rejected_by_intel_root(void** state) {
    (void)state;
    size_t len;
    _cleanup_free_ uint8_t* q       = make_quote(false, &len);
    struct attest_verify_opts opts  = {.at = time(NULL)};
    struct attest_verify_result res = {0};
    verify(q, len, g_coll, &opts, &res);
    assert_false(res.accepted);
    assert_int_equal(res.first_failure, ATTEST_CHECK_PCK_CHAIN);
    assert_check(&res, ATTEST_CHECK_PCK_CHAIN, ATTEST_FAIL, "STATUS_SGX_ROOT_CA_UNTRUSTED");
    assert_non_null(strstr(res.checks[ATTEST_CHECK_PCK_CHAIN].detail, "trust anchor"));
    assert_check(&res, ATTEST_CHECK_COLLATERAL, ATTEST_FAIL, NULL);
    assert_string_equal(res.status, "STATUS_SGX_ROOT_CA_UNTRUSTED");
    attest_verify_result_clear(&res);
}

/* §2.2 step 12: debug enclaves only with allow_debug. */
static void test_sim_debug(void** state) {
    (void)state;
    size_t len;
    _cleanup_free_ uint8_t* q       = make_quote(true, &len);
    struct attest_verify_opts opts  = sim_opts();
    struct attest_verify_result res = {0};
    verify(q, len, g_coll, &opts, &res);
    assert_true(res.debug);
    assert_false(res.accepted);
    assert_check(&res, ATTEST_CHECK_DEBUG, ATTEST_FAIL, "DEBUG_ENCLAVE");
    assert_string_equal(res.status, "DEBUG_ENCLAVE");
    attest_verify_result_clear(&res);
    opts.allow_debug = true;
    verify(q, len, g_coll, &opts, &res);
    assert_true(res.accepted);
    attest_verify_result_clear(&res);
}

/* Without collateral: signatures, binding and chain only; never accepted. */
static void test_sim_no_collateral(void** state) {
    (void)state;
    size_t len;
    _cleanup_free_ uint8_t* q       = make_quote(false, &len);
    struct attest_verify_opts opts  = sim_opts();
    struct attest_verify_result res = {0};
    verify(q, len, NULL, &opts, &res);
    assert_check(&res, ATTEST_CHECK_PCK_CHAIN, ATTEST_PASS, NULL);
    assert_non_null(strstr(res.checks[ATTEST_CHECK_PCK_CHAIN].detail, "NOT checked"));
    assert_check(&res, ATTEST_CHECK_COLLATERAL, ATTEST_SKIPPED, NULL);
    assert_check(&res, ATTEST_CHECK_QUOTE_SIGNATURE, ATTEST_PASS, NULL);
    assert_check(&res, ATTEST_CHECK_TCB_LEVEL, ATTEST_SKIPPED, NULL);
    assert_false(res.crl_checked);
    assert_false(res.accepted);
    assert_string_equal(res.status, "TcbUnverified");
    attest_verify_result_clear(&res);
}

/* The cache shared by the tamper cases when g_use_cache (warmed by a good quote first). */
static struct attest_verify_cache* g_cache;

/* One flipped byte at `off` fails exactly check `id` first, with `status`. */
static void tamper(size_t off, enum attest_check_id id, const char* status) {
    size_t len;
    _cleanup_free_ uint8_t* q = make_quote(false, &len);
    assert_true(off < len);
    q[off] ^= 0x01;
    struct attest_verify_opts opts  = sim_opts();
    opts.cache                      = g_cache;
    struct attest_verify_result res = {0};
    verify(q, len, g_coll, &opts, &res);
    assert_false(res.accepted);
    if (res.first_failure != (int)id)
        fail_msg("byte %zu: first failure %s, expected %s", off,
                 res.first_failure >= 0 ? attest_check_name(res.first_failure) : "none",
                 attest_check_name(id));
    if (status)
        assert_string_equal(res.status, status);
    attest_verify_result_clear(&res);
}

/* Offsets of the v3 layout (reference §1.3): body at 48, signature data at 436, attestation
 * key at 500, QE report at 564, its signature at 948, PEM chain after the auth data. */
static void test_sim_tamper(void** state) {
    (void)state;
    tamper(20, ATTEST_CHECK_PARSE, "STATUS_UNSUPPORTED_QUOTE_FORMAT");          /* QE vendor id */
    tamper(44, ATTEST_CHECK_QUOTE_SIGNATURE, "STATUS_INVALID_QUOTE_SIGNATURE"); /* user data */
    tamper(48 + 64, ATTEST_CHECK_QUOTE_SIGNATURE, "STATUS_INVALID_QUOTE_SIGNATURE"); /* mrenclave */
    tamper(436 + 5, ATTEST_CHECK_QUOTE_SIGNATURE, "STATUS_INVALID_QUOTE_SIGNATURE"); /* sig */
    tamper(564 + 64, ATTEST_CHECK_QE_REPORT_SIGNATURE, "STATUS_INVALID_QE_REPORT_SIGNATURE");
    tamper(948 + 3, ATTEST_CHECK_QE_REPORT_SIGNATURE, "STATUS_INVALID_QE_REPORT_SIGNATURE");
    tamper(1014 + 1, ATTEST_CHECK_QE_REPORT_DATA, "STATUS_INVALID_QE_REPORT_DATA"); /* auth */
    tamper(1014 + 32 + 6 + 200, ATTEST_CHECK_PCK_CHAIN, NULL); /* inside the PEM chain */
}

/* The attestation key: the binding fails first (and the quote signature as well). */
static void test_sim_attest_key(void** state) {
    (void)state;
    size_t len;
    _cleanup_free_ uint8_t* q = make_quote(false, &len);
    q[500 + 10] ^= 0x01;
    struct attest_verify_opts opts  = sim_opts();
    struct attest_verify_result res = {0};
    verify(q, len, g_coll, &opts, &res);
    assert_int_equal(res.first_failure, ATTEST_CHECK_QE_REPORT_DATA);
    assert_string_equal(res.status, "STATUS_INVALID_QE_REPORT_DATA");
    assert_check(&res, ATTEST_CHECK_QUOTE_SIGNATURE, ATTEST_FAIL, NULL);
    attest_verify_result_clear(&res);
}

/* Tampered collateral, stale CRLs, accepted sets, unparsable input. */
static void test_sim_collateral_and_policy(void** state) {
    (void)state;
    size_t len;
    _cleanup_free_ uint8_t* q       = make_quote(false, &len);
    struct attest_verify_opts opts  = sim_opts();
    struct attest_verify_result res = {0};
    g_coll->tcb_info_signature[7] ^= 1;
    verify(q, len, g_coll, &opts, &res);
    g_coll->tcb_info_signature[7] ^= 1;
    assert_int_equal(res.first_failure, ATTEST_CHECK_COLLATERAL);
    assert_string_equal(res.status, "STATUS_TCB_INFO_INVALID_SIGNATURE");
    assert_check(&res, ATTEST_CHECK_QE_IDENTITY, ATTEST_SKIPPED, NULL);
    attest_verify_result_clear(&res);
    /* past every nextUpdate (30 days): expired; stale CRLs tolerated but the TCB info is not */
    opts.at = time(NULL) + 40 * 86400;
    verify(q, len, g_coll, &opts, &res);
    assert_int_equal(res.first_failure, ATTEST_CHECK_PCK_CHAIN);
    assert_string_equal(res.status, "STATUS_SGX_CRL_EXPIRED");
    attest_verify_result_clear(&res);
    opts = sim_opts();
    uint32_t mask;
    struct moat_error err = {0};
    assert_int_equal(attest_accept_parse("OutOfDate,SWHardeningNeeded", &mask, &err), 0);
    assert_int_equal(mask, ATTEST_ACCEPT(TCB_OUT_OF_DATE) | ATTEST_ACCEPT(TCB_SW_HARDENING_NEEDED));
    opts.accepted = mask;
    verify(q, len, g_coll, &opts, &res);
    assert_false(res.accepted); /* UpToDate is not in the set */
    assert_int_equal(res.first_failure, -1);
    assert_non_null(strstr(res.reason, "not accepted"));
    attest_verify_result_clear(&res);
    assert_int_equal(attest_accept_parse("TcbNotSupported", &mask, &err), -EINVAL);
    assert_int_equal(attest_accept_parse("UpToDate,", &mask, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "''"));
    /* not a quote: the parse check says why */
    opts = sim_opts();
    assert_int_equal(attest_verify(q, 100, g_coll, &opts, &res, &err), -EBADMSG);
    assert_check(&res, ATTEST_CHECK_PARSE, ATTEST_FAIL, "STATUS_UNSUPPORTED_QUOTE_FORMAT");
    assert_false(res.accepted);
    attest_verify_result_clear(&res);
}

/* A warm cache changes nothing about the verdicts: every tamper case fails as without it, a
 * good quote still passes, and a kept result is not used without collateral or at a time
 * before it was checked (content, not address: test_cache_keyed_by_content). */
static void test_cache(void** state) {
    size_t len;
    _cleanup_free_ uint8_t* q       = make_quote(false, &len);
    struct attest_verify_opts opts  = sim_opts();
    struct attest_verify_result res = {0};
    g_cache                         = attest_verify_cache_new();
    opts.cache                      = g_cache;
    for (int i = 0; i < 3; i++) { /* the first fills the cache, the next use it */
        verify(q, len, g_coll, &opts, &res);
        assert_true(res.accepted);
        attest_verify_result_clear(&res);
    }
    test_sim_tamper(state);
    verify(q, len, g_coll, &opts, &res);
    assert_true(res.accepted);
    attest_verify_result_clear(&res);
    /* a time before the kept checks: checked anew (and the chain is not valid 20 years ago) */
    opts.at -= 20L * 365 * 86400;
    verify(q, len, g_coll, &opts, &res);
    assert_false(res.accepted);
    attest_verify_result_clear(&res);
    /* without collateral: nothing kept for the collateral object applies */
    opts.at = time(NULL);
    verify(q, len, NULL, &opts, &res);
    assert_false(res.accepted);
    assert_check(&res, ATTEST_CHECK_COLLATERAL, ATTEST_SKIPPED, NULL);
    attest_verify_result_clear(&res);
    attest_verify_cache_free(g_cache);
    g_cache = NULL;
}

static struct attest_verify_cache_stats stats(void) {
    struct attest_verify_cache_stats st;
    attest_verify_cache_get_stats(g_cache, &st);
    return st;
}

/* Verifies with the cache; accepted or not, and on rejection the status and failed check. */
static void verify_cached(const uint8_t* q, size_t len, const struct collateral* c, X509* anchor,
                          const char* want_status, enum attest_check_id want_check) {
    struct attest_verify_opts opts  = sim_opts();
    struct attest_verify_result res = {0};
    opts.anchor                     = anchor;
    opts.cache                      = g_cache;
    verify(q, len, c, &opts, &res);
    if (!want_status) {
        if (!res.accepted)
            fail_msg("rejected: %s", res.reason);
    } else {
        assert_false(res.accepted);
        assert_string_equal(res.status, want_status);
        assert_int_equal(res.first_failure, want_check);
    }
    attest_verify_result_clear(&res);
}

/* Changes the TCB info's tcbEvaluationDataNumber (17) to 27 in place: still well-formed, no
 * longer what was signed. Returns the changed digit. */
static char* tamper_tcb_info(struct collateral* c) {
    char* p = strstr(c->tcb_info, "\"tcbEvaluationDataNumber\"");
    assert_non_null(p);
    p = strchr(p, '1');
    assert_non_null(p);
    assert_int_equal(p[1], '7');
    *p = '2';
    return p;
}

/* The cache identifies its inputs by content, never by address (verify.h): identical
 * collateral and anchor in new objects use the kept results; collateral whose TCB info bytes
 * were changed (in place in the very object that was verified, or in a new object that may
 * sit where a freed one was) is checked anew and rejected, warm cache or not. */
static void test_cache_keyed_by_content(void** state) {
    (void)state;
    size_t len;
    _cleanup_free_ uint8_t* q = make_quote(false, &len);
    g_cache                   = attest_verify_cache_new();
    struct collateral* a      = load_collateral();
    verify_cached(q, len, a, g_root, NULL, 0); /* fills the cache */
    struct attest_verify_cache_stats st = stats();
    assert_int_equal(st.collateral_misses, 1);
    assert_int_equal(st.collateral_hits, 0);
    assert_int_equal(st.chain_misses, 1);
    assert_int_equal(st.qe_misses, 1);
    verify_cached(q, len, a, g_root, NULL, 0);
    assert_int_equal(stats().collateral_hits, 1);
    /* identical content, new objects: collateral and anchor */
    void* old_address = a;
    collateral_free(a);
    struct collateral* same = load_collateral();
    X509* root2             = load_root();
    verify_cached(q, len, same, root2, NULL, 0);
    st = stats();
    assert_int_equal(st.collateral_hits, 2);
    assert_int_equal(st.collateral_misses, 1);
    assert_int_equal(st.chain_hits, 2);
    assert_int_equal(st.qe_hits, 2);
    /* the TCB info changed in place: the objects of the last verification, same addresses,
     * other bytes */
    tamper_tcb_info(same);
    verify_cached(q, len, same, root2, "STATUS_TCB_INFO_INVALID_SIGNATURE",
                  ATTEST_CHECK_COLLATERAL);
    assert_int_equal(stats().collateral_misses, 2);
    X509_free(root2);
    collateral_free(same);
    /* warm again, then a tampered collateral in a new object (perhaps at the freed one's
     * address: allocators reuse a freed block of the same size) */
    struct collateral* good = load_collateral();
    verify_cached(q, len, good, g_root, NULL, 0);
    verify_cached(q, len, good, g_root, NULL, 0);
    assert_int_equal(stats().collateral_hits, 3);
    old_address = good;
    collateral_free(good);
    struct collateral* bad = load_collateral();
    printf("tampered collateral %s the freed one's address\n",
           (void*)bad == old_address ? "at" : "not at");
    char* digit = tamper_tcb_info(bad);
    verify_cached(q, len, bad, g_root, "STATUS_TCB_INFO_INVALID_SIGNATURE",
                  ATTEST_CHECK_COLLATERAL);
    *digit = '1';
    bad->qe_identity_signature[3] ^= 0x80; /* the QE identity's signature, likewise */
    verify_cached(q, len, bad, g_root, "STATUS_SGX_ENCLAVE_IDENTITY_INVALID_SIGNATURE",
                  ATTEST_CHECK_COLLATERAL);
    bad->qe_identity_signature[3] ^= 0x80;
    verify_cached(q, len, bad, g_root, NULL, 0); /* restored: accepted (checked anew) */
    assert_int_equal(stats().collateral_hits, 3);
    collateral_free(bad);
    attest_verify_cache_free(g_cache);
    g_cache = NULL;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_accepted),
        cmocka_unit_test(test_sim_rejected_by_intel_root),
        cmocka_unit_test(test_sim_debug),
        cmocka_unit_test(test_sim_no_collateral),
        cmocka_unit_test(test_sim_tamper),
        cmocka_unit_test(test_sim_attest_key),
        cmocka_unit_test(test_sim_collateral_and_policy),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_cache_keyed_by_content),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
