/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the x5c and CRL input of a token verifier (src/amber/jwks.c;
 * reference/attestation.md §4.2 "Verification"). Byte 0 selects: even, the rest is a JWK whose
 * "x5c" is classified (one leaf, one Signing CA, at most one root, ≤ 10 certificates); odd, the
 * rest is a CRL (DER or PEM) checked for a fixed certificate, which must never be accepted (the
 * fuzzer does not hold the issuer's key). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jwks.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static X509* g_cert;

static X509* self_signed(void) {
    EVP_PKEY* k  = EVP_EC_gen("P-256");
    X509* c      = X509_new();
    X509_NAME* n = X509_get_subject_name(c);
    if (!k || !c ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char*)"Fuzz Signing CA",
                                    -1, -1, 0) ||
        !X509_set_issuer_name(c, n) || !X509_set_pubkey(c, k) ||
        !X509_gmtime_adj(X509_getm_notBefore(c), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(c), 86400) || X509_sign(c, k, EVP_sha256()) <= 0)
        abort();
    EVP_PKEY_free(k);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    struct moat_error err = {0};
    if (!(data[0] & 1)) {
        json_t* jwk        = json_loadb((const char*)data + 1, size - 1, 0, NULL);
        struct amber_x5c c = {0};
        if (jwk && amber_x5c_parse(json_object_get(jwk, "x5c"), &c, &err) == 0) {
            if (!c.leaf || !c.intermediate ||
                amber_x5c_classify(c.intermediate) != AMBER_X5C_INTERMEDIATE ||
                amber_x5c_classify(c.leaf) != AMBER_X5C_LEAF)
                abort();
            free(amber_cert_crl_url(c.leaf));
            amber_x5c_clear(&c);
        }
        json_decref(jwk);
        return 0;
    }
    if (!g_cert)
        g_cert = self_signed();
    if (amber_crl_check(data + 1, size - 1, g_cert, g_cert, "leaf", 1800000000, NULL, &err) == 0)
        abort();
    return 0;
}
