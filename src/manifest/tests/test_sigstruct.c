/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the measurement and SIGSTRUCT (reference/gramine.md §3); the OpenSSL
 * cross-check of the signature is tests/test_sign.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/rsa.h>

#include "sigstruct.h"

static EVP_PKEY* g_key;

static int setup(void** state) {
    (void)state;
    struct moat_error err = {0};
    return enclave_key_generate(&g_key, &err);
}

static int teardown(void** state) {
    (void)state;
    EVP_PKEY_free(g_key);
    return 0;
}

static struct toml_value* parse(const char* text) {
    struct toml_value* root = NULL;
    struct moat_error err   = {0};
    if (toml_parse(text, strlen(text), "t", &root, NULL, &err) < 0)
        fail_msg("%s", err.msg);
    return root;
}

static void test_measurement(void** state) {
    (void)state;
    uint8_t m[32], want[32];
    const char doc[] = "libos.entrypoint = \"/a\"\n";
    assert_int_equal(moat_measurement(doc, strlen(doc), m), 0);
    char buf[128];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "moat-measurement-v1%c%s", '\0', doc);
    assert_int_equal(sha256_buf(buf, n, want), 0);
    assert_memory_equal(m, want, 32);
}

static void test_date(void** state) {
    (void)state;
    uint32_t d;
    assert_int_equal(sigstruct_date_parse("2026-11-24", &d), 0);
    assert_int_equal(d, 0x20261124);
    assert_int_equal(sigstruct_date_parse("2026-13-01", &d), -EINVAL);
    assert_int_equal(sigstruct_date_parse("26-1-1", &d), -EINVAL);
    assert_int_equal(sigstruct_date_parse("today", &d), 0);
}

static void test_fields_from_manifest(void** state) {
    (void)state;
    _cleanup_toml_ struct toml_value* root = parse(
        "sgx.debug = true\nsgx.isvprodid = 513\nsgx.isvsvn = 2\nsgx.use_exinfo = true\n"
        "sgx.cpu_features.avx512 = \"required\"\n");
    uint8_t m[32] = {1, 2, 3};
    struct sigstruct s;
    struct moat_error err = {0};
    assert_int_equal(sigstruct_from_manifest(root, m, 0x20260101, &s, &err), 0);
    assert_int_equal(s.attr_flags, SGX_FLAGS_DEBUG | SGX_FLAGS_MODE64BIT);
    assert_int_equal(s.attr_xfrm, SGX_XFRM_LEGACY | SGX_XFRM_AVX512);
    assert_int_equal(s.misc_select, SGX_MISC_EXINFO);
    assert_int_equal(s.isv_prod_id, 513);

    uint8_t buf[SIGSTRUCT_SIZE];
    sigstruct_serialize(&s, buf);
    assert_int_equal(buf[SIGSTRUCT_OFF_ISV_PROD_ID], 1);
    assert_int_equal(buf[SIGSTRUCT_OFF_ISV_PROD_ID + 1], 2);
    assert_int_equal(buf[SIGSTRUCT_OFF_DATE + 3], 0x20);
    assert_memory_equal(buf + SIGSTRUCT_OFF_ENCLAVE_HASH, m, 32);

    _cleanup_toml_ struct toml_value* bad = parse("sgx.isvsvn = 65536\n");
    assert_int_equal(sigstruct_from_manifest(bad, m, 0, &s, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "'sgx.isvsvn'"));
}

static void test_sign_parse_verify(void** state) {
    (void)state;
    _cleanup_toml_ struct toml_value* root = parse("sgx.isvsvn = 9\n");
    uint8_t m[32];
    memset(m, 0xab, sizeof(m));
    struct sigstruct s, parsed;
    struct moat_error err = {0};
    assert_int_equal(sigstruct_from_manifest(root, m, 0x20261124, &s, &err), 0);
    assert_int_equal(sigstruct_sign(&s, g_key, &err), 0);
    assert_int_equal(sigstruct_verify(&s, &err), 0);

    uint8_t buf[SIGSTRUCT_SIZE];
    sigstruct_serialize(&s, buf);
    assert_int_equal(sigstruct_parse(buf, sizeof(buf), &parsed, &err), 0);
    assert_int_equal(parsed.isv_svn, 9);
    assert_int_equal(sigstruct_verify(&parsed, &err), 0);

    /* every signed or checked region is covered: header, body, q1/q2 */
    static const size_t offsets[] = {
        SIGSTRUCT_OFF_DATE,     SIGSTRUCT_OFF_MISC_SELECT,     SIGSTRUCT_OFF_ENCLAVE_HASH + 5,
        SIGSTRUCT_OFF_ISV_SVN,  SIGSTRUCT_OFF_SIGNATURE + 100, SIGSTRUCT_OFF_Q1 + 7,
        SIGSTRUCT_OFF_Q2 + 300, SIGSTRUCT_OFF_MODULUS + 1};
    for (size_t i = 0; i < ARRAY_SIZE(offsets); i++) {
        uint8_t bad[SIGSTRUCT_SIZE];
        memcpy(bad, buf, sizeof(bad));
        bad[offsets[i]] ^= 0x10;
        struct sigstruct t;
        if (sigstruct_parse(bad, sizeof(bad), &t, &err) == 0 && sigstruct_verify(&t, &err) == 0)
            fail_msg("tampering at offset %zu was not detected", offsets[i]);
    }
    assert_int_equal(sigstruct_parse(buf, sizeof(buf) - 1, &parsed, &err), -EINVAL);
    buf[0] ^= 1;
    assert_int_equal(sigstruct_parse(buf, sizeof(buf), &parsed, &err), -EINVAL);
}

static void test_key_rules(void** state) {
    (void)state;
    struct moat_error err = {0};
    assert_int_equal(enclave_key_check(g_key, &err), 0);
    EVP_PKEY* k65537 = EVP_RSA_gen(3072);
    assert_non_null(k65537);
    assert_int_equal(enclave_key_check(k65537, &err), -EINVAL);
    assert_string_equal(err.msg, "Invalid RSA key: expected exponent 3, got 65537");
    EVP_PKEY_free(k65537);
    EVP_PKEY* small = EVP_RSA_gen(2048);
    assert_int_equal(enclave_key_check(small, &err), -EINVAL);
    assert_string_equal(err.msg, "Invalid RSA key: expected key size 3072, got 2048");
    EVP_PKEY_free(small);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_measurement),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_fields_from_manifest),
        cmocka_unit_test(test_sign_parse_verify),
        cmocka_unit_test(test_key_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
