/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the Go text/template subset. Expected texts follow Go's text/template
 * (parse.go, lex.go, exec.go) and MarbleRun's encoders (coordinator/manifest; reference
 * marblerun.md §2). The template strings marked "sample" are copied from MarbleRun's
 * samples/gramine-{nginx,redis}/manifest.json. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "gotemplate.h"

static const uint8_t cert_der[]  = {0x30, 0x03, 0x02, 0x01, 0x01};
static const uint8_t key_der[]   = {0x30, 0x02, 0x05, 0x00};
static const uint8_t pub_der[]   = {0x30, 0x01, 0x00};
static const uint8_t sym_key[]   = {0xde, 0xad, 0x00, 0xbe, 0xef};
static const char plain_value[]  = "hunter2";
static const uint8_t nul_plain[] = {'a', 0, 'b'};

/* The Coordinator's TemplateSecrets: .MarbleRun.*, .Secrets.*, .Previous.Secrets.* */
static struct gotemplate_value* make_data(void) {
    struct gotemplate_value* root    = gotemplate_struct_new("manifest.SecretsWrapper");
    struct gotemplate_value* mr      = gotemplate_struct_new("manifest.ReservedSecrets");
    struct gotemplate_value* secs    = gotemplate_map_new("map[string]manifest.Secret");
    struct gotemplate_value* prev    = gotemplate_struct_new("manifest.PreviousSecrets");
    struct gotemplate_value* psecs   = gotemplate_map_new("map[string]manifest.Secret");
    struct gotemplate_secret marble  = {.type        = "cert-ecdsa",
                                        .cert        = cert_der,
                                        .cert_len    = sizeof(cert_der),
                                        .private_key = key_der,
                                        .private_len = sizeof(key_der),
                                        .public_key  = pub_der,
                                        .public_len  = sizeof(pub_der)};
    struct gotemplate_secret root_ca = {.cert = cert_der, .cert_len = sizeof(cert_der)};
    struct gotemplate_secret sym     = {.type        = "symmetric-key",
                                        .private_key = sym_key,
                                        .private_len = sizeof(sym_key),
                                        .public_key  = sym_key,
                                        .public_len  = sizeof(sym_key)};
    struct gotemplate_secret plain   = {.type        = "plain",
                                        .private_key = plain_value,
                                        .private_len = 7,
                                        .public_key  = plain_value,
                                        .public_len  = 7};
    struct gotemplate_secret nul     = {.type        = "plain",
                                        .private_key = nul_plain,
                                        .private_len = 3,
                                        .public_key  = nul_plain,
                                        .public_len  = 3};
    struct gotemplate_secret empty   = {.type = "plain"};
    int r = gotemplate_set(mr, "MarbleCert", gotemplate_secret_new(&marble));
    r |= gotemplate_set(mr, "RootCA", gotemplate_secret_new(&root_ca));
    r |= gotemplate_set(secs, "ProtectedFilesKey", gotemplate_secret_new(&sym));
    r |= gotemplate_set(secs, "ServerCert", gotemplate_secret_new(&marble));
    r |= gotemplate_set(secs, "Password", gotemplate_secret_new(&plain));
    r |= gotemplate_set(secs, "Nul", gotemplate_secret_new(&nul));
    r |= gotemplate_set(secs, "Empty", gotemplate_secret_new(&empty));
    r |= gotemplate_set(psecs, "ProtectedFilesKey", gotemplate_secret_new(&sym));
    r |= gotemplate_set(prev, "Secrets", psecs);
    r |= gotemplate_set(root, "MarbleRun", mr);
    r |= gotemplate_set(root, "Marblerun", gotemplate_value_ref(mr)); /* legacy alias */
    r |= gotemplate_set(root, "Secrets", secs);
    r |= gotemplate_set(root, "Previous", prev);
    assert_int_equal(r, 0);
    return root;
}

static struct gotemplate_value* g_data;

static int render(const char* text, enum gotemplate_funcs funcs, uint8_t** out, size_t* len,
                  struct moat_error* err) {
    return gotemplate_render("data", text, strlen(text), funcs, g_data, out, len, err);
}

