/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Coordinator CA (MarbleRun reference §3.3, §2, §4.3): the three CA certificates have
 * MarbleRun's names, keys, extensions and validity; a marble leaf carries the 1.3.9903.2.1
 * extension with the raw marble type and verifies with OpenSSL's X509_verify_cert against the
 * root, the intermediate and the marble root (MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN is
 * leaf + intermediate); export/import round-trips and refuses inconsistent parts.
 */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "ca.h"

static struct moat_ca* g_ca;

static const uint8_t g_uuid[16] = {0x6e, 0x2c, 0x1a, 0x3b, 0x9f, 0x00, 0x4d, 0x1e,
                                   0x8a, 0x55, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06};
#define UUID_STR "6e2c1a3b-9f00-4d1e-8a55-010203040506"

static int setup(void** state) {
    (void)state;
    struct moat_error err   = {0};
    const char* const dns[] = {"coordinator.example", "10.1.2.3", NULL};
    return moat_ca_generate(dns, &g_ca, &err);
}

static int teardown(void** state) {
    (void)state;
    moat_ca_free(g_ca);
    return 0;
}

static X509* d2i_cert(const struct moat_der* d) {
    const unsigned char* p = d->p;
    X509* x                = d2i_X509(NULL, &p, (long)d->len);
    assert_non_null(x);
    return x;
}

static void assert_cn(const X509_NAME* name, const char* cn) {
    char buf[256] = "";
    assert_true(X509_NAME_get_text_by_NID((X509_NAME*)name, NID_commonName, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, cn);
}

static bool is_p384(const EVP_PKEY* k) {
    char curve[32] = "";
    return EVP_PKEY_is_a(k, "EC") &&
           EVP_PKEY_get_utf8_string_param(k, "group", curve, sizeof(curve), NULL) &&
           strcmp(curve, "secp384r1") == 0;
}

/* X509_verify_cert of `leaf` with `untrusted` against the single trust anchor `anchor`. */
static int verify(X509* leaf, X509* untrusted, X509* anchor, bool partial) {
    X509_STORE* store = X509_STORE_new();
    assert_int_equal(X509_STORE_add_cert(store, anchor), 1);
    if (partial)
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    STACK_OF(X509)* chain = sk_X509_new_null();
    if (untrusted)
        sk_X509_push(chain, untrusted);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, chain), 1);
    int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    sk_X509_free(chain);
    X509_STORE_free(store);
    return ok;
}

/* §3.3 Root CA / Intermediate / Marble root */
static void test_ca_certificates(void** state) {
    (void)state;
    X509* root  = g_ca->root_cert;
    X509* inter = g_ca->intermediate_cert;
    X509* mroot = g_ca->marble_root_cert;
    assert_cn(X509_get_subject_name(root), MOAT_CA_ROOT_CN);
    assert_cn(X509_get_issuer_name(root), MOAT_CA_ROOT_CN);
    assert_cn(X509_get_subject_name(inter), MOAT_CA_INTERMEDIATE_CN);
    assert_cn(X509_get_issuer_name(inter), MOAT_CA_ROOT_CN);
    assert_cn(X509_get_subject_name(mroot), MOAT_CA_INTERMEDIATE_CN);
    assert_cn(X509_get_issuer_name(mroot), MOAT_CA_INTERMEDIATE_CN);
    /* all keys P-384, the marble root's key is the intermediate's */
    assert_true(is_p384(X509_get0_pubkey(root)));
    assert_true(is_p384(X509_get0_pubkey(inter)));
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(inter), X509_get0_pubkey(mroot)), 1);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(root), X509_get0_pubkey(inter)), 0);
    /* signatures: ecdsa-with-SHA384; root and marble root self-signed */
    assert_int_equal(X509_get_signature_nid(root), NID_ecdsa_with_SHA384);
    assert_int_equal(X509_verify(root, g_ca->root_key), 1);
    assert_int_equal(X509_verify(inter, g_ca->root_key), 1);
    assert_int_equal(X509_verify(mroot, g_ca->intermediate_key), 1);
    X509* all[]    = {root, inter, mroot};
    time_t in_290y = time(NULL) + (time_t)290 * 365 * 86400;
    for (size_t i = 0; i < 3; i++) {
        X509* x = all[i];
        /* CA, KeyUsage DigitalSignature|CertSign, EKU serverAuth+clientAuth */
        assert_int_equal(X509_check_ca(x), 1);
        assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN);
        assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
        assert_int_equal(X509_get_version(x), X509_VERSION_3);
        /* NotAfter = now + MaxInt64 ns: ~292 years */
        assert_true(X509_cmp_time(X509_get0_notAfter(x), &in_290y) > 0);
        assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) <= 0);
        /* 128-bit random serial */
        BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        assert_true(BN_num_bits(bn) <= 128 && BN_num_bits(bn) > 64);
        BN_free(bn);
        /* SANs: the DNS name, loopback IPs and the IP given among the DNS names */
        assert_int_equal(X509_check_host(x, "coordinator.example", 0, 0, NULL), 1);
        assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
        assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
        assert_int_equal(X509_check_ip_asc(x, "10.1.2.3", 0), 1);
        assert_int_equal(X509_check_host(x, "10.1.2.3", 0, 0, NULL), 0);
        assert_non_null(X509_get0_subject_key_id(x));
    }
    assert_int_not_equal(
        ASN1_INTEGER_cmp(X509_get0_serialNumber(inter), X509_get0_serialNumber(mroot)), 0);
    /* Go: AuthorityKeyId only for the intermediate (issuer != subject) */
    assert_null(X509_get0_authority_key_id(root));
    assert_null(X509_get0_authority_key_id(mroot));
    assert_int_equal(
        ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(inter), X509_get0_subject_key_id(root)),
        0);
    /* the intermediate verifies against the root */
    assert_int_equal(verify(inter, NULL, root, false), 1);
}

