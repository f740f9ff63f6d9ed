/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the TOML parser, tree API and writer; the full toml-test conformance run is
 * tests/test_toml.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "toml.h"

static struct toml_value* parse_ok(const char* text) {
    struct toml_value* root = NULL;
    struct moat_error err   = {0};
    int ret                 = toml_parse(text, strlen(text), "t.toml", &root, NULL, &err);
    if (ret < 0)
        fail_msg("unexpected parse error: %s", err.msg);
    return root;
}

static void parse_err(const char* text, const char* expect) {
    struct toml_value* root = NULL;
    struct moat_error err   = {0};
    struct toml_error terr;
    assert_int_equal(toml_parse(text, strlen(text), "app.manifest", &root, &terr, &err), -EINVAL);
    assert_null(root);
    if (!strstr(err.msg, expect))
        fail_msg("error '%s' does not contain '%s'", err.msg, expect);
}

static void test_scalars_valid(void** state) {
    (void)state;
    _cleanup_toml_ struct toml_value* r = parse_ok(
        "b = 1_000\nc = -0.5e2\nd = true\ne = 'lit\\'\nf = \"\\u00e9\\n\"\n"
        "g = 1979-05-27T07:32:00.5-07:00\nh = 0o17\n");
    assert_int_equal(toml_table_get(r, "b")->u.integer, 1000);
    assert_true(toml_table_get(r, "c")->u.fp == -50.0);
    assert_true(toml_table_get(r, "d")->u.boolean);
    assert_string_equal(toml_table_get(r, "e")->u.str.ptr, "lit\\");
    assert_string_equal(toml_table_get(r, "f")->u.str.ptr, "\xc3\xa9\n");
    const struct toml_datetime* dt = &toml_table_get(r, "g")->u.dt;
    assert_int_equal(dt->kind, TOML_DT_OFFSET);
    assert_int_equal(dt->offset_minutes, -420);
    assert_int_equal(dt->nanosecond, 500000000);
    assert_int_equal(toml_table_get(r, "h")->u.integer, 15);
}

static void test_errors_have_positions(void** state) {
    (void)state;
    parse_err("[sgx]\ndebug = true\ndebug = false\n", "app.manifest:3:1: duplicate key 'debug'");
    parse_err("sgx.debug = true\nsgx.debug = 1\n", "app.manifest:2:5: duplicate key 'sgx.debug'");
    parse_err("a = \"unterminated\n", "app.manifest:1:");
    parse_err("[a]\n[a]\n", "duplicate table '[a]'");
    parse_err("a = {b = 1}\na.c = 2\n", "a");
    parse_err("x = 0x_ff\n", "'_'");
    parse_err("x = 99999999999999999999\n", "out of range");
    parse_err("x = 1\n\xff = 2\n", "UTF-8");
}

static void test_paths(void** state) {
    (void)state;
    _cleanup_toml_ struct toml_value* r =
        parse_ok("[loader.env]\n\"MY.VAR\" = \"x\"\n[sgx]\nenclave_size = \"1G\"\n");
    const char* s;
    assert_int_equal(toml_get_string(r, "loader.env.\"MY.VAR\"", NULL, &s), 0);
    assert_string_equal(s, "x");
    uint64_t size;
    assert_int_equal(toml_get_size(r, "sgx.enclave_size", 0, &size), 0);
    assert_int_equal(size, 1ULL << 30);
    int64_t i;
    assert_int_equal(toml_get_int(r, "sgx.max_threads", 4, &i), 0);
    assert_int_equal(i, 4);
    assert_int_equal(toml_get_int(r, "sgx.enclave_size", 4, &i), -EINVAL);
    assert_int_equal(toml_set_path(r, "sgx.debug", toml_new_bool(true)), 0);
    assert_int_equal(toml_set_path(r, "sgx.enclave_size.x", toml_new_bool(true)), -EEXIST);
    assert_true(toml_remove_path(r, "sgx.debug"));
    assert_false(toml_remove_path(r, "sgx.debug"));
}

static void test_roundtrip(void** state) {
    (void)state;
    const char* doc =
        "title = \"t\"\nf = [1.5, inf, -0.0]\n[a.b]\nc = 1\n[[a.arr]]\nx = 1\n[[a.arr]]\n"
        "y = { z = [1, \"two\"] }\n[\"quoted key\"]\nd = 1979-05-27\nt = 07:32:00.999\n";
    _cleanup_toml_ struct toml_value* r = parse_ok(doc);
    size_t len;
    _cleanup_free_ char* out             = toml_write(r, &len);
    _cleanup_toml_ struct toml_value* r2 = parse_ok(out);
    assert_true(toml_equal(r, r2));
    assert_non_null(strstr(out, "[[a.arr]]\n"));
    assert_non_null(strstr(out, "[\"quoted key\"]\n"));
    _cleanup_toml_ struct toml_value* c = toml_clone(r);
    assert_true(toml_equal(c, r));
    toml_table_set(c, "title", toml_new_string("u"));
    assert_false(toml_equal(c, r));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_valid),
        cmocka_unit_test(test_errors_have_positions),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
