/* SPDX-License-Identifier: Apache-2.0 */
/* The MarbleRun manifest model (reference/marblerun.md §1): Go encoding/json semantics, File
 * forms, Check (§1.7) rule by rule with MarbleRun's exact strings, CheckUpdate (§1.8), and the
 * upstream Gramine samples (§9; MOAT_MARBLERUN_SAMPLES, skipped when absent). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
// clang-format off
#include <cmocka.h>
// clang-format on
#include <jansson.h>

#include "coordinator.h"

static struct coord_manifest* parse_ok(const char* json) {
    struct coord_manifest* m = NULL;
    struct moat_error err    = {0};
    int r                    = coord_manifest_parse(json, strlen(json), &m, &err);
    if (r < 0)
        fail_msg("parse failed: %s\n%s", err.msg, json);
    return m;
}

static void parse_fails(const char* json, const char* want) {
    struct coord_manifest* m = NULL;
    struct moat_error err    = {0};
    assert_int_equal(coord_manifest_parse(json, strlen(json), &m, &err), -EINVAL);
    assert_null(m);
    if (strncmp(err.msg, want, strlen(want)) != 0)
        fail_msg("want \"%s...\", got \"%s\"", want, err.msg);
}

static void check_is(const char* json, const char* want) {
    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(json);
    struct moat_error err                             = {0};
    int r                                             = coord_manifest_check(m, &err);
    if (!want) {
        if (r != 0)
            fail_msg("check failed: %s", err.msg);
        return;
    }
    assert_int_equal(r, -EINVAL);
    assert_string_equal(err.msg, want);
}

/* A package + marble that pass, followed by the caller's sections. */
#define PKG_OK "\"p\":{\"SignerID\":\"ab\",\"ProductID\":0,\"SecurityVersion\":0}"
#define BASE   "{\"Packages\":{" PKG_OK "},\"Marbles\":{\"m\":{\"Package\":\"p\"}}"

/* ---------------------------------------------------------------------------------------- */
/* Go encoding/json semantics                                                                 */

static void test_case_insensitive_fields(void** state) {
    (void)state;
    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(
        "{\"packages\":{\"P\":{\"signerid\":\"AB\",\"PRODUCTID\":7,\"securityVersion\":0,"
        "\"debug\":true}},\"MARBLES\":{\"m\":{\"package\":\"P\",\"maxactivations\":3,"
        "\"parameters\":{\"argv\":[\"a\"],\"env\":{\"E\":\"v\"}}}},\"config\":{\"sealmode\":"
        "\"UniqueKey\"}}");
    assert_int_equal(m->n_packages, 1);
    const struct coord_package* p = coord_manifest_package(m, "P");
    assert_non_null(p);
    assert_null(coord_manifest_package(m, "p")); /* map keys are case-sensitive */
    assert_string_equal(p->signer_id, "AB");
    assert_true(p->has_product_id);
    assert_int_equal(p->product_id, 7);
    assert_true(p->has_security_version); /* 0 is a value */
    assert_int_equal(p->security_version, 0);
    assert_true(p->debug);
    const struct coord_marble* mb = coord_manifest_marble(m, "m");
    assert_int_equal(mb->max_activations, 3);
    assert_int_equal(mb->argv.n, 1);
    assert_string_equal(mb->env.v[0].name, "E");
    assert_string_equal(m->config.seal_mode, "UniqueKey");
}

static void test_case_variants_merge_maps(void** state) {
    (void)state;
    /* both members decode into the same map, the later one's entries replace equal keys */
    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(
        "{\"Packages\":{\"a\":{\"SignerID\":\"1\"},\"b\":{}},"
        "\"packages\":{\"a\":{\"UniqueID\":\"2\"}}}");
    assert_int_equal(m->n_packages, 2);
    const struct coord_package* a = coord_manifest_package(m, "a");
    assert_string_equal(a->signer_id, ""); /* a fresh element, not merged */
    assert_string_equal(a->unique_id, "2");
}

static void test_unknown_and_null(void** state) {
    (void)state;
    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(
        "{\"Nope\":[1,2],\"Packages\":{\"p\":{\"ProductID\":null,\"SecurityVersion\":"
        "null,\"UniqueID\":null,\"Debug\":null,\"Extra\":{}}},\"Marbles\":null,"
        "\"Config\":null,\"Clients\":{\"x\":1}}");
    const struct coord_package* p = coord_manifest_package(m, "p");
    assert_false(p->has_product_id);
    assert_false(p->has_security_version);
    assert_string_equal(p->unique_id, "");
    assert_int_equal(m->n_marbles, 0);
    assert_string_equal(m->config.seal_mode, "");

    /* null clears a map given earlier under a case variant */
    _cleanup_coord_manifest_ struct coord_manifest* m2 =
        parse_ok("{\"Marbles\":{\"m\":{}},\"marbles\":null}");
    assert_int_equal(m2->n_marbles, 0);

    /* a top-level null is an empty manifest */
    _cleanup_coord_manifest_ struct coord_manifest* m3 = parse_ok("null");
    assert_int_equal(m3->n_packages, 0);
}

