/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the manifest schema, check, defaults and migration (reference/gramine.md §1-2);
 * the CLI-level cases are tests/test_manifest_check.py and tests/test_migrate.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"

static struct toml_value* parse(const char* text) {
    struct toml_value* root = NULL;
    struct moat_error err   = {0};
    if (toml_parse(text, strlen(text), "t.manifest", &root, NULL, &err) < 0)
        fail_msg("%s", err.msg);
    return root;
}

/* Runs the check and asserts the number of errors and that one message contains `want`. */
static void check(const char* text, int nerrors, const char* want, bool finalized) {
    _cleanup_toml_ struct toml_value* root = parse(text);
    struct manifest_diags d                = {0};
    struct manifest_check_opts opts        = {.finalized = finalized};
    int errors                             = manifest_check(root, &opts, &d);
    bool found                             = !want;
    for (size_t i = 0; i < d.len; i++)
        found |= want && strstr(d.items[i].msg, want) != NULL;
    if (errors != nerrors || !found) {
        for (size_t i = 0; i < d.len; i++)
            print_message("  %u:%u %s\n", d.items[i].line, d.items[i].col, d.items[i].msg);
        fail_msg("'%s': %d errors (want %d), '%s' %s", text, errors, nerrors, want ? want : "",
                 found ? "found" : "missing");
    }
    manifest_diags_free(&d);
}

static void test_valid_and_invalid(void** state) {
    (void)state;
    check("libos.entrypoint = \"/a\"\n", 0, NULL, false);
    check("libos.entrypoint = \"/a\"\nsgx.enclave_size = \"512M\"\nsgx.max_threads = 4096\n", 0,
          NULL, false);
    check("libos.entrypoint = \"/a\"\nsgx.enclave_size = \"3G\"\n", 1, "not a power of two", false);
    check("libos.entrypoint = \"/a\"\nsgx.max_threads = 4097\n", 1, "out of range", false);
    check("libos.entrypoint = \"/a\"\nloader.env.X = { passthrough = true, value = \"v\" }\n", 1,
          "both 'value' and 'passthrough'", false);
    check("libos.entrypoint = \"/a\"\nloader.env.\"A.B\" = \"v\"\n", 0, NULL, false);
    check("", 1, "'libos.entrypoint' must be specified", false);
    check("libos.entrypoint = \"/a\"\nsgx.trusted_files = [\"file:a\"]\n", 2, "not finalized",
          true);
}

static void test_suggestions(void** state) {
    (void)state;
    check("libos.entrypoint = \"/a\"\nsgx.debgu = true\n", 1, "did you mean 'sgx.debug'?", false);
    check("libos.entrypoint = \"/a\"\nsys.enable_sigterm_injections = true\n", 1,
          "did you mean 'sys.enable_sigterm_injection'?", false);
    check("libos.entrypoint = \"/a\"\ntotally.unrelated.thing = 1\n", 1, "unknown key 'totally'",
          false);
    check("libos.entrypoint = \"/a\"\nsgxx.debug = true\n", 1, "did you mean 'sgx'?", false);
}

static void test_positions(void** state) {
    (void)state;
    _cleanup_toml_ struct toml_value* root =
        parse("libos.entrypoint = \"/a\"\n\n[sgx]\nmax_threads = \"4\"\n");
    struct manifest_diags d         = {0};
    struct manifest_check_opts opts = {0};
    assert_int_equal(manifest_check(root, &opts, &d), 1);
    assert_int_equal(d.items[0].line, 4);
    assert_int_equal(d.items[0].col, 1);
    assert_string_equal(d.items[0].key, "sgx.max_threads");
    manifest_diags_free(&d);
}

static void test_defaults(void** state) {
    (void)state;
    _cleanup_toml_ struct toml_value* root = parse(
        "libos.entrypoint = \"/a\"\nsgx.edmm_enable = true\nsgx.trusted_files = [\"file:x\"]\n");
    struct moat_error err = {0};
    assert_int_equal(manifest_inject_defaults(root, "/opt/moat/moat", &err), 0);
    const char* s;
    int64_t i;
    assert_int_equal(toml_get_string(root, "sgx.enclave_size", NULL, &s), 0);
    assert_string_equal(s, "1024G"); /* EDMM default */
    assert_int_equal(toml_get_int(root, "sgx.max_threads", 0, &i), 0);
    assert_int_equal(i, 4);
    assert_int_equal(toml_get_string(root, "loader.entrypoint.uri", NULL, &s), 0);
    assert_string_equal(s, "file:/opt/moat/moat");
    assert_int_equal(toml_get_string(root, "sgx.cpu_features.pkru", NULL, &s), 0);
    assert_string_equal(s, "disabled");
    const struct toml_value* tf = toml_get_path(root, "sgx.trusted_files");
    assert_int_equal(tf->u.arr.items[0]->type, TOML_TABLE);

    _cleanup_toml_ struct toml_value* old = parse("loader.entrypoint = \"file:libsysdb.so\"\n");
    assert_int_equal(manifest_inject_defaults(old, "/x", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "Unknown loader.entrypoint format (not a TOML table)"));
}

static void test_migrate(void** state) {
    (void)state;
    _cleanup_toml_ struct toml_value* root = parse(
        "libos.entrypoint = \"file:app\"\nsgx.thread_num = 8\nsgx.require_avx512 = 1\n"
        "sgx.remote_attestation = false\nloader.insecure__use_cmdline_argv = 1\n"
        "fs.mount.l.type = \"chroot\"\nfs.mount.l.path = \"/lib\"\nfs.mount.l.uri = "
        "\"file:/lib\"\nsgx.allowed_files.a = \"file:out/\"\n");
    struct manifest_diags d = {0};
    struct moat_error err   = {0};
    assert_int_equal(manifest_migrate(root, &d, &err), 0);
    assert_int_equal(manifest_diags_count(&d, DIAG_WARNING), 0);
    assert_true(manifest_diags_count(&d, DIAG_NOTE) >= 7);
    manifest_diags_free(&d);
    struct manifest_check_opts opts = {0};
    assert_int_equal(manifest_check(root, &opts, &d), 0);
    manifest_diags_free(&d);
    const char* s;
    assert_int_equal(toml_get_string(root, "libos.entrypoint", NULL, &s), 0);
    assert_string_equal(s, "app");
    assert_int_equal(toml_get_string(root, "sgx.cpu_features.avx512", NULL, &s), 0);
    assert_string_equal(s, "required");
    assert_int_equal(toml_get_string(root, "sgx.remote_attestation", NULL, &s), 0);
    assert_string_equal(s, "none");
    bool b;
    assert_int_equal(toml_get_bool(root, "loader.insecure__use_cmdline_argv", false, &b), 0);
    assert_true(b);
    const struct toml_value* mounts = toml_get_path(root, "fs.mounts");
    assert_int_equal(mounts->u.arr.len, 1);
    assert_null(toml_get_path(root, "fs.mount"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_invalid), cmocka_unit_test(test_suggestions),
        cmocka_unit_test(test_positions),         cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_migrate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
