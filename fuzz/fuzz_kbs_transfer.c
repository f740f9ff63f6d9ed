/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: what `moat kbs get-key` reads from a key broker (src/kbs/wrap.c;
 * reference/attestation.md §4.3): the transfer response {"wrapped_key", "wrapped_swk"} and the
 * wrapped_key's header. A parsed response is unwrapped with a fixed RSA key: it must fail
 * cleanly (nothing here can forge the GCM tag) unless it is a real wrapping of that key, which
 * the target checks once at start. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rsa.h>

#include "kbs.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static EVP_PKEY* g_key;

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!g_key && !(g_key = EVP_RSA_gen(2048)))
        abort();
    struct moat_error err = {0};
    struct kbs_wrapped w  = {0};
    if (kbs_transfer_response_parse((const char*)data, size, &w, &err) < 0) {
        if (!err.msg[0])
            abort();
        return 0;
    }
    if (!w.key || !w.swk || w.key_len == 0 || w.swk_len == 0)
        abort();
    uint8_t* out = NULL;
    size_t len   = 0;
    if (kbs_unwrap(g_key, w.key, w.key_len, w.swk, w.swk_len, &out, &len, &err) == 0)
        abort(); /* a fuzzer cannot wrap for a key it never saw */
    kbs_wrapped_clear(&w);
    return 0;
}
