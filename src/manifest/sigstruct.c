/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SIGSTRUCT with Gramine's byte layout and signing rules (reference/gramine.md §3,
 * python/graminelibos/sigstruct.py): signed bytes = sig[0:128] || sig[900:1028],
 * RSASSA-PKCS1-v1_5 with SHA-256, modulus/signature/q1/q2 little-endian,
 * q1 = floor(s^2 / n), q2 = floor((s^2 mod n) * s / n).
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sigstruct.h"

static const uint8_t g_header[16]  = {0x06, 0x00, 0x00, 0x00, 0xe1, 0x00, 0x00, 0x00,
                                      0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
static const uint8_t g_header2[16] = {0x01, 0x01, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00,
                                      0x60, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00};

static int ossl_fail(struct moat_error* err, const char* what) {
    unsigned long e = ERR_get_error();
    char buf[256]   = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return moat_error_set(err, -EIO, "%s: %s", what, buf);
}

static void put_u16(uint8_t* p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void sigstruct_serialize(const struct sigstruct* s, uint8_t out[SIGSTRUCT_SIZE]) {
    memset(out, 0, SIGSTRUCT_SIZE);
    memcpy(out + SIGSTRUCT_OFF_HEADER, g_header, 16);
    put_u32(out + SIGSTRUCT_OFF_VENDOR, s->vendor);
    put_u32(out + SIGSTRUCT_OFF_DATE, s->date);
    memcpy(out + SIGSTRUCT_OFF_HEADER2, g_header2, 16);
    put_u32(out + SIGSTRUCT_OFF_SWDEFINED, s->swdefined);
    memcpy(out + SIGSTRUCT_OFF_MODULUS, s->modulus, SIGSTRUCT_KEY_BYTES);
    put_u32(out + SIGSTRUCT_OFF_EXPONENT, s->exponent);
    memcpy(out + SIGSTRUCT_OFF_SIGNATURE, s->signature, SIGSTRUCT_KEY_BYTES);
    put_u32(out + SIGSTRUCT_OFF_MISC_SELECT, s->misc_select);
    put_u32(out + SIGSTRUCT_OFF_MISC_MASK, s->misc_mask);
    out[SIGSTRUCT_OFF_CET_ATTRS]      = s->cet_attributes;
    out[SIGSTRUCT_OFF_CET_ATTRS_MASK] = s->cet_attributes_mask;
    memcpy(out + SIGSTRUCT_OFF_ISV_FAMILY_ID, s->isv_family_id, 16);
    put_u64(out + SIGSTRUCT_OFF_ATTRIBUTES, s->attr_flags);
    put_u64(out + SIGSTRUCT_OFF_ATTRIBUTES + 8, s->attr_xfrm);
    put_u64(out + SIGSTRUCT_OFF_ATTRIBUTE_MASK, s->attr_mask_flags);
    put_u64(out + SIGSTRUCT_OFF_ATTRIBUTE_MASK + 8, s->attr_mask_xfrm);
    memcpy(out + SIGSTRUCT_OFF_ENCLAVE_HASH, s->enclave_hash, 32);
    memcpy(out + SIGSTRUCT_OFF_ISVEXT_PROD_ID, s->isvext_prod_id, 16);
    put_u16(out + SIGSTRUCT_OFF_ISV_PROD_ID, s->isv_prod_id);
    put_u16(out + SIGSTRUCT_OFF_ISV_SVN, s->isv_svn);
    memcpy(out + SIGSTRUCT_OFF_Q1, s->q1, SIGSTRUCT_KEY_BYTES);
    memcpy(out + SIGSTRUCT_OFF_Q2, s->q2, SIGSTRUCT_KEY_BYTES);
}

/* Every read goes through the bounds-checked cursor (STYLE.md §4). */
int sigstruct_parse(const uint8_t* buf, size_t len, struct sigstruct* ret, struct moat_error* err) {
    if (len != SIGSTRUCT_SIZE)
        return moat_error_set(err, -EINVAL, "not a SIGSTRUCT: %zu bytes, expected %d", len,
                              SIGSTRUCT_SIZE);
    struct cursor c = cursor_init(buf, len);
    struct sigstruct s;
    uint8_t header[16], header2[16];
    memset(&s, 0, sizeof(s));
    int r = cur_bytes(&c, header, 16);
    r     = r ?: cur_u32le(&c, &s.vendor);
    r     = r ?: cur_u32le(&c, &s.date);
    r     = r ?: cur_bytes(&c, header2, 16);
    r     = r ?: cur_u32le(&c, &s.swdefined);
    r     = r ?: cur_skip(&c, SIGSTRUCT_OFF_MODULUS - SIGSTRUCT_OFF_SWDEFINED - 4);
    r     = r ?: cur_bytes(&c, s.modulus, SIGSTRUCT_KEY_BYTES);
    r     = r ?: cur_u32le(&c, &s.exponent);
    r     = r ?: cur_bytes(&c, s.signature, SIGSTRUCT_KEY_BYTES);
    r     = r ?: cur_u32le(&c, &s.misc_select);
    r     = r ?: cur_u32le(&c, &s.misc_mask);
    r     = r ?: cur_u8(&c, &s.cet_attributes);
    r     = r ?: cur_u8(&c, &s.cet_attributes_mask);
    r     = r ?: cur_skip(&c, SIGSTRUCT_OFF_ISV_FAMILY_ID - SIGSTRUCT_OFF_CET_ATTRS_MASK - 1);
    r     = r ?: cur_bytes(&c, s.isv_family_id, 16);
    r     = r ?: cur_u64le(&c, &s.attr_flags);
    r     = r ?: cur_u64le(&c, &s.attr_xfrm);
    r     = r ?: cur_u64le(&c, &s.attr_mask_flags);
    r     = r ?: cur_u64le(&c, &s.attr_mask_xfrm);
    r     = r ?: cur_bytes(&c, s.enclave_hash, 32);
    r     = r ?: cur_skip(&c, SIGSTRUCT_OFF_ISVEXT_PROD_ID - SIGSTRUCT_OFF_ENCLAVE_HASH - 32);
    r     = r ?: cur_bytes(&c, s.isvext_prod_id, 16);
    r     = r ?: cur_u16le(&c, &s.isv_prod_id);
    r     = r ?: cur_u16le(&c, &s.isv_svn);
    r     = r ?: cur_skip(&c, SIGSTRUCT_OFF_Q1 - SIGSTRUCT_OFF_ISV_SVN - 2);
    r     = r ?: cur_bytes(&c, s.q1, SIGSTRUCT_KEY_BYTES);
    r     = r ?: cur_bytes(&c, s.q2, SIGSTRUCT_KEY_BYTES);
    if (r < 0)
        return moat_error_set(err, -EINVAL, "truncated SIGSTRUCT");
    if (memcmp(header, g_header, 16) != 0 || memcmp(header2, g_header2, 16) != 0)
        return moat_error_set(err, -EINVAL, "not a SIGSTRUCT: bad header bytes");
    *ret = s;
    return 0;
}

int sigstruct_mrsigner(const struct sigstruct* s, uint8_t out[32]) {
    return sha256_buf(s->modulus, SIGSTRUCT_KEY_BYTES, out);
}

static void reverse(uint8_t* p, size_t n) {
    for (size_t i = 0; i < n / 2; i++) {
        uint8_t t    = p[i];
        p[i]         = p[n - 1 - i];
        p[n - 1 - i] = t;
    }
}

static void signed_bytes(const struct sigstruct* s, uint8_t out[256]) {
    uint8_t buf[SIGSTRUCT_SIZE];
    sigstruct_serialize(s, buf);
    memcpy(out, buf, 128);
    memcpy(out + 128, buf + SIGSTRUCT_OFF_MISC_SELECT, 128);
}

/* ---------------------------------------------------------------------------------------- */
/* Manifest → SIGSTRUCT fields                                                                */

static int get_u16(const struct toml_value* root, const char* key, uint16_t* ret,
                   struct moat_error* err) {
    int64_t v;
    if (toml_get_int(root, key, 0, &v) < 0)
        return moat_error_set(err, -EINVAL, "'%s' must be an integer", key);
    if (v < 0 || v > 65535)
        return moat_error_set(err, -EINVAL, "'%s' = %lld is out of range (0..65535)", key,
                              (long long)v);
    *ret = (uint16_t)v;
    return 0;
}

int sigstruct_from_manifest(const struct toml_value* root, const uint8_t measurement[32],
                            uint32_t date, struct sigstruct* ret, struct moat_error* err) {
    struct sigstruct s;
    memset(&s, 0, sizeof(s));
    bool debug = false, exinfo = false;
    if (toml_get_bool(root, "sgx.debug", false, &debug) < 0)
        return moat_error_set(err, -EINVAL, "'sgx.debug' must be a boolean");
    if (toml_get_bool(root, "sgx.use_exinfo", false, &exinfo) < 0)
        return moat_error_set(err, -EINVAL, "'sgx.use_exinfo' must be a boolean");
    int r = get_u16(root, "sgx.isvprodid", &s.isv_prod_id, err);
    r     = r ?: get_u16(root, "sgx.isvsvn", &s.isv_svn, err);
    if (r < 0)
        return r;

    s.date            = date;
    s.misc_select     = exinfo ? SGX_MISC_EXINFO : 0;
    s.misc_mask       = 0xffffffffU;
    s.attr_flags      = SGX_FLAGS_MODE64BIT | (debug ? SGX_FLAGS_DEBUG : 0);
    s.attr_xfrm       = SGX_XFRM_LEGACY;
    s.attr_mask_flags = 0xffffffffffffffffULL;
    s.attr_mask_xfrm  = SGX_XFRM_MASK_DEFAULT;

    /* sgx.cpu_features.*: "required" sets the XFRM bits (and the mask covers them),
     * "disabled" clears them in the XFRM and requires them clear through the mask */
    static const struct {
        const char* key;
        uint64_t bits;
    } features[] = {
        {"sgx.cpu_features.avx", SGX_XFRM_AVX},   {"sgx.cpu_features.avx512", SGX_XFRM_AVX512},
        {"sgx.cpu_features.amx", SGX_XFRM_AMX},   {"sgx.cpu_features.mpx", SGX_XFRM_MPX},
        {"sgx.cpu_features.pkru", SGX_XFRM_PKRU},
    };
    for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
        const char* v;
        if (toml_get_string(root, features[i].key, "unspecified", &v) < 0)
            return moat_error_set(err, -EINVAL, "'%s' must be a string", features[i].key);
        if (!strcmp(v, "required")) {
            s.attr_xfrm |= features[i].bits;
            s.attr_mask_xfrm |= features[i].bits;
        } else if (!strcmp(v, "disabled")) {
            s.attr_mask_xfrm |= features[i].bits;
        } else if (strcmp(v, "unspecified") != 0) {
            return moat_error_set(err, -EINVAL,
                                  "'%s' = \"%s\" is not one of 'unspecified', "
                                  "'disabled' and 'required'",
                                  features[i].key, v);
        }
    }
    memcpy(s.enclave_hash, measurement, 32);
    *ret = s;
    return 0;
}

int sigstruct_date_parse(const char* str, uint32_t* ret) {
    int y, m, d;
    char tail;
    if (!strcmp(str, "today")) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        y = tm.tm_year + 1900;
        m = tm.tm_mon + 1;
        d = tm.tm_mday;
    } else if (sscanf(str, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || strlen(str) != 10 ||
               y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31) {
        return -EINVAL;
    }
    /* "hex digits of the decimal value": 2026-11-24 -> 0x20261124 */
    unsigned bcd = 0;
    char digits[48];
    snprintf(digits, sizeof(digits), "%04d%02d%02d", y, m, d);
    for (const char* c = digits; *c; c++)
        bcd = (bcd << 4) | (unsigned)(*c - '0');
    *ret = bcd;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Keys                                                                                       */

int enclave_key_check(EVP_PKEY* key, struct moat_error* err) {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
        return moat_error_set(err, -EINVAL, "Invalid RSA key: not an RSA key");
    int bits = EVP_PKEY_get_bits(key);
    if (bits != SIGSTRUCT_KEY_BITS)
        return moat_error_set(err, -EINVAL, "Invalid RSA key: expected key size 3072, got %d",
                              bits);
    BIGNUM* e = NULL;
    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e))
        return ossl_fail(err, "cannot read the RSA exponent");
    bool ok   = BN_is_word(e, SIGSTRUCT_EXPONENT);
    char* hex = BN_bn2dec(e);
    int ret   = ok ? 0
                   : moat_error_set(err, -EINVAL, "Invalid RSA key: expected exponent 3, got %s",
                                  hex ? hex : "?");
    OPENSSL_free(hex);
    BN_free(e);
    return ret;
}

