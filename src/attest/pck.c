/* SPDX-License-Identifier: Apache-2.0 */
/* PCK certificate chains, CRLs and the SGX extension (reference/attestation.md §2.1-2.3, §2.6).
 * All DER goes through OpenSSL; PEM bundles are split by their markers with explicit lengths. */
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pck.h"

/* trust/intel_sgx_root_ca.pem (public certificate; §2.1) */
const char PCK_INTEL_SGX_ROOT_CA_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw\n"
    "aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv\n"
    "cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ\n"
    "BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG\n"
    "A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0\n"
    "aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT\n"
    "AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7\n"
    "1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB\n"
    "uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ\n"
    "MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50\n"
    "ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV\n"
    "Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI\n"
    "KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg\n"
    "AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=\n"
    "-----END CERTIFICATE-----\n";

static void bio_freep(BIO** p) {
    BIO_free(*p);
}
static void store_freep(X509_STORE** p) {
    X509_STORE_free(*p);
}
static void store_ctx_freep(X509_STORE_CTX** p) {
    X509_STORE_CTX_free(*p);
}
static void x509_sk_freep(STACK_OF(X509) * *p) {
    sk_X509_free(*p); /* the certificates belong to the chain */
}
static void crl_sk_freep(STACK_OF(X509_CRL) * *p) {
    sk_X509_CRL_free(*p);
}
static void md_ctx_freep(EVP_MD_CTX** p) {
    EVP_MD_CTX_free(*p);
}
static void asn1_seq_freep(ASN1_SEQUENCE_ANY** p) {
    sk_ASN1_TYPE_pop_free(*p, ASN1_TYPE_free);
}
static void asn1_obj_freep(ASN1_OBJECT** p) {
    ASN1_OBJECT_free(*p);
}

/* The CN of a certificate name for messages ("?" when absent). */
static void name_cn(const X509_NAME* name, char* buf, size_t size) {
    if (X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)size) < 0)
        snprintf(buf, size, "?");
}

static bool cn_contains(const X509_NAME* name, const char* needle) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn)) < 0)
        return false;
    return strstr(cn, needle) != NULL;
}

static bool is_pck_ca(X509* cert) {
    return cn_contains(X509_get_subject_name(cert), "SGX PCK Platform CA") ||
           cn_contains(X509_get_subject_name(cert), "SGX PCK Processor CA");
}

static bool name_der_equal(const X509_NAME* a, const X509_NAME* b) {
    const unsigned char *da, *db;
    size_t la = 0, lb = 0;
    if (!X509_NAME_get0_der(a, &da, &la) || !X509_NAME_get0_der(b, &db, &lb))
        return false;
    return la == lb && memcmp(da, db, la) == 0;
}

int asn1_time_to_time_t(const ASN1_TIME* t, time_t* ret) {
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return -EBADMSG;
    time_t v = timegm(&tm);
    if (v == (time_t)-1)
        return -EBADMSG;
    *ret = v;
    return 0;
}

static bool looks_pem(const void* buf, size_t len) {
    static const char begin[] = "-----BEGIN ";
    const char* p             = buf;
    while (len && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
        len--;
    }
    return len >= sizeof(begin) - 1 && memcmp(p, begin, sizeof(begin) - 1) == 0;
}

int x509_parse(const void* buf, size_t len, X509** ret_cert, struct moat_error* err) {
    if (len == 0 || len > INT32_MAX)
        return moat_error_set(err, -EBADMSG, "empty or oversized certificate");
    X509* cert = NULL;
    if (looks_pem(buf, len)) {
        _cleanup_(bio_freep) BIO* bio = BIO_new_mem_buf(buf, (int)len);
        cert                          = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    } else {
        const unsigned char* p = buf;
        cert                   = d2i_X509(NULL, &p, (long)len);
        if (cert && p != (const unsigned char*)buf + len) {
            X509_free(cert);
            return moat_error_set(err, -EBADMSG, "trailing bytes after the DER certificate");
        }
    }
    ERR_clear_error();
    if (!cert)
        return moat_error_set(err, -EBADMSG, "cannot parse the certificate (PEM or DER)");
    *ret_cert = cert;
    return 0;
}

