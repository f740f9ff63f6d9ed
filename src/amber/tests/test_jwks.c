/* SPDX-License-Identifier: Apache-2.0 */
/* src/amber/jwks.c: the x5c classification, chain and CRL checks of attestation.md §4.2
 * "Verification" (client-for-go VerifyToken), on a root CA → Signing CA → leaf chain made here
 * as moat-amber's pki.c makes it, with CRLs served by a fetch callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka after the standard headers */
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "jwks.h"

struct pki {
    EVP_PKEY *root_key, *ca_key, *leaf_key, *other_key;
    X509 *root, *ca, *leaf;
    uint8_t *root_crl, *ca_crl; /* DER */
    size_t root_crl_len, ca_crl_len;
    int fetches;
};

static bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    bool ok             = ext && X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static X509* make_cert(const char* cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                       const char* cdp, long serial) {
    X509* c        = X509_new();
    X509_NAME* sub = X509_NAME_new();
    assert_true(
        X509_NAME_add_entry_by_txt(sub, "CN", MBSTRING_UTF8, (const unsigned char*)cn, -1, -1, 0));
    assert_true(X509_set_version(c, 2));
    assert_true(ASN1_INTEGER_set(X509_get_serialNumber(c), serial));
    assert_true(X509_set_subject_name(c, sub));
    assert_true(X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : sub));
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(c), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(c), 86400));
    assert_true(X509_set_pubkey(c, key));
    assert_true(add_ext(c, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE"));
    if (ca)
        assert_true(add_ext(c, issuer, NID_key_usage, "critical,keyCertSign,cRLSign"));
    assert_true(add_ext(c, issuer, NID_subject_key_identifier, "hash"));
    if (issuer)
        assert_true(add_ext(c, issuer, NID_authority_key_identifier, "keyid:always"));
    if (cdp)
        assert_true(add_ext(c, issuer, NID_crl_distribution_points, cdp));
    assert_true(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    X509_NAME_free(sub);
    return c;
}

/* A CRL of `issuer` signed with `key`, valid from `from` to `to` seconds from now, listing
 * `revoked` when given. */
static void make_crl(X509* issuer, EVP_PKEY* key, long from, long to, X509* revoked, uint8_t** ret,
                     size_t* ret_len) {
    X509_CRL* crl   = X509_CRL_new();
    ASN1_TIME* last = X509_gmtime_adj(NULL, from);
    ASN1_TIME* next = X509_gmtime_adj(NULL, to);
    assert_true(X509_CRL_set_version(crl, 1));
    assert_true(X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)));
    assert_true(X509_CRL_set1_lastUpdate(crl, last));
    assert_true(X509_CRL_set1_nextUpdate(crl, next));
    if (revoked) {
        X509_REVOKED* r = X509_REVOKED_new();
        assert_true(X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(revoked)));
        assert_true(X509_REVOKED_set_revocationDate(r, last));
        assert_true(X509_CRL_add0_revoked(crl, r));
        assert_true(X509_CRL_sort(crl));
    }
    assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
    *ret  = NULL;
    int n = i2d_X509_CRL(crl, ret);
    assert_true(n > 0);
    *ret_len = (size_t)n;
    ASN1_TIME_free(last);
    ASN1_TIME_free(next);
    X509_CRL_free(crl);
}

static int fetch(void* arg, const char* url, uint8_t** ret, size_t* ret_len,
                 struct moat_error* err) {
    struct pki* p = arg;
    p->fetches++;
    if (strcmp(url, "https://ita.test/crl/root.crl") == 0) {
        *ret     = xmemdup(p->root_crl, p->root_crl_len);
        *ret_len = p->root_crl_len;
        return 0;
    }
    if (strcmp(url, "https://ita.test/crl/signing-ca.crl") == 0) {
        *ret     = xmemdup(p->ca_crl, p->ca_crl_len);
        *ret_len = p->ca_crl_len;
        return 0;
    }
    return moat_error_set(err, -EIO, "HTTP 404");
}