int enclave_key_load(const char* path, EVP_PKEY** ret, struct moat_error* err) {
    FILE* f = fopen(path, "re");
    if (!f)
        return moat_error_set_errno(err, -errno, "cannot open signing key '%s'", path);
    EVP_PKEY* key = PEM_read_PrivateKey(f, NULL, NULL, (void*)"");
    fclose(f);
    if (!key) {
        ERR_clear_error();
        return moat_error_set(err, -EINVAL,
                              "'%s' is not an unencrypted PEM private key (create one with 'moat "
                              "sign --gen-key')",
                              path);
    }
    int r = enclave_key_check(key, err);
    if (r < 0) {
        EVP_PKEY_free(key);
        return moat_error_prefix(err, "%s", path);
    }
    *ret = key;
    return 0;
}

int enclave_key_generate(EVP_PKEY** ret, struct moat_error* err) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    BIGNUM* e         = BN_new();
    EVP_PKEY* key     = NULL;
    int r             = 0;
    if (!ctx || !e || !BN_set_word(e, SIGSTRUCT_EXPONENT) || EVP_PKEY_keygen_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, SIGSTRUCT_KEY_BITS) <= 0 ||
        EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0)
        r = ossl_fail(err, "RSA-3072 key generation failed");
    BN_free(e);
    EVP_PKEY_CTX_free(ctx);
    if (r == 0)
        *ret = key;
    return r;
}