static X509_REQ* make_csr(EVP_PKEY** ret_key) {
    EVP_PKEY* key   = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509_REQ* req   = X509_REQ_new();
    X509_NAME* name = X509_REQ_get_subject_name(req);
    X509_NAME_add_entry_by_NID(name, NID_countryName, MBSTRING_ASC, (unsigned char*)"DE", -1, -1,
                               0);
    X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_ASC,
                               (unsigned char*)"Evil Corp", -1, -1, 0);
    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_ASC, (unsigned char*)"spoofed", -1,
                               -1, 0);
    X509_REQ_set_pubkey(req, key);
    GENERAL_NAMES* gens      = NULL;
    struct moat_error err    = {0};
    const char* const dns[]  = {"backend.example", NULL};
    const char* const ips[]  = {"192.0.2.7", NULL};
    const char* const mail[] = {"x@example.org", NULL};
    assert_int_equal(moat_x509_san_build(dns, mail, ips, NULL, &gens, &err), 0);
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
    X509_REQ_add_extensions(req, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
    assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    *ret_key = key;
    return req;
}

static void issue_leaf(X509_REQ* req, struct moat_cert_key* ck) {
    unsigned char* der = NULL;
    int len            = i2d_X509_REQ(req, &der);
    assert_true(len > 0);
    struct moat_marble_cert_req rq = {.csr = der, .csr_len = (size_t)len, .marble_type = "backend"};
    memcpy(rq.uuid, g_uuid, 16);
    struct moat_error err = {0};
    assert_int_equal(moat_ca_issue_marble_cert(g_ca, &rq, ck, &err), 0);
    OPENSSL_free(der);
}

