/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JWKS key's x5c chain and CRLs (attestation.md §4.2 "Verification", client-for-go
 * VerifyToken). See jwks.h.
 */
#include "jwks.h"

#include <errno.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "https.h"

const char* amber_x5c_role_name(enum amber_x5c_role role) {
    switch (role) {
        case AMBER_X5C_ROOT:
            return "root CA";
        case AMBER_X5C_INTERMEDIATE:
            return "intermediate (Signing CA)";
        default:
            return "leaf";
    }
}

char* amber_cert_cn(X509* cert) {
    X509_NAME* name     = X509_get_subject_name(cert);
    int i               = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    X509_NAME_ENTRY* e  = i >= 0 ? X509_NAME_get_entry(name, i) : NULL;
    unsigned char* utf8 = NULL;
    int n               = e ? ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e)) : -1;
    if (n < 0)
        return xstrdup("(no CN)");
    char* s = xstrndup((const char*)utf8, (size_t)n);
    OPENSSL_free(utf8);
    /* the CN reaches error messages: no control characters */
    for (char* p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return s;
}

/* §4.2: "CA+"Root CA" in CN = root, "Signing CA" in CN = intermediate, else leaf" */
enum amber_x5c_role amber_x5c_classify(X509* cert) {
    _cleanup_free_ char* cn = amber_cert_cn(cert);
    if (X509_check_ca(cert) != 0 && strstr(cn, "Root CA"))
        return AMBER_X5C_ROOT;
    if (strstr(cn, "Signing CA"))
        return AMBER_X5C_INTERMEDIATE;
    return AMBER_X5C_LEAF;
}

void amber_x5c_clear(struct amber_x5c* c) {
    X509_free(c->leaf);
    X509_free(c->intermediate);
    X509_free(c->root);
    *c = (struct amber_x5c){0};
}

static X509* decode_cert(const char* b64, size_t i, struct moat_error* err) {
    _cleanup_free_ uint8_t* der = NULL;
    size_t len                  = 0;
    if (base64_decode_alloc(b64, strlen(b64), &der, &len) < 0) {
        moat_error_set(err, -EBADMSG, "x5c[%zu] is not base64", i);
        return NULL;
    }
    if (len > AMBER_X5C_MAX_CERT_BYTES) {
        moat_error_set(err, -EINVAL, "x5c[%zu] is %zu bytes, more than %d", i, len,
                       AMBER_X5C_MAX_CERT_BYTES);
        return NULL;
    }
    const uint8_t* p = der;
    X509* c          = d2i_X509(NULL, &p, (long)len);
    if (!c || p != der + len) {
        X509_free(c);
        moat_error_set(err, -EBADMSG, "x5c[%zu] is not the DER of one certificate", i);
        return NULL;
    }
    return c;
}

int amber_x5c_parse(const json_t* x5c, struct amber_x5c* ret, struct moat_error* err) {
    if (!json_is_array(x5c))
        return moat_error_set(err, -EINVAL, "the JWK's \"x5c\" is not an array");
    size_t n = json_array_size(x5c);
    if (n == 0 || n > AMBER_X5C_MAX_CERTS)
        return moat_error_set(err, -EINVAL, "the JWK's \"x5c\" has %zu certificates (1 to %d)", n,
                              AMBER_X5C_MAX_CERTS);
    struct amber_x5c c = {0};
    for (size_t i = 0; i < n; i++) {
        const char* s = json_string_value(json_array_get(x5c, i));
        if (!s) {
            amber_x5c_clear(&c);
            return moat_error_set(err, -EINVAL, "x5c[%zu] is not a string", i);
        }
        X509* cert = decode_cert(s, i, err);
        if (!cert) {
            amber_x5c_clear(&c);
            return err ? err->code : -EBADMSG;
        }
        enum amber_x5c_role role = amber_x5c_classify(cert);
        X509** slot              = role == AMBER_X5C_ROOT           ? &c.root
                                   : role == AMBER_X5C_INTERMEDIATE ? &c.intermediate
                                                                    : &c.leaf;
        if (*slot) {
            _cleanup_free_ char* a = amber_cert_cn(*slot);
            _cleanup_free_ char* b = amber_cert_cn(cert);
            X509_free(cert);
            amber_x5c_clear(&c);
            return moat_error_set(err, -EINVAL,
                                  "x5c has two %s certificates ('%s' and x5c[%zu] '%s')",
                                  amber_x5c_role_name(role), a, i, b);
        }
        *slot = cert;
    }
    if (!c.leaf || !c.intermediate) {
        bool no_leaf = !c.leaf;
        amber_x5c_clear(&c);
        return moat_error_set(err, -EINVAL,
                              "x5c has no %s certificate (§4.2: a leaf, a \"Signing CA\" and "
                              "optionally a \"Root CA\")",
                              no_leaf ? "leaf" : "intermediate (CN with \"Signing CA\")");
    }
    *ret = c;
    return 0;
}