static void test_type_errors(void** state) {
    (void)state;
    parse_fails("[]", "json: cannot unmarshal array into Go value of type manifest.Manifest");
    parse_fails("", "unexpected end of JSON input");
    parse_fails("{\"Packages\":", "invalid JSON: ");
    parse_fails("{\"Packages\":{\"w\":{\"ProductID\":\"1\"}}}",
                "json: cannot unmarshal string into Go struct field "
                "PackageProperties.Packages.w.ProductID of type uint64");
    parse_fails("{\"Marbles\":{\"m\":{\"MaxActivations\":-1}}}",
                "json: cannot unmarshal number -1 into Go struct field "
                "Marble.Marbles.m.MaxActivations of type uint");
    parse_fails("{\"Marbles\":{\"m\":{\"MaxActivations\":1.5}}}",
                "json: cannot unmarshal number 1.5 into Go struct field "
                "Marble.Marbles.m.MaxActivations of type uint");
    parse_fails("{\"Packages\":{\"w\":{\"SecurityVersion\":1e3}}}",
                "json: cannot unmarshal number 1000 into Go struct field "
                "PackageProperties.Packages.w.SecurityVersion of type uint");
    parse_fails("{\"Marbles\":[]}",
                "json: cannot unmarshal array into Go struct field "
                "Manifest.Marbles of type map[string]manifest.Marble");
    parse_fails("{\"Marbles\":{\"m\":{\"TLS\":[\"a\",1]}}}",
                "json: cannot unmarshal number into Go struct field Marble.Marbles.m.TLS of type "
                "string");
    parse_fails("{\"Config\":{\"UpdateThreshold\":true}}",
                "json: cannot unmarshal bool into Go struct field Config.Config.UpdateThreshold "
                "of type uint");
    parse_fails("{\"Users\":{\"u\":{\"Certificate\":5}}}",
                "json: cannot unmarshal number into Go struct field User.Users.u.Certificate of "
                "type string");
    /* jansson cannot hold integers beyond int64 (Go would accept up to 2^64-1 for uint64) */
    parse_fails("{\"Packages\":{\"w\":{\"ProductID\":18446744073709551616}}}", "invalid JSON: ");
    /* the first type error is reported, decoding goes on (Go's saveError) */
    parse_fails("{\"Marbles\":{\"a\":{\"Package\":1},\"b\":{\"Package\":2}}}",
                "json: cannot unmarshal number into Go struct field Marble.Marbles.a.Package");
    /* ...but an UnmarshalJSON error (File) wins over an earlier type error */
    parse_fails(
        "{\"Marbles\":{\"a\":{\"Package\":1},\"b\":{\"Parameters\":{\"Files\":{\"f\":"
        "{\"Encoding\":\"zip\"}}}}}}",
        "unknown encoding type: zip (at Marbles.b.Parameters.Files.f)");
}

static void test_raw_and_fingerprint(void** state) {
    (void)state;
    const char* json                                  = "{ \"Packages\" : {}\n}\n";
    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(json);
    assert_int_equal(m->raw_len, strlen(json));
    assert_memory_equal(m->raw, json, strlen(json));
    /* sha256 of the bytes above, from coreutils sha256sum */
    assert_int_equal(strlen(m->fingerprint), 64);
    uint8_t d[32];
    char hex[65];
    assert_int_equal(sha256_buf(json, strlen(json), d), 0);
    assert_int_equal(hex_encode(d, 32, hex, sizeof(hex)), 64);
    assert_string_equal(m->fingerprint, hex);
}

/* ---------------------------------------------------------------------------------------- */
/* File values (§1.2)                                                                         */

static const struct coord_file* file0(const struct coord_manifest* m) {
    return &m->marbles[0].files.v[0];
}

static void file_is(const char* value, const void* data, size_t len, enum coord_file_encoding enc,
                    bool no_templates) {
    _cleanup_free_ char* json =
        xasprintf("{\"Marbles\":{\"m\":{\"Parameters\":{\"Files\":{\"/f\":%s}}}}}", value);
    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(json);
    const struct coord_file* f                        = file0(m);
    assert_int_equal(f->len, len);
    assert_memory_equal(f->data, data, len);
    assert_int_equal(f->encoding, enc);
    assert_int_equal(f->no_templates, no_templates);
}

static void file_fails(const char* value, const char* want) {
    _cleanup_free_ char* json =
        xasprintf("{\"Marbles\":{\"m\":{\"Parameters\":{\"Files\":{\"/f\":%s}}}}}", value);
    _cleanup_free_ char* full = xasprintf("%s (at Marbles.m.Parameters.Files./f)", want);
    struct coord_manifest* m  = NULL;
    struct moat_error err     = {0};
    assert_int_equal(coord_manifest_parse(json, strlen(json), &m, &err), -EINVAL);
    assert_string_equal(err.msg, full);
}

static void test_file_forms(void** state) {
    (void)state;
    file_is("\"{{ raw .Secrets.k }}\"", "{{ raw .Secrets.k }}", 20, COORD_ENCODING_STRING, false);
    file_is("{\"Data\":\"abc\"}", "abc", 3, COORD_ENCODING_STRING, false);
    file_is("{\"Data\":\"abc\",\"Encoding\":\"\",\"NoTemplates\":true}", "abc", 3,
            COORD_ENCODING_STRING, true);
    file_is("{\"data\":\"AAEC/w==\",\"ENCODING\":\"Base64\"}", "\x00\x01\x02\xff", 4,
            COORD_ENCODING_BASE64, false);
    file_is("{\"Data\":\"QU\\nJD\\r\\n\",\"Encoding\":\"base64\"}", "ABC", 3, COORD_ENCODING_BASE64,
            false);
    file_is("{\"Data\":\"00fFaB\",\"Encoding\":\"HEX\"}", "\x00\xff\xab", 3, COORD_ENCODING_HEX,
            false);
    file_is("{\"Data\":\"a\\u0000b\"}", "a\0b", 3, COORD_ENCODING_STRING, false);
    file_is("{\"Encoding\":\"hex\"}", "", 0, COORD_ENCODING_HEX, false);
    file_is("{\"Data\":null,\"NoTemplates\":null,\"x\":1}", "", 0, COORD_ENCODING_STRING, false);

    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(
        "{\"Marbles\":{\"m\":{\"Parameters\":{\"Files\":{\"/f\":{\"Encoding\":\"Hex\"}}}}}}");
    assert_string_equal(file0(m)->encoding_name, "Hex");
}