int x509_crl_parse(const void* buf, size_t len, X509_CRL** ret_crl, struct moat_error* err) {
    if (len == 0 || len > INT32_MAX)
        return moat_error_set(err, -EBADMSG, "empty or oversized CRL");
    X509_CRL* crl = NULL;
    if (looks_pem(buf, len)) {
        _cleanup_(bio_freep) BIO* bio = BIO_new_mem_buf(buf, (int)len);
        crl                           = bio ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
    } else {
        const unsigned char* p = buf;
        crl                    = d2i_X509_CRL(NULL, &p, (long)len);
        if (crl && p != (const unsigned char*)buf + len) {
            X509_CRL_free(crl);
            return moat_error_set(err, -EBADMSG, "trailing bytes after the DER CRL");
        }
    }
    ERR_clear_error();
    if (!crl)
        return moat_error_set(err, -EBADMSG, "cannot parse the CRL (DER or PEM)");
    *ret_crl = crl;
    return 0;
}

int pck_intel_root_ca(X509** ret_cert, struct moat_error* err) {
    return x509_parse(PCK_INTEL_SGX_ROOT_CA_PEM, strlen(PCK_INTEL_SGX_ROOT_CA_PEM), ret_cert, err);
}

/* ---------------------------------------------------------------------------------------- */
/* PEM bundles and path building                                                              */

void cert_chain_free(struct cert_chain* chain) {
    if (!chain)
        return;
    for (size_t i = 0; i < chain->n; i++)
        X509_free(chain->certs[i]);
    free(chain);
}

static bool only_space(const char* p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

/* Splits the bundle at the PEM markers into `chain` (unordered). */
static int split_pem(const char* p, size_t len, struct cert_chain* chain, struct moat_error* err) {
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[]   = "-----END CERTIFICATE-----";
    while (!only_space(p, len)) {
        if (len < sizeof(begin) - 1 || memcmp(p, begin, sizeof(begin) - 1) != 0) {
            const char* b = memmem(p, len, begin, sizeof(begin) - 1);
            if (!b || !only_space(p, (size_t)(b - p)))
                return moat_error_set(err, -EBADMSG, "unexpected text in the PEM chain");
            len -= (size_t)(b - p);
            p = b;
        }
        const char* e = memmem(p, len, end, sizeof(end) - 1);
        if (!e)
            return moat_error_set(err, -EBADMSG, "unterminated certificate in the PEM chain");
        size_t block = (size_t)(e - p) + sizeof(end) - 1;
        if (chain->n == CERT_CHAIN_MAX)
            return moat_error_set(err, -EBADMSG, "more than %d certificates in the PEM chain",
                                  CERT_CHAIN_MAX);
        int r = x509_parse(p, block, &chain->certs[chain->n], err);
        if (r < 0)
            return moat_error_prefix(err, "certificate %zu of the PEM chain", chain->n + 1);
        chain->n++;
        p += block;
        len -= block;
    }
    if (chain->n == 0)
        return moat_error_set(err, -EBADMSG, "no certificate in the PEM chain");
    return 0;
}

static bool self_issued(X509* c) {
    return X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(c)) == 0;
}

/* Index of the one certificate in in[0..n) (not `self`) whose subject is `issuer`; -1 if none,
 * -2 if ambiguous. */
static int find_issuer(X509* const* in, size_t n, const X509_NAME* issuer, size_t self) {
    int found = -1;
    for (size_t i = 0; i < n; i++) {
        if (i == self || X509_NAME_cmp(X509_get_subject_name(in[i]), issuer) != 0)
            continue;
        if (found >= 0)
            return -2;
        found = (int)i;
    }
    return found;
}

