/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Manifest secrets (MarbleRun reference §1.3, §3.6, §3.3 "Secret certs"): every type and size
 * rule with MarbleRun's error texts; per-marble symmetric keys are HKDF-SHA256(root secret,
 * UUID string + name, marble type) — known answers computed once with an independent HKDF
 * (Python hmac/hashlib) and frozen here — and stable for one UUID, different for another;
 * certificates carry the template fields and verify against the marble root; `.Private` is
 * PKCS#8, `.Public` PKIX; RotateRootSecret keeps the previous root secret and shared set.
 */
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "secrets.h"

static struct moat_ca* g_ca;
static uint8_t g_root[MOAT_ROOT_SECRET_SIZE];

static const uint8_t g_uuid[16] = {0x6e, 0x2c, 0x1a, 0x3b, 0x9f, 0x00, 0x4d, 0x1e,
                                   0x8a, 0x55, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06};

static int setup(void** state) {
    (void)state;
    for (size_t i = 0; i < sizeof(g_root); i++)
        g_root[i] = (uint8_t)i;
    struct moat_error err = {0};
    return moat_ca_generate(NULL, &g_ca, &err);
}

static int teardown(void** state) {
    (void)state;
    moat_ca_free(g_ca);
    return 0;
}

static struct moat_secret_binding binding(const char* type) {
    struct moat_secret_binding b = {.root_secret = g_root, .marble_type = type};
    memcpy(b.uuid, g_uuid, 16);
    return b;
}

static void assert_hex(const struct moat_der* d, const char* hex) {
    _cleanup_free_ char* h = hex_encode_alloc(d->p, d->len);
    assert_string_equal(h, hex);
}

/* §3.6: HKDF-SHA256(IKM = rootSecret, salt = UUID.String() + name, info = marbleType) */
static void test_derive_known_answers(void** state) {
    (void)state;
    struct moat_error err        = {0};
    struct moat_secret_spec spec = {.name = "symKey", .type = "symmetric-key", .size = 128};
    struct moat_secret_binding b = binding("backend");
    struct moat_secret s         = {0};
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &s, &err), 0);
    assert_hex(&s.v.private_key, "edc1553955445a089a647a0a1f6169e0");
    assert_hex(&s.v.public_key, "edc1553955445a089a647a0a1f6169e0");
    assert_null(s.v.cert.p);
    assert_string_equal(s.name, "symKey");
    assert_string_equal(s.type, "symmetric-key");
    moat_secret_clear(&s);
    assert_null(s.v.private_key.p);
    /* DisableSecretBinding: info "" */
    b = binding(NULL);
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &s, &err), 0);
    assert_hex(&s.v.private_key, "1a3b4af819e42f90487053a04ef6dbf2");
    moat_secret_clear(&s);
    /* 256 bits: the 128-bit key is its prefix (one HKDF stream) */
    b         = binding("backend");
    spec.size = 256;
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &s, &err), 0);
    assert_hex(&s.v.private_key,
               "edc1553955445a089a647a0a1f6169e04b186eb81fbf37d9e09580f622dcdd39");
    moat_secret_clear(&s);
    /* HKDF's limit: 255 * 32 bytes */
    uint8_t big[255 * 32 + 1];
    assert_int_equal(moat_secret_derive(&b, "symKey", big, sizeof(big) - 1, &err), 0);
    assert_int_equal(moat_secret_derive(&b, "symKey", big, sizeof(big), &err), -EINVAL);
    assert_string_equal(err.msg, "hkdf: entropy limit reached");
}

