/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the Rego subset (lexer, parser, evaluator) against a fixed ITA-shaped
 * claim set. Every failure must carry a message; a compiled policy must evaluate or fail with
 * one, within the step and depth limits. time.now_ns() is fixed so that runs reproduce. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rego.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static const char claims[] =
    "{\"sgx_mrenclave\":\"d777e819861adef6ffb2a4865efea9338b91ed30fa33491b17f0d5d9e8204410\","
    "\"sgx_mrsigner\":\"83d719e77deaca1470f6baf62a4d774303c899db69020f9c70ee1dfc08c7ce9e\","
    "\"sgx_isvprodid\":1,\"sgx_isvsvn\":2,\"sgx_is_debuggable\":false,"
    "\"attester_tcb_status\":\"UpToDate\",\"attester_advisory_ids\":[\"INTEL-SA-00615\"],"
    "\"tdx\":{\"tdx_seamsvn\":2,\"tdx_rtmr3\":\"00\",\"l\":[1,2.5,\"x\",null,true,[1],{\"a\":1}]},"
    "\"policy_ids_matched\":[{\"id\":\"11111111-1111-1111-1111-111111111111\",\"version\":\"v1\"}]"
    "}";

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static json_t* input;
    if (!input && !(input = json_loads(claims, 0, NULL)))
        abort();
    struct moat_error err = {0};
    struct rego_policy* p = NULL;
    if (rego_compile((const char*)data, size, &p, &err) < 0) {
        if (err.msg[0] == 0)
            abort();
        return 0;
    }
    json_t* out = NULL;
    memset(&err, 0, sizeof(err));
    if (rego_eval_at(p, input, 1704067200000000000LL, &out, &err) == 0) { /* 2024-01-01 */
        for (size_t i = 0; i < rego_rule_count(p); i++)
            (void)rego_rule_is_true(out, rego_rule_name(p, i));
        json_decref(out);
    } else if (err.msg[0] == 0) {
        abort();
    }
    rego_policy_free(p);
    return 0;
}
