/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for recovery keys (recovery.h; reference/marblerun.md §3.4): Shamir over GF(2^8)
 * (a known answer from the AES field), the DEK split for 0, 1 and N keys (XOR and threshold),
 * its reassembly from the owners' decrypted secrets, and the upload signature. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>

#include "recovery.h"

static void test_shamir_known_answer(void** state) {
    (void)state;
    /* p(x) = 0x53 + 0xca x; in the AES field 0x53 * 0xca = 0x01 (FIPS-197 §4.2), so
     * p(0x53) = 0x52 and p(0x01) = 0x99: shares are (y, x) */
    const uint8_t a[] = {0x52, 0x53}, b[] = {0x99, 0x01};
    const uint8_t* shares[] = {a, b};
    uint8_t out[1];
    assert_int_equal(shamir_combine(shares, 2, 2, out), 0);
    assert_int_equal(out[0], 0x53);
    const uint8_t* same[] = {a, a};
    assert_int_equal(shamir_combine(same, 2, 2, out), -EINVAL); /* one share twice */
}

static void test_shamir_split_combine(void** state) {
    (void)state;
    uint8_t secret[32];
    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (uint8_t)(i * 37 + 5);
    uint8_t buf[5][33];
    uint8_t* shares[5] = {buf[0], buf[1], buf[2], buf[3], buf[4]};
    assert_int_equal(shamir_split(secret, 32, 5, 3, shares), 0);
    /* every 3 of the 5 give the secret; 2 do not */
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            for (int k = j + 1; k < 5; k++) {
                const uint8_t* pick[] = {shares[i], shares[j], shares[k]};
                uint8_t out[32];
                assert_int_equal(shamir_combine(pick, 3, 33, out), 0);
                assert_memory_equal(out, secret, 32);
            }
    const uint8_t* two[] = {shares[0], shares[1]};
    uint8_t out[32];
    assert_int_equal(shamir_combine(two, 2, 33, out), 0);
    assert_memory_not_equal(out, secret, 32);
    assert_int_equal(shamir_split(secret, 32, 2, 3, shares), -EINVAL);
    assert_int_equal(shamir_split(secret, 32, 3, 1, shares), -EINVAL);
}

struct keypair {
    EVP_PKEY* key;
    char* pem;
};

static struct keypair rsa_keypair(void) {
    struct keypair k = {EVP_RSA_gen(2048), NULL};
    assert_non_null(k.key);
    BIO* bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(bio, k.key), 1);
    char* p;
    long n = BIO_get_mem_data(bio, &p);
    k.pem  = xstrndup(p, (size_t)n);
    BIO_free(bio);
    return k;
}

/* What the key's owner does: base64-decode and OAEP-decrypt the secret. */
static size_t owner_decrypts(const struct keypair* k, const char* b64, uint8_t* out) {
    uint8_t* ct = NULL;
    size_t ct_len, len = 512;
    assert_int_equal(base64_decode_alloc(b64, strlen(b64), &ct, &ct_len), 0);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(k->key, NULL);
    assert_true(EVP_PKEY_decrypt_init(ctx) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0);
    assert_true(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) > 0);
    assert_true(EVP_PKEY_decrypt(ctx, out, &len, ct, ct_len) > 0);
    EVP_PKEY_CTX_free(ctx);
    free(ct);
    return len;
}

static struct keypair g_keys[3];

static int setup(void** state) {
    (void)state;
    for (int i = 0; i < 3; i++)
        g_keys[i] = rsa_keypair();
    return 0;
}

static int teardown(void** state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        EVP_PKEY_free(g_keys[i].key);
        free(g_keys[i].pem);
    }
    return 0;
}

/* Splits for n keys and threshold, then uploads the owners' secrets in `order` until the DEK
 * comes back; checks the remaining counts on the way. */
static void round_trip(size_t n, unsigned threshold, const int* order, size_t uploads) {
    const char* names[] = {"alice", "bob", "carol"};
    const char* pems[]  = {g_keys[0].pem, g_keys[1].pem, g_keys[2].pem};
    struct recovery_setup r;
    struct moat_error err = {0};
    assert_int_equal(recovery_setup_new(names, pems, n, threshold, &r, &err), 0);
    assert_non_null(r.recovery_data);
    struct recovery_session* s = recovery_session_new(r.recovery_data, threshold, &err);
    assert_non_null(s);
    uint8_t dek[RECOVERY_DEK_SIZE];
    for (size_t u = 0; u < uploads; u++) {
        uint8_t secret[512];
        size_t len = owner_decrypts(&g_keys[order[u]], r.secrets_b64[order[u]], secret);
        size_t remaining;
        assert_int_equal(recovery_session_add(s, secret, len, dek, &remaining, &err), 0);
        assert_int_equal(remaining, uploads - u - 1);
        if (u == 0) /* the same secret again */
            assert_int_equal(recovery_session_add(s, secret, len, dek, &remaining, &err), -EINVAL);
    }
    assert_memory_equal(dek, r.dek, RECOVERY_DEK_SIZE);
    recovery_session_free(s);
    recovery_setup_free(&r);
}

