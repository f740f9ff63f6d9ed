/* SPDX-License-Identifier: Apache-2.0 */
/* Tests of the Rego subset (docs/rego.md): ITA's published sample policies (tests/policies/,
 * with their URLs) against ITA v1 SGX and TDX claim sets (reference/attestation.md §4.2),
 * every construct, OPA's undefined and comparison semantics, every refusal and every limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "rego.h"

/* ---- helpers ---- */

static json_t* js(const char* text) {
    json_error_t e;
    json_t* j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        fail_msg("bad test JSON: %s: %s", e.text, text);
    return j;
}

static char* policy_file(const char* name) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", REGO_POLICY_DIR, name);
    char* buf = NULL;
    size_t len;
    struct moat_error err = {0};
    assert_int_equal(read_file(path, &buf, &len, &err), 0);
    return buf;
}

static struct rego_policy* compile_ok(const char* text) {
    struct moat_error err = {0};
    struct rego_policy* p = NULL;
    int r                 = rego_compile(text, strlen(text), &p, &err);
    if (r != 0)
        fail_msg("compile failed: %s\n%s", err.msg, text);
    return p;
}

/* Evaluates text against the claims (JSON text); returns the values object. */
static json_t* run(const char* text, const char* claims) {
    struct rego_policy* p = compile_ok(text);
    json_t* in            = claims ? js(claims) : NULL;
    json_t* out           = NULL;
    struct moat_error err = {0};
    int r                 = rego_eval(p, in, &out, &err);
    if (r != 0)
        fail_msg("eval failed: %s", err.msg);
    json_decref(in);
    rego_policy_free(p);
    return out;
}

/* The value of rule `name` as compact JSON ("undefined" when absent). */
static char* value_of(const char* text, const char* claims, const char* name) {
    json_t* out = run(text, claims);
    json_t* v   = json_object_get(out, name);
    char* s =
        v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : strdup("undefined");
    json_decref(out);
    return s;
}

#define assert_value(text, claims, name, expected)     \
    do {                                               \
        char* _v = value_of((text), (claims), (name)); \
        assert_string_equal(_v, (expected));           \
        free(_v);                                      \
    } while (0)

static void assert_refused(const char* text, int code, const char* msg) {
    struct moat_error err = {0};
    struct rego_policy* p = NULL;
    int r                 = rego_compile(text, strlen(text), &p, &err);
    if (r == 0) {
        rego_policy_free(p);
        fail_msg("compiled, expected \"%s\":\n%s", msg, text);
    }
    assert_int_equal(r, code);
    if (strcmp(err.msg, msg) != 0)
        fail_msg("message \"%s\", expected \"%s\"", err.msg, msg);
}

static void assert_eval_error(const char* text, const char* claims, int code, const char* msg) {
    struct rego_policy* p = compile_ok(text);
    json_t* in            = claims ? js(claims) : NULL;
    json_t* out           = NULL;
    struct moat_error err = {0};
    int r                 = rego_eval(p, in, &out, &err);
    json_decref(in);
    rego_policy_free(p);
    if (r == 0) {
        json_decref(out);
        fail_msg("evaluated, expected \"%s\"", msg);
    }
    assert_int_equal(r, code);
    if (strcmp(err.msg, msg) != 0)
        fail_msg("message \"%s\", expected \"%s\"", err.msg, msg);
}

/* ---- ITA v1 claim sets (reference/attestation.md §4.2) ---- */

#define SGX_CLAIMS(mrenclave, svn, debug)                                                    \
    "{\"sgx_mrenclave\":\"" mrenclave                                                        \
    "\","                                                                                    \
    "\"sgx_mrsigner\":\"83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e\"," \
    "\"sgx_isvprodid\":1,\"sgx_isvsvn\":" svn ",\"sgx_is_debuggable\":" debug                \
    ","                                                                                      \
    "\"sgx_report_data\":\"d83eea91\",\"attester_tcb_status\":\"UpToDate\","                 \
    "\"attester_type\":\"SGX\",\"attester_advisory_ids\":[\"INTEL-SA-00615\"],"              \
    "\"dbgstat\":\"disabled\",\"iss\":\"Intel Trust Authority\",\"ver\":\"1.0.0\"}"

#define RTMR_A                                                                                     \
    "0b787fd971c0518f82ba4ec05109122093958517b2e19f918efa103c3f07017c8bc0ac63f97ecccfb081362fdc4b" \
    "d983"
#define RTMR_B                                                                                     \
    "ca6acd5094d9319bb2d04b1859931a88124c81e4818d43cf582d98d8b2d334bba3eada276ae93a352ede1f1a5e7f" \
    "2f5c"
#define MRTD                                                                                       \
    "3dfeeb7cf01210c0df8f5adffc65c7ad8a1741119ec873c8a3cf81adefb21fcd1b828b776ead31369cfe7470ac32" \
    "2d54"
#define MRSIGNERSEAM                                                                               \
    "03f7b0e40e9ebd4bb4b346048bdc0879d0084d534f7848dd8d4f1be4b0e9610d22f72e45ce4d941c056d4db74eb0" \
    "028c"

#define TDX_FIELDS(seamsvn, rtmr3, debug)                                              \
    "\"tdx_seamsvn\":" seamsvn ",\"tdx_rtmr0\":\"" RTMR_A "\",\"tdx_rtmr1\":\"" RTMR_B \
    "\","                                                                              \
    "\"tdx_rtmr2\":\"" RTMR_A "\",\"tdx_rtmr3\":\"" rtmr3 "\",\"tdx_mrtd\":\"" MRTD    \
    "\","                                                                              \
    "\"tdx_mrsignerseam\":\"" MRSIGNERSEAM "\",\"tdx_is_debuggable\":" debug           \
    ","                                                                                \
    "\"tdx_td_attributes_debug\":" debug                                               \
    ",\"attester_tcb_status\":\"UpToDate\","                                           \
    "\"attester_tcb_date\":\"2023-08-09T00:00:00Z\",\"attester_advisory_ids\":[],"     \
    "\"attester_type\":\"TDX\""
