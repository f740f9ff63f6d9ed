/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key-release public key and the wrapping of a secret for it (attestation.md §4.1
 * "Key-release convention", §4.3 "Response").
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <string.h>

#include "kbs.h"

int kbs_gcm(bool enc, const uint8_t key[32], const uint8_t iv[12], const void* aad, size_t aad_len,
            const uint8_t* in, size_t len, uint8_t* out, uint8_t tag[16]) {
    if (len > INT32_MAX || aad_len > INT32_MAX)
        return -EINVAL;
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int n = 0, ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, enc) == 1;
    if (ok && aad && aad_len)
        ok = EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1;
    if (ok && len)
        ok = EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1;
    else
        n = 0;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
    int fin       = 0;
    bool final_ok = ok && EVP_CipherFinal_ex(ctx, out + n, &fin) == 1;
    if (final_ok && enc)
        final_ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return -EIO;
    return final_ok ? 0 : (enc ? -EIO : -EBADMSG);
}

/* ------------------------------------------------------------------------------------------ */
/* attester_held_data                                                                           */

static EVP_PKEY* rsa_from_be(const uint8_t* n_be, size_t n_len, uint32_t e) {
    BIGNUM* n           = BN_bin2bn(n_be, (int)n_len, NULL);
    BIGNUM* be          = BN_new();
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM* params  = NULL;
    EVP_PKEY_CTX* ctx   = NULL;
    EVP_PKEY* key       = NULL;
    if (n && be && bld && BN_set_word(be, e) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(bld)) &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(be);
    return key;
}