static void test_split_and_recover(void** state) {
    (void)state;
    static const int all[] = {2, 0, 1}, two[] = {1, 2};
    round_trip(3, 0, all, 3); /* XOR: every share */
    round_trip(3, 3, all, 3);
    round_trip(3, 2, two, 2); /* Shamir: any two */
    round_trip(2, 0, all + 1, 2);
}

static void test_single_key_and_none(void** state) {
    (void)state;
    const char* names[]   = {"alice"};
    const char* pems[]    = {g_keys[0].pem};
    struct moat_error err = {0};
    struct recovery_setup r;
    assert_int_equal(recovery_setup_new(names, pems, 1, 0, &r, &err), 0);
    assert_null(r.recovery_data); /* "null" in sealed_data */
    uint8_t secret[512], dek[RECOVERY_DEK_SIZE];
    size_t len = owner_decrypts(&g_keys[0], r.secrets_b64[0], secret), remaining = 9;
    assert_int_equal(len, RECOVERY_DEK_SIZE);
    assert_memory_equal(secret, r.dek, RECOVERY_DEK_SIZE); /* the secret is the DEK */
    struct recovery_session* s = recovery_session_new("null", 0, &err);
    assert_int_equal(recovery_session_add(s, secret, len, dek, &remaining, &err), 0);
    assert_int_equal(remaining, 0);
    assert_memory_equal(dek, r.dek, RECOVERY_DEK_SIZE);
    recovery_session_free(s);
    recovery_setup_free(&r);

    assert_int_equal(recovery_setup_new(NULL, NULL, 0, 0, &r, &err), 0);
    assert_int_equal(r.n, 0);
    recovery_setup_free(&r);
}

static void test_errors(void** state) {
    (void)state;
    const char* names[]   = {"alice", "mallory"};
    const char* pems[]    = {g_keys[0].pem, "-----BEGIN PUBLIC KEY-----\nnope\n"};
    struct moat_error err = {0};
    struct recovery_setup r;
    assert_int_equal(recovery_setup_new(names, pems, 2, 0, &r, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "recovery key 'mallory'"));
    assert_int_equal(recovery_setup_new(names, pems, 2, 3, &r, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "to meet the recovery threshold of 3"));

    /* a secret that is not one of the state's */
    const char* pems2[] = {g_keys[0].pem, g_keys[1].pem};
    assert_int_equal(recovery_setup_new(names, pems2, 2, 0, &r, &err), 0);
    struct recovery_session* s      = recovery_session_new(r.recovery_data, 0, &err);
    uint8_t junk[RECOVERY_DEK_SIZE] = {1}, dek[RECOVERY_DEK_SIZE];
    size_t remaining;
    assert_int_equal(recovery_session_add(s, junk, sizeof(junk), dek, &remaining, &err), -EINVAL);
    recovery_session_free(s);
    recovery_setup_free(&r);
    assert_null(recovery_session_new("[1", 0, &err));
}

static void test_signature(void** state) {
    (void)state;
    const uint8_t secret[32] = {1, 2, 3};
    EVP_MD_CTX* md           = EVP_MD_CTX_new();
    uint8_t sig[512];
    size_t sig_len = sizeof(sig);
    assert_true(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, g_keys[1].key) > 0);
    assert_true(EVP_DigestSign(md, sig, &sig_len, secret, sizeof(secret)) > 0);
    EVP_MD_CTX_free(md);
    assert_int_equal(recovery_verify_signature(g_keys[1].pem, secret, 32, sig, sig_len), 0);
    assert_int_equal(recovery_verify_signature(g_keys[0].pem, secret, 32, sig, sig_len), -EPERM);
    sig[10] ^= 1;
    assert_int_equal(recovery_verify_signature(g_keys[1].pem, secret, 32, sig, sig_len), -EPERM);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shamir_known_answer),
        cmocka_unit_test(test_shamir_split_combine),
        cmocka_unit_test(test_split_and_recover),
        cmocka_unit_test(test_single_key_and_none),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_signature),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