#define TDX_CLAIMS(seamsvn, rtmr3, debug) "{" TDX_FIELDS(seamsvn, rtmr3, debug) "}"

/* ---- the samples ---- */

static void sample_sgx_policy_builder(void** state) {
    (void)state;
    char* text = policy_file("ita_sgx_policy_builder.rego");
    assert_value(text,
                 SGX_CLAIMS("d777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410", "2",
                            "false"),
                 "matches_sgx_policy", "true");
    /* a higher SVN passes `>= 2`, as does 2.0 (numbers compare as numbers) */
    assert_value(text,
                 SGX_CLAIMS("d777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410", "7",
                            "false"),
                 "matches_sgx_policy", "true");
    assert_value(text,
                 SGX_CLAIMS("d777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410",
                            "2.0", "false"),
                 "matches_sgx_policy", "true");
    /* each condition can fail on its own: the default gives false */
    assert_value(text,
                 SGX_CLAIMS("d777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410", "1",
                            "false"),
                 "matches_sgx_policy", "false");
    assert_value(
        text,
        SGX_CLAIMS("d777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410", "2", "true"),
        "matches_sgx_policy", "false");
    assert_value(text,
                 SGX_CLAIMS("0777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410", "2",
                            "false"),
                 "matches_sgx_policy", "false");
    /* a string "2" is not a number: "2" >= 2 holds in OPA's type order (string > number) */
    assert_value(text,
                 SGX_CLAIMS("d777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410",
                            "\"2\"", "false"),
                 "matches_sgx_policy", "true");
    /* no claims at all: every statement is undefined */
    assert_value(text, "{}", "matches_sgx_policy", "false");
    free(text);
}

static void sample_sgx_concept_and_cli(void** state) {
    (void)state;
    char* text = policy_file("ita_sgx_concept.rego");
    const char* ok =
        "{\"sgx_mrenclave\":\"1234e819861adef61232a4865efea9337b91ed301233491b17f123d9e8212311\","
        "\"sgx_mrsigner\":\"123719e77d123a1470f612362a4d774303c899db69123f9c70ee123c08123123\","
        "\"sgx_is_debuggable\":false,\"sgx_isvsvn\":0}";
    assert_value(text, ok, "matches_sgx_policy", "true");
    /* the debug flag as a string is not the boolean false */
    assert_value(
        text,
        "{\"sgx_mrenclave\":\"1234e819861adef61232a4865efea9337b91ed301233491b17f123d9e8212311\","
        "\"sgx_mrsigner\":\"123719e77d123a1470f612362a4d774303c899db69123f9c70ee123c08123123\","
        "\"sgx_is_debuggable\":\"false\"}",
        "matches_sgx_policy", "false");
    free(text);

    text = policy_file("ita_cli_sgx.rego"); /* `{` on the line after the head */
    assert_value(
        text,
        "{\"sgx_is_debuggable\":false,\"sgx_isvsvn\":0,\"sgx_isvprodid\":0,"
        "\"sgx_mrsigner\":\"d412a4f07ef83892a5915fb2ab584be31e186e5a4f95ab5f6950fd4eb8694d7b\","
        "\"sgx_mrenclave\":\"bab91f200038076ac25f87de0ca67472443c2ebe17ed9ba95314e609038f51ab\"}",
        "matches_sgx_policy", "true");
    assert_value(
        text,
        "{\"sgx_is_debuggable\":false,\"sgx_isvsvn\":1,\"sgx_isvprodid\":0,"
        "\"sgx_mrsigner\":\"d412a4f07ef83892a5915fb2ab584be31e186e5a4f95ab5f6950fd4eb8694d7b\","
        "\"sgx_mrenclave\":\"bab91f200038076ac25f87de0ca67472443c2ebe17ed9ba95314e609038f51ab\"}",
        "matches_sgx_policy", "false");
    free(text);

    text = policy_file("ita_maa_migration.rego");
    assert_value(text, SGX_CLAIMS("00", "1", "false"), "matches_sgx_policy", "true");
    assert_value(text, SGX_CLAIMS("00", "0", "false"), "matches_sgx_policy", "false");
    free(text);

    text = policy_file("amber_policy_sign.rego");
    assert_value(
        text,
        "{\"amber_sgx_mrenclave\":"
        "\"83f4e819861adef6ffb2a4865efea9337b91ed30fa33491b17f0d5d9e8204410\","
        "\"amber_sgx_mrsigner\":"
        "\"83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e\","
        "\"amber_sgx_isvprodid\":0,\"amber_sgx_isvsvn\":0,\"amber_sgx_is_debuggable\":false}",
        "matches_sgx_policy", "true");
    /* ITA v1 names do not satisfy an Amber-era policy */
    assert_value(text,
                 SGX_CLAIMS("83f4e819861adef6ffb2a4865efea9337b91ed30fa33491b17f0d5d9e8204410", "0",
                            "false"),
                 "matches_sgx_policy", "false");
    free(text);
}