/* Orders in[] into out[] leaf first: the leaf is the one certificate that issued no other. */
static int order_chain(X509* const* in, size_t n, X509** out, struct moat_error* err) {
    int leaf = -1;
    for (size_t i = 0; i < n; i++) {
        bool issues = false;
        for (size_t j = 0; j < n && !issues; j++)
            issues = j != i &&
                     X509_NAME_cmp(X509_get_issuer_name(in[j]), X509_get_subject_name(in[i])) == 0;
        if (issues)
            continue;
        if (leaf >= 0)
            return moat_error_set(err, -EBADMSG, "the PEM chain has more than one leaf");
        leaf = (int)i;
    }
    if (leaf < 0)
        return moat_error_set(err, -EBADMSG, "the PEM chain has no leaf");
    size_t cur = (size_t)leaf;
    for (size_t k = 0; k < n; k++) {
        out[k] = in[cur];
        if (self_issued(in[cur]))
            return k + 1 == n ? 0
                              : moat_error_set(err, -EBADMSG,
                                               "the PEM chain holds certificates off the path");
        int next = find_issuer(in, n, X509_get_issuer_name(in[cur]), cur);
        if (next < 0)
            return moat_error_set(err, -EBADMSG, "%s issuer in the PEM chain",
                                  next == -1 ? "missing" : "ambiguous");
        cur = (size_t)next;
    }
    return moat_error_set(err, -EBADMSG, "the PEM chain does not end in a self-signed root");
}

int cert_chain_parse_pem(const void* pem, size_t len, struct cert_chain** ret_chain,
                         struct moat_error* err) {
    const char* p = pem;
    while (len && p[len - 1] == '\0') /* quotes may NUL-terminate the PEM (§1.3) */
        len--;
    if (memchr(p, '\0', len))
        return moat_error_set(err, -EBADMSG, "NUL byte inside the PEM chain");
    struct cert_chain* raw _cleanup_(cert_chain_freep) = xcalloc(1, sizeof(*raw));
    int r                                              = split_pem(p, len, raw, err);
    if (r < 0)
        return r;
    struct cert_chain* chain = xcalloc(1, sizeof(*chain));
    r                        = order_chain(raw->certs, raw->n, chain->certs, err);
    if (r < 0) {
        free(chain);
        return r;
    }
    chain->n   = raw->n;
    raw->n     = 0; /* the certificates moved to chain */
    *ret_chain = chain;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Verification                                                                               */

struct verify_state {
    bool allow_stale;
    bool stale;
};

/* Accepts an expired CRL in stale-tolerant mode and remembers that it did. */
static int verify_cb(int ok, X509_STORE_CTX* ctx) {
    if (ok)
        return 1;
    struct verify_state* st = X509_STORE_CTX_get_app_data(ctx);
    if (st && st->allow_stale && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CRL_HAS_EXPIRED) {
        st->stale = true;
        return 1;
    }
    return 0;
}

static int map_verify_error(int e) {
    switch (e) {
        case X509_V_ERR_CERT_REVOKED:
            return -EKEYREVOKED;
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID:
        case X509_V_ERR_CRL_HAS_EXPIRED:
        case X509_V_ERR_CRL_NOT_YET_VALID:
            return -EKEYEXPIRED;
        default:
            return -EKEYREJECTED;
    }
}

static int get_anchor(const struct chain_verify_opts* opts, X509** ret, struct moat_error* err) {
    if (opts->anchor) {
        if (!X509_up_ref(opts->anchor))
            return moat_error_set(err, -ENOMEM, "out of memory");
        *ret = opts->anchor;
        return 0;
    }
    return pck_intel_root_ca(ret, err);
}

static void update_expiry(time_t* earliest, const ASN1_TIME* t) {
    time_t v = 0;
    if (t && asn1_time_to_time_t(t, &v) == 0 && (*earliest == 0 || v < *earliest))
        *earliest = v;
}

static int run_store_verify(const struct cert_chain* chain, X509* anchor, X509_CRL* const* crls,
                            size_t ncrls, const struct chain_verify_opts* opts,
                            struct verify_state* st, struct moat_error* err) {
    _cleanup_(store_freep) X509_STORE* store           = X509_STORE_new();
    _cleanup_(store_ctx_freep) X509_STORE_CTX* ctx     = X509_STORE_CTX_new();
    _cleanup_(x509_sk_freep) STACK_OF(X509)* untrusted = sk_X509_new_null();
    _cleanup_(crl_sk_freep) STACK_OF(X509_CRL)* crl_sk = sk_X509_CRL_new_null();
    if (!store || !ctx || !untrusted || !crl_sk || !X509_STORE_add_cert(store, anchor))
        return moat_error_set(err, -ENOMEM, "cannot set up certificate verification");
    for (size_t i = 1; i + 1 < chain->n; i++)
        if (!sk_X509_push(untrusted, chain->certs[i]))
            return moat_error_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < ncrls; i++)
        if (!sk_X509_CRL_push(crl_sk, crls[i]))
            return moat_error_set(err, -ENOMEM, "out of memory");
    if (!X509_STORE_CTX_init(ctx, store, chain->certs[0], untrusted))
        return moat_error_set(err, -ENOMEM, "cannot set up certificate verification");
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, opts->at); /* sets X509_V_FLAG_USE_CHECK_TIME */
    if (ncrls) {
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
        X509_STORE_CTX_set0_crls(ctx, crl_sk);
    }
    X509_STORE_CTX_set_app_data(ctx, st);
    X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
    int ok = X509_verify_cert(ctx);
    ERR_clear_error();
    if (ok == 1)
        return 0;
    int e        = X509_STORE_CTX_get_error(ctx);
    int depth    = X509_STORE_CTX_get_error_depth(ctx);
    X509* bad    = X509_STORE_CTX_get_current_cert(ctx);
    char cn[256] = "?";
    if (bad)
        name_cn(X509_get_subject_name(bad), cn, sizeof(cn));
    return moat_error_set(err, map_verify_error(e), "certificate '%s' (depth %d): %s", cn, depth,
                          X509_verify_cert_error_string(e));
}

