/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the Coordinator core (core.h): states and SetManifest (reference/marblerun.md
 * §3.2), Activate with its status codes and messages (§4.3), the parameters it renders (§2),
 * per-marble secrets (§3.6), quote validation of simulated-platform quotes (§4.4) and simulation
 * mode (§6), and a restart on the same seal directory (§3.4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "core.h"
#include "marble_quote.h"
#include "sim.h"

#define MRENCLAVE_HEX "1111111111111111111111111111111111111111111111111111111111111111"
#define UUID_A        "8b9e8c6a-1d2f-4c5e-9a7b-123456789abc"
#define UUID_B        "01234567-89ab-cdef-0123-456789abcdef"

/* Like the gramine-hello sample, plus secrets of several types. */
static const char MANIFEST[] =
    "{\"Packages\": {\"hello\": {\"UniqueID\": \"" MRENCLAVE_HEX
    "\"},"
    "                \"dbg\": {\"UniqueID\": \"" MRENCLAVE_HEX
    "\", \"Debug\": true}},"
    " \"Marbles\": {"
    "  \"hello\": {\"Package\": \"hello\", \"Parameters\": {"
    "   \"Files\": {"
    "    \"/cert.pem\": \"{{ pem .MarbleRun.MarbleCert.Cert }}\","
    "    \"/key.pem\": \"{{ pem .MarbleRun.MarbleCert.Private }}\","
    "    \"/root.pem\": \"{{ pem .MarbleRun.RootCA.Cert }}\","
    "    \"/coord.pem\": \"{{ pem .MarbleRun.CoordinatorRoot.Cert }}\","
    "    \"/interm.der\": \"{{ raw .MarbleRun.CoordinatorIntermediate.Cert }}\","
    "    \"/sym.key\": \"{{ raw .Secrets.symPriv }}\","
    "    \"/shared.hex\": \"{{ hex .Secrets.symShared }}\","
    "    \"/verbatim\": {\"Data\": \"{{ not a template\", \"NoTemplates\": true}},"
    "   \"Env\": {"
    "    \"SYM_HEX\": \"{{ hex .Secrets.symPriv }}\","
    "    \"PREV_HEX\": \"{{ hex .Previous.Secrets.symPriv }}\","
    "    \"SHARED_CERT\": \"{{ pem .Secrets.sharedCert.Cert }}\","
    "    \"PRIV_CERT_KEY\": \"{{ pem .Secrets.privCert.Private }}\","
    "    \"MARBLE_PREDEFINED_ROOT_CA\": \"overwritten\"},"
    "   \"Argv\": [\"hello\", \"{{ raw .Secrets.symPriv }}\"]}},"
    "  \"limited\": {\"Package\": \"hello\", \"MaxActivations\": 2},"
    "  \"debugmarble\": {\"Package\": \"dbg\"},"
    "  \"usersecret\": {\"Package\": \"hello\", \"Parameters\": {"
    "   \"Files\": {\"/u\": \"{{ raw .Secrets.userKey }}\"}}}},"
    " \"Secrets\": {"
    "  \"symPriv\": {\"Type\": \"symmetric-key\", \"Size\": 128},"
    "  \"symShared\": {\"Type\": \"symmetric-key\", \"Size\": 256, \"Shared\": true},"
    "  \"sharedCert\": {\"Type\": \"cert-ecdsa\", \"Size\": 256, \"Shared\": true,"
    "                   \"Cert\": {\"Subject\": {\"CommonName\": \"shared\"}}},"
    "  \"privCert\": {\"Type\": \"cert-ed25519\"},"
    "  \"userKey\": {\"Type\": \"symmetric-key\", \"Size\": 128, \"UserDefined\": true}}}";

static const uint8_t SEAL_A[32] = {1, 2, 3}, SEAL_B[32] = {9, 9, 9};

/* The Marble's side (§4.2): a P-384 key, a self-signed TLS certificate and a CSR. */
struct marble {
    EVP_PKEY* key;
    uint8_t* cert;
    int cert_len;
    uint8_t* csr;
    int csr_len;
};

static struct marble marble_new(void) {
    struct marble m = {.key = EVP_EC_gen("P-384")};
    assert_non_null(m.key);
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const uint8_t*)"MarbleRun Marble", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, m.key);
    assert_true(X509_sign(x, m.key, EVP_sha384()) > 0);
    m.cert_len   = i2d_X509(x, &m.cert);
    X509_REQ* rq = X509_REQ_new();
    X509_REQ_set_subject_name(rq, X509_get_subject_name(x));
    X509_REQ_set_pubkey(rq, m.key);
    assert_true(X509_REQ_sign(rq, m.key, EVP_sha384()) > 0);
    m.csr_len = i2d_X509_REQ(rq, &m.csr);
    X509_REQ_free(rq);
    X509_free(x);
    assert_true(m.cert_len > 0 && m.csr_len > 0);
    return m;
}

