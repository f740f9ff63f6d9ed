/* SPDX-License-Identifier: Apache-2.0 */
/* The simulated platform's PKI and collateral: see sim.h. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sim_internal.h"

#define SIM_ORG "moat (simulated, not Intel)"

/* ---------------------------------------------------------------------------------------- */
/* DER, just enough for the SGX extension                                                     */

static void der_put(struct strbuf* out, uint8_t tag, const void* body, size_t len) {
    uint8_t hdr[4] = {tag};
    size_t n       = 1;
    if (len < 0x80) {
        hdr[n++] = (uint8_t)len;
    } else if (len < 0x100) {
        hdr[n++] = 0x81;
        hdr[n++] = (uint8_t)len;
    } else {
        hdr[n++] = 0x82;
        hdr[n++] = (uint8_t)(len >> 8);
        hdr[n++] = (uint8_t)len;
    }
    strbuf_append(out, (const char*)hdr, n);
    strbuf_append(out, body, len);
}

/* SEQUENCE { OID 1.2.840.113741.1.13.1.<arc...>, value } with `value` already DER */
static void sgx_pair(struct strbuf* out, const uint8_t* arcs, size_t narcs,
                     const struct strbuf* v) {
    uint8_t oid[16] = {0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01};
    size_t n        = 9;
    for (size_t i = 0; i < narcs; i++)
        oid[n++] = arcs[i];
    _cleanup_strbuf_ struct strbuf seq = STRBUF_INIT;
    der_put(&seq, 0x06, oid, n);
    strbuf_append(&seq, v->buf, v->len);
    der_put(out, 0x30, seq.buf, seq.len);
}

static void der_uint(struct strbuf* out, uint8_t tag, unsigned v) {
    uint8_t b[3] = {0, (uint8_t)(v >> 8), (uint8_t)v};
    size_t skip  = v < 0x80 ? 2 : v < 0x8000 ? 1 : 0; /* minimal, non-negative */
    der_put(out, tag, b + skip, 3 - skip);
}

static void pair_bytes(struct strbuf* out, const uint8_t* arcs, size_t narcs, const void* p,
                       size_t len) {
    _cleanup_strbuf_ struct strbuf v = STRBUF_INIT;
    der_put(&v, 0x04, p, len);
    sgx_pair(out, arcs, narcs, &v);
}

/* The SGX extension of a PCK certificate (reference §2.3) for the platform parameters. */
static void sgx_extension(const struct sim_params* sp, struct strbuf* ret) {
    _cleanup_strbuf_ struct strbuf body = STRBUF_INIT, tcb = STRBUF_INIT, v = STRBUF_INIT;
    pair_bytes(&body, (const uint8_t[]){1}, 1, sp->ppid, sizeof(sp->ppid));
    for (uint8_t i = 0; i < 16; i++) {
        v.len = 0;
        der_uint(&v, 0x02, sp->comp_svn[i]);
        sgx_pair(&tcb, (const uint8_t[]){2, (uint8_t)(i + 1)}, 2, &v);
    }
    v.len = 0;
    der_uint(&v, 0x02, sp->pcesvn);
    sgx_pair(&tcb, (const uint8_t[]){2, 17}, 2, &v);
    pair_bytes(&tcb, (const uint8_t[]){2, 18}, 2, sp->cpusvn, sizeof(sp->cpusvn));
    v.len = 0;
    der_put(&v, 0x30, tcb.buf, tcb.len);
    sgx_pair(&body, (const uint8_t[]){2}, 1, &v);
    pair_bytes(&body, (const uint8_t[]){3}, 1, sp->pceid, sizeof(sp->pceid));
    pair_bytes(&body, (const uint8_t[]){4}, 1, sp->fmspc, sizeof(sp->fmspc));
    v.len = 0;
    der_uint(&v, 0x0a, 0); /* SGX type: Standard */
    sgx_pair(&body, (const uint8_t[]){5}, 1, &v);
    pair_bytes(&body, (const uint8_t[]){6}, 1, sp->ppid, sizeof(sp->ppid)); /* instance ID */
    _cleanup_strbuf_ struct strbuf conf = STRBUF_INIT;
    for (uint8_t i = 1; i <= 3; i++) { /* dynamic platform, cached keys, SMT: false */
        v.len = 0;
        der_put(&v, 0x01, (const uint8_t[]){0}, 1);
        sgx_pair(&conf, (const uint8_t[]){7, i}, 2, &v);
    }
    v.len = 0;
    der_put(&v, 0x30, conf.buf, conf.len);
    sgx_pair(&body, (const uint8_t[]){7}, 1, &v);
    der_put(ret, 0x30, body.buf, body.len);
}