char* amber_cert_crl_url(X509* cert) {
    STACK_OF(DIST_POINT)* dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
    char* url                 = NULL;
    for (int i = 0; !url && i < sk_DIST_POINT_num(dps); i++) {
        DIST_POINT* dp = sk_DIST_POINT_value(dps, i);
        if (!dp->distpoint || dp->distpoint->type != 0)
            continue;
        GENERAL_NAMES* names = dp->distpoint->name.fullname;
        for (int j = 0; !url && j < sk_GENERAL_NAME_num(names); j++) {
            GENERAL_NAME* g = sk_GENERAL_NAME_value(names, j);
            if (g->type != GEN_URI)
                continue;
            const char* s = (const char*)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
            int len       = ASN1_STRING_length(g->d.uniformResourceIdentifier);
            if (len > 0 && len < 2048 && memchr(s, '\0', (size_t)len) == NULL &&
                (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0))
                url = xstrndup(s, (size_t)len);
        }
    }
    sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
    return url;
}

static int asn1_time(const ASN1_TIME* t, time_t* ret) {
    struct tm tm = {0};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return -EBADMSG;
    *ret = timegm(&tm);
    return 0;
}

static void format_time(time_t t, char out[32]) {
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)t);
}

static X509_CRL* decode_crl(const uint8_t* data, size_t len) {
    if (len > 10 && memcmp(data, "-----BEGIN", 10) == 0) {
        BIO* b        = BIO_new_mem_buf(data, (int)len);
        X509_CRL* crl = b ? PEM_read_bio_X509_CRL(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        return crl;
    }
    const uint8_t* p = data;
    X509_CRL* crl    = d2i_X509_CRL(NULL, &p, (long)len);
    if (crl && p != data + len) {
        X509_CRL_free(crl);
        return NULL;
    }
    return crl;
}

static int crl_checks(X509_CRL* crl, X509* issuer, X509* subject, const char* what, time_t now,
                      time_t* ret_next, struct moat_error* err) {
    _cleanup_free_ char* icn = amber_cert_cn(issuer);
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0)
        return moat_error_set(err, -EBADMSG, "the CRL's issuer is not '%s', the %s's issuer", icn,
                              what);
    EVP_PKEY* ik = X509_get0_pubkey(issuer);
    if (!ik || X509_CRL_verify(crl, ik) != 1)
        return moat_error_set(err, -EBADMSG,
                              "the CRL's signature does not verify with the key of '%s'", icn);
    time_t last = 0, next = 0;
    char buf[32];
    if (asn1_time(X509_CRL_get0_lastUpdate(crl), &last) < 0)
        return moat_error_set(err, -EBADMSG, "the CRL's thisUpdate is malformed");
    if (last > now + AMBER_CRL_SKEW) {
        format_time(last, buf);
        return moat_error_set(err, -EBADMSG, "the CRL's thisUpdate %s is in the future", buf);
    }
    if (!X509_CRL_get0_nextUpdate(crl))
        return moat_error_set(err, -EBADMSG, "the CRL has no nextUpdate");
    if (asn1_time(X509_CRL_get0_nextUpdate(crl), &next) < 0)
        return moat_error_set(err, -EBADMSG, "the CRL's nextUpdate is malformed");
    if (next <= now) {
        format_time(next, buf);
        return moat_error_set(err, -ESTALE, "the CRL expired (nextUpdate %s)", buf);
    }
    X509_REVOKED* rev = NULL;
    if (X509_CRL_get0_by_cert(crl, &rev, subject) == 1) {
        _cleanup_free_ char* scn = amber_cert_cn(subject);
        char* serial             = i2s_ASN1_INTEGER(NULL, X509_get0_serialNumber(subject));
        int r = moat_error_set(err, -EKEYREVOKED, "the %s certificate '%s' (serial %s) is revoked",
                               what, scn, serial ? serial : "?");
        OPENSSL_free(serial);
        return r;
    }
    if (ret_next)
        *ret_next = next;
    return 0;
}