static void expect_bytes(const char* text, enum gotemplate_funcs funcs, const void* want,
                         size_t want_len) {
    struct moat_error err = {0};
    uint8_t* out          = NULL;
    size_t len            = 0;
    if (render(text, funcs, &out, &len, &err) < 0)
        fail_msg("render of '%s' failed: %s", text, err.msg);
    if (len != want_len || memcmp(out, want, len) != 0)
        fail_msg("render of '%s':\n got: '%.*s' (%zu)\nwant: '%.*s'", text, (int)len, out, len,
                 (int)want_len, (const char*)want);
    free(out);
}

static void expect(const char* text, const char* want) {
    expect_bytes(text, GOTEMPLATE_FUNCS_FILES, want, strlen(want));
}

static void expect_error_in(const char* text, enum gotemplate_funcs funcs, const char* want) {
    struct moat_error err = {0};
    uint8_t* out          = NULL;
    size_t len;
    int r = render(text, funcs, &out, &len, &err);
    if (r >= 0)
        fail_msg("render of '%s' succeeded: '%.*s'", text, (int)len, out);
    if (strcmp(err.msg, want) != 0)
        fail_msg("render of '%s':\n got error: %s\nwant error: %s", text, err.msg, want);
}

static void expect_error(const char* text, const char* want) {
    expect_error_in(text, GOTEMPLATE_FUNCS_FILES, want);
}

#define CERT_PEM "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"
#define KEY_PEM  "-----BEGIN PRIVATE KEY-----\nMAIFAA==\n-----END PRIVATE KEY-----\n"
#define PUB_PEM  "-----BEGIN PUBLIC KEY-----\nMAEA\n-----END PUBLIC KEY-----\n"

/* Every template string of the MarbleRun Gramine samples (gramine-nginx, gramine-redis). */
static void test_samples(void** state) {
    (void)state;
    expect_bytes("{{ raw .Secrets.ProtectedFilesKey }}", GOTEMPLATE_FUNCS_FILES, sym_key,
                 sizeof(sym_key));
    expect("{{ pem .Secrets.ServerCert.Cert }}", CERT_PEM);
    expect("{{ pem .Secrets.ServerCert.Private }}", KEY_PEM);
    expect("{{ pem .MarbleRun.MarbleCert.Cert }}", CERT_PEM);
    expect("{{ pem .MarbleRun.MarbleCert.Cert  }}", CERT_PEM);
    expect("{{ pem .MarbleRun.MarbleCert.Private }}", KEY_PEM);
    expect("{{ pem .MarbleRun.RootCA.Cert }}", CERT_PEM);
    /* literal text (redis.conf, HELLO_WORLD) is copied verbatim */
    expect("bind 0.0.0.0\nprotected-mode no\nsave ''\ndir /redis-data/",
           "bind 0.0.0.0\nprotected-mode no\nsave ''\ndir /redis-data/");
    expect_bytes("Hello World from MarbleRun!", GOTEMPLATE_FUNCS_ENV, "Hello World from MarbleRun!",
                 27);
    /* historical samples and estore */
    expect("{{ hex .Secrets.ProtectedFilesKey }}", "dead00beef");
    expect("{{ base64 .Secrets.ProtectedFilesKey }}", "3q0Avu8=");
}

static void test_functions(void** state) {
    (void)state;
    expect("{{pem .MarbleRun.MarbleCert.Public}}", PUB_PEM);
    expect("{{ hex .MarbleRun.MarbleCert.Cert }}|{{ hex .MarbleRun.MarbleCert.Cert.Raw }}",
           "3003020101|3003020101");
    expect("{{ hex .MarbleRun.MarbleCert }}", "300100"); /* a whole secret is its Public */
    expect("{{ hex .Previous.Secrets.ProtectedFilesKey }}", "dead00beef");
    expect("{{ hex .Marblerun.MarbleCert.Private }}", "30020500"); /* caller's alias */
    expect_bytes("{{ string .Secrets.Password }}", GOTEMPLATE_FUNCS_ENV, "hunter2", 7);
    expect_bytes("{{ pem .Secrets.ServerCert.Cert }}", GOTEMPLATE_FUNCS_ENV, CERT_PEM,
                 strlen(CERT_PEM));
    /* two actions and text, binary output with a NUL inside */
    static const uint8_t both[] = {0xde, 0xad, 0x00, 0xbe, 0xef, '/', 0x30, 0x02, 0x05, 0x00};
    expect_bytes("{{ raw .Secrets.ProtectedFilesKey }}/{{ raw .MarbleRun.MarbleCert.Private }}",
                 GOTEMPLATE_FUNCS_FILES, both, sizeof(both));
    /* a long key wraps at 64 columns as encoding/pem does */
    uint8_t big[100];
    memset(big, 0xff, sizeof(big));
    struct gotemplate_secret s = {.type = "cert-rsa", .cert = big, .cert_len = sizeof(big)};
    struct gotemplate_value* d = gotemplate_struct_new("x");
    assert_int_equal(gotemplate_set(d, "S", gotemplate_secret_new(&s)), 0);
    uint8_t* out;
    size_t len;
    struct moat_error err = {0};
    assert_int_equal(gotemplate_render("data", "{{pem .S.Cert}}", 15, GOTEMPLATE_FUNCS_FILES, d,
                                       &out, &len, &err),
                     0);
    const char* nl = memchr(out, '\n', len);
    const char* l2 = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - (char*)out));
    assert_int_equal(l2 - nl - 1, 64);
    assert_memory_equal(out + len - 26, "-----END CERTIFICATE-----\n", 26);
    free(out);
    gotemplate_value_unref(d);
}