static void marble_free(struct marble* m) {
    EVP_PKEY_free(m->key);
    OPENSSL_free(m->cert);
    OPENSSL_free(m->csr);
}

static struct coord_core* core_sim(const char* dir, const uint8_t* key) {
    struct coord_core_opts o = {.seal_dir = dir, .seal_key = key, .simulation = true};
    struct coord_core* c     = NULL;
    struct moat_error err    = {0};
    if (coord_core_new(&o, &c, &err) < 0)
        fail_msg("coord_core_new: %s", err.msg);
    return c;
}

static void set_manifest(struct coord_core* c) {
    struct moat_error err            = {0};
    struct coord_recovery_secrets rs = {0};
    if (coord_core_set_manifest(c, MANIFEST, strlen(MANIFEST), &rs, &err) < 0)
        fail_msg("set manifest: %s", err.msg);
    assert_int_equal(rs.n, 0); /* no RecoveryKeys */
    coord_recovery_secrets_clear(&rs);
}

static int activate(struct coord_core* c, const struct marble* m, const uint8_t* quote,
                    size_t quote_len, const char* type, const char* uuid, struct coord_params* p,
                    enum coord_status* st, struct moat_error* err) {
    return coord_core_activate(c, quote, quote_len, m->csr, (size_t)m->csr_len, type, uuid, m->cert,
                               (size_t)m->cert_len, p, st, err);
}

static void ok(struct coord_core* c, const struct marble* m, const uint8_t* quote, size_t quote_len,
               const char* type, const char* uuid, struct coord_params* p) {
    enum coord_status st  = COORD_STATUS_INTERNAL;
    struct moat_error err = {0};
    if (activate(c, m, quote, quote_len, type, uuid, p, &st, &err) < 0)
        fail_msg("activate %s: %s (%s)", type, err.msg, coord_status_name(st));
    assert_int_equal(st, COORD_STATUS_OK);
}

static void refused(struct coord_core* c, const struct marble* m, const uint8_t* quote,
                    size_t quote_len, const char* type, const char* uuid,
                    enum coord_status expect_status, const char* expect_msg) {
    enum coord_status st  = COORD_STATUS_OK;
    struct moat_error err = {0};
    struct coord_params p = {0};
    assert_true(activate(c, m, quote, quote_len, type, uuid, &p, &st, &err) < 0);
    assert_int_equal(st, expect_status);
    if (strncmp(err.msg, expect_msg, strlen(expect_msg)) != 0)
        fail_msg("'%s' does not start with '%s'", err.msg, expect_msg);
    assert_int_equal(p.n_files + p.n_env + p.argc, 0);
}