static void test_derive_properties(void** state) {
    (void)state;
    struct moat_error err        = {0};
    struct moat_secret_spec spec = {.name = "k", .type = "symmetric-key", .size = 256};
    struct moat_secret_binding b = binding("backend");
    struct moat_secret a = {0}, again = {0}, other = {0}, other_type = {0}, other_name = {0};
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &a, &err), 0);
    /* same UUID, same key (a restart with the UUID file) */
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &again, &err), 0);
    assert_int_equal(a.v.private_key.len, 32);
    assert_memory_equal(a.v.private_key.p, again.v.private_key.p, 32);
    /* another UUID, marble type or name: another key */
    b.uuid[15] ^= 1;
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &other, &err), 0);
    assert_memory_not_equal(a.v.private_key.p, other.v.private_key.p, 32);
    b = binding("frontend");
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &other_type, &err), 0);
    assert_memory_not_equal(a.v.private_key.p, other_type.v.private_key.p, 32);
    b         = binding("backend");
    spec.name = "k2";
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &other_name, &err), 0);
    assert_memory_not_equal(a.v.private_key.p, other_name.v.private_key.p, 32);
    /* shared: random, different each time */
    struct moat_secret s1 = {0}, s2 = {0};
    spec.shared = true;
    assert_int_equal(moat_secret_generate(g_ca, &spec, NULL, &s1, &err), 0);
    assert_int_equal(moat_secret_generate(g_ca, &spec, NULL, &s2, &err), 0);
    assert_int_equal(s1.v.private_key.len, 32);
    assert_memory_not_equal(s1.v.private_key.p, s2.v.private_key.p, 32);
    struct moat_secret* all[] = {&a, &again, &other, &other_type, &other_name, &s1, &s2};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        moat_secret_clear(all[i]);
}

static void expect_error(const struct moat_secret_spec* spec, const char* msg) {
    struct moat_error err        = {0};
    struct moat_secret s         = {0};
    struct moat_secret_binding b = binding("backend");
    assert_int_equal(moat_secret_generate(g_ca, spec, spec->shared ? NULL : &b, &s, &err), -EINVAL);
    assert_string_equal(err.msg, msg);
    assert_null(s.name);
}

/* §1.3 Size rules, core.go GenerateSecrets error texts */
static void test_size_and_type_errors(void** state) {
    (void)state;
    expect_error(&(struct moat_secret_spec){.name = "a", .type = "symmetric-key"},
                 "invalid secret size: a");
    expect_error(&(struct moat_secret_spec){.name = "a", .type = "symmetric-key", .size = 12},
                 "invalid secret size: a");
    expect_error(&(struct moat_secret_spec){.name = "e", .type = "cert-ecdsa", .size = 192},
                 "unsupported size 192: does not map to a supported curve");
    expect_error(&(struct moat_secret_spec){.name = "e", .type = "cert-ecdsa"},
                 "unsupported size 0: does not map to a supported curve");
    expect_error(&(struct moat_secret_spec){.name = "d", .type = "cert-ed25519", .size = 256},
                 "invalid secret size for cert-ed25519, none is expected. given: d");
    expect_error(&(struct moat_secret_spec){.name = "r", .type = "cert-rsa", .size = 512},
                 "invalid secret size for cert-rsa: r (512 bits; 1024 to 16384)");
    expect_error(&(struct moat_secret_spec){.name = "p", .type = "plain", .shared = true},
                 "unsupported secret of type plain");
    expect_error(&(struct moat_secret_spec){.name = "x", .type = "cert-dsa", .shared = true},
                 "unsupported secret of type cert-dsa");
    /* template errors */
    const char* const bad_ip[] = {"300.1.1.1", NULL};
    expect_error(
        &(struct moat_secret_spec){
            .name = "c", .type = "cert-ed25519", .cert = {.ip_addresses = bad_ip}},
        "secret c: invalid IP address \"300.1.1.1\"");
    static const int bad_eku[] = {1, 14};
    expect_error(
        &(struct moat_secret_spec){.name = "c",
                                   .type = "cert-ed25519",
                                   .cert = {.ext_key_usage = bad_eku, .n_ext_key_usage = 2}},
        "secret c: x509: unknown extended key usage");
}