static void set_crl(uint8_t** slot, size_t* len, uint8_t* der, size_t der_len) {
    OPENSSL_free(*slot);
    *slot = der;
    *len  = der_len;
}

static int setup(void** state) {
    struct pki* p = calloc(1, sizeof(*p));
    p->root_key   = EVP_EC_gen("P-256");
    p->ca_key     = EVP_EC_gen("P-256");
    p->other_key  = EVP_EC_gen("P-256");
    p->leaf_key   = EVP_RSA_gen(2048);
    p->root       = make_cert("Test Root CA", p->root_key, NULL, NULL, true, NULL, 1);
    p->ca         = make_cert("Test Signing CA", p->ca_key, p->root, p->root_key, true,
                              "URI:https://ita.test/crl/root.crl", 2);
    p->leaf = make_cert("Test Token Signing Certificate", p->leaf_key, p->ca, p->ca_key, false,
                        "URI:https://ita.test/crl/signing-ca.crl", 3);
    make_crl(p->root, p->root_key, -60, 3600, NULL, &p->root_crl, &p->root_crl_len);
    make_crl(p->ca, p->ca_key, -60, 3600, NULL, &p->ca_crl, &p->ca_crl_len);
    *state = p;
    return 0;
}

static int teardown(void** state) {
    struct pki* p = *state;
    EVP_PKEY_free(p->root_key);
    EVP_PKEY_free(p->ca_key);
    EVP_PKEY_free(p->leaf_key);
    EVP_PKEY_free(p->other_key);
    X509_free(p->root);
    X509_free(p->ca);
    X509_free(p->leaf);
    OPENSSL_free(p->root_crl);
    OPENSSL_free(p->ca_crl);
    free(p);
    return 0;
}

static json_t* b64_cert(X509* c) {
    uint8_t* der = NULL;
    int n        = i2d_X509(c, &der);
    assert_true(n > 0);
    char* s = base64_encode_alloc(der, (size_t)n);
    OPENSSL_free(der);
    json_t* j = json_string(s);
    free(s);
    return j;
}

/* The JWK of the leaf key with x5c = certs (NULL-terminated), in the order given. */
static json_t* jwk_of(EVP_PKEY* key, X509* const* certs) {
    STACK_OF(X509)* none = sk_X509_new_null();
    json_t* jwk          = amber_jwk_new(key, AMBER_JWT_PS384, "k1", none);
    sk_X509_free(none);
    json_t* x5c = json_array();
    for (size_t i = 0; certs[i]; i++)
        json_array_append_new(x5c, b64_cert(certs[i]));
    json_object_set_new(jwk, "x5c", x5c);
    return jwk;
}

static STACK_OF(X509) * roots_of(X509* root) {
    STACK_OF(X509)* s = sk_X509_new_null();
    X509_up_ref(root);
    sk_X509_push(s, root);
    return s;
}

static int run(struct pki* p, json_t* jwk, STACK_OF(X509) * roots, bool self,
               struct amber_x5c_result* res, struct moat_error* err) {
    struct amber_x5c_options o = {
        .roots = roots, .allow_self_root = self, .fetch = fetch, .fetch_ctx = p};
    return amber_jwk_verify_x5c(jwk, &o, res, err);
}