/* Shared part of the two chain checks: shape, pinned root, names of root, OpenSSL verify. */
static int chain_verify(const struct cert_chain* chain, size_t want_len, X509_CRL* const* crls,
                        size_t ncrls, const struct chain_verify_opts* opts,
                        struct chain_verify_result* ret, struct moat_error* err) {
    if (!chain || chain->n != want_len)
        return moat_error_set(err, -EBADMSG, "expected a chain of %zu certificates, got %zu",
                              want_len, chain ? chain->n : 0);
    if (ncrls == 0 && !opts->insecure__no_crl)
        return moat_error_set(err, -EINVAL, "no CRL given for the certificate chain");
    _cleanup_x509_ X509* anchor = NULL;
    int r                       = get_anchor(opts, &anchor, err);
    if (r < 0)
        return r;
    X509* root = chain->certs[chain->n - 1];
    /* §2.2 step 1: the whole root certificate must equal the pinned one, not only its name */
    if (X509_cmp(root, anchor) != 0)
        return moat_error_set(err, -EKEYREJECTED, "the chain's root is not the trust anchor");
    if (!cn_contains(X509_get_subject_name(root), "SGX Root CA"))
        return moat_error_set(err, -EKEYREJECTED, "root CN does not contain 'SGX Root CA'");
    struct verify_state st = {.allow_stale = opts->allow_stale_crl};
    r                      = run_store_verify(chain, anchor, crls, ncrls, opts, &st, err);
    if (r < 0)
        return r;
    struct chain_verify_result res = {.stale_crl = st.stale, .crl_checked = ncrls > 0};
    for (size_t i = 0; i < chain->n; i++)
        update_expiry(&res.earliest_expiry, X509_get0_notAfter(chain->certs[i]));
    for (size_t i = 0; i < ncrls; i++)
        update_expiry(&res.earliest_expiry, X509_CRL_get0_nextUpdate(crls[i]));
    *ret = res;
    return 0;
}

