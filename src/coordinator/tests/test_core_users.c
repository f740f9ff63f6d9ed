/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for users, roles and user-defined secrets (reference/marblerun.md §1.3, §1.4, §3.5
 * "User auth", GET/POST /secrets), Marble client-certificate auth and monotonic counters
 * (§3.4, §3.5 /monotonic-counter), feature gates (§1.6) and /sign-quote (§3.5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "ca.h"
#include "core.h"
#include "marble_quote.h"
#include "sim.h"

#define UUID_A "8b9e8c6a-1d2f-4c5e-9a7b-123456789abc"
#define UUID_B "01234567-89ab-cdef-0123-456789abcdef"

/* A key pair and a self-signed certificate (users, uploaded cert secrets, forged marbles). */
struct ident {
    EVP_PKEY* key;
    uint8_t* der;
    int der_len;
    char* pem;
};

static struct ident ident_new(const char* cn, const char* marble_type) {
    struct ident id = {.key = EVP_EC_gen("P-256")};
    assert_non_null(id.key);
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const uint8_t*)cn, -1,
                               -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, id.key);
    if (marble_type) { /* the marble type extension, raw bytes as the Coordinator writes it */
        ASN1_OBJECT* oid      = OBJ_txt2obj(MOAT_OID_MARBLE_TYPE, 1);
        ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
        ASN1_OCTET_STRING_set(os, (const uint8_t*)marble_type, (int)strlen(marble_type));
        X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, os);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
        ASN1_OCTET_STRING_free(os);
        ASN1_OBJECT_free(oid);
    }
    assert_true(X509_sign(x, id.key, EVP_sha256()) > 0);
    id.der_len = i2d_X509(x, &id.der);
    BIO* b     = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char* p;
    long n = BIO_get_mem_data(b, &p);
    id.pem = xstrndup(p, (size_t)n);
    BIO_free(b);
    X509_free(x);
    return id;
}

static void ident_free(struct ident* id) {
    EVP_PKEY_free(id->key);
    OPENSSL_free(id->der);
    free(id->pem);
}

static char* b64(const void* p, size_t n) {
    return base64_encode_alloc(p, n);
}

static struct ident alice, bob, carol, stranger;

static int setup(void** state) {
    (void)state;
    alice    = ident_new("alice", NULL);
    bob      = ident_new("bob", NULL);
    carol    = ident_new("carol", NULL);
    stranger = ident_new("alice", NULL); /* same subject, another key */
    return 0;
}

static int teardown(void** state) {
    (void)state;
    ident_free(&alice);
    ident_free(&bob);
    ident_free(&carol);
    ident_free(&stranger);
    return 0;
}

/* Users alice (read + write + update), bob (reads sharedSym only), carol (no roles). */
static char* manifest_json(bool gates) {
    json_t* m = json_pack("{s:{s:{s:b}}, s:{s:{s:s, s:{s:{s:s, s:s, s:s}}}}}", "Packages", "p",
                          "Debug", 1, "Marbles", "m", "Package", "p", "Parameters", "Files",
                          "/plain", "{{ raw .Secrets.plainS }}", "/sym", "{{ hex .Secrets.symK }}",
                          "/cert", "{{ pem .Secrets.certS.Cert }}");
    json_t* secrets = json_pack(
        "{s:{s:s, s:b}, s:{s:s, s:i, s:b}, s:{s:s, s:i, s:b}, s:{s:s, s:b},"
        " s:{s:s, s:i, s:b}, s:{s:s, s:i}, s:{s:s, s:i, s:b, s:{s:{s:s}}}}",
        "plainS", "Type", "plain", "UserDefined", 1,                    /* */
        "symK", "Type", "symmetric-key", "Size", 128, "UserDefined", 1, /* */
        "sharedSym", "Type", "symmetric-key", "Size", 128, "Shared", 1, /* */
        "certS", "Type", "cert-ecdsa", "UserDefined", 1,                /* */
        "noSize", "Type", "symmetric-key", "Size", 0, "UserDefined", 1, /* */
        "privS", "Type", "symmetric-key", "Size", 128,                  /* */
        "sharedCert", "Type", "cert-ecdsa", "Size", 256, "Shared", 1, "Cert", "Subject",
        "CommonName", UUID_B);
    json_object_set_new(m, "Secrets", secrets);
    json_object_set_new(
        m, "Users",
        json_pack("{s:{s:s, s:[s,s,s]}, s:{s:s, s:[s]}, s:{s:s}}", "alice", "Certificate",
                  alice.pem, "Roles", "reader", "writer", "updater", "bob", "Certificate", bob.pem,
                  "Roles", "bobRole", "carol", "Certificate", carol.pem));
    json_object_set_new(
        m, "Roles",
        json_pack("{s:{s:s, s:[s,s,s,s,s], s:[s]}, s:{s:s, s:[s,s,s,s], s:[s]},"
                  " s:{s:s, s:[s], s:[s]}, s:{s:s, s:[s]}}",
                  "reader", "ResourceType", "Secrets", "ResourceNames", "plainS", "symK", "certS",
                  "sharedSym", "sharedCert", "Actions", "ReadSecret", /* */
                  "writer", "ResourceType", "Secrets", "ResourceNames", "plainS", "symK", "certS",
                  "noSize", "Actions", "WriteSecret", /* */
                  "bobRole", "ResourceType", "Secrets", "ResourceNames", "sharedSym", "Actions",
                  "readsecret", /* */
                  "updater", "ResourceType", "Manifest", "Actions", "UpdateManifest"));
    if (gates)
        json_object_set_new(
            m, "Config",
            json_pack("{s:[s,s]}", "FeatureGates", "MonotonicCounter", "SignQuoteEndpoint"));
    char* s = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    assert_non_null(s);
    return s;
}

