/* SPDX-License-Identifier: Apache-2.0 */
/* src/amber/jwt.c: PS384/RS256 tokens and JWKs, against tokens Debian's python3-jwt made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka after the standard headers */
#include <cmocka.h>
#include <openssl/evp.h>

#include "jwt.h"

/* made with python3-jwt 2.6 (jwt.encode(..., algorithm="PS384"/"RS256")) and its JWK */
static const char PY_PS384[] =
    "eyJhbGciOiJQUzM4NCIsImprdSI6Imh0dHBzOi8vZXhhbXBsZS5pbnZhbGlkL2NlcnRzIiwia2lkIjoiazEiLCJ0eXAiOi"
    "JKV1QifQ."
    "eyJzZ3hfbXJlbmNsYXZlIjoiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYm"
    "FiYWJhYmFiYWJhYiIsInNneF9pc3Zzdm4iOjEsImlzcyI6IkludGVsIFRydXN0IEF1dGhvcml0eSIsImV4cCI6NDEwMjQ0"
    "NDgwMCwibmJmIjoxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDB9."
    "TJGQtZL-fiDZE_BA6Br5pLFkA3hR8Uc9jK6ZpHtO9ov1wj06GGb3CoibBUlqcQ3ah3wS1a8wmR8rm7A_gb_"
    "ak0VbqaGCHrkSCpYSiV7UsYnZxNZJPBxRMTUyZM_U0tUFU8AZVkvR1_qN9jdGM6dVA8ttjbz0AfHGSa-_oSgtU_"
    "eUYzVkPVBJo6yAya_LbujrhgkF9GG7rmW2thIKKmOorpGv1awoXZwiU-jNxsmXAdvyON-48Lg-AWQrX31001h9h_"
    "ywZDVDWpCq_3wBRwWoNNve9Pzz5k8jt3McPSaxypoD3D1x9Jhw4eHQFl93WgLMANgFezjdYy_erFGBvK8pkw";
static const char PY_RS256[] =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0."
    "eyJzZ3hfbXJlbmNsYXZlIjoiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYmFiYWJhYm"
    "FiYWJhYmFiYWJhYiIsInNneF9pc3Zzdm4iOjEsImlzcyI6IkludGVsIFRydXN0IEF1dGhvcml0eSIsImV4cCI6NDEwMjQ0"
    "NDgwMCwibmJmIjoxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDB9."
    "57_uv1uu4ziP-THWpsEQD0YzYnNz388pDiRk70A0yPzDAcKOu9Y5P1f5V0-lt3n_"
    "2oY94MmvkEiQrZbrmhvtkzoGv6xvNbV9lj4e1SMfmuO6Sss_l1Jregulv-"
    "8rIcx4pVfzJTPOOOUDGA7FGfZy5F3uVEI8ucd-T0zELb3tVp16NOmackdKt9jKgBgeQh6cSr-"
    "v3iPva6QSPMoD5kkfXUQU2Kyl4uNUUqwA7mpcMs-YDwt7gOYlS0MFwVQoTDmo2b2ixvVAkujJNhv_tE8KAFr7yF_"
    "itcgcQCAWLRn6A9vQLOd-CFrU243ihrPf_15dRCcQ6omcMqMtf0D80d2CHQ";
static const char PY_JWK[] =
    "{\"kty\": \"RSA\", \"key_ops\": [\"verify\"], \"n\": "
    "\"7GO17qR_hUAHPWFW-oPedFt_DWQD8_8EEXvMTt5FjgTHxxUU7CbTdZY67WpjDTr9Bk0NjbuMKZq3_"
    "XJuxy08AQInPYsDSO8oAXV4vKJ4nwDavBPTLz44sP5PaU3tTMt2rMku_"
    "l0l19KrjqQcioPVqNjWVzzerHefkSXHJDNFN7JZqEmdk3jPvazyCGaneIJlNuN2Fgjexcj35h1VfvdYZzySBnx65kDuE1m"
    "AMuzDzeGDTi3moE3PU9vIv5bf7UEgBKPzE_"
    "c6uR78XW5RpZikvaa8nToocVEObzKJfjGvrRLyUOrthdAzEyc3YyVGLXUux3UShHVNqK8zc4aHwMq3BQ\", "
    "\"e\": \"AQAB\"}";

#define NOW 1800000000 /* 2027-01-15 */

