/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the DCAP quote parser (reference/attestation.md §1): synthetic quotes of every
 * version and body type built here byte by byte, every truncation of the real vectors in
 * $MOAT_TESTDATA/attestation, declared sizes that do not match, trailing bytes (§1.6) and
 * MarbleRun's OpenEnclave header (reference/marblerun.md §4.4). The field values of the real
 * vectors against EXPECTED.json are checked in tests/test_quote.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quote.h"

/* ---------------------------------------------------------------------------------------- */
/* A quote builder                                                                           */

struct spec {
    uint16_t version;
    uint32_t tee;
    uint16_t body_type; /* v5 only */
    uint16_t auth_len;
    uint16_t cert_type; /* v3: the block; v4/v5: the block inside type 6 */
    uint32_t cert_len;
    size_t trailing;
};

struct out {
    uint8_t* buf;
    size_t len;
};

static void put(struct out* o, const void* p, size_t n) {
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}
static void put16(struct out* o, uint16_t v) {
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(o, b, 2);
}
static void put32(struct out* o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(o, b, 4);
}
static void put32_at(struct out* o, size_t at, uint32_t v) {
    for (int i = 0; i < 4; i++)
        o->buf[at + i] = (uint8_t)(v >> (8 * i));
}
/* n bytes of a pattern that differs per `seed` and per position */
static void fill(struct out* o, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++)
        o->buf[o->len + i] = (uint8_t)(seed + i * 7);
    o->len += n;
}

static size_t spec_body_size(const struct spec* s) {
    if (s->version == 5)
        return s->body_type == 1 ? 384 : s->body_type == 2 ? 584 : 648;
    return s->tee == 0 ? 384 : 584;
}

static const uint8_t g_pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

static void put_qe_block(struct out* o, const struct spec* s) {
    fill(o, 384, 0x40); /* QE report */
    fill(o, 64, 0x50);  /* QE report signature */
    put16(o, s->auth_len);
    fill(o, s->auth_len, 0x60);
}

static void put_cert(struct out* o, const struct spec* s) {
    put16(o, s->cert_type);
    put32(o, s->cert_len);
    if (s->cert_type == QUOTE_CERT_PCK_CHAIN && s->cert_len == sizeof(g_pem))
        put(o, g_pem, sizeof(g_pem));
    else
        fill(o, s->cert_len, 0x70);
}

/* A quote as `s` describes (caller frees). Header fields: qe_svn 10, pce_svn 15. */
static struct out build(const struct spec* s) {
    struct out o = {.buf = calloc(1, 4096 + s->cert_len + s->auth_len + s->trailing)};
    put16(&o, s->version);
    put16(&o, 2);
    put32(&o, s->tee);
    put16(&o, 10);
    put16(&o, 15);
    fill(&o, 16, 0x10); /* qe vendor id */
    fill(&o, 20, 0x20); /* user data */
    if (s->version == 5) {
        put16(&o, s->body_type);
        put32(&o, (uint32_t)spec_body_size(s));
    }
    fill(&o, spec_body_size(s), 0x30);
    size_t len_at = o.len;
    put32(&o, 0);
    fill(&o, 64, 0x80); /* quote signature */
    fill(&o, 64, 0x90); /* attestation key */
    if (s->version == 3) {
        put_qe_block(&o, s);
        put_cert(&o, s);
    } else {
        put16(&o, QUOTE_CERT_QE_REPORT);
        put32(&o, 384 + 64 + 2 + s->auth_len + 6 + s->cert_len);
        put_qe_block(&o, s);
        put_cert(&o, s);
    }
    put32_at(&o, len_at, (uint32_t)(o.len - len_at - 4));
    o.len += s->trailing; /* zeros */
    return o;
}

static void pattern_equal(const uint8_t* p, size_t n, uint8_t seed, size_t from) {
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i], (uint8_t)(seed + (from + i) * 7));
}

/* ---------------------------------------------------------------------------------------- */
/* Every version and body type                                                               */