static void sample_tdx(void** state) {
    (void)state;
    char* text = policy_file("ita_tdx_policy_builder.rego");
    assert_value(text, TDX_CLAIMS("1", RTMR_B, "true"), "matches_tdx_policy", "true");
    assert_value(text, TDX_CLAIMS("1", RTMR_A, "true"), "matches_tdx_policy", "true");
    /* rtmr3 outside the accepted set; seamsvn off; debug off */
    assert_value(text, TDX_CLAIMS("1", "00", "true"), "matches_tdx_policy", "false");
    assert_value(text, TDX_CLAIMS("2", RTMR_B, "true"), "matches_tdx_policy", "false");
    assert_value(text, TDX_CLAIMS("1", RTMR_B, "false"), "matches_tdx_policy", "false");
    /* the body's local is not a rule */
    assert_value(text, TDX_CLAIMS("1", RTMR_B, "true"), "acceptable_values_for_tdx_rtmr3",
                 "undefined");
    free(text);

    text = policy_file("ita_tdx_concept.rego"); /* compares tdx_seamsvn with the string "2" */
    const char* base =
        "\"tdx_mrsignerseam\":\"00000000000...\",\"attester_tcb_status\":\"OK\","
        "\"tdx_is_debuggable\":false";
    char claims[512];
    snprintf(claims, sizeof(claims), "{%s,\"tdx_seamsvn\":\"2\"}", base);
    assert_value(text, claims, "matches_tdx_policy", "true");
    snprintf(claims, sizeof(claims), "{%s,\"tdx_seamsvn\":2}", base); /* == across types */
    assert_value(text, claims, "matches_tdx_policy", "false");
    free(text);

    text = policy_file("ita_v2_tdx_policy_builder.rego");
    assert_value(text, "{\"tdx\":" TDX_CLAIMS("2", RTMR_A, "true") "}", "match", "true");
    assert_value(text, "{\"tdx\":" TDX_CLAIMS("2", RTMR_A, "true") "}", "match_tdx", "true");
    assert_value(text, "{\"tdx\":" TDX_CLAIMS("2", RTMR_A, "false") "}", "match", "false");
    assert_value(text, "{\"tdx\":" TDX_CLAIMS("2", RTMR_A, "false") "}", "match_tdx", "undefined");
    assert_value(text, "{\"tdx\":" TDX_CLAIMS("2", RTMR_A, "true") "}", "export",
                 "{\"my_attester_tcb_status\":\"UpToDate\",\"my_debuggable\":true,"
                 "\"my_tdx_mrtd\":\"" MRTD "\",\"my_tdx_seamsvn\":2}");
    /* v1 (flat) claims under a v2 policy: nothing under input.tdx */
    assert_value(text, TDX_CLAIMS("2", RTMR_A, "true"), "export", "undefined");
    free(text);
}

static void sample_token_customization(void** state) {
    (void)state;
    char* text = policy_file("ita_sgx_token_customization.rego");
    assert_value(text, SGX_CLAIMS("aa", "3", "false"), "get_token_fields",
                 "[{\"my_claim_isSgxDebuggable\":false,\"my_claim_isvprodid\":1,"
                 "\"my_claim_isvsvn\":3,\"my_claim_mrenclave\":\"aa\",\"my_claim_mrsigner\":"
                 "\"83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e\"}]");
    /* a missing claim makes the object undefined: the partial set is empty */
    assert_value(text, "{\"sgx_isvsvn\":3}", "get_token_fields", "[]");
    free(text);

    text    = policy_file("ita_tdx_token_customization.rego");
    char* v = value_of(text, TDX_CLAIMS("1", RTMR_A, "false"), "get_token_fields");
    assert_non_null(strstr(v, "\"my_tdx_seamsvn\":1"));
    assert_non_null(strstr(v, "\"my_attester_advisory_id\":[]"));
    assert_non_null(strstr(v, "\"my_tdx_rtmr3\":\"" RTMR_A "\""));
    free(v);
    free(text);
}

/* Evaluates with time.now_ns() fixed. */
static char* value_at(const char* text, const char* claims, int64_t now, const char* name) {
    struct rego_policy* p = compile_ok(text);
    json_t* in            = js(claims);
    json_t* out           = NULL;
    struct moat_error err = {0};
    if (rego_eval_at(p, in, now, &out, &err) != 0)
        fail_msg("eval failed: %s", err.msg);
    json_t* v = json_object_get(out, name);
    char* s   = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("undefined");
    json_decref(out);
    json_decref(in);
    rego_policy_free(p);
    return s;
}

#define assert_value_at(text, claims, now, name, expected)    \
    do {                                                      \
        char* _v = value_at((text), (claims), (now), (name)); \
        assert_string_equal(_v, (expected));                  \
        free(_v);                                             \
    } while (0)

#define JAN_2024 1704067200000000000LL /* 2024-01-01T00:00:00Z */
#define MAY_2024 1714521600000000000LL /* 2024-05-01T00:00:00Z */
#define TCB(date, status, advisories)                                       \
    "{\"attester_tcb_date\":\"" date "\",\"attester_tcb_status\":\"" status \
    "\","                                                                   \
    "\"attester_advisory_ids\":" advisories ",\"attester_type\":\"SGX\"}"

/* The Policy Builder's TCB policy: minimum TCB date, allowed statuses, 8 months' grace from
 * the TCB date, allowed advisories (time.*, object.subset, a set comprehension). */
static void sample_tcb(void** state) {
    (void)state;
    char* text    = policy_file("ita_tcb_policy_builder.rego");
    const char* m = "matches_sgx_policy";
    assert_value_at(text, TCB("2023-08-09T00:00:00Z", "UpToDate", "[\"INTEL-SA-00615\"]"), JAN_2024,
                    m, "true");
    assert_value_at(text, TCB("2023-08-09T00:00:00Z", "SWHardeningNeeded", "[]"), JAN_2024, m,
                    "true");
    /* grace period over: 2023-08-09 + 8 months = 2024-04-09 < 2024-05-01 */
    assert_value_at(text, TCB("2023-08-09T00:00:00Z", "UpToDate", "[]"), MAY_2024, m, "false");
    /* TCB older than the minimum date; status not allowed; an advisory not allowed */
    assert_value_at(text, TCB("2023-03-14T23:59:59Z", "UpToDate", "[]"), JAN_2024, m, "false");
    assert_value_at(text, TCB("2023-08-09T00:00:00Z", "OutOfDate", "[]"), JAN_2024, m, "false");
    assert_value_at(text, TCB("2023-08-09T00:00:00Z", "UpToDate", "[\"INTEL-SA-00999\"]"), JAN_2024,
                    m, "false");
    /* an unparsable date is undefined, so the policy does not match */
    assert_value_at(text, TCB("2023-08-09", "UpToDate", "[]"), JAN_2024, m, "false");
    free(text);
}

