/* SPDX-License-Identifier: Apache-2.0 */
/* mr_era_parse: MarbleRun's coordinator-era.json (reference/marblerun.md §7 --era-config). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "marblerun.h"

#define U "1111111111111111111111111111111111111111111111111111111111111111"
#define S "abababababababababababababababababababababababababababababababab"

static int parse(const char* text, struct mr_era* e, struct moat_error* err) {
    return mr_era_parse(text, strlen(text), e, err);
}

/* the shape MarbleRun's releases publish */
static void test_release_shape(void** state) {
    (void)state;
    struct mr_era e;
    struct moat_error err = {0};
    assert_int_equal(parse("{\"SecurityVersion\": 2, \"ProductID\": 3, \"SignerID\": \"" S
                           "\", \"UniqueID\": \"" U "\", \"Debug\": false}",
                           &e, &err),
                     0);
    assert_true(e.has_unique_id && e.has_signer_id && e.has_product_id && e.has_security_version);
    assert_int_equal(e.unique_id[0], 0x11);
    assert_int_equal(e.signer_id[31], 0xab);
    assert_int_equal(e.product_id, 3);
    assert_int_equal(e.security_version, 2);
    assert_false(e.debug);
}

/* Go's encoding/json: unknown members ignored, "" is the zero value (unset) */
static void test_unique_only_and_unknown(void** state) {
    (void)state;
    struct mr_era e;
    struct moat_error err = {0};
    assert_int_equal(parse("{\"UniqueID\": \"" U "\", \"SignerID\": \"\", \"Extra\": [1], "
                           "\"Debug\": true}",
                           &e, &err),
                     0);
    assert_true(e.has_unique_id);
    assert_false(e.has_signer_id);
    assert_false(e.has_product_id);
    assert_true(e.debug);
}

static void expect_error(const char* text, const char* needle) {
    struct mr_era e;
    struct moat_error err = {0};
    assert_int_equal(parse(text, &e, &err), -EINVAL);
    if (!strstr(err.msg, needle))
        fail_msg("'%s': message '%s' lacks '%s'", text, err.msg, needle);
}

static void test_errors(void** state) {
    (void)state;
    expect_error("{", "not JSON");
    expect_error("[]", "JSON object");
    expect_error("{\"UniqueID\": \"abc\"}", "'UniqueID'");
    expect_error("{\"UniqueID\": \"" U "00\"}", "'UniqueID'");
    expect_error("{\"UniqueID\": 5}", "'UniqueID' must be a hex string");
    expect_error("{\"UniqueID\": \"zz" U "\"}", "'UniqueID'");
    expect_error("{\"UniqueID\": \"" U "\", \"ProductID\": -1}", "'ProductID'");
    expect_error("{\"UniqueID\": \"" U "\", \"SecurityVersion\": \"2\"}", "'SecurityVersion'");
    expect_error("{\"UniqueID\": \"" U "\", \"Debug\": 1}", "'Debug'");
    expect_error("{\"ProductID\": 1, \"SecurityVersion\": 1}", "neither 'UniqueID' nor");
    expect_error("{\"SignerID\": \"" S "\"}", "'ProductID' and 'SecurityVersion'");
    expect_error("{\"UniqueID\": \"" U "\", \"UniqueID\": \"" U "\"}", "not JSON");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_shape),
        cmocka_unit_test(test_unique_only_and_unknown),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
