/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: JWT parsing and verification (src/amber/jwt.c; reference/attestation.md
 * §4.2) and JWK keys. Input byte 0 selects: a token decoded and verified under a fixed RSA key
 * with either algorithm (which must never succeed: the fuzzer has not the private key), or a
 * JWK turned into a key. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static EVP_PKEY* g_key;

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    if (!g_key)
        g_key = EVP_RSA_gen(2048);
    char* text            = strndup((const char*)data + 1, size - 1);
    struct moat_error err = {0};
    if (data[0] & 1) {
        json_t* jwk = json_loads(text, 0, NULL);
        EVP_PKEY* k = NULL;
        if (jwk && amber_jwk_key(jwk, &k, &err) == 0 && !k)
            abort();
        EVP_PKEY_free(k);
        json_decref(jwk);
    } else {
        struct amber_jwt t = {0};
        if (amber_jwt_decode(text, &t, &err) == 0 &&
            (!json_is_object(t.header) || !json_is_object(t.claims)))
            abort();
        amber_jwt_clear(&t);
        struct amber_jwt v     = {0};
        enum amber_jwt_alg alg = data[0] & 2 ? AMBER_JWT_RS256 : AMBER_JWT_PS384;
        if (amber_jwt_verify(text, alg, g_key, 1700000000, 60, &v, &err) == 0)
            abort(); /* a signature the fuzzer cannot have made */
        amber_jwt_clear(&v);
    }
    free(text);
    return 0;
}