static void test_file_errors(void** state) {
    (void)state;
    file_fails("{\"Data\":\"x\",\"Encoding\":\"gzip\"}", "unknown encoding type: gzip");
    file_fails("null", "got: %!t(<nil>), expected: string or interface");
    file_fails("1",
               "json: cannot unmarshal number into Go value of type struct { Data string; "
               "Encoding string; NoTemplates bool }");
    file_fails("[\"x\"]",
               "json: cannot unmarshal array into Go value of type struct { Data "
               "string; Encoding string; NoTemplates bool }");
    file_fails("{\"Data\":1}",
               "json: cannot unmarshal number into Go struct field .Data of type string");
    file_fails("{\"NoTemplates\":\"yes\"}",
               "json: cannot unmarshal string into Go struct field .NoTemplates of type bool");
    /* Go's base64 decoder: offsets as Go reports them */
    file_fails("{\"Data\":\"QUJD!\",\"Encoding\":\"base64\"}",
               "illegal base64 data at input byte 4");
    file_fails("{\"Data\":\"QUJ\",\"Encoding\":\"base64\"}", "illegal base64 data at input byte 0");
    file_fails("{\"Data\":\"QUJDQQ\",\"Encoding\":\"base64\"}",
               "illegal base64 data at input byte 4");
    file_fails("{\"Data\":\"QQ=\",\"Encoding\":\"base64\"}", "illegal base64 data at input byte 3");
    file_fails("{\"Data\":\"QQ==QQ==\",\"Encoding\":\"base64\"}",
               "illegal base64 data at input byte 4");
    file_fails("{\"Data\":\"=QQQ\",\"Encoding\":\"base64\"}",
               "illegal base64 data at input byte 0");
    file_fails("{\"Data\":\"QUJD-\",\"Encoding\":\"base64\"}",
               "illegal base64 data at input byte 4");
    /* Go's hex decoder */
    file_fails("{\"Data\":\"abc\",\"Encoding\":\"hex\"}", "encoding/hex: odd length hex string");
    file_fails("{\"Data\":\"abcg\",\"Encoding\":\"hex\"}",
               "encoding/hex: invalid byte: U+0067 'g'");
    file_fails("{\"Data\":\"zb\",\"Encoding\":\"hex\"}", "encoding/hex: invalid byte: U+007A 'z'");
    file_fails("{\"Data\":\"abz\",\"Encoding\":\"hex\"}", "encoding/hex: invalid byte: U+007A 'z'");
    file_fails("{\"Data\":\"a\\n\",\"Encoding\":\"hex\"}", "encoding/hex: invalid byte: U+000A");
}

/* ---------------------------------------------------------------------------------------- */
/* Secrets and the other sections                                                             */

static void test_secrets_parse(void** state) {
    (void)state;
    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(
        "{\"Secrets\":{\"c\":{\"Type\":\"cert-ecdsa\",\"Size\":256,\"Shared\":true,\"ValidFor\":"
        "7,\"Cert\":{\"Subject\":{\"CommonName\":\"x\"},\"DNSNames\":[\"a\"],\"notafter\":"
        "\"2030-01-02T03:04:05.5+01:00\"}},\"k\":{\"Type\":\"symmetric-key\",\"Size\":128,"
        "\"UserDefined\":true,\"Private\":\"AAE=\",\"Cert\":null},"
        "\"z\":{\"Type\":\"cert-rsa\",\"Cert\":{\"NotAfter\":\"0001-01-01T00:00:00Z\"}}},"
        "\"RecoveryKeys\":{\"r\":\"PEM\"},\"Infrastructures\":{\"azure\":{\"QESVN\":2}},"
        "\"Roles\":{\"R\":{\"ResourceType\":\"Secrets\",\"ResourceNames\":[\"k\"],"
        "\"Actions\":[\"ReadSecret\"]}},\"Users\":{\"u\":{\"Certificate\":\"C\",\"Roles\":"
        "[\"R\"]}},\"TLS\":{\"t\":{\"Incoming\":[{\"Port\":\"1\",\"Cert\":\"c\","
        "\"DisableClientAuth\":true}],\"Outgoing\":[{\"Addr\":\"a\",\"Port\":\"2\"}]}},"
        "\"Config\":{\"FeatureGates\":[\"MonotonicCounter\"],\"UpdateThreshold\":1,"
        "\"RecoveryThreshold\":2,\"RotateRootSecret\":true}}");
    const struct coord_secret* c = coord_manifest_secret(m, "c");
    assert_string_equal(c->type, "cert-ecdsa");
    assert_int_equal(c->size, 256);
    assert_true(c->shared);
    assert_int_equal(c->valid_for, 7);
    assert_true(c->has_not_after);
    assert_int_equal(c->not_after, 1893549845); /* 2030-01-02T02:04:05Z */
    assert_non_null(c->cert_template);
    json_t* subject = coord_json_field(c->cert_template, "subject");
    assert_string_equal(json_string_value(coord_json_field(subject, "CommonName")), "x");
    const struct coord_secret* k = coord_manifest_secret(m, "k");
    assert_true(k->user_defined);
    assert_int_equal(k->private_len, 2);
    assert_null(k->cert_template);
    assert_false(coord_manifest_secret(m, "z")->has_not_after); /* Go's zero time */
    assert_string_equal(m->recovery_keys[0].value, "PEM");
    assert_int_equal(m->n_infrastructures, 1);
    assert_int_equal(json_integer_value(json_object_get(m->infrastructures[0].value, "QESVN")), 2);
    const struct coord_tls_tag* t = coord_manifest_tls(m, "t");
    assert_int_equal(t->n_incoming, 1);
    assert_true(t->incoming[0].disable_client_auth);
    assert_string_equal(t->outgoing[0].addr, "a");
    assert_string_equal(t->outgoing[0].cert, "");
    assert_int_equal(m->config.update_threshold, 1);
    assert_int_equal(m->config.recovery_threshold, 2);
    assert_true(m->config.rotate_root_secret);
    assert_int_equal(m->config.feature_gates.n, 1);

    parse_fails("{\"Secrets\":{\"s\":{\"Private\":\"A\"}}}",
                "illegal base64 data at input byte 0 (at Secrets.s.Private)");
    parse_fails("{\"Secrets\":{\"s\":{\"Cert\":{\"NotAfter\":\"tomorrow\"}}}}",
                "parsing time \"\\\"tomorrow\\\"\"");
    parse_fails("{\"Secrets\":{\"s\":{\"Cert\":{\"NotAfter\":1}}}}",
                "Time.UnmarshalJSON: input is not a JSON string");
    parse_fails("{\"Secrets\":{\"s\":{\"Cert\":\"AAAA\"}}}", "x509: malformed certificate");
    parse_fails("{\"Secrets\":{\"s\":{\"Cert\":[]}}}",
                "json: cannot unmarshal array into Go value of type x509.Certificate");
    /* a Cert string that is not base64 is ignored upstream */
    _cleanup_coord_manifest_ struct coord_manifest* m2 =
        parse_ok("{\"Secrets\":{\"s\":{\"Cert\":\"!\"}}}");
    assert_null(m2->secrets[0].cert_der);
}