int pck_chain_verify(const struct cert_chain* chain, X509_CRL* root_crl, X509_CRL* pck_crl,
                     const struct chain_verify_opts* opts, struct chain_verify_result* ret,
                     struct moat_error* err) {
    if (chain && chain->n == 3) {
        X509* leaf  = chain->certs[0];
        X509* inter = chain->certs[1];
        /* QVL 4.1.2.4.4 and the CA name checks (§1.8) */
        if (!cn_contains(X509_get_subject_name(leaf), "SGX PCK Certificate"))
            return moat_error_set(err, -EKEYREJECTED,
                                  "PCK leaf CN does not contain 'SGX PCK Certificate'");
        if (!is_pck_ca(inter))
            return moat_error_set(err, -EKEYREJECTED,
                                  "PCK intermediate CN is neither 'SGX PCK Platform CA' nor "
                                  "'SGX PCK Processor CA'");
        /* QVL 4.1.2.4.6: the CRLs' raw issuers must be the issuers of what they cover */
        if (pck_crl && !name_der_equal(X509_CRL_get_issuer(pck_crl), X509_get_issuer_name(leaf)))
            return moat_error_set(err, -EKEYREJECTED, "the PCK CRL issuer is not the PCK issuer");
        if (root_crl && !name_der_equal(X509_CRL_get_issuer(root_crl), X509_get_issuer_name(inter)))
            return moat_error_set(err, -EKEYREJECTED, "the root CA CRL issuer is not the root");
    }
    if ((root_crl == NULL) != (pck_crl == NULL))
        return moat_error_set(err, -EINVAL, "both the root CA CRL and the PCK CRL are needed");
    X509_CRL* crls[2] = {root_crl, pck_crl};
    int r             = chain_verify(chain, 3, crls, root_crl ? 2 : 0, opts, ret, err);
    return r < 0 ? moat_error_prefix(err, "PCK certificate chain") : 0;
}

int tcb_signing_chain_verify(const struct cert_chain* chain, X509_CRL* root_crl,
                             const struct chain_verify_opts* opts, struct chain_verify_result* ret,
                             struct moat_error* err) {
    if (chain && chain->n == 2) {
        if (!cn_contains(X509_get_subject_name(chain->certs[0]), "SGX TCB Signing"))
            return moat_error_set(err, -EKEYREJECTED,
                                  "TCB signing chain: leaf CN does not contain 'SGX TCB Signing'");
        if (root_crl &&
            !name_der_equal(X509_CRL_get_issuer(root_crl), X509_get_issuer_name(chain->certs[0])))
            return moat_error_set(err, -EKEYREJECTED,
                                  "TCB signing chain: the root CA CRL issuer is not the root");
    }
    X509_CRL* crls[1] = {root_crl};
    int r             = chain_verify(chain, 2, crls, root_crl ? 1 : 0, opts, ret, err);
    return r < 0 ? moat_error_prefix(err, "TCB signing chain") : 0;
}

int pck_ca_chain_verify(const struct cert_chain* chain, X509_CRL* root_crl,
                        const struct chain_verify_opts* opts, struct chain_verify_result* ret,
                        struct moat_error* err) {
    if (chain && chain->n == 2 && !is_pck_ca(chain->certs[0]))
        return moat_error_set(err, -EKEYREJECTED,
                              "PCK CRL issuer chain: CN is neither 'SGX PCK Platform CA' nor "
                              "'SGX PCK Processor CA'");
    X509_CRL* crls[1] = {root_crl};
    int r             = chain_verify(chain, 2, crls, root_crl ? 1 : 0, opts, ret, err);
    return r < 0 ? moat_error_prefix(err, "PCK CRL issuer chain") : 0;
}

int crl_verify(X509_CRL* crl, X509* issuer, const struct chain_verify_opts* opts, bool* ret_stale,
               struct moat_error* err) {
    if (!name_der_equal(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)))
        return moat_error_set(err, -EKEYREJECTED, "the CRL issuer does not match its signer");
    EVP_PKEY* key = X509_get0_pubkey(issuer);
    int ok        = key ? X509_CRL_verify(crl, key) : 0;
    ERR_clear_error();
    if (ok != 1)
        return moat_error_set(err, -EKEYREJECTED, "the CRL signature does not verify");
    time_t at             = opts->at;
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl);
    if (X509_cmp_time(X509_CRL_get0_lastUpdate(crl), &at) > 0)
        return moat_error_set(err, -EKEYEXPIRED, "the CRL is not yet valid");
    bool stale = !next || X509_cmp_time(next, &at) < 0;
    if (stale && !opts->allow_stale_crl)
        return moat_error_set(err, -EKEYEXPIRED, "the CRL has expired (past its nextUpdate)");
    *ret_stale = stale;
    return 0;
}