int enclave_key_write(const char* path, EVP_PKEY* key, bool force, struct moat_error* err) {
    struct stat st;
    if (!force && lstat(path, &st) == 0)
        return moat_error_set(err, -EEXIST, "refusing to overwrite %s, use -f to force", path);
    BIO* bio = BIO_new(BIO_s_secmem());
    if (!bio || !PEM_write_bio_PrivateKey_traditional(bio, key, NULL, NULL, 0, NULL, NULL)) {
        BIO_free(bio);
        return ossl_fail(err, "cannot encode the private key");
    }
    char* data;
    long len = BIO_get_mem_data(bio, &data);
    int r    = write_file_atomic(path, data, (size_t)len, 0600, err);
    BIO_free(bio); /* secure memory: wiped on free */
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Signing                                                                                    */

/* Big-endian BIGNUM to a little-endian fixed-size field. */
static int bn_to_le(const BIGNUM* bn, uint8_t out[SIGSTRUCT_KEY_BYTES]) {
    if (BN_bn2lebinpad(bn, out, SIGSTRUCT_KEY_BYTES) != SIGSTRUCT_KEY_BYTES)
        return -EINVAL;
    return 0;
}

static int compute_q1_q2(const BIGNUM* n, const uint8_t sig_be[SIGSTRUCT_KEY_BYTES],
                         struct sigstruct* s) {
    BN_CTX* ctx = BN_CTX_new();
    BIGNUM* sig = BN_bin2bn(sig_be, SIGSTRUCT_KEY_BYTES, NULL);
    BIGNUM* sq  = BN_new();
    BIGNUM* q1  = BN_new();
    BIGNUM* rem = BN_new();
    BIGNUM* tmp = BN_new();
    BIGNUM* q2  = BN_new();
    int r       = -EINVAL;
    if (ctx && sig && sq && q1 && rem && tmp && q2 && BN_sqr(sq, sig, ctx) &&
        BN_div(q1, rem, sq, n, ctx) && BN_mul(tmp, rem, sig, ctx) &&
        BN_div(q2, NULL, tmp, n, ctx) && bn_to_le(q1, s->q1) == 0 && bn_to_le(q2, s->q2) == 0)
        r = 0;
    BN_free(sig);
    BN_free(sq);
    BN_free(q1);
    BN_free(rem);
    BN_free(tmp);
    BN_free(q2);
    BN_CTX_free(ctx);
    return r;
}

int sigstruct_sign(struct sigstruct* s, EVP_PKEY* key, struct moat_error* err) {
    int r = enclave_key_check(key, err);
    if (r < 0)
        return r;
    BIGNUM* n = NULL;
    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n))
        return ossl_fail(err, "cannot read the RSA modulus");
    if (bn_to_le(n, s->modulus) < 0) {
        BN_free(n);
        return moat_error_set(err, -EINVAL, "RSA modulus is not 384 bytes");
    }
    s->exponent = SIGSTRUCT_EXPONENT;

    uint8_t msg[256];
    signed_bytes(s, msg);
    uint8_t sig[SIGSTRUCT_KEY_BYTES];
    size_t siglen     = sizeof(sig);
    EVP_MD_CTX* mdctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx;
    if (!mdctx || EVP_DigestSignInit(mdctx, &pctx, EVP_sha256(), NULL, key) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0 ||
        EVP_DigestSign(mdctx, sig, &siglen, msg, sizeof(msg)) <= 0 ||
        siglen != SIGSTRUCT_KEY_BYTES) {
        EVP_MD_CTX_free(mdctx);
        BN_free(n);
        return ossl_fail(err, "signing the SIGSTRUCT failed");
    }
    EVP_MD_CTX_free(mdctx);
    r = compute_q1_q2(n, sig, s);
    BN_free(n);
    if (r < 0)
        return moat_error_set(err, -EINVAL, "computing q1/q2 failed");
    memcpy(s->signature, sig, SIGSTRUCT_KEY_BYTES);
    reverse(s->signature, SIGSTRUCT_KEY_BYTES);
    return 0;
}