static struct coord_core* core_new(const char* dir, bool manifest, bool gates) {
    static const uint8_t seal[32] = {4, 5, 6};
    struct coord_core_opts o = {.seal_dir = dir, .seal_key = dir ? seal : NULL, .simulation = true};
    struct coord_core* c     = NULL;
    struct moat_error err    = {0};
    if (coord_core_new(&o, &c, &err) < 0)
        fail_msg("coord_core_new: %s", err.msg);
    if (manifest) {
        _cleanup_free_ char* m = manifest_json(gates);
        if (coord_core_set_manifest(c, m, strlen(m), NULL, &err) < 0)
            fail_msg("set manifest: %s", err.msg);
    }
    return c;
}

static void expect_msg(const struct moat_error* err, const char* want) {
    if (strcmp(err->msg, want) != 0)
        fail_msg("got '%s', want '%s'", err->msg, want);
}

/* §3.5 "User auth": byte-equal certificates; the exact messages. */
static void test_auth_user(void** state) {
    (void)state;
    struct moat_error err = {0};
    char* user            = NULL;
    struct coord_core* c  = core_new(NULL, false, false);
    assert_int_equal(coord_core_auth_user(c, alice.der, (size_t)alice.der_len, &user, &err),
                     -EPERM);
    expect_msg(&err, "server is not in expected state");
    coord_core_free(c);

    c = core_new(NULL, true, false);
    assert_int_equal(coord_core_auth_user(c, NULL, 0, &user, &err), -ENOKEY);
    expect_msg(&err, "no client certificate provided");
    assert_int_equal(coord_core_auth_user(c, alice.der, (size_t)alice.der_len, &user, &err), 0);
    assert_string_equal(user, "alice");
    free(user);
    assert_int_equal(coord_core_auth_user(c, bob.der, (size_t)bob.der_len, &user, &err), 0);
    assert_string_equal(user, "bob");
    free(user);
    user = NULL;
    /* same subject as alice, another key; and alice's DER with one byte changed */
    assert_int_equal(coord_core_auth_user(c, stranger.der, (size_t)stranger.der_len, &user, &err),
                     -EACCES);
    expect_msg(&err, "unauthorized user: client certificate did not match any MarbleRun users");
    alice.der[alice.der_len - 1] ^= 1;
    assert_int_equal(coord_core_auth_user(c, alice.der, (size_t)alice.der_len, &user, &err),
                     -EACCES);
    alice.der[alice.der_len - 1] ^= 1;
    assert_int_equal(coord_core_auth_user(c, alice.der, (size_t)alice.der_len - 1, &user, &err),
                     -EACCES);
    assert_null(user);
    coord_core_free(c);
}