/* ---------------------------------------------------------------------------------------- */
/* Check (§1.7), in MarbleRun's order                                                         */

static void test_check_packages_marbles(void** state) {
    (void)state;
    check_is("{}", "no allowed packages defined");
    check_is("{\"Packages\":{" PKG_OK "}}", "no allowed marbles defined");
    check_is("{\"Packages\":{" PKG_OK "},\"Marbles\":{\"m\":{\"Package\":\"q\"}}}",
             "manifest does not contain marble package q");
    check_is(BASE "}", NULL);
    check_is(
        "{\"Packages\":{\"p\":{\"UniqueID\":\"u\",\"SignerID\":\"s\"}},\"Marbles\":{\"m\":{"
        "\"Package\":\"p\"}}}",
        "manifest specifies both UniqueID *and* SignerID/ProductID/SecurityVersion in "
        "package p");
    check_is(
        "{\"Packages\":{\"p\":{\"UniqueID\":\"u\",\"ProductID\":0}},\"Marbles\":{\"m\":{"
        "\"Package\":\"p\"}}}",
        "manifest specifies both UniqueID *and* SignerID/ProductID/SecurityVersion in "
        "package p");
    check_is(
        "{\"Packages\":{\"p\":{\"UniqueID\":\"u\",\"SecurityVersion\":0,\"Debug\":true}},"
        "\"Marbles\":{\"m\":{\"Package\":\"p\"}}}",
        NULL);
    check_is("{\"Packages\":{\"p\":{\"UniqueID\":\"u\"}},\"Marbles\":{\"m\":{\"Package\":\"p\"}}}",
             NULL);
    check_is(
        "{\"Packages\":{\"p\":{\"ProductID\":1,\"SecurityVersion\":1}},\"Marbles\":{\"m\":{"
        "\"Package\":\"p\"}}}",
        "manifest misses value for SignerID in package p");
    check_is(
        "{\"Packages\":{\"p\":{\"SignerID\":\"s\",\"SecurityVersion\":1}},\"Marbles\":{"
        "\"m\":{\"Package\":\"p\"}}}",
        "manifest misses value for ProductID in package p");
    check_is(
        "{\"Packages\":{\"p\":{\"SignerID\":\"s\",\"ProductID\":1}},\"Marbles\":{\"m\":{"
        "\"Package\":\"p\"}}}",
        "manifest misses value for SecurityVersion in package p");
    check_is("{\"Packages\":{\"p\":{\"Debug\":true}},\"Marbles\":{\"m\":{\"Package\":\"p\"}}}",
             NULL);
    check_is(BASE ",\"Marbles\":{\"m\":{\"Package\":\"p\",\"TLS\":[\"web\"]}}}",
             "manifest misses TLS entry for web");
    /* map order: Go's is random, ours is by key */
    check_is("{\"Packages\":{" PKG_OK
             "},\"Marbles\":{\"b\":{\"Package\":\"y\"},\"a\":{"
             "\"Package\":\"x\"}}}",
             "manifest does not contain marble package x");
}

#define TLS_MARBLE "\"Marbles\":{\"m\":{\"Package\":\"p\",\"TLS\":[\"t\"]}}"
static void tls_is(const char* tag, const char* want) {
    _cleanup_free_ char* json =
        xasprintf(BASE ",%s,\"Secrets\":{\"s\":{\"Type\":\"cert-ecdsa\"}},\"TLS\":{\"t\":%s}}",
                  TLS_MARBLE, tag);
    check_is(json, want);
}

