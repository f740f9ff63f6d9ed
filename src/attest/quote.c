/* SPDX-License-Identifier: Apache-2.0 */
/* DCAP quote parsing (reference/attestation.md §1), MarbleRun's OpenEnclave header
 * (reference/marblerun.md §4.4) and the views of a parsed quote. */
#include <string.h>

#include "quote.h"

/* ---------------------------------------------------------------------------------------- */
/* A cursor over one region of the quote that names what it reads when it fails.             */

struct qp {
    const uint8_t* base; /* start of the quote: offsets in messages are relative to it */
    struct cursor c;
    const char* region; /* "quote", "signature data", ... */
    struct moat_error* err;
};

static size_t qp_off(const struct qp* p) {
    return (size_t)(p->c.p - p->base);
}

static int qp_short(const struct qp* p, const char* field, size_t n) {
    return moat_error_set(p->err, -EBADMSG,
                          "quote: %s at offset %zu needs %zu bytes, %zu left in the %s", field,
                          qp_off(p), n, p->c.len, p->region);
}

static int qp_ptr(struct qp* p, const char* field, size_t n, const uint8_t** ret) {
    if (n > p->c.len)
        return qp_short(p, field, n);
    return cur_ptr(&p->c, n, ret);
}

static int qp_copy(struct qp* p, const char* field, void* out, size_t n) {
    if (n > p->c.len)
        return qp_short(p, field, n);
    return cur_bytes(&p->c, out, n);
}

static int qp_u16(struct qp* p, const char* field, uint16_t* ret) {
    if (p->c.len < 2)
        return qp_short(p, field, 2);
    return cur_u16le(&p->c, ret);
}

static int qp_u32(struct qp* p, const char* field, uint32_t* ret) {
    if (p->c.len < 4)
        return qp_short(p, field, 4);
    return cur_u32le(&p->c, ret);
}

/* Takes a sub-region of `declared` bytes whose size field was at `size_off`. */
static int qp_sized(struct qp* p, const char* field, size_t size_off, size_t declared,
                    const char* region, struct qp* ret) {
    if (declared > p->c.len)
        return moat_error_set(p->err, -EBADMSG,
                              "quote: %s size %zu at offset %zu exceeds the %zu bytes present",
                              field, declared, size_off, p->c.len);
    *ret = (struct qp){.base = p->base, .region = region, .err = p->err};
    return cur_sub(&p->c, declared, &ret->c);
}