static void builtins_time(void** state) {
    (void)state;
    const char* p =
        "a := time.parse_rfc3339_ns(input.t)\n"
        "b := time.add_date(input.n, input.y, input.m, input.d)\n"
        "now := time.now_ns()\n";
    char claims[256];
    static const struct {
        const char* t;
        const char* ns;
    } parse[] = {
        {"2023-03-15T00:00:00Z", "1678838400000000000"},
        {"2023-03-15T01:00:00+01:00", "1678838400000000000"},
        {"2023-03-14T23:30:00-00:30", "1678838400000000000"},
        {"2023-03-15T00:00:00.5Z", "1678838400500000000"},
        {"2023-03-15T00:00:00.123456789Z", "1678838400123456789"},
        {"1969-12-31T23:59:59Z", "-1000000000"},
        {"2024-02-29T00:00:00Z", "1709164800000000000"},
        {"2023-02-29T00:00:00Z", "undefined"},
        {"2023-03-15t00:00:00Z", "undefined"},
        {"2023-03-15T00:00:00", "undefined"},
        {"2023-03-15T24:00:00Z", "undefined"},
        {"2023-03-15T00:00:60Z", "undefined"},
        {"2023-03-15T00:00:00.Z", "undefined"},
        {"2023-03-15T00:00:00.1234567890Z", "undefined"},
        {"2023-03-15T00:00:00+24:00", "undefined"},
        {"3000-01-01T00:00:00Z", "undefined"}, /* beyond int64 nanoseconds (2262) */
    };
    for (size_t i = 0; i < ARRAY_SIZE(parse); i++) {
        snprintf(claims, sizeof(claims), "{\"t\":\"%s\"}", parse[i].t);
        char* v = value_of(p, claims, "a");
        if (strcmp(v, parse[i].ns) != 0)
            fail_msg("%s: %s, expected %s", parse[i].t, v, parse[i].ns);
        free(v);
    }
    assert_value(p, "{\"t\":5}", "a", "undefined");
    /* Go's AddDate: months roll into years, day overflow rolls forward (Jan 31 + 1 month) */
    assert_value(p, "{\"n\":1675123200000000000,\"y\":0,\"m\":1,\"d\":0}", "b",
                 "1677801600000000000"); /* 2023-03-03 */
    assert_value(p, "{\"n\":1706659200000000000,\"y\":0,\"m\":1,\"d\":0}", "b",
                 "1709337600000000000"); /* 2024-03-02 */
    assert_value(p, "{\"n\":1675123200000000000,\"y\":1,\"m\":-13,\"d\":1}", "b",
                 "1672531200000000000"); /* 2024-01-31 - 13 months = 2022-12-31, + 1 day */
    assert_value(p, "{\"n\":-1,\"y\":0,\"m\":0,\"d\":1}", "b", "86399999999999");
    assert_value(p, "{\"n\":0,\"y\":300,\"m\":0,\"d\":0}", "b", "undefined");
    assert_value(p, "{\"n\":0,\"y\":0.5,\"m\":0,\"d\":0}", "b", "undefined");
    assert_value(p, "{\"n\":0,\"y\":1.0,\"m\":0,\"d\":0}", "b", "31536000000000000");
    /* one clock reading per evaluation; rego_eval reads the real-time clock */
    assert_value_at("now := time.now_ns()\nsame { time.now_ns() == now }", "{}", 42, "now", "42");
    assert_value_at("now := time.now_ns()\nsame { time.now_ns() == now }", "{}", 42, "same",
                    "true");
    assert_value("late { time.now_ns() > 1700000000000000000 }", "{}", "late", "true");
}

static void builtins_subset(void** state) {
    (void)state;
    const char* p =
        "sets { object.subset({1, 2, 3}, {1, 3}); not object.subset({1}, {1, 2}) }\n"
        "empty { object.subset({1}, set()) }\n"
        "array_set { object.subset([3, 1, 2], {1, 2}) }\n"
        "runs { object.subset([1, 2, 3, 4], [2, 3]); not object.subset([1, 2, 3], [1, 3]) }\n"
        "objects { object.subset({\"a\": 1, \"c\": {\"x\": 1, \"y\": 2}}, "
        "{\"c\": {\"y\": 2}}) }\n"
        "objects_no { not object.subset({\"a\": 1}, {\"a\": 2}) }\n"
        "mixed { object.subset({1}, [1]) }\n";
    json_t* out       = run(p, "{}");
    const char* yes[] = {"sets", "empty", "array_set", "runs", "objects", "objects_no"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++)
        if (!rego_rule_is_true(out, yes[i]))
            fail_msg("%s is not true", yes[i]);
    /* a set super with an array sub is a type error in OPA: undefined */
    assert_null(json_object_get(out, "mixed"));
    json_decref(out);
    assert_eval_error("r { object.subset({\"a\": [1, 2]}, {\"a\": [2]}) }", "{}", -EINVAL,
                      "line 1: object.subset of objects holding different arrays is not "
                      "supported");
}

/* ---- constructs ---- */