/* §1.4 the role model: actions case-insensitive, names case-sensitive, union over roles. */
static void test_user_allowed(void** state) {
    (void)state;
    struct coord_core* c = core_new(NULL, true, false);
    assert_true(coord_core_user_allowed(c, "alice", "Secrets", "plainS", "readsecret"));
    assert_true(coord_core_user_allowed(c, "alice", "Secrets", "plainS", "ReadSecret"));
    assert_true(coord_core_user_allowed(c, "alice", "Secrets", "noSize", "writesecret"));
    assert_false(coord_core_user_allowed(c, "alice", "Secrets", "noSize", "readsecret"));
    assert_false(coord_core_user_allowed(c, "alice", "Secrets", "plains", "readsecret"));
    assert_false(coord_core_user_allowed(c, "alice", "Packages", "plainS", "readsecret"));
    assert_true(coord_core_user_allowed(c, "alice", "Manifest", NULL, "updatemanifest"));
    assert_true(coord_core_user_allowed(c, "bob", "Secrets", "sharedSym", "readsecret"));
    assert_false(coord_core_user_allowed(c, "bob", "Secrets", "plainS", "readsecret"));
    assert_false(coord_core_user_allowed(c, "bob", "Secrets", "sharedSym", "writesecret"));
    assert_false(coord_core_user_allowed(c, "bob", "Manifest", NULL, "updatemanifest"));
    assert_false(coord_core_user_allowed(c, "carol", "Secrets", "sharedSym", "readsecret"));
    assert_false(coord_core_user_allowed(c, "mallory", "Secrets", "sharedSym", "readsecret"));
    assert_false(coord_core_user_allowed(c, NULL, "Secrets", "sharedSym", "readsecret"));
    coord_core_free(c);
}

static json_t* get_ok(struct coord_core* c, const char* user, const char* const* names, size_t n) {
    struct moat_error err = {0};
    json_t* out           = NULL;
    if (coord_core_get_secrets(c, user, names, n, &out, &err) < 0)
        fail_msg("get secrets: %s", err.msg);
    return out;
}

/* §3.5 GET /secrets: the Secret JSON as MarbleRun marshals it; permission messages. */
static void test_get_secrets(void** state) {
    (void)state;
    struct moat_error err = {0};
    json_t* out           = NULL;
    struct coord_core* c  = core_new(NULL, false, false);
    const char* one[]     = {"sharedSym"};
    assert_int_equal(coord_core_get_secrets(c, "alice", one, 1, &out, &err), -EPERM);
    expect_msg(&err, "server is not in expected state");
    coord_core_free(c);

    c                         = core_new(NULL, true, false);
    const char* names[]       = {"plainS", "sharedSym"};
    out                       = get_ok(c, "alice", names, 2);
    _cleanup_free_ char* text = json_dumps(json_object_get(out, "plainS"), JSON_COMPACT);
    /* never uploaded: the definition, nil bytes as null, in Go's field order */
    assert_string_equal(text,
                        "{\"Type\":\"plain\",\"Size\":0,\"Shared\":false,\"UserDefined\":"
                        "true,\"Cert\":null,\"ValidFor\":0,\"Private\":null,\"Public\":null}");
    json_t* sym = json_object_get(out, "sharedSym");
    assert_string_equal(json_string_value(json_object_get(sym, "Type")), "symmetric-key");
    assert_int_equal(json_integer_value(json_object_get(sym, "Size")), 128);
    assert_true(json_is_true(json_object_get(sym, "Shared")));
    assert_true(json_is_null(json_object_get(sym, "Cert")));
    const char* priv = json_string_value(json_object_get(sym, "Private"));
    assert_non_null(priv);
    assert_int_equal(strlen(priv), 24); /* 16 bytes */
    assert_string_equal(priv, json_string_value(json_object_get(sym, "Public")));
    json_decref(out);

    /* bob may read sharedSym, not plainS: Go's %v of the requested slice */
    out = get_ok(c, "bob", one, 1);
    json_decref(out);
    const char* two[] = {"sharedSym", "plainS"};
    out               = NULL;
    assert_int_equal(coord_core_get_secrets(c, "bob", two, 2, &out, &err), -EACCES);
    expect_msg(&err, "user bob is not allowed to read one or more secrets of: [sharedSym plainS]");
    assert_int_equal(coord_core_get_secrets(c, "carol", one, 1, &out, &err), -EACCES);
    expect_msg(&err, "user carol is not allowed to read one or more secrets of: [sharedSym]");
    const char* nosuch[] = {"nosuch"};
    assert_int_equal(coord_core_get_secrets(c, "alice", nosuch, 1, &out, &err), -EACCES);
    assert_null(out);
    coord_core_free(c);
}

static int wr(struct coord_core* c, const char* user, const char* body, struct moat_error* err) {
    return coord_core_write_secrets(c, user, body, strlen(body), err);
}

static void write_refused(struct coord_core* c, const char* user, const char* body, int code,
                          const char* want) {
    struct moat_error err = {0};
    assert_int_equal(wr(c, user, body, &err), code);
    expect_msg(&err, want);
}

static const char* priv_of(struct coord_core* c, const char* name, json_t** keep) {
    const char* names[] = {name};
    *keep               = get_ok(c, "alice", names, 1);
    json_t* v           = json_object_get(json_object_get(*keep, name), "Private");
    return json_is_null(v) ? NULL : json_string_value(v);
}