int amber_crl_check(const uint8_t* data, size_t len, X509* issuer, X509* subject, const char* what,
                    time_t now, time_t* ret_next_update, struct moat_error* err) {
    if (len > AMBER_CRL_MAX_BYTES)
        return moat_error_set(err, -EFBIG, "the CRL is %zu bytes, more than %d", len,
                              AMBER_CRL_MAX_BYTES);
    X509_CRL* crl = decode_crl(data, len);
    if (!crl)
        return moat_error_set(err, -EBADMSG, "not a CRL (DER or PEM)");
    int r = crl_checks(crl, issuer, subject, what, now, ret_next_update, err);
    X509_CRL_free(crl);
    return r;
}

/* ------------------------------------------------------------------------------------------ */

struct fetch_ctx {
    const char* cacerts;
};

static int https_fetch(void* arg, const char* url, uint8_t** ret, size_t* ret_len,
                       struct moat_error* err) {
    const struct fetch_ctx* f  = arg;
    struct https_request req   = {.url          = url,
                                  .cacerts      = f->cacerts,
                                  .max_response = AMBER_CRL_MAX_BYTES,
                                  .allow_http   = true /* CRLs are signed */};
    struct https_response resp = {0};
    int r                      = https_request(&req, &resp, err);
    if (r < 0)
        return r;
    if (resp.status != 200) {
        r = moat_error_set(err, -EIO, "HTTP %ld", resp.status);
        https_response_clear(&resp);
        return r;
    }
    *ret      = (uint8_t*)resp.body;
    *ret_len  = resp.body_len;
    resp.body = NULL;
    https_response_clear(&resp);
    return 0;
}

/* The CRL for `subject` from its distribution point, issued by `issuer` (§4.2: the leaf against
 * the intermediate's CRL, the intermediate against the root's). */
static int check_crl_of(const struct amber_x5c_options* o, X509* subject, const char* what,
                        X509* issuer, time_t now, time_t* next, struct moat_error* err) {
    _cleanup_free_ char* cn  = amber_cert_cn(subject);
    _cleanup_free_ char* url = amber_cert_crl_url(subject);
    if (!url)
        return moat_error_set(err, -EBADMSG,
                              "the %s certificate '%s' names no http(s) CRL distribution point",
                              what, cn);
    struct fetch_ctx fc         = {.cacerts = o->cacerts};
    _cleanup_free_ uint8_t* der = NULL;
    size_t len                  = 0;
    int r                       = o->fetch ? o->fetch(o->fetch_ctx, url, &der, &len, err)
                                           : https_fetch(&fc, url, &der, &len, err);
    if (r < 0)
        return moat_error_prefix(err, "cannot fetch the CRL of the %s certificate '%s' (%s)", what,
                                 cn, url);
    if ((r = amber_crl_check(der, len, issuer, subject, what, now, next, err)) < 0)
        return moat_error_prefix(err, "CRL %s of the %s certificate '%s'", url, what, cn);
    return 0;
}