/* ECDSA-P256-SHA256 of msg by `key` (a P-256 key), signature raw r||s (§2.6). */
static int verify_raw_sig(EVP_PKEY* key, const void* msg, size_t msg_len, const uint8_t sig[64],
                          struct moat_error* err) {
    /* §2.6: raw r||s to a DER ECDSA-Sig-Value */
    ECDSA_SIG* es = ECDSA_SIG_new();
    BIGNUM* r     = BN_bin2bn(sig, 32, NULL);
    BIGNUM* s     = BN_bin2bn(sig + 32, 32, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        ECDSA_SIG_free(es);
        BN_free(r);
        BN_free(s);
        return moat_error_set(err, -ENOMEM, "out of memory");
    }
    unsigned char* der = NULL;
    int der_len        = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    if (der_len <= 0)
        return moat_error_set(err, -ENOMEM, "cannot encode the ECDSA signature");
    _cleanup_(md_ctx_freep) EVP_MD_CTX* md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, der, (size_t)der_len, msg, msg_len) == 1;
    OPENSSL_free(der);
    ERR_clear_error();
    if (!ok)
        return moat_error_set(err, -EKEYREJECTED, "the ECDSA signature does not verify");
    return 0;
}

int ecdsa_p256_verify_raw(X509* cert, const void* msg, size_t msg_len, const uint8_t sig[64],
                          struct moat_error* err) {
    EVP_PKEY* key = X509_get0_pubkey(cert);
    char group[32];
    if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                        NULL) ||
        strcmp(group, "prime256v1") != 0) {
        ERR_clear_error();
        return moat_error_set(err, -EKEYREJECTED, "the signing key is not an ECDSA P-256 key");
    }
    return verify_raw_sig(key, msg, msg_len, sig, err);
}

static void pkey_ctx_freep(EVP_PKEY_CTX** p) {
    EVP_PKEY_CTX_free(*p);
}

int ecdsa_p256_verify_raw_key(const uint8_t pub[64], const void* msg, size_t msg_len,
                              const uint8_t sig[64], struct moat_error* err) {
    /* §2.6: the quote's x||y as an uncompressed point 0x04||x||y on prime256v1 */
    uint8_t point[65] = {0x04};
    memcpy(point + 1, pub, 64);
    char group[]        = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
        OSSL_PARAM_construct_end(),
    };
    _cleanup_(pkey_ctx_freep) EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    _cleanup_pkey_ EVP_PKEY* key                = NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        ERR_clear_error();
        return moat_error_set(err, -EKEYREJECTED,
                              "the public key is not a point on the P-256 curve");
    }
    return verify_raw_sig(key, msg, msg_len, sig, err);
}

/* ---------------------------------------------------------------------------------------- */
/* SGX extension (§2.3): SEQUENCE OF SEQUENCE { OID, value }, TCB nested the same way         */

#define SGX_EXT_OID "1.2.840.113741.1.13.1"

/* Splits one {OID, value} pair; returns the last OID arc below `prefix` (e.g. 4 for .1.4),
 * or -EBADMSG; *ret_val points into seq (not owned). Nested arcs give -EBADMSG. */
static int ext_pair(const ASN1_TYPE* item, const char* prefix, ASN1_SEQUENCE_ANY** ret_pair,
                    int* ret_arc) {
    if (ASN1_TYPE_get(item) != V_ASN1_SEQUENCE)
        return -EBADMSG;
    const unsigned char* p  = item->value.sequence->data;
    long len                = item->value.sequence->length;
    ASN1_SEQUENCE_ANY* pair = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
    if (!pair || p != item->value.sequence->data + len || sk_ASN1_TYPE_num(pair) != 2 ||
        ASN1_TYPE_get(sk_ASN1_TYPE_value(pair, 0)) != V_ASN1_OBJECT) {
        sk_ASN1_TYPE_pop_free(pair, ASN1_TYPE_free);
        return -EBADMSG;
    }
    char oid[128];
    int n       = OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_TYPE_value(pair, 0)->value.object, 1);
    size_t pl   = strlen(prefix);
    int64_t arc = 0;
    if (n <= 0 || (size_t)n >= sizeof(oid) || strncmp(oid, prefix, pl) != 0 || oid[pl] != '.' ||
        parse_i64(oid + pl + 1, 10, &arc) < 0 || arc < 1 || arc > 64) {
        sk_ASN1_TYPE_pop_free(pair, ASN1_TYPE_free);
        return -EBADMSG;
    }
    *ret_pair = pair;
    *ret_arc  = (int)arc;
    return 0;
}