static void test_pipes_and_literals(void** state) {
    (void)state;
    expect("{{ .Secrets.ProtectedFilesKey | hex }}", "dead00beef");
    expect("{{ .Secrets.ServerCert.Cert | pem }}", CERT_PEM);
    expect("{{ hex (.Secrets.ProtectedFilesKey) }}", "dead00beef");
    expect("{{ (.Secrets.ProtectedFilesKey) | hex }}", "dead00beef");
    expect("{{ $.Secrets.ProtectedFilesKey | hex }}", "dead00beef");
    expect("{{ (.Secrets).ProtectedFilesKey | hex }}", "dead00beef");
    expect("{{ .Secrets.ProtectedFilesKey | hex | }}", "dead00beef"); /* Go accepts this */
    expect("{{ \"a\\tb\\u00e9\\x41\" }}{{ `raw\\n` }}",
           "a\tb\xc3\xa9"
           "Araw\\n");
    expect("{{ 42 }} {{-3}} {{ 0x10 }} {{ true }} {{ 'a' }}", "42 -3 16 true 97");
    expect("{{ .Secrets.Missing }}|{{ .Secrets.Missing.Cert }}", "<no value>|<no value>");
    expect("{{ .MarbleRun.MarbleCert.Type }}", "cert-ecdsa");
    expect("{{ .MarbleRun.MarbleCert.Private }}", "[48 2 5 0]");
    expect("{{/* a comment */}}x{{- /* trimmed */ -}} y", "xy");
}

static void test_trim(void** state) {
    (void)state;
    expect("a  \n\t{{- hex .Secrets.ProtectedFilesKey -}}  \n b", "adead00beefb");
    expect("a {{- \"x\" }} b", "ax b");
    expect("a {{ \"x\" -}} b", "a xb");
    expect("{{ 3 -}}\n\n4", "34");
    expect("{{ \"\" }}", "");
    expect("", "");
}

#define EXEC(col, at) "template: data:1:" #col ": executing \"data\" at <" at ">: "