static X509* pem_cert(const struct coord_param* f) {
    assert_non_null(f);
    BIO* b  = BIO_new_mem_buf(f->data, (int)f->len);
    X509* x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static char* env_str(const struct coord_params* p, const char* name) {
    const struct coord_param* e = coord_params_env(p, name);
    if (!e)
        fail_msg("no env %s", name);
    return xstrndup((const char*)e->data, e->len);
}

/* §3.2 states and messages; SetManifest only once. */
static void test_states(void** state) {
    (void)state;
    struct coord_core* c = core_sim(NULL, NULL);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MANIFEST);
    assert_string_equal(coord_state_message(COORD_STATE_ACCEPTING_MANIFEST),
                        "Coordinator is ready to accept a manifest.");
    struct marble m = marble_new();
    refused(c, &m, NULL, 0, "hello", UUID_A, COORD_STATUS_FAILED_PRECONDITION,
            "cannot accept marbles in current state");
    struct moat_error err = {0};
    assert_int_equal(coord_core_set_manifest(c, "{}", 2, NULL, &err), -EINVAL);
    assert_string_equal(err.msg, "checking manifest: no allowed packages defined");
    /* TemplateDryRun (§1.7): an unknown function, a field that does not exist */
    static const char bad_fn[] =
        "{\"Packages\": {\"p\": {\"Debug\": true}}, \"Marbles\": {\"m\": {\"Package\": \"p\","
        " \"Parameters\": {\"Env\": {\"E\": \"{{ raw .Secrets.x }}\"}}}}}";
    assert_int_equal(coord_core_set_manifest(c, bad_fn, strlen(bad_fn), NULL, &err), -EINVAL);
    if (!strstr(err.msg, "running manifest template dry run: in Marble m: env variable E: "))
        fail_msg("%s", err.msg);
    static const char bad_field[] =
        "{\"Packages\": {\"p\": {\"Debug\": true}}, \"Marbles\": {\"m\": {\"Package\": \"p\","
        " \"Parameters\": {\"Files\": {\"/f\": \"{{ raw .MarbleRun.SealKey }}\"}}}}}";
    assert_int_equal(coord_core_set_manifest(c, bad_field, strlen(bad_field), NULL, &err), -EINVAL);
    if (!strstr(err.msg, "running manifest template dry run: in Marble m: file /f: "))
        fail_msg("%s", err.msg);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MANIFEST);
    set_manifest(c);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    assert_int_equal(coord_core_set_manifest(c, MANIFEST, strlen(MANIFEST), NULL, &err), -EPERM);
    assert_string_equal(err.msg, "server is not in expected state");
    marble_free(&m);
    coord_core_free(c);
}

