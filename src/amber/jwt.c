/* SPDX-License-Identifier: Apache-2.0 */
/* JWT/JWS/JWK for the Amber/ITA token service and its clients: see jwt.h. */
#include "jwt.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <string.h>

#define MAX_TOKEN_SIZE (64 * 1024) /* ITA tokens are a few KiB */
#define MIN_RSA_BITS   2048

int amber_jwt_alg_parse(const char* name, enum amber_jwt_alg* ret, struct moat_error* err) {
    if (name && strcmp(name, "PS384") == 0)
        *ret = AMBER_JWT_PS384;
    else if (name && strcmp(name, "RS256") == 0)
        *ret = AMBER_JWT_RS256;
    else
        return moat_error_set(err, -EINVAL, "unsupported token signing algorithm \"%s\"",
                              name ? name : "");
    return 0;
}

const char* amber_jwt_alg_name(enum amber_jwt_alg alg) {
    return alg == AMBER_JWT_PS384 ? "PS384" : "RS256";
}

static int ossl_fail(struct moat_error* err, int code, const char* what) {
    unsigned long e = ERR_get_error();
    char buf[256]   = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return moat_error_set(err, code, "%s%s%s", what, e ? ": " : "", buf);
}

static int check_rsa(EVP_PKEY* key, struct moat_error* err) {
    if (!key || !EVP_PKEY_is_a(key, "RSA"))
        return moat_error_set(err, -EINVAL, "the token key is not an RSA key");
    if (EVP_PKEY_get_bits(key) < MIN_RSA_BITS)
        return moat_error_set(err, -EINVAL, "the token key has %d bits, fewer than %d",
                              EVP_PKEY_get_bits(key), MIN_RSA_BITS);
    return 0;
}

/* The digest context set up for alg; sign or verify */
static EVP_MD_CTX* md_ctx(enum amber_jwt_alg alg, EVP_PKEY* key, bool sign) {
    EVP_MD_CTX* md     = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = NULL;
    const EVP_MD* dg   = alg == AMBER_JWT_PS384 ? EVP_sha384() : EVP_sha256();
    int ok             = md && (sign ? EVP_DigestSignInit(md, &pctx, dg, NULL, key)
                                     : EVP_DigestVerifyInit(md, &pctx, dg, NULL, key)) == 1;
    if (ok && alg == AMBER_JWT_PS384)
        /* RFC 7518 §3.5: salt as long as the hash; Go's verifier accepts any salt length, and
         * so does this one */
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, dg) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(
                 pctx, sign ? RSA_PSS_SALTLEN_DIGEST : RSA_PSS_SALTLEN_AUTO) > 0;
    else if (ok)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
    if (!ok) {
        EVP_MD_CTX_free(md);
        return NULL;
    }
    return md;
}

static char* b64url_json(const json_t* j) {
    _cleanup_free_ char* text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    return text ? base64url_encode_alloc(text, strlen(text)) : NULL;
}

int amber_jwt_sign(enum amber_jwt_alg alg, EVP_PKEY* key, const char* kid, const char* jku,
                   const json_t* claims, char** ret, struct moat_error* err) {
    *ret  = NULL;
    int r = check_rsa(key, err);
    if (r < 0)
        return r;
    if (!json_is_object(claims))
        return moat_error_set(err, -EINVAL, "token claims must be a JSON object");
    json_t* header = json_pack("{s:s, s:s}", "alg", amber_jwt_alg_name(alg), "typ", "JWT");
    if (jku)
        json_object_set_new(header, "jku", json_string(jku));
    if (kid)
        json_object_set_new(header, "kid", json_string(kid));
    _cleanup_free_ char* h = b64url_json(header);
    _cleanup_free_ char* c = b64url_json(claims);
    json_decref(header);
    if (!h || !c)
        return moat_error_set(err, -EINVAL,
                              "token claims are not valid JSON (a string not UTF-8?)");
    _cleanup_free_ char* input = xasprintf("%s.%s", h, c);
    EVP_MD_CTX* md             = md_ctx(alg, key, true);
    size_t n                   = 0;
    if (!md || EVP_DigestSign(md, NULL, &n, (const uint8_t*)input, strlen(input)) != 1) {
        EVP_MD_CTX_free(md);
        return ossl_fail(err, -EIO, "signing the token");
    }
    _cleanup_free_ uint8_t* sig = xmalloc(n);
    if (EVP_DigestSign(md, sig, &n, (const uint8_t*)input, strlen(input)) != 1) {
        EVP_MD_CTX_free(md);
        return ossl_fail(err, -EIO, "signing the token");
    }
    EVP_MD_CTX_free(md);
    _cleanup_free_ char* s = base64url_encode_alloc(sig, n);
    *ret                   = xasprintf("%s.%s", input, s);
    return 0;
}