static void test_function_errors(void** state) {
    (void)state;
    /* MarbleRun's encoder errors, wrapped by Go's "error calling" */
    expect_error("{{ pem .Secrets.Missing }}",
                 EXEC(3, "pem .Secrets.Missing") "error calling pem: secret does not exist");
    expect_error("{{ raw .Secrets.Missing.Cert }}",
                 EXEC(3, "raw .Secrets.Missing.Cert") "error calling raw: secret does not exist");
    expect_error("{{ pem .Secrets.ProtectedFilesKey }}",
                 EXEC(3, "pem .Secrets.ProtectedFilesKey")
                 "error calling pem: invalid secret type for pem encoding");
    expect_error("{{ pem .Secrets.Empty.Private }}",
                 EXEC(3, "pem .Secrets.Empty.Private")
                 "error calling pem: tried to parse secret with empty value");
    expect_error(
        "{{ hex .Secrets.Empty }}",
        EXEC(3, "hex .Secrets.Empty") "error calling hex: tried to parse secret with empty value");
    expect_error("{{ raw \"abc\" }}",
                 EXEC(3, "raw \"abc\"") "error calling raw: invalid secret type");
    expect_error("{{ .Secrets.ProtectedFilesKey | base64 | hex }}",
                 EXEC(41, "hex") "error calling hex: invalid secret type");
    expect_error_in("{{ string .Secrets.ProtectedFilesKey }}", GOTEMPLATE_FUNCS_ENV,
                    EXEC(3, "string .Secrets.ProtectedFilesKey")
                    "error calling string: only secrets of type plain are allowed to use string "
                    "encoding for environment variables");
    expect_error_in("{{ string .Secrets.ServerCert.Cert }}", GOTEMPLATE_FUNCS_ENV,
                    EXEC(3, "string .Secrets.ServerCert.Cert")
                    "error calling string: only secrets of type plain are allowed to use string "
                    "encoding for environment variables");
    expect_error_in(
        "{{ string .Secrets.Nul }}", GOTEMPLATE_FUNCS_ENV,
        EXEC(3, "string .Secrets.Nul") "error calling string: secret contains null bytes");
    expect_error_in("{{ string .Secrets.Nope }}", GOTEMPLATE_FUNCS_ENV,
                    EXEC(3, "string .Secrets.Nope") "error calling string: secret does not exist");
    /* the two function sets */
    expect_error_in("{{ raw .Secrets.ProtectedFilesKey }}", GOTEMPLATE_FUNCS_ENV,
                    "template: data:1: function \"raw\" not defined");
    expect_error("{{ string .Secrets.Password }}",
                 "template: data:1: function \"string\" not defined");
    expect_error("{{ pem }}", EXEC(3, "pem") "wrong number of args for pem: want 1 got 0");
    expect_error("{{ pem .A .B }}", EXEC(3, "pem") "wrong number of args for pem: want 1 got 2");
    expect_error("{{ .Secrets.Password | pem .X }}",
                 EXEC(23, "pem") "wrong number of args for pem: want 1 got 2");
}

static void test_exec_errors(void** state) {
    (void)state;
    /* reference §2: the removed SealKey (MarbleRun issue #272) */
    expect_error(
        "{{ hex .MarbleRun.SealKey }}",
        EXEC(17,
             ".MarbleRun.SealKey") "can't evaluate field SealKey in type manifest.ReservedSecrets");
    expect_error("{{ .Foo }}",
                 EXEC(3, ".Foo") "can't evaluate field Foo in type manifest.SecretsWrapper");
    expect_error("{{ .MarbleRun.MarbleCert.Cert.Foo }}",
                 EXEC(13, ".MarbleRun.MarbleCert.Cert.Foo")
                 "can't evaluate field Foo in type manifest.Certificate");
    expect_error("{{ (pem .MarbleRun.RootCA.Cert).X }}",
                 EXEC(18, ".MarbleRun.RootCA.Cert") "can't evaluate field X in type string");
    expect_error("{{ \"a\" \"b\" }}", EXEC(3, "\"a\"") "can't give argument to non-function \"a\"");
    expect_error("{{ nil }}", EXEC(3, "nil") "nil is not a command");
    expect_error(
        "{{ .Secrets.Password | .MarbleRun }}",
        EXEC(23, ".MarbleRun") "MarbleRun has arguments but cannot be invoked as function");
    expect_error("{{ .Secrets.ServerCert }}",
                 EXEC(3, "{{.Secrets.ServerCert}}")
                 "can't print {{.Secrets.ServerCert}} of type manifest.Secret (moat prints only "
                 "strings and bytes; use a function)");
    expect_error("x\n  {{ pem .Secrets.Missing }}",
                 "template: data:2:5: executing \"data\" at <pem .Secrets.Missing>: error calling "
                 "pem: secret does not exist");
}

