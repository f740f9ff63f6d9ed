/* SPDX-License-Identifier: Apache-2.0 */
/* DCAP collateral loading and verification (reference/attestation.md §2.2 steps 2-3 and 7,
 * §2.4, §2.5). */
#include <string.h>

#include <jansson.h>

#include "collateral.h"

#define JSON_SCAN_MAX_DEPTH 128

/* jansson >= 2.9 provides json_decrefp */
#define _cleanup_json_ _cleanup_(json_decrefp)

void collateral_free(struct collateral* c) {
    if (!c)
        return;
    cert_chain_free(c->pck_crl_issuer_chain);
    X509_CRL_free(c->root_ca_crl);
    X509_CRL_free(c->pck_crl);
    cert_chain_free(c->tcb_info_issuer_chain);
    free(c->tcb_info);
    cert_chain_free(c->qe_identity_issuer_chain);
    free(c->qe_identity);
    free(c);
}

/* ---------------------------------------------------------------------------------------- */
/* JSON span scanner (§2.5): finds the exact bytes of a top-level member's value               */

static void scan_ws(struct cursor* c) {
    while (c->len && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n')) {
        c->p++;
        c->len--;
    }
}

static int scan_expect(struct cursor* c, char ch) {
    uint8_t b;
    if (cur_u8(c, &b) < 0 || b != (uint8_t)ch)
        return -EBADMSG;
    return 0;
}

/* A string starting at '"': escapes are skipped as pairs (\uXXXX needs 4 hex digits). */
static int scan_string(struct cursor* c) {
    if (scan_expect(c, '"') < 0)
        return -EBADMSG;
    for (;;) {
        uint8_t b;
        if (cur_u8(c, &b) < 0 || b < 0x20)
            return -EBADMSG;
        if (b == '"')
            return 0;
        if (b != '\\')
            continue;
        if (cur_u8(c, &b) < 0)
            return -EBADMSG;
        if (b == 'u') {
            const uint8_t* hex;
            uint8_t tmp[2];
            if (cur_ptr(c, 4, &hex) < 0 || hex_decode((const char*)hex, 4, tmp, 2) != 2)
                return -EBADMSG;
        } else if (!strchr("\"\\/bfnrt", b) || b == 0) {
            return -EBADMSG;
        }
    }
}

/* Skips one value: a container up to its matching bracket (strings honoured), or a scalar up
 * to the next delimiter. Iterative, so nesting costs no stack. */
static int scan_value(struct cursor* c) {
    char stack[JSON_SCAN_MAX_DEPTH];
    size_t depth = 0;
    do {
        if (c->len == 0)
            return -EBADMSG;
        uint8_t b = *c->p;
        if (b == '"') {
            if (scan_string(c) < 0)
                return -EBADMSG;
            continue;
        }
        if (b == '{' || b == '[') {
            if (depth == sizeof(stack))
                return -EBADMSG;
            stack[depth++] = b == '{' ? '}' : ']';
        } else if (b == '}' || b == ']') {
            if (depth == 0 || stack[depth - 1] != (char)b)
                return -EBADMSG;
            depth--;
        } else if (depth == 0) { /* a scalar: letters, digits, sign, dot, exponent */
            size_t n = 0;
            while (n < c->len && strchr("+-.0123456789eEaflnrstu", c->p[n]) && c->p[n])
                n++;
            return n ? cur_skip(c, n) : -EBADMSG;
        }
        if (cur_skip(c, 1) < 0)
            return -EBADMSG;
    } while (depth > 0);
    return 0;
}

static bool key_equal(const uint8_t* raw, size_t raw_len, const char* key) {
    return raw_len == strlen(key) && memcmp(raw, key, raw_len) == 0;
}

