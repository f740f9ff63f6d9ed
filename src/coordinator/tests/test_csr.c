/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A Marble's CSR (csr.h): EC requests on the four NIST curves are read without OpenSSL's
 * decoder and must give what d2i_X509_REQ gives (subject, extensions); RSA and Ed25519 requests
 * go through d2i_X509_REQ. Both paths refuse a flipped signature bit, a key swapped for
 * another, a point off the curve, trailing bytes and every truncation, with MarbleRun's words.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "csr.h"

/* a CSR for `key` with a subject and a SAN extension, signed with SHA-256; DER */
static int make_csr(EVP_PKEY* key, EVP_PKEY* signer, unsigned char** der) {
    X509_REQ* req = X509_REQ_new();
    X509_NAME* n  = X509_REQ_get_subject_name(req);
    assert_int_equal(
        X509_NAME_add_entry_by_txt(n, "C", MBSTRING_ASC, (const unsigned char*)"DE", -1, -1, 0), 1);
    assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                                                (const unsigned char*)"marble", -1, -1, 0),
                     1);
    assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION* san =
        X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:marble.local,IP:10.0.0.7");
    assert_non_null(san);
    sk_X509_EXTENSION_push(exts, san);
    assert_int_equal(X509_REQ_add_extensions(req, exts), 1);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    assert_true(X509_REQ_sign(req, signer, EVP_PKEY_is_a(signer, "ED25519") ? NULL : EVP_sha256()) >
                0);
    *der  = NULL;
    int l = i2d_X509_REQ(req, der);
    X509_REQ_free(req);
    assert_true(l > 0);
    return l;
}

static int parse(const unsigned char* der, size_t len, struct moat_csr* csr, const char** msg) {
    static struct moat_error err;
    err   = (struct moat_error){0};
    int r = moat_csr_parse(der, len, csr, &err);
    *msg  = err.msg;
    return r;
}

static void check_good(EVP_PKEY* key, bool fast) {
    unsigned char* der = NULL;
    int len            = make_csr(key, key, &der);
    struct moat_csr csr;
    const char* msg = NULL;
    assert_int_equal(parse(der, (size_t)len, &csr, &msg), 0);
    assert_true(fast ? csr.raw != NULL && csr.req == NULL : csr.raw == NULL && csr.req != NULL);
    /* the same subject and SAN as OpenSSL reads */
    const unsigned char* p = der;
    X509_REQ* req          = d2i_X509_REQ(NULL, &p, len);
    assert_int_equal(X509_NAME_cmp(csr.subject, X509_REQ_get_subject_name(req)), 0);
    GENERAL_NAMES* ours = X509V3_get_d2i(csr.exts, NID_subject_alt_name, NULL, NULL);
    assert_non_null(ours);
    assert_int_equal(sk_GENERAL_NAME_num(ours), 2);
    GENERAL_NAMES_free(ours);
    X509_REQ_free(req);
    moat_csr_clear(&csr);
    assert_null(csr.raw);

    /* every truncation, and one byte too many */
    for (int n = 0; n < len; n++) {
        assert_int_equal(parse(der, (size_t)n, &csr, &msg), -EINVAL);
        assert_string_equal(msg, "failed to parse CSR");
    }
    unsigned char* longer = OPENSSL_malloc((size_t)len + 1);
    memcpy(longer, der, (size_t)len);
    longer[len] = 0;
    assert_int_equal(parse(longer, (size_t)len + 1, &csr, &msg), -EINVAL);
    assert_string_equal(msg, "failed to parse CSR");
    OPENSSL_free(longer);

    /* the signature's last bit flipped */
    der[len - 1] ^= 1;
    assert_int_equal(parse(der, (size_t)len, &csr, &msg), -EINVAL);
    assert_string_equal(msg, "signature over CSR is invalid");
    OPENSSL_free(der);
}

/* a request whose key is not the one that signed it */
static void check_swapped(EVP_PKEY* key, EVP_PKEY* other) {
    unsigned char* der = NULL;
    int len            = make_csr(key, other, &der);
    struct moat_csr csr;
    const char* msg = NULL;
    assert_int_equal(parse(der, (size_t)len, &csr, &msg), -EINVAL);
    assert_string_equal(msg, "signature over CSR is invalid");
    OPENSSL_free(der);
}

static void test_ec(void** state) {
    (void)state;
    static const char* const curves[] = {"P-224", "P-256", "P-384", "P-521"};
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        EVP_PKEY* k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curves[i]);
        EVP_PKEY* o = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curves[i]);
        check_good(k, true);
        check_swapped(k, o);
        /* a compressed point is a point too */
        assert_int_equal(EVP_PKEY_set_utf8_string_param(
                             k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
                         1);
        check_good(k, true);
        EVP_PKEY_free(k);
        EVP_PKEY_free(o);
    }
}

static void test_other_keys(void** state) {
    (void)state;
    EVP_PKEY* keys[] = {EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024),
                        EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
                        EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1")};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        check_good(keys[i], false);
        EVP_PKEY_free(keys[i]);
    }
}

/* a P-384 request whose point is moved off the curve: refused before any signature check */
static void test_point_off_curve(void** state) {
    (void)state;
    EVP_PKEY* k        = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    unsigned char* der = NULL;
    int len            = make_csr(k, k, &der);
    unsigned char pt[97];
    size_t n = 0;
    assert_int_equal(
        EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &n), 1);
    unsigned char* at = memmem(der, (size_t)len, pt, n);
    assert_non_null(at);
    at[n - 1] ^= 1; /* the last byte of Y */
    struct moat_csr csr;
    const char* msg = NULL;
    assert_int_equal(parse(der, (size_t)len, &csr, &msg), -EINVAL);
    assert_string_equal(msg, "failed to parse CSR");
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

static void test_not_a_csr(void** state) {
    (void)state;
    static const unsigned char junk[][8] = {{0x30, 0x00}, {0x30, 0x03, 0x02, 0x01, 0x00}, {0}};
    struct moat_csr csr;
    const char* msg = NULL;
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        assert_int_equal(parse(junk[i], sizeof(junk[i]), &csr, &msg), -EINVAL);
        assert_string_equal(msg, "failed to parse CSR");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ec),
        cmocka_unit_test(test_other_keys),
        cmocka_unit_test(test_point_off_curve),
        cmocka_unit_test(test_not_a_csr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