static void test_parse_errors(void** state) {
    (void)state;
    expect_error("{{ foo .X }}", "template: data:1: function \"foo\" not defined");
    expect_error("a\n{{ foo }}", "template: data:2: function \"foo\" not defined");
    expect_error("{{ .X", "template: data:1: unclosed action");
    expect_error("{{ .X\n", "template: data:2: unclosed action started at data:1");
    expect_error("{{ .X } }", "template: data:1: unexpected \"}\" in operand");
    expect_error("{{}}", "template: data:1: missing value for command");
    expect_error("{{ () }}", "template: data:1: missing value for parenthesized pipeline");
    expect_error("{{ ( .X }}", "template: data:1: unclosed left paren");
    expect_error("{{ ) }}", "template: data:1: unexpected right paren");
    expect_error("{{ | .X }}", "template: data:1: unexpected \"|\" in command");
    expect_error("{{ \"abc }}", "template: data:1: unterminated quoted string");
    expect_error("{{ `abc }}", "template: data:1: unterminated raw quoted string");
    expect_error("{{ \"\\q\" }}", "template: data:1: invalid syntax");
    expect_error("{{ .X# }}", "template: data:1: bad character U+0023 '#'");
    expect_error("{{ \x01 }}", "template: data:1: unrecognized character in action: U+0001");
    expect_error("{{/* x }}", "template: data:1: unclosed comment");
    expect_error("{{/* x */ }}", "template: data:1: comment ends before closing delimiter");
    expect_error("a {{-\"x\"}} b", "template: data:1: illegal number syntax: \"-\"");
    expect_error("{{ 12ab }}", "template: data:1: bad number syntax: \"12a\"");
    expect_error("{{ $x }}", "template: data:1: undefined variable \"$x\"");
    expect_error("{{ $x := .X }}",
                 "template: data:1: variable declarations in command are not supported by moat");
    expect_error("{{ .X | \"a\" }}",
                 "template: data:1: non executable command in pipeline stage 2");
    expect_error("{{ \"a\".X }}", "template: data:1: unexpected . after term \"\\\"a\\\"\"");
    expect_error("{{ end }}", "template: data:1: unexpected {{end}}");
    expect_error("{{ if .X }}y{{ end }}",
                 "template: data:1: {{if}} is not supported by moat (MarbleRun parameters use "
                 "pipelines only)");
    expect_error("{{ 1.5 }}", "template: data:1: moat supports only integer constants, not 1.5");
    expect_error("{{ .X := 1 }}", "template: data:1: unexpected \":=\" in operand");
}

static void test_api(void** state) {
    (void)state;
    struct moat_error err = {0};
    struct gotemplate* t  = NULL;
    const char text[]     = "k={{ hex .Secrets.ProtectedFilesKey }}";
    /* parse only: the Coordinator's manifest check */
    assert_int_equal(gotemplate_parse("data", text, strlen(text), GOTEMPLATE_FUNCS_ENV, &t, &err),
                     0);
    uint8_t* out;
    size_t len;
    assert_int_equal(gotemplate_execute(t, g_data, 0, &out, &len, &err), 0);
    assert_int_equal(len, 12);
    assert_memory_equal(out, "k=dead00beef", 12);
    free(out);
    /* output limit */
    out = NULL;
    assert_int_equal(gotemplate_execute(t, g_data, 5, &out, &len, &err), -EFBIG);
    assert_null(out);
    assert_string_equal(err.msg, "template: data: output exceeds 5 bytes");
    gotemplate_free(t);
    t = NULL;
    assert_int_equal(gotemplate_parse("data", "{{ x }}", 7, GOTEMPLATE_FUNCS_FILES, &t, &err),
                     -EINVAL);
    assert_null(t);
    /* a NUL byte in the text is text */
    assert_int_equal(
        gotemplate_render("data", "a\0b", 3, GOTEMPLATE_FUNCS_FILES, g_data, &out, &len, &err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(out, "a\0b", 3);
    free(out);
    /* nesting limit: deep parentheses are refused, not recursed into */
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "{{ ");
    for (int i = 0; i < 1000; i++)
        strbuf_putc(&sb, '(');
    assert_int_equal(gotemplate_parse("data", sb.buf, sb.len, GOTEMPLATE_FUNCS_FILES, &t, &err),
                     -EINVAL);
    assert_string_equal(err.msg, "template: data:1: max expression depth exceeded");
    strbuf_free(&sb);
    /* a non-container cannot get keys; the value is released */
    struct gotemplate_value* leaf = gotemplate_bytes_new("x", 1);
    assert_int_equal(gotemplate_set(leaf, "k", gotemplate_bytes_new("y", 1)), -EINVAL);
    gotemplate_value_unref(leaf);
}

static int setup(void** state) {
    (void)state;
    g_data = make_data();
    return 0;
}

static int teardown(void** state) {
    (void)state;
    gotemplate_value_unref(g_data);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_pipes_and_literals),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_function_errors),
        cmocka_unit_test(test_exec_errors),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_api),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