static int verify_chain(const struct amber_x5c* c, const struct amber_x5c_options* o, time_t now,
                        struct amber_x5c_result* res, STACK_OF(X509) * *ret_chain,
                        struct moat_error* err) {
    X509_STORE* store         = X509_STORE_new();
    STACK_OF(X509)* untrusted = sk_X509_new_null();
    X509_STORE_CTX* ctx       = X509_STORE_CTX_new();
    int r                     = 0;
    if (!store || !untrusted || !ctx) {
        r = moat_error_set(err, -ENOMEM, "X509_STORE");
        goto out;
    }
    if (o->roots && sk_X509_num(o->roots) > 0) {
        for (int i = 0; i < sk_X509_num(o->roots); i++)
            X509_STORE_add_cert(store, sk_X509_value(o->roots, i));
    } else if (!o->allow_self_root) {
        r = moat_error_set(err, -EPERM,
                           "no trust anchor for the x5c chain: give the token service's root CA "
                           "certificate");
        goto out;
    } else if (!c->root || X509_check_issued(c->root, c->root) != X509_V_OK ||
               X509_verify(c->root, X509_get0_pubkey(c->root)) != 1) {
        r = moat_error_set(err, -EPERM, "the x5c has no self-signed root CA certificate to trust");
        goto out;
    } else {
        X509_STORE_add_cert(store, c->root);
        res->self_anchored = true;
    }
    sk_X509_push(untrusted, c->intermediate);
    if (c->root && !res->self_anchored)
        sk_X509_push(untrusted, c->root);
    if (X509_STORE_CTX_init(ctx, store, c->leaf, untrusted) != 1) {
        r = moat_error_set(err, -ENOMEM, "X509_STORE_CTX_init");
        goto out;
    }
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
    if (X509_verify_cert(ctx) != 1) {
        X509* at                = X509_STORE_CTX_get_current_cert(ctx);
        _cleanup_free_ char* cn = at ? amber_cert_cn(at) : xstrdup("?");
        r = moat_error_set(err, -EPERM, "the x5c chain does not verify: %s (at '%s')",
                           X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)), cn);
        goto out;
    }
    STACK_OF(X509)* chain = X509_STORE_CTX_get1_chain(ctx);
    if (sk_X509_num(chain) != 3 || X509_cmp(sk_X509_value(chain, 1), c->intermediate) != 0) {
        sk_X509_pop_free(chain, X509_free);
        r = moat_error_set(err, -EPERM, "the x5c chain is not leaf → Signing CA → root CA (§4.2)");
        goto out;
    }
    char* root = amber_cert_cn(sk_X509_value(chain, 2));
    snprintf(res->root, sizeof(res->root), "%s", root);
    free(root);
    *ret_chain = chain;
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    return r;
}

int amber_jwk_verify_x5c(const json_t* jwk, const struct amber_x5c_options* o,
                         struct amber_x5c_result* ret, struct moat_error* err) {
    const json_t* x5c = json_object_get(jwk, "x5c");
    if (!x5c)
        return moat_error_set(err, -ENOKEY, "the JWK has no \"x5c\" certificate chain");
    struct amber_x5c c          = {0};
    struct amber_x5c_result res = {0};
    STACK_OF(X509)* chain       = NULL;
    EVP_PKEY* key               = NULL;
    time_t now                  = o->now ? o->now : time(NULL);
    int r                       = amber_x5c_parse(x5c, &c, err);
    if (r < 0)
        return r;
    if ((r = amber_jwk_key(jwk, &key, err)) < 0)
        goto out;
    if (EVP_PKEY_eq(key, X509_get0_pubkey(c.leaf)) != 1) {
        r = moat_error_set(err, -EPERM, "the JWK's key (n, e) is not the key of its x5c leaf");
        goto out;
    }
    if ((r = verify_chain(&c, o, now, &res, &chain, err)) < 0)
        goto out;
    if (!o->skip_crl) {
        time_t n1 = 0, n2 = 0;
        if ((r = check_crl_of(o, c.leaf, "leaf", sk_X509_value(chain, 1), now, &n1, err)) < 0 ||
            (r = check_crl_of(o, sk_X509_value(chain, 1), "intermediate", sk_X509_value(chain, 2),
                              now, &n2, err)) < 0)
            goto out;
        res.crl_checked = true;
        res.next_update = n1 < n2 ? n1 : n2;
    }
    *ret = res;
out:
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    amber_x5c_clear(&c);
    return r;
}

