/* SPDX-License-Identifier: Apache-2.0 */
/* NIST-curve EC keys without OpenSSL 3's encoder and decoder round trips: see eckey.h. */
#include "eckey.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

static const struct curve {
    const char* name; /* the Go/NIST name, as the callers spell it */
    int nid;
    size_t bytes; /* of a field element and of the private scalar */
} curves[] = {
    {"P-224", NID_secp224r1, 28},
    {"P-256", NID_X9_62_prime256v1, 32},
    {"P-384", NID_secp384r1, 48},
    {"P-521", NID_secp521r1, 66},
};
#define N_CURVES (sizeof(curves) / sizeof(curves[0]))

/* ---------------------------------------------------------------------------------------- */
/* Key generation from a parameter template                                                   */

static EVP_PKEY* templates[N_CURVES];
static pthread_once_t templates_once = PTHREAD_ONCE_INIT;

static void templates_make(void) {
    for (size_t i = 0; i < N_CURVES; i++) {
        EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (!c || EVP_PKEY_paramgen_init(c) <= 0 ||
            EVP_PKEY_CTX_set_group_name(c, curves[i].name) <= 0 ||
            EVP_PKEY_paramgen(c, &templates[i]) <= 0)
            templates[i] = NULL; /* moat_ec_keygen falls back to EVP_PKEY_Q_keygen */
        EVP_PKEY_CTX_free(c);
    }
}

EVP_PKEY* moat_ec_keygen(const char* curve) {
    pthread_once(&templates_once, templates_make);
    for (size_t i = 0; i < N_CURVES; i++) {
        if (strcmp(curves[i].name, curve) != 0)
            continue;
        if (!templates[i])
            break;
        EVP_PKEY* k     = NULL;
        EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_pkey(NULL, templates[i], NULL);
        if (!c || EVP_PKEY_keygen_init(c) <= 0 || EVP_PKEY_generate(c, &k) <= 0) {
            EVP_PKEY_free(k);
            k = NULL;
        }
        EVP_PKEY_CTX_free(c);
        return k;
    }
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

/* ---------------------------------------------------------------------------------------- */
/* The key's parameters                                                                       */

static const struct curve* key_curve(const EVP_PKEY* key) {
    char group[64];
    if (!EVP_PKEY_is_a(key, "EC") ||
        !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL))
        return NULL;
    int nid = OBJ_txt2nid(group);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(group);
    for (size_t i = 0; i < N_CURVES; i++)
        if (curves[i].nid == nid)
            return &curves[i];
    return NULL;
}

/* The uncompressed public point (04 ‖ X ‖ Y), OPENSSL_malloc'd; its length or -EIO. */
static int pub_point(const EVP_PKEY* key, const struct curve* cv, unsigned char** ret) {
    size_t want = 1 + 2 * cv->bytes, len = 0;
    unsigned char* p = OPENSSL_malloc(want);
    if (!p || !EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, p, want, &len) ||
        len != want || p[0] != 0x04) {
        OPENSSL_free(p);
        return -EIO;
    }
    *ret = p;
    return (int)len;
}

/* The AlgorithmIdentifier's parameters and the key bits into `pub` (which takes them). */
static int spki_set(X509_PUBKEY* pub, const EVP_PKEY* key, const struct curve* cv) {
    unsigned char* point = NULL;
    int n                = pub_point(key, cv, &point);
    if (n < 0)
        return n;
    if (!X509_PUBKEY_set0_param(pub, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT,
                                OBJ_nid2obj(cv->nid), point, n)) {
        OPENSSL_free(point);
        return -EIO;
    }
    return 0;
}

int moat_ec_x509_set_pubkey(X509* x, const EVP_PKEY* key) {
    const struct curve* cv = key_curve(key);
    if (!cv)
        return 0;
    X509_PUBKEY* pub = X509_get_X509_PUBKEY(x);
    return pub && spki_set(pub, key, cv) == 0 ? 1 : -EIO;
}

int moat_ec_spki_der(const EVP_PKEY* key, unsigned char** der) {
    const struct curve* cv = key_curve(key);
    if (!cv)
        return 0;
    X509_PUBKEY* pub = X509_PUBKEY_new();
    int n            = pub && spki_set(pub, key, cv) == 0 ? i2d_X509_PUBKEY(pub, der) : -1;
    X509_PUBKEY_free(pub);
    return n > 0 ? n : -EIO;
}

/* ---------------------------------------------------------------------------------------- */
/* PKCS#8                                                                                     */