int json_member_span(const char* text, size_t len, const char* key, size_t* ret_off,
                     size_t* ret_len) {
    struct cursor c = cursor_init(text, len);
    bool found      = false;
    size_t off = 0, vlen = 0;
    scan_ws(&c);
    if (scan_expect(&c, '{') < 0)
        return -EBADMSG;
    scan_ws(&c);
    if (c.len && *c.p == '}')
        return -ENOENT;
    for (;;) {
        scan_ws(&c);
        const uint8_t* kstart = c.p + 1;
        if (scan_string(&c) < 0)
            return -EBADMSG;
        size_t klen = (size_t)(c.p - kstart) - 1;
        scan_ws(&c);
        if (scan_expect(&c, ':') < 0)
            return -EBADMSG;
        scan_ws(&c);
        const uint8_t* vstart = c.p;
        if (scan_value(&c) < 0)
            return -EBADMSG;
        if (key_equal(kstart, klen, key)) {
            if (found) /* jansson would see a duplicate too; never pick one silently */
                return -EBADMSG;
            found = true;
            off   = (size_t)(vstart - (const uint8_t*)text);
            vlen  = (size_t)(c.p - vstart);
        }
        scan_ws(&c);
        uint8_t b;
        if (cur_u8(&c, &b) < 0 || (b != ',' && b != '}'))
            return -EBADMSG;
        if (b == '}')
            break;
    }
    scan_ws(&c);
    if (c.len != 0)
        return -EBADMSG;
    if (!found)
        return -ENOENT;
    *ret_off = off;
    *ret_len = vlen;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Loaders                                                                                    */

static int decode_sig(const char* hex, size_t len, uint8_t out[64], struct moat_error* err) {
    if (len != 128 || hex_decode(hex, len, out, 64) != 64)
        return moat_error_set(err, -EBADMSG, "the signature must be 128 hex digits (r||s)");
    return 0;
}

int pcs_signed_json_split(const char* text, size_t len, const char* member, char** ret_json,
                          size_t* ret_json_len, uint8_t ret_sig[64], struct moat_error* err) {
    if (memchr(text, '\0', len)) /* jansson may stop at a NUL; the scanner would not */
        return moat_error_set(err, -EBADMSG, "NUL byte in the JSON text");
    json_error_t jerr;
    _cleanup_json_ json_t* root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return moat_error_set(err, -EBADMSG, "invalid JSON at line %d: %s", jerr.line, jerr.text);
    json_t* sig = json_object_get(root, "signature");
    if (!json_is_object(json_object_get(root, member)) || !json_is_string(sig))
        return moat_error_set(err, -EBADMSG, "expected {\"%s\": {...}, \"signature\": \"...\"}",
                              member);
    uint8_t s[64];
    int r = decode_sig(json_string_value(sig), json_string_length(sig), s, err);
    if (r < 0)
        return r;
    size_t off, n = 0;
    r = json_member_span(text, len, member, &off, &n);
    if (r < 0)
        return moat_error_set(err, -EBADMSG, "cannot locate the bytes of '%s'", member);
    char* copy = xmalloc(n + 1);
    memcpy(copy, text + off, n);
    copy[n]       = '\0';
    *ret_json     = copy;
    *ret_json_len = n;
    memcpy(ret_sig, s, 64);
    return 0;
}

static int qvl_string(json_t* root, const char* key, const char** ret, size_t* ret_len,
                      struct moat_error* err) {
    json_t* v = json_object_get(root, key);
    if (!json_is_string(v))
        return moat_error_set(err, -EBADMSG, "collateral: '%s' must be a string", key);
    *ret     = json_string_value(v);
    *ret_len = json_string_length(v);
    return 0;
}

static int qvl_chain(json_t* root, const char* key, struct cert_chain** ret,
                     struct moat_error* err) {
    const char* s = NULL;
    size_t n      = 0;
    if (qvl_string(root, key, &s, &n, err) < 0)
        return -EBADMSG;
    int r = cert_chain_parse_pem(s, n, ret, err);
    return r < 0 ? moat_error_prefix(err, "collateral: '%s'", key) : 0;
}

/* CRLs in dcap-qvl JSON are hex DER. */
static int qvl_crl(json_t* root, const char* key, X509_CRL** ret, struct moat_error* err) {
    const char* s = NULL;
    size_t n      = 0;
    if (qvl_string(root, key, &s, &n, err) < 0)
        return -EBADMSG;
    _cleanup_free_ uint8_t* der = xmalloc(n / 2 + 1);
    if (n % 2 != 0 || hex_decode(s, n, der, n / 2) < 0)
        return moat_error_set(err, -EBADMSG, "collateral: '%s' must be hex DER", key);
    int r = x509_crl_parse(der, n / 2, ret, err);
    return r < 0 ? moat_error_prefix(err, "collateral: '%s'", key) : 0;
}

static int qvl_signed(json_t* root, const char* key, const char* sig_key, char** ret,
                      size_t* ret_len, uint8_t sig[64], struct moat_error* err) {
    const char *s = NULL, *h = NULL;
    size_t n = 0, hn = 0;
    if (qvl_string(root, key, &s, &n, err) < 0 || qvl_string(root, sig_key, &h, &hn, err) < 0)
        return -EBADMSG;
    if (decode_sig(h, hn, sig, err) < 0)
        return moat_error_prefix(err, "collateral: '%s'", sig_key);
    *ret     = xstrndup(s, n);
    *ret_len = n;
    return 0;
}

int collateral_parse_qvl_json(const char* text, size_t len, struct collateral** ret,
                              struct moat_error* err) {
    if (memchr(text, '\0', len))
        return moat_error_set(err, -EBADMSG, "collateral: NUL byte in the JSON text");
    json_error_t jerr;
    _cleanup_json_ json_t* root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root))
        return moat_error_set(err, -EBADMSG, "collateral: invalid JSON at line %d: %s",
                              root ? 1 : jerr.line, root ? "not an object" : jerr.text);
    _cleanup_collateral_ struct collateral* c = xcalloc(1, sizeof(*c));
    int r = qvl_chain(root, "pck_crl_issuer_chain", &c->pck_crl_issuer_chain, err);
    r     = r ?: qvl_crl(root, "root_ca_crl", &c->root_ca_crl, err);
    r     = r ?: qvl_crl(root, "pck_crl", &c->pck_crl, err);
    r     = r ?: qvl_chain(root, "tcb_info_issuer_chain", &c->tcb_info_issuer_chain, err);
    r     = r
                ?: qvl_signed(root, "tcb_info", "tcb_info_signature", &c->tcb_info, &c->tcb_info_len,
                              c->tcb_info_signature, err);
    r     = r ?: qvl_chain(root, "qe_identity_issuer_chain", &c->qe_identity_issuer_chain, err);
    r     = r
                ?: qvl_signed(root, "qe_identity", "qe_identity_signature", &c->qe_identity,
                              &c->qe_identity_len, c->qe_identity_signature, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(c);
    return 0;
}

