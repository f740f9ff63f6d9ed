/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The simulated platform (sim.c): its PKI verifies with OpenSSL against its own root (and the
 * CRLs), its collateral signatures verify over the exact bytes of the inner JSON object, and
 * its quotes have the v3 layout with a valid quote signature, QE report signature and QE
 * report-data binding — checked here with OpenSSL directly, independently of moat's verifier,
 * and then by moat's verifier pieces (quote parser, PCK chain and extension, collateral, TCB
 * matching), which accept it against the simulated root and refuse it against Intel's.
 */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "collateral.h"
#include "pck.h"
#include "quote.h"
#include "sim.h"
#include "tcb.h"

static char g_dir[64];

static char* slurp(const char* name, size_t* len) {
    _cleanup_free_ char* path = path_join(g_dir, name);
    char* buf                 = NULL;
    struct moat_error err     = {0};
    assert_int_equal(read_file(path, &buf, len, &err), 0);
    return buf;
}

static STACK_OF(X509) * pem_certs(const char* name) {
    size_t len;
    _cleanup_free_ char* pem = slurp(name, &len);
    BIO* b                   = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509)* sk       = sk_X509_new_null();
    X509* x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        sk_X509_push(sk, x);
    BIO_free(b);
    return sk;
}

static X509_CRL* der_crl(const char* name) {
    size_t len;
    _cleanup_free_ char* der = slurp(name, &len);
    const unsigned char* p   = (const unsigned char*)der;
    return d2i_X509_CRL(NULL, &p, (long)len);
}

/* ECDSA-P256-SHA256 raw r||s over data, by a raw x||y public key or a certificate's key. */
static bool verify_raw(EVP_PKEY* key, const void* data, size_t len, const uint8_t sig[64]) {
    ECDSA_SIG* s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    unsigned char* der = NULL;
    int der_len        = i2d_ECDSA_SIG(s, &der);
    EVP_MD_CTX* md     = EVP_MD_CTX_new();
    bool ok            = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(md, der, (size_t)der_len, data, len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(s);
    return ok;
}

static EVP_PKEY* raw_pub(const uint8_t xy[64]) {
    uint8_t pt[65] = {0x04};
    memcpy(pt + 1, xy, 64);
    EVP_PKEY_CTX* ctx   = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY* key       = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("group", "prime256v1", 0),
        OSSL_PARAM_construct_octet_string("pub", pt, sizeof(pt)),
        OSSL_PARAM_construct_end(),
    };
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static int setup(void** state) {
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/moat-sim-test-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    struct moat_error err = {0};
    assert_int_equal(sim_create(g_dir, 30, false, &err), 0);
    return 0;
}

static int teardown(void** state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void test_files_and_refusal(void** state) {
    (void)state;
    struct stat st;
    _cleanup_free_ char* keys = path_join(g_dir, SIM_KEYS);
    assert_int_equal(stat(keys, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600); /* private keys: owner only */
    struct moat_error err = {0};
    assert_int_equal(sim_create(g_dir, 30, false, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "--force"));
}

static void test_chains_verify(void** state) {
    (void)state;
    STACK_OF(X509)* root  = pem_certs(SIM_ROOT_CERT);
    STACK_OF(X509)* chain = pem_certs(SIM_PCK_CHAIN);
    STACK_OF(X509)* tcb   = pem_certs(SIM_TCB_CHAIN);
    assert_int_equal(sk_X509_num(chain), 3);
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, sk_X509_value(root, 0));
    X509_CRL* crls[2] = {der_crl(SIM_ROOT_CRL), der_crl(SIM_PCK_CRL)};
    for (int i = 0; i < 2; i++) {
        assert_non_null(crls[i]);
        X509_STORE_add_crl(store, crls[i]); /* takes its own reference */
        X509_CRL_free(crls[i]);
    }
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, sk_X509_value(chain, 0), chain);
    assert_int_equal(X509_verify_cert(ctx), 1);
    X509_STORE_CTX_cleanup(ctx);
    X509_STORE_CTX_init(ctx, store, sk_X509_value(tcb, 0), tcb);
    assert_int_equal(X509_verify_cert(ctx), 1);
    /* the PCK leaf carries Intel's SGX extension, and says it is simulated */
    X509* leaf       = sk_X509_value(chain, 0);
    ASN1_OBJECT* oid = OBJ_txt2obj("1.2.840.113741.1.13.1", 1);
    assert_true(X509_get_ext_by_OBJ(leaf, oid, -1) >= 0);
    char cn[128];
    X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "moat SIMULATED SGX PCK Certificate");
    ASN1_OBJECT_free(oid);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_pop_free(root, X509_free);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(tcb, X509_free);
}