static void check_synthetic(const struct spec* s) {
    struct out o = build(s);
    struct quote q;
    struct moat_error err = {0};
    assert_int_equal(quote_parse(o.buf, o.len, &q, &err), 0);
    size_t body_off = s->version == 5 ? 54 : 48, body_size = spec_body_size(s);
    assert_int_equal(q.version, s->version);
    assert_int_equal(q.att_key_type, 2);
    assert_int_equal(q.tee_type, s->tee);
    assert_int_equal(q.qe_svn, 10);
    assert_int_equal(q.pce_svn, 15);
    pattern_equal(q.qe_vendor_id, 16, 0x10, 0);
    pattern_equal(q.user_data, 20, 0x20, 0);
    assert_int_equal(q.body_offset, body_off);
    assert_int_equal(q.body_size, body_size);
    assert_ptr_equal(q.body_raw, o.buf + body_off);
    assert_ptr_equal(q.signed_data, o.buf);
    assert_int_equal(q.signed_len, body_off + body_size);
    assert_int_equal(q.sig_data_len_offset, body_off + body_size);
    assert_int_equal(q.sig_data_len, o.len - s->trailing - body_off - body_size - 4);
    if (body_size == 384) {
        assert_int_equal(q.body_type, QUOTE_BODY_SGX);
        pattern_equal(q.sgx.cpu_svn, 16, 0x30, 0);
        pattern_equal(q.sgx.mr_enclave, 32, 0x30, 64);
        pattern_equal(q.sgx.mr_signer, 32, 0x30, 128);
        pattern_equal(q.sgx.report_data, 64, 0x30, 320);
        assert_int_equal(q.sgx.isv_prod_id, (uint8_t)(0x30 + 256 * 7) | (uint8_t)(0x30 + 257 * 7)
                                                                            << 8);
    } else {
        assert_int_equal(q.body_type, body_size == 584 ? QUOTE_BODY_TD10 : QUOTE_BODY_TD15);
        pattern_equal(q.td.tee_tcb_svn, 16, 0x30, 0);
        pattern_equal(q.td.mr_td, 48, 0x30, 136);
        pattern_equal(q.td.rtmr[0], 48, 0x30, 328);
        pattern_equal(q.td.rtmr[3], 48, 0x30, 472);
        pattern_equal(q.td.report_data, 64, 0x30, 520);
        assert_int_equal(q.td.is_v15, body_size == 648);
        if (q.td.is_v15) {
            pattern_equal(q.td.tee_tcb_svn2, 16, 0x30, 584);
            pattern_equal(q.td.mr_servicetd, 48, 0x30, 600);
        }
    }
    pattern_equal(q.signature, 64, 0x80, 0);
    pattern_equal(q.attest_key, 64, 0x90, 0);
    pattern_equal(q.qe_report_raw, 384, 0x40, 0);
    pattern_equal(q.qe_report.mr_enclave, 32, 0x40, 64);
    pattern_equal(q.qe_report.report_data, 64, 0x40, 320);
    pattern_equal(q.qe_report_signature, 64, 0x50, 0);
    assert_int_equal(q.qe_auth_data_len, s->auth_len);
    pattern_equal(q.qe_auth_data, s->auth_len, 0x60, 0);
    assert_int_equal(q.cert.type, s->version == 3 ? s->cert_type : QUOTE_CERT_QE_REPORT);
    assert_int_equal(q.cert_inner.type, s->cert_type);
    assert_int_equal(q.cert_inner.size, s->cert_len);
    assert_ptr_equal(q.cert_inner.data + s->cert_len, o.buf + o.len - s->trailing);
    assert_int_equal(q.cert_inner.offset, (size_t)(q.cert_inner.data - o.buf));
    if (s->cert_type == QUOTE_CERT_PCK_CHAIN) {
        assert_ptr_equal(q.pck_chain, q.cert_inner.data);
        assert_int_equal(q.pck_chain_len, s->cert_len);
    } else {
        assert_null(q.pck_chain);
    }
    assert_int_equal(q.size, o.len);
    assert_int_equal(q.trailing, s->trailing);
    assert_false(q.oe_header);
    free(o.buf);
}