static void construct_rules(void** state) {
    (void)state;
    /* implicit true, `if`, one-statement `if`, constants, `:=`, package and imports */
    const char* p =
        "package policy\n"
        "import future.keywords.in\nimport future.keywords.every\nimport rego.v1\n"
        "a { input.x == 1 }\n"
        "b if { input.x == 1 }\n"
        "c if input.x == 1\n"
        "d := 5\n"
        "e = \"s\"\n"
        "f := input.x\n"
        "g = v if { v := input.x }\n";
    assert_value(p, "{\"x\":1}", "a", "true");
    assert_value(p, "{\"x\":1}", "b", "true");
    assert_value(p, "{\"x\":1}", "c", "true");
    assert_value(p, "{\"x\":2}", "c", "undefined");
    assert_value(p, "{\"x\":2}", "d", "5");
    assert_value(p, "{\"x\":2}", "e", "\"s\"");
    assert_value(p, "{\"x\":2}", "f", "2");
    assert_value(p, "{}", "f", "undefined");
    assert_value(p, "{\"x\":[1]}", "g", "[1]");
    struct rego_policy* pol = compile_ok(p);
    assert_string_equal(rego_package(pol), "policy");
    assert_int_equal(rego_rule_count(pol), 7);
    assert_string_equal(rego_rule_name(pol, 0), "a");
    assert_string_equal(rego_rule_name(pol, 6), "g");
    assert_null(rego_rule_name(pol, 7));
    rego_policy_free(pol);

    /* several definitions = OR; rules may be used before they are defined */
    const char* or = "default allow = false\nallow { input.a == 1 }\nallow { input.b == 1 }\n"
                     "ok { allow; later }\nlater { true }\n";
    assert_value(or, "{\"a\":1}", "allow", "true");
    assert_value(or, "{\"b\":1}", "allow", "true");
    assert_value(or, "{\"a\":2,\"b\":2}", "allow", "false");
    assert_value(or, "{\"b\":1}", "ok", "true");
    assert_value(or, "{}", "ok", "undefined");

    /* statements separated by `;`; comments */
    assert_value("r { input.a == 1; input.b == 2 } # c\n", "{\"a\":1,\"b\":2}", "r", "true");
    assert_value("r { input.a == 1; input.b == 2 }", "{\"a\":1,\"b\":3}", "r", "undefined");

    /* a complete rule with the same value from two bodies is fine */
    assert_value("r = 1 { true }\nr = 1 { true }\n", "{}", "r", "1");
    /* partial set with `contains`, deduplicated and sorted */
    assert_value("s contains x if { some x in input.l }", "{\"l\":[3,1,3,\"a\"]}", "s",
                 "[1,3,\"a\"]");
    assert_value("s[x] { some x in input.l; x > 1 }", "{\"l\":[3,1,2]}", "s", "[2,3]");
    assert_value("s[x] { some x in input.l }", "{}", "s", "[]");
    /* a set rule used as a set by another rule */
    assert_value("s[x] { some x in input.l }\nr { s[2] }\nq { 2 in s }\n", "{\"l\":[1,2]}", "q",
                 "true");
}

static void construct_expressions(void** state) {
    (void)state;
    const char* p =
        "r1 { input.a.b[1] == \"y\" }\n"
        "r2 { input[\"odd-key\"] == null }\n"
        "r3 { count(input.l) == 3; count(input.o) == 1; count(\"h\\u00e9\") == 2 }\n"
        "r4 { x := [1, {\"k\": [true, null]}, -2.5e0]; x[1].k[0]; x[2] < -2 }\n"
        "r5 { `raw\\n` == \"raw\\\\n\" }\n"
        "r6 { \"\\ud83d\\ude00\" == \"\xf0\x9f\x98\x80\" }\n"
        "r7 { {\"a\", \"b\"} == {\"b\", \"a\", \"a\"} }\n"
        "r8 { [1, 2] != [2, 1]; {\"a\": 1} == {\"a\": 1.0} }\n"
        "r9 { \"a\" in [\"b\", \"a\"]; 1 in {\"k\": 1}; not 3 in {1, 2} }\n"
        "r10 { x = input.a; x.b[0] == \"x\" }\n"
        "r11 { (input.n) >= 10; input.n <= 10; input.n > 9.5; input.n < 11 }\n"
        "r12 { count(set()) == 0; count({}) == 0; count([]) == 0 }\n";
    const char* in =
        "{\"a\":{\"b\":[\"x\",\"y\"]},\"odd-key\":null,\"l\":[1,2,3],\"o\":{\"k\":1},"
        "\"n\":10}";
    json_t* out = run(p, in);
    for (int i = 1; i <= 12; i++) {
        char name[8];
        snprintf(name, sizeof(name), "r%d", i);
        if (!rego_rule_is_true(out, name))
            fail_msg("%s is not true", name);
    }
    json_decref(out);
}

/* OPA's generators (`ref[_]`, `ref[x]` with a new x) and array/set comprehensions. */
static void construct_iteration(void** state) {
    (void)state;
    const char* p =
        "any_two { input.l[_] == 2 }\n"
        "key_of_two = k { input.o[k] == 2 }\n"
        "index_of_three = i { input.l[i] == 3 }\n"
        "assign { x := input.l[_]; x > 2 }\n"
        "nested { some row in input.m; row[_] == 4 }\n"
        "deep { input.m[_][_] == 4 }\n"
        "ids := {id | id := input.ids[_]}\n"
        "big := [x | some x in input.l; x > 1]\n"
        "n_ids := count({id | id := input.ids[_]})\n"
        "empty := [x | some x in []]\n"
        "not_in { not 9 in [x | x := input.l[_]] }\n"
        "pairs := [[k, v] | some k, v in input.o]\n";
    const char* in =
        "{\"l\":[1,2,3],\"o\":{\"a\":1,\"b\":2},\"m\":[[1],[3,4]],"
        "\"ids\":[\"b\",\"a\",\"b\"]}";
    assert_value(p, in, "any_two", "true");
    assert_value(p, in, "key_of_two", "\"b\"");
    assert_value(p, in, "index_of_three", "2");
    assert_value(p, in, "assign", "true");
    assert_value(p, in, "nested", "true");
    assert_value(p, in, "deep", "true");
    assert_value(p, in, "ids", "[\"a\",\"b\"]");
    assert_value(p, in, "big", "[2,3]");
    assert_value(p, in, "n_ids", "2");
    assert_value(p, in, "empty", "[]");
    assert_value(p, in, "not_in", "true");
    assert_value(p, in, "pairs", "[[\"a\",1],[\"b\",2]]");
    assert_value(p, "{\"l\":[1]}", "any_two", "undefined");
    assert_value(p, "{\"l\":[1]}", "assign", "undefined");
    assert_value(p, "{}", "ids", "[]");
}

/* else: the first alternative whose body has a solution gives the value. */
static void construct_else(void** state) {
    (void)state;
    const char* p =
        "r = 1 { input.a } else = 2 { input.b } else = 3\n"
        "allow { input.a } else = false { true }\n"
        "v = x { x := input.a } else = y if { y := input.b }\n"
        "w = 1 { input.a }\n"
        "else = 2 {\n  input.b\n}\n"
        "default d = \"none\"\n"
        "d = \"a\" { input.a } else = \"b\" { input.b }\n";
    assert_value(p, "{\"a\":true,\"b\":true}", "r", "1");
    assert_value(p, "{\"b\":true}", "r", "2");
    assert_value(p, "{}", "r", "3");
    assert_value(p, "{\"a\":true}", "allow", "true");
    assert_value(p, "{}", "allow", "false");
    assert_value(p, "{\"a\":5,\"b\":6}", "v", "5");
    assert_value(p, "{\"b\":6}", "v", "6");
    assert_value(p, "{}", "v", "undefined");
    assert_value(p, "{\"b\":true}", "w", "2");
    assert_value(p, "{}", "d", "\"none\"");
    assert_value(p, "{\"b\":true}", "d", "\"b\"");
    /* alternatives are not combined: a rule's other definitions still conflict */
    assert_eval_error("r = 1 { false } else = 2 { true }\nr = 3 { true }", "{}", -EINVAL,
                      "line 2: rule r: complete rules must not produce multiple outputs");
}