static X509* d2i_cert(const struct moat_der* d) {
    const unsigned char* p = d->p;
    X509* x                = d2i_X509(NULL, &p, (long)d->len);
    assert_non_null(x);
    return x;
}

static EVP_PKEY* d2i_pkcs8(const struct moat_der* d) {
    const unsigned char* p  = d->p;
    PKCS8_PRIV_KEY_INFO* p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)d->len);
    assert_non_null(p8);
    EVP_PKEY* k = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    assert_non_null(k);
    return k;
}

static int verify_against(X509* leaf, X509* anchor, X509* untrusted, bool partial) {
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, anchor);
    if (partial)
        X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    STACK_OF(X509)* chain = sk_X509_new_null();
    if (untrusted)
        sk_X509_push(chain, untrusted);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, leaf, chain);
    int ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    sk_X509_free(chain);
    X509_STORE_free(store);
    return ok;
}

/* Checks a cert secret: key pair consistent, .Public PKIX of it, issued by the marble root. */
static X509* check_cert_secret(const struct moat_secret* s, const char* key_type, int bits) {
    X509* x       = d2i_cert(&s->v.cert);
    EVP_PKEY* key = d2i_pkcs8(&s->v.private_key);
    assert_true(EVP_PKEY_is_a(key, key_type));
    if (bits)
        assert_int_equal(EVP_PKEY_get_bits(key), bits);
    assert_int_equal(X509_check_private_key(x, key), 1);
    unsigned char* pub = NULL;
    int len            = i2d_PUBKEY(key, &pub);
    assert_int_equal((size_t)len, s->v.public_key.len);
    assert_memory_equal(pub, s->v.public_key.p, (size_t)len);
    OPENSSL_free(pub);
    EVP_PKEY_free(key);
    assert_int_equal(
        X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(g_ca->marble_root_cert)), 0);
    assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA384);
    assert_int_equal(verify_against(x, g_ca->marble_root_cert, NULL, false), 1);
    assert_int_equal(verify_against(x, g_ca->root_cert, g_ca->intermediate_cert, false), 1);
    assert_int_equal(verify_against(x, g_ca->intermediate_cert, NULL, true), 1);
    return x;
}

/* §3.3 Secret certs: defaults */
static void test_cert_defaults(void** state) {
    (void)state;
    struct moat_error err = {0};
    static const struct {
        const char* type;
        unsigned size;
        const char* key_type;
        int bits;
    } cases[] = {
        {"cert-ecdsa", 224, "EC", 224},  {"cert-ecdsa", 256, "EC", 256},
        {"cert-ecdsa", 384, "EC", 384},  {"cert-ecdsa", 521, "EC", 521},
        {"cert-rsa", 2048, "RSA", 2048}, {"cert-ed25519", 0, "ED25519", 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct moat_secret_spec spec = {
            .name = "c", .type = cases[i].type, .size = cases[i].size, .shared = true};
        struct moat_secret s = {0};
        assert_int_equal(moat_secret_generate(g_ca, &spec, NULL, &s, &err), 0);
        X509* x = check_cert_secret(&s, cases[i].key_type, cases[i].bits);
        /* DNS localhost, loopback IPs, CN = the single DNS name */
        assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
        assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
        assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
        assert_string_equal(cn, "localhost");
        assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN);
        assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER | XKU_SSL_CLIENT);
        assert_int_equal(X509_check_ca(x), 0);
        /* ValidFor default 365 days */
        int days = 0, secs = 0;
        assert_int_equal(
            ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
        assert_int_equal(days, 365);
        assert_int_equal(secs, 0);
        X509_free(x);
        moat_secret_clear(&s);
    }
}