static void test_check_tls(void** state) {
    (void)state;
    tls_is("{\"Incoming\":[{\"Port\":\"1\"}],\"Outgoing\":[{\"Port\":\"2\",\"Addr\":\"a\"}]}",
           NULL);
    tls_is("{\"Incoming\":[{\"Port\":\"1\",\"Cert\":\"s\",\"DisableClientAuth\":true}]}", NULL);
    tls_is("{\"Incoming\":[{\"Addr\":\"1\"}]}", "manifest misses Port in TLS.Incoming.t");
    tls_is("{\"Incoming\":[{\"Port\":\"1\",\"Cert\":\"nope\",\"DisableClientAuth\":true}]}",
           "TLS.Incoming.t references undefined secret nope");
    tls_is("{\"Incoming\":[{\"Port\":\"1\",\"Cert\":\"s\"}]}",
           "TLS.Incoming.t defines Cert but does not disable client authentication");
    tls_is("{\"Incoming\":[{\"Port\":\"1\",\"DisableClientAuth\":true}]}",
           "TLS.Incoming.t disables client authentication");
    tls_is("{\"Outgoing\":[{\"Port\":\"1\"}]}", "manifest misses Addr in TLS.Outgoing.t");
    tls_is("{\"Outgoing\":[{\"Addr\":\"a\"}]}", "manifest misses Port in TLS.Outgoing.t");
}

static void test_check_users(void** state) {
    (void)state;
    check_is(BASE ",\"Users\":{\"u\":{\"Roles\":[]}}}",
             "manifest does not contain a certificate for user u");
    check_is(BASE ",\"Users\":{\"u\":{\"Certificate\":\"c\",\"Roles\":[\"r\"]}}}",
             "manifest specifies role r for user u, but role does not exist");
    check_is(BASE ",\"Users\":{\"a\":{\"Certificate\":\"c\"},\"b\":{\"Certificate\":\"c\"}}}",
             "manifest contains the same certificate for users b and a");
    check_is(BASE ",\"Users\":{\"a\":{\"Certificate\":\"c\"},\"b\":{\"Certificate\":\"d\"}}}",
             NULL);
}

static void role_is(const char* role, const char* want) {
    _cleanup_free_ char* json =
        xasprintf(BASE
                  ",\"Secrets\":{\"shared\":{\"Type\":\"symmetric-key\",\"Shared\":true},"
                  "\"mine\":{\"Type\":\"symmetric-key\"},\"ud\":{\"Type\":\"plain\","
                  "\"UserDefined\":true}},\"Roles\":{\"r\":%s}}",
                  role);
    check_is(json, want);
}

static void test_check_roles(void** state) {
    (void)state;
    role_is(
        "{\"ResourceType\":\"Packages\",\"ResourceNames\":[\"p\"],\"Actions\":["
        "\"updateSecurityVersion\"]}",
        NULL);
    role_is("{\"ResourceType\":\"Packages\",\"ResourceNames\":[\"q\"]}",
            "role r: resource q of type Packages is not defined in manifest");
    role_is(
        "{\"ResourceType\":\"Packages\",\"ResourceNames\":[\"p\"],\"Actions\":[\"ReadSecret\"]}",
        "unknown action: ReadSecret for type Packages in role: r");
    role_is(
        "{\"ResourceType\":\"Secrets\",\"ResourceNames\":[\"shared\",\"ud\"],\"Actions\":["
        "\"readsecret\"]}",
        NULL);
    role_is(
        "{\"ResourceType\":\"Secrets\",\"ResourceNames\":[\"ud\"],\"Actions\":["
        "\"WriteSecret\",\"ReadSecret\"]}",
        NULL);
    role_is(
        "{\"ResourceType\":\"Secrets\",\"ResourceNames\":[\"nope\"],\"Actions\":["
        "\"UpdateManifest\"]}",
        "unknown action: UpdateManifest for type Secrets in role: r");
    role_is(
        "{\"ResourceType\":\"Secrets\",\"ResourceNames\":[\"nope\"],\"Actions\":["
        "\"ReadSecret\"]}",
        "role r: resource nope of type Secrets is not defined in manifest");
    role_is(
        "{\"ResourceType\":\"Secrets\",\"ResourceNames\":[\"shared\"],\"Actions\":["
        "\"WriteSecret\"]}",
        "manifest specifies write permission for role r and secret shared, but secret is "
        "not user-defined");
    role_is(
        "{\"ResourceType\":\"Secrets\",\"ResourceNames\":[\"mine\"],\"Actions\":["
        "\"ReadSecret\"]}",
        "manifest specifies read permission for role r and per-marble-unique secret mine");
    role_is("{\"ResourceType\":\"Manifest\",\"Actions\":[\"UpdateManifest\"]}", NULL);
    role_is(
        "{\"ResourceType\":\"Manifest\",\"ResourceNames\":[\"x\"],\"Actions\":["
        "\"UpdateManifest\"]}",
        "role r: resource names are not allowed for type Manifest");
    role_is("{\"ResourceType\":\"Manifest\",\"Actions\":[\"ReadSecret\"]}",
            "unknown action: ReadSecret for type Manifest in role: r");
    /* resource types are case-sensitive; upstream prints the Role struct with %s */
    role_is("{\"ResourceType\":\"secrets\",\"ResourceNames\":[\"a\",\"b\"],\"Actions\":[\"x\"]}",
            "unrecognized resource type: {secrets [a b] [x]} for role: r");
    role_is("{}", "unrecognized resource type: { [] []} for role: r");
}

static void secret_is(const char* secret, const char* want) {
    _cleanup_free_ char* json = xasprintf(BASE ",\"Secrets\":{\"s\":%s}}", secret);
    check_is(json, want);
}