static void test_classify(void** state) {
    struct pki* p = *state;
    assert_int_equal(amber_x5c_classify(p->root), AMBER_X5C_ROOT);
    assert_int_equal(amber_x5c_classify(p->ca), AMBER_X5C_INTERMEDIATE);
    assert_int_equal(amber_x5c_classify(p->leaf), AMBER_X5C_LEAF);
    /* "Root CA" in the CN of a non-CA is a leaf (§4.2: CA and CN) */
    X509* fake = make_cert("Fake Root CA", p->leaf_key, p->ca, p->ca_key, false, NULL, 9);
    assert_int_equal(amber_x5c_classify(fake), AMBER_X5C_LEAF);
    char* url = amber_cert_crl_url(p->leaf);
    assert_string_equal(url, "https://ita.test/crl/signing-ca.crl");
    free(url);
    assert_null(amber_cert_crl_url(p->root));

    /* order does not matter; two leaves, no intermediate or too many certificates do */
    struct moat_error err = {0};
    struct amber_x5c c    = {0};
    json_t* jwk           = jwk_of(p->leaf_key, (X509*[]){p->root, p->leaf, p->ca, NULL});
    assert_int_equal(amber_x5c_parse(json_object_get(jwk, "x5c"), &c, &err), 0);
    assert_int_equal(X509_cmp(c.leaf, p->leaf), 0);
    assert_int_equal(X509_cmp(c.root, p->root), 0);
    amber_x5c_clear(&c);
    json_decref(jwk);
    jwk = jwk_of(p->leaf_key, (X509*[]){p->leaf, fake, p->ca, NULL});
    assert_true(amber_x5c_parse(json_object_get(jwk, "x5c"), &c, &err) < 0);
    assert_non_null(strstr(err.msg, "two leaf certificates"));
    json_decref(jwk);
    jwk = jwk_of(p->leaf_key, (X509*[]){p->leaf, p->root, NULL});
    assert_true(amber_x5c_parse(json_object_get(jwk, "x5c"), &c, &err) < 0);
    assert_non_null(strstr(err.msg, "no intermediate"));
    json_decref(jwk);
    json_t* many = json_array();
    for (int i = 0; i < AMBER_X5C_MAX_CERTS + 1; i++)
        json_array_append_new(many, b64_cert(p->leaf));
    assert_true(amber_x5c_parse(many, &c, &err) < 0);
    assert_non_null(strstr(err.msg, "11 certificates"));
    json_decref(many);
    json_t* junk = json_pack("[s]", "not base64 !");
    assert_true(amber_x5c_parse(junk, &c, &err) < 0);
    assert_non_null(strstr(err.msg, "x5c[0]"));
    json_decref(junk);
    X509_free(fake);
}

static void test_chain(void** state) {
    struct pki* p               = *state;
    struct moat_error err       = {0};
    struct amber_x5c_result res = {0};
    STACK_OF(X509)* roots       = roots_of(p->root);
    json_t* jwk                 = jwk_of(p->leaf_key, (X509*[]){p->leaf, p->ca, p->root, NULL});
    p->fetches                  = 0;
    assert_int_equal(run(p, jwk, roots, false, &res, &err), 0);
    assert_false(res.self_anchored);
    assert_true(res.crl_checked);
    assert_int_equal(p->fetches, 2);
    assert_string_equal(res.root, "Test Root CA");
    assert_true(res.next_update > time(NULL));

    /* without a root in x5c, the anchor completes the chain */
    json_t* short_jwk = jwk_of(p->leaf_key, (X509*[]){p->leaf, p->ca, NULL});
    assert_int_equal(run(p, short_jwk, roots, false, &res, &err), 0);
    json_decref(short_jwk);

    /* no anchor: refused unless the self-signed root is explicitly accepted */
    assert_int_equal(run(p, jwk, NULL, false, &res, &err), -EPERM);
    assert_non_null(strstr(err.msg, "no trust anchor"));
    assert_int_equal(run(p, jwk, NULL, true, &res, &err), 0);
    assert_true(res.self_anchored);

    /* another root CA */
    EVP_PKEY* k2        = EVP_EC_gen("P-256");
    X509* root2         = make_cert("Other Root CA", k2, NULL, NULL, true, NULL, 1);
    STACK_OF(X509)* oth = roots_of(root2);
    assert_int_equal(run(p, jwk, oth, false, &res, &err), -EPERM);
    assert_non_null(strstr(err.msg, "does not verify"));
    sk_X509_pop_free(oth, X509_free);
    X509_free(root2);
    EVP_PKEY_free(k2);

    /* a JWK whose (n, e) is not the leaf's */
    EVP_PKEY* k3 = EVP_RSA_gen(2048);
    json_t* mism = jwk_of(k3, (X509*[]){p->leaf, p->ca, p->root, NULL});
    assert_int_equal(run(p, mism, roots, false, &res, &err), -EPERM);
    assert_non_null(strstr(err.msg, "not the key of its x5c leaf"));
    json_decref(mism);
    EVP_PKEY_free(k3);

    /* no x5c */
    json_object_del(jwk, "x5c");
    assert_int_equal(run(p, jwk, roots, false, &res, &err), -ENOKEY);
    json_decref(jwk);
    sk_X509_pop_free(roots, X509_free);
}