/* §1.3 Cert template fields applied */
static void test_cert_template(void** state) {
    (void)state;
    struct moat_error err        = {0};
    const char* const dns[]      = {"a.example", "b.example", NULL};
    const char* const ips[]      = {"192.0.2.1", NULL};
    const char* const country[]  = {"US", NULL};
    const char* const org[]      = {"Acme", NULL};
    static const int eku[]       = {4}; /* EmailProtection */
    struct moat_secret_spec spec = {
        .name      = "t",
        .type      = "cert-ecdsa",
        .size      = 256,
        .valid_for = 7,
        .cert      = {.subject         = {.country = country, .organization = org},
                      .dns_names       = dns,
                      .ip_addresses    = ips,
                      .key_usage       = 1u << 2, /* KeyEncipherment */
                      .ext_key_usage   = eku,
                      .n_ext_key_usage = 1,
                      .is_ca           = true},
    };
    struct moat_secret_binding b = binding("backend");
    struct moat_secret s         = {0};
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &s, &err), 0);
    X509* x      = check_cert_secret(&s, "EC", 256);
    char buf[64] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf));
    assert_string_equal(buf, "MarbleRun Generated Certificate"); /* two DNS names */
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_organizationName, buf, sizeof(buf));
    assert_string_equal(buf, "Acme");
    assert_int_equal(X509_check_host(x, "b.example", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(x, "192.0.2.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 0);
    assert_int_equal(X509_get_key_usage(x), KU_KEY_ENCIPHERMENT);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SMIME);
    assert_true(X509_get_extension_flags(x) & EXFLAG_CA); /* CA:TRUE, though KU lacks CertSign */
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
                     1);
    assert_int_equal(days, 7);
    X509_free(x);
    moat_secret_clear(&s);

    /* NotAfter from the template; ValidFor overrides it for per-marble secrets only */
    time_t na           = time(NULL) + 30 * 86400;
    spec.cert.not_after = na;
    spec.cert.is_ca     = false;
    spec.shared         = true;
    assert_int_equal(moat_secret_generate(g_ca, &spec, NULL, &s, &err), 0);
    x               = d2i_cert(&s.v.cert);
    ASN1_TIME* want = ASN1_TIME_set(NULL, na);
    assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(x), want), 0);
    X509_free(x);
    moat_secret_clear(&s);
    spec.shared = false; /* ValidFor (7 days) wins for a per-marble secret */
    assert_int_equal(moat_secret_generate(g_ca, &spec, &b, &s, &err), 0);
    x = d2i_cert(&s.v.cert);
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)),
                     1);
    assert_int_equal(days, 7);
    assert_int_not_equal(ASN1_TIME_compare(X509_get0_notAfter(x), want), 0);
    ASN1_TIME_free(want);
    spec.shared = true;
    X509_free(x);
    moat_secret_clear(&s);
    /* empty DNS list: no DNS default, CN the generic one */
    const char* const none[] = {NULL};
    spec.cert.dns_names      = none;
    spec.cert.ip_addresses   = none;
    assert_int_equal(moat_secret_generate(g_ca, &spec, NULL, &s, &err), 0);
    x = d2i_cert(&s.v.cert);
    assert_int_equal(X509_get_ext_by_NID(x, NID_subject_alt_name, -1), -1);
    X509_free(x);
    moat_secret_clear(&s);
}

