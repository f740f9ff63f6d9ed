/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what /dev/amber and `moat amber token` read from a token service
 * (src/amber/client.c; reference/attestation.md §4.1): the verifier nonce and the attest answer
 * of each generation. Input byte 0 selects the parser and the generation. A parsed nonce has
 * its three parts; a parsed token is three base64url parts. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    const char* body      = (const char*)data + 1;
    size_t len            = size - 1;
    struct moat_error err = {0};
    if (data[0] & 1) {
        void* nonce  = NULL;
        uint8_t *val = NULL, *iat = NULL;
        size_t vl = 0, il = 0;
        if (amber_client_parse_nonce(body, len, &nonce, &val, &vl, &iat, &il, &err) == 0) {
            if (!json_is_string(json_object_get(nonce, "signature")) || (vl && !val) ||
                (il && !iat))
                abort();
            json_decref(nonce);
            free(val);
            free(iat);
        }
    } else {
        char* token               = NULL;
        enum amber_client_api api = (enum amber_client_api)((data[0] >> 1) % 3);
        if (amber_client_parse_token(api, body, len, &token, &err) == 0) {
            size_t dots = 0;
            for (const char* p = token; *p; p++)
                dots += *p == '.';
            if (dots != 2)
                abort();
            free(token);
        }
    }
    return 0;
}