void amber_jwt_clear(struct amber_jwt* t) {
    if (!t)
        return;
    json_decref(t->header);
    json_decref(t->claims);
    *t = (struct amber_jwt){0};
}

static int decode_part(const char* p, size_t len, const char* what, json_t** ret,
                       struct moat_error* err) {
    uint8_t* bytes = NULL;
    size_t n       = 0;
    if (base64url_decode_alloc(p, len, &bytes, &n) < 0)
        return moat_error_set(err, -EINVAL, "malformed token: the %s is not base64url", what);
    json_error_t je;
    json_t* j = json_loadb((const char*)bytes, n, JSON_REJECT_DUPLICATES, &je);
    free(bytes);
    if (!json_is_object(j)) {
        json_decref(j);
        return moat_error_set(err, -EINVAL, "malformed token: the %s is not a JSON object", what);
    }
    *ret = j;
    return 0;
}

/* the two dots of header.claims.signature */
static int split(const char* token, const char** dot1, const char** dot2, struct moat_error* err) {
    size_t len = strnlen(token, MAX_TOKEN_SIZE + 1);
    *dot1 = *dot2 = NULL;
    if (len > MAX_TOKEN_SIZE)
        return moat_error_set(err, -EINVAL, "malformed token: longer than %d bytes",
                              MAX_TOKEN_SIZE);
    *dot1 = strchr(token, '.');
    *dot2 = *dot1 ? strchr(*dot1 + 1, '.') : NULL;
    if (!*dot1 || !*dot2 || strchr(*dot2 + 1, '.'))
        return moat_error_set(err, -EINVAL,
                              "malformed token: expected three parts separated by dots");
    return 0;
}

int amber_jwt_decode_header(const char* token, json_t** ret, struct moat_error* err) {
    *ret           = NULL;
    const char *d1 = NULL, *d2 = NULL;
    int r = split(token, &d1, &d2, err);
    return r < 0 ? r : decode_part(token, (size_t)(d1 - token), "header", ret, err);
}

int amber_jwt_decode(const char* token, struct amber_jwt* ret, struct moat_error* err) {
    *ret           = (struct amber_jwt){0};
    const char *d1 = NULL, *d2 = NULL;
    int r = split(token, &d1, &d2, err);
    if (r < 0)
        return r;
    struct amber_jwt t = {0};
    r                  = decode_part(token, (size_t)(d1 - token), "header", &t.header, err);
    if (r == 0)
        r = decode_part(d1 + 1, (size_t)(d2 - d1 - 1), "claims", &t.claims, err);
    if (r < 0) {
        amber_jwt_clear(&t);
        return r;
    }
    *ret = t;
    return 0;
}

static void format_time(json_int_t t, char* buf, size_t size) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, size, "%lld", (long long)t);
}

static int check_times(const json_t* claims, time_t now, long leeway, struct moat_error* err) {
    const json_t* exp = json_object_get(claims, "exp");
    const json_t* nbf = json_object_get(claims, "nbf");
    char when[64];
    if (!json_is_number(exp))
        return moat_error_set(err, -EINVAL, "token has no expiry (\"exp\")");
    if (nbf && !json_is_number(nbf))
        return moat_error_set(err, -EINVAL, "token's \"nbf\" is not a number");
    double e = json_number_value(exp);
    if ((double)now > e + (double)leeway) {
        format_time((json_int_t)e, when, sizeof(when));
        return moat_error_set(err, -EKEYEXPIRED, "token expired at %s", when);
    }
    if (nbf && (double)now + (double)leeway < json_number_value(nbf)) {
        format_time((json_int_t)json_number_value(nbf), when, sizeof(when));
        return moat_error_set(err, -EKEYEXPIRED, "token not valid before %s", when);
    }
    return 0;
}