static int ext_octets(const ASN1_TYPE* v, uint8_t* out, size_t n) {
    if (ASN1_TYPE_get(v) != V_ASN1_OCTET_STRING ||
        (size_t)ASN1_STRING_length(v->value.octet_string) != n)
        return -EBADMSG;
    memcpy(out, ASN1_STRING_get0_data(v->value.octet_string), n);
    return 0;
}

static int ext_uint(const ASN1_TYPE* v, int type, uint64_t max, uint64_t* ret) {
    int64_t x = 0;
    if (ASN1_TYPE_get(v) != type)
        return -EBADMSG;
    int ok = type == V_ASN1_INTEGER ? ASN1_INTEGER_get_int64(&x, v->value.integer)
                                    : ASN1_ENUMERATED_get_int64(&x, v->value.enumerated);
    ERR_clear_error();
    if (!ok || x < 0 || (uint64_t)x > max)
        return -EBADMSG;
    *ret = (uint64_t)x;
    return 0;
}

static int ext_children(const ASN1_TYPE* v, ASN1_SEQUENCE_ANY** ret) {
    if (ASN1_TYPE_get(v) != V_ASN1_SEQUENCE)
        return -EBADMSG;
    const unsigned char* p = v->value.sequence->data;
    long len               = v->value.sequence->length;
    ASN1_SEQUENCE_ANY* seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
    if (!seq || p != v->value.sequence->data + len) {
        sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
        return -EBADMSG;
    }
    *ret = seq;
    return 0;
}

/* TCB: .2.1-.2.16 comp SVNs (INTEGER 0..255), .2.17 PCESVN, .2.18 CPUSVN; all required. */
static int ext_tcb(const ASN1_TYPE* v, struct pck_ext* ext) {
    _cleanup_(asn1_seq_freep) ASN1_SEQUENCE_ANY* seq = NULL;
    if (ext_children(v, &seq) < 0)
        return -EBADMSG;
    uint32_t seen = 0;
    for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++) {
        _cleanup_(asn1_seq_freep) ASN1_SEQUENCE_ANY* pair = NULL;
        int arc                                           = 0;
        if (ext_pair(sk_ASN1_TYPE_value(seq, i), SGX_EXT_OID ".2", &pair, &arc) < 0 || arc > 18 ||
            (seen & (1u << arc)))
            return -EBADMSG;
        seen |= 1u << arc;
        const ASN1_TYPE* val = sk_ASN1_TYPE_value(pair, 1);
        uint64_t x           = 0;
        int r;
        if (arc <= 16) {
            r                          = ext_uint(val, V_ASN1_INTEGER, 255, &x);
            ext->tcb_comp_svn[arc - 1] = (uint8_t)x;
        } else if (arc == 17) {
            r           = ext_uint(val, V_ASN1_INTEGER, 65535, &x);
            ext->pcesvn = (uint16_t)x;
        } else {
            r = ext_octets(val, ext->cpusvn, sizeof(ext->cpusvn));
        }
        if (r < 0)
            return r;
    }
    return seen == 0x7fffeu ? 0 : -EBADMSG;
}

/* Configuration: .7.1 DynamicPlatform, .7.2 CachedKeys, .7.3 SMTEnabled, each BOOLEAN. */
static int ext_config(const ASN1_TYPE* v, struct pck_ext* ext) {
    _cleanup_(asn1_seq_freep) ASN1_SEQUENCE_ANY* seq = NULL;
    if (ext_children(v, &seq) < 0)
        return -EBADMSG;
    int8_t* slots[3] = {&ext->dynamic_platform, &ext->cached_keys, &ext->smt_enabled};
    for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++) {
        _cleanup_(asn1_seq_freep) ASN1_SEQUENCE_ANY* pair = NULL;
        int arc                                           = 0;
        if (ext_pair(sk_ASN1_TYPE_value(seq, i), SGX_EXT_OID ".7", &pair, &arc) < 0)
            return -EBADMSG;
        if (arc > 3)
            continue;
        const ASN1_TYPE* val = sk_ASN1_TYPE_value(pair, 1);
        if (*slots[arc - 1] != -1 || ASN1_TYPE_get(val) != V_ASN1_BOOLEAN)
            return -EBADMSG;
        *slots[arc - 1] = val->value.boolean ? 1 : 0;
    }
    return 0;
}

