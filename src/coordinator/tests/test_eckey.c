/* SPDX-License-Identifier: Apache-2.0 */
/*
 * eckey.h writes a NIST-curve key's SubjectPublicKeyInfo, PKCS#8 and certificate key without
 * OpenSSL's encoders: on every curve the bytes must be exactly OpenSSL's (i2d_PUBKEY,
 * EVP_PKEY2PKCS8, X509_set_pubkey), the PKCS#8 must decode back to the same key, keys come out
 * on the asked curve and distinct, and keys that are not EC on a known curve are left alone.
 */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "eckey.h"

static const char* const curves[] = {"P-224", "P-256", "P-384", "P-521"};
static const char* const groups[] = {"secp224r1", "prime256v1", "secp384r1", "secp521r1"};

static void assert_same(const unsigned char* a, int na, const unsigned char* b, int nb) {
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na);
}

static void check_key(EVP_PKEY* k) {
    /* SubjectPublicKeyInfo */
    unsigned char *ours = NULL, *theirs = NULL;
    int n = moat_ec_spki_der(k, &ours), m = i2d_PUBKEY(k, &theirs);
    assert_same(ours, n, theirs, m);
    OPENSSL_free(ours);
    OPENSSL_free(theirs);

    /* PKCS#8, and it decodes to the same key */
    ours = theirs           = NULL;
    n                       = moat_ec_pkcs8_der(k, &ours);
    PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(k);
    assert_non_null(p8);
    m = i2d_PKCS8_PRIV_KEY_INFO(p8, &theirs);
    PKCS8_PRIV_KEY_INFO_free(p8);
    assert_same(ours, n, theirs, m);
    const unsigned char* p = ours;
    EVP_PKEY* back         = d2i_AutoPrivateKey(NULL, &p, n);
    assert_non_null(back);
    assert_int_equal(EVP_PKEY_eq(back, k), 1);
    EVP_PKEY_free(back);
    OPENSSL_free(ours);
    OPENSSL_free(theirs);

    /* a certificate's key: the same X509_PUBKEY bytes as X509_set_pubkey's */
    X509 *x = X509_new(), *y = X509_new();
    assert_int_equal(moat_ec_x509_set_pubkey(x, k), 1);
    assert_int_equal(X509_set_pubkey(y, k), 1);
    ours = theirs = NULL;
    n             = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &ours);
    m             = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(y), &theirs);
    assert_same(ours, n, theirs, m);
    OPENSSL_free(ours);
    OPENSSL_free(theirs);
    X509_free(x);
    X509_free(y);
}

static void test_curves(void** state) {
    (void)state;
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        EVP_PKEY *a = moat_ec_keygen(curves[i]), *b = moat_ec_keygen(curves[i]);
        assert_non_null(a);
        assert_non_null(b);
        char g[32] = "";
        assert_int_equal(
            EVP_PKEY_get_utf8_string_param(a, OSSL_PKEY_PARAM_GROUP_NAME, g, sizeof(g), NULL), 1);
        assert_string_equal(g, groups[i]);
        assert_int_not_equal(EVP_PKEY_eq(a, b), 1); /* fresh keys, not the template's */
        check_key(a);
        check_key(b);
        EVP_PKEY_free(a);
        EVP_PKEY_free(b);
    }
}

/* a key made elsewhere (EVP_PKEY_Q_keygen, and one read back from PEM-free DER) */
static void test_foreign_keys(void** state) {
    (void)state;
    EVP_PKEY* k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(k);
    check_key(k);
    unsigned char* der     = NULL;
    int n                  = i2d_PrivateKey(k, &der);
    const unsigned char* p = der;
    EVP_PKEY* back         = d2i_AutoPrivateKey(NULL, &p, n);
    assert_non_null(back);
    check_key(back);
    EVP_PKEY_free(back);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

/* not ours to write: 0, and nothing allocated */
static void test_other_keys(void** state) {
    (void)state;
    EVP_PKEY* keys[] = {EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
                        EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024),
                        EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1")};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_non_null(keys[i]);
        unsigned char* der = NULL;
        assert_int_equal(moat_ec_spki_der(keys[i], &der), 0);
        assert_int_equal(moat_ec_pkcs8_der(keys[i], &der), 0);
        assert_null(der);
        X509* x = X509_new();
        assert_int_equal(moat_ec_x509_set_pubkey(x, keys[i]), 0);
        X509_free(x);
        EVP_PKEY_free(keys[i]);
    }
    /* an unknown curve name still makes a key, through OpenSSL */
    EVP_PKEY* k = moat_ec_keygen("secp256k1");
    assert_non_null(k);
    EVP_PKEY_free(k);
    assert_null(moat_ec_keygen("P-999"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curves),
        cmocka_unit_test(test_foreign_keys),
        cmocka_unit_test(test_other_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