/* The marble "m" renders /plain, /sym and /cert from the user-defined secrets. */
static void activate_m(struct coord_core* c, struct coord_params* p, struct moat_error* err,
                       int want) {
    struct ident m       = ident_new("marble", NULL);
    enum coord_status st = COORD_STATUS_OK;
    int r = coord_core_activate(c, NULL, 0, NULL, 0, "m", UUID_A, m.der, (size_t)m.der_len, p, &st,
                                err);
    ident_free(&m);
    if (want == 0 && r < 0)
        fail_msg("activate: %s", err->msg);
    assert_int_equal(r < 0, want < 0);
}

static char* cert_body(void) {
    struct ident cs           = ident_new("user cert", NULL);
    uint8_t* pk               = NULL;
    int n                     = i2d_PrivateKey(cs.key, &pk);
    _cleanup_free_ char* cert = b64(cs.der, (size_t)cs.der_len);
    _cleanup_free_ char* key  = b64(pk, (size_t)n);
    OPENSSL_free(pk);
    ident_free(&cs);
    return xasprintf("{\"certS\": {\"Cert\": \"%s\", \"Private\": \"%s\"}}", cert, key);
}

/* §3.5 POST /secrets: every type, good and bad, atomic, rendered by activations. */
static void test_write_secrets(void** state) {
    (void)state;
    struct moat_error err = {0};
    struct coord_core* c  = core_new(NULL, true, false);
    struct coord_params p = {0};
    /* not uploaded yet: rendering fails */
    activate_m(c, &p, &err, -1);

    /* each bad case, with MarbleRun's text */
    write_refused(c, "alice", "{}", -EINVAL, "parsing new secrets: no new secrets defined");
    write_refused(c, "alice", "null", -EINVAL, "parsing new secrets: no new secrets defined");
    write_refused(c, "alice", "[1]", -EINVAL,
                  "invalid secrets: want an object of secret name to {Cert, Private, Key}");
    write_refused(c, "alice", "{\"nope\": {\"Key\": \"AA==\"}}", -EINVAL,
                  "parsing new secrets: secret manifest specifies a secret which the original "
                  "manifest does not contain");
    write_refused(c, "alice", "{\"privS\": {\"Key\": \"AA==\"}}", -EINVAL,
                  "parsing new secrets: secret privS is not writeable");
    write_refused(c, "alice", "{\"sharedSym\": {\"Key\": \"AA==\"}}", -EINVAL,
                  "parsing new secrets: secret sharedSym is not writeable");
    write_refused(c, "alice", "{\"symK\": {\"Key\": \"AAAA\"}}", -EINVAL,
                  "parsing new secrets: declared size and actual size don't match: symK");
    write_refused(c, "alice", "{\"noSize\": {\"Key\": \"AAAA\"}}", -EINVAL,
                  "parsing new secrets: invalid secret size: noSize");
    write_refused(c, "alice",
                  "{\"symK\": {\"Key\": \"AAAAAAAAAAAAAAAAAAAAAA==\", \"Private\": \"AA==\"}}",
                  -EINVAL,
                  "parsing new secrets: secret symK is set to be of type symmetric-key but "
                  "specified values for a certificate");
    write_refused(c, "alice", "{\"plainS\": {\"Key\": \"AA==\", \"Private\": \"AA==\"}}", -EINVAL,
                  "parsing new secrets: secret plainS is set to be of type symmetric-key but "
                  "specified values for a certificate");
    write_refused(c, "alice", "{\"certS\": {\"Key\": \"AA==\"}}", -EINVAL,
                  "parsing new secrets: secret certS is set to be of type cert-ecdsa but "
                  "specified values for a symmetric-key");
    write_refused(c, "alice", "{\"certS\": {\"Private\": \"AA==\"}}", -EINVAL,
                  "parsing new secrets: x509: unsupported public key type: <nil>");
    write_refused(c, "alice", "{\"certS\": {\"Cert\": \"AAAA\"}}", -EINVAL,
                  "parsing new secrets: secret certS: Cert: not a DER X.509 certificate");
    write_refused(c, "alice", "{\"plainS\": {\"Key\": \"A\"}}", -EINVAL,
                  "parsing new secrets: secret plainS: Key: illegal base64 data at input byte 0");
    write_refused(c, "alice", "{\"plainS\": {\"Key\": 5}}", -EINVAL,
                  "parsing new secrets: secret plainS: Key must be a base64 string");
    write_refused(c, "alice", "{\"plainS\": {\"Key\": \"aGk=\"", -EINVAL,
                  "invalid secrets: '}' expected near end of file");
    /* permission: bob and carol may not write; the message names the (smallest) secret */
    write_refused(c, "bob",
                  "{\"symK\": {\"Key\": \"AAAAAAAAAAAAAAAAAAAAAA==\"},"
                  " \"plainS\": {\"Key\": \"aGk=\"}}",
                  -EACCES, "user bob is not allowed to update secret: plainS");
    write_refused(c, "carol", "{\"plainS\": {\"Key\": \"aGk=\"}}", -EACCES,
                  "user carol is not allowed to update secret: plainS");
    json_t* keep = NULL;
    assert_null(priv_of(c, "plainS", &keep)); /* nothing was written */
    json_decref(keep);

    /* good: all three types in one request */
    _cleanup_free_ char* cb = cert_body();
    if (wr(c, "alice", cb, &err) < 0)
        fail_msg("write cert: %s", err.msg);
    if (wr(c, "alice",
           "{\"plainS\": {\"Key\": \"aGVsbG8=\"},"
           " \"symK\": {\"key\": \"AAECAwQFBgcICQoLDA0ODw==\"}}",
           &err) < 0)
        fail_msg("write: %s", err.msg);
    assert_string_equal(priv_of(c, "plainS", &keep), "aGVsbG8=");
    json_decref(keep);
    const char* names[] = {"certS"};
    keep                = get_ok(c, "alice", names, 1);
    json_t* cs          = json_object_get(keep, "certS");
    assert_true(json_is_string(json_object_get(cs, "Cert")));
    assert_true(json_is_string(json_object_get(cs, "Public"))); /* PKIX of the cert's key */
    assert_true(json_is_true(json_object_get(cs, "UserDefined")));
    json_decref(keep);

    /* activations see the values */
    activate_m(c, &p, &err, 0);
    const struct coord_param* f = coord_params_file(&p, "/plain");
    assert_non_null(f);
    assert_int_equal(f->len, 5);
    assert_memory_equal(f->data, "hello", 5);
    f = coord_params_file(&p, "/sym");
    assert_int_equal(f->len, 32);
    assert_memory_equal(f->data, "000102030405060708090a0b0c0d0e0f", 32);
    assert_non_null(strstr((const char*)coord_params_file(&p, "/cert")->data, "BEGIN CERT"));
    coord_params_clear(&p);

    /* atomic: a good plainS with a bad symK writes nothing */
    write_refused(c, "alice",
                  "{\"plainS\": {\"Key\": \"d29ybGQ=\"}, \"symK\": {\"Key\": \"AA==\"}}", -EINVAL,
                  "parsing new secrets: declared size and actual size don't match: symK");
    assert_string_equal(priv_of(c, "plainS", &keep), "aGVsbG8=");
    json_decref(keep);
    /* an overwrite is seen by the next activation */
    if (wr(c, "alice", "{\"plainS\": {\"Key\": \"d29ybGQ=\"}}", &err) < 0)
        fail_msg("write: %s", err.msg);
    activate_m(c, &p, &err, 0);
    assert_memory_equal(coord_params_file(&p, "/plain")->data, "world", 5);
    coord_params_clear(&p);
    /* the update log says who set which secret, never the value */
    char** lines = NULL;
    size_t nl    = 0;
    assert_int_equal(coord_core_update_log(c, &lines, &nl, &err), 0);
    bool seen = false;
    for (size_t i = 0; i < nl; i++) {
        seen |= strstr(lines[i], "\"update\":\"Secret set\"") && strstr(lines[i], "\"plainS\"") &&
                strstr(lines[i], "\"alice\"");
        assert_null(strstr(lines[i], "d29ybGQ"));
        free(lines[i]);
    }
    free(lines);
    assert_true(seen);
    coord_core_free(c);

    /* before a manifest */
    c = core_new(NULL, false, false);
    write_refused(c, "alice", "{\"plainS\": {\"Key\": \"aGk=\"}}", -EPERM,
                  "server is not in expected state");
    coord_core_free(c);
}