static void test_check_secrets(void** state) {
    (void)state;
    static const char* const ok[] = {"cert-ecdsa", "cert-rsa", "cert-ed25519", "symmetric-key",
                                     "plain"};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        _cleanup_free_ char* s = xasprintf("{\"Type\":\"%s\"}", ok[i]);
        secret_is(s, NULL);
    }
    secret_is("{\"Type\":\"Cert-ECDSA\"}", "unknown type: Cert-ECDSA for secret: s");
    secret_is("{}", "unknown type:  for secret: s");
    secret_is(
        "{\"Type\":\"cert-rsa\",\"ValidFor\":3,\"Cert\":{\"NotAfter\":"
        "\"2030-01-01T00:00:00Z\"}}",
        "ambiguous certificate validity duration for secret: s, both NotAfter and "
        "ValidFor are specified");
    secret_is("{\"Type\":\"cert-rsa\",\"Cert\":{\"NotAfter\":\"2030-01-01T00:00:00Z\"}}", NULL);
    secret_is(
        "{\"Type\":\"cert-rsa\",\"ValidFor\":3,\"Cert\":{\"NotAfter\":"
        "\"0001-01-01T00:00:00Z\"}}",
        NULL);
    /* symmetric keys never look at NotAfter */
    secret_is(
        "{\"Type\":\"symmetric-key\",\"ValidFor\":3,\"Cert\":{\"NotAfter\":"
        "\"2030-01-01T00:00:00Z\"}}",
        NULL);
}

#define UPDATER_ROLES                                                                           \
    "\"Roles\":{\"upd\":{\"ResourceType\":\"Manifest\",\"Actions\":[\"UpdateManifest\"]},"      \
    "\"upd2\":{\"ResourceType\":\"Manifest\",\"Actions\":[\"updatemanifest\"]},\"pk\":{"        \
    "\"ResourceType\":\"Packages\",\"Actions\":[\"UpdateSecurityVersion\"]}},\"Users\":{\"a\":" \
    "{\"Certificate\":\"1\",\"Roles\":[\"upd\",\"upd2\"]},\"b\":{\"Certificate\":\"2\","        \
    "\"Roles\":[\"pk\"]},\"c\":{\"Certificate\":\"3\",\"Roles\":[\"upd2\"]}}"

static void test_check_config(void** state) {
    (void)state;
    check_is(BASE "," UPDATER_ROLES ",\"Config\":{\"UpdateThreshold\":2}}", NULL);
    check_is(BASE "," UPDATER_ROLES ",\"Config\":{\"UpdateThreshold\":3}}",
             "not enough users with manifest update permissions (2) to meet the threshold of 3");
    check_is(BASE ",\"Config\":{\"UpdateThreshold\":1}}",
             "not enough users with manifest update permissions (0) to meet the threshold of 1");
    check_is(BASE ",\"Config\":{\"SealMode\":\"Disabled\"}}", NULL);
    check_is(BASE ",\"Config\":{\"SealMode\":\"ProductKey\"}}", NULL);
    check_is(BASE ",\"Config\":{\"SealMode\":\"UniqueKey\"}}", NULL);
    check_is(BASE ",\"Config\":{\"SealMode\":\"uniquekey\"}}", "unknown seal mode: uniquekey");
    check_is(BASE ",\"Config\":{\"FeatureGates\":[\"signquoteendpoint\",\"MonotonicCounter\"]}}",
             NULL);
    check_is(BASE ",\"Config\":{\"FeatureGates\":[\"FeatureFlags\"]}}",
             "unknown feature gate: FeatureFlags");
    unsetenv("EDG_MAA_URL");
    unsetenv("EDG_AZURE_CLIENT_SECRET");
    unsetenv("AZURE_FEDERATED_TOKEN_FILE");
    setenv("EDG_AZURE_HSM_VAULT_URL", "https://v", 1);
    setenv("EDG_AZURE_HSM_KEY_NAME", "k", 1);
    setenv("EDG_AZURE_CLIENT_ID", "c", 1);
    setenv("EDG_AZURE_TENANT_ID", "t", 1);
    check_is(BASE ",\"Config\":{\"FeatureGates\":[\"AzureHSMSealing\"]}}",
             "manifest enables sealing with Azure HSM key, but required environment variables "
             "are not set: [EDG_MAA_URL EDG_AZURE_CLIENT_SECRET]");
    setenv("EDG_MAA_URL", "https://maa", 1);
    setenv("EDG_AZURE_CLIENT_SECRET", "s", 1);
    check_is(BASE ",\"Config\":{\"FeatureGates\":[\"AzureHSMSealing\"]}}", NULL);
}

static void test_check_recovery(void** state) {
    (void)state;
    check_is(BASE ",\"RecoveryKeys\":{\"a\":\"k\"},\"Config\":{\"RecoveryThreshold\":2}}",
             "not enough recovery keys (1) defined to meet the recovery threshold of 2");
    check_is(BASE ",\"RecoveryKeys\":{\"a\":\"k\"},\"Config\":{\"RecoveryThreshold\":1}}",
             "invalid recovery threshold: if set, threshold must be at least 2");
    check_is(BASE
             ",\"RecoveryKeys\":{\"a\":\"k\",\"b\":\"l\"},\"Config\":{"
             "\"RecoveryThreshold\":2}}",
             NULL);
    check_is(BASE ",\"RecoveryKeys\":{\"a\":\"k\"}}", NULL);
}

/* Rules apply in MarbleRun's order: an earlier section's error wins. */
static void test_check_order(void** state) {
    (void)state;
    check_is(BASE
             ",\"Secrets\":{\"s\":{\"Type\":\"x\"}},\"Users\":{\"u\":{}},"
             "\"Config\":{\"SealMode\":\"x\"}}",
             "manifest does not contain a certificate for user u");
    check_is(BASE ",\"Secrets\":{\"s\":{\"Type\":\"x\"}},\"Roles\":{\"r\":{}}}",
             "unrecognized resource type: { [] []} for role: r");
    check_is(BASE ",\"Secrets\":{\"s\":{\"Type\":\"x\"}},\"Config\":{\"SealMode\":\"x\"}}",
             "unknown type: x for secret: s");
}

/* The shape of upstream's samples/sample-manifest.json (§9; not in our testdata): every
 * section, placeholder user certificates, and a role granting WriteSecret on generated
 * secrets, which is what makes Check reject it. */