static EVP_PKEY* g_key;   /* ours, 3072 bits as ITA's */
static EVP_PKEY* g_other; /* another */

static int setup(void** state) {
    (void)state;
    g_key   = EVP_RSA_gen(3072);
    g_other = EVP_RSA_gen(2048);
    return g_key && g_other ? 0 : -1;
}

static int teardown(void** state) {
    (void)state;
    EVP_PKEY_free(g_key);
    EVP_PKEY_free(g_other);
    return 0;
}

static EVP_PKEY* py_key(void) {
    json_t* jwk           = json_loads(PY_JWK, 0, NULL);
    EVP_PKEY* k           = NULL;
    struct moat_error err = {0};
    assert_int_equal(amber_jwk_key(jwk, &k, &err), 0);
    json_decref(jwk);
    return k;
}

static void test_python_tokens_verify(void** state) {
    (void)state;
    EVP_PKEY* k           = py_key();
    struct amber_jwt t    = {0};
    struct moat_error err = {0};
    assert_int_equal(amber_jwt_verify(PY_PS384, AMBER_JWT_PS384, k, NOW, 0, &t, &err), 0);
    assert_string_equal(json_string_value(json_object_get(t.header, "kid")), "k1");
    assert_int_equal(json_integer_value(json_object_get(t.claims, "sgx_isvsvn")), 1);
    amber_jwt_clear(&t);
    assert_int_equal(amber_jwt_verify(PY_RS256, AMBER_JWT_RS256, k, NOW, 0, &t, &err), 0);
    amber_jwt_clear(&t);
    /* the algorithm is the verifier's choice, not the token's */
    assert_int_equal(amber_jwt_verify(PY_RS256, AMBER_JWT_PS384, k, NOW, 0, &t, &err), -EPERM);
    assert_string_equal(err.msg, "token signed with \"RS256\", expected PS384");
    /* not yet valid, and expired */
    assert_int_equal(amber_jwt_verify(PY_PS384, AMBER_JWT_PS384, k, 1600000000, 0, &t, &err),
                     -EKEYEXPIRED);
    assert_string_equal(err.msg, "token not valid before 2023-11-14T22:13:20Z");
    assert_int_equal(amber_jwt_verify(PY_PS384, AMBER_JWT_PS384, k, 4102444801 + 60, 60, &t, &err),
                     -EKEYEXPIRED);
    assert_string_equal(err.msg, "token expired at 2100-01-01T00:00:00Z");
    assert_int_equal(amber_jwt_verify(PY_PS384, AMBER_JWT_PS384, k, 4102444801, 60, &t, &err), 0);
    amber_jwt_clear(&t);
    /* a key that did not sign it */
    assert_int_equal(amber_jwt_verify(PY_PS384, AMBER_JWT_PS384, g_other, NOW, 0, &t, &err),
                     -EPERM);
    assert_string_equal(err.msg, "token signature is invalid");
    EVP_PKEY_free(k);
}

static void test_sign_verify_round_trip(void** state) {
    (void)state;
    json_t* claims = json_pack("{s:s, s:i, s:b, s:i, s:i}", "sgx_mrenclave", "00ff", "sgx_isvsvn",
                               3, "sgx_is_debuggable", 0, "exp", NOW + 300, "nbf", NOW);
    struct moat_error err = {0};
    for (int a = 0; a < 2; a++) {
        enum amber_jwt_alg alg = a ? AMBER_JWT_RS256 : AMBER_JWT_PS384;
        char* tok              = NULL;
        assert_int_equal(
            amber_jwt_sign(alg, g_key, "kid1", "https://x.invalid/certs", claims, &tok, &err), 0);
        struct amber_jwt t = {0};
        assert_int_equal(amber_jwt_verify(tok, alg, g_key, NOW + 10, 0, &t, &err), 0);
        assert_true(json_equal(t.claims, claims));
        assert_string_equal(json_string_value(json_object_get(t.header, "alg")),
                            amber_jwt_alg_name(alg));
        assert_string_equal(json_string_value(json_object_get(t.header, "jku")),
                            "https://x.invalid/certs");
        amber_jwt_clear(&t);
        /* other claims under the same signature: refused */
        json_t* forged = json_deep_copy(claims);
        json_object_set_new(forged, "sgx_isvsvn", json_integer(4));
        char* text    = json_dumps(forged, JSON_COMPACT);
        char* fc      = base64url_encode_alloc(text, strlen(text));
        char* d1      = strchr(tok, '.');
        char* d2      = strchr(d1 + 1, '.');
        char* forgery = xasprintf("%.*s.%s%s", (int)(d1 - tok), tok, fc, d2);
        assert_int_equal(amber_jwt_verify(forgery, alg, g_key, NOW + 10, 0, &t, &err), -EPERM);
        assert_string_equal(err.msg, "token signature is invalid");
        free(forgery);
        free(fc);
        free(text);
        json_decref(forged);
        free(tok);
    }
    /* the JWK publishes the key: it verifies what the key signed */
    STACK_OF(X509)* none = NULL;
    json_t* jwk          = amber_jwk_new(g_key, AMBER_JWT_PS384, "kid1", none);
    assert_non_null(jwk);
    assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
    EVP_PKEY* pub = NULL;
    assert_int_equal(amber_jwk_key(jwk, &pub, &err), 0);
    assert_int_equal(EVP_PKEY_eq(pub, g_key), 1);
    EVP_PKEY_free(pub);
    json_decref(jwk);
    json_decref(claims);
}