/* §4.3 + §2: the rendered Files/Env/Argv and the predefined env; §3.6 per-marble secrets. */
static void test_activate_sim(void** state) {
    (void)state;
    struct coord_core* c = core_sim(NULL, NULL);
    set_manifest(c);
    struct marble m       = marble_new();
    struct coord_params p = {0}, p2 = {0}, p3 = {0};
    ok(c, &m, NULL, 0, "hello", UUID_A, &p); /* simulation: an empty quote is fine (§6) */

    X509* root   = pem_cert(coord_params_file(&p, "/root.pem"));
    X509* leaf   = pem_cert(coord_params_file(&p, "/cert.pem"));
    X509* coord  = pem_cert(coord_params_file(&p, "/coord.pem"));
    X509* shared = pem_cert(coord_params_env(&p, "SHARED_CERT"));
    assert_int_equal(X509_verify(leaf, X509_get0_pubkey(root)), 1);
    assert_int_equal(X509_verify(shared, X509_get0_pubkey(root)), 1);
    assert_int_equal(X509_check_issued(root, leaf), X509_V_OK);
    char cn[64];
    X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, UUID_A);
    /* the intermediate (raw DER) is signed by the Coordinator root */
    const struct coord_param* id = coord_params_file(&p, "/interm.der");
    const uint8_t* q             = id->data;
    X509* interm                 = d2i_X509(NULL, &q, (long)id->len);
    assert_non_null(interm);
    assert_int_equal(X509_verify(interm, X509_get0_pubkey(coord)), 1);
    /* the key file is the leaf's key */
    const struct coord_param* kf = coord_params_file(&p, "/key.pem");
    BIO* b                       = BIO_new_mem_buf(kf->data, (int)kf->len);
    EVP_PKEY* k                  = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(k);
    assert_int_equal(X509_check_private_key(leaf, k), 1);
    EVP_PKEY_free(k);
    assert_non_null(strstr((const char*)coord_params_env(&p, "PRIV_CERT_KEY")->data,
                           "-----BEGIN PRIVATE KEY-----"));

    /* predefined env overwrites the manifest's */
    _cleanup_free_ char* rootca = env_str(&p, "MARBLE_PREDEFINED_ROOT_CA");
    assert_memory_equal(rootca, coord_params_file(&p, "/root.pem")->data, strlen(rootca));
    _cleanup_free_ char* chain = env_str(&p, "MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN");
    assert_memory_equal(chain, coord_params_file(&p, "/cert.pem")->data,
                        coord_params_file(&p, "/cert.pem")->len);
    assert_non_null(strstr(chain + 30, "-----BEGIN CERTIFICATE-----")); /* + intermediate */
    _cleanup_free_ char* pk = env_str(&p, "MARBLE_PREDEFINED_PRIVATE_KEY");
    assert_memory_equal(pk, kf->data, kf->len);
    _cleanup_free_ char* cr = env_str(&p, "MARBLE_PREDEFINED_COORDINATOR_ROOT_CA");
    assert_memory_equal(cr, coord_params_file(&p, "/coord.pem")->data, strlen(cr));

    /* NoTemplates copied verbatim; Argv never templated */
    const struct coord_param* v = coord_params_file(&p, "/verbatim");
    assert_int_equal(v->len, strlen("{{ not a template"));
    assert_memory_equal(v->data, "{{ not a template", v->len);
    assert_int_equal(p.argc, 2);
    assert_string_equal(p.argv[1], "{{ raw .Secrets.symPriv }}");

    /* §3.6 per-marble symmetric keys: stable per UUID, different for another UUID */
    assert_int_equal(coord_params_file(&p, "/sym.key")->len, 16);
    _cleanup_free_ char* sym_a = env_str(&p, "SYM_HEX");
    _cleanup_free_ char* prev  = env_str(&p, "PREV_HEX");
    assert_string_equal(sym_a, prev); /* no rotation: .Previous = current */
    assert_int_equal(strlen(sym_a), 32);
    ok(c, &m, NULL, 0, "hello", UUID_A, &p2);
    _cleanup_free_ char* sym_a2 = env_str(&p2, "SYM_HEX");
    assert_string_equal(sym_a, sym_a2);
    ok(c, &m, NULL, 0, "hello", UUID_B, &p3);
    _cleanup_free_ char* sym_b = env_str(&p3, "SYM_HEX");
    assert_string_not_equal(sym_a, sym_b);
    /* shared secrets are the same for everyone */
    assert_memory_equal(coord_params_file(&p, "/shared.hex")->data,
                        coord_params_file(&p3, "/shared.hex")->data, 64);

    X509_free(root);
    X509_free(leaf);
    X509_free(coord);
    X509_free(shared);
    X509_free(interm);
    coord_params_clear(&p);
    coord_params_clear(&p2);
    coord_params_clear(&p3);
    marble_free(&m);
    coord_core_free(c);
}

/* §4.3 error paths with their gRPC codes and messages. */
static void test_activate_errors(void** state) {
    (void)state;
    struct coord_core* c = core_sim(NULL, NULL);
    set_manifest(c);
    struct marble m = marble_new();
    refused(c, &m, NULL, 0, "nope", UUID_A, COORD_STATUS_PERMISSION_DENIED,
            "marble verification failed: unknown marble type requested");
    refused(c, &m, NULL, 0, "hello", "abc", COORD_STATUS_INVALID_ARGUMENT,
            "invalid UUID: invalid UUID length: 3");
    enum coord_status st  = COORD_STATUS_OK;
    struct moat_error err = {0};
    struct coord_params p = {0};
    assert_true(coord_core_activate(c, NULL, 0, m.csr, (size_t)m.csr_len, "hello", UUID_A, NULL, 0,
                                    &p, &st, &err) < 0);
    assert_int_equal(st, COORD_STATUS_UNAUTHENTICATED);
    assert_string_equal(err.msg, "couldn't get marble TLS certificate");
    /* a user-defined secret never uploaded is empty: rendering fails (Internal) */
    refused(c, &m, NULL, 0, "usersecret", UUID_A, COORD_STATUS_INTERNAL,
            "customizing marble parameters: parsing secrets for file \"/u\": ");
    /* a CSR whose self-signature does not verify */
    m.csr[m.csr_len - 1] ^= 1;
    refused(c, &m, NULL, 0, "hello", UUID_A, COORD_STATUS_INTERNAL,
            "generating marble authentication secrets: ");
    m.csr[m.csr_len - 1] ^= 1;
    /* MaxActivations: every activation counts, also with the same UUID */
    ok(c, &m, NULL, 0, "limited", UUID_A, &p);
    coord_params_clear(&p);
    ok(c, &m, NULL, 0, "limited", UUID_A, &p);
    coord_params_clear(&p);
    refused(c, &m, NULL, 0, "limited", UUID_B, COORD_STATUS_PERMISSION_DENIED,
            "marble verification failed: reached max activations count (2) for marble type "
            "\"limited\"");
    marble_free(&m);
    coord_core_free(c);
}