/* §3.3 Marble leaf, §4.3 step 5 */
static void test_marble_leaf(void** state) {
    (void)state;
    EVP_PKEY* csr_key                                       = NULL;
    X509_REQ* req                                           = make_csr(&csr_key);
    _cleanup_(moat_cert_key_clearp) struct moat_cert_key ck = {0};
    issue_leaf(req, &ck);
    X509* leaf = d2i_cert(&ck.cert);

    /* subject: CN = UUID, O dropped, C kept; issuer: the marble root */
    assert_cn(X509_get_subject_name(leaf), UUID_STR);
    assert_int_equal(
        X509_NAME_get_index_by_NID(X509_get_subject_name(leaf), NID_organizationName, -1), -1);
    char c[8] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_countryName, c, sizeof(c));
    assert_string_equal(c, "DE");
    assert_int_equal(
        X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(g_ca->marble_root_cert)),
        0);
    /* a fresh P-384 key, not the CSR's; .Private PKCS#8 and .Public PKIX of it */
    assert_true(is_p384(X509_get0_pubkey(leaf)));
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), csr_key), 0);
    const unsigned char* p  = ck.private_key.p;
    PKCS8_PRIV_KEY_INFO* p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)ck.private_key.len);
    assert_non_null(p8);
    EVP_PKEY* priv = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    assert_int_equal(X509_check_private_key(leaf, priv), 1);
    EVP_PKEY_free(priv);
    unsigned char* pub = NULL;
    int publen         = i2d_PUBKEY(X509_get0_pubkey(leaf), &pub);
    assert_int_equal((size_t)publen, ck.public_key.len);
    assert_memory_equal(pub, ck.public_key.p, ck.public_key.len);
    OPENSSL_free(pub);
    /* KeyUsage DigitalSignature|KeyAgreement, EKU server+client, not a CA */
    assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT);
    assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    assert_int_equal(X509_check_ca(leaf), 0);
    assert_null(X509_get0_subject_key_id(leaf));
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
                                           X509_get0_subject_key_id(g_ca->marble_root_cert)),
                     0);
    /* SANs: the CSR's DNS name and IP, not its e-mail address */
    assert_int_equal(X509_check_host(leaf, "backend.example", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(leaf, "192.0.2.7", 0), 1);
    assert_int_equal(X509_check_email(leaf, "x@example.org", 0, 0), 0);
    time_t in_290y = time(NULL) + (time_t)290 * 365 * 86400;
    assert_true(X509_cmp_time(X509_get0_notAfter(leaf), &in_290y) > 0);

    /* 1.3.9903.2.1, non-critical, extnValue = the raw bytes "backend" */
    static const uint8_t expect[] = {0x30, 0x10, 0x06, 0x05, 0x2b, 0xcd, 0x2f, 0x02, 0x01,
                                     0x04, 0x07, 'b',  'a',  'c',  'k',  'e',  'n',  'd'};
    ASN1_OBJECT* oid              = OBJ_txt2obj(MOAT_OID_MARBLE_TYPE, 1);
    int idx                       = X509_get_ext_by_OBJ(leaf, oid, -1);
    ASN1_OBJECT_free(oid);
    assert_true(idx >= 0);
    X509_EXTENSION* ext = X509_get_ext(leaf, idx);
    assert_int_equal(X509_EXTENSION_get_critical(ext), 0);
    unsigned char* ed = NULL;
    int elen          = i2d_X509_EXTENSION(ext, &ed);
    assert_int_equal(elen, 18);
    assert_memory_equal(ed, expect, 18);
    OPENSSL_free(ed);

    /* §2: leaf + intermediate verifies against the root, the intermediate, the marble root */
    assert_int_equal(verify(leaf, g_ca->intermediate_cert, g_ca->root_cert, false), 1);
    assert_int_equal(verify(leaf, g_ca->intermediate_cert, g_ca->intermediate_cert, true), 1);
    assert_int_equal(verify(leaf, g_ca->intermediate_cert, g_ca->marble_root_cert, false), 1);
    assert_int_equal(verify(leaf, NULL, g_ca->marble_root_cert, false), 1);
    /* and not against another Coordinator's root */
    struct moat_ca* other = NULL;
    struct moat_error err = {0};
    assert_int_equal(moat_ca_generate(NULL, &other, &err), 0);
    assert_int_equal(verify(leaf, g_ca->intermediate_cert, other->root_cert, false), 0);
    assert_int_equal(verify(leaf, NULL, other->marble_root_cert, false), 0);
    assert_int_equal(X509_check_ip_asc(other->root_cert, "127.0.0.1", 0), 1);
    moat_ca_free(other);

    X509_free(leaf);
    X509_REQ_free(req);
    EVP_PKEY_free(csr_key);
}

static void test_marble_leaf_without_csr(void** state) {
    (void)state;
    struct moat_marble_cert_req rq = {.marble_type = ""};
    memcpy(rq.uuid, g_uuid, 16);
    struct moat_error err                                   = {0};
    _cleanup_(moat_cert_key_clearp) struct moat_cert_key ck = {0};
    assert_int_equal(moat_ca_issue_marble_cert(g_ca, &rq, &ck, &err), 0);
    X509* leaf = d2i_cert(&ck.cert);
    assert_cn(X509_get_subject_name(leaf), UUID_STR);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 1);
    assert_int_equal(X509_get_ext_by_NID(leaf, NID_subject_alt_name, -1), -1);
    assert_int_equal(verify(leaf, g_ca->intermediate_cert, g_ca->root_cert, false), 1);
    X509_free(leaf);
    rq.marble_type = NULL;
    assert_int_equal(moat_ca_issue_marble_cert(g_ca, &rq, &ck, &err), -EINVAL);
}

