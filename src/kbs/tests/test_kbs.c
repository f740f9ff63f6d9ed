/* SPDX-License-Identifier: Apache-2.0 */
/* src/kbs: the §4.3 wrapping format, the §4.1 key-release public key and the key-transfer
 * policy parser and matcher (../shared/reference/attestation.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka after the standard headers */
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "kbs.h"

static EVP_PKEY* g_rsa; /* RSA-3072, made once */

static int setup(void** state) {
    (void)state;
    g_rsa = EVP_RSA_gen(3072);
    return g_rsa ? 0 : -1;
}

static int teardown(void** state) {
    (void)state;
    EVP_PKEY_free(g_rsa);
    return 0;
}

/* §4.1 key-release layout: 4-byte LE exponent ‖ modulus (LE for SGX, BE for TDX), base64 */
static char* held_data(EVP_PKEY* k, bool little_endian, size_t mod_len) {
    BIGNUM* n = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    uint8_t buf[4 + 512] = {0x01, 0x00, 0x01, 0x00};
    assert_true(mod_len <= 512);
    assert_int_equal(BN_bn2binpad(n, buf + 4, (int)mod_len), (int)mod_len);
    BN_free(n);
    if (little_endian)
        for (size_t i = 0; i < mod_len / 2; i++) {
            uint8_t t                = buf[4 + i];
            buf[4 + i]               = buf[4 + mod_len - 1 - i];
            buf[4 + mod_len - 1 - i] = t;
        }
    return base64_encode_alloc(buf, 4 + mod_len);
}

static void test_held_key(void** state) {
    (void)state;
    struct moat_error err = {0};
    EVP_PKEY *sgx = NULL, *tdx = NULL, *bad = NULL;
    char* le = held_data(g_rsa, true, 384);
    char* be = held_data(g_rsa, false, 384);
    assert_int_equal(kbs_held_key(le, KBS_TEE_SGX, &sgx, &err), 0);
    assert_int_equal(kbs_held_key(be, KBS_TEE_TDX, &tdx, &err), 0);
    assert_int_equal(EVP_PKEY_eq(sgx, g_rsa), 1);
    assert_int_equal(EVP_PKEY_eq(tdx, g_rsa), 1);
    /* the other byte order is another (wrong) key */
    assert_int_equal(kbs_held_key(le, KBS_TEE_TDX, &bad, &err), 0);
    assert_int_not_equal(EVP_PKEY_eq(bad, g_rsa), 1);
    EVP_PKEY_free(bad);
    /* > 2048 bits required */
    EVP_PKEY* small = EVP_RSA_gen(2048);
    char* s         = held_data(small, false, 256);
    assert_int_equal(kbs_held_key(s, KBS_TEE_TDX, &bad, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "2048"));
    assert_int_equal(kbs_held_key("AQAB", KBS_TEE_TDX, &bad, &err), -EINVAL);
    assert_int_equal(kbs_held_key("!!", KBS_TEE_SGX, &bad, &err), -EINVAL);
    free(s);
    EVP_PKEY_free(small);
    free(le);
    free(be);
    EVP_PKEY_free(sgx);
    EVP_PKEY_free(tdx);
}