/* A DER length at `p` (which has room for 3 bytes); the bytes written. */
static size_t der_len(unsigned char* p, size_t len) {
    if (len < 0x80) {
        p[0] = (unsigned char)len;
        return 1;
    }
    if (len < 0x100) {
        p[0] = 0x81;
        p[1] = (unsigned char)len;
        return 2;
    }
    p[0] = 0x82;
    p[1] = (unsigned char)(len >> 8);
    p[2] = (unsigned char)len;
    return 3;
}

/* RFC 5915 ECPrivateKey without the curve (it is in the PKCS#8 algorithm) and with the public
 * key, as OpenSSL and Go write it inside PKCS#8:
 *   SEQUENCE { INTEGER 1, OCTET STRING d (padded), [1] { BIT STRING 00 ‖ point } } */
static int ec_private_key_der(const EVP_PKEY* key, const struct curve* cv, unsigned char** ret) {
    unsigned char* point = NULL;
    int np               = pub_point(key, cv, &point);
    if (np < 0)
        return np;
    BIGNUM* d = NULL;
    if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) ||
        BN_num_bytes(d) > (int)cv->bytes) {
        BN_clear_free(d);
        OPENSSL_free(point);
        return -EIO;
    }
    unsigned char hdr_bits[4], hdr_ctx[4], hdr_seq[4];
    size_t bits        = 1 + (size_t)np; /* the unused-bits byte and the point */
    size_t n_bits      = 1 + der_len(hdr_bits, bits) + bits;
    size_t n_ctx       = 1 + der_len(hdr_ctx, n_bits) + n_bits;
    size_t body        = 3 + 2 + cv->bytes + n_ctx;
    size_t total       = 1 + der_len(hdr_seq, body) + body;
    unsigned char* out = OPENSSL_malloc(total);
    if (!out) {
        BN_clear_free(d);
        OPENSSL_free(point);
        return -EIO;
    }
    unsigned char* w = out;
    *w++             = 0x30;
    w += der_len(w, body);
    *w++ = 0x02, *w++ = 0x01, *w++ = 0x01;
    *w++ = 0x04, *w++ = (unsigned char)cv->bytes;
    int ok = BN_bn2binpad(d, w, (int)cv->bytes) == (int)cv->bytes;
    w += cv->bytes;
    *w++ = 0xa1;
    w += der_len(w, n_bits);
    *w++ = 0x03;
    w += der_len(w, bits);
    *w++ = 0x00;
    memcpy(w, point, (size_t)np);
    w += np;
    BN_clear_free(d);
    OPENSSL_free(point);
    if (!ok || (size_t)(w - out) != total) {
        OPENSSL_clear_free(out, total);
        return -EIO;
    }
    *ret = out;
    return (int)total;
}

int moat_ec_pkcs8_der(const EVP_PKEY* key, unsigned char** der) {
    const struct curve* cv = key_curve(key);
    if (!cv)
        return 0;
    unsigned char* ecpk = NULL;
    int n               = ec_private_key_der(key, cv, &ecpk);
    if (n < 0)
        return n;
    /* the PKCS8_PRIV_KEY_INFO owns ecpk from here and wipes it when freed */
    PKCS8_PRIV_KEY_INFO* p8 = PKCS8_PRIV_KEY_INFO_new();
    if (!p8 || !PKCS8_pkey_set0(p8, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), 0, V_ASN1_OBJECT,
                                OBJ_nid2obj(cv->nid), ecpk, n)) {
        OPENSSL_clear_free(ecpk, (size_t)n);
        PKCS8_PRIV_KEY_INFO_free(p8);
        return -EIO;
    }
    int len = i2d_PKCS8_PRIV_KEY_INFO(p8, der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return len > 0 ? len : -EIO;
}

/* ---------------------------------------------------------------------------------------- */
/* A public key from its point                                                                */

int moat_ec_public_key(int nid, const unsigned char* point, size_t len, EVP_PKEY** ret) {
    const struct curve* cv = NULL;
    for (size_t i = 0; i < N_CURVES; i++)
        if (curves[i].nid == nid)
            cv = &curves[i];
    if (!cv)
        return 0;
    if (len == 0 || len > 1 + 2 * cv->bytes)
        return -EINVAL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char*)cv->name, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void*)point, len),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY* k     = NULL;
    EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    int ok          = c && EVP_PKEY_fromdata_init(c) > 0 &&
             EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, params) > 0;
    EVP_PKEY_CTX_free(c);
    if (!ok) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        return -EINVAL;
    }
    *ret = k;
    return 1;
}
