/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the token service's attest request parser (src/amber/appraisal.c;
 * reference/attestation.md §4.1: the Amber beta, ITA v1 and ITA v2 shapes).
 *
 * Input byte 0 selects the shape, the rest is the request body. A parsed request must be
 * consistent (a quote, nonce parts, a TEE name only for v2), its report-data binding
 * computable, and its claims buildable over an empty verdict. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appraisal.h"
#include "verify.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    enum amber_api api              = (enum amber_api)(data[0] % 3);
    struct moat_error err           = {0};
    struct amber_attest_request req = {0};
    if (amber_attest_request_parse((const char*)data + 1, size - 1, api, &req, &err) < 0)
        return 0;
    if (!req.quote || req.quote_len == 0 || (api != AMBER_API_V2 && req.tee) ||
        (req.has_nonce && (!req.nonce.val || !req.nonce.iat || !req.nonce.signature)))
        abort();
    uint8_t rd[64];
    (void)amber_expected_report_data(&req, data[0] & 4, rd);
    struct attest_verify_result res = {.status = "UpToDate", .tee_type = data[0] & 8 ? 0x81 : 0};
    struct amber_claims_opts co     = {.issuer = "fuzz", .validity = 300, .now = 1};
    json_t* c                       = amber_claims_build(&req, &res, &co);
    if (!c)
        abort();
    json_decref(c);
    amber_attest_request_clear(&req);
    return 0;
}
