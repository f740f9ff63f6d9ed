/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for PCK certificates, chains/CRLs, DCAP collateral and TCB level matching
 * (reference/attestation.md §2.1-2.5) on the real vectors of testdata/attestation
 * (README.md, EXPECTED.json). The quote fields matching needs are read at the fixed offsets of
 * reference §1.2-1.5, independently of src/attest/quote.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/pem.h>

#include "collateral.h"
#include "pck.h"
#include "tcb.h"

/* One vector of testdata/attestation/README.md. */
struct vector {
    const char* name;       /* key in EXPECTED.json */
    const char* pck_pem[2]; /* PEM chain files when the quote has no type-5 data */
    const char* qvl;        /* dcap-qvl collateral JSON */
    bool pcs;               /* PCS files (below) */
    struct collateral_pcs_files files;
    const char* anchor; /* trust anchor file; NULL: the Intel SGX Root CA */
};

#define GOTDX "tdx/go-tdx-guest/"
#define SYN   "sgx/intel_qvl_synthetic/"

static const struct vector g_vectors[] = {
    {.name = "phala_sgx_v3", .qvl = "sgx/phala/sgx_quote_collateral.json"},
    {.name = "phala_tdx_v4", .qvl = "tdx/phala/tdx_quote_v4_collateral.json"},
    {.name = "phala_tdx_v5_outdated", .qvl = "tdx/phala/tdx_quote_v5_outdated_collateral.json"},
    {.name = "gotdx_tdx_v5_sample_with_phala_v5_collateral",
     .qvl  = "tdx/phala/tdx_quote_v5_outdated_collateral.json"},
    {.name  = "gotdx_tdx_v4_spr_e4",
     .pcs   = true,
     .files = {.tcb_info                 = GOTDX "tcbinfo_50806f000000.json",
               .tcb_info_issuer_chain    = GOTDX "tcb_info_issuer_chain.pem",
               .qe_identity              = GOTDX "qe_identity_td_qe.json",
               .qe_identity_issuer_chain = GOTDX "qe_identity_issuer_chain.pem",
               .root_ca_crl              = GOTDX "rootcrl.der",
               .pck_crl                  = GOTDX "pckcrl_platform.der",
               .pck_crl_issuer_chain     = GOTDX "pck_crl_issuer_chain.pem"}},
    {.name = "gotdx_tdx_v4_cos113"},
    {.name = "ita_kbs_example_sgx_v3"},
    {.name    = "intel_qvl_synthetic_sgx_v3",
     .pck_pem = {SYN "pckCert.pem", SYN "pckSignChain.pem"},
     .pcs     = true,
     .files   = {.tcb_info                 = SYN "tcbInfo.json",
                 .tcb_info_issuer_chain    = SYN "tcbSignChain.pem",
                 .qe_identity              = SYN "qeIdentity.json",
                 .qe_identity_issuer_chain = SYN "tcbSignChain.pem",
                 .root_ca_crl              = SYN "rootCaCrl.der",
                 .pck_crl                  = SYN "intermediateCaCrl.der",
                 .pck_crl_issuer_chain     = SYN "pckSignChain.pem"},
     .anchor  = SYN "trustedRootCaCert.pem"},
};

static json_t* g_expected;

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static char* data_path(const char* rel) {
    const char* root = getenv("MOAT_TESTDATA");
    return xasprintf("%s/attestation/%s", root ? root : "../shared/testdata", rel);
}

static bool data_exists(const char* rel) {
    _cleanup_free_ char* p = data_path(rel);
    return access(p, R_OK) == 0;
}

static uint8_t* load(const char* rel, size_t* ret_len) {
    _cleanup_free_ char* p = data_path(rel);
    char* buf              = NULL;
    struct moat_error err  = {0};
    if (read_file(p, &buf, ret_len, &err) < 0)
        fail_msg("%s", err.msg);
    return (uint8_t*)buf;
}

static json_t* expected(const char* name) {
    json_t* v = json_object_get(g_expected, name);
    if (!v)
        fail_msg("EXPECTED.json has no vector '%s'", name);
    return v;
}

static const char* exp_str(json_t* obj, const char* key) {
    json_t* v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("EXPECTED.json: '%s' is not a string", key);
    return json_string_value(v);
}

static void assert_hex(const uint8_t* bytes, size_t n, const char* hex) {
    _cleanup_free_ char* got = hex_encode_alloc(bytes, n);
    if (strcasecmp(got, hex) != 0)
        fail_msg("got %s, expected %s", got, hex);
}

static time_t at(const char* iso) {
    time_t t;
    assert_int_equal(iso8601_parse(iso, &t), 0);
    return t;
}