static void test_wrap_format(void** state) {
    (void)state;
    struct moat_error err = {0};
    uint8_t secret[32];
    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (uint8_t)i;
    uint8_t *wk = NULL, *ws = NULL, *out = NULL;
    size_t wk_len = 0, ws_len = 0, out_len = 0;
    assert_int_equal(kbs_wrap(g_rsa, secret, sizeof(secret), &wk, &wk_len, &ws, &ws_len, &err), 0);
    /* §4.3's example header 0c000000 10000000 30000000 for a 32-byte key (ct_len counts the
     * tag: 32 + 16); then IV, ciphertext, tag */
    static const uint8_t head[12] = {0x0c, 0, 0, 0, 0x10, 0, 0, 0, 0x30, 0, 0, 0};
    assert_int_equal(wk_len, 12 + 12 + 32 + 16);
    assert_memory_equal(wk, head, sizeof(head));
    assert_int_equal(ws_len, 384);
    /* the SWK is RSA-OAEP SHA-256 / MGF1 SHA-256 / empty label: decrypt independently */
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(NULL, g_rsa, NULL);
    uint8_t swk[512];
    size_t swk_len = sizeof(swk);
    assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()), 1);
    assert_int_equal(EVP_PKEY_decrypt(ctx, swk, &swk_len, ws, ws_len), 1);
    EVP_PKEY_CTX_free(ctx);
    assert_int_equal(swk_len, 32);
    uint8_t plain[32], tag[16];
    memcpy(tag, wk + 12 + 12 + 32, 16);
    assert_int_equal(kbs_gcm(false, swk, wk + 12, NULL, 0, wk + 24, 32, plain, tag), 0);
    assert_memory_equal(plain, secret, 32);
    /* and kbs_unwrap agrees */
    assert_int_equal(kbs_unwrap(g_rsa, wk, wk_len, ws, ws_len, &out, &out_len, &err), 0);
    assert_int_equal(out_len, 32);
    assert_memory_equal(out, secret, 32);
    free(out);
    /* every tampered byte is refused */
    for (size_t i = 0; i < wk_len; i++) {
        wk[i] ^= 1;
        assert_int_equal(kbs_unwrap(g_rsa, wk, wk_len, ws, ws_len, &out, &out_len, &err), -EBADMSG);
        wk[i] ^= 1;
    }
    ws[100] ^= 1;
    assert_int_equal(kbs_unwrap(g_rsa, wk, wk_len, ws, ws_len, &out, &out_len, &err), -EBADMSG);
    assert_int_equal(kbs_unwrap(g_rsa, wk, wk_len - 1, ws, ws_len, &out, &out_len, &err), -EBADMSG);
    assert_int_equal(kbs_wrap(g_rsa, secret, 0, &wk, &wk_len, &ws, &ws_len, &err), -EINVAL);
    free(wk);
    free(ws);
}

#define MRE  "abababababababababababababababababababababababababababababababab"
#define MRS  "1111111111111111111111111111111111111111111111111111111111111111"
#define PID1 "8b6b1a70-9bde-4c8e-9d5b-2f4a0c0e7a11"

static json_t* sgx_claims(void) {
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:[{s:s, s:i}]}", "attester_type", "SGX",
                     "sgx_mrenclave", MRE, "sgx_mrsigner", MRS, "sgx_isvprodid", 3, "sgx_isvsvn", 5,
                     "attester_tcb_status", "UpToDate", "policy_ids_matched", "id", PID1, "version",
                     1);
}

static int match(const char* policy_text, json_t* claims, struct moat_error* err) {
    json_t* j           = json_loads(policy_text, 0, NULL);
    struct kbs_policy p = {0};
    assert_non_null(j);
    int r = kbs_policy_parse(j, &p, err);
    json_decref(j);
    assert_int_equal(r, 0);
    r = kbs_policy_match(&p, claims, err);
    kbs_policy_clear(&p);
    return r;
}

static void test_policy_match(void** state) {
    (void)state;
    struct moat_error err = {0};
    json_t* c             = sgx_claims();
    /* empty lists are wildcards */
    assert_int_equal(
        match("{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"mrenclave\":[],"
              "\"enforce_tcb_upto_date\":true}}}",
              c, &err),
        0);
    assert_int_equal(
        match("{\"attestation_type\":[\"SGX\"],\"sgx\":{\"attributes\":{\"mrenclave\":[\"" MRE
              "\"],\"mrsigner\":[\"" MRS "\"],\"isvprodid\":[1,3],\"isvsvn\":5}}}",
              c, &err),
        0);
    assert_int_equal(
        match("{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"mrenclave\":[\"" MRS
              "\"]}}}",
              c, &err),
        -EPERM);
    assert_non_null(strstr(err.msg, "sgx_mrenclave"));
    assert_int_equal(
        match("{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"isvsvn\":6}}}", c, &err),
        -EPERM);
    assert_int_equal(
        match("{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"isvprodid\":[4]}}}", c,
              &err),
        -EPERM);
    assert_int_equal(
        match("{\"attestation_type\":\"TDX\",\"tdx\":{\"attributes\":{\"mrtd\":[]}}}", c, &err),
        -EPERM);
    assert_non_null(strstr(err.msg, "attester_type"));
    /* one policy id in policy_ids_matched suffices (§4.3), even over a mismatching attribute */
    assert_int_equal(match("{\"attestation_type\":\"SGX\",\"sgx\":{\"policy_ids\":[\"" PID1
                           "\"],\"attributes\":{\"mrenclave\":[\"" MRS "\"]}}}",
                           c, &err),
                     0);
    assert_int_equal(match("{\"attestation_type\":\"SGX\",\"sgx\":{\"policy_ids\":["
                           "\"00000000-0000-4000-8000-000000000000\"]}}",
                           c, &err),
                     -EPERM);
    /* enforce_tcb_upto_date */
    json_object_set_new(c, "attester_tcb_status", json_string("OutOfDate"));
    assert_int_equal(match("{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{"
                           "\"enforce_tcb_upto_date\":true}}}",
                           c, &err),
                     -EPERM);
    assert_non_null(strstr(err.msg, "OutOfDate"));
    assert_int_equal(match("{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{"
                           "\"enforce_tcb_upto_date\":false}}}",
                           c, &err),
                     0);
    json_decref(c);
    /* TDX */
    char mrtd[97];
    memset(mrtd, 'c', 96);
    mrtd[96] = '\0';
    c = json_pack("{s:s, s:s, s:i, s:s}", "attester_type", "TDX", "tdx_mrtd", mrtd, "tdx_seamsvn",
                  260, "attester_tcb_status", "UpToDate");
    char* pol = xasprintf(
        "{\"attestation_type\":\"TDX\",\"tdx\":{\"attributes\":{\"mrtd\":[\"%s\"],\"seamsvn\":"
        "260}}}",
        mrtd);
    assert_int_equal(match(pol, c, &err), 0);
    free(pol);
    assert_int_equal(
        match("{\"attestation_type\":\"TDX\",\"tdx\":{\"attributes\":{\"seamsvn\":261}}}", c, &err),
        -EPERM);
    json_decref(c);
}