static void test_versions_and_body_types(void** state) {
    (void)state;
    const struct spec specs[] = {
        {3, 0, 0, 32, 5, sizeof(g_pem), 0},    /* §1.3 */
        {3, 0, 0, 0, 1, 34, 0},                /* PPID clear text, as Intel's synthetic */
        {4, 0, 0, 32, 5, sizeof(g_pem), 0},    /* §1.4, SGX */
        {4, 0x81, 0, 32, 5, sizeof(g_pem), 0}, /* §1.4, TDX 1.0 */
        {5, 0, 1, 32, 5, sizeof(g_pem), 0},    /* §1.5 body types 1-3 */
        {5, 0x81, 2, 32, 5, sizeof(g_pem), 0},
        {5, 0x81, 3, 32, 5, sizeof(g_pem), 0},
        {5, 0x81, 3, 0, 3, 0, 0}, /* empty auth data and cert data */
        {4, 0x81, 0, 500, 4, 700, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(specs); i++)
        check_synthetic(&specs[i]);
    struct out o = build(&specs[1]);
    assert_int_equal(o.len, 1020 + 34); /* §1.3: 1020 bytes + the certification data */
    free(o.buf);
}

static void test_trailing_bytes(void** state) {
    (void)state;
    const struct spec s[] = {{4, 0x81, 0, 32, 5, sizeof(g_pem), 70},
                             {3, 0, 0, 32, 5, sizeof(g_pem), 3065},
                             {5, 0x81, 3, 32, 5, sizeof(g_pem), 1}};
    for (size_t i = 0; i < ARRAY_SIZE(s); i++)
        check_synthetic(&s[i]);
}

/* ---------------------------------------------------------------------------------------- */
/* Errors                                                                                    */

static void expect_error(const uint8_t* buf, size_t len, int code, const char* needle) {
    struct quote q;
    memset(&q, 0xa5, sizeof(q));
    struct quote untouched = q;
    struct moat_error err  = {0};
    int r                  = quote_parse(buf, len, &q, &err);
    if (r != code || !strstr(err.msg, needle))
        fail_msg("got %d '%s', expected %d and '%s'", r, err.msg, code, needle);
    assert_memory_equal(&q, &untouched, sizeof(q)); /* ret_* written only on success */
}

static void set16(uint8_t* p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void set32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_header_errors(void** state) {
    (void)state;
    const struct spec v3 = {3, 0, 0, 32, 5, sizeof(g_pem), 0};
    const struct spec v5 = {5, 0x81, 3, 32, 5, sizeof(g_pem), 0};
    struct out o         = build(&v3);
    set16(o.buf, 7);
    expect_error(o.buf, o.len, -ENOTSUP, "unsupported quote version 7");
    set16(o.buf, 2);
    expect_error(o.buf, o.len, -ENOTSUP, "unsupported quote version 2");
    set16(o.buf, 3);
    set16(o.buf + 2, 3);
    expect_error(o.buf, o.len, -ENOTSUP, "attestation key type 3 is not ECDSA-256-with-P-256 (2)");
    set16(o.buf + 2, 2);
    set32(o.buf + 4, 0x81);
    expect_error(o.buf, o.len, -ENOTSUP, "tee type 0x81 at offset 4 in a version 3 quote");
    set16(o.buf, 4);
    set32(o.buf + 4, 5);
    expect_error(o.buf, o.len, -ENOTSUP, "unsupported tee type 0x5 at offset 4");
    free(o.buf);

    o = build(&v5);
    set16(o.buf + 48, 4);
    expect_error(o.buf, o.len, -ENOTSUP, "unsupported body type 4 at offset 48");
    set16(o.buf + 48, 2);
    expect_error(o.buf, o.len, -EBADMSG,
                 "body size 648 at offset 50 does not match body type 2 (584 bytes)");
    set16(o.buf + 48, 1);
    set32(o.buf + 50, 384);
    expect_error(o.buf, o.len, -EBADMSG,
                 "body type 1 (SGX enclave report) at offset 48 does "
                 "not match tee type 0x81 (TDX)");
    free(o.buf);
}

/* v3, 32-byte auth data, `cert_len` bytes of cert data: offsets of §1.3 */
enum { V3_SIGLEN = 432, V3_AUTHSIZE = 1012, V3_CERTTYPE = 1046, V3_CERTSIZE = 1048 };

static void test_declared_sizes(void** state) {
    (void)state;
    const struct spec v3 = {3, 0, 0, 32, 5, sizeof(g_pem), 0};
    struct out o         = build(&v3);
    size_t present       = o.len - V3_SIGLEN - 4;
    set32(o.buf + V3_SIGLEN, (uint32_t)present + 1);
    expect_error(o.buf, o.len, -EBADMSG, "signature data size");
    expect_error(o.buf, o.len, -EBADMSG, "at offset 432 exceeds the");
    /* the signature data ends before the certification data does */
    set32(o.buf + V3_SIGLEN, (uint32_t)present - 1);
    expect_error(o.buf, o.len, -EBADMSG,
                 "certification data size 60 at offset 1048 exceeds "
                 "the 59 bytes present");
    set32(o.buf + V3_SIGLEN, (uint32_t)present);
    /* QVL: the certification data size must equal the bytes present, both ways */
    set32(o.buf + V3_CERTSIZE, sizeof(g_pem) + 1);
    expect_error(o.buf, o.len, -EBADMSG,
                 "certification data size 61 at offset 1048 exceeds "
                 "the 60 bytes present");
    set32(o.buf + V3_CERTSIZE, sizeof(g_pem) - 1);
    expect_error(o.buf, o.len, -EBADMSG,
                 "certification data size 59 at offset 1048 does not "
                 "cover the 60 bytes present in the signature data");
    set32(o.buf + V3_CERTSIZE, sizeof(g_pem));
    set16(o.buf + V3_AUTHSIZE, 2000);
    expect_error(o.buf, o.len, -EBADMSG, "qe authentication data size 2000 at offset 1012");
    free(o.buf);

    /* v4: the type-6 block and the block inside it */
    const struct spec v4 = {4, 0x81, 0, 32, 5, sizeof(g_pem), 0};
    o                    = build(&v4);
    size_t outer_type = 636 + 128, outer_size = outer_type + 2;
    size_t inner_size = outer_size + 4 + 384 + 64 + 2 + 32 + 2;
    set16(o.buf + outer_type, 5);
    expect_error(o.buf, o.len, -EBADMSG,
                 "certification data type 5 at offset 764: a version 4 "
                 "quote needs type 6");
    set16(o.buf + outer_type, 6);
    set32(o.buf + inner_size, sizeof(g_pem) + 1);
    expect_error(o.buf, o.len, -EBADMSG, "inner certification data size 61 at offset 1254");
    set32(o.buf + inner_size, sizeof(g_pem) - 1);
    expect_error(o.buf, o.len, -EBADMSG, "present in the qe report certification data");
    set32(o.buf + inner_size, sizeof(g_pem));
    uint32_t outer = (uint32_t)(o.len - outer_size - 4);
    set32(o.buf + outer_size, outer + 1);
    expect_error(o.buf, o.len, -EBADMSG, "certification data size");
    set32(o.buf + outer_size, outer);
    struct quote q;
    struct moat_error err = {0};
    assert_int_equal(quote_parse(o.buf, o.len, &q, &err), 0);
    free(o.buf);
}

/* Every prefix of a real quote shorter than its signature data fails with a message that
 * names a field and an offset; every longer one parses, the rest counted as trailing. */
static void truncate_vector(const char* rel) {
    const char* dir = getenv("MOAT_TESTDATA");
    if (!dir)
        dir = "../shared/testdata";
    _cleanup_free_ char* path = xasprintf("%s/attestation/%s", dir, rel);
    _cleanup_free_ char* buf  = NULL;
    size_t len;
    struct moat_error err = {0};
    if (read_file(path, &buf, &len, &err) < 0) {
        print_message("skipping %s: %s\n", rel, err.msg);
        return;
    }
    struct quote full;
    assert_int_equal(quote_parse((uint8_t*)buf, len, &full, &err), 0);
    size_t end = full.sig_data_len_offset + 4 + full.sig_data_len;
    assert_int_equal(end + full.trailing, len);
    for (size_t n = 0; n < len; n++) {
        uint8_t* copy = malloc(n ? n : 1); /* exact size: ASan sees any overrun */
        memcpy(copy, buf, n);
        struct quote q;
        moat_error_clear(&err);
        int r = quote_parse(copy, n, &q, &err);
        if (n < end) {
            if (r != -EBADMSG || strncmp(err.msg, "quote: ", 7) != 0 ||
                !strstr(err.msg, " at offset "))
                fail_msg("%s cut to %zu bytes: %d '%s'", rel, n, r, err.msg);
        } else {
            assert_int_equal(r, 0);
            assert_int_equal(q.trailing, n - end);
        }
        free(copy);
    }
}

static void test_truncations(void** state) {
    (void)state;
    static const char* const vectors[] = {
        "sgx/phala/sgx_quote.bin",
        "sgx/other/ita_kbs_example_quote.dat",
        "sgx/intel_qvl_synthetic/quote.dat",
        "tdx/phala/tdx_quote_v4.bin",
        "tdx/phala/tdx_quote_v5_outdated.bin",
        "tdx/go-tdx-guest/quote_v5_sample.dat",
        "tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat",
        "tdx/go-tdx-guest/cos-113-tdx-quote.dat",
    };
    for (size_t i = 0; i < ARRAY_SIZE(vectors); i++)
        truncate_vector(vectors[i]);
}

/* ---------------------------------------------------------------------------------------- */
/* OpenEnclave header, views                                                                 */

static void test_oe_header(void** state) {
    (void)state;
    const struct spec v3 = {3, 0, 0, 32, 5, sizeof(g_pem), 0};
    struct out o         = build(&v3);
    size_t wlen;
    uint8_t* w = quote_oe_header_wrap(o.buf, o.len, &wlen);
    assert_int_equal(wlen, o.len + 16);
    /* u32le 1, u32le 2 (OE_REPORT_TYPE_SGX_REMOTE), u64le length: marblerun.md §4.4 */
    const uint8_t hdr[8] = {1, 0, 0, 0, 2, 0, 0, 0};
    assert_memory_equal(w, hdr, 8);
    assert_int_equal(w[8] | w[9] << 8, o.len);
    assert_memory_equal(w + 10, "\0\0\0\0\0\0", 6);
    assert_memory_equal(w + 16, o.buf, o.len);

    const uint8_t* p;
    size_t plen;
    struct moat_error err = {0};
    assert_int_equal(quote_oe_header_strip(w, wlen, &p, &plen, &err), 1);
    assert_ptr_equal(p, w + 16);
    assert_int_equal(plen, o.len);
    assert_int_equal(quote_oe_header_strip(o.buf, o.len, &p, &plen, &err), 0);
    assert_ptr_equal(p, o.buf);
    assert_int_equal(plen, o.len);

    struct quote a, b;
    assert_int_equal(quote_parse_input(w, wlen, &a, &err), 0);
    assert_true(a.oe_header);
    assert_int_equal(quote_parse_input(o.buf, o.len, &b, &err), 0);
    assert_false(b.oe_header);
    assert_memory_equal(a.signature, b.signature, 64);
    assert_int_equal(a.size, o.len);

    /* a length that is not the rest of the buffer */
    w[8]++;
    assert_int_equal(quote_parse_input(w, wlen, &a, &err), -EBADMSG);
    assert_non_null(strstr(err.msg, "openenclave header: quote length at offset 8"));
    w[8]--;
    assert_int_equal(quote_oe_header_strip(w, 12, &p, &plen, &err), -EBADMSG);
    /* a wrapped quote that is broken says where */
    set16(w + 16, 9);
    assert_int_equal(quote_parse_input(w, wlen, &a, &err), -ENOTSUP);
    assert_string_equal(err.msg,
                        "after the 16-byte openenclave header: quote: unsupported "
                        "quote version 9 (moat reads versions 3, 4 and 5)");
    free(w);
    w = quote_oe_header_wrap(NULL, 0, &wlen);
    assert_int_equal(wlen, 16);
    assert_int_equal(quote_oe_header_strip(w, wlen, &p, &plen, &err), 1);
    assert_int_equal(plen, 0);
    free(w);
    free(o.buf);
}

static void test_debug_and_views(void** state) {
    (void)state;
    const struct spec sgx = {3, 0, 0, 32, 5, sizeof(g_pem), 0};
    const struct spec tdx = {5, 0x81, 3, 0, 1, 34, 0};
    struct out o          = build(&sgx);
    struct quote q;
    struct moat_error err = {0};
    o.buf[48 + 48]        = 0x05; /* attributes.flags: INIT | MODE64BIT */
    assert_int_equal(quote_parse(o.buf, o.len, &q, &err), 0);
    assert_false(quote_is_debug(&q));
    o.buf[48 + 48] = 0x07; /* + DEBUG (§1.2) */
    assert_int_equal(quote_parse(o.buf, o.len, &q, &err), 0);
    assert_true(quote_is_debug(&q));

    json_t* j = quote_to_json(&q);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "tee_type")), "0x0");
    assert_true(json_is_true(json_object_get(j, "is_debug")));
    assert_int_equal(json_integer_value(json_object_get(j, "qe_auth_data_len")), 32);
    assert_string_equal(json_string_value(json_object_get(j, "pck_chain")), (const char*)g_pem);
    const char* rd = json_string_value(json_object_get(json_object_get(j, "body"), "report_data"));
    assert_int_equal(strlen(rd), 128);
    json_decref(j);
    struct strbuf text = STRBUF_INIT;
    quote_format_text(&q, &text);
    assert_non_null(strstr(text.buf, "debug:                yes\n"));
    assert_non_null(strstr(text.buf, "type 5 (PCK certificate chain)"));
    strbuf_free(&text);
    free(o.buf);

    o               = build(&tdx);
    o.buf[54 + 120] = 0x01; /* td_attributes bit 0 DEBUG (§1.4) */
    assert_int_equal(quote_parse(o.buf, o.len, &q, &err), 0);
    assert_true(quote_is_debug(&q));
    j            = quote_to_json(&q);
    json_t* body = json_object_get(j, "body");
    assert_non_null(json_object_get(body, "rtmr3"));
    assert_non_null(json_object_get(body, "mr_servicetd"));
    assert_int_equal(json_integer_value(json_object_get(j, "cert_data_type")), 6);
    assert_int_equal(json_integer_value(json_object_get(j, "cert_data_type_inner")), 1);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "cert_data_inner"))), 68);
    json_decref(j);
    quote_format_text(&q, &text);
    assert_non_null(strstr(text.buf, "type 3 (TD report, TDX 1.5), 648 bytes at offset 54"));
    assert_non_null(strstr(text.buf, "  mr_servicetd:"));
    strbuf_free(&text);
    free(o.buf);

    assert_string_equal(quote_cert_type_name(6), "QE report certification data");
    assert_string_equal(quote_cert_type_name(0), "unknown");
    assert_string_equal(quote_cert_type_name(9999), "unknown");
    assert_string_equal(quote_body_name(0), "unknown");
    assert_string_equal(quote_tee_name(7), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_and_body_types),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_declared_sizes),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_oe_header),
        cmocka_unit_test(test_debug_and_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