static void test_crls(void** state) {
    struct pki* p               = *state;
    struct moat_error err       = {0};
    struct amber_x5c_result res = {0};
    STACK_OF(X509)* roots       = roots_of(p->root);
    json_t* jwk                 = jwk_of(p->leaf_key, (X509*[]){p->leaf, p->ca, p->root, NULL});
    uint8_t* der;
    size_t len;

    /* the leaf revoked in the Signing CA's CRL */
    make_crl(p->ca, p->ca_key, -60, 3600, p->leaf, &der, &len);
    set_crl(&p->ca_crl, &p->ca_crl_len, der, len);
    assert_int_equal(run(p, jwk, roots, false, &res, &err), -EKEYREVOKED);
    assert_non_null(strstr(err.msg, "signing-ca.crl"));
    assert_non_null(strstr(err.msg, "is revoked"));

    /* the Signing CA's CRL signed by another key (a forged CRL) */
    make_crl(p->ca, p->other_key, -60, 3600, NULL, &der, &len);
    set_crl(&p->ca_crl, &p->ca_crl_len, der, len);
    assert_int_equal(run(p, jwk, roots, false, &res, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "signature does not verify"));

    /* the root's CRL served for the leaf: wrong issuer */
    make_crl(p->root, p->root_key, -60, 3600, NULL, &der, &len);
    set_crl(&p->ca_crl, &p->ca_crl_len, der, len);
    assert_int_equal(run(p, jwk, roots, false, &res, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "issuer"));

    /* an expired CRL */
    make_crl(p->ca, p->ca_key, -7200, -3600, NULL, &der, &len);
    set_crl(&p->ca_crl, &p->ca_crl_len, der, len);
    assert_int_equal(run(p, jwk, roots, false, &res, &err), -ESTALE);
    assert_non_null(strstr(err.msg, "nextUpdate"));

    /* the intermediate revoked in the root's CRL */
    make_crl(p->ca, p->ca_key, -60, 3600, NULL, &der, &len);
    set_crl(&p->ca_crl, &p->ca_crl_len, der, len);
    make_crl(p->root, p->root_key, -60, 3600, p->ca, &der, &len);
    set_crl(&p->root_crl, &p->root_crl_len, der, len);
    assert_int_equal(run(p, jwk, roots, false, &res, &err), -EKEYREVOKED);
    assert_non_null(strstr(err.msg, "intermediate certificate 'Test Signing CA'"));

    /* skip_crl: no fetch at all */
    struct amber_x5c_options o = {.roots = roots, .skip_crl = true, .fetch = fetch, .fetch_ctx = p};
    p->fetches                 = 0;
    assert_int_equal(amber_jwk_verify_x5c(jwk, &o, &res, &err), 0);
    assert_false(res.crl_checked);
    assert_int_equal(p->fetches, 0);

    /* garbage */
    assert_int_equal(
        amber_crl_check((const uint8_t*)"xx", 2, p->ca, p->leaf, "leaf", time(NULL), NULL, &err),
        -EBADMSG);

    make_crl(p->root, p->root_key, -60, 3600, NULL, &der, &len);
    set_crl(&p->root_crl, &p->root_crl_len, der, len);
    json_decref(jwk);
    sk_X509_pop_free(roots, X509_free);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_crls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