/* {"<key>":<inner>,"signature":"<hex>"}: the signature covers <inner> exactly. */
static void check_signed_json(const char* name, const char* key, X509* signer) {
    size_t len;
    _cleanup_free_ char* text  = slurp(name, &len);
    _cleanup_free_ char* start = xasprintf("{\"%s\":", key);
    assert_memory_equal(text, start, strlen(start));
    const char* inner = text + strlen(start);
    const char* end   = strstr(text, ",\"signature\":\"");
    assert_non_null(end);
    uint8_t sig[64];
    assert_int_equal(hex_decode(end + 14, 128, sig, sizeof(sig)), 64);
    EVP_PKEY* pub = X509_get0_pubkey(signer);
    assert_true(verify_raw(pub, inner, (size_t)(end - inner), sig));
    text[strlen(start) + 5] ^= 1; /* one changed byte of the inner object */
    assert_false(verify_raw(pub, inner, (size_t)(end - inner), sig));
}

static void test_collateral_signatures(void** state) {
    (void)state;
    STACK_OF(X509)* tcb = pem_certs(SIM_TCB_CHAIN);
    check_signed_json(SIM_TCB_INFO, "tcbInfo", sk_X509_value(tcb, 0));
    check_signed_json(SIM_QE_IDENTITY, "enclaveIdentity", sk_X509_value(tcb, 0));
    sk_X509_pop_free(tcb, X509_free);
}

static void test_quote(void** state) {
    (void)state;
    struct sim_platform* p = NULL;
    struct moat_error err  = {0};
    assert_int_equal(sim_load(g_dir, &p, &err), 0);
    struct sim_enclave e = {.isvprodid = 7, .isvsvn = 3, .debug = true};
    memset(e.mrenclave, 0xaa, 32);
    memset(e.mrsigner, 0xbb, 32);
    for (int i = 0; i < 64; i++)
        e.report_data[i] = (uint8_t)i;
    uint8_t* q = NULL;
    size_t len = 0;
    assert_int_equal(sim_quote(p, &e, &q, &len, &err), 0);
    uint32_t sig_len;
    memcpy(&sig_len, q + 432, 4);
    assert_int_equal(len, 436 + sig_len);
    assert_int_equal(q[0], 3);                         /* version */
    assert_memory_equal(q + 48 + 64, e.mrenclave, 32); /* MRENCLAVE */
    assert_memory_equal(q + 48 + 128, e.mrsigner, 32);
    assert_int_equal(q[48 + 256], 7);
    assert_int_equal(q[48 + 48] & 0x02, 0x02); /* DEBUG */
    assert_memory_equal(q + 48 + 320, e.report_data, 64);
    assert_memory_equal(q + 28, "MOAT SIMULATED", 14);
    /* quote signature by the attestation key over header + body */
    EVP_PKEY* att = raw_pub(q + 500);
    assert_true(verify_raw(att, q, 432, q + 436));
    /* QE report signature by the PCK leaf, and the binding of the attestation key */
    STACK_OF(X509)* chain = pem_certs(SIM_PCK_CHAIN);
    assert_true(verify_raw(X509_get0_pubkey(sk_X509_value(chain, 0)), q + 564, 384, q + 948));
    uint8_t want[32];
    uint8_t bound[96];
    memcpy(bound, q + 500, 64);
    memcpy(bound + 64, q + 1014, 32); /* QE auth data, 32 bytes */
    EVP_Digest(bound, sizeof(bound), want, NULL, EVP_sha256(), NULL);
    assert_memory_equal(q + 564 + 320, want, 32);
    assert_int_equal(q[1012], 32);
    assert_int_equal(q[1014 + 32], 5); /* certification data: PCK chain */
    /* a changed body byte breaks the quote signature */
    q[48 + 100] ^= 1;
    assert_false(verify_raw(att, q, 432, q + 436));
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(att);
    free(q);
    sim_free(p);
}

/* The same code that checks Intel's quotes and collateral accepts the simulated platform's
 * with its root as the trust anchor, finds its TCB level UpToDate, and refuses it against the
 * Intel SGX Root CA. */