/* QVL: a certification-data block's declared size must equal the bytes present. */
static int qp_exact(struct qp* p, const char* field, size_t size_off, size_t declared) {
    if (declared > p->c.len)
        return moat_error_set(p->err, -EBADMSG,
                              "quote: %s size %zu at offset %zu exceeds the %zu bytes present",
                              field, declared, size_off, p->c.len);
    if (declared < p->c.len)
        return moat_error_set(p->err, -EBADMSG,
                              "quote: %s size %zu at offset %zu does not cover the %zu bytes "
                              "present in the %s",
                              field, declared, size_off, p->c.len, p->region);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Report bodies: the region is exactly the body's size, so reads cannot fail.              */

static uint64_t le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* sgx_report_body_t (§1.2). */
static int parse_sgx_body(struct cursor c, struct quote_sgx_body* b) {
    if (c.len != QUOTE_SGX_BODY_SIZE)
        return -EBADMSG;
    if (cur_bytes(&c, b->cpu_svn, 16) < 0 || cur_bytes(&c, b->misc_select, 4) < 0 ||
        cur_bytes(&c, b->reserved1, 12) < 0 || cur_bytes(&c, b->isv_ext_prod_id, 16) < 0 ||
        cur_bytes(&c, b->attributes, 16) < 0 || cur_bytes(&c, b->mr_enclave, 32) < 0 ||
        cur_bytes(&c, b->reserved2, 32) < 0 || cur_bytes(&c, b->mr_signer, 32) < 0 ||
        cur_bytes(&c, b->reserved3, 32) < 0 || cur_bytes(&c, b->config_id, 64) < 0 ||
        cur_u16le(&c, &b->isv_prod_id) < 0 || cur_u16le(&c, &b->isv_svn) < 0 ||
        cur_u16le(&c, &b->config_svn) < 0 || cur_bytes(&c, b->reserved4, 42) < 0 ||
        cur_bytes(&c, b->isv_family_id, 16) < 0 || cur_bytes(&c, b->report_data, 64) < 0)
        return -EBADMSG;
    b->attr_flags = le64(b->attributes);
    b->attr_xfrm  = le64(b->attributes + 8);
    return 0;
}

/* TD report body 1.0 (§1.4), with the 1.5 fields (§1.5) when the region holds them. */
static int parse_td_body(struct cursor c, struct quote_td_body* b) {
    if (c.len != QUOTE_TD10_BODY_SIZE && c.len != QUOTE_TD15_BODY_SIZE)
        return -EBADMSG;
    if (cur_bytes(&c, b->tee_tcb_svn, 16) < 0 || cur_bytes(&c, b->mr_seam, 48) < 0 ||
        cur_bytes(&c, b->mr_signer_seam, 48) < 0 || cur_bytes(&c, b->seam_attributes, 8) < 0 ||
        cur_bytes(&c, b->td_attributes, 8) < 0 || cur_bytes(&c, b->xfam, 8) < 0 ||
        cur_bytes(&c, b->mr_td, 48) < 0 || cur_bytes(&c, b->mr_config_id, 48) < 0 ||
        cur_bytes(&c, b->mr_owner, 48) < 0 || cur_bytes(&c, b->mr_owner_config, 48) < 0 ||
        cur_bytes(&c, b->rtmr, sizeof(b->rtmr)) < 0 || cur_bytes(&c, b->report_data, 64) < 0)
        return -EBADMSG;
    b->is_v15 = c.len != 0;
    if (b->is_v15 &&
        (cur_bytes(&c, b->tee_tcb_svn2, 16) < 0 || cur_bytes(&c, b->mr_servicetd, 48) < 0))
        return -EBADMSG;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Header, body, signature data                                                             */

static int parse_header(struct qp* p, struct quote* q) {
    int r = qp_u16(p, "version", &q->version);
    if (r < 0)
        return r;
    if (q->version < 3 || q->version > 5)
        return moat_error_set(p->err, -ENOTSUP,
                              "quote: unsupported quote version %u (moat reads versions 3, 4 "
                              "and 5)",
                              q->version);
    if ((r = qp_u16(p, "attestation key type", &q->att_key_type)) < 0)
        return r;
    if (q->att_key_type != QUOTE_ATT_KEY_ECDSA_P256)
        return moat_error_set(p->err, -ENOTSUP,
                              "quote: attestation key type %u is not ECDSA-256-with-P-256 (2)",
                              q->att_key_type);
    if ((r = qp_u32(p, "tee type", &q->tee_type)) < 0)
        return r;
    if (q->version == 3 && q->tee_type != QUOTE_TEE_SGX)
        return moat_error_set(p->err, -ENOTSUP,
                              "quote: tee type 0x%x at offset 4 in a version 3 quote, which is "
                              "SGX only (0x0)",
                              q->tee_type);
    if (q->tee_type != QUOTE_TEE_SGX && q->tee_type != QUOTE_TEE_TDX)
        return moat_error_set(p->err, -ENOTSUP,
                              "quote: unsupported tee type 0x%x at offset 4 (0x0 SGX, 0x81 TDX)",
                              q->tee_type);
    if ((r = qp_copy(p, "qe svn and pce svn", q->header_8_11, 4)) < 0 ||
        (r = qp_copy(p, "qe vendor id", q->qe_vendor_id, 16)) < 0 ||
        (r = qp_copy(p, "user data", q->user_data, 20)) < 0)
        return r;
    q->qe_svn  = (uint16_t)(q->header_8_11[0] | q->header_8_11[1] << 8);
    q->pce_svn = (uint16_t)(q->header_8_11[2] | q->header_8_11[3] << 8);
    return 0;
}

static size_t body_size_of(uint16_t type) {
    return type == QUOTE_BODY_SGX    ? QUOTE_SGX_BODY_SIZE
           : type == QUOTE_BODY_TD10 ? QUOTE_TD10_BODY_SIZE
           : type == QUOTE_BODY_TD15 ? QUOTE_TD15_BODY_SIZE
                                     : 0;
}

/* v5 (§1.5): u16 body type, u32 body size, then the body. */
static int parse_v5_body_prefix(struct qp* p, struct quote* q) {
    uint32_t size;
    int r = qp_u16(p, "body type", &q->body_type);
    if (r < 0)
        return r;
    if (body_size_of(q->body_type) == 0)
        return moat_error_set(p->err, -ENOTSUP,
                              "quote: unsupported body type %u at offset 48 (1 SGX, 2 TDX 1.0, "
                              "3 TDX 1.5)",
                              q->body_type);
    if ((r = qp_u32(p, "body size", &size)) < 0)
        return r;
    if (size != body_size_of(q->body_type))
        return moat_error_set(p->err, -EBADMSG,
                              "quote: body size %u at offset 50 does not match body type %u "
                              "(%zu bytes)",
                              size, q->body_type, body_size_of(q->body_type));
    if ((q->body_type == QUOTE_BODY_SGX) != (q->tee_type == QUOTE_TEE_SGX))
        return moat_error_set(p->err, -EBADMSG,
                              "quote: body type %u (%s) at offset 48 does not match tee type "
                              "0x%x (%s)",
                              q->body_type, quote_body_name(q->body_type), q->tee_type,
                              quote_tee_name(q->tee_type));
    return 0;
}

static int parse_body(struct qp* p, struct quote* q) {
    if (q->version == 5) {
        int r = parse_v5_body_prefix(p, q);
        if (r < 0)
            return r;
    } else {
        q->body_type = q->tee_type == QUOTE_TEE_TDX ? QUOTE_BODY_TD10 : QUOTE_BODY_SGX;
    }
    q->body_size   = body_size_of(q->body_type);
    q->body_offset = qp_off(p);
    int r = qp_ptr(p, q->body_type == QUOTE_BODY_SGX ? "sgx report body" : "td report body",
                   q->body_size, &q->body_raw);
    if (r < 0)
        return r;
    struct cursor body = cursor_init(q->body_raw, q->body_size);
    r                  = q->body_type == QUOTE_BODY_SGX ? parse_sgx_body(body, &q->sgx)
                                                        : parse_td_body(body, &q->td);
    if (r < 0)
        return moat_error_set(p->err, r, "quote: report body at offset %zu", q->body_offset);
    q->signed_data = p->base;
    q->signed_len  = qp_off(p);
    return 0;
}

/* QE report, its signature and the QE authentication data: in the v3 signature data, inside
 * the type-6 certification data in v4/v5 (§1.3, §1.4). */
static int parse_qe_block(struct qp* p, struct quote* q) {
    q->qe_report_offset = qp_off(p);
    int r               = qp_ptr(p, "qe report", QUOTE_SGX_BODY_SIZE, &q->qe_report_raw);
    if (r < 0)
        return r;
    if (parse_sgx_body(cursor_init(q->qe_report_raw, QUOTE_SGX_BODY_SIZE), &q->qe_report) < 0)
        return moat_error_set(p->err, -EBADMSG, "quote: qe report at offset %zu",
                              q->qe_report_offset);
    if ((r = qp_copy(p, "qe report signature", q->qe_report_signature, QUOTE_SIG_SIZE)) < 0)
        return r;
    size_t size_off = qp_off(p);
    if ((r = qp_u16(p, "qe authentication data size", &q->qe_auth_data_len)) < 0)
        return r;
    if (q->qe_auth_data_len > p->c.len)
        return moat_error_set(p->err, -EBADMSG,
                              "quote: qe authentication data size %u at offset %zu exceeds the "
                              "%zu bytes present",
                              q->qe_auth_data_len, size_off, p->c.len);
    return qp_ptr(p, "qe authentication data", q->qe_auth_data_len, &q->qe_auth_data);
}

/* A certification-data block (type, size, data) that fills the rest of the region. */
static int parse_cert(struct qp* p, const char* what, struct quote_cert_data* ret) {
    char field[96];
    snprintf(field, sizeof(field), "%s type", what);
    int r = qp_u16(p, field, &ret->type);
    if (r < 0)
        return r;
    size_t size_off = qp_off(p);
    snprintf(field, sizeof(field), "%s size", what);
    if ((r = qp_u32(p, field, &ret->size)) < 0)
        return r;
    if ((r = qp_exact(p, what, size_off, ret->size)) < 0)
        return r;
    ret->offset = qp_off(p);
    return qp_ptr(p, what, ret->size, &ret->data);
}

static int parse_sig_data(struct qp* p, struct quote* q) {
    q->sig_data_len_offset = qp_off(p);
    int r                  = qp_u32(p, "signature data length", &q->sig_data_len);
    if (r < 0)
        return r;
    struct qp sig;
    if ((r = qp_sized(p, "signature data", q->sig_data_len_offset, q->sig_data_len,
                      "signature data", &sig)) < 0)
        return r;
    q->trailing = p->c.len;
    if ((r = qp_copy(&sig, "quote signature", q->signature, QUOTE_SIG_SIZE)) < 0 ||
        (r = qp_copy(&sig, "attestation key", q->attest_key, QUOTE_KEY_SIZE)) < 0)
        return r;
    if (q->version == 3) {
        if ((r = parse_qe_block(&sig, q)) < 0 ||
            (r = parse_cert(&sig, "certification data", &q->cert)) < 0)
            return r;
        q->cert_inner = q->cert;
    } else {
        if ((r = parse_cert(&sig, "certification data", &q->cert)) < 0)
            return r;
        if (q->cert.type != QUOTE_CERT_QE_REPORT)
            return moat_error_set(p->err, -EBADMSG,
                                  "quote: certification data type %u at offset %zu: a version "
                                  "%u quote needs type 6 (QE report certification data)",
                                  q->cert.type, q->cert.offset - 6, q->version);
        struct qp qe = {.base   = p->base,
                        .c      = cursor_init(q->cert.data, q->cert.size),
                        .region = "qe report certification data",
                        .err    = p->err};
        if ((r = parse_qe_block(&qe, q)) < 0 ||
            (r = parse_cert(&qe, "inner certification data", &q->cert_inner)) < 0)
            return r;
    }
    if (q->cert_inner.type == QUOTE_CERT_PCK_CHAIN) {
        q->pck_chain     = q->cert_inner.data;
        q->pck_chain_len = q->cert_inner.size;
    }
    return 0;
}

int quote_parse(const uint8_t* buf, size_t len, struct quote* ret, struct moat_error* err) {
    struct quote q = {0};
    struct qp p    = {.base = buf, .c = cursor_init(buf, len), .region = "quote", .err = err};
    int r          = parse_header(&p, &q);
    if (r < 0 || (r = parse_body(&p, &q)) < 0 || (r = parse_sig_data(&p, &q)) < 0)
        return r;
    q.size = len;
    *ret   = q;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* MarbleRun's OpenEnclave header (marblerun.md §4.4)                                        */

int quote_oe_header_strip(const uint8_t* buf, size_t len, const uint8_t** ret_quote,
                          size_t* ret_len, struct moat_error* err) {
    struct cursor c = cursor_init(buf, len);
    uint32_t version, type;
    uint64_t quote_len;
    /* A DCAP quote starts with version 3-5 and key type 2, never with u32 1 then u32 2. */
    if (cur_u32le(&c, &version) < 0 || cur_u32le(&c, &type) < 0 || version != QUOTE_OE_VERSION ||
        type != QUOTE_OE_TYPE_SGX_REMOTE) {
        *ret_quote = buf;
        *ret_len   = len;
        return 0;
    }
    if (cur_u64le(&c, &quote_len) < 0 || quote_len != c.len)
        return moat_error_set(err, -EBADMSG,
                              "openenclave header: quote length at offset 8 is not the %zu "
                              "bytes that follow the 16-byte header",
                              c.len);
    *ret_quote = c.p;
    *ret_len   = c.len;
    return 1;
}

uint8_t* quote_oe_header_wrap(const uint8_t* quote, size_t len, size_t* ret_len) {
    uint8_t* out   = xmalloc(QUOTE_OE_HEADER_SIZE + len);
    uint64_t v[]   = {QUOTE_OE_VERSION, QUOTE_OE_TYPE_SGX_REMOTE, len};
    size_t sizes[] = {4, 4, 8};
    size_t at      = 0;
    for (size_t i = 0; i < ARRAY_SIZE(v); i++)
        for (size_t k = 0; k < sizes[i]; k++)
            out[at++] = (uint8_t)(v[i] >> (8 * k));
    if (len)
        memcpy(out + QUOTE_OE_HEADER_SIZE, quote, len);
    *ret_len = QUOTE_OE_HEADER_SIZE + len;
    return out;
}

int quote_parse_input(const uint8_t* buf, size_t len, struct quote* ret, struct moat_error* err) {
    const uint8_t* quote;
    size_t quote_len;
    int stripped = quote_oe_header_strip(buf, len, &quote, &quote_len, err);
    if (stripped < 0)
        return stripped;
    int r = quote_parse(quote, quote_len, ret, err);
    if (r < 0) {
        if (stripped)
            moat_error_prefix(err, "after the 16-byte openenclave header");
        return r;
    }
    ret->oe_header = stripped;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Names                                                                                     */

bool quote_is_debug(const struct quote* q) {
    if (q->body_type == QUOTE_BODY_SGX)
        return (q->sgx.attr_flags & 0x2) != 0;
    return (q->td.td_attributes[0] & 0x1) != 0;
}

const char* quote_tee_name(uint32_t tee_type) {
    return tee_type == QUOTE_TEE_SGX ? "SGX" : tee_type == QUOTE_TEE_TDX ? "TDX" : "unknown";
}

const char* quote_body_name(uint16_t body_type) {
    static const char* const names[] = {
        [QUOTE_BODY_SGX]  = "SGX enclave report",
        [QUOTE_BODY_TD10] = "TD report, TDX 1.0",
        [QUOTE_BODY_TD15] = "TD report, TDX 1.5",
    };
    return body_type < ARRAY_SIZE(names) && names[body_type] ? names[body_type] : "unknown";
}

const char* quote_cert_type_name(uint16_t type) {
    static const char* const names[] = {
        [QUOTE_CERT_PPID_CLEARTEXT]    = "PPID in clear text",
        [QUOTE_CERT_PPID_RSA2048]      = "PPID RSA-2048-OAEP encrypted",
        [QUOTE_CERT_PPID_RSA3072]      = "PPID RSA-3072-OAEP encrypted",
        [QUOTE_CERT_PCK_LEAF]          = "PCK leaf certificate",
        [QUOTE_CERT_PCK_CHAIN]         = "PCK certificate chain",
        [QUOTE_CERT_QE_REPORT]         = "QE report certification data",
        [QUOTE_CERT_PLATFORM_MANIFEST] = "platform manifest",
    };
    return type < ARRAY_SIZE(names) && names[type] ? names[type] : "unknown";
}

/* ---------------------------------------------------------------------------------------- */
/* JSON (names as in testdata/attestation/EXPECTED.json)                                     */

static void set_hex(json_t* o, const char* key, const void* p, size_t n) {
    _cleanup_free_ char* h = hex_encode_alloc(p, n);
    json_object_set_new(o, key, json_string(h));
}

static void set_int(json_t* o, const char* key, uint64_t v) {
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

static json_t* sgx_body_json(const struct quote_sgx_body* b) {
    json_t* o = json_object();
    set_hex(o, "cpusvn", b->cpu_svn, sizeof(b->cpu_svn));
    set_hex(o, "miscselect", b->misc_select, sizeof(b->misc_select));
    set_hex(o, "isvextprodid", b->isv_ext_prod_id, sizeof(b->isv_ext_prod_id));
    set_hex(o, "attributes", b->attributes, sizeof(b->attributes));
    set_hex(o, "mrenclave", b->mr_enclave, sizeof(b->mr_enclave));
    set_hex(o, "mrsigner", b->mr_signer, sizeof(b->mr_signer));
    set_hex(o, "configid", b->config_id, sizeof(b->config_id));
    set_int(o, "isvprodid", b->isv_prod_id);
    set_int(o, "isvsvn", b->isv_svn);
    set_int(o, "configsvn", b->config_svn);
    set_hex(o, "isvfamilyid", b->isv_family_id, sizeof(b->isv_family_id));
    set_hex(o, "report_data", b->report_data, sizeof(b->report_data));
    return o;
}

static json_t* td_body_json(const struct quote_td_body* b) {
    json_t* o = json_object();
    set_hex(o, "tee_tcb_svn", b->tee_tcb_svn, sizeof(b->tee_tcb_svn));
    set_hex(o, "mr_seam", b->mr_seam, sizeof(b->mr_seam));
    set_hex(o, "mr_signer_seam", b->mr_signer_seam, sizeof(b->mr_signer_seam));
    set_hex(o, "seam_attributes", b->seam_attributes, sizeof(b->seam_attributes));
    set_hex(o, "td_attributes", b->td_attributes, sizeof(b->td_attributes));
    set_hex(o, "xfam", b->xfam, sizeof(b->xfam));
    set_hex(o, "mr_td", b->mr_td, sizeof(b->mr_td));
    set_hex(o, "mr_config_id", b->mr_config_id, sizeof(b->mr_config_id));
    set_hex(o, "mr_owner", b->mr_owner, sizeof(b->mr_owner));
    set_hex(o, "mr_owner_config", b->mr_owner_config, sizeof(b->mr_owner_config));
    for (int i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof(key), "rtmr%d", i);
        set_hex(o, key, b->rtmr[i], sizeof(b->rtmr[i]));
    }
    set_hex(o, "report_data", b->report_data, sizeof(b->report_data));
    if (b->is_v15) {
        set_hex(o, "tee_tcb_svn2", b->tee_tcb_svn2, sizeof(b->tee_tcb_svn2));
        set_hex(o, "mr_servicetd", b->mr_servicetd, sizeof(b->mr_servicetd));
    }
    return o;
}

/* The PEM chain as text when it is printable (trailing NULs dropped), else NULL. */
static json_t* pem_json(const uint8_t* p, size_t n) {
    while (n && p[n - 1] == 0)
        n--;
    for (size_t i = 0; i < n; i++)
        if ((p[i] < 0x20 || p[i] > 0x7e) && p[i] != '\n' && p[i] != '\r' && p[i] != '\t')
            return json_null();
    return json_stringn((const char*)p, n);
}

static void cert_json(json_t* o, const struct quote* q) {
    set_int(o, "cert_data_type", q->cert.type);
    set_int(o, "cert_data_size", q->cert.size);
    set_int(o, "cert_data_offset", q->cert.offset);
    set_int(o, "cert_data_type_inner", q->cert_inner.type);
    set_int(o, "cert_data_size_inner", q->cert_inner.size);
    set_int(o, "cert_data_offset_inner", q->cert_inner.offset);
    if (q->pck_chain)
        json_object_set_new(o, "pck_chain", pem_json(q->pck_chain, q->pck_chain_len));
    else
        set_hex(o, "cert_data_inner", q->cert_inner.data, q->cert_inner.size);
}

json_t* quote_to_json(const struct quote* q) {
    json_t* o = json_object();
    char tee[16];
    snprintf(tee, sizeof(tee), "0x%x", q->tee_type);
    set_int(o, "size", q->size);
    json_object_set_new(o, "oe_header", json_boolean(q->oe_header));
    set_int(o, "version", q->version);
    set_int(o, "att_key_type", q->att_key_type);
    json_object_set_new(o, "tee_type", json_string(tee));
    set_hex(o, "header_bytes_8_11", q->header_8_11, sizeof(q->header_8_11));
    set_int(o, "qe_svn", q->qe_svn);
    set_int(o, "pce_svn", q->pce_svn);
    set_hex(o, "qe_vendor_id", q->qe_vendor_id, sizeof(q->qe_vendor_id));
    set_hex(o, "header_user_data", q->user_data, sizeof(q->user_data));
    set_int(o, "body_type", q->body_type);
    set_int(o, "body_offset", q->body_offset);
    set_int(o, "body_size", q->body_size);
    json_object_set_new(
        o, "body", q->body_type == QUOTE_BODY_SGX ? sgx_body_json(&q->sgx) : td_body_json(&q->td));
    json_object_set_new(o, "is_debug", json_boolean(quote_is_debug(q)));
    set_int(o, "signed_size", q->signed_len);
    set_int(o, "sig_data_len_offset", q->sig_data_len_offset);
    set_int(o, "sig_data_len", q->sig_data_len);
    set_int(o, "trailing_bytes_after_sig_data", q->trailing);
    set_hex(o, "signature", q->signature, sizeof(q->signature));
    set_hex(o, "attestation_key", q->attest_key, sizeof(q->attest_key));
    set_int(o, "qe_report_offset", q->qe_report_offset);
    json_object_set_new(o, "qe_report", sgx_body_json(&q->qe_report));
    set_hex(o, "qe_report_signature", q->qe_report_signature, sizeof(q->qe_report_signature));
    set_int(o, "qe_auth_data_len", q->qe_auth_data_len);
    set_hex(o, "qe_auth_data", q->qe_auth_data, q->qe_auth_data_len);
    cert_json(o, q);
    return o;
}

/* ---------------------------------------------------------------------------------------- */
/* Text                                                                                      */

static void line(struct strbuf* out, const char* name, const char* fmt, ...) PRINTF_FMT(3, 4);
static void line(struct strbuf* out, const char* name, const char* fmt, ...) {
    va_list ap;
    strbuf_printf(out, "%-22s", name);
    va_start(ap, fmt);
    strbuf_vprintf(out, fmt, ap);
    va_end(ap);
    strbuf_putc(out, '\n');
}

static void hex_line(struct strbuf* out, const char* name, const void* p, size_t n) {
    _cleanup_free_ char* h = hex_encode_alloc(p, n);
    line(out, name, "%s", h);
}

static void sgx_body_text(struct strbuf* out, const struct quote_sgx_body* b) {
    hex_line(out, "  mr_enclave:", b->mr_enclave, sizeof(b->mr_enclave));
    hex_line(out, "  mr_signer:", b->mr_signer, sizeof(b->mr_signer));
    line(out, "  isv_prod_id:", "%u", b->isv_prod_id);
    line(out, "  isv_svn:", "%u", b->isv_svn);
    _cleanup_free_ char* attr = hex_encode_alloc(b->attributes, sizeof(b->attributes));
    line(out, "  attributes:", "%s (debug: %s)", attr, b->attr_flags & 2 ? "yes" : "no");
    hex_line(out, "  misc_select:", b->misc_select, sizeof(b->misc_select));
    hex_line(out, "  cpu_svn:", b->cpu_svn, sizeof(b->cpu_svn));
    line(out, "  config_svn:", "%u", b->config_svn);
    hex_line(out, "  isv_ext_prod_id:", b->isv_ext_prod_id, sizeof(b->isv_ext_prod_id));
    hex_line(out, "  isv_family_id:", b->isv_family_id, sizeof(b->isv_family_id));
    hex_line(out, "  config_id:", b->config_id, sizeof(b->config_id));
    hex_line(out, "  report_data:", b->report_data, sizeof(b->report_data));
}

static void td_body_text(struct strbuf* out, const struct quote_td_body* b) {
    hex_line(out, "  mr_td:", b->mr_td, sizeof(b->mr_td));
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "  rtmr%d:", i);
        hex_line(out, name, b->rtmr[i], sizeof(b->rtmr[i]));
    }
    _cleanup_free_ char* attr = hex_encode_alloc(b->td_attributes, sizeof(b->td_attributes));
    line(out, "  td_attributes:", "%s (debug: %s)", attr, b->td_attributes[0] & 1 ? "yes" : "no");
    hex_line(out, "  xfam:", b->xfam, sizeof(b->xfam));
    hex_line(out, "  mr_config_id:", b->mr_config_id, sizeof(b->mr_config_id));
    hex_line(out, "  mr_owner:", b->mr_owner, sizeof(b->mr_owner));
    hex_line(out, "  mr_owner_config:", b->mr_owner_config, sizeof(b->mr_owner_config));
    hex_line(out, "  tee_tcb_svn:", b->tee_tcb_svn, sizeof(b->tee_tcb_svn));
    hex_line(out, "  mr_seam:", b->mr_seam, sizeof(b->mr_seam));
    hex_line(out, "  mr_signer_seam:", b->mr_signer_seam, sizeof(b->mr_signer_seam));
    hex_line(out, "  seam_attributes:", b->seam_attributes, sizeof(b->seam_attributes));
    if (b->is_v15) {
        hex_line(out, "  tee_tcb_svn2:", b->tee_tcb_svn2, sizeof(b->tee_tcb_svn2));
        hex_line(out, "  mr_servicetd:", b->mr_servicetd, sizeof(b->mr_servicetd));
    }
    hex_line(out, "  report_data:", b->report_data, sizeof(b->report_data));
}

static void cert_text(struct strbuf* out, const struct quote* q) {
    line(out, "certification data:", "type %u (%s), %u bytes at offset %zu", q->cert.type,
         quote_cert_type_name(q->cert.type), q->cert.size, q->cert.offset);
    if (q->version != 3)
        line(out, "  inner:", "type %u (%s), %u bytes at offset %zu", q->cert_inner.type,
             quote_cert_type_name(q->cert_inner.type), q->cert_inner.size, q->cert_inner.offset);
}

void quote_format_text(const struct quote* q, struct strbuf* out) {
    line(out, "version:", "%u%s", q->version, q->oe_header ? " (after an openenclave header)" : "");
    line(out, "tee type:", "%s (0x%x)", quote_tee_name(q->tee_type), q->tee_type);
    line(out, "attestation key type:", "ECDSA-256-with-P-256 (%u)", q->att_key_type);
    line(out, "qe svn, pce svn:", "%u, %u", q->qe_svn, q->pce_svn);
    hex_line(out, "qe vendor id:", q->qe_vendor_id, sizeof(q->qe_vendor_id));
    hex_line(out, "user data:", q->user_data, sizeof(q->user_data));
    line(out, "body:", "type %u (%s), %zu bytes at offset %zu", q->body_type,
         quote_body_name(q->body_type), q->body_size, q->body_offset);
    if (q->body_type == QUOTE_BODY_SGX)
        sgx_body_text(out, &q->sgx);
    else
        td_body_text(out, &q->td);
    line(out, "debug:", "%s", quote_is_debug(q) ? "yes" : "no");
    line(out, "signed bytes:", "[0, %zu)", q->signed_len);
    line(out, "signature data:", "%u bytes at offset %zu", q->sig_data_len,
         q->sig_data_len_offset + 4);
    hex_line(out, "quote signature:", q->signature, sizeof(q->signature));
    hex_line(out, "attestation key:", q->attest_key, sizeof(q->attest_key));
    line(out, "qe report:", "%d bytes at offset %zu", QUOTE_SGX_BODY_SIZE, q->qe_report_offset);
    hex_line(out, "  mr_enclave:", q->qe_report.mr_enclave, sizeof(q->qe_report.mr_enclave));
    hex_line(out, "  mr_signer:", q->qe_report.mr_signer, sizeof(q->qe_report.mr_signer));
    line(out, "  isv_prod_id:", "%u", q->qe_report.isv_prod_id);
    line(out, "  isv_svn:", "%u", q->qe_report.isv_svn);
    hex_line(out, "  report_data:", q->qe_report.report_data, sizeof(q->qe_report.report_data));
    hex_line(out, "qe report signature:", q->qe_report_signature, sizeof(q->qe_report_signature));
    line(out, "qe auth data:", "%u bytes", q->qe_auth_data_len);
    cert_text(out, q);
    line(out, "size:", "%zu bytes, %zu after the signature data", q->size, q->trailing);
}