static void test_sets_and_rotation(void** state) {
    (void)state;
    struct moat_error err                 = {0};
    const struct moat_secret_spec specs[] = {
        {.name = "shared", .type = "symmetric-key", .size = 128, .shared = true},
        {.name = "mine", .type = "symmetric-key", .size = 128},
        {.name = "cert", .type = "cert-ed25519"},
        {.name = "user", .type = "plain", .user_defined = true},
        {.name = "usercert", .type = "cert-rsa", .shared = true, .user_defined = true},
    };
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set shared = {0};
    assert_int_equal(moat_secrets_generate_shared(g_ca, specs, ARRAY_SIZE(specs), &shared, &err),
                     0);
    assert_int_equal(shared.n, 1);
    assert_non_null(moat_secret_set_find(&shared, "shared"));
    assert_null(moat_secret_set_find(&shared, "user"));

    struct moat_root_secrets rs = {0};
    assert_int_equal(moat_root_secrets_init(&rs, &err), 0);
    assert_false(rs.has_previous);
    assert_ptr_equal(moat_root_secrets_previous(&rs), rs.current);
    struct moat_secret_binding b                                  = binding("backend");
    b.root_secret                                                 = rs.current;
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set mine = {0};
    assert_int_equal(moat_secrets_generate_marble(g_ca, specs, ARRAY_SIZE(specs), &b, &mine, &err),
                     0);
    assert_int_equal(mine.n, 2);
    const struct moat_secret* m = moat_secret_set_find(&mine, "mine");
    assert_non_null(m);
    assert_non_null(moat_secret_set_find(&mine, "cert")->v.cert.p);

    /* RotateRootSecret: .Previous derives from the old root secret */
    uint8_t old[MOAT_ROOT_SECRET_SIZE];
    memcpy(old, rs.current, sizeof(old));
    assert_int_equal(moat_root_secrets_rotate(&rs, &err), 0);
    assert_true(rs.has_previous);
    assert_memory_equal(rs.previous, old, sizeof(old));
    assert_memory_not_equal(rs.current, old, sizeof(old));
    _cleanup_(moat_secret_set_clearp) struct moat_secret_set prev = {0}, cur = {0};
    b.root_secret = moat_root_secrets_previous(&rs);
    assert_int_equal(moat_secrets_generate_marble(g_ca, specs, ARRAY_SIZE(specs), &b, &prev, &err),
                     0);
    b.root_secret = rs.current;
    assert_int_equal(moat_secrets_generate_marble(g_ca, specs, ARRAY_SIZE(specs), &b, &cur, &err),
                     0);
    assert_memory_equal(moat_secret_set_find(&prev, "mine")->v.private_key.p, m->v.private_key.p,
                        16);
    assert_memory_not_equal(moat_secret_set_find(&cur, "mine")->v.private_key.p, m->v.private_key.p,
                            16);

    /* shared sets: the set before the rotation is kept */
    struct moat_shared_secrets ss = {.current = shared};
    shared                        = (struct moat_secret_set){0};
    uint8_t before[16];
    memcpy(before, moat_secret_set_find(&ss.current, "shared")->v.private_key.p, 16);
    assert_int_equal(moat_shared_secrets_rotate(&ss, g_ca, specs, ARRAY_SIZE(specs), &err), 0);
    assert_true(ss.has_previous);
    assert_memory_equal(moat_secret_set_find(&ss.previous, "shared")->v.private_key.p, before, 16);
    assert_memory_not_equal(moat_secret_set_find(&ss.current, "shared")->v.private_key.p, before,
                            16);
    moat_shared_secrets_clear(&ss);
    assert_int_equal(ss.current.n, 0);

    /* a failing secret fails the set, nothing is returned */
    const struct moat_secret_spec bad[] = {
        {.name = "ok", .type = "symmetric-key", .size = 8},
        {.name = "bad", .type = "symmetric-key", .size = 9},
    };
    struct moat_secret_set none = {0};
    assert_int_equal(moat_secrets_generate_marble(g_ca, bad, 2, &b, &none, &err), -EINVAL);
    assert_string_equal(err.msg, "invalid secret size: bad");
    assert_null(none.v);

    /* wiped */
    moat_root_secrets_wipe(&rs);
    static const struct moat_root_secrets zero = {0};
    assert_memory_equal(&rs, &zero, sizeof(rs));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derive_known_answers), cmocka_unit_test(test_derive_properties),
        cmocka_unit_test(test_size_and_type_errors), cmocka_unit_test(test_cert_defaults),
        cmocka_unit_test(test_cert_template),        cmocka_unit_test(test_sets_and_rotation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