static void test_bad_csr(void** state) {
    (void)state;
    EVP_PKEY* key                  = NULL;
    X509_REQ* req                  = make_csr(&key);
    unsigned char* der             = NULL;
    int len                        = i2d_X509_REQ(req, &der);
    struct moat_marble_cert_req rq = {.csr = der, .csr_len = (size_t)len, .marble_type = "backend"};
    struct moat_error err          = {0};
    _cleanup_(moat_cert_key_clearp) struct moat_cert_key ck = {0};
    /* a flipped bit in the signed subject: the self-signature no longer verifies */
    unsigned char* cn = memmem(der, (size_t)len, "spoofed", 7);
    assert_non_null(cn);
    cn[0] ^= 1;
    assert_int_equal(moat_ca_issue_marble_cert(g_ca, &rq, &ck, &err), -EINVAL);
    assert_string_equal(err.msg, "signature over CSR is invalid");
    assert_null(ck.cert.p);
    rq.csr_len = 10;
    assert_int_equal(moat_ca_issue_marble_cert(g_ca, &rq, &ck, &err), -EINVAL);
    assert_string_equal(err.msg, "failed to parse CSR");
    OPENSSL_free(der);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
}

static void der_dup(struct moat_der* dst, const struct moat_der* src) {
    dst->p   = OPENSSL_memdup(src->p, src->len);
    dst->len = src->len;
}

static void test_export_import(void** state) {
    (void)state;
    struct moat_error err                              = {0};
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der d = {0};
    assert_int_equal(moat_ca_export(g_ca, &d, &err), 0);
    struct moat_ca* back = NULL;
    assert_int_equal(moat_ca_import(&d, &back, &err), 0);
    assert_int_equal(X509_cmp(back->root_cert, g_ca->root_cert), 0);
    assert_int_equal(X509_cmp(back->marble_root_cert, g_ca->marble_root_cert), 0);
    assert_int_equal(EVP_PKEY_eq(back->intermediate_key, g_ca->intermediate_key), 1);
    /* the restored CA issues leaves that verify against the original root */
    struct moat_marble_cert_req rq                          = {.marble_type = "frontend"};
    _cleanup_(moat_cert_key_clearp) struct moat_cert_key ck = {0};
    assert_int_equal(moat_ca_issue_marble_cert(back, &rq, &ck, &err), 0);
    X509* leaf = d2i_cert(&ck.cert);
    assert_int_equal(verify(leaf, g_ca->intermediate_cert, g_ca->root_cert, false), 1);
    X509_free(leaf);
    moat_ca_free(back);

    /* swapped keys */
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der bad = {0};
    der_dup(&bad.root_cert, &d.root_cert);
    der_dup(&bad.root_key, &d.intermediate_key);
    der_dup(&bad.intermediate_cert, &d.intermediate_cert);
    der_dup(&bad.intermediate_key, &d.root_key);
    der_dup(&bad.marble_root_cert, &d.marble_root_cert);
    assert_int_equal(moat_ca_import(&bad, &back, &err), -EBADMSG);
    assert_string_equal(err.msg,
                        "invalid coordinator CA: the root certificate does not match the root key");
    /* an intermediate from another CA */
    struct moat_ca* other = NULL;
    assert_int_equal(moat_ca_generate(NULL, &other, &err), 0);
    _cleanup_(moat_ca_der_clearp) struct moat_ca_der od = {0};
    assert_int_equal(moat_ca_export(other, &od, &err), 0);
    moat_ca_free(other);
    moat_der_clear(&bad.root_key);
    moat_der_clear(&bad.intermediate_key);
    moat_der_clear(&bad.intermediate_cert);
    der_dup(&bad.root_key, &d.root_key);
    der_dup(&bad.intermediate_key, &od.intermediate_key);
    der_dup(&bad.intermediate_cert, &od.intermediate_cert);
    assert_int_equal(moat_ca_import(&bad, &back, &err), -EBADMSG);
    assert_string_equal(err.msg,
                        "invalid coordinator CA: the intermediate certificate is not "
                        "signed by the root");
    /* truncated */
    bad.root_cert.len = 20;
    assert_int_equal(moat_ca_import(&bad, &back, &err), -EBADMSG);
    assert_string_equal(err.msg, "the root certificate does not parse");
    /* wiped and emptied on clear */
    moat_der_clear(&bad.root_key);
    assert_null(bad.root_key.p);
    assert_int_equal(bad.root_key.len, 0);
}