static void test_policy_parse_errors(void** state) {
    (void)state;
    static const struct {
        const char* json;
        const char* msg;
    } bad[] = {
        {"[]", "object"},
        {"{\"attestation_type\":\"SEV\",\"sgx\":{}}", "attestation_type"},
        {"{\"attestation_type\":\"SGX\"}", "needs 'sgx'"},
        {"{\"attestation_type\":\"SGX\",\"sgx\":{}}", "attributes"},
        {"{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"mrenclave\":[\"ab\"]}}}",
         "64 hex"},
        {"{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"isvsvn\":70000}}}", "isvsvn"},
        {"{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"mrtd\":[]}}}",
         "unknown attribute"},
        {"{\"attestation_type\":\"SGX\",\"sgx\":{\"policy_ids\":[\"x\"]}}", "UUID"},
        {"{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{}},\"tdx\":{}}", "unexpected key"},
        {"{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"enforce_tcb_upto_date\":1}}}",
         "boolean"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct moat_error err = {0};
        struct kbs_policy p   = {0};
        json_t* j             = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        assert_int_equal(kbs_policy_parse(j, &p, &err), -EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("%s: %s", bad[i].json, err.msg);
        json_decref(j);
    }
    /* canonical form round-trips */
    json_t* j = json_loads(
        "{\"attestation_type\":\"SGX\",\"sgx\":{\"attributes\":{\"mrenclave\":[\""
        "ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB\"],"
        "\"isvsvn\":2},\"policy_ids\":[\"" PID1 "\"]}}",
        0, NULL);
    struct kbs_policy p = {0}, q = {0};
    struct moat_error err = {0};
    assert_int_equal(kbs_policy_parse(j, &p, &err), 0);
    json_t* out = kbs_policy_to_json(&p);
    assert_int_equal(kbs_policy_parse(out, &q, &err), 0);
    assert_string_equal(q.mrenclave.v[0], MRE);
    assert_int_equal(q.isvsvn, 2);
    assert_string_equal(q.policy_ids.v[0], PID1);
    kbs_policy_clear(&p);
    kbs_policy_clear(&q);
    json_decref(out);
    json_decref(j);
}

/* What a client (moat kbs get-key) reports for a tampered or misdirected transfer response:
 * each failure names the field (§4.3 wrapped_key header, wrapped_swk, the GCM tag). */
static void test_unwrap_errors(void** state) {
    (void)state;
    struct moat_error err   = {0};
    const uint8_t secret[5] = {'h', 'e', 'l', 'l', 'o'};
    uint8_t *wk = NULL, *ws = NULL, *out = NULL;
    size_t wk_len = 0, ws_len = 0, out_len = 0;
    assert_int_equal(kbs_wrap(g_rsa, secret, sizeof(secret), &wk, &wk_len, &ws, &ws_len, &err), 0);
    char* b64k = base64_encode_alloc(wk, wk_len);
    char* b64s = base64_encode_alloc(ws, ws_len);
    char* body =
        xasprintf("{\"wrapped_key\": \"%s\", \"wrapped_swk\": \"%s\", \"x\": 1}", b64k, b64s);
    struct kbs_wrapped w = {0};
    assert_int_equal(kbs_transfer_response_parse(body, strlen(body), &w, &err), 0);
    assert_int_equal(w.key_len, wk_len);
    assert_memory_equal(w.key, wk, wk_len);
    assert_int_equal(kbs_unwrap(g_rsa, w.key, w.key_len, w.swk, w.swk_len, &out, &out_len, &err),
                     0);
    assert_int_equal(out_len, sizeof(secret));
    assert_memory_equal(out, secret, sizeof(secret));
    free(out);

    /* a flipped ciphertext byte: the tag does not match */
    w.key[KBS_WRAP_HEAD_LEN + KBS_WRAP_IV_LEN] ^= 0x80;
    assert_int_equal(kbs_unwrap(g_rsa, w.key, w.key_len, w.swk, w.swk_len, &out, &out_len, &err),
                     -EBADMSG);
    assert_non_null(strstr(err.msg, "tag mismatch"));
    w.key[KBS_WRAP_HEAD_LEN + KBS_WRAP_IV_LEN] ^= 0x80;
    /* header fields */
    w.key[0] = 13;
    assert_int_equal(kbs_unwrap(g_rsa, w.key, w.key_len, w.swk, w.swk_len, &out, &out_len, &err),
                     -EBADMSG);
    assert_string_equal(err.msg, "'wrapped_key' header: iv_len is 13, not 12");
    w.key[0] = 12;
    w.key[4] = 8;
    assert_int_equal(kbs_unwrap(g_rsa, w.key, w.key_len, w.swk, w.swk_len, &out, &out_len, &err),
                     -EBADMSG);
    assert_string_equal(err.msg, "'wrapped_key' header: tag_len is 8, not 16");
    w.key[4] = 16;
    w.key[8] = 22; /* ct_len counts the tag: 5 + 16 = 21 is right */
    assert_int_equal(kbs_unwrap(g_rsa, w.key, w.key_len, w.swk, w.swk_len, &out, &out_len, &err),
                     -EBADMSG);
    assert_non_null(strstr(err.msg, "but its header says 12 + 12 + 22"));
    w.key[8] = 16; /* no ciphertext at all */
    assert_int_equal(kbs_unwrap(g_rsa, w.key, w.key_len, w.swk, w.swk_len, &out, &out_len, &err),
                     -EBADMSG);
    assert_non_null(strstr(err.msg, "ct_len is 16"));
    w.key[8] = 21;
    assert_int_equal(kbs_unwrap(g_rsa, w.key, 7, w.swk, w.swk_len, &out, &out_len, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "shorter than its 12-byte header"));
    /* another private key */
    EVP_PKEY* other = EVP_RSA_gen(3072);
    assert_int_equal(kbs_unwrap(other, w.key, w.key_len, w.swk, w.swk_len, &out, &out_len, &err),
                     -EBADMSG);
    assert_non_null(strstr(err.msg, "'wrapped_swk' does not decrypt with this private key"));
    EVP_PKEY_free(other);
    kbs_wrapped_clear(&w);

    /* the response itself */
    static const char* const bad[][2] = {
        {"[]", "not a JSON object"},
        {"{\"wrapped_swk\": \"AAAA\"}", "no 'wrapped_key'"},
        {"{\"wrapped_key\": \"AAAA\", \"wrapped_swk\": 3}", "'wrapped_swk' is not a string"},
        {"{\"wrapped_key\": \"A!AA\", \"wrapped_swk\": \"AAAA\"}", "'wrapped_key' is not base64"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(kbs_transfer_response_parse(bad[i][0], strlen(bad[i][0]), &w, &err),
                         -EBADMSG);
        assert_non_null(strstr(err.msg, bad[i][1]));
    }
    free(body);
    free(b64k);
    free(b64s);
    free(wk);
    free(ws);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_key),
        cmocka_unit_test(test_wrap_format),
        cmocka_unit_test(test_unwrap_errors),
        cmocka_unit_test(test_policy_match),
        cmocka_unit_test(test_policy_parse_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
