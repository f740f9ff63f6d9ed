/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: DCAP quotes (src/attest/quote.c, reference/attestation.md §1) with or
 * without MarbleRun's OpenEnclave header. A parsed quote must describe its buffer exactly
 * (header, body, signature-data length, signature data and trailing bytes add up; every
 * pointer inside the buffer), its views must render, and wrapping the input in an
 * OpenEnclave header must give the same result as parsing it bare. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quote.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static void inside(const uint8_t* buf, size_t len, const uint8_t* p, size_t n) {
    if (p < buf || n > len || (size_t)(p - buf) > len - n)
        abort();
}

static void check(const uint8_t* buf, size_t len, const struct quote* q) {
    if (q->size != len || q->signed_data != buf || q->signed_len != q->sig_data_len_offset ||
        q->body_offset + q->body_size != q->signed_len ||
        q->signed_len + 4 + (size_t)q->sig_data_len + q->trailing != len)
        abort();
    inside(buf, len, q->body_raw, q->body_size);
    inside(buf, len, q->qe_report_raw, QUOTE_SGX_BODY_SIZE);
    inside(buf, len, q->qe_auth_data, q->qe_auth_data_len);
    inside(buf, len, q->cert.data, q->cert.size);
    inside(buf, len, q->cert_inner.data, q->cert_inner.size);
    if (q->cert.data + q->cert.size != buf + len - q->trailing ||
        q->cert_inner.data + q->cert_inner.size != buf + len - q->trailing ||
        q->cert_inner.offset != (size_t)(q->cert_inner.data - buf))
        abort();
    if ((q->pck_chain != NULL) != (q->cert_inner.type == QUOTE_CERT_PCK_CHAIN))
        abort();
    json_t* j  = quote_to_json(q);
    char* text = json_dumps(j, JSON_COMPACT);
    if (!text)
        abort();
    free(text);
    json_decref(j);
    struct strbuf out = STRBUF_INIT;
    quote_format_text(q, &out);
    if (strlen(out.buf) != out.len)
        abort();
    strbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    struct quote q;
    struct moat_error err = {0};
    int r                 = quote_parse_input(data, size, &q, &err);
    if (r == 0) {
        const uint8_t* quote = data + (q.oe_header ? QUOTE_OE_HEADER_SIZE : 0);
        check(quote, q.size, &q);
    } else if (err.msg[0] == '\0' || (r != -EBADMSG && r != -ENOTSUP)) {
        abort();
    }
    /* parse_input() of the wrapped bytes is quote_parse() of the bare ones, always */
    size_t wlen;
    uint8_t* w = quote_oe_header_wrap(data, size, &wlen);
    struct quote wq, bare;
    struct moat_error werr = {0};
    int wr                 = quote_parse_input(w, wlen, &wq, &werr);
    int br                 = quote_parse(data, size, &bare, &err);
    if (br != wr || (br == 0 && (!wq.oe_header || wq.signed_len != bare.signed_len ||
                                 wq.trailing != bare.trailing || wq.size != size)))
        abort();
    if (br == 0 && (r != 0 || q.oe_header || memcmp(&q.sgx, &bare.sgx, sizeof(q.sgx)) != 0))
        abort();
    free(w);
    return 0;
}