/* §4.4 real validation of quotes of moat's simulated platform. */
static void test_activate_quotes(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-core-sim-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct moat_error err = {0};
    assert_int_equal(sim_create(dir, 30, true, &err), 0);
    struct sim_platform* plat = NULL;
    assert_int_equal(sim_load(dir, &plat, &err), 0);
    struct marble m = marble_new(), other = marble_new();
    struct sim_enclave e = {.isvprodid = 1, .isvsvn = 1};
    memset(e.mrenclave, 0x11, 32);
    assert_int_equal(sha256_buf(m.cert, (size_t)m.cert_len, e.report_data), 0);
    uint8_t* raw = NULL;
    size_t len   = 0;
    assert_int_equal(sim_quote(plat, &e, &raw, &len, &err), 0);
    size_t total   = len + OE_REPORT_HEADER_SIZE;
    uint8_t* quote = xcalloc(1, total);
    quote[0]       = 1;
    quote[4]       = 2;
    for (int i = 0; i < 8; i++)
        quote[8 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(quote + OE_REPORT_HEADER_SIZE, raw, len);

    _cleanup_collateral_ struct collateral* col = NULL;
    _cleanup_x509_ X509* anchor                 = NULL;
    assert_int_equal(sim_load_verifier(dir, &col, &anchor, &err), 0);
    struct attest_verify_opts vo = {.anchor = anchor, .at = time(NULL)};

    struct coord_core_opts o = {.collateral = col, .verify_opts = &vo};
    struct coord_core* c     = NULL;
    assert_int_equal(coord_core_new(&o, &c, &err), 0);
    set_manifest(c);
    struct coord_params p = {0};
    ok(c, &m, quote, total, "hello", UUID_A, &p);
    assert_non_null(coord_params_env(&p, "MARBLE_PREDEFINED_PRIVATE_KEY"));
    coord_params_clear(&p);
    /* the package wants a debug enclave */
    refused(c, &m, quote, total, "debugmarble", UUID_A, COORD_STATUS_PERMISSION_DENIED,
            "marble verification failed: invalid quote: PackageProperties not compliant");
    /* the quote is bound to another TLS certificate */
    refused(c, &other, quote, total, "hello", UUID_A, COORD_STATUS_PERMISSION_DENIED,
            "marble verification failed: invalid quote: hash(cert) != report.Data");
    /* no quote at all: refused outside simulation */
    refused(c, &m, NULL, 0, "hello", UUID_A, COORD_STATUS_PERMISSION_DENIED,
            "marble verification failed: invalid quote: ");
    coord_core_free(c);
    /* no verifier and no simulation: refused at creation */
    assert_int_equal(coord_core_new(&(struct coord_core_opts){0}, &c, &err), -EINVAL);

    free(quote);
    free(raw);
    sim_free(plat);
    marble_free(&m);
    marble_free(&other);
    _cleanup_free_ char* cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* §3.4 restart: the same seal key restores (secrets, counters); another one gives Recovery. */
static void test_restart(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-core-seal-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct marble m       = marble_new();
    struct coord_params p = {0};
    struct coord_core* c  = core_sim(dir, SEAL_A);
    /* a restart before any manifest keeps the CA (state AcceptingManifest was committed) */
    uint8_t *r1, *r2;
    size_t l1, l2;
    assert_int_equal(coord_core_root_cert(c, &r1, &l1), 0);
    coord_core_free(c);
    c = core_sim(dir, SEAL_A);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MANIFEST);
    assert_int_equal(coord_core_root_cert(c, &r2, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(r1, r2, l1);
    OPENSSL_free(r1);
    OPENSSL_free(r2);
    set_manifest(c);
    ok(c, &m, NULL, 0, "hello", UUID_A, &p);
    _cleanup_free_ char* sym = env_str(&p, "SYM_HEX");
    _cleanup_free_ char* shared =
        xstrndup((const char*)coord_params_file(&p, "/shared.hex")->data, 64);
    _cleanup_free_ char* root = env_str(&p, "MARBLE_PREDEFINED_COORDINATOR_ROOT_CA");
    coord_params_clear(&p);
    ok(c, &m, NULL, 0, "limited", UUID_A, &p);
    coord_params_clear(&p);
    coord_core_free(c);

    c = core_sim(dir, SEAL_A);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    ok(c, &m, NULL, 0, "hello", UUID_A, &p);
    _cleanup_free_ char* sym2  = env_str(&p, "SYM_HEX");
    _cleanup_free_ char* root2 = env_str(&p, "MARBLE_PREDEFINED_COORDINATOR_ROOT_CA");
    assert_string_equal(sym, sym2);
    assert_string_equal(root, root2);
    assert_memory_equal(shared, coord_params_file(&p, "/shared.hex")->data, 64);
    coord_params_clear(&p);
    ok(c, &m, NULL, 0, "limited", UUID_A, &p); /* the second of two */
    coord_params_clear(&p);
    refused(c, &m, NULL, 0, "limited", UUID_A, COORD_STATUS_PERMISSION_DENIED,
            "marble verification failed: reached max activations count (2)");
    coord_core_free(c);

    c = core_sim(dir, SEAL_B);
    assert_int_equal(coord_core_state(c), COORD_STATE_RECOVERY);
    refused(c, &m, NULL, 0, "hello", UUID_A, COORD_STATUS_FAILED_PRECONDITION,
            "cannot accept marbles in current state");
    set_manifest(c); /* Recovery → AcceptingMarbles with a new state */
    ok(c, &m, NULL, 0, "limited", UUID_A, &p);
    coord_params_clear(&p);
    coord_core_free(c);
    c = core_sim(dir, SEAL_B);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    coord_core_free(c);

    marble_free(&m);
    _cleanup_free_ char* cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static struct coord_core* core_keys(const char* dir, const uint8_t* product,
                                    const uint8_t* unique) {
    struct coord_core_opts o = {
        .seal_dir = dir, .seal_key = product, .unique_seal_key = unique, .simulation = true};
    struct coord_core* c  = NULL;
    struct moat_error err = {0};
    if (coord_core_new(&o, &c, &err) < 0)
        fail_msg("coord_core_new: %s", err.msg);
    return c;
}

static const char SEAL_MANIFEST[] =
    "{\"Packages\": {\"p\": {\"UniqueID\": \"" MRENCLAVE_HEX
    "\"}}, \"Marbles\": {\"m\": {\"Package\": \"p\"}}, \"Config\": {\"SealMode\": \"%s\"}}";

static int set_seal_manifest(struct coord_core* c, const char* mode, struct moat_error* err) {
    _cleanup_free_ char* m = xasprintf(SEAL_MANIFEST, mode);
    return coord_core_set_manifest(c, m, strlen(m), NULL, err);
}

/* §1.6 SealMode: ProductKey (default) seals with the product key, UniqueKey with the unique
 * one (a state sealed with either loads), Disabled writes nothing after the manifest. */
static void test_seal_mode(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-core-sealmode-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct moat_error err   = {0};
    _cleanup_free_ char* rm = xasprintf("rm -rf '%s'", dir);

    /* UniqueKey: only a core that has the unique key loads it again */
    struct coord_core* c = core_keys(dir, SEAL_A, SEAL_B);
    assert_int_equal(set_seal_manifest(c, "UniqueKey", &err), 0);
    coord_core_free(c);
    c = core_keys(dir, SEAL_A, NULL); /* the same product, another build */
    assert_int_equal(coord_core_state(c), COORD_STATE_RECOVERY);
    coord_core_free(c);
    c = core_keys(dir, SEAL_A, SEAL_B);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    coord_core_free(c);
    assert_int_equal(system(rm), 0);

    /* ProductKey (and ""): another build of the product loads it */
    assert_non_null(mkdtemp(strcpy(dir, "/tmp/moat-core-sealmode-XXXXXX")));
    free(rm);
    rm = xasprintf("rm -rf '%s'", dir);
    c  = core_keys(dir, SEAL_A, SEAL_B);
    assert_int_equal(set_seal_manifest(c, "ProductKey", &err), 0);
    coord_core_free(c);
    c = core_keys(dir, SEAL_A, (const uint8_t*)"another build's unique key.....");
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    coord_core_free(c);
    assert_int_equal(system(rm), 0);

    /* UniqueKey without a unique key is refused, and nothing changes */
    assert_non_null(mkdtemp(strcpy(dir, "/tmp/moat-core-sealmode-XXXXXX")));
    free(rm);
    rm = xasprintf("rm -rf '%s'", dir);
    c  = core_keys(dir, SEAL_A, NULL);
    assert_int_equal(set_seal_manifest(c, "UniqueKey", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "SealMode UniqueKey"));
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MANIFEST);
    moat_error_clear(&err);

    /* Disabled: the manifest lives in memory only; a restart finds the CA of before */
    uint8_t *r1, *r2;
    size_t l1, l2;
    assert_int_equal(coord_core_root_cert(c, &r1, &l1), 0);
    assert_int_equal(set_seal_manifest(c, "Disabled", &err), 0);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    coord_core_free(c);
    c = core_keys(dir, SEAL_A, NULL);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MANIFEST);
    assert_int_equal(coord_core_root_cert(c, &r2, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(r1, r2, l1);
    OPENSSL_free(r1);
    OPENSSL_free(r2);
    coord_core_free(c);
    assert_int_equal(system(rm), 0);
}

/* Graphene-era templates (seeds 000/001): .Marblerun.* is .MarbleRun.*, and
 * {{ hex .Marblerun.SealKey }} a per-marble 128-bit key, stable for a UUID across restarts. */
static const char GRAPHENE_MANIFEST[] =
    "{\"Packages\": {\"p\": {\"UniqueID\": \"" MRENCLAVE_HEX
    "\"}}, \"Marbles\": {\"m\": {\"Package\": \"p\", \"Parameters\": {"
    "  \"Files\": {\"/dev/attestation/protected_files_key\": \"{{ hex .Marblerun.SealKey }}\","
    "             \"/root.pem\": \"{{ pem .Marblerun.RootCA.Cert }}\"}}}}}";

static char* seal_key_of(struct coord_core* c, const struct marble* m, const char* uuid) {
    struct coord_params p = {0};
    ok(c, m, NULL, 0, "m", uuid, &p);
    const struct coord_param* f = coord_params_file(&p, "/dev/attestation/protected_files_key");
    assert_non_null(f);
    assert_int_equal(f->len, 32); /* 128 bits in hex */
    char* k = xstrndup((const char*)f->data, f->len);
    assert_non_null(coord_params_file(&p, "/root.pem"));
    assert_non_null(strstr((const char*)coord_params_file(&p, "/root.pem")->data, "BEGIN"));
    coord_params_clear(&p);
    return k;
}

static void test_graphene_seal_key(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-core-sealkey-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct moat_error err = {0};
    struct marble m       = marble_new();
    struct coord_core* c  = core_sim(dir, SEAL_A);
    assert_int_equal(
        coord_core_set_manifest(c, GRAPHENE_MANIFEST, strlen(GRAPHENE_MANIFEST), NULL, &err), 0);
    _cleanup_free_ char* a1 = seal_key_of(c, &m, UUID_A);
    _cleanup_free_ char* a2 = seal_key_of(c, &m, UUID_A);
    _cleanup_free_ char* b1 = seal_key_of(c, &m, UUID_B);
    assert_string_equal(a1, a2);
    assert_string_not_equal(a1, b1);
    coord_core_free(c);
    c                       = core_sim(dir, SEAL_A);
    _cleanup_free_ char* a3 = seal_key_of(c, &m, UUID_A);
    assert_string_equal(a1, a3);
    coord_core_free(c);
    marble_free(&m);
    _cleanup_free_ char* cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Activations run concurrently; MaxActivations holds across threads (§4.3 step 6). */
struct race {
    struct coord_core* c;
    const struct marble* m;
    int ok;
};

static void* race_one(void* arg) {
    struct race* r        = arg;
    enum coord_status st  = COORD_STATUS_OK;
    struct moat_error err = {0};
    struct coord_params p = {0};
    if (activate(r->c, r->m, NULL, 0, "limited", UUID_B, &p, &st, &err) == 0)
        r->ok = 1;
    else if (st != COORD_STATUS_PERMISSION_DENIED)
        r->ok = -1;
    coord_params_clear(&p);
    return NULL;
}

static void test_concurrent(void** state) {
    (void)state;
    struct coord_core* c = core_sim(NULL, NULL);
    set_manifest(c);
    struct marble m = marble_new();
    struct race r[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct race){.c = c, .m = &m};
        assert_int_equal(pthread_create(&t[i], NULL, race_one, &r[i]), 0);
    }
    int n = 0;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_true(r[i].ok >= 0);
        n += r[i].ok;
    }
    assert_int_equal(n, 2);
    marble_free(&m);
    coord_core_free(c);
}

/* SetManifest's RecoverySecrets (§3.4): one RecoveryKey gets the DEK, RSA-OAEP-SHA256. */
static void test_recovery_secrets(void** state) {
    (void)state;
    EVP_PKEY* rsa = EVP_RSA_gen(2048);
    assert_non_null(rsa);
    BIO* b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PUBKEY(b, rsa), 1);
    char* pem;
    long n                 = BIO_get_mem_data(b, &pem);
    struct strbuf manifest = STRBUF_INIT;
    strbuf_append(&manifest, MANIFEST, strlen(MANIFEST) - 1); /* without the last '}' */
    strbuf_puts(&manifest, ", \"RecoveryKeys\": {\"admin\": \"");
    for (long i = 0; i < n; i++) {
        if (pem[i] == '\n')
            strbuf_puts(&manifest, "\\n");
        else
            strbuf_putc(&manifest, pem[i]);
    }
    strbuf_puts(&manifest, "\"}}");
    BIO_free(b);

    struct coord_core* c             = core_sim(NULL, NULL);
    struct coord_recovery_secrets rs = {0};
    struct moat_error err            = {0};
    if (coord_core_set_manifest(c, manifest.buf, manifest.len, &rs, &err) < 0)
        fail_msg("set manifest: %s", err.msg);
    assert_int_equal(rs.n, 1);
    assert_string_equal(rs.names[0], "admin");
    uint8_t* ct = NULL;
    size_t ct_len;
    assert_int_equal(
        base64_decode_alloc(rs.secrets_b64[0], strlen(rs.secrets_b64[0]), &ct, &ct_len), 0);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(rsa, NULL);
    assert_int_equal(EVP_PKEY_decrypt_init(ctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
    uint8_t dek[512];
    size_t dek_len = sizeof(dek);
    assert_int_equal(EVP_PKEY_decrypt(ctx, dek, &dek_len, ct, ct_len), 1);
    assert_int_equal(dek_len, 32);
    EVP_PKEY_CTX_free(ctx);
    free(ct);
    coord_recovery_secrets_clear(&rs);
    strbuf_free(&manifest);
    EVP_PKEY_free(rsa);
    coord_core_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_activate_sim),
        cmocka_unit_test(test_activate_errors),
        cmocka_unit_test(test_activate_quotes),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_recovery_secrets),
        cmocka_unit_test(test_seal_mode),
        cmocka_unit_test(test_graphene_seal_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