static const char everything[] =
    "{\"Packages\":{\"backend\":{\"SignerID\":\"1f1e\",\"ProductID\":45,\"SecurityVersion\":2,"
    "\"Debug\":false},\"frontend\":{\"SignerID\":\"1f1e\",\"ProductID\":44,\"SecurityVersion\":"
    "3}},\"Marbles\":{\"backend_first\":{\"Package\":\"backend\",\"MaxActivations\":1,"
    "\"Parameters\":{\"Files\":{\"/tmp/a\":\"foo\"},\"Env\":{\"K\":\"{{ raw "
    ".Secrets.symmetric_key_shared }}\"},\"Argv\":[\"--first\",\"serve\"]},\"TLS\":[\"web\"],"
    "\"Roles\":[\"cert-reader\"]},\"frontend\":{\"Package\":\"frontend\"}},"
    "\"Secrets\":{\"symmetric_key_shared\":{\"Type\":\"symmetric-key\",\"Size\":128,"
    "\"Shared\":true},\"cert_private\":{\"Size\":2048,\"Type\":\"cert-rsa\",\"Cert\":{"
    "\"Subject\":{\"CommonName\":\"unit test\"}},\"ValidFor\":7},\"cert_shared\":{\"Shared\":"
    "true,\"Type\":\"cert-ed25519\",\"ValidFor\":7}},\"Users\":{\"Alice\":{\"Certificate\":"
    "\"cert-alice\",\"Roles\":[\"frontend-updates\",\"cert-reader\"]},\"Admin\":{"
    "\"Certificate\":\"cert-admin\",\"Roles\":[\"secrets-admin\"]}},\"Roles\":{"
    "\"frontend-updates\":{\"ResourceType\":\"Packages\",\"ResourceNames\":[\"frontend\"],"
    "\"Actions\":[\"UpdateSecurityVersion\"]},\"cert-reader\":{\"ResourceType\":\"Secrets\","
    "\"ResourceNames\":[\"cert_shared\"],\"Actions\":[\"ReadSecret\"]},\"secrets-admin\":{"
    "\"ResourceType\":\"Secrets\",\"ResourceNames\":[\"symmetric_key_shared\",\"cert_shared\"],"
    "\"Actions\":[\"ReadSecret\",\"WriteSecret\"]}},\"TLS\":{\"web\":{\"Outgoing\":[{\"Port\":"
    "\"8080\",\"Addr\":\"service.name\"}],\"Incoming\":[{\"Port\":\"8443\"}]}}}";

static void test_everything_shape(void** state) {
    (void)state;
    check_is(everything,
             "manifest specifies write permission for role secrets-admin and secret "
             "symmetric_key_shared, but secret is not user-defined");
    /* and the placeholder certificates would fail GenerateUsers */
    _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(everything);
    struct moat_error err                             = {0};
    assert_int_equal(coord_manifest_check_user_certs(m, &err), -EINVAL);
    assert_string_equal(err.msg, "received invalid certificate for user Admin");
}

static void test_env_nul(void** state) {
    (void)state;
    _cleanup_coord_manifest_ struct coord_manifest* m =
        parse_ok(BASE
                 ",\"Marbles\":{\"m\":{\"Package\":\"p\",\"Parameters\":{\"Env\":{\"A\":"
                 "\"ok\",\"B\":{\"Data\":\"AGE=\",\"Encoding\":\"base64\"}}}}}}");
    struct moat_error err = {0};
    assert_int_equal(coord_manifest_check(m, &err), 0);
    assert_int_equal(coord_manifest_check_env_nul(m, &err), -EINVAL);
    assert_string_equal(err.msg, "in Marble m: env variable: B: content contains null bytes");
}

/* ---------------------------------------------------------------------------------------- */
/* Update manifests (§1.8)                                                                    */

static void update_is(const char* update, const char* want) {
    _cleanup_coord_manifest_ struct coord_manifest* orig = parse_ok(
        "{\"Packages\":{\"p\":{\"SignerID\":\"s\",\"ProductID\":1,\"SecurityVersion\":3},"
        "\"q\":{\"UniqueID\":\"u\"}},\"Marbles\":{\"m\":{\"Package\":\"p\"}}}");
    _cleanup_coord_manifest_ struct coord_manifest* u = parse_ok(update);
    assert_true(coord_manifest_is_update(u));
    struct moat_error err = {0};
    int r                 = coord_manifest_check_update(u, orig, &err);
    if (!want) {
        if (r != 0)
            fail_msg("update failed: %s", err.msg);
        return;
    }
    assert_int_equal(r, -EINVAL);
    assert_string_equal(err.msg, want);
}

static void test_update(void** state) {
    (void)state;
    update_is("{\"Packages\":{\"p\":{\"SecurityVersion\":4}}}", NULL);
    update_is("{\"Packages\":{\"p\":{\"SecurityVersion\":3},\"q\":{\"SecurityVersion\":0}}}", NULL);
    update_is("{}", "no packages defined");
    update_is("{\"Packages\":{\"x\":{\"SecurityVersion\":4}}}",
              "update manifest specifies a package which the original manifest does not contain");
    update_is("{\"Packages\":{\"p\":{\"SecurityVersion\":4,\"Debug\":true}}}",
              "update manifest contains unupdatable values");
    update_is("{\"Packages\":{\"p\":{\"SecurityVersion\":4,\"ProductID\":1}}}",
              "update manifest contains unupdatable values");
    update_is("{\"Packages\":{\"p\":{}}}",
              "update manifest does not specify a SecurityVersion to update");
    update_is("{\"Packages\":{\"p\":{\"SecurityVersion\":2}}}",
              "update manifest tries to downgrade SecurityVersion of the original manifest");

    static const char* const full[] = {
        "{\"Marbles\":{}, \"Packages\":{}, \"Marbles\":{\"m\":{}}}",
        "{\"Infrastructures\":{\"i\":{}}}",
        "{\"Users\":{\"u\":{}}}",
        "{\"RecoveryKeys\":{\"k\":\"\"}}",
        "{\"Roles\":{\"r\":{}}}",
        "{\"Secrets\":{\"s\":{}}}",
        "{\"TLS\":{\"t\":{}}}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(full); i++) {
        _cleanup_coord_manifest_ struct coord_manifest* m = parse_ok(full[i]);
        assert_false(coord_manifest_is_update(m));
    }
    _cleanup_coord_manifest_ struct coord_manifest* m =
        parse_ok("{\"Packages\":{\"p\":{}},\"Marbles\":{},\"Config\":{\"SealMode\":\"x\"}}");
    assert_true(coord_manifest_is_update(m));
}