int amber_roots_load(const char* path, STACK_OF(X509) * *ret, struct moat_error* err) {
    FILE* f = fopen(path, "re");
    if (!f)
        return moat_error_set_errno(err, -errno, "%s", path);
    STACK_OF(X509)* s = sk_X509_new_null();
    X509* c;
    while (s && sk_X509_num(s) < 1000 && (c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        sk_X509_push(s, c);
    fclose(f);
    if (sk_X509_num(s) <= 0) {
        sk_X509_pop_free(s, X509_free);
        return moat_error_set(err, -EBADMSG, "%s: no PEM certificate", path);
    }
    *ret = s;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */

int amber_jwks_load(const char* source, const char* cacerts, const char* connect_ip, json_t** ret,
                    struct moat_error* err) {
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    int r;
    if (strncmp(source, "http://", 7) == 0)
        return moat_error_set(err, -EINVAL, "the JWKS URL '%s' is not https://", source);
    if (strncmp(source, "https://", 8) == 0) {
        struct https_request req = {
            .url          = source,
            .cacerts      = cacerts,
            .connect_ip   = connect_ip,
            .headers      = (const char* const[]){"Accept: application/json", NULL},
            .max_response = AMBER_JWKS_MAX_BYTES};
        struct https_response resp = {0};
        if ((r = https_request(&req, &resp, err)) < 0)
            return moat_error_prefix(err, "cannot fetch the JWKS %s", source);
        if (resp.status != 200) {
            r = moat_error_set(err, -EIO, "cannot fetch the JWKS %s: HTTP %ld", source,
                               resp.status);
            https_response_clear(&resp);
            return r;
        }
        text      = resp.body;
        len       = resp.body_len;
        resp.body = NULL;
        https_response_clear(&resp);
    } else if ((r = read_file(source, &text, &len, err)) < 0) {
        return r;
    } else if (len > AMBER_JWKS_MAX_BYTES) {
        return moat_error_set(err, -EFBIG, "%s: more than %d bytes", source, AMBER_JWKS_MAX_BYTES);
    }
    json_t* doc = json_loadb(text, len, 0, NULL);
    if (!json_is_array(json_object_get(doc, "keys"))) {
        json_decref(doc);
        return moat_error_set(err, -EINVAL, "%s is not a JWKS ({\"keys\": [...]})", source);
    }
    *ret = doc;
    return 0;
}

const json_t* amber_jwks_find(const json_t* jwks, const char* kid) {
    size_t i;
    const json_t* k;
    json_array_foreach(json_object_get(jwks, "keys"), i, k) {
        const char* id = json_string_value(json_object_get(k, "kid"));
        if (id && kid && strcmp(id, kid) == 0)
            return k;
    }
    return NULL;
}

int amber_jwk_alg(const json_t* jwk, enum amber_jwt_alg* ret, struct moat_error* err) {
    const json_t* a = json_object_get(jwk, "alg");
    if (a && !json_is_string(a))
        return moat_error_set(err, -EINVAL, "the JWK's \"alg\" is not a string");
    return amber_jwt_alg_parse(a ? json_string_value(a) : "PS384", ret, err);
}