int amber_jwt_verify(const char* token, enum amber_jwt_alg alg, EVP_PKEY* key, time_t now,
                     long leeway, struct amber_jwt* ret, struct moat_error* err) {
    *ret  = (struct amber_jwt){0};
    int r = check_rsa(key, err);
    if (r < 0)
        return r;
    struct amber_jwt t = {0};
    r                  = amber_jwt_decode(token, &t, err);
    if (r < 0)
        return r;
    const char *d1 = NULL, *d2 = NULL;
    r                = split(token, &d1, &d2, err);
    const char* talg = json_string_value(json_object_get(t.header, "alg"));
    if (r == 0 && (!talg || strcmp(talg, amber_jwt_alg_name(alg)) != 0))
        r = moat_error_set(err, -EPERM, "token signed with \"%s\", expected %s",
                           talg ? talg : "(no alg)", amber_jwt_alg_name(alg));
    if (r == 0 && json_object_get(t.header, "crit"))
        r = moat_error_set(err, -EINVAL, "token has critical header parameters (\"crit\")");
    uint8_t* sig   = NULL;
    size_t sig_len = 0;
    if (r == 0 && base64url_decode_alloc(d2 + 1, strlen(d2 + 1), &sig, &sig_len) < 0)
        r = moat_error_set(err, -EINVAL, "malformed token: the signature is not base64url");
    if (r == 0) {
        EVP_MD_CTX* md = md_ctx(alg, key, false);
        int ok         = md && EVP_DigestVerify(md, sig, sig_len, (const uint8_t*)token,
                                                (size_t)(d2 - token)) == 1;
        EVP_MD_CTX_free(md);
        ERR_clear_error();
        if (!ok)
            r = moat_error_set(err, -EPERM, "token signature is invalid");
    }
    free(sig);
    if (r == 0)
        r = check_times(t.claims, now, leeway, err);
    if (r < 0) {
        amber_jwt_clear(&t);
        return r;
    }
    *ret = t;
    return 0;
}

static json_t* b64url_bn(EVP_PKEY* key, const char* name) {
    BIGNUM* bn = NULL;
    if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
        return NULL;
    size_t n       = (size_t)BN_num_bytes(bn);
    uint8_t* bytes = xmalloc(n ? n : 1);
    BN_bn2bin(bn, bytes);
    BN_free(bn);
    char* s   = base64url_encode_alloc(bytes, n);
    json_t* j = json_string(s);
    free(bytes);
    free(s);
    return j;
}

json_t* amber_jwk_new(EVP_PKEY* key, enum amber_jwt_alg alg, const char* kid,
                      const STACK_OF(X509) * chain) {
    json_t* n = b64url_bn(key, OSSL_PKEY_PARAM_RSA_N);
    json_t* e = b64url_bn(key, OSSL_PKEY_PARAM_RSA_E);
    if (!n || !e) {
        json_decref(n);
        json_decref(e);
        return NULL;
    }
    json_t* jwk = json_pack("{s:s, s:o, s:s, s:o}", "alg", amber_jwt_alg_name(alg), "e", e, "kty",
                            "RSA", "n", n);
    if (kid)
        json_object_set_new(jwk, "kid", json_string(kid));
    if (chain && sk_X509_num(chain) > 0) {
        json_t* x5c = json_array();
        for (int i = 0; i < sk_X509_num(chain); i++) {
            uint8_t* der = NULL;
            int len      = i2d_X509(sk_X509_value(chain, i), &der);
            if (len <= 0)
                continue;
            char* b64 = base64_encode_alloc(der, (size_t)len); /* x5c: standard base64 */
            json_array_append_new(x5c, json_string(b64));
            free(b64);
            OPENSSL_free(der);
        }
        json_object_set_new(jwk, "x5c", x5c);
    }
    return jwk;
}

static BIGNUM* jwk_bn(const json_t* jwk, const char* name) {
    const char* s = json_string_value(json_object_get(jwk, name));
    uint8_t* b    = NULL;
    size_t n      = 0;
    if (!s || base64url_decode_alloc(s, strlen(s), &b, &n) < 0 || n == 0) {
        free(b);
        return NULL;
    }
    BIGNUM* bn = BN_bin2bn(b, (int)n, NULL);
    free(b);
    return bn;
}

int amber_jwk_key(const json_t* jwk, EVP_PKEY** ret, struct moat_error* err) {
    *ret            = NULL;
    const char* kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty || strcmp(kty, "RSA") != 0)
        return moat_error_set(err, -EINVAL, "JWK: kty is \"%s\", expected \"RSA\"", kty ? kty : "");
    BIGNUM* n           = jwk_bn(jwk, "n");
    BIGNUM* e           = jwk_bn(jwk, "e");
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM* params  = NULL;
    EVP_PKEY_CTX* ctx   = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY* key       = NULL;
    int ok = n && e && bld && ctx && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
             OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) &&
             (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
             EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        EVP_PKEY_free(key);
        ERR_clear_error();
        return moat_error_set(err, -EINVAL, "JWK: n and e are not an RSA public key");
    }
    int r = check_rsa(key, err);
    if (r < 0) {
        EVP_PKEY_free(key);
        return r;
    }
    *ret = key;
    return 0;
}
