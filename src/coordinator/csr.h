/* SPDX-License-Identifier: Apache-2.0 */
/* A Marble's certificate signing request (ActivationReq.CSR): parsed and its self-signature
 * checked, as Go's x509.ParseCertificateRequest + CheckSignature.
 *
 * An EC key on P-224/256/384/521 (what Marbles send) is read without OpenSSL 3's decoder, which
 * d2i_X509_REQ runs for every request's key; any other request goes through d2i_X509_REQ. */
#pragma once

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct moat_csr {
    const X509_NAME* subject;        /* borrowed from the request below */
    STACK_OF(X509_EXTENSION) * exts; /* the extensionRequest attribute's; NULL: none */
    void* raw;                       /* internal: the parsed request */
    X509_REQ* req;                   /* internal: the request, when OpenSSL parsed it */
};

/* -EINVAL "failed to parse CSR" (including bytes after it) or "signature over CSR is invalid". */
int moat_csr_parse(const uint8_t* der, size_t len, struct moat_csr* ret, struct moat_error* err);
void moat_csr_clear(struct moat_csr* csr);