static int ext_field(int arc, const ASN1_TYPE* val, struct pck_ext* ext) {
    uint64_t x = 0;
    switch (arc) {
        case 1:
            return ext_octets(val, ext->ppid, sizeof(ext->ppid));
        case 2:
            return ext_tcb(val, ext);
        case 3:
            return ext_octets(val, ext->pceid, sizeof(ext->pceid));
        case 4:
            return ext_octets(val, ext->fmspc, sizeof(ext->fmspc));
        case 5:
            if (ext_uint(val, V_ASN1_ENUMERATED, 2, &x) < 0)
                return -EBADMSG;
            ext->sgx_type = (uint8_t)x;
            return 0;
        case 6:
            ext->has_platform_instance_id = true;
            return ext_octets(val, ext->platform_instance_id, sizeof(ext->platform_instance_id));
        case 7:
            ext->has_configuration = true;
            return ext_config(val, ext);
        default:
            return 0; /* unknown entries are ignored */
    }
}

static int ext_walk(const ASN1_OCTET_STRING* data, struct pck_ext* ext, uint32_t* seen) {
    const unsigned char* p                           = ASN1_STRING_get0_data(data);
    long len                                         = ASN1_STRING_length(data);
    const unsigned char* start                       = p;
    _cleanup_(asn1_seq_freep) ASN1_SEQUENCE_ANY* top = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
    if (!top || p != start + len)
        return -EBADMSG;
    for (int i = 0; i < sk_ASN1_TYPE_num(top); i++) {
        _cleanup_(asn1_seq_freep) ASN1_SEQUENCE_ANY* pair = NULL;
        int arc                                           = 0;
        if (ext_pair(sk_ASN1_TYPE_value(top, i), SGX_EXT_OID, &pair, &arc) < 0)
            return -EBADMSG;
        uint32_t bit = arc < 32 ? 1u << arc : 0; /* arcs past 31 are unknown and ignored */
        if (*seen & bit)
            return -EBADMSG;
        *seen |= bit;
        if (ext_field(arc, sk_ASN1_TYPE_value(pair, 1), ext) < 0)
            return -EBADMSG;
    }
    return 0;
}

int pck_ext_parse(X509* leaf, struct pck_ext* ret, struct moat_error* err) {
    _cleanup_(asn1_obj_freep) ASN1_OBJECT* oid = OBJ_txt2obj(SGX_EXT_OID, 1);
    if (!oid)
        return moat_error_set(err, -ENOMEM, "out of memory");
    int idx = X509_get_ext_by_OBJ(leaf, oid, -1);
    if (idx < 0)
        return moat_error_set(err, -EBADMSG, "the PCK certificate has no SGX extension (%s)",
                              SGX_EXT_OID);
    if (X509_get_ext_by_OBJ(leaf, oid, idx) >= 0)
        return moat_error_set(err, -EBADMSG, "the PCK certificate has two SGX extensions");
    X509_EXTENSION* x  = X509_get_ext(leaf, idx);
    struct pck_ext ext = {.dynamic_platform = -1, .cached_keys = -1, .smt_enabled = -1};
    uint32_t seen      = 0;
    int r              = ext_walk(X509_EXTENSION_get_data(x), &ext, &seen);
    ERR_clear_error();
    if (r < 0)
        return moat_error_set(err, -EBADMSG, "malformed SGX extension in the PCK certificate");
    const uint32_t required = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5);
    if ((seen & required) != required)
        return moat_error_set(err, -EBADMSG,
                              "the SGX extension lacks PPID, TCB, PCE-ID, FMSPC or SGX type");
    if (cn_contains(X509_get_issuer_name(leaf), "Platform CA") &&
        (!ext.has_platform_instance_id || !ext.has_configuration))
        return moat_error_set(err, -EBADMSG,
                              "the SGX extension of a Platform-CA PCK certificate lacks "
                              "PlatformInstanceID or Configuration");
    *ret = ext;
    return 0;
}
