/* SPDX-License-Identifier: Apache-2.0 */
/* Manifest updates in the core (reference/marblerun.md §1.8, §3.4 updateLog, §3.6). */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core.h"

static const uint8_t SEAL[32] = {7, 7, 7};

static char* user_pem(const char* cn) {
    EVP_PKEY* k = EVP_EC_gen("P-256");
    X509* x     = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const uint8_t*)cn, -1,
                               -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char* p;
    long n = BIO_get_mem_data(b, &p);
    /* JSON-escape the newlines */
    char* out = calloc(1, (size_t)n * 2 + 1);
    for (long i = 0, j = 0; i < n; i++) {
        if (p[i] == '\n') {
            out[j++] = '\\';
            out[j++] = 'n';
        } else {
            out[j++] = p[i];
        }
    }
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(k);
    return out;
}

static char *PEM_A, *PEM_B;

/* Two users with updatemanifest; alice may also update the package "pkg". */
static char* manifest(const char* extra_secret, unsigned threshold) {
    char* m = NULL;
    assert_true(asprintf(&m,
                         "{\"Packages\": {\"pkg\": {\"SignerID\": \"aa\", \"ProductID\": 1, "
                         "\"SecurityVersion\": 2}},"
                         " \"Marbles\": {\"m\": {\"Package\": \"pkg\"}},"
                         " \"Secrets\": {\"sym\": {\"Type\": \"symmetric-key\", \"Size\": 128, "
                         "\"Shared\": true}, \"cert\": {\"Type\": \"cert-ecdsa\", \"Size\": 256, "
                         "\"Shared\": true}%s},"
                         " \"Users\": {\"alice\": {\"Certificate\": \"%s\", \"Roles\": [\"upd\", "
                         "\"pkgs\"]}, \"bob\": {\"Certificate\": \"%s\", \"Roles\": [\"upd\"]}},"
                         " \"Roles\": {\"upd\": {\"ResourceType\": \"Manifest\", \"Actions\": "
                         "[\"UpdateManifest\"]}, \"pkgs\": {\"ResourceType\": \"Packages\", "
                         "\"ResourceNames\": [\"pkg\"], \"Actions\": [\"UpdateSecurityVersion\"]}},"
                         " \"Config\": {\"UpdateThreshold\": %u}}",
                         extra_secret, PEM_A, PEM_B, threshold) > 0);
    return m;
}

static struct coord_core* core_at(const char* dir) {
    struct coord_core_opts o = {.seal_dir = dir, .seal_key = SEAL, .simulation = true};
    struct coord_core* c     = NULL;
    struct moat_error err    = {0};
    if (coord_core_new(&o, &c, &err) < 0)
        fail_msg("coord_core_new: %s", err.msg);
    return c;
}

static struct coord_core* core_with(const char* dir, unsigned threshold) {
    struct coord_core* c  = core_at(dir);
    char* m               = manifest("", threshold);
    struct moat_error err = {0};
    if (coord_core_set_manifest(c, m, strlen(m), NULL, &err) < 0)
        fail_msg("set manifest: %s", err.msg);
    free(m);
    return c;
}

static void expect_err(int r, int code, const char* msg, const struct moat_error* err) {
    assert_int_equal(r, code);
    assert_string_equal(err->msg, msg);
}

static int update(struct coord_core* c, const char* user, const char* m,
                  struct coord_update_result* res, struct moat_error* err) {
    *res = (struct coord_update_result){0};
    return coord_core_update_manifest(c, user, m, strlen(m), res, err);
}

static bool log_has(struct coord_core* c, const char* needle) {
    char** lines;
    size_t n;
    struct moat_error err = {0};
    assert_int_equal(coord_core_update_log(c, &lines, &n, &err), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        found = found || strstr(lines[i], needle);
        free(lines[i]);
    }
    free(lines);
    return found;
}

/* §1.8 (a): each error string, then an applied SVN bump */
static void test_package_update(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-upd-pkgXXXXXX";
    assert_non_null(mkdtemp(dir));
    struct coord_core* c  = core_with(dir, 0);
    struct moat_error err = {0};
    struct coord_update_result res;
    expect_err(update(c, "bob", "{\"Packages\": {\"pkg\": {\"SecurityVersion\": 3}}}", &res, &err),
               -EACCES, "user bob is not allowed to update one or more packages of [pkg]", &err);
    expect_err(
        update(c, "alice", "{\"Packages\": {\"other\": {\"SecurityVersion\": 3}}}", &res, &err),
        -EACCES, "user alice is not allowed to update one or more packages of [other]", &err);
    expect_err(update(c, "alice",
                      "{\"Packages\": {\"pkg\": {\"Debug\": true, "
                      "\"SecurityVersion\": 3}}}",
                      &res, &err),
               -EINVAL, "checking update manifest: update manifest contains unupdatable values",
               &err);
    expect_err(update(c, "alice", "{\"Packages\": {\"pkg\": {}}}", &res, &err), -EINVAL,
               "checking update manifest: update manifest does not specify a SecurityVersion to "
               "update",
               &err);
    expect_err(
        update(c, "alice", "{\"Packages\": {\"pkg\": {\"SecurityVersion\": 1}}}", &res, &err),
        -EINVAL,
        "checking update manifest: update manifest tries to downgrade SecurityVersion of "
        "the original manifest",
        &err);
    uint64_t gen0 = coord_core_ca_generation(c);
    assert_int_equal(
        update(c, "alice", "{\"Packages\": {\"pkg\": {\"SecurityVersion\": 5}}}", &res, &err), 0);
    assert_true(res.applied);
    coord_update_result_clear(&res);
    assert_true(coord_core_ca_generation(c) != gen0);
    assert_true(log_has(c,
                        "\"update\":\"SecurityVersion increased\",\"user\":\"alice\","
                        "\"package\":\"pkg\",\"new version\":5"));
    assert_true(log_has(c, "Initial manifest set"));
    /* a downgrade below the new version is now refused, also after a restart */
    coord_core_free(c);
    c = core_at(dir);
    expect_err(
        update(c, "alice", "{\"Packages\": {\"pkg\": {\"SecurityVersion\": 4}}}", &res, &err),
        -EINVAL,
        "checking update manifest: update manifest tries to downgrade SecurityVersion of "
        "the original manifest",
        &err);
    coord_core_free(c);
}

