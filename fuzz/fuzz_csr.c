/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: a Marble's CSR (src/coordinator/csr.c). Every failure says why, and the fast
 * path for EC keys must never accept what OpenSSL's own d2i_X509_REQ + X509_REQ_verify refuses,
 * nor read a different subject or extension list from it. */
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdlib.h>

#include "csr.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    log_set_level(LOG_LEVEL_NONE);
    struct moat_csr csr   = {0};
    struct moat_error err = {0};
    if (moat_csr_parse(data, size, &csr, &err) < 0) {
        if (!err.msg[0] || csr.subject || csr.raw || csr.req)
            abort(); /* every failure says why, and leaves nothing behind */
        return 0;
    }
    if (!csr.subject || (!csr.raw) == (!csr.req))
        abort();
    const unsigned char* p = data;
    X509_REQ* req          = d2i_X509_REQ(NULL, &p, (long)size);
    if (!req || p != data + size)
        abort();
    EVP_PKEY* pub = X509_REQ_get0_pubkey(req);
    if (!pub || X509_REQ_verify(req, pub) != 1)
        abort();
    if (X509_NAME_cmp(csr.subject, X509_REQ_get_subject_name(req)) != 0)
        abort();
    STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
    if (sk_X509_EXTENSION_num(exts) != sk_X509_EXTENSION_num(csr.exts))
        abort();
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
        if (OBJ_cmp(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts, i)),
                    X509_EXTENSION_get_object(sk_X509_EXTENSION_value(csr.exts, i))) != 0)
            abort();
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    moat_csr_clear(&csr);
    ERR_clear_error();
    return 0;
}