int collateral_load_qvl_json(const char* path, struct collateral** ret, struct moat_error* err) {
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    int r                    = read_file(path, &buf, &len, err);
    if (r < 0)
        return r;
    r = collateral_parse_qvl_json(buf, len, ret, err);
    return r < 0 ? moat_error_prefix(err, "'%s'", path) : 0;
}

static int load_chain_file(const char* path, struct cert_chain** ret, struct moat_error* err) {
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    int r                    = read_file(path, &buf, &len, err);
    r                        = r ?: cert_chain_parse_pem(buf, len, ret, err);
    return r < 0 ? moat_error_prefix(err, "'%s'", path) : 0;
}

static int load_crl_file(const char* path, X509_CRL** ret, struct moat_error* err) {
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    int r                    = read_file(path, &buf, &len, err);
    r                        = r ?: x509_crl_parse(buf, len, ret, err);
    return r < 0 ? moat_error_prefix(err, "'%s'", path) : 0;
}

static int load_signed_file(const char* path, const char* member, char** ret, size_t* ret_len,
                            uint8_t sig[64], struct moat_error* err) {
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    int r                    = read_file(path, &buf, &len, err);
    r                        = r ?: pcs_signed_json_split(buf, len, member, ret, ret_len, sig, err);
    return r < 0 ? moat_error_prefix(err, "'%s'", path) : 0;
}