static uint16_t le16(const uint8_t* p) {
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t le32(const uint8_t* p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Fixed offsets of reference §1.3-1.5 (32-byte QE auth data is not assumed). */
struct quote_view {
    int version;
    bool is_tdx;
    size_t body;      /* report body offset */
    size_t body_type; /* 1 SGX, 2 TD 1.0, 3 TD 1.5 */
    size_t qe_report; /* offset of the QE report body */
    const uint8_t* pem;
    size_t pem_len;
};

static void quote_view(const uint8_t* q, size_t len, struct quote_view* v) {
    assert_true(len >= 1020);
    v->version = le16(q);
    v->is_tdx  = le32(q + 4) == 0x81;
    size_t sig;
    if (v->version == 3) {
        v->body = 48, v->body_type = 1, v->qe_report = 564;
        size_t n = le16(q + 1012);
        assert_true(1020 + n <= len);
        v->pem_len = le32(q + 1016 + n);
        if (le16(q + 1014 + n) != 5) { /* e.g. the synthetic vector's type 1 (PPID) */
            v->pem_len = 0;
            return;
        }
        v->pem = q + 1020 + n;
        assert_true(1020 + n + v->pem_len <= len);
        return;
    }
    if (v->version == 4) {
        v->body = 48, v->body_type = 2, sig = 636;
    } else {
        assert_int_equal(v->version, 5);
        v->body = 54, v->body_type = le16(q + 48), sig = 58 + le32(q + 50);
    }
    assert_true(sig + 590 <= len);
    assert_int_equal(le16(q + sig + 128), 6); /* QE report certification data */
    v->qe_report = sig + 134;
    size_t n     = le16(q + sig + 582);
    assert_true(sig + 590 + n <= len);
    assert_int_equal(le16(q + sig + 584 + n), 5); /* PCK chain */
    v->pem_len = le32(q + sig + 586 + n);
    v->pem     = q + sig + 590 + n;
    assert_true(sig + 590 + n + v->pem_len <= len);
}

/* The PCK chain of a vector: from the quote, or the out-of-band PEM files. */
static struct cert_chain* vector_chain(const struct vector* vec, uint8_t* quote, size_t qlen) {
    struct moat_error err    = {0};
    struct cert_chain* chain = NULL;
    if (vec->pck_pem[0]) {
        size_t l1, l2;
        _cleanup_free_ uint8_t* a = load(vec->pck_pem[0], &l1);
        _cleanup_free_ uint8_t* b = load(vec->pck_pem[1], &l2);
        _cleanup_free_ char* both = xasprintf("%s\n%s", (char*)a, (char*)b);
        if (cert_chain_parse_pem(both, strlen(both), &chain, &err) < 0)
            fail_msg("%s: %s", vec->name, err.msg);
        return chain;
    }
    struct quote_view v;
    quote_view(quote, qlen, &v);
    if (cert_chain_parse_pem(v.pem, v.pem_len, &chain, &err) < 0)
        fail_msg("%s: %s", vec->name, err.msg);
    return chain;
}

static X509* vector_anchor(const struct vector* vec) {
    struct moat_error err = {0};
    X509* cert            = NULL;
    if (!vec->anchor) {
        assert_int_equal(pck_intel_root_ca(&cert, &err), 0);
        return cert;
    }
    size_t len;
    _cleanup_free_ uint8_t* pem = load(vec->anchor, &len);
    if (x509_parse(pem, len, &cert, &err) < 0)
        fail_msg("%s", err.msg);
    return cert;
}

static struct collateral* vector_collateral(const struct vector* vec) {
    struct moat_error err = {0};
    struct collateral* c  = NULL;
    if (vec->qvl) {
        _cleanup_free_ char* p = data_path(vec->qvl);
        if (collateral_load_qvl_json(p, &c, &err) < 0)
            fail_msg("%s: %s", vec->name, err.msg);
        return c;
    }
    struct collateral_pcs_files f = vec->files;
    const char** fields[]         = {&f.tcb_info,
                                     &f.tcb_info_issuer_chain,
                                     &f.qe_identity,
                                     &f.qe_identity_issuer_chain,
                                     &f.root_ca_crl,
                                     &f.pck_crl,
                                     &f.pck_crl_issuer_chain};
    char* owned[ARRAY_SIZE(fields)];
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        *fields[i] = owned[i] = data_path(*fields[i]);
    int r = collateral_load_pcs_files(&f, &c, &err);
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        free(owned[i]);
    if (r < 0)
        fail_msg("%s: %s", vec->name, err.msg);
    return c;
}

/* Skips (prints why) a vector whose files are not in the testdata folder. */
static bool vector_present(const struct vector* vec) {
    const char* file   = exp_str(expected(vec->name), "file");
    const char* need[] = {file,
                          vec->qvl,
                          vec->pck_pem[0],
                          vec->pck_pem[1],
                          vec->anchor,
                          vec->pcs ? vec->files.tcb_info : NULL,
                          vec->pcs ? vec->files.qe_identity : NULL,
                          vec->pcs ? vec->files.root_ca_crl : NULL,
                          vec->pcs ? vec->files.pck_crl : NULL,
                          vec->pcs ? vec->files.tcb_info_issuer_chain : NULL};
    for (size_t i = 0; i < ARRAY_SIZE(need); i++)
        if (need[i] && !data_exists(need[i])) {
            print_message("skip %s: %s is missing from testdata/attestation\n", vec->name, need[i]);
            return false;
        }
    return true;
}

static bool has_collateral(const struct vector* vec) {
    return vec->qvl || vec->pcs;
}

/* ---------------------------------------------------------------------------------------- */
/* PCK certificate extension (§2.3) against EXPECTED.json                                    */

static void check_ext(const struct vector* vec, X509* leaf) {
    json_t* pck           = json_object_get(expected(vec->name), "pck");
    struct pck_ext ext    = {0};
    struct moat_error err = {0};
    if (pck_ext_parse(leaf, &ext, &err) < 0)
        fail_msg("%s: %s", vec->name, err.msg);
    assert_hex(ext.fmspc, 6, exp_str(pck, "fmspc"));
    assert_hex(ext.pceid, 2, exp_str(pck, "pceid"));
    assert_hex(ext.ppid, 16, exp_str(pck, "ppid"));
    assert_hex(ext.cpusvn, 16, exp_str(pck, "cpusvn"));
    assert_int_equal(ext.pcesvn, json_integer_value(json_object_get(pck, "pcesvn")));
    assert_int_equal(ext.sgx_type, json_integer_value(json_object_get(pck, "sgx_type")));
    json_t* svns = json_object_get(pck, "sgx_tcb_comp_svns");
    assert_int_equal(json_array_size(svns), 16);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(ext.tcb_comp_svn[i], json_integer_value(json_array_get(svns, i)));
    /* Platform-CA certificates carry PlatformInstanceID and Configuration (§2.3) */
    bool platform = strstr(exp_str(pck, "issuer_cn"), "Platform") != NULL;
    assert_int_equal(ext.has_platform_instance_id, platform);
    assert_int_equal(ext.has_configuration, platform);
    /* serial and issuer CN tie the parsed leaf to EXPECTED.json */
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    char* hex  = BN_bn2hex(bn);
    assert_true(strcasecmp(hex, exp_str(pck, "serial")) == 0);
    OPENSSL_free(hex);
    BN_free(bn);
    char cn[128];
    X509_NAME_get_text_by_NID(X509_get_issuer_name(leaf), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, exp_str(pck, "issuer_cn"));
}

static void test_pck_extension(void** state) {
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(g_vectors); i++) {
        const struct vector* vec = &g_vectors[i];
        if (!vector_present(vec))
            continue;
        size_t qlen;
        _cleanup_free_ uint8_t* q = load(exp_str(expected(vec->name), "file"), &qlen);
        _cleanup_cert_chain_ struct cert_chain* chain = vector_chain(vec, q, qlen);
        assert_int_equal(chain->n, 3);
        check_ext(vec, chain->certs[0]);
        print_message("pck ext %s: ok\n", vec->name);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Chains and CRLs (§2.2 steps 1-2)                                                           */

static void test_chain_verify(void** state) {
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(g_vectors); i++) {
        const struct vector* vec = &g_vectors[i];
        if (!vector_present(vec))
            continue;
        json_t* e = expected(vec->name);
        size_t qlen;
        _cleanup_free_ uint8_t* q                     = load(exp_str(e, "file"), &qlen);
        _cleanup_cert_chain_ struct cert_chain* chain = vector_chain(vec, q, qlen);
        _cleanup_x509_ X509* anchor                   = vector_anchor(vec);
        json_t* fv                                    = json_object_get(e, "full_verification");
        struct chain_verify_opts opts                 = {.anchor = anchor};
        struct chain_verify_result res;
        struct moat_error err = {0};
        int r;
        if (has_collateral(vec)) {
            opts.at                                   = at(exp_str(fv, "verify_at"));
            _cleanup_collateral_ struct collateral* c = vector_collateral(vec);
            r = collateral_verify_pck(c, chain, &opts, &res, &err);
            assert_true(res.crl_checked || r < 0);
        } else { /* no collateral: signatures and validity only, inside the leaf's validity */
            opts.at               = at("2025-06-20T00:00:00Z");
            opts.insecure__no_crl = true;
            r                     = pck_chain_verify(chain, NULL, NULL, &opts, &res, &err);
        }
        if (r < 0)
            fail_msg("%s: %s", vec->name, err.msg);
        assert_false(res.stale_crl);
        print_message("chain %s: ok\n", vec->name);
        /* without opting out, a missing CRL is an error, not a skipped check */
        opts.insecure__no_crl = false;
        assert_int_equal(pck_chain_verify(chain, NULL, NULL, &opts, &res, &err), -EINVAL);
    }
}

static const struct vector* vector_named(const char* name) {
    for (size_t i = 0; i < ARRAY_SIZE(g_vectors); i++)
        if (strcmp(g_vectors[i].name, name) == 0)
            return vector_present(&g_vectors[i]) ? &g_vectors[i] : NULL;
    return NULL;
}

/* The synthetic vector's PKI copies Intel's names but not its key: Intel's root must reject
 * it (§1.8, README "must FAIL against the Intel production root"). */
static void test_synthetic_untrusted(void** state) {
    (void)state;
    const struct vector* vec = vector_named("intel_qvl_synthetic_sgx_v3");
    if (!vec)
        skip();
    _cleanup_cert_chain_ struct cert_chain* chain = vector_chain(vec, NULL, 0);
    _cleanup_collateral_ struct collateral* c     = vector_collateral(vec);
    struct chain_verify_opts opts                 = {.at = at("2020-01-01T00:00:00Z")};
    struct chain_verify_result res;
    struct collateral_verified cv;
    struct moat_error err = {0};
    assert_int_equal(collateral_verify_pck(c, chain, &opts, &res, &err), -EKEYREJECTED);
    assert_non_null(strstr(err.msg, "trust anchor"));
    assert_int_equal(collateral_verify(c, &opts, &cv, &err), -EKEYREJECTED);
    /* and a real chain does not verify against the synthetic root */
    const struct vector* real = vector_named("phala_sgx_v3");
    if (!real)
        return;
    size_t qlen;
    _cleanup_free_ uint8_t* q = load(exp_str(expected(real->name), "file"), &qlen);
    _cleanup_cert_chain_ struct cert_chain* rchain = vector_chain(real, q, qlen);
    _cleanup_x509_ X509* syn_root                  = vector_anchor(vec);
    struct chain_verify_opts o2                    = {
                           .anchor = syn_root, .at = at("2025-06-20T00:00:00Z"), .insecure__no_crl = true};
    assert_int_equal(pck_chain_verify(rchain, NULL, NULL, &o2, &res, &err), -EKEYREJECTED);
}

/* Past the PCK CRL's nextUpdate (2025-07-19) the phala SGX chain fails, unless stale CRLs are
 * tolerated, which is then reported (reference §2.6, §3). */
static void test_stale_crl(void** state) {
    (void)state;
    const struct vector* vec = vector_named("phala_sgx_v3");
    if (!vec)
        skip();
    size_t qlen;
    _cleanup_free_ uint8_t* q = load(exp_str(expected(vec->name), "file"), &qlen);
    _cleanup_cert_chain_ struct cert_chain* chain = vector_chain(vec, q, qlen);
    _cleanup_collateral_ struct collateral* c     = vector_collateral(vec);
    struct chain_verify_opts opts                 = {.at = at("2025-07-25T00:00:00Z")};
    struct chain_verify_result res                = {0};
    struct moat_error err                         = {0};
    assert_int_equal(collateral_verify_pck(c, chain, &opts, &res, &err), -EKEYEXPIRED);
    assert_non_null(strstr(err.msg, "CRL has expired"));
    opts.allow_stale_crl = true;
    if (collateral_verify_pck(c, chain, &opts, &res, &err) < 0)
        fail_msg("%s", err.msg);
    assert_true(res.stale_crl);
    /* a CRL not yet issued is never tolerated */
    opts.at = at("2025-06-01T00:00:00Z");
    assert_int_equal(collateral_verify_pck(c, chain, &opts, &res, &err), -EKEYEXPIRED);
    /* the TCB info expires on 2025-07-19 as well: collateral_verify fails even when tolerant */
    struct collateral_verified cv;
    opts.at = at("2025-07-25T00:00:00Z");
    assert_int_equal(collateral_verify(c, &opts, &cv, &err), -EKEYEXPIRED);
}

/* A PCK CRL of the other CA (Platform instead of Processor) is rejected by issuer (4.1.2.4.6). */
static void test_wrong_crl(void** state) {
    (void)state;
    const struct vector* sgx = vector_named("phala_sgx_v3");
    const struct vector* tdx = vector_named("phala_tdx_v4");
    if (!sgx || !tdx)
        skip();
    size_t qlen;
    _cleanup_free_ uint8_t* q = load(exp_str(expected(sgx->name), "file"), &qlen);
    _cleanup_cert_chain_ struct cert_chain* chain = vector_chain(sgx, q, qlen);
    _cleanup_collateral_ struct collateral* cs    = vector_collateral(sgx);
    _cleanup_collateral_ struct collateral* ct    = vector_collateral(tdx);
    struct chain_verify_opts opts                 = {.at = at("2025-06-20T00:00:00Z")};
    struct chain_verify_result res;
    struct moat_error err = {0};
    assert_int_equal(pck_chain_verify(chain, cs->root_ca_crl, ct->pck_crl, &opts, &res, &err),
                     -EKEYREJECTED);
    /* CRLs with the right issuer names but signed by the synthetic PKI's keys */
    const struct vector* syn = vector_named("intel_qvl_synthetic_sgx_v3");
    if (syn) { /* OpenSSL finds no CRL in scope (AKI) or a bad CRL signature */
        _cleanup_collateral_ struct collateral* cy = vector_collateral(syn);
        assert_int_equal(pck_chain_verify(chain, cy->root_ca_crl, cs->pck_crl, &opts, &res, &err),
                         -EKEYREJECTED);
        assert_non_null(strstr(err.msg, "CRL"));
        assert_int_equal(pck_chain_verify(chain, cs->root_ca_crl, cy->pck_crl, &opts, &res, &err),
                         -EKEYREJECTED);
        assert_non_null(strstr(err.msg, "CRL"));
    }
    /* and a reordered, NUL-terminated, root-first bundle still builds the same path */
    struct quote_view v;
    quote_view(q, qlen, &v);
    assert_true(v.pem_len > 0);
    _cleanup_cert_chain_ struct cert_chain* again = NULL;
    char* pem                                     = NULL;
    BIO* bio                                      = BIO_new(BIO_s_mem());
    for (size_t i = chain->n; i-- > 0;)
        assert_int_equal(PEM_write_bio_X509(bio, chain->certs[i]), 1);
    BIO_write(bio, "\0\0", 2);
    long n = BIO_get_mem_data(bio, &pem);
    assert_int_equal(cert_chain_parse_pem(pem, (size_t)n, &again, &err), 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(X509_cmp(again->certs[i], chain->certs[i]), 0);
    /* garbage between certificates, and a chain missing its intermediate */
    assert_int_equal(cert_chain_parse_pem("junk", 4, &again, &err), -EBADMSG);
    BIO_free(bio);
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(bio, chain->certs[0]), 1);
    assert_int_equal(PEM_write_bio_X509(bio, chain->certs[2]), 1);
    n                         = BIO_get_mem_data(bio, &pem);
    struct cert_chain* broken = NULL;
    assert_int_equal(cert_chain_parse_pem(pem, (size_t)n, &broken, &err), -EBADMSG);
    BIO_free(bio);
}

/* ---------------------------------------------------------------------------------------- */
/* Collateral signatures and dates (§2.2 steps 3 and 7, §2.5)                                 */

static void test_collateral_verify(void** state) {
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(g_vectors); i++) {
        const struct vector* vec = &g_vectors[i];
        if (!has_collateral(vec) || !vector_present(vec))
            continue;
        json_t* fv = json_object_get(expected(vec->name), "full_verification");
        _cleanup_collateral_ struct collateral* c = vector_collateral(vec);
        _cleanup_x509_ X509* anchor               = vector_anchor(vec);
        struct chain_verify_opts opts = {.anchor = anchor, .at = at(exp_str(fv, "verify_at"))};
        struct collateral_verified cv;
        struct moat_error err = {0};
        if (collateral_verify(c, &opts, &cv, &err) < 0)
            fail_msg("%s: %s", vec->name, err.msg);
        assert_false(cv.stale_crl);
        assert_true(cv.earliest_expiry > opts.at);
        assert_int_equal(cv.tcb_info->version,
                         json_integer_value(json_object_get(fv, "tcbinfo_version")));
        assert_int_equal(cv.tcb_info->tcb_evaluation_data_number,
                         json_integer_value(json_object_get(fv, "tcb_eval")));
        json_t* id = json_object_get(fv, "tcbinfo_id");
        if (json_is_string(id))
            assert_int_equal(cv.tcb_info->id, strcmp(json_string_value(id), "TDX") == 0
                                                  ? TCB_INFO_TDX
                                                  : TCB_INFO_SGX);
        collateral_verified_clear(&cv);

        /* one flipped hex digit inside the signed tcbInfo text breaks the signature */
        char* hexpos = strstr(c->tcb_info, "\"fmspc\":\"");
        assert_non_null(hexpos);
        hexpos += 9;
        char old = *hexpos;
        *hexpos  = old == '0' ? '1' : '0';
        assert_int_equal(collateral_verify(c, &opts, &cv, &err), -EKEYREJECTED);
        assert_non_null(strstr(err.msg, "TCB info signature"));
        *hexpos = old;
        c->qe_identity_signature[5] ^= 1;
        assert_int_equal(collateral_verify(c, &opts, &cv, &err), -EKEYREJECTED);
        assert_non_null(strstr(err.msg, "QE identity signature"));
        c->qe_identity_signature[5] ^= 1;
        /* before issueDate */
        opts.at = at("2019-01-01T00:00:00Z");
        assert_int_equal(collateral_verify(c, &opts, &cv, &err), -EKEYEXPIRED);
        print_message("collateral %s: ok\n", vec->name);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* TCB level matching against the expected verdicts (§2.2 steps 7, 9-11)                      */

static void platform_from(const uint8_t* q, const struct quote_view* v, const struct pck_ext* e,
                          struct tcb_platform* p) {
    *p               = (struct tcb_platform){0};
    p->is_tdx        = v->is_tdx;
    p->quote_version = v->version;
    memcpy(p->fmspc, e->fmspc, 6);
    memcpy(p->pceid, e->pceid, 2);
    memcpy(p->sgx_svn, e->tcb_comp_svn, 16);
    p->pcesvn = e->pcesvn;
    if (!v->is_tdx)
        return;
    memcpy(p->tee_tcb_svn, q + v->body, 16); /* TD report rel 0 */
    memcpy(p->mr_signer_seam, q + v->body + 64, 48);
    memcpy(p->seam_attributes, q + v->body + 112, 8);
    if (v->body_type == 3) { /* TD report 1.5: tee_tcb_svn2 at rel 584 */
        p->has_tee_tcb_svn2 = true;
        memcpy(p->tee_tcb_svn2, q + v->body + 584, 16);
    }
}

static void qe_fields_from(const uint8_t* qe, struct qe_report_fields* f) {
    memcpy(f->miscselect, qe + 16, 4); /* §1.2 */
    memcpy(f->attributes, qe + 48, 16);
    memcpy(f->mrsigner, qe + 128, 32);
    f->isvprodid = le16(qe + 256);
    f->isvsvn    = le16(qe + 258);
}

static void check_level(const char* what, const struct tcb_level* got, json_t* want) {
    if (!json_is_array(want)) {
        if (got)
            fail_msg("%s: matched %s, expected none", what, tcb_status_name(got->status));
        return;
    }
    if (!got)
        fail_msg("%s: no level matched", what);
    assert_string_equal(tcb_status_name(got->status), json_string_value(json_array_get(want, 0)));
    json_t* adv = json_array_get(want, 1);
    assert_int_equal(got->advisories.n, json_array_size(adv));
    for (size_t i = 0; i < got->advisories.n; i++)
        assert_string_equal(got->advisories.ids[i], json_string_value(json_array_get(adv, i)));
    assert_string_equal(got->tcb_date, json_string_value(json_array_get(want, 2)));
}

static void evaluate_vector(const struct vector* vec, struct tcb_verdict* ret) {
    json_t* fv = json_object_get(expected(vec->name), "full_verification");
    size_t qlen;
    _cleanup_free_ uint8_t* q = load(exp_str(expected(vec->name), "file"), &qlen);
    struct quote_view v;
    quote_view(q, qlen, &v);
    _cleanup_cert_chain_ struct cert_chain* chain = vector_chain(vec, q, qlen);
    _cleanup_collateral_ struct collateral* c     = vector_collateral(vec);
    _cleanup_x509_ X509* anchor                   = vector_anchor(vec);
    struct chain_verify_opts opts = {.anchor = anchor, .at = at(exp_str(fv, "verify_at"))};
    struct collateral_verified cv;
    struct pck_ext ext;
    struct moat_error err = {0};
    if (collateral_verify(c, &opts, &cv, &err) < 0 || pck_ext_parse(chain->certs[0], &ext, &err))
        fail_msg("%s: %s", vec->name, err.msg);
    struct qe_report_fields qf;
    qe_fields_from(q + v.qe_report, &qf);
    enum tcb_status qs;
    const struct isv_level* ql;
    if (qe_identity_match(cv.qe_identity, v.is_tdx ? "TD_QE" : "QE", &qf, &qs, &ql, &err) < 0)
        fail_msg("%s: %s", vec->name, err.msg);
    assert_string_equal(tcb_status_name(qs), exp_str(fv, "qe_tcb_status"));
    struct tcb_platform p;
    platform_from(q, &v, &ext, &p);
    if (tcb_evaluate(cv.tcb_info, &p, qs, ql, ret, &err) < 0)
        fail_msg("%s: %s", vec->name, err.msg);
    check_level("sgx level", ret->sgx_level, json_object_get(fv, "sgx_level"));
    check_level("tdx level", ret->tdx_level, json_object_get(fv, "tdx_level"));
    json_t* ms = json_object_get(fv, "tdx_module_status");
    if (json_is_string(ms) && ret->tdx_level)
        assert_string_equal(tcb_status_name(ret->module_status), json_string_value(ms));
    assert_string_equal(tcb_status_name(ret->status), exp_str(fv, "final_status"));
    /* the verdict borrows from the models: copy what the caller compares, then free them */
    print_message("tcb %s: %s (%zu advisories)\n", vec->name, tcb_status_name(ret->status),
                  ret->n_advisories);
    for (size_t i = 0; i < ret->n_advisories; i++)
        ret->advisories[i] = xstrdup(ret->advisories[i]);
    ret->sgx_level = ret->tdx_level = NULL;
    ret->module_level               = NULL;
    ret->tcb_date                   = NULL;
    collateral_verified_clear(&cv);
}

static void free_verdict(struct tcb_verdict* v) {
    for (size_t i = 0; i < v->n_advisories; i++)
        free((char*)v->advisories[i]);
    tcb_verdict_clear(v);
}

static void test_tcb_match(void** state) {
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(g_vectors); i++) {
        const struct vector* vec = &g_vectors[i];
        if (!has_collateral(vec) || !vector_present(vec))
            continue;
        struct tcb_verdict v = {0};
        evaluate_vector(vec, &v);
        if (strcmp(vec->name, "phala_sgx_v3") == 0) { /* README: the two advisories */
            assert_int_equal(v.n_advisories, 2);
            assert_string_equal(v.advisories[0], "INTEL-SA-00289");
            assert_string_equal(v.advisories[1], "INTEL-SA-00615");
        }
        free_verdict(&v);
    }
}

/* A quote whose FMSPC differs from the TCB info's is a TCB_INFO_MISMATCH, and an SGX quote
 * against TDX TCB info too (4.1.2.4.9-10). */
static void test_tcb_mismatch(void** state) {
    (void)state;
    const struct vector* vec = vector_named("phala_tdx_v4");
    if (!vec)
        skip();
    _cleanup_collateral_ struct collateral* c       = vector_collateral(vec);
    struct tcb_info* info _cleanup_(tcb_info_freep) = NULL;
    struct moat_error err                           = {0};
    assert_int_equal(tcb_info_parse(c->tcb_info, c->tcb_info_len, &info, &err), 0);
    struct tcb_platform p = {.is_tdx = true, .quote_version = 4};
    memcpy(p.fmspc, info->fmspc, 6);
    memset(p.sgx_svn, 255, 16);
    p.pcesvn = 65535;
    memset(p.tee_tcb_svn, 255, 16);
    p.tee_tcb_svn[1] = 0; /* use tdxModule: mrsigner zero, attributes zero */
    struct tcb_verdict v;
    assert_int_equal(tcb_evaluate(info, &p, TCB_UP_TO_DATE, NULL, &v, &err), 0);
    assert_int_equal(v.status, TCB_UP_TO_DATE);
    tcb_verdict_clear(&v);
    assert_int_equal(tcb_evaluate(info, &p, TCB_OUT_OF_DATE, NULL, &v, &err), 0);
    assert_int_equal(v.status, TCB_OUT_OF_DATE);
    tcb_verdict_clear(&v);
    p.mr_signer_seam[0] = 1;
    assert_int_equal(tcb_evaluate(info, &p, TCB_UP_TO_DATE, NULL, &v, &err), -EKEYREJECTED);
    assert_non_null(strstr(err.msg, "TDX_MODULE_MISMATCH"));
    p.mr_signer_seam[0] = 0;
    p.tee_tcb_svn[1]    = 0x7f; /* no TDX_7F identity */
    assert_int_equal(tcb_evaluate(info, &p, TCB_UP_TO_DATE, NULL, &v, &err), -EKEYREJECTED);
    p.tee_tcb_svn[1] = 0;
    p.fmspc[0] ^= 1;
    assert_int_equal(tcb_evaluate(info, &p, TCB_UP_TO_DATE, NULL, &v, &err), -EKEYREJECTED);
    assert_non_null(strstr(err.msg, "TCB_INFO_MISMATCH"));
    p.fmspc[0] ^= 1;
    p.is_tdx = false;
    assert_int_equal(tcb_evaluate(info, &p, TCB_UP_TO_DATE, NULL, &v, &err), -EKEYREJECTED);
    /* the lowest possible platform meets no level */
    p = (struct tcb_platform){.is_tdx = true, .quote_version = 4};
    memcpy(p.fmspc, info->fmspc, 6);
    assert_int_equal(tcb_evaluate(info, &p, TCB_UP_TO_DATE, NULL, &v, &err), 0);
    assert_int_equal(v.status, TCB_NOT_SUPPORTED);
    assert_null(v.sgx_level);
    tcb_verdict_clear(&v);
}

/* QVL's convergence tables (TcbLevelCheck.cpp, TdxModuleCheck.cpp; §2.2 step 10). */
static void test_converge(void** state) {
    (void)state;
    static const struct {
        enum tcb_status level, other, want;
    } cases[] = {
        {TCB_UP_TO_DATE, TCB_UP_TO_DATE, TCB_UP_TO_DATE},
        {TCB_UP_TO_DATE, TCB_OUT_OF_DATE, TCB_OUT_OF_DATE},
        {TCB_SW_HARDENING_NEEDED, TCB_OUT_OF_DATE, TCB_OUT_OF_DATE},
        {TCB_CONFIGURATION_NEEDED, TCB_OUT_OF_DATE, TCB_OUT_OF_DATE_CONFIGURATION_NEEDED},
        {TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED, TCB_OUT_OF_DATE,
         TCB_OUT_OF_DATE_CONFIGURATION_NEEDED},
        {TCB_OUT_OF_DATE, TCB_OUT_OF_DATE, TCB_OUT_OF_DATE},
        {TCB_CONFIGURATION_NEEDED, TCB_REVOKED, TCB_REVOKED},
        {TCB_UP_TO_DATE, TCB_NOT_SUPPORTED, TCB_NOT_SUPPORTED},
        {TCB_SW_HARDENING_NEEDED, TCB_UP_TO_DATE, TCB_SW_HARDENING_NEEDED},
        {TCB_REVOKED, TCB_UP_TO_DATE, TCB_REVOKED},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        assert_int_equal(tcb_converge(cases[i].level, cases[i].other), cases[i].want);
    assert_string_equal(tcb_status_name(TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED),
                        "ConfigurationAndSWHardeningNeeded");
    assert_string_equal(tcb_status_name(TCB_NOT_SUPPORTED), "TcbNotSupported");
    enum tcb_status s;
    assert_int_equal(tcb_status_parse("OutOfDateConfigurationNeeded", &s), 0);
    assert_int_equal(s, TCB_OUT_OF_DATE_CONFIGURATION_NEEDED);
    assert_int_equal(tcb_status_parse("TcbNotSupported", &s), -EINVAL);
}

/* QE identity: miscselect compared in report byte order (the synthetic D182B18C), masks. */
static void test_qe_identity(void** state) {
    (void)state;
    const char* json =
        "{\"id\":\"QE\",\"version\":2,\"issueDate\":\"2019-09-05T07:47:08Z\","
        "\"nextUpdate\":\"2029-09-05T07:47:08Z\",\"tcbEvaluationDataNumber\":0,"
        "\"miscselect\":\"D182B18C\",\"miscselectMask\":\"FFFFFFFF\","
        "\"attributes\":\"11000000000000000000000000000000\","
        "\"attributesMask\":\"FBFFFFFFFFFFFFFF0000000000000000\","
        "\"mrsigner\":\"8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF\","
        "\"isvprodid\":1,\"tcbLevels\":[{\"tcb\":{\"isvsvn\":2},\"tcbDate\":\"2019-09-01T00:00:"
        "00Z\","
        "\"tcbStatus\":\"OutOfDate\",\"advisoryIDs\":[\"INTEL-SA-1\"]},{\"tcb\":{\"isvsvn\":8},"
        "\"tcbDate\":\"2020-09-01T00:00:00Z\",\"tcbStatus\":\"UpToDate\"}]}";
    struct qe_identity* qe _cleanup_(qe_identity_freep) = NULL;
    struct moat_error err                               = {0};
    if (qe_identity_parse(json, strlen(json), &qe, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(qe->levels[0].isvsvn, 8); /* sorted highest first */
    struct qe_report_fields f = {
        .miscselect = {0xd1, 0x82, 0xb1, 0x8c}, .attributes = {0x15}, .isvprodid = 1, .isvsvn = 5};
    memcpy(f.mrsigner, qe->mrsigner, 32);
    enum tcb_status s;
    const struct isv_level* l;
    assert_int_equal(qe_identity_match(qe, "QE", &f, &s, &l, &err), 0);
    assert_int_equal(s, TCB_OUT_OF_DATE);
    assert_string_equal(l->advisories.ids[0], "INTEL-SA-1");
    f.isvsvn = 9;
    assert_int_equal(qe_identity_match(qe, "QE", &f, &s, &l, &err), 0);
    assert_int_equal(s, TCB_UP_TO_DATE);
    f.isvsvn = 1;
    assert_int_equal(qe_identity_match(qe, "QE", &f, &s, &l, &err), 0);
    assert_int_equal(s, TCB_NOT_SUPPORTED);
    assert_null(l);
    assert_int_equal(qe_identity_match(qe, "TD_QE", &f, &s, &l, &err), -EKEYREJECTED);
    uint8_t swapped[4] = {0x8c, 0xb1, 0x82, 0xd1}; /* a big-endian parse would accept this */
    memcpy(f.miscselect, swapped, 4);
    assert_int_equal(qe_identity_match(qe, "QE", &f, &s, &l, &err), -EKEYREJECTED);
    assert_non_null(strstr(err.msg, "MISCSELECT"));
    memcpy(f.miscselect, (uint8_t[]){0xd1, 0x82, 0xb1, 0x8c}, 4);
    f.attributes[0] = 0x13; /* bit 1 (DEBUG) is under the mask */
    assert_int_equal(qe_identity_match(qe, "QE", &f, &s, &l, &err), -EKEYREJECTED);
}

/* ---------------------------------------------------------------------------------------- */
/* JSON span scanner and PCS splitting (§2.5)                                                 */

static void test_json_span(void** state) {
    (void)state;
    static const struct {
        const char* doc;
        const char* key;
        int want;
        const char* span;
    } cases[] = {
        {"{\"tcbInfo\":{\"a\":1},\"signature\":\"ab\"}", "tcbInfo", 0, "{\"a\":1}"},
        {" { \"x\" : [1,{\"}\":\"]\"}] , \"tcbInfo\" :\n{\"s\":\"\\\"}\"}\n}\n", "tcbInfo", 0,
         "{\"s\":\"\\\"}\"}"},
        {"{\"a\":true,\"k\":-1.5e3}", "k", 0, "-1.5e3"},
        {"{\"a\":\"\\u00e9\",\"k\":null}", "k", 0, "null"},
        {"{}", "k", -ENOENT, NULL},
        {"{\"a\":1}", "k", -ENOENT, NULL},
        {"{\"k\":1,\"k\":2}", "k", -EBADMSG, NULL},
        {"{\"k\":{\"a\":[}}", "k", -EBADMSG, NULL},
        {"{\"k\":{\"a\":1}", "k", -EBADMSG, NULL},
        {"{\"k\":\"abc", "k", -EBADMSG, NULL},
        {"{\"k\":\"\\x\"}", "k", -EBADMSG, NULL},
        {"{\"k\":\"\\u12G4\"}", "k", -EBADMSG, NULL},
        {"{\"k\":1} x", "k", -EBADMSG, NULL},
        {"[\"k\"]", "k", -EBADMSG, NULL},
        {"{\"k\":}", "k", -EBADMSG, NULL},
        {"", "k", -EBADMSG, NULL},
        {"{\"k\"", "k", -EBADMSG, NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        size_t off = 0, len = 0;
        int r = json_member_span(cases[i].doc, strlen(cases[i].doc), cases[i].key, &off, &len);
        if (r != cases[i].want)
            fail_msg("case %zu: got %d, expected %d", i, r, cases[i].want);
        if (r == 0) {
            assert_int_equal(len, strlen(cases[i].span));
            assert_memory_equal(cases[i].doc + off, cases[i].span, len);
        }
    }
    /* deep nesting fails cleanly */
    char deep[600];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "{\"k\":");
    for (size_t i = 0; i < 256; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    size_t off, len;
    assert_int_equal(json_member_span(deep, n, "k", &off, &len), -EBADMSG);
    /* PCS split: bytes kept verbatim (key order, spacing), signature decoded */
    char sig[129];
    memset(sig, 'a', 128);
    sig[128] = '\0';
    _cleanup_free_ char* doc =
        xasprintf("{\"tcbInfo\": {\"z\":1, \"a\" :2},\"signature\":\"%s\"}", sig);
    char* inner = NULL;
    size_t inner_len;
    uint8_t raw[64];
    struct moat_error err = {0};
    assert_int_equal(
        pcs_signed_json_split(doc, strlen(doc), "tcbInfo", &inner, &inner_len, raw, &err), 0);
    assert_string_equal(inner, "{\"z\":1, \"a\" :2}");
    assert_int_equal(raw[0], 0xaa);
    free(inner);
    _cleanup_free_ char* dup =
        xasprintf("{\"tcbInfo\":{},\"tcbInfo\":{},\"signature\":\"%s\"}", sig);
    assert_int_equal(
        pcs_signed_json_split(dup, strlen(dup), "tcbInfo", &inner, &inner_len, raw, &err),
        -EBADMSG);
}

/* Malformed TCB info is rejected with the key named. */
static void test_tcb_info_parse_errors(void** state) {
    (void)state;
    static const char* const bad[] = {
        "{}",
        "{\"version\":3,\"id\":\"XYZ\"}",
        "{\"version\":2,\"issueDate\":\"2019-02-30T00:00:00Z\"}",
        "[1]",
        "{\"version\":2,\"version\":2}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct tcb_info* info = NULL;
        struct moat_error err = {0};
        assert_int_equal(tcb_info_parse(bad[i], strlen(bad[i]), &info, &err), -EBADMSG);
        assert_null(info);
        assert_true(err.msg[0] != '\0');
    }
    time_t t;
    assert_int_equal(iso8601_parse("2024-02-29T23:59:59Z", &t), 0);
    assert_int_equal(t, 1709251199);
    assert_int_equal(iso8601_parse("2023-02-29T00:00:00Z", &t), -EINVAL);
    assert_int_equal(iso8601_parse("2023-01-01T00:00:00", &t), -EINVAL);
}

static int setup(void** state) {
    (void)state;
    size_t len;
    if (!data_exists("EXPECTED.json")) {
        print_error("testdata/attestation/EXPECTED.json is missing (MOAT_TESTDATA)\n");
        return -1;
    }
    _cleanup_free_ uint8_t* buf = load("EXPECTED.json", &len);
    json_error_t jerr;
    g_expected = json_loadb((char*)buf, len, 0, &jerr);
    return g_expected ? 0 : -1;
}

static int teardown(void** state) {
    (void)state;
    json_decref(g_expected);
    return 0;
}

int main(void) {
    if (!data_exists("EXPECTED.json")) { /* a clone without ../shared */
        printf("1..0 # SKIP testdata/attestation not found (MOAT_TESTDATA)\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pck_extension),
        cmocka_unit_test(test_chain_verify),
        cmocka_unit_test(test_synthetic_untrusted),
        cmocka_unit_test(test_stale_crl),
        cmocka_unit_test(test_wrong_crl),
        cmocka_unit_test(test_collateral_verify),
        cmocka_unit_test(test_tcb_match),
        cmocka_unit_test(test_tcb_mismatch),
        cmocka_unit_test(test_converge),
        cmocka_unit_test(test_qe_identity),
        cmocka_unit_test(test_json_span),
        cmocka_unit_test(test_tcb_info_parse_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