static void* writer(void* arg) {
    struct coord_core* c = arg;
    for (int i = 0; i < 40; i++) {
        struct moat_error err = {0};
        const char* body      = i % 2 ? "{\"plainS\": {\"Key\": \"aGVsbG8=\"}}"
                                      : "{\"plainS\": {\"Key\": \"d29ybGQ=\"}}";
        if (wr(c, "alice", body, &err) < 0)
            return (void*)1;
    }
    return NULL;
}

/* POST /secrets while Marbles activate: each activation renders one whole value. */
static void test_write_concurrent(void** state) {
    (void)state;
    struct moat_error err   = {0};
    struct coord_core* c    = core_new(NULL, true, false);
    _cleanup_free_ char* cb = cert_body();
    assert_int_equal(wr(c, "alice", cb, &err), 0);
    assert_int_equal(
        wr(c, "alice",
           "{\"symK\": {\"Key\": \"AAECAwQFBgcICQoLDA0ODw==\"}, \"plainS\": {\"Key\": \"aGk=\"}}",
           &err),
        0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer, c), 0);
    for (int i = 0; i < 40; i++) {
        struct coord_params p = {0};
        activate_m(c, &p, &err, 0);
        const struct coord_param* f = coord_params_file(&p, "/plain");
        assert_true(
            (f->len == 2 && !memcmp(f->data, "hi", 2)) ||
            (f->len == 5 && (!memcmp(f->data, "hello", 5) || !memcmp(f->data, "world", 5))));
        coord_params_clear(&p);
    }
    void* ret = NULL;
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    coord_core_free(c);
}