int collateral_load_pcs_files(const struct collateral_pcs_files* f, struct collateral** ret,
                              struct moat_error* err) {
    if (!f->tcb_info || !f->tcb_info_issuer_chain || !f->qe_identity ||
        !f->qe_identity_issuer_chain || !f->root_ca_crl || !f->pck_crl)
        return moat_error_set(err, -ENOENT, "collateral: a PCS file is missing");
    _cleanup_collateral_ struct collateral* c = xcalloc(1, sizeof(*c));
    int r = load_signed_file(f->tcb_info, "tcbInfo", &c->tcb_info, &c->tcb_info_len,
                             c->tcb_info_signature, err);
    r     = r ?: load_chain_file(f->tcb_info_issuer_chain, &c->tcb_info_issuer_chain, err);
    r     = r
                ?: load_signed_file(f->qe_identity, "enclaveIdentity", &c->qe_identity,
                                    &c->qe_identity_len, c->qe_identity_signature, err);
    r     = r ?: load_chain_file(f->qe_identity_issuer_chain, &c->qe_identity_issuer_chain, err);
    r     = r ?: load_crl_file(f->root_ca_crl, &c->root_ca_crl, err);
    r     = r ?: load_crl_file(f->pck_crl, &c->pck_crl, err);
    if (r == 0 && f->pck_crl_issuer_chain)
        r = load_chain_file(f->pck_crl_issuer_chain, &c->pck_crl_issuer_chain, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(c);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Verification                                                                               */

void collateral_verified_clear(struct collateral_verified* v) {
    tcb_info_free(v->tcb_info);
    qe_identity_free(v->qe_identity);
    *v = (struct collateral_verified){0};
}

static void min_time(time_t* earliest, time_t t) {
    if (t && (*earliest == 0 || t < *earliest))
        *earliest = t;
}

static int check_dates(const char* what, time_t issue, time_t next, time_t at,
                       struct moat_error* err) {
    if (at < issue)
        return moat_error_set(err, -EKEYEXPIRED, "%s is not yet valid (issueDate is later)", what);
    if (at > next)
        return moat_error_set(err, -EKEYEXPIRED, "%s has expired (past its nextUpdate)", what);
    return 0;
}

/* A signed JSON piece: its chain to the anchor (with the root CRL), the signature over the
 * exact bytes, then the caller parses. */
static int verify_signed(const char* what, const struct cert_chain* chain, const char* json,
                         size_t len, const uint8_t sig[64], X509_CRL* root_crl,
                         const struct chain_verify_opts* opts, struct collateral_verified* out,
                         struct moat_error* err) {
    struct chain_verify_result res;
    if (!chain || !json)
        return moat_error_set(err, -ENOENT, "%s: missing from the collateral", what);
    int r = tcb_signing_chain_verify(chain, root_crl, opts, &res, err);
    if (r < 0)
        return moat_error_prefix(err, "%s", what);
    out->stale_crl |= res.stale_crl;
    min_time(&out->earliest_expiry, res.earliest_expiry);
    r = ecdsa_p256_verify_raw(chain->certs[0], json, len, sig, err);
    return r < 0 ? moat_error_prefix(err, "%s signature", what) : 0;
}

static int verify_pck_crl(const struct collateral* c, const struct chain_verify_opts* opts,
                          struct collateral_verified* out, struct moat_error* err) {
    struct chain_verify_result res;
    bool stale = false;
    int r      = pck_ca_chain_verify(c->pck_crl_issuer_chain, c->root_ca_crl, opts, &res, err);
    r          = r ?: crl_verify(c->pck_crl, c->pck_crl_issuer_chain->certs[0], opts, &stale, err);
    if (r < 0)
        return moat_error_prefix(err, "PCK CRL");
    out->stale_crl |= res.stale_crl || stale;
    min_time(&out->earliest_expiry, res.earliest_expiry);
    return 0;
}

static int verify_root_crl(const struct collateral* c, const struct chain_verify_opts* opts,
                           struct collateral_verified* out, struct moat_error* err) {
    if (!c->root_ca_crl || !c->pck_crl)
        return moat_error_set(err, -ENOENT, "collateral: the root CA CRL or PCK CRL is missing");
    _cleanup_x509_ X509* anchor = NULL;
    bool stale                  = false;
    int r                       = opts->anchor ? (X509_up_ref(opts->anchor) ? 0 : -ENOMEM) : 0;
    if (r == 0 && opts->anchor)
        anchor = opts->anchor;
    else if (r == 0)
        r = pck_intel_root_ca(&anchor, err);
    r = r ?: crl_verify(c->root_ca_crl, anchor, opts, &stale, err);
    if (r < 0)
        return moat_error_prefix(err, "root CA CRL");
    out->stale_crl |= stale;
    time_t t = 0;
    if (asn1_time_to_time_t(X509_CRL_get0_nextUpdate(c->root_ca_crl), &t) == 0)
        min_time(&out->earliest_expiry, t);
    if (asn1_time_to_time_t(X509_CRL_get0_nextUpdate(c->pck_crl), &t) == 0)
        min_time(&out->earliest_expiry, t);
    return 0;
}

int collateral_verify(const struct collateral* c, const struct chain_verify_opts* opts,
                      struct collateral_verified* ret, struct moat_error* err) {
    struct collateral_verified v = {0};
    int r                        = verify_root_crl(c, opts, &v, err);
    if (r == 0 && c->pck_crl_issuer_chain)
        r = verify_pck_crl(c, opts, &v, err);
    r = r
            ?: verify_signed("TCB info", c->tcb_info_issuer_chain, c->tcb_info, c->tcb_info_len,
                             c->tcb_info_signature, c->root_ca_crl, opts, &v, err);
    r = r ?: tcb_info_parse(c->tcb_info, c->tcb_info_len, &v.tcb_info, err);
    r = r
            ?: check_dates("TCB info", v.tcb_info->issue_date, v.tcb_info->next_update, opts->at,
                           err);
    r = r
            ?: verify_signed("QE identity", c->qe_identity_issuer_chain, c->qe_identity,
                             c->qe_identity_len, c->qe_identity_signature, c->root_ca_crl, opts, &v,
                             err);
    r = r ?: qe_identity_parse(c->qe_identity, c->qe_identity_len, &v.qe_identity, err);
    r = r
            ?: check_dates("QE identity", v.qe_identity->issue_date, v.qe_identity->next_update,
                           opts->at, err);
    if (r < 0) {
        collateral_verified_clear(&v);
        return r;
    }
    min_time(&v.earliest_expiry, v.tcb_info->next_update);
    min_time(&v.earliest_expiry, v.qe_identity->next_update);
    *ret = v;
    return 0;
}

int collateral_verify_pck(const struct collateral* c, const struct cert_chain* pck_chain,
                          const struct chain_verify_opts* opts, struct chain_verify_result* ret,
                          struct moat_error* err) {
    if (!c->root_ca_crl || !c->pck_crl)
        return moat_error_set(err, -ENOENT, "collateral: the root CA CRL or PCK CRL is missing");
    return pck_chain_verify(pck_chain, c->root_ca_crl, c->pck_crl, opts, ret, err);
}