/* ---------------------------------------------------------------------------------------- */
/* Certificates and CRLs                                                                      */

static X509_NAME* sim_name(const char* cn) {
    X509_NAME* n = X509_NAME_new();
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char*)cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char*)SIM_ORG, -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "C", MBSTRING_UTF8, (const unsigned char*)"US", -1, -1, 0);
    return n;
}

static bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    bool ok             = ext && X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static bool random_serial(X509* cert) {
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return false;
    b[0] &= 0x7f; /* positive */
    b[0] |= 0x01; /* no leading zero byte */
    BIGNUM* bn = BN_bin2bn(b, sizeof(b), NULL);
    bool ok    = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
    BN_free(bn);
    return ok;
}

/* A certificate for `key` named `cn`, issued by (issuer, issuer_key) or self-signed. */
X509* simi_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                unsigned days, const struct strbuf* sgx_ext) {
    X509* c        = X509_new();
    X509_NAME* sub = sim_name(cn);
    bool ok =
        c && sub && X509_set_version(c, 2) && random_serial(c) && X509_set_subject_name(c, sub) &&
        X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : sub) &&
        X509_gmtime_adj(X509_getm_notBefore(c), -3600) &&
        X509_gmtime_adj(X509_getm_notAfter(c), (long)days * 86400) && X509_set_pubkey(c, key) &&
        add_ext(c, issuer, NID_basic_constraints,
                ca ? (issuer ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE,pathlen:1")
                   : "critical,CA:FALSE") &&
        add_ext(c, issuer, NID_key_usage,
                ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,nonRepudiation") &&
        add_ext(c, issuer, NID_subject_key_identifier, "hash") &&
        (!issuer || add_ext(c, issuer, NID_authority_key_identifier, "keyid:always")) &&
        add_ext(c, issuer, NID_crl_distribution_points, "URI:https://moat.invalid/simulated/crl");
    X509_NAME_free(sub);
    if (ok && sgx_ext) {
        ASN1_OBJECT* obj      = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
        ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
        ok                    = obj && os &&
             ASN1_OCTET_STRING_set(os, (const unsigned char*)sgx_ext->buf, (int)sgx_ext->len);
        X509_EXTENSION* ext = ok ? X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os) : NULL;
        ok                  = ext && X509_add_ext(c, ext, -1);
        X509_EXTENSION_free(ext);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(obj);
    }
    if (ok && X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
        ok = false;
    if (!ok) {
        X509_free(c);
        return NULL;
    }
    return c;
}

/* An empty CRL issued by (issuer, key), valid for `days`, with CRL number and AKI. */
X509_CRL* simi_crl(X509* issuer, EVP_PKEY* key, unsigned days) {
    X509_CRL* crl    = X509_CRL_new();
    ASN1_TIME* now   = X509_gmtime_adj(NULL, -3600);
    ASN1_TIME* next  = X509_gmtime_adj(NULL, (long)days * 86400);
    ASN1_INTEGER* no = ASN1_INTEGER_new();
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
    X509_EXTENSION* aki =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
    bool ok = crl && now && next && no && aki && X509_CRL_set_version(crl, 1) &&
              X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) &&
              X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next) &&
              ASN1_INTEGER_set(no, 1) && X509_CRL_add1_ext_i2d(crl, NID_crl_number, no, 0, 0) &&
              X509_CRL_add_ext(crl, aki, -1) && X509_CRL_sign(crl, key, EVP_sha256()) > 0;
    X509_EXTENSION_free(aki);
    ASN1_INTEGER_free(no);
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    if (!ok) {
        X509_CRL_free(crl);
        return NULL;
    }
    return crl;
}

void simi_sgx_extension(const struct sim_params* sp, struct strbuf* ret) {
    sgx_extension(sp, ret);
}