/* The marble leaf of an activation, from MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN. */
static int leaf_of(const struct coord_params* p, uint8_t** ret) {
    const struct coord_param* e = coord_params_env(p, "MARBLE_PREDEFINED_MARBLE_CERTIFICATE_CHAIN");
    assert_non_null(e);
    BIO* b  = BIO_new_mem_buf(e->data, (int)e->len);
    X509* x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    *ret  = NULL;
    int n = i2d_X509(x, ret);
    X509_free(x);
    return n;
}

/* §3.5 /monotonic-counter client auth: a real leaf passes; forgeries do not. */
static void test_auth_marble(void** state) {
    (void)state;
    struct moat_error err = {0};
    struct coord_core* c  = core_new(NULL, true, true);
    assert_int_equal(wr(c, "alice", "{\"plainS\": {\"Key\": \"aGk=\"}}", &err), 0);
    _cleanup_free_ char* cb = cert_body();
    assert_int_equal(wr(c, "alice", cb, &err), 0);
    assert_int_equal(wr(c, "alice", "{\"symK\": {\"Key\": \"AAECAwQFBgcICQoLDA0ODw==\"}}", &err),
                     0);
    struct coord_params p = {0};
    activate_m(c, &p, &err, 0);
    uint8_t* leaf = NULL;
    int n         = leaf_of(&p, &leaf);
    coord_params_clear(&p);
    char *type = NULL, *uuid = NULL;
    if (coord_core_auth_marble(c, leaf, (size_t)n, &type, &uuid, &err) < 0)
        fail_msg("auth marble: %s", err.msg);
    assert_string_equal(type, "m");
    assert_string_equal(uuid, UUID_A);
    free(type);
    free(uuid);
    type = uuid = NULL;
    /* a tampered signature */
    leaf[n - 1] ^= 1;
    assert_int_equal(coord_core_auth_marble(c, leaf, (size_t)n, &type, &uuid, &err), -EACCES);
    leaf[n - 1] ^= 1;
    OPENSSL_free(leaf);

    /* self-signed with the same CN and extension */
    struct ident forged = ident_new(UUID_A, "m");
    assert_int_equal(
        coord_core_auth_marble(c, forged.der, (size_t)forged.der_len, &type, &uuid, &err), -EACCES);
    if (strncmp(err.msg, "x509: certificate signed by unknown authority", 45) != 0)
        fail_msg("%s", err.msg);
    ident_free(&forged);
    /* issued by the marble root, but a secret (no marble type): CN is UUID_B */
    const char* names[] = {"sharedCert"};
    json_t* out         = get_ok(c, "alice", names, 1);
    const char* cert64 =
        json_string_value(json_object_get(json_object_get(out, "sharedCert"), "Cert"));
    uint8_t* der   = NULL;
    size_t der_len = 0;
    assert_int_equal(base64_decode_alloc(cert64, strlen(cert64), &der, &der_len), 0);
    json_decref(out);
    assert_int_equal(coord_core_auth_marble(c, der, der_len, &type, &uuid, &err), -EACCES);
    expect_msg(&err, "MarbleType extension not found in certificate");
    free(der);
    assert_int_equal(coord_core_auth_marble(c, NULL, 0, &type, &uuid, &err), -ENOKEY);
    expect_msg(&err, "no client certificate provided");
    assert_null(type);
    assert_null(uuid);
    coord_core_free(c);
}

static uint64_t set_counter(struct coord_core* c, const char* name, uint64_t v) {
    struct moat_error err = {0};
    uint64_t prev         = 12345;
    if (coord_core_set_monotonic_counter(c, "m", UUID_A, name, v, &prev, &err) < 0)
        fail_msg("set counter: %s", err.msg);
    return prev;
}