static void test_rotate_intermediate(void** state) {
    (void)state;
    struct moat_error err = {0};
    struct moat_ca* ca    = NULL;
    assert_int_equal(moat_ca_generate(NULL, &ca, &err), 0);
    X509* old_inter = X509_dup(ca->intermediate_cert);
    assert_int_equal(moat_ca_rotate_intermediate(ca, NULL, &err), 0);
    assert_int_not_equal(X509_cmp(old_inter, ca->intermediate_cert), 0);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(ca->marble_root_cert), ca->intermediate_key), 1);
    assert_int_equal(verify(ca->intermediate_cert, NULL, ca->root_cert, false), 1);
    X509_free(old_inter);
    moat_ca_free(ca);
}

static void test_uuid(void** state) {
    (void)state;
    uint8_t u[16];
    char s[MOAT_UUID_STR_SIZE];
    struct moat_error err = {0};
    assert_int_equal(moat_uuid_parse("6E2C1A3B-9F00-4D1E-8A55-010203040506", u, &err), 0);
    moat_uuid_format(u, s);
    assert_string_equal(s, UUID_STR);
    assert_memory_equal(u, g_uuid, 16);
    assert_int_equal(moat_uuid_parse("urn:uuid:" UUID_STR, u, &err), 0);
    assert_int_equal(moat_uuid_parse("{" UUID_STR "}", u, &err), 0);
    assert_int_equal(moat_uuid_parse("6e2c1a3b9f004d1e8a55010203040506", u, &err), 0);
    assert_memory_equal(u, g_uuid, 16);
    assert_int_equal(moat_uuid_parse("6e2c1a3b", u, &err), -EINVAL);
    assert_string_equal(err.msg, "invalid UUID length: 8");
    assert_int_equal(moat_uuid_parse("6e2c1a3b_9f00-4d1e-8a55-010203040506", u, &err), -EINVAL);
    assert_string_equal(err.msg, "invalid UUID format");
    assert_int_equal(moat_uuid_parse("6e2c1a3b-9f00-4d1e-8a55-01020304050g", u, &err), -EINVAL);
}

static void test_subject_encoding(void** state) {
    (void)state;
    /* Go's order and string types: C, O (two values, one RDN), CN; PrintableString unless not
     * printable */
    const char* const c[]      = {"DE", NULL};
    const char* const o[]      = {"Edgeless", "Zürich AG", NULL};
    X509_NAME* name            = NULL;
    struct moat_error err      = {0};
    struct moat_x509_subject s = {.common_name = "a*b", .country = c, .organization = o};
    assert_int_equal(moat_x509_name_build(&s, &name, &err), 0);
    assert_int_equal(X509_NAME_entry_count(name), 4);
    const int nids[]  = {NID_countryName, NID_organizationName, NID_organizationName,
                         NID_commonName};
    const int sets[]  = {0, 1, 1, 2};
    const int types[] = {V_ASN1_PRINTABLESTRING, V_ASN1_PRINTABLESTRING, V_ASN1_UTF8STRING,
                         V_ASN1_PRINTABLESTRING};
    for (int i = 0; i < 4; i++) {
        const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
        assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)), nids[i]);
        assert_int_equal(X509_NAME_ENTRY_set(e), sets[i]);
        assert_int_equal(ASN1_STRING_type(X509_NAME_ENTRY_get_data(e)), types[i]);
    }
    X509_NAME_free(name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_certificates),
        cmocka_unit_test(test_marble_leaf),
        cmocka_unit_test(test_marble_leaf_without_csr),
        cmocka_unit_test(test_bad_csr),
        cmocka_unit_test(test_export_import),
        cmocka_unit_test(test_rotate_intermediate),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_subject_encoding),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