int kbs_held_key(const char* held, enum kbs_tee tee, EVP_PKEY** ret, struct moat_error* err) {
    _cleanup_free_ uint8_t* raw = NULL;
    size_t len                  = 0;
    if (!held || base64_decode_alloc(held, strlen(held), &raw, &len) < 0)
        return moat_error_set(err, -EINVAL, "'attester_held_data' is not base64");
    struct cursor c = cursor_init(raw, len);
    uint32_t e      = 0;
    if (cur_u32le(&c, &e) < 0 || e < 3 || (e & 1) == 0)
        return moat_error_set(err, -EINVAL,
                              "'attester_held_data' is not an RSA public key (4-byte LE exponent "
                              "‖ modulus)");
    size_t n_len              = c.len;
    _cleanup_free_ uint8_t* n = xmalloc(n_len ? n_len : 1);
    /* §4.1: SGX enclaves put the modulus little-endian (the KBS reverses it), TDX big-endian */
    for (size_t i = 0; i < n_len; i++)
        n[i] = tee == KBS_TEE_SGX ? c.p[n_len - 1 - i] : c.p[i];
    size_t lead = 0;
    while (lead < n_len && n[lead] == 0)
        lead++;
    size_t bits = (n_len - lead) * 8;
    if (lead < n_len)
        for (uint8_t top = n[lead]; !(top & 0x80); top <<= 1)
            bits--;
    if (bits < KBS_MIN_RSA_BITS)
        return moat_error_set(err, -EINVAL,
                              "the key in 'attester_held_data' has %zu bits: more than 2048 "
                              "are required",
                              bits);
    EVP_PKEY* k = rsa_from_be(n + lead, n_len - lead, e);
    if (!k)
        return moat_error_set(err, -EINVAL, "the key in 'attester_held_data' is not usable");
    *ret = k;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Wrapping                                                                                     */

static EVP_PKEY_CTX* oaep_ctx(EVP_PKEY* key, bool enc) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (!ctx || (enc ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static void put_u32le(uint8_t* p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int kbs_wrap(EVP_PKEY* pub, const uint8_t* secret, size_t len, uint8_t** ret_key,
             size_t* ret_key_len, uint8_t** ret_swk, size_t* ret_swk_len, struct moat_error* err) {
    if (len == 0 || len > KBS_MAX_SECRET_LEN)
        return moat_error_set(err, -EINVAL, "a secret of %zu bytes cannot be wrapped", len);
    uint8_t swk[KBS_SWK_LEN];
    size_t total                    = KBS_WRAP_HEAD_LEN + KBS_WRAP_IV_LEN + len + KBS_WRAP_TAG_LEN;
    _cleanup_free_ uint8_t* wrapped = xmalloc(total);
    _cleanup_free_ uint8_t* ws      = NULL;
    size_t ws_len                   = 0;
    int r                           = -EIO;
    /* §4.3: u32 LE iv_len ‖ u32 LE tag_len ‖ u32 LE ct_len ‖ IV ‖ ciphertext ‖ tag, ct_len
     * counting the tag (Go's aes-gcm Seal output; §4.3's example: 0x30 for a 32-byte key) */
    put_u32le(wrapped, KBS_WRAP_IV_LEN);
    put_u32le(wrapped + 4, KBS_WRAP_TAG_LEN);
    put_u32le(wrapped + 8, (uint32_t)(len + KBS_WRAP_TAG_LEN));
    uint8_t* iv = wrapped + KBS_WRAP_HEAD_LEN;
    uint8_t* ct = iv + KBS_WRAP_IV_LEN;
    if (RAND_bytes(swk, sizeof(swk)) != 1 || RAND_bytes(iv, KBS_WRAP_IV_LEN) != 1 ||
        kbs_gcm(true, swk, iv, NULL, 0, secret, len, ct, ct + len) < 0)
        goto out;
    EVP_PKEY_CTX* ctx = oaep_ctx(pub, true);
    if (ctx && EVP_PKEY_encrypt(ctx, NULL, &ws_len, swk, sizeof(swk)) == 1) {
        ws = xmalloc(ws_len);
        if (EVP_PKEY_encrypt(ctx, ws, &ws_len, swk, sizeof(swk)) == 1)
            r = 0;
    }
    EVP_PKEY_CTX_free(ctx);
out:
    OPENSSL_cleanse(swk, sizeof(swk));
    if (r < 0)
        return moat_error_set(err, r, "cannot wrap the key");
    *ret_key     = TAKE_PTR(wrapped);
    *ret_key_len = total;
    *ret_swk     = TAKE_PTR(ws);
    *ret_swk_len = ws_len;
    return 0;
}

/* §4.3 wrapped_key: u32 LE iv_len (12) ‖ u32 LE tag_len (16) ‖ u32 LE ct_len ‖ IV ‖ ct ‖ tag,
 * ct_len counting the ciphertext and the tag (§4.3's example 0x30 for a 32-byte key); *ct_len
 * is returned as the ciphertext's (the secret's) length */
static int wrapped_key_parse(const uint8_t* key, size_t key_len, const uint8_t** iv,
                             const uint8_t** ct, uint32_t* ct_len, const uint8_t** tag,
                             struct moat_error* err) {
    struct cursor c = cursor_init(key, key_len);
    uint32_t iv_len = 0, tag_len = 0;
    if (cur_u32le(&c, &iv_len) < 0 || cur_u32le(&c, &tag_len) < 0 || cur_u32le(&c, ct_len) < 0)
        return moat_error_set(err, -EBADMSG,
                              "'wrapped_key' is %zu bytes, shorter than its %d-byte header",
                              key_len, KBS_WRAP_HEAD_LEN);
    if (iv_len != KBS_WRAP_IV_LEN)
        return moat_error_set(err, -EBADMSG, "'wrapped_key' header: iv_len is %" PRIu32 ", not %d",
                              iv_len, KBS_WRAP_IV_LEN);
    if (tag_len != KBS_WRAP_TAG_LEN)
        return moat_error_set(err, -EBADMSG, "'wrapped_key' header: tag_len is %" PRIu32 ", not %d",
                              tag_len, KBS_WRAP_TAG_LEN);
    if (*ct_len <= tag_len || *ct_len - tag_len > KBS_MAX_SECRET_LEN)
        return moat_error_set(err, -EBADMSG,
                              "'wrapped_key' header: ct_len is %" PRIu32
                              " (the ciphertext and the %d-byte tag: %d to %d)",
                              *ct_len, KBS_WRAP_TAG_LEN, KBS_WRAP_TAG_LEN + 1,
                              KBS_WRAP_TAG_LEN + KBS_MAX_SECRET_LEN);
    if (cur_ptr(&c, iv_len, iv) < 0 || cur_ptr(&c, *ct_len - tag_len, ct) < 0 ||
        cur_ptr(&c, tag_len, tag) < 0 || c.len != 0)
        return moat_error_set(err, -EBADMSG,
                              "'wrapped_key' is %zu bytes, but its header says %d + %" PRIu32
                              " + %" PRIu32,
                              key_len, KBS_WRAP_HEAD_LEN, iv_len, *ct_len);
    *ct_len -= tag_len;
    return 0;
}

int kbs_unwrap(EVP_PKEY* priv, const uint8_t* key, size_t key_len, const uint8_t* swk,
               size_t swk_len, uint8_t** ret, size_t* ret_len, struct moat_error* err) {
    uint32_t ct_len   = 0;
    const uint8_t *iv = NULL, *ct = NULL, *tagp = NULL;
    int r = wrapped_key_parse(key, key_len, &iv, &ct, &ct_len, &tagp, err);
    if (r < 0)
        return r;
    uint8_t k[1024]; /* OpenSSL wants room for a modulus-size result */
    size_t k_len      = sizeof(k);
    EVP_PKEY_CTX* ctx = oaep_ctx(priv, false);
    int ok = ctx && EVP_PKEY_decrypt(ctx, k, &k_len, swk, swk_len) == 1 && k_len == KBS_SWK_LEN;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        OPENSSL_cleanse(k, sizeof(k));
        return moat_error_set(err, -EBADMSG,
                              "'wrapped_swk' does not decrypt with this private key (RSA-OAEP "
                              "SHA-256): the key was wrapped for another key");
    }
    uint8_t tag[16];
    memcpy(tag, tagp, sizeof(tag));
    uint8_t* out = xmalloc(ct_len);
    r            = kbs_gcm(false, k, iv, NULL, 0, ct, ct_len, out, tag);
    OPENSSL_cleanse(k, sizeof(k));
    if (r < 0) {
        OPENSSL_cleanse(out, ct_len);
        free(out);
        return moat_error_set(err, -EBADMSG,
                              "'wrapped_key' does not decrypt with the key in "
                              "'wrapped_swk' (AES-GCM tag mismatch: tampered in transit)");
    }
    *ret     = out;
    *ret_len = ct_len;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The transfer response                                                                        */

void kbs_wrapped_clear(struct kbs_wrapped* w) {
    free(w->key);
    free(w->swk);
    *w = (struct kbs_wrapped){0};
}

static int b64_field(const json_t* o, const char* name, uint8_t** ret, size_t* ret_len,
                     struct moat_error* err) {
    const json_t* v = json_object_get(o, name);
    if (!v)
        return moat_error_set(err, -EBADMSG, "the response has no '%s'", name);
    if (!json_is_string(v))
        return moat_error_set(err, -EBADMSG, "the response's '%s' is not a string", name);
    if (base64_decode_alloc(json_string_value(v), json_string_length(v), ret, ret_len) < 0 ||
        *ret_len == 0) {
        free(*ret);
        *ret = NULL;
        return moat_error_set(err, -EBADMSG, "the response's '%s' is not base64", name);
    }
    return 0;
}

int kbs_transfer_response_parse(const char* body, size_t len, struct kbs_wrapped* ret,
                                struct moat_error* err) {
    if (len > KBS_MAX_RESPONSE)
        return moat_error_set(err, -EBADMSG, "the response is %zu bytes, more than %d", len,
                              KBS_MAX_RESPONSE);
    json_error_t e = {0};
    json_t* doc    = json_loadb(body, len, 0, &e);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return moat_error_set(err, -EBADMSG, "the response is not a JSON object");
    }
    struct kbs_wrapped w = {0};
    int r                = b64_field(doc, "wrapped_key", &w.key, &w.key_len, err);
    if (r == 0)
        r = b64_field(doc, "wrapped_swk", &w.swk, &w.swk_len, err);
    json_decref(doc);
    if (r < 0) {
        kbs_wrapped_clear(&w);
        return r;
    }
    *ret = w;
    return 0;
}