/* §3.5 SetMonotonicCounter: max(old, value), the previous value back; the feature gate. */
static void test_counters(void** state) {
    (void)state;
    struct moat_error err = {0};
    uint64_t prev         = 0;
    struct coord_core* c  = core_new(NULL, false, false);
    assert_int_equal(coord_core_set_monotonic_counter(c, "m", UUID_A, "x", 1, &prev, &err), -EPERM);
    expect_msg(&err, "server is not in expected state");
    assert_false(coord_core_feature_gate(c, "MonotonicCounter"));
    coord_core_free(c);

    c = core_new(NULL, true, false); /* no FeatureGates */
    assert_false(coord_core_feature_gate(c, "MonotonicCounter"));
    assert_int_equal(coord_core_set_monotonic_counter(c, "m", UUID_A, "x", 1, &prev, &err),
                     -EOPNOTSUPP);
    expect_msg(&err, "MonotonicCounter feature is not enabled in the manifest");
    coord_core_free(c);

    c = core_new(NULL, true, true);
    assert_true(coord_core_feature_gate(c, "MonotonicCounter"));
    assert_true(coord_core_feature_gate(c, "signquoteendpoint"));
    assert_false(coord_core_feature_gate(c, "AzureHSMSealing"));
    assert_int_equal(set_counter(c, "x", 5), 0);
    assert_int_equal(set_counter(c, "x", 3), 5); /* lower: kept */
    assert_int_equal(set_counter(c, "x", 5), 5);
    assert_int_equal(set_counter(c, "x", 9), 5);
    assert_int_equal(set_counter(c, "x", 0), 9);
    assert_int_equal(set_counter(c, "y", UINT64_MAX), 0); /* another name: its own */
    assert_int_equal(set_counter(c, "y", 1), UINT64_MAX);
    /* the same counter for the UUID in another spelling; another UUID is another counter */
    assert_int_equal(coord_core_set_monotonic_counter(c, "m", "8B9E8C6A1D2F4C5E9A7B123456789ABC",
                                                      "x", 1, &prev, &err),
                     0);
    assert_int_equal(prev, 9);
    assert_int_equal(coord_core_set_monotonic_counter(c, "m", UUID_B, "x", 1, &prev, &err), 0);
    assert_int_equal(prev, 0);
    assert_int_equal(coord_core_set_monotonic_counter(c, "m", "nope", "x", 1, &prev, &err),
                     -EINVAL);
    expect_msg(&err, "invalid UUID: invalid UUID length: 4");
    coord_core_free(c);
}