/* The values are copies: changing them leaves the claims alone. */
static void values_are_copies(void** state) {
    (void)state;
    struct rego_policy* p = compile_ok("o := input.o");
    json_t* in            = js("{\"o\":{\"a\":1}}");
    json_t* out           = NULL;
    struct moat_error err = {0};
    assert_int_equal(rego_eval(p, in, &out, &err), 0);
    json_object_set_new(json_object_get(out, "o"), "z", json_true());
    assert_null(json_object_get(json_object_get(in, "o"), "z"));
    json_decref(out);
    json_decref(in);
    rego_policy_free(p);
}

static void construct_quantifiers(void** state) {
    (void)state;
    const char* p =
        "some_in { some x in input.l; x == 2 }\n"
        "some_kv { some i, x in input.l; i == 1; x == 2 }\n"
        "some_obj { some k, v in input.o; k == \"b\"; v == 2 }\n"
        "some_set { some x in {5, 6}; x > 5 }\n"
        "every_ok { every x in input.l { x > 0 } }\n"
        "every_kv { every i, x in input.l { i < x } }\n"
        "every_empty { every x in [] { false } }\n"
        "every_missing { every x in input.missing { true } }\n"
        "every_scalar { every x in 5 { true } }\n"
        "not_missing { not input.missing }\n"
        "not_false { not input.f }\n"
        "not_true { not input.t }\n"
        "nested { some x in input.m; every y in x { y > 1 } }\n";
    const char* in =
        "{\"l\":[1,2,3],\"o\":{\"a\":1,\"b\":2},\"f\":false,\"t\":true,"
        "\"m\":[[1,2],[2,3]]}";
    json_t* out = run(p, in);
    assert_true(rego_rule_is_true(out, "some_in"));
    assert_true(rego_rule_is_true(out, "some_kv"));
    assert_true(rego_rule_is_true(out, "some_obj"));
    assert_true(rego_rule_is_true(out, "some_set"));
    assert_true(rego_rule_is_true(out, "every_ok"));
    assert_true(rego_rule_is_true(out, "every_kv"));
    assert_true(rego_rule_is_true(out, "every_empty"));
    /* moat: an undefined or scalar domain fails `every` (docs/rego.md) */
    assert_false(rego_rule_is_true(out, "every_missing"));
    assert_false(rego_rule_is_true(out, "every_scalar"));
    assert_true(rego_rule_is_true(out, "not_missing"));
    assert_true(rego_rule_is_true(out, "not_false"));
    assert_false(rego_rule_is_true(out, "not_true"));
    assert_true(rego_rule_is_true(out, "nested"));
    json_decref(out);
    assert_value("e { every x in input.l { x > 1 } }", "{\"l\":[1,2]}", "e", "undefined");
    /* some backtracks: the second element satisfies the rest of the body */
    assert_value("r = x { some x in input.l; x > 1 }", "{\"l\":[1,2]}", "r", "2");
}

/* ---- OPA semantics ---- */

static void semantics_undefined(void** state) {
    (void)state;
    /* undefined is neither true nor false: != on a missing claim does not hold */
    assert_value("default r = false\nr { input.missing != 1 }", "{}", "r", "false");
    assert_value("r { input.a.b.c == 1 }", "{\"a\":1}", "r", "undefined");
    assert_value("r { input.l[5] == 1 }", "{\"l\":[1]}", "r", "undefined");
    assert_value("r { input.l[-1] == 1 }", "{\"l\":[1]}", "r", "undefined");
    assert_value("r { input.l[0.5] == 1 }", "{\"l\":[1]}", "r", "undefined");
    assert_value("r { input.l[0.0] == 1 }", "{\"l\":[1]}", "r", "true");
    assert_value("r { input.s[0] == \"a\" }", "{\"s\":\"abc\"}", "r", "undefined");
    assert_value("r = [input.x]", "{}", "r", "undefined");
    assert_value("r = {\"a\": input.x}", "{}", "r", "undefined");
    assert_value("r { count(5) == 1 }", "{}", "r", "undefined");
    assert_value("r { not count(5) == 1 }", "{}", "r", "true");
    assert_value("r { input }", NULL, "r", "undefined");
    /* a false value fails, any other defined value succeeds */
    assert_value("r { input.z }", "{\"z\":0}", "r", "true");
    assert_value("r { input.z }", "{\"z\":null}", "r", "true");
    assert_value("r { input.z }", "{\"z\":false}", "r", "undefined");
}