/* §1.8 (b): two users, UpdateThreshold 0 (both), pending, wrong bytes, busy, restart, ack */
static void test_full_update(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-upd-fullXXXXXX";
    assert_non_null(mkdtemp(dir));
    struct coord_core* c  = core_with(dir, 0);
    struct moat_error err = {0};
    struct coord_update_result res;
    char* m2 =
        manifest(", \"new\": {\"Type\": \"symmetric-key\", \"Size\": 256, \"Shared\": true}", 0);
    assert_int_equal(update(c, "alice", m2, &res, &err), 0);
    assert_false(res.applied);
    assert_int_equal(res.missing_acks, 1);
    assert_int_equal(res.n_missing_users, 1);
    assert_string_equal(res.missing_users[0], "bob");
    coord_update_result_clear(&res);
    expect_err(update(c, "bob", m2, &res, &err), -EBUSY,
               "update already in progress. Acknowledge the update to apply it, or cancel it to "
               "start a new one",
               &err);
    /* the pending update survives a restart */
    coord_core_free(c);
    c            = core_at(dir);
    uint8_t* raw = NULL;
    size_t len   = 0;
    assert_int_equal(coord_core_pending_update(c, &raw, &len, &res, &err), 0);
    assert_memory_equal(raw, m2, strlen(m2));
    free(raw);
    coord_update_result_clear(&res);
    expect_err(coord_core_ack_update(c, "bob", "{}", 2, &res, &err), -EINVAL,
               "provided manifest does not match the pending manifest", &err);
    expect_err(coord_core_ack_update(c, "mallory", m2, strlen(m2), &res, &err), -EACCES,
               "user mallory is not allowed to acknowledge manifest updates", &err);
    uint64_t gen0 = coord_core_ca_generation(c);
    assert_int_equal(coord_core_ack_update(c, "bob", m2, strlen(m2), &res, &err), 0);
    assert_true(res.applied);
    coord_update_result_clear(&res);
    assert_true(coord_core_ca_generation(c) != gen0);
    expect_err(coord_core_pending_update(c, &raw, &len, &res, &err), -ENOENT,
               "no update in progress", &err);
    assert_true(log_has(c, "Complete Manifest updated"));
    coord_core_free(c);
    free(m2);
}

/* UpdateThreshold 1: the submitter's acknowledgement applies it; cancel */
static void test_threshold_cancel(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-upd-thrXXXXXX";
    assert_non_null(mkdtemp(dir));
    struct coord_core* c  = core_with(dir, 0);
    struct moat_error err = {0};
    struct coord_update_result res;
    char* m2 = manifest("", 1);
    assert_int_equal(update(c, "alice", m2, &res, &err), 0);
    coord_update_result_clear(&res);
    expect_err(coord_core_cancel_update(c, "mallory", &err), -EACCES,
               "user mallory is not allowed to cancel the manifest update", &err);
    assert_int_equal(coord_core_cancel_update(c, "bob", &err), 0);
    assert_true(log_has(c, "Complete Manifest update cancelled by user"));
    expect_err(coord_core_cancel_update(c, "bob", &err), -ENOENT, "no update in progress", &err);
    /* the threshold of the current manifest counts: 0 = both; apply m2 (threshold 1) first */
    assert_int_equal(update(c, "alice", m2, &res, &err), 0);
    coord_update_result_clear(&res);
    assert_int_equal(coord_core_ack_update(c, "bob", m2, strlen(m2), &res, &err), 0);
    assert_true(res.applied);
    coord_update_result_clear(&res);
    char* m3 = manifest("", 0);
    assert_int_equal(update(c, "bob", m3, &res, &err), 0);
    assert_true(res.applied); /* UpdateThreshold 1 */
    coord_update_result_clear(&res);
    coord_core_free(c);
    free(m2);
    free(m3);
}

int main(void) {
    PEM_A                           = user_pem("alice");
    PEM_B                           = user_pem("bob");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_package_update),
        cmocka_unit_test(test_full_update),
        cmocka_unit_test(test_threshold_cancel),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    free(PEM_A);
    free(PEM_B);
    return r;
}