/* §3.4 a restart from the same seal dir keeps written secrets and counters. */
static void test_restart(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-core-users-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct moat_error err = {0};
    struct coord_core* c  = core_new(dir, true, true);
    assert_int_equal(wr(c, "alice", "{\"plainS\": {\"Key\": \"aGVsbG8=\"}}", &err), 0);
    _cleanup_free_ char* cb = cert_body();
    assert_int_equal(wr(c, "alice", cb, &err), 0);
    assert_int_equal(wr(c, "alice", "{\"symK\": {\"Key\": \"AAECAwQFBgcICQoLDA0ODw==\"}}", &err),
                     0);
    assert_int_equal(set_counter(c, "x", 42), 0);
    const char* names[] = {"plainS", "symK", "certS"};
    json_t* before      = get_ok(c, "alice", names, 3);
    coord_core_free(c);

    c = core_new(dir, false, false);
    assert_int_equal(coord_core_state(c), COORD_STATE_ACCEPTING_MARBLES);
    json_t* after = get_ok(c, "alice", names, 3);
    assert_true(json_equal(before, after));
    json_decref(before);
    json_decref(after);
    assert_int_equal(set_counter(c, "x", 1), 42);
    struct coord_params p = {0};
    activate_m(c, &p, &err, 0);
    assert_memory_equal(coord_params_file(&p, "/plain")->data, "hello", 5);
    coord_params_clear(&p);
    coord_core_free(c);
    _cleanup_free_ char* cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* §3.5 /sign-quote with a quote of moat's simulated platform, checked with the root key. */
static void test_sign_quote(void** state) {
    (void)state;
    char dir[] = "/tmp/moat-core-users-sim-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct moat_error err = {0};
    assert_int_equal(sim_create(dir, 30, true, &err), 0);
    struct sim_platform* plat = NULL;
    assert_int_equal(sim_load(dir, &plat, &err), 0);
    struct sim_enclave e = {.isvprodid = 1, .isvsvn = 1};
    memset(e.mrenclave, 0x22, 32);
    uint8_t* raw = NULL;
    size_t len   = 0;
    assert_int_equal(sim_quote(plat, &e, &raw, &len, &err), 0);

    _cleanup_collateral_ struct collateral* col = NULL;
    _cleanup_x509_ X509* anchor                 = NULL;
    assert_int_equal(sim_load_verifier(dir, &col, &anchor, &err), 0);
    struct attest_verify_opts vo = {.anchor = anchor, .at = time(NULL)};

    struct coord_core_opts o = {.collateral = col, .verify_opts = &vo};
    struct coord_core* c     = NULL;
    assert_int_equal(coord_core_new(&o, &c, &err), 0);
    char* tcb    = NULL;
    uint8_t* sig = NULL;
    size_t sig_len;
    /* before a manifest: the gate is off */
    assert_int_equal(coord_core_sign_quote(c, raw, len, &tcb, &sig, &sig_len, &err), -EOPNOTSUPP);
    expect_msg(&err, "SignQuoteEndpoint feature is not enabled in the manifest");
    _cleanup_free_ char* m = manifest_json(true);
    assert_int_equal(coord_core_set_manifest(c, m, strlen(m), NULL, &err), 0);

    if (coord_core_sign_quote(c, raw, len, &tcb, &sig, &sig_len, &err) < 0)
        fail_msg("sign quote: %s", err.msg);
    assert_string_equal(tcb, "UpToDate");
    /* the signature: ECDSA(root key, sha256(base64(quote) || tcbStatus)) */
    uint8_t* root_der = NULL;
    size_t root_len   = 0;
    assert_int_equal(coord_core_root_cert(c, &root_der, &root_len), 0);
    const uint8_t* rp2 = root_der;
    X509* root         = d2i_X509(NULL, &rp2, (long)root_len);
    assert_non_null(root);
    _cleanup_free_ char* b   = b64(raw, len);
    _cleanup_free_ char* msg = xasprintf("%s%s", b, tcb);
    EVP_MD_CTX* md           = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(root)), 1);
    assert_int_equal(EVP_DigestVerify(md, sig, sig_len, (const uint8_t*)msg, strlen(msg)), 1);
    /* not over another status */
    _cleanup_free_ char* other = xasprintf("%sOutOfDate", b);
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, X509_get0_pubkey(root)), 1);
    assert_int_not_equal(EVP_DigestVerify(md, sig, sig_len, (const uint8_t*)other, strlen(other)),
                         1);
    EVP_MD_CTX_free(md);
    free(tcb);
    free(sig);
    tcb = NULL;
    sig = NULL;

    /* behind an OpenEnclave header it verifies as well */
    size_t total   = len + OE_REPORT_HEADER_SIZE;
    uint8_t* quote = xcalloc(1, total);
    quote[0]       = 1;
    quote[4]       = 2;
    for (int i = 0; i < 8; i++)
        quote[8 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(quote + OE_REPORT_HEADER_SIZE, raw, len);
    assert_int_equal(coord_core_sign_quote(c, quote, total, &tcb, &sig, &sig_len, &err), 0);
    free(tcb);
    free(sig);
    tcb = NULL;
    sig = NULL;
    /* a tampered quote and garbage are refused */
    raw[len / 2] ^= 1;
    assert_int_equal(coord_core_sign_quote(c, raw, len, &tcb, &sig, &sig_len, &err), -EINVAL);
    if (strncmp(err.msg, "quote verification failed: ", 27) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(coord_core_sign_quote(c, (const uint8_t*)"xyz", 3, &tcb, &sig, &sig_len, &err),
                     -EINVAL);
    assert_null(tcb);
    assert_null(sig);
    coord_core_free(c);

    /* simulation mode has no verifier */
    c = core_new(NULL, true, true);
    assert_int_equal(coord_core_sign_quote(c, raw, len, &tcb, &sig, &sig_len, &err), -EOPNOTSUPP);
    expect_msg(&err,
               "sign-quote: the Coordinator runs in simulation mode and has no quote "
               "verifier");
    coord_core_free(c);

    X509_free(root);
    OPENSSL_free(root_der);
    free(quote);
    free(raw);
    sim_free(plat);
    _cleanup_free_ char* cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_user),        cmocka_unit_test(test_user_allowed),
        cmocka_unit_test(test_get_secrets),      cmocka_unit_test(test_write_secrets),
        cmocka_unit_test(test_auth_marble),      cmocka_unit_test(test_counters),
        cmocka_unit_test(test_restart),          cmocka_unit_test(test_sign_quote),
        cmocka_unit_test(test_write_concurrent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