static EVP_PKEY* public_key_of(const struct sigstruct* s) {
    uint8_t n_be[SIGSTRUCT_KEY_BYTES];
    memcpy(n_be, s->modulus, sizeof(n_be));
    reverse(n_be, sizeof(n_be));
    BIGNUM* n           = BN_bin2bn(n_be, sizeof(n_be), NULL);
    BIGNUM* e           = BN_new();
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM* params  = NULL;
    EVP_PKEY_CTX* ctx   = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY* key       = NULL;
    if (n && e && bld && ctx && BN_set_word(e, s->exponent) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) > 0 &&
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        key = NULL;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    return key;
}

int sigstruct_verify(const struct sigstruct* s, struct moat_error* err) {
    if (s->exponent != SIGSTRUCT_EXPONENT)
        return moat_error_set(err, -EBADMSG, "SIGSTRUCT exponent is %u, expected 3", s->exponent);
    EVP_PKEY* key = public_key_of(s);
    if (!key)
        return ossl_fail(err, "SIGSTRUCT modulus is not a valid RSA key");
    uint8_t msg[256], sig[SIGSTRUCT_KEY_BYTES];
    signed_bytes(s, msg);
    memcpy(sig, s->signature, sizeof(sig));
    reverse(sig, sizeof(sig));
    EVP_MD_CTX* mdctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx;
    int ok = mdctx && EVP_DigestVerifyInit(mdctx, &pctx, EVP_sha256(), NULL, key) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0 &&
             EVP_DigestVerify(mdctx, sig, sizeof(sig), msg, sizeof(msg)) == 1;
    EVP_MD_CTX_free(mdctx);
    ERR_clear_error();
    if (!ok) {
        EVP_PKEY_free(key);
        return moat_error_set(err, -EBADMSG,
                              "SIGSTRUCT signature does not verify (tampered or corrupted file)");
    }
    /* q1/q2 must match what the signature implies (SGX's EINIT checks them too) */
    struct sigstruct check = *s;
    BIGNUM* n              = NULL;
    int r                  = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n) ? 0 : -EINVAL;
    if (r == 0)
        r = compute_q1_q2(n, sig, &check);
    BN_free(n);
    EVP_PKEY_free(key);
    if (r < 0 || CRYPTO_memcmp(check.q1, s->q1, sizeof(s->q1)) != 0 ||
        CRYPTO_memcmp(check.q2, s->q2, sizeof(s->q2)) != 0)
        return moat_error_set(err, -EBADMSG, "SIGSTRUCT q1/q2 do not match the signature");
    return 0;
}