static void test_refusals(void** state) {
    (void)state;
    struct amber_jwt t    = {0};
    struct moat_error err = {0};
    EVP_PKEY* k           = py_key();
    /* "alg": "none" with the signature stripped */
    const char* c1 = strchr(PY_PS384, '.') + 1;
    const char* c2 = strchr(c1, '.');
    char* none     = xasprintf("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.%.*s.", (int)(c2 - c1), c1);
    assert_int_equal(amber_jwt_verify(none, AMBER_JWT_PS384, k, NOW, 0, &t, &err), -EPERM);
    assert_string_equal(err.msg, "token signed with \"none\", expected PS384");
    const char* bad[][2] = {
        {"abc", "malformed token: expected three parts separated by dots"},
        {"a.b.c.d", "malformed token: expected three parts separated by dots"},
        {"!!.e30.", "malformed token: the header is not base64url"},
        {"WzFd.e30.", "malformed token: the header is not a JSON object"},
        {"e30.bnVsbA.", "malformed token: the claims is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(amber_jwt_decode(bad[i][0], &t, &err), -EINVAL);
        assert_string_equal(err.msg, bad[i][1]);
    }
    /* the header alone: the same refusals for the header and the dots, the claims not read */
    json_t* h = NULL;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(amber_jwt_decode_header(bad[i][0], &h, &err), -EINVAL);
        assert_string_equal(err.msg, bad[i][1]);
        assert_null(h);
    }
    assert_int_equal(amber_jwt_decode_header("e30.bnVsbA.", &h, &err), 0);
    assert_true(json_is_object(h) && json_object_size(h) == 0);
    json_decref(h);
    /* claims without exp are refused by verify */
    json_t* claims = json_pack("{s:s}", "a", "b");
    char* tok      = NULL;
    assert_int_equal(amber_jwt_sign(AMBER_JWT_PS384, g_key, NULL, NULL, claims, &tok, &err), 0);
    assert_int_equal(amber_jwt_verify(tok, AMBER_JWT_PS384, g_key, NOW, 0, &t, &err), -EINVAL);
    assert_string_equal(err.msg, "token has no expiry (\"exp\")");
    /* a JWK that is not RSA, or not a key */
    json_t* ec  = json_pack("{s:s, s:s, s:s}", "kty", "EC", "x", "AA", "y", "AA");
    EVP_PKEY* p = NULL;
    assert_int_equal(amber_jwk_key(ec, &p, &err), -EINVAL);
    assert_string_equal(err.msg, "JWK: kty is \"EC\", expected \"RSA\"");
    json_t* small = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", "AQAB", "e", "AQAB");
    assert_int_equal(amber_jwk_key(small, &p, &err), -EINVAL);
    enum amber_jwt_alg alg;
    assert_int_equal(amber_jwt_alg_parse("HS256", &alg, &err), -EINVAL);
    assert_string_equal(err.msg, "unsupported token signing algorithm \"HS256\"");
    json_decref(small);
    json_decref(ec);
    json_decref(claims);
    free(tok);
    free(none);
    EVP_PKEY_free(k);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_tokens_verify),
        cmocka_unit_test(test_sign_verify_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