static void test_moat_verifier_accepts_sim_against_sim_root_only(void** state) {
    (void)state;
    struct sim_platform* p = NULL;
    struct moat_error err  = {0};
    assert_int_equal(sim_load(g_dir, &p, &err), 0);
    struct sim_enclave e = {.isvprodid = 1, .isvsvn = 2};
    uint8_t* raw         = NULL;
    size_t len           = 0;
    assert_int_equal(sim_quote(p, &e, &raw, &len, &err), 0);
    struct quote q;
    assert_int_equal(quote_parse(raw, len, &q, &err), 0);
    assert_int_equal(q.version, 3);
    assert_non_null(q.pck_chain);

    _cleanup_cert_chain_ struct cert_chain* chain = NULL;
    assert_int_equal(cert_chain_parse_pem(q.pck_chain, q.pck_chain_len, &chain, &err), 0);
    struct pck_ext ext;
    assert_int_equal(pck_ext_parse(chain->certs[0], &ext, &err), 0);
    assert_int_equal(ext.fmspc[0], 0xff); /* the simulated FMSPC */
    assert_true(ext.has_platform_instance_id && ext.has_configuration);

    _cleanup_free_ char *ti = path_join(g_dir, SIM_TCB_INFO),
                        *qi = path_join(g_dir, SIM_QE_IDENTITY);
    _cleanup_free_ char *tc = path_join(g_dir, SIM_TCB_CHAIN), *rc = path_join(g_dir, SIM_ROOT_CRL);
    _cleanup_free_ char* pc                   = path_join(g_dir, SIM_PCK_CRL);
    struct collateral_pcs_files files         = {.tcb_info                 = ti,
                                                 .tcb_info_issuer_chain    = tc,
                                                 .qe_identity              = qi,
                                                 .qe_identity_issuer_chain = tc,
                                                 .root_ca_crl              = rc,
                                                 .pck_crl                  = pc};
    _cleanup_collateral_ struct collateral* c = NULL;
    assert_int_equal(collateral_load_pcs_files(&files, &c, &err), 0);
    size_t rlen;
    _cleanup_free_ char* root_pem = slurp(SIM_ROOT_CERT, &rlen);
    _cleanup_x509_ X509* root     = NULL;
    assert_int_equal(x509_parse(root_pem, rlen, &root, &err), 0);
    struct chain_verify_opts opts = {.anchor = root, .at = time(NULL)};
    struct collateral_verified v  = {0};
    assert_int_equal(collateral_verify(c, &opts, &v, &err), 0);
    struct chain_verify_result cr;
    assert_int_equal(collateral_verify_pck(c, chain, &opts, &cr, &err), 0);
    assert_true(cr.crl_checked);
    assert_int_equal(
        ecdsa_p256_verify_raw(chain->certs[0], q.qe_report_raw, 384, q.qe_report_signature, &err),
        0);

    struct qe_report_fields qf = {.isvprodid = q.qe_report.isv_prod_id,
                                  .isvsvn    = q.qe_report.isv_svn};
    memcpy(qf.miscselect, q.qe_report.misc_select, 4);
    memcpy(qf.attributes, q.qe_report.attributes, 16);
    memcpy(qf.mrsigner, q.qe_report.mr_signer, 32);
    enum tcb_status qs;
    const struct isv_level* ql = NULL;
    assert_int_equal(qe_identity_match(v.qe_identity, "QE", &qf, &qs, &ql, &err), 0);
    struct tcb_platform plat = {.quote_version = 3, .pcesvn = ext.pcesvn};
    memcpy(plat.fmspc, ext.fmspc, 6);
    memcpy(plat.pceid, ext.pceid, 2);
    memcpy(plat.sgx_svn, ext.tcb_comp_svn, 16);
    struct tcb_verdict verdict = {0};
    assert_int_equal(tcb_evaluate(v.tcb_info, &plat, qs, ql, &verdict, &err), 0);
    assert_string_equal(tcb_status_name(verdict.status), "UpToDate");
    tcb_verdict_clear(&verdict);
    collateral_verified_clear(&v);

    /* against the Intel SGX Root CA (the default anchor): refused */
    struct chain_verify_opts intel = {.at = time(NULL)};
    assert_int_not_equal(collateral_verify_pck(c, chain, &intel, &cr, &err), 0);
    assert_int_not_equal(collateral_verify(c, &intel, &v, &err), 0);
    collateral_verified_clear(&v);
    free(raw);
    sim_free(p);
}

static void test_load_errors(void** state) {
    (void)state;
    struct sim_platform* p = NULL;
    struct moat_error err  = {0};
    assert_int_equal(sim_load("/nonexistent/moat-sim", &p, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "moat attest init"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_and_refusal),
        cmocka_unit_test(test_chains_verify),
        cmocka_unit_test(test_collateral_signatures),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_moat_verifier_accepts_sim_against_sim_root_only),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
