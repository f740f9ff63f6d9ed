/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the key-transfer policy parser and matcher (src/kbs/policy.c;
 * reference/attestation.md §4.3).
 *
 * The input is a JSON document: a policy, or {"policy": …, "claims": …}. A parsed policy must
 * survive its canonical form unchanged (parse(to_json(p)) == to_json(p)) and match any claims
 * object without crashing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kbs.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    json_t* doc = json_loadb((const char*)data, size, JSON_DECODE_ANY, NULL);
    if (!doc)
        return 0;
    const json_t* pj      = json_object_get(doc, "policy") ? json_object_get(doc, "policy") : doc;
    const json_t* claims  = json_object_get(doc, "claims");
    struct moat_error err = {0};
    struct kbs_policy p = {0}, q = {0};
    if (kbs_policy_parse(pj, &p, &err) == 0) {
        json_t* a = kbs_policy_to_json(&p);
        if (kbs_policy_parse(a, &q, &err) < 0)
            abort();
        json_t* b = kbs_policy_to_json(&q);
        if (!json_equal(a, b))
            abort();
        if (json_is_object(claims))
            (void)kbs_policy_match(&p, claims, &err);
        json_decref(a);
        json_decref(b);
        kbs_policy_clear(&q);
        kbs_policy_clear(&p);
    }
    json_decref(doc);
    return 0;
}