/* ---------------------------------------------------------------------------------------- */
/* Upstream samples (reference/marblerun.md §9), byte for byte from ../shared/testdata         */

static struct coord_manifest* load_sample(const char* name) {
    const char* dir = getenv("MOAT_MARBLERUN_SAMPLES");
    if (!dir || access(dir, R_OK) != 0) {
        print_message(
            "skip: MOAT_MARBLERUN_SAMPLES (%s) is not readable; the samples live in "
            "../shared/testdata/marblerun-manifests\n",
            dir ? dir : "unset");
        return NULL;
    }
    _cleanup_free_ char* path = xasprintf("%s/%s/manifest.json", dir, name);
    _cleanup_free_ char* buf  = NULL;
    size_t len;
    struct moat_error err = {0};
    if (read_file(path, &buf, &len, &err) < 0)
        fail_msg("%s", err.msg);
    struct coord_manifest* m = NULL;
    if (coord_manifest_parse(buf, len, &m, &err) < 0)
        fail_msg("%s: %s", path, err.msg);
    if (coord_manifest_check(m, &err) < 0)
        fail_msg("%s: %s", path, err.msg);
    assert_int_equal(coord_manifest_check_env_nul(m, &err), 0);
    assert_false(coord_manifest_is_update(m));
    return m;
}

static void test_sample_hello(void** state) {
    (void)state;
    _cleanup_coord_manifest_ struct coord_manifest* m = load_sample("gramine-hello");
    if (!m)
        skip();
    const struct coord_package* p = coord_manifest_package(m, "world");
    assert_true(p->debug);
    assert_string_equal(p->unique_id, "<replace with mrenclave printed during the build>");
    const struct coord_marble* mb = coord_manifest_marble(m, "hello");
    assert_string_equal(mb->package, "world");
    assert_int_equal(mb->argv.n, 2);
    assert_string_equal(mb->argv.v[0], "./hello");
    assert_int_equal(mb->env.n, 1);
    assert_string_equal(mb->env.v[0].name, "HELLO_WORLD");
}

static void test_sample_nginx(void** state) {
    (void)state;
    _cleanup_coord_manifest_ struct coord_manifest* m = load_sample("gramine-nginx");
    if (!m)
        skip();
    const struct coord_secret* cert = coord_manifest_secret(m, "ServerCert");
    assert_string_equal(cert->type, "cert-ecdsa");
    assert_int_equal(cert->size, 256);
    assert_non_null(cert->cert_template);
    const struct coord_secret* key = coord_manifest_secret(m, "ProtectedFilesKey");
    assert_string_equal(key->type, "symmetric-key");
    assert_int_equal(key->size, 128);
    const struct coord_marble* mb = coord_manifest_marble(m, "frontend");
    bool found                    = false;
    for (size_t i = 0; i < mb->files.n; i++)
        if (strcmp(mb->files.v[i].name, "/dev/attestation/keys/default") == 0) {
            found = true;
            assert_non_null(strstr((char*)mb->files.v[i].data, ".Secrets.ProtectedFilesKey"));
        }
    assert_true(found);
}

static void test_sample_redis(void** state) {
    (void)state;
    _cleanup_coord_manifest_ struct coord_manifest* m = load_sample("gramine-redis");
    if (!m)
        skip();
    assert_int_equal(m->n_packages, 1);
    const struct coord_package* p = &m->packages[0];
    assert_true(p->has_product_id);
    assert_int_equal(p->product_id, 13);
    assert_true(p->has_security_version);
    assert_int_equal(p->security_version, 1);
    assert_string_equal(p->unique_id, "");
    assert_non_null(coord_manifest_marble(m, "redis-main"));
    assert_non_null(coord_manifest_marble(m, "redis-replica"));
    const struct coord_marble* mb = coord_manifest_marble(m, "redis-main");
    assert_int_equal(mb->argv.n, 2);
    assert_string_equal(mb->argv.v[1], "/redis-data/redis.conf");
}

int main(void) {
    log_set_level(LOG_LEVEL_NONE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_insensitive_fields),
        cmocka_unit_test(test_case_variants_merge_maps),
        cmocka_unit_test(test_unknown_and_null),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_raw_and_fingerprint),
        cmocka_unit_test(test_file_forms),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_secrets_parse),
        cmocka_unit_test(test_check_packages_marbles),
        cmocka_unit_test(test_check_tls),
        cmocka_unit_test(test_check_users),
        cmocka_unit_test(test_check_roles),
        cmocka_unit_test(test_check_secrets),
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_check_recovery),
        cmocka_unit_test(test_check_order),
        cmocka_unit_test(test_everything_shape),
        cmocka_unit_test(test_env_nul),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_sample_hello),
        cmocka_unit_test(test_sample_nginx),
        cmocka_unit_test(test_sample_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