static void semantics_compare(void** state) {
    (void)state;
    const char* p =
        "eq_num { 1 == 1.0 }\n"
        "big { 9007199254740993 != 9007199254740992 }\n"
        "types { 1 != \"1\"; null != false; [] != {} }\n"
        "order { null < false; false < true; true < 0; 99 < \"\"; \"z\" < []; "
        "[9] < {}; {} < set() }\n"
        "bytes { \"B\" < \"a\"; \"a\" < \"ab\"; \"\\u00e9\" > \"z\" }\n"
        "arrays { [1, 2] < [1, 3]; [1] < [1, 0] }\n"
        "objects { {\"a\": 2} > {\"a\": 1}; {\"a\": 1} < {\"b\": 0} }\n";
    json_t* out         = run(p, "{}");
    const char* names[] = {"eq_num", "big", "types", "order", "bytes", "arrays", "objects"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (!rego_rule_is_true(out, names[i]))
            fail_msg("%s is not true", names[i]);
    json_decref(out);
    /* object keys with NUL bytes compare by bytes and length */
    assert_value(
        "r { x := {\"a\\u0000b\": 1, \"a\\u0000c\": 2}\n"
        "x == {\"a\\u0000c\": 2, \"a\\u0000b\": 1}\n"
        "x != {\"a\\u0000b\": 1, \"a\\u0000d\": 2}\n"
        "x[\"a\\u0000c\"] == 2; not x[\"a\"]\n"
        "some k, v in x; v == 2; k == \"a\\u0000c\" }",
        "{}", "r", "true");
    /* the claim as a JSON integer vs the policy's real */
    assert_value("r { input.svn == 2.0 }", "{\"svn\":2}", "r", "true");
    assert_value("r { input.svn >= 1.5 }", "{\"svn\":2}", "r", "true");
}

static void semantics_conflict(void** state) {
    (void)state;
    assert_eval_error("r = 1 { true }\nr = 2 { true }\n", "{}", -EINVAL,
                      "line 2: rule r: complete rules must not produce multiple outputs");
    assert_eval_error("r = x { some x in input.l }", "{\"l\":[1,2]}", -EINVAL,
                      "line 1: rule r: complete rules must not produce multiple outputs");
    /* only when both bodies succeed */
    assert_value("r = 1 { input.a }\nr = 2 { input.b }\n", "{\"a\":true}", "r", "1");
    assert_value("default r = 0\nr = 1 { input.a }\n", "{}", "r", "0");
    assert_eval_error("r = [x] { x := {1} }", "{}", -EINVAL,
                      "line 1: sets inside arrays, objects or sets are not supported");
    assert_eval_error("r = {x: 1} { x := 1 }", "{}", -EINVAL,
                      "line 1: object keys must be strings");
}

/* ---- refusals: each names its line and column ---- */

static void refusals(void** state) {
    (void)state;
    static const struct {
        const char* text;
        const char* msg;
    } cases[] = {
        {"r { input.a == 1 with input as {} }", "line 1, column 18: `with` is not supported"},
        {"s[x] { x := 1 } else { true }",
         "line 1, column 17: `else` cannot be used on partial set rules"},
        {"r = 1 else = 2", "line 1, column 7: `else` must follow a rule body"},
        {"r = 1 { x := 1 } else = x { true }", "line 1, column 25: var x is unsafe"},
        {"r { data.x == 1 }",
         "line 1, column 5: `data` is not supported: policies see only `input`"},
        {"f(x) { x == 1 }", "line 1, column 2: functions are not supported"},

        {"r { input.a + 1 == 2 }", "line 1, column 13: operator `+` is not supported"},
        {"r { time.date(0) }", "line 1, column 5: built-in `time.date` is not supported"},
        {"r { "
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.b.c() }",
         "line 1, column 5: built-in "
         "`aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa` is not supported"},
        {"r { regex.match(\"a\", \"b\") }",
         "line 1, column 5: built-in `regex.match` is not supported"},
        {"r { time.add_date(1, 2) }", "line 1, column 5: `time.add_date` takes 4 arguments"},
        {"import data.lib\nr { true }", "line 1, column 8: `import data.lib` is not supported"},
        {"import future.keywords.in as k\nr { true }",
         "line 1, column 27: `import … as` is not supported"},
        {"r[k] = v { k := 1; v := 2 }", "line 1, column 6: partial object rules are not supported"},
        {"r { some x; x == 1 }",
         "line 1, column 5: `some` without `in` is not supported; use `some x in …`"},
        {"r { y == 1 }", "line 1, column 5: var y is unsafe"},
        {"r = y { true }", "line 1, column 5: var y is unsafe"},
        {"r { x := 1; x := 2 }", "line 1, column 13: var x assigned above"},
        {"r { }", "line 1, column 3: found empty body"},
        {"default r = 1\ndefault r = 2\nr { true }",
         "line 2, column 1: multiple default rules r found"},
        {"default r = input.x\nr { true }",
         "line 1, column 1: default rule value of r must be a constant"},
        {"r { s }\ns { r }", "line 1: rule r is recursive"},
        {"r { r }", "line 1: rule r is recursive"},
        {"r { 1 == 1 == 1 }",
         "line 1, column 12: chained operator `==` is not supported; use parentheses"},
        {"r[x] { x := 1 }\nr = 1 { true }", "line 2, column 1: conflicting rules r found"},
        {"r { true } { true }",
         "line 1, column 12: more than one body per rule head is not supported"},
        {"r { input.a == \"x }", "line 1, column 16: unterminated string"},
        {"r { input.a == 01 }", "line 1, column 16: number with a leading zero"},
        {"r { input.a == \"\\q\" }", "line 1, column 17: invalid escape in string"},
        {"r { !input.a }", "line 1, column 5: `!` is not an operator in Rego (use `not` or `!=`)"},
        {"r { x := {{1}} }",
         "line 1, column 11: sets inside arrays, objects or sets are not supported"},
        {"r { x := {1: 2} }", "line 1, column 11: object keys must be strings"},
        {"r { input.a == 99999999999999999999 }",
         "line 1, column 16: number `99999999999999999999` is out of range"},
        {"r { [a, b] := input.l }", "line 1, column 12: only a variable can be assigned with `:=`"},
        {"r { input.x(1) }", "line 1, column 12: functions are not supported"},
        {"package a\npackage b\nr { true }", "line 2, column 1: more than one `package`"},
        {"r.a { true }", "line 1, column 2: rule heads with references (`a.b`) are not supported"},
        {"r", "line 1, column 2: expected `{` or `if` after the rule head, found ``"},
        {"r { input.a\n", "line 1, column 3: unterminated body: missing `}`"},
        {"{ true }", "line 1, column 1: unexpected `{` at the top level"},
        {"r { every x in input.l }", "line 1, column 24: expected `{` after `every … in …`"},
        {"r { count(1, 2) }", "line 1, column 5: `count` takes 1 argument"},
        {"r { 1 == 1 } x", "line 1, column 14: unexpected `x`"},
        {"r { \"\xc3\xa9\" == \"\xff\" }", "line 1, column 13: invalid UTF-8"},
        {"r { \"\xed\xa0\x80\" }", "line 1, column 6: invalid UTF-8"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        assert_refused(cases[i].text, -EINVAL, cases[i].msg);
    /* iteration that cannot be moved in front of its statement */
    static const char gen_here[] =
        "is not supported here (inside `not`, an `every` domain, a "
        "rule head or a default); use `some … in …`";
    char msg[256];
    snprintf(msg, sizeof(msg), "line 1, column 17: iteration over `[_]` %s", gen_here);
    assert_refused("r { not input.l[_] == 1 }", -EINVAL, msg);
    snprintf(msg, sizeof(msg), "line 1, column 24: iteration over `[i]` %s", gen_here);
    assert_refused("r { every x in input.l[i] { x } }", -EINVAL, msg);
    assert_refused("r = input.l[_]", -EINVAL,
                   "line 1, column 13: `_` (iteration) is not supported; use `some x in …`");
    assert_refused("r { x := {k: v | some k, v in input.o} }", -EINVAL,
                   "line 1, column 12: object comprehensions are not supported");
    assert_refused("r { x := [1 | ] }", -EINVAL, "line 1, column 13: found empty body");
}

/* ---- limits ---- */

static void limits(void** state) {
    (void)state;
    /* policy size */
    size_t big = REGO_MAX_TEXT + 1;
    char* text = malloc(big + 1);
    memset(text, ' ', big);
    text[big] = 0;
    assert_refused(text, -E2BIG, "policy is 65537 bytes, more than the limit of 65536");
    free(text);

    /* nesting depth: literals and parentheses */
    char deep[512] = "r { x := ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "[");
    for (int i = 0; i < 40; i++)
        strcat(deep, "]");
    strcat(deep, " }");
    struct moat_error err = {0};
    struct rego_policy* p = NULL;
    assert_int_equal(rego_compile(deep, strlen(deep), &p, &err), -E2BIG);
    assert_non_null(strstr(err.msg, "nesting deeper than 32"));

    /* evaluation steps: nested iteration over a large input */
    const char* loops = "r { some a in input.l; some b in input.l; some c in input.l; a == -1 }";
    json_t* l         = json_array();
    for (int i = 0; i < 100; i++)
        json_array_append_new(l, json_integer(i));
    json_t* in  = json_pack("{s:o}", "l", l);
    p           = compile_ok(loops);
    json_t* out = NULL;
    assert_int_equal(rego_eval(p, in, &out, &err), -E2BIG);
    assert_string_equal(err.msg, "line 1: evaluation exceeded 200000 steps");
    rego_policy_free(p);
    json_decref(in);

    /* membership tests are charged per element: 1000 iterations x 1000 elements */
    l = json_array();
    for (int i = 0; i < 1000; i++)
        json_array_append_new(l, json_integer(i));
    in = json_pack("{s:o}", "l", l);
    p  = compile_ok("r { some a in input.l; -1 in input.l }");
    assert_int_equal(rego_eval(p, in, &out, &err), -E2BIG);
    assert_string_equal(err.msg, "line 1: evaluation exceeded 200000 steps");
    rego_policy_free(p);
    json_decref(in);

    /* so are comparisons of collections and object.subset over arrays */
    l = json_array();
    for (int i = 0; i < 1000; i++)
        json_array_append_new(l, json_integer(i));
    in = json_pack("{s:O,s:o}", "a", l, "b", l);
    p  = compile_ok("r { some x in input.a; input.a == input.b; x < 0 }");
    assert_int_equal(rego_eval(p, in, &out, &err), -E2BIG);
    rego_policy_free(p);
    p = compile_ok(
        "small { not object.subset(input.a, [-1, -2]) }\n"
        "r { object.subset(input.a, input.b) }");
    assert_int_equal(rego_eval(p, in, &out, &err), -E2BIG);
    assert_string_equal(err.msg, "line 2: evaluation exceeded 200000 steps");
    rego_policy_free(p);
    json_decref(in);

    /* rule count */
    struct strbuf sb = STRBUF_INIT;
    for (int i = 0; i <= REGO_MAX_RULES; i++)
        strbuf_printf(&sb, "r%d = %d\n", i, i);
    char* many = strbuf_take(&sb, NULL);
    assert_refused(many, -E2BIG, "line 257, column 1: more than 256 rules");
    free(many);

    /* a chain of rule references: 100 deep evaluates, 250 deep exceeds the evaluation depth */
    for (int depth = 100; depth <= 250; depth += 150) {
        for (int i = 0; i < depth; i++)
            strbuf_printf(&sb, "r%d { r%d }\n", i, i + 1);
        strbuf_printf(&sb, "r%d { true }\n", depth);
        char* chain = strbuf_take(&sb, NULL);
        p           = compile_ok(chain);
        int r       = rego_eval(p, NULL, &out, &err);
        if (depth == 100) {
            assert_int_equal(r, 0);
            assert_true(rego_rule_is_true(out, "r0"));
            json_decref(out);
        } else {
            assert_int_equal(r, -E2BIG);
            assert_non_null(strstr(err.msg, "evaluation nested deeper than 400"));
        }
        rego_policy_free(p);
        free(chain);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sample_sgx_policy_builder),
        cmocka_unit_test(sample_sgx_concept_and_cli),
        cmocka_unit_test(sample_tdx),
        cmocka_unit_test(sample_token_customization),
        cmocka_unit_test(sample_tcb),
        cmocka_unit_test(builtins_time),
        cmocka_unit_test(builtins_subset),
        cmocka_unit_test(construct_rules),
        cmocka_unit_test(construct_expressions),
        cmocka_unit_test(construct_quantifiers),
        cmocka_unit_test(values_are_copies),
        cmocka_unit_test(construct_iteration),
        cmocka_unit_test(construct_else),
        cmocka_unit_test(semantics_undefined),
        cmocka_unit_test(semantics_compare),
        cmocka_unit_test(semantics_conflict),
        cmocka_unit_test(refusals),
        cmocka_unit_test(limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
