/* SPDX-License-Identifier: Apache-2.0 */
/* A Marble's certificate signing request: see csr.h. */
#include "csr.h"

#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include "eckey.h"

/* RFC 2986 CertificationRequest with the key left as bits: the same DER grammar as OpenSSL's
 * X509_REQ (whose SubjectPublicKeyInfo would run a decoder while parsing). */
typedef struct {
    X509_ALGOR* algor;
    ASN1_BIT_STRING* public_key;
} RAW_SPKI;

typedef struct {
    ASN1_ENCODING enc; /* the received bytes, which the signature covers */
    ASN1_INTEGER* version;
    X509_NAME* subject;
    RAW_SPKI* spki;
    STACK_OF(X509_ATTRIBUTE) * attributes;
} RAW_CSR_INFO;

typedef struct {
    RAW_CSR_INFO* info;
    X509_ALGOR* sig_alg;
    ASN1_BIT_STRING* signature;
} RAW_CSR;

/* clang-format off */
ASN1_SEQUENCE(RAW_SPKI) = {
    ASN1_SIMPLE(RAW_SPKI, algor, X509_ALGOR),
    ASN1_SIMPLE(RAW_SPKI, public_key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(RAW_SPKI)

ASN1_SEQUENCE_enc(RAW_CSR_INFO, enc, NULL) = {
    ASN1_SIMPLE(RAW_CSR_INFO, version, ASN1_INTEGER),
    ASN1_SIMPLE(RAW_CSR_INFO, subject, X509_NAME),
    ASN1_SIMPLE(RAW_CSR_INFO, spki, RAW_SPKI),
    ASN1_IMP_SET_OF(RAW_CSR_INFO, attributes, X509_ATTRIBUTE, 0),
} static_ASN1_SEQUENCE_END_ref(RAW_CSR_INFO, RAW_CSR_INFO)

ASN1_SEQUENCE(RAW_CSR) = {
    ASN1_SIMPLE(RAW_CSR, info, RAW_CSR_INFO),
    ASN1_SIMPLE(RAW_CSR, sig_alg, X509_ALGOR),
    ASN1_SIMPLE(RAW_CSR, signature, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(RAW_CSR)

static void raw_free(RAW_CSR* r) {
    ASN1_item_free((ASN1_VALUE*)r, ASN1_ITEM_rptr(RAW_CSR));
}
/* clang-format on */

/* X509_REQ_get_extensions over the raw attributes: the first extensionRequest (PKCS#9 or
 * Microsoft's), decoded; NULL when there is none or it does not decode. */
static STACK_OF(X509_EXTENSION) * raw_extensions(const STACK_OF(X509_ATTRIBUTE) * attrs) {
    static const int nids[] = {NID_ext_req, NID_ms_ext_req};
    for (size_t k = 0; k < sizeof(nids) / sizeof(nids[0]); k++)
        for (int i = 0; i < sk_X509_ATTRIBUTE_num(attrs); i++) {
            X509_ATTRIBUTE* a = sk_X509_ATTRIBUTE_value(attrs, i);
            if (OBJ_obj2nid(X509_ATTRIBUTE_get0_object(a)) != nids[k])
                continue;
            ASN1_TYPE* t = X509_ATTRIBUTE_get0_type(a, 0);
            if (!t || t->type != V_ASN1_SEQUENCE)
                return NULL;
            return ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_EXTENSIONS), t);
        }
    return NULL;
}

static int fail(struct moat_error* err, const char* msg) {
    ERR_clear_error();
    return moat_error_set(err, -EINVAL, "%s", msg);
}

/* 1: parsed and verified through the raw form; 0: not an EC key on a known curve, or not a
 * CertificationRequest at all (d2i_X509_REQ decides); <0: refused. */
static int parse_raw(const uint8_t* der, size_t len, struct moat_csr* out, struct moat_error* err) {
    const unsigned char* p = der;
    RAW_CSR* r             = (RAW_CSR*)ASN1_item_d2i(NULL, &p, (long)len, ASN1_ITEM_rptr(RAW_CSR));
    if (!r) {
        ERR_clear_error();
        return 0;
    }
    if (p != der + len) {
        raw_free(r);
        return fail(err, "failed to parse CSR");
    }
    const ASN1_OBJECT* alg = NULL;
    int ptype              = 0;
    const void* pval       = NULL;
    X509_ALGOR_get0(&alg, &ptype, &pval, r->info->spki->algor);
    const ASN1_BIT_STRING* bits = r->info->spki->public_key;
    if (OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey || ptype != V_ASN1_OBJECT) {
        raw_free(r);
        return 0;
    }
    EVP_PKEY* key = NULL;
    int k         = (bits->flags & ASN1_STRING_FLAG_BITS_LEFT) && (bits->flags & 0x07)
                        ? -EINVAL /* a point is whole bytes */
                        : moat_ec_public_key(OBJ_obj2nid(pval), ASN1_STRING_get0_data(bits),
                                             (size_t)ASN1_STRING_length(bits), &key);
    if (k <= 0) {
        raw_free(r);
        return k == 0 ? 0 : fail(err, "failed to parse CSR");
    }
    int ok = ASN1_item_verify_ex(ASN1_ITEM_rptr(RAW_CSR_INFO), r->sig_alg, r->signature, r->info,
                                 NULL, key, NULL, NULL) == 1;
    EVP_PKEY_free(key);
    if (!ok) {
        raw_free(r);
        return fail(err, "signature over CSR is invalid");
    }
    out->raw     = r;
    out->subject = r->info->subject;
    out->exts    = raw_extensions(r->info->attributes);
    ERR_clear_error();
    return 1;
}

int moat_csr_parse(const uint8_t* der, size_t len, struct moat_csr* ret, struct moat_error* err) {
    *ret                = (struct moat_csr){0};
    struct moat_csr out = {0};
    int r               = parse_raw(der, len, &out, err);
    if (r < 0)
        return r;
    if (r == 0) {
        const unsigned char* p = der;
        X509_REQ* req          = d2i_X509_REQ(NULL, &p, (long)len);
        if (!req || p != der + len) {
            X509_REQ_free(req);
            return fail(err, "failed to parse CSR");
        }
        EVP_PKEY* pub = X509_REQ_get0_pubkey(req);
        if (!pub || X509_REQ_verify(req, pub) != 1) {
            X509_REQ_free(req);
            return fail(err, "signature over CSR is invalid");
        }
        out.req     = req;
        out.subject = X509_REQ_get_subject_name(req);
        out.exts    = X509_REQ_get_extensions(req);
        ERR_clear_error();
    }
    *ret = out;
    return 0;
}

void moat_csr_clear(struct moat_csr* csr) {
    if (!csr)
        return;
    sk_X509_EXTENSION_pop_free(csr->exts, X509_EXTENSION_free);
    raw_free(csr->raw);
    X509_REQ_free(csr->req);
    *csr = (struct moat_csr){0};
}
