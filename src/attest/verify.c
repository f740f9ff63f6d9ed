/* SPDX-License-Identifier: Apache-2.0 */
/* The DCAP quote verifier: reference/attestation.md §2.2 steps 0-12 in Intel QVL's order
 * (QuoteVerifier.cpp 4.1.2.4.x), over quote.c, pck.c, collateral.c and tcb.c. */
#include <stdarg.h>
#include <string.h>

#include <openssl/crypto.h>

#include "verify.h"

static const char* const g_check_names[ATTEST_CHECK_COUNT] = {
    [ATTEST_CHECK_PARSE]               = "parse",
    [ATTEST_CHECK_PCK_CHAIN]           = "pck_chain",
    [ATTEST_CHECK_COLLATERAL]          = "collateral",
    [ATTEST_CHECK_TDX_MODULE]          = "tdx_module",
    [ATTEST_CHECK_QE_REPORT_SIGNATURE] = "qe_report_signature",
    [ATTEST_CHECK_QE_REPORT_DATA]      = "qe_report_data",
    [ATTEST_CHECK_QE_IDENTITY]         = "qe_identity",
    [ATTEST_CHECK_QUOTE_SIGNATURE]     = "quote_signature",
    [ATTEST_CHECK_TCB_LEVEL]           = "tcb_level",
    [ATTEST_CHECK_DEBUG]               = "debug",
};

const char* attest_check_name(enum attest_check_id id) {
    return (unsigned)id < ATTEST_CHECK_COUNT ? g_check_names[id] : "unknown";
}

const char* attest_check_result_name(enum attest_check_result r) {
    switch (r) {
        case ATTEST_PASS:
            return "pass";
        case ATTEST_FAIL:
            return "fail";
        default:
            return "skipped";
    }
}

/* Intel's QE vendor id (§2.2 step 0; QVL Quote::validate). */
static const uint8_t g_intel_qe_vendor[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                              0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

#define STATUS_UNVERIFIED "TcbUnverified"

/* ---------------------------------------------------------------------------------------- */
/* Error messages to QVL status names: first rule whose errno (0: any) and substring (NULL:   */
/* any) match. The messages come from pck.c, collateral.c and tcb.c.                          */

struct status_rule {
    int code;
    const char* needle;
    const char* status;
};

static const struct status_rule g_pck_rules[] = {
    {-EBADMSG, NULL, "STATUS_UNSUPPORTED_CERT_FORMAT"},
    {-EKEYREVOKED, "depth 0", "STATUS_PCK_REVOKED"},
    {-EKEYREVOKED, NULL, "STATUS_SGX_INTERMEDIATE_CA_REVOKED"},
    {-EKEYEXPIRED, "CRL", "STATUS_SGX_CRL_EXPIRED"},
    {-EKEYEXPIRED, NULL, "STATUS_SGX_PCK_CERT_CHAIN_EXPIRED"},
    {-EKEYREJECTED, "trust anchor", "STATUS_SGX_ROOT_CA_UNTRUSTED"},
    {0, NULL, "STATUS_SGX_PCK_CERT_CHAIN_UNTRUSTED"},
};

static const struct status_rule g_collateral_rules[] = {
    {-ENOENT, NULL, "STATUS_MISSING_PARAMETERS"},
    {-EKEYREJECTED, "TCB info signature", "STATUS_TCB_INFO_INVALID_SIGNATURE"},
    {-EKEYREJECTED, "QE identity signature", "STATUS_SGX_ENCLAVE_IDENTITY_INVALID_SIGNATURE"},
    {-EKEYREJECTED, "signing chain", "STATUS_SGX_TCB_SIGNING_CERT_CHAIN_UNTRUSTED"},
    {-EKEYREJECTED, "CRL", "STATUS_SGX_CRL_INVALID_SIGNATURE"},
    {-EKEYEXPIRED, "CRL", "STATUS_SGX_CRL_EXPIRED"},
    {-EKEYEXPIRED, "signing chain", "STATUS_SGX_SIGNING_CERT_CHAIN_EXPIRED"},
    {-EKEYEXPIRED, "TCB info", "STATUS_SGX_TCB_INFO_EXPIRED"},
    {-EKEYEXPIRED, "QE identity", "STATUS_SGX_ENCLAVE_IDENTITY_EXPIRED"},
    {-EBADMSG, "TCB info", "STATUS_SGX_TCB_INFO_INVALID"},
    {-EBADMSG, "QE identity", "STATUS_SGX_ENCLAVE_IDENTITY_INVALID"},
    {-EBADMSG, "CRL", "STATUS_SGX_CRL_INVALID"},
    {0, NULL, "STATUS_SGX_TCB_SIGNING_CERT_CHAIN_UNTRUSTED"},
};

/* tcb.c names QVL's status in parentheses. */
static const struct status_rule g_tcb_rules[] = {
    {0, "(TCB_INFO_MISMATCH)", "STATUS_TCB_INFO_MISMATCH"},
    {0, "(TDX_MODULE_MISMATCH)", "STATUS_TDX_MODULE_MISMATCH"},
    {0, "(QE_IDENTITY_MISMATCH)", "STATUS_QE_IDENTITY_MISMATCH"},
    {0, "MISCSELECT_MISMATCH", "STATUS_SGX_ENCLAVE_REPORT_MISCSELECT_MISMATCH"},
    {0, "ATTRIBUTES_MISMATCH", "STATUS_SGX_ENCLAVE_REPORT_ATTRIBUTES_MISMATCH"},
    {0, "MRSIGNER_MISMATCH", "STATUS_SGX_ENCLAVE_REPORT_MRSIGNER_MISMATCH"},
    {0, "ISVPRODID_MISMATCH", "STATUS_SGX_ENCLAVE_REPORT_ISVPRODID_MISMATCH"},
    {0, NULL, "STATUS_TCB_INFO_MISMATCH"},
};

static const char* status_for(const struct status_rule* rules, size_t n, int code,
                              const char* msg) {
    for (size_t i = 0; i < n; i++)
        if ((rules[i].code == 0 || rules[i].code == code) &&
            (!rules[i].needle || strstr(msg, rules[i].needle)))
            return rules[i].status;
    return rules[n - 1].status;
}

/* ---------------------------------------------------------------------------------------- */
/* Check bookkeeping                                                                          */

static void check_set(struct attest_verify_result* res, enum attest_check_id id,
                      enum attest_check_result result, const char* status, const char* fmt,
                      va_list ap) PRINTF_FMT(5, 0);
static void check_set(struct attest_verify_result* res, enum attest_check_id id,
                      enum attest_check_result result, const char* status, const char* fmt,
                      va_list ap) {
    struct attest_check* c = &res->checks[id];
    c->result              = result;
    c->status              = status;
    vsnprintf(c->detail, sizeof(c->detail), fmt, ap);
}

static void PRINTF_FMT(3, 4)
    pass(struct attest_verify_result* res, enum attest_check_id id, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    check_set(res, id, ATTEST_PASS, NULL, fmt, ap);
    va_end(ap);
}

static void PRINTF_FMT(4, 5) fail(struct attest_verify_result* res, enum attest_check_id id,
                                  const char* status, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    check_set(res, id, ATTEST_FAIL, status, fmt, ap);
    va_end(ap);
}

static void PRINTF_FMT(3, 4)
    skip(struct attest_verify_result* res, enum attest_check_id id, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    check_set(res, id, ATTEST_SKIPPED, NULL, fmt, ap);
    va_end(ap);
}

static void format_time(time_t t, char* buf, size_t size) {
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "@%lld", (long long)t);
}

static void cert_cn(X509* cert, char* buf, size_t size) {
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int)size) < 0)
        snprintf(buf, size, "?");
}

static void min_time(time_t* earliest, time_t t) {
    if (t && (*earliest == 0 || t < *earliest))
        *earliest = t;
}

/* ---------------------------------------------------------------------------------------- */
/* The verification state                                                                     */

struct vstate {
    const struct attest_verify_opts* opts;
    struct attest_verify_cache* cache; /* opts->cache when its kept results may be used */
    const struct collateral* c;
    struct attest_verify_result* res;
    struct quote q;
    bool is_tdx;
    struct chain_verify_opts copts;
    struct cert_chain* own_chain; /* parsed from the quote */
    const struct cert_chain* chain;
    bool chain_trusted;
    bool ext_ok;
    struct pck_ext ext;
    bool coll_ok; /* collateral verified and it applies to this platform */
    struct collateral_verified own_cv;
    const struct collateral_verified* cv;                  /* own_cv or the cache's */
    char module_err[sizeof(((struct moat_error*)0)->msg)]; /* "" = module identity matches */
    bool qe_ok;
    enum tcb_status qe_status;
    const struct isv_level* qe_level;
};

static void vstate_clear(struct vstate* v) {
    cert_chain_free(v->own_chain);
    collateral_verified_clear(&v->own_cv);
}

/* §2.2 step 0 beyond the parser: Intel's QE vendor id. Returns the parser's error. */
static int check_parse(struct vstate* v, const uint8_t* buf, size_t len, struct moat_error* err) {
    struct attest_verify_result* res = v->res;
    int r                            = quote_parse_input(buf, len, &v->q, err);
    if (r < 0) {
        fail(res, ATTEST_CHECK_PARSE, "STATUS_UNSUPPORTED_QUOTE_FORMAT", "%s", err->msg);
        return r;
    }
    const struct quote* q = &v->q;
    v->is_tdx             = q->tee_type == QUOTE_TEE_TDX;
    res->parsed           = true;
    res->version          = q->version;
    res->tee_type         = q->tee_type;
    res->body_type        = q->body_type;
    res->sgx              = q->sgx;
    res->td               = q->td;
    res->debug            = quote_is_debug(q);
    res->simulated =
        memcmp(q->user_data, ATTEST_SIMULATED_MARK, strlen(ATTEST_SIMULATED_MARK)) == 0;
    if (memcmp(q->qe_vendor_id, g_intel_qe_vendor, 16) != 0) {
        _cleanup_free_ char* hex = hex_encode_alloc(q->qe_vendor_id, 16);
        fail(res, ATTEST_CHECK_PARSE, "STATUS_UNSUPPORTED_QUOTE_FORMAT",
             "QE vendor id %s is not Intel's (939a7233f79c4ca9940a0db3957f0607)", hex);
        return 0;
    }
    pass(res, ATTEST_CHECK_PARSE, "DCAP quote v%u, %s, %zu bytes%s%s", q->version,
         quote_body_name(q->body_type), q->size,
         q->oe_header ? " (after an OpenEnclave header)" : "",
         q->trailing ? " and trailing bytes" : "");
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The cache (verify.h)                                                                       */

/* Every kept result depends on the same inputs besides the time: the collateral, the trust
 * anchor and the stale-CRL mode. They are identified by CONTENT, never by address (an object
 * freed and another allocated at its address, or changed in place, is other input): the cache
 * keeps the exact bytes of the inputs its results were computed from (`inputs`, see
 * cache_inputs) and a verification whose inputs differ in any byte drops every kept result
 * before it starts. One set of inputs at a time, as QVL's callers keep one collateral. */
struct cached {
    bool valid;
    time_t from, until; /* the result holds for times in [from, until] */
};

struct attest_verify_cache {
    struct strbuf inputs;  /* what the kept results were computed from */
    struct strbuf scratch; /* this verification's inputs, before they are compared */
    struct cached coll;
    struct collateral_verified cv;
    struct cached chain;
    uint8_t chain_hash[32];
    struct cert_chain* pck_chain;
    struct pck_ext ext;
    struct chain_verify_result cr;
    struct cached qe; /* a QE report signature that verified under chain_hash's leaf */
    uint8_t qe_hash[32];
    struct attest_verify_cache_stats stats;
};

struct attest_verify_cache* attest_verify_cache_new(void) {
    return xcalloc(1, sizeof(struct attest_verify_cache));
}

void attest_verify_cache_free(struct attest_verify_cache* cache) {
    if (!cache)
        return;
    collateral_verified_clear(&cache->cv);
    cert_chain_free(cache->pck_chain);
    strbuf_free(&cache->inputs);
    strbuf_free(&cache->scratch);
    free(cache);
}

void attest_verify_cache_get_stats(const struct attest_verify_cache* cache,
                                   struct attest_verify_cache_stats* ret) {
    *ret = cache ? cache->stats : (struct attest_verify_cache_stats){0};
}

/* Length-prefixed (u64, host order) fields, so that no two different inputs serialize alike;
 * an absent optional field is the length UINT64_MAX. */
static void put_field(struct strbuf* sb, const void* p, size_t n) {
    uint64_t len = p ? (uint64_t)n : UINT64_MAX;
    strbuf_append(sb, (const char*)&len, sizeof(len));
    if (p && n)
        strbuf_append(sb, p, n);
}

/* The DER of a certificate or CRL (`i2d`: i2d_X509 or i2d_X509_CRL), as a field: encoded
 * once, into a buffer OpenSSL allocates (asking for the length first encodes twice). */
static int put_der(struct strbuf* sb, const void* obj, int (*i2d)(const void*, unsigned char**)) {
    if (!obj) {
        put_field(sb, NULL, 0);
        return 0;
    }
    unsigned char* der = NULL;
    int n              = i2d(obj, &der);
    if (n <= 0)
        return -EBADMSG;
    put_field(sb, der, (size_t)n);
    OPENSSL_free(der);
    return 0;
}

static int i2d_cert(const void* x, unsigned char** out) {
    return i2d_X509((X509*)x, out);
}

static int i2d_crl(const void* x, unsigned char** out) {
    return i2d_X509_CRL((X509_CRL*)x, out);
}

static int put_chain(struct strbuf* sb, const struct cert_chain* chain) {
    put_field(sb, chain ? "" : NULL, 0);
    for (size_t i = 0; chain && i < chain->n; i++)
        if (put_der(sb, chain->certs[i], i2d_cert) < 0)
            return -EBADMSG;
    if (chain)
        put_field(sb, NULL, 0); /* the end of the chain */
    return 0;
}

/* The inputs of every kept result, as bytes: the trust anchor's DER (absent: the Intel SGX Root
 * CA), the stale-CRL mode, and every byte of the collateral a verification reads (its chains'
 * and CRLs' DER, the TCB info and QE identity exactly as signed, their signatures). */
static int cache_inputs(struct strbuf* sb, const struct vstate* v) {
    const struct collateral* c = v->c;
    uint8_t stale              = v->opts->allow_stale_crl;
    put_field(sb, "moat verify cache 1", 19);
    if (put_der(sb, v->opts->anchor, i2d_cert) < 0)
        return -EBADMSG;
    put_field(sb, &stale, 1);
    put_field(sb, c ? "" : NULL, 0);
    if (!c)
        return 0;
    if (put_chain(sb, c->pck_crl_issuer_chain) < 0 || put_der(sb, c->root_ca_crl, i2d_crl) < 0 ||
        put_der(sb, c->pck_crl, i2d_crl) < 0 || put_chain(sb, c->tcb_info_issuer_chain) < 0 ||
        put_chain(sb, c->qe_identity_issuer_chain) < 0)
        return -EBADMSG;
    put_field(sb, c->tcb_info, c->tcb_info_len);
    put_field(sb, c->tcb_info_signature, sizeof(c->tcb_info_signature));
    put_field(sb, c->qe_identity, c->qe_identity_len);
    put_field(sb, c->qe_identity_signature, sizeof(c->qe_identity_signature));
    return 0;
}

static void cache_drop(struct attest_verify_cache* k) {
    k->coll.valid = k->chain.valid = k->qe.valid = false;
    k->inputs.len                                = 0;
}

/* Before the checks: the kept results may be used (v->cache set) only when this verification's
 * inputs are byte for byte those they were computed from; otherwise they are dropped and the
 * new inputs are the ones later results are kept for. Inputs that cannot be serialized: no
 * cache this time. */
static void cache_begin(struct vstate* v) {
    struct attest_verify_cache* k = v->opts->cache;
    if (!k)
        return;
    k->scratch.len = 0;
    if (cache_inputs(&k->scratch, v) < 0) {
        cache_drop(k);
        return;
    }
    if (k->inputs.len != k->scratch.len || memcmp(k->inputs.buf, k->scratch.buf, k->inputs.len)) {
        cache_drop(k);
        struct strbuf t = k->inputs;
        k->inputs       = k->scratch;
        k->scratch      = t;
    }
    v->cache = k;
}

static bool cached_holds(const struct cached* k, const struct vstate* v) {
    return k->valid && k->from <= v->opts->at && v->opts->at <= k->until;
}

static void cached_set(struct cached* k, const struct vstate* v, time_t until) {
    *k = (struct cached){.valid = true, .from = v->opts->at, .until = until};
}

/* collateral_verify, or the cache's result when it holds. */
static int cache_collateral(struct vstate* v, struct moat_error* err) {
    struct attest_verify_cache* k = v->cache;
    if (k && cached_holds(&k->coll, v)) {
        k->stats.collateral_hits++;
        v->cv = &k->cv;
        return 0;
    }
    if (k)
        k->stats.collateral_misses++;
    int r = collateral_verify(v->c, &v->copts, &v->own_cv, err);
    if (r < 0 || !k) {
        v->cv = &v->own_cv;
        return r;
    }
    collateral_verified_clear(&k->cv);
    k->cv     = v->own_cv; /* moved */
    v->own_cv = (struct collateral_verified){0};
    v->cv     = &k->cv;
    cached_set(&k->coll, v, k->cv.earliest_expiry);
    return 0;
}

static void sha256_of(const void* a, size_t alen, const void* b, size_t blen, uint8_t out[32]) {
    struct sha256_ctx ctx = {0};
    if (sha256_init(&ctx) < 0 || sha256_update(&ctx, a, alen) < 0 ||
        sha256_update(&ctx, b, blen) < 0 || sha256_final(&ctx, out) < 0)
        memset(out, 0, 32); /* never matches a kept hash: a new check */
    sha256_ctx_free(&ctx);
}

/* The quote's PCK chain verified before (same PEM bytes, same collateral): its result. */
static bool cache_chain_hit(struct vstate* v) {
    struct attest_verify_cache* k = v->cache;
    if (!k || v->opts->pck_chain || !v->q.pck_chain)
        return false;
    uint8_t h[32];
    if (cached_holds(&k->chain, v))
        sha256_of(v->q.pck_chain, v->q.pck_chain_len, NULL, 0, h);
    if (!cached_holds(&k->chain, v) || memcmp(h, k->chain_hash, 32) != 0) {
        k->stats.chain_misses++;
        return false;
    }
    k->stats.chain_hits++;
    v->chain         = k->pck_chain;
    v->ext           = k->ext;
    v->ext_ok        = true;
    v->chain_trusted = true;
    return true;
}

static void cache_chain_keep(struct vstate* v, const struct chain_verify_result* cr) {
    struct attest_verify_cache* k = v->cache;
    if (!k || !v->own_chain)
        return;
    sha256_of(v->q.pck_chain, v->q.pck_chain_len, NULL, 0, k->chain_hash);
    cert_chain_free(k->pck_chain);
    k->pck_chain = v->own_chain; /* moved */
    v->own_chain = NULL;
    v->chain     = k->pck_chain;
    k->ext       = v->ext;
    k->cr        = *cr;
    k->qe.valid  = false; /* signatures under another leaf */
    cached_set(&k->chain, v, cr->earliest_expiry);
}

/* The PCK chain: out of band, or the quote's type-5 PEM. */
static int find_chain(struct vstate* v, struct moat_error* err) {
    if (v->opts->pck_chain) {
        v->chain = v->opts->pck_chain;
        return 0;
    }
    if (!v->q.pck_chain)
        return moat_error_set(err, -EBADMSG,
                              "the quote's certification data (type %u, %s) carries no PCK "
                              "chain; give the chain out of band",
                              v->q.cert_inner.type, quote_cert_type_name(v->q.cert_inner.type));
    int r = cert_chain_parse_pem(v->q.pck_chain, v->q.pck_chain_len, &v->own_chain, err);
    if (r < 0)
        return moat_error_prefix(err, "PCK certificate chain in the quote");
    v->chain = v->own_chain;
    return 0;
}

/* Verifies the chain (v->chain, found) and reads its SGX extension; -errno with the QVL
 * status in *ret_status. */
static int verify_chain(struct vstate* v, struct chain_verify_result* cr, const char** ret_status,
                        struct moat_error* err) {
    int r = v->c ? collateral_verify_pck(v->c, v->chain, &v->copts, cr, err)
                 : pck_chain_verify(v->chain, NULL, NULL, &v->copts, cr, err);
    if (pck_ext_parse(v->chain->certs[0], &v->ext, err) == 0)
        v->ext_ok = true;
    else if (r == 0)
        r = -EBADMSG;
    if (r < 0)
        *ret_status = v->ext_ok || r != -EBADMSG
                          ? status_for(g_pck_rules, ARRAY_SIZE(g_pck_rules), r, err->msg)
                          : "STATUS_SGX_PCK_INVALID_EXTENSIONS";
    return r;
}

/* §2.2 steps 1-2 (QVL 4.1.2.4.2-7), and the PCK certificate's SGX extension (§2.3). */
static void check_pck_chain(struct vstate* v) {
    struct attest_verify_result* res = v->res;
    struct moat_error err            = {0};
    struct chain_verify_result cr    = {0};
    const char* status               = "STATUS_UNSUPPORTED_CERT_FORMAT";
    if (cache_chain_hit(v)) {
        cr = v->cache->cr;
    } else {
        int r = find_chain(v, &err);
        if (r == 0)
            r = verify_chain(v, &cr, &status, &err);
        if (r < 0) {
            fail(res, ATTEST_CHECK_PCK_CHAIN, status, "%s", err.msg);
            return;
        }
        v->chain_trusted = true;
        cache_chain_keep(v, &cr);
    }
    res->crl_checked = cr.crl_checked;
    res->stale_crl |= cr.stale_crl;
    min_time(&res->earliest_expiry, cr.earliest_expiry);
    char leaf[128], ca[128], root[128];
    cert_cn(v->chain->certs[0], leaf, sizeof(leaf));
    cert_cn(v->chain->certs[1], ca, sizeof(ca));
    cert_cn(v->chain->certs[v->chain->n - 1], root, sizeof(root));
    pass(res, ATTEST_CHECK_PCK_CHAIN, "'%s' <- '%s' <- '%s' (the trust anchor); %s", leaf, ca, root,
         !cr.crl_checked ? "no CRLs: revocation NOT checked"
         : cr.stale_crl  ? "not revoked (a CRL is past its nextUpdate: stale)"
                         : "not revoked (root CA and PCK CRLs)");
}

static void fill_platform(const struct vstate* v, struct tcb_platform* p) {
    *p               = (struct tcb_platform){0};
    p->is_tdx        = v->is_tdx;
    p->quote_version = v->q.version;
    memcpy(p->fmspc, v->ext.fmspc, 6);
    memcpy(p->pceid, v->ext.pceid, 2);
    memcpy(p->sgx_svn, v->ext.tcb_comp_svn, 16);
    p->pcesvn = v->ext.pcesvn;
    if (!v->is_tdx)
        return;
    const struct quote_td_body* td = &v->q.td;
    memcpy(p->tee_tcb_svn, td->tee_tcb_svn, 16);
    memcpy(p->mr_signer_seam, td->mr_signer_seam, 48);
    memcpy(p->seam_attributes, td->seam_attributes, 8);
    p->has_tee_tcb_svn2 = td->is_v15;
    if (td->is_v15)
        memcpy(p->tee_tcb_svn2, td->tee_tcb_svn2, 16);
}

/* §2.2 step 3 (and 4): does the verified TCB info apply to this platform? A first evaluation
 * with a neutral QE status finds TCB_INFO_MISMATCH and TDX_MODULE_MISMATCH in QVL's order. */
static int match_tcb_info(struct vstate* v, struct moat_error* err) {
    struct tcb_platform p;
    fill_platform(v, &p);
    struct tcb_verdict tmp = {0};
    int r                  = tcb_evaluate(v->cv->tcb_info, &p, TCB_UP_TO_DATE, NULL, &tmp, err);
    tcb_verdict_clear(&tmp);
    if (r < 0 && strstr(err->msg, "TDX_MODULE_MISMATCH")) {
        snprintf(v->module_err, sizeof(v->module_err), "%s", err->msg);
        return 0;
    }
    return r;
}

/* §2.2 steps 3 and 7 (signatures, dates, chains, CRLs) and step 3's id/FMSPC/PCE-ID. */
static void check_collateral(struct vstate* v) {
    struct attest_verify_result* res = v->res;
    struct moat_error err            = {0};
    if (!v->c) {
        skip(res, ATTEST_CHECK_COLLATERAL,
             "no collateral given: TCB info, QE identity and CRLs not checked");
        return;
    }
    int r = cache_collateral(v, &err);
    if (r < 0) {
        fail(res, ATTEST_CHECK_COLLATERAL,
             status_for(g_collateral_rules, ARRAY_SIZE(g_collateral_rules), r, err.msg), "%s",
             err.msg);
        return;
    }
    res->stale_crl |= v->cv->stale_crl;
    min_time(&res->earliest_expiry, v->cv->earliest_expiry);
    if (v->ext_ok && (r = match_tcb_info(v, &err)) < 0) {
        fail(res, ATTEST_CHECK_COLLATERAL,
             status_for(g_tcb_rules, ARRAY_SIZE(g_tcb_rules), r, err.msg), "%s", err.msg);
        return;
    }
    v->coll_ok                 = v->ext_ok;
    const struct tcb_info* ti  = v->cv->tcb_info;
    _cleanup_free_ char* fmspc = hex_encode_alloc(ti->fmspc, 6);
    char until[32];
    format_time(v->cv->earliest_expiry, until, sizeof(until));
    pass(res, ATTEST_CHECK_COLLATERAL,
         "TCB info v%d (%s, FMSPC %s, evaluation data %lld) and QE identity '%s' signed and "
         "valid; CRLs %s; valid until %s%s",
         ti->version, ti->id == TCB_INFO_TDX ? "TDX" : "SGX", fmspc,
         (long long)ti->tcb_evaluation_data_number, v->cv->qe_identity->id,
         v->cv->stale_crl ? "past their nextUpdate (stale)" : "current", until,
         v->ext_ok ? "" : " (not matched: the PCK certificate is unreadable)");
}

/* §2.2 step 4 (QVL 4.1.2.4.11). */
static void check_tdx_module(struct vstate* v) {
    struct attest_verify_result* res = v->res;
    if (!v->is_tdx) {
        skip(res, ATTEST_CHECK_TDX_MODULE, "SGX quote: no TDX module");
        return;
    }
    if (!v->coll_ok) {
        skip(res, ATTEST_CHECK_TDX_MODULE, "needs verified collateral");
        return;
    }
    if (v->module_err[0]) {
        fail(res, ATTEST_CHECK_TDX_MODULE, "STATUS_TDX_MODULE_MISMATCH", "%s", v->module_err);
        return;
    }
    uint8_t version = v->q.td.tee_tcb_svn[1];
    if (version)
        pass(res, ATTEST_CHECK_TDX_MODULE,
             "mr_signer_seam and seam_attributes match module identity TDX_%02X", version);
    else
        pass(res, ATTEST_CHECK_TDX_MODULE,
             "mr_signer_seam and seam_attributes match the TCB info's tdxModule");
}

/* §2.2 step 5 (QVL 4.1.2.4.12): the QE report signed by the PCK leaf key. */
static void check_qe_report_signature(struct vstate* v) {
    struct attest_verify_result* res = v->res;
    struct moat_error err            = {0};
    if (!v->chain) {
        skip(res, ATTEST_CHECK_QE_REPORT_SIGNATURE, "needs the PCK certificate");
        return;
    }
    struct attest_verify_cache* k = v->cache;
    uint8_t h[32];
    bool kept = k && v->chain_trusted && v->chain == k->pck_chain;
    if (kept)
        sha256_of(v->q.qe_report_raw, QUOTE_SGX_BODY_SIZE, v->q.qe_report_signature, QUOTE_SIG_SIZE,
                  h);
    if (kept && cached_holds(&k->qe, v) && !memcmp(h, k->qe_hash, 32)) {
        k->stats.qe_hits++;
        pass(res, ATTEST_CHECK_QE_REPORT_SIGNATURE, "signed by the PCK certificate's key");
        return;
    }
    if (kept)
        k->stats.qe_misses++;
    if (ecdsa_p256_verify_raw(v->chain->certs[0], v->q.qe_report_raw, QUOTE_SGX_BODY_SIZE,
                              v->q.qe_report_signature, &err) < 0) {
        fail(res, ATTEST_CHECK_QE_REPORT_SIGNATURE, "STATUS_INVALID_QE_REPORT_SIGNATURE",
             "the QE report is not signed by the PCK certificate's key: %s", err.msg);
        return;
    }
    if (kept) {
        memcpy(k->qe_hash, h, 32);
        cached_set(&k->qe, v, k->chain.until);
    }
    pass(res, ATTEST_CHECK_QE_REPORT_SIGNATURE, "signed by the PCK certificate's key%s",
         v->chain_trusted ? "" : " (a certificate that did not verify)");
}

/* §2.2 step 6 (QVL 4.1.2.4.13): report_data = SHA-256(attestation key || QE auth data) || 0^32.
 * QVL compares the first 32 bytes; every real quote has the zeros too (§7). */
static void check_qe_report_data(struct vstate* v) {
    const struct quote* q = &v->q;
    uint8_t want[64]      = {0};
    struct sha256_ctx sha = {0};
    if (sha256_init(&sha) < 0 || sha256_update(&sha, q->attest_key, QUOTE_KEY_SIZE) < 0 ||
        sha256_update(&sha, q->qe_auth_data, q->qe_auth_data_len) < 0 ||
        sha256_final(&sha, want) < 0) {
        sha256_ctx_free(&sha);
        fail(v->res, ATTEST_CHECK_QE_REPORT_DATA, "STATUS_INVALID_QE_REPORT_DATA",
             "cannot compute SHA-256");
        return;
    }
    if (CRYPTO_memcmp(want, q->qe_report.report_data, 64) != 0) {
        fail(v->res, ATTEST_CHECK_QE_REPORT_DATA, "STATUS_INVALID_QE_REPORT_DATA",
             "QE report data is not SHA-256(attestation key || QE authentication data) || 0^32: "
             "the attestation key is not the one the QE vouches for");
        return;
    }
    pass(v->res, ATTEST_CHECK_QE_REPORT_DATA,
         "binds the attestation key (SHA-256 of key and %u bytes of QE authentication data)",
         q->qe_auth_data_len);
}

/* §2.2 step 7 (QVL 4.1.2.4.14-15). */
static void check_qe_identity(struct vstate* v) {
    struct attest_verify_result* res = v->res;
    if (!v->coll_ok) {
        skip(res, ATTEST_CHECK_QE_IDENTITY, "needs verified collateral");
        return;
    }
    const struct quote_sgx_body* qe = &v->q.qe_report;
    struct qe_report_fields f       = {.isvprodid = qe->isv_prod_id, .isvsvn = qe->isv_svn};
    memcpy(f.miscselect, qe->misc_select, 4);
    memcpy(f.attributes, qe->attributes, 16);
    memcpy(f.mrsigner, qe->mr_signer, 32);
    struct moat_error err = {0};
    int r = qe_identity_match(v->cv->qe_identity, v->is_tdx ? "TD_QE" : "QE", &f, &v->qe_status,
                              &v->qe_level, &err);
    if (r < 0) {
        fail(res, ATTEST_CHECK_QE_IDENTITY,
             status_for(g_tcb_rules, ARRAY_SIZE(g_tcb_rules), r, err.msg), "%s", err.msg);
        return;
    }
    v->qe_ok = true;
    pass(res, ATTEST_CHECK_QE_IDENTITY, "QE report matches QE identity '%s'; QE ISVSVN %u: %s",
         v->cv->qe_identity->id, qe->isv_svn, tcb_status_name(v->qe_status));
}

/* §2.2 step 8 (QVL 4.1.2.4.16): header || body signed by the attestation key. */
static void check_quote_signature(struct vstate* v) {
    struct moat_error err = {0};
    if (ecdsa_p256_verify_raw_key(v->q.attest_key, v->q.signed_data, v->q.signed_len,
                                  v->q.signature, &err) < 0) {
        fail(v->res, ATTEST_CHECK_QUOTE_SIGNATURE, "STATUS_INVALID_QUOTE_SIGNATURE",
             "the quote is not signed by its attestation key: %s", err.msg);
        return;
    }
    pass(v->res, ATTEST_CHECK_QUOTE_SIGNATURE,
         "header and report body (%zu bytes) signed by the attestation key", v->q.signed_len);
}

static void keep_verdict(struct attest_verify_result* res, const struct tcb_verdict* tv) {
    res->tcb_evaluated = true;
    res->tcb_status    = tv->status;
    res->advisories    = xcalloc(tv->n_advisories + 1, sizeof(char*));
    for (size_t i = 0; i < tv->n_advisories; i++)
        res->advisories[i] = xstrdup(tv->advisories[i]);
    res->n_advisories = tv->n_advisories;
    snprintf(res->tcb_date, sizeof(res->tcb_date), "%s", tv->tcb_date ? tv->tcb_date : "");
}

/* §2.2 steps 9-10 (QVL 4.1.2.4.17, TcbLevelCheck.cpp). */
static void check_tcb_level(struct vstate* v) {
    struct attest_verify_result* res = v->res;
    if (!v->coll_ok || !v->qe_ok) {
        skip(res, ATTEST_CHECK_TCB_LEVEL, "needs verified collateral and a matching QE identity");
        return;
    }
    if (v->module_err[0]) {
        skip(res, ATTEST_CHECK_TCB_LEVEL, "the TDX module identity does not match");
        return;
    }
    struct tcb_platform p;
    fill_platform(v, &p);
    struct tcb_verdict tv = {0};
    struct moat_error err = {0};
    int r                 = tcb_evaluate(v->cv->tcb_info, &p, v->qe_status, v->qe_level, &tv, &err);
    if (r < 0) {
        fail(res, ATTEST_CHECK_TCB_LEVEL,
             status_for(g_tcb_rules, ARRAY_SIZE(g_tcb_rules), r, err.msg), "%s", err.msg);
        return;
    }
    keep_verdict(res, &tv);
    tcb_verdict_clear(&tv);
    if (res->tcb_status == TCB_NOT_SUPPORTED)
        fail(res, ATTEST_CHECK_TCB_LEVEL, tcb_status_name(TCB_NOT_SUPPORTED),
             "no TCB level of the TCB info is met by the platform%s (QE: %s)",
             v->is_tdx ? " and TD" : "", tcb_status_name(v->qe_status));
    else
        pass(res, ATTEST_CHECK_TCB_LEVEL, "%s (TCB level of %s, %zu advisories)",
             tcb_status_name(res->tcb_status), res->tcb_date[0] ? res->tcb_date : "?",
             res->n_advisories);
}

/* §2.2 step 12: SGX attributes.flags bit 1, TD attributes bit 0. */
static void check_debug(struct vstate* v) {
    struct attest_verify_result* res = v->res;
    const char* what                 = v->is_tdx ? "TD" : "enclave";
    if (!res->debug)
        pass(res, ATTEST_CHECK_DEBUG, "not a debug %s", what);
    else if (v->opts->allow_debug)
        pass(res, ATTEST_CHECK_DEBUG,
             "a DEBUG %s, allowed (--allow-debug): its memory is open "
             "to the host",
             what);
    else
        fail(res, ATTEST_CHECK_DEBUG, v->is_tdx ? "DEBUG_TD" : "DEBUG_ENCLAVE",
             "a debug %s: its memory is open to the host (allow with --allow-debug)", what);
}

/* ---------------------------------------------------------------------------------------- */
/* The verdict                                                                                */

/* The accepted statuses, comma-separated. */
static void accepted_names(uint32_t accepted, char* buf, size_t size) {
    size_t n = 0;
    buf[0]   = '\0';
    for (int s = TCB_UP_TO_DATE; s < TCB_NOT_SUPPORTED; s++)
        if ((accepted & ATTEST_ACCEPT(s)) && n < size) {
            int w = snprintf(buf + n, size - n, "%s%s", n ? "," : "",
                             tcb_status_name((enum tcb_status)s));
            n += w > 0 ? (size_t)w : 0;
        }
}

static void finish(struct attest_verify_result* res, uint32_t accepted) {
    res->first_failure = -1;
    for (int i = 0; i < ATTEST_CHECK_COUNT; i++)
        if (res->checks[i].result == ATTEST_FAIL) {
            res->first_failure = i;
            break;
        }
    if (res->first_failure >= 0)
        res->status = res->checks[res->first_failure].status;
    else if (res->tcb_evaluated)
        res->status = tcb_status_name(res->tcb_status);
    else
        res->status = STATUS_UNVERIFIED;
    res->accepted = res->first_failure < 0 && res->tcb_evaluated &&
                    (accepted & ATTEST_ACCEPT(res->tcb_status)) != 0;
    char names[256];
    accepted_names(accepted, names, sizeof(names));
    if (res->accepted)
        res->reason[0] = '\0';
    else if (res->first_failure >= 0)
        snprintf(res->reason, sizeof(res->reason), "check '%s' failed (%s): %s",
                 attest_check_name((enum attest_check_id)res->first_failure), res->status,
                 res->checks[res->first_failure].detail);
    else if (!res->tcb_evaluated)
        snprintf(res->reason, sizeof(res->reason),
                 "the TCB is unverified: no collateral was given (%s)", STATUS_UNVERIFIED);
    else
        snprintf(res->reason, sizeof(res->reason),
                 "TCB status %s is not accepted (accepted: %s; see --accept)", res->status, names);
}

int attest_verify(const uint8_t* quote, size_t len, const struct collateral* c,
                  const struct attest_verify_opts* opts, struct attest_verify_result* res,
                  struct moat_error* err) {
    *res = (struct attest_verify_result){.first_failure = -1, .status = STATUS_UNVERIFIED};
    if (!quote || !opts)
        return moat_error_set(err, -EINVAL, "attest_verify: no quote or options");
    uint32_t accepted = opts->accepted ? opts->accepted : ATTEST_ACCEPT(TCB_UP_TO_DATE);
    struct vstate v   = {.opts = opts, .c = c, .res = res};
    v.copts           = (struct chain_verify_opts){.anchor           = opts->anchor,
                                                   .at               = opts->at,
                                                   .allow_stale_crl  = opts->allow_stale_crl,
                                                   .insecure__no_crl = c == NULL};
    int r             = check_parse(&v, quote, len, err);
    if (r < 0) {
        finish(res, accepted);
        return r;
    }
    cache_begin(&v);
    check_pck_chain(&v);
    check_collateral(&v);
    check_tdx_module(&v);
    check_qe_report_signature(&v);
    check_qe_report_data(&v);
    check_qe_identity(&v);
    check_quote_signature(&v);
    check_tcb_level(&v);
    check_debug(&v);
    vstate_clear(&v);
    finish(res, accepted);
    return 0;
}

void attest_verify_result_clear(struct attest_verify_result* res) {
    if (!res)
        return;
    for (size_t i = 0; i < res->n_advisories; i++)
        free(res->advisories[i]);
    free(res->advisories);
    res->advisories   = NULL;
    res->n_advisories = 0;
}

int attest_accept_parse(const char* list, uint32_t* ret_mask, struct moat_error* err) {
    uint32_t mask = 0;
    const char* p = list;
    while (true) {
        const char* end = strchr(p, ',');
        size_t n        = end ? (size_t)(end - p) : strlen(p);
        bool found      = false;
        for (int s = TCB_UP_TO_DATE; s < TCB_NOT_SUPPORTED && !found; s++) {
            const char* name = tcb_status_name((enum tcb_status)s);
            if (strlen(name) == n && strncmp(name, p, n) == 0) {
                mask |= ATTEST_ACCEPT(s);
                found = true;
            }
        }
        if (!found)
            return moat_error_set(err, -EINVAL,
                                  "'%.*s' is not a TCB status that can be accepted (UpToDate, "
                                  "SWHardeningNeeded, ConfigurationNeeded, "
                                  "ConfigurationAndSWHardeningNeeded, OutOfDate, "
                                  "OutOfDateConfigurationNeeded, Revoked, TDRelaunchAdvised, "
                                  "TDRelaunchAdvisedConfigurationNeeded)",
                                  (int)n, p);
        if (!end)
            break;
        p = end + 1;
    }
    *ret_mask = mask;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Reports                                                                                    */

static void set_hex(json_t* o, const char* key, const void* bytes, size_t n) {
    char* hex = hex_encode_alloc(bytes, n);
    json_object_set_new(o, key, json_string(hex));
    free(hex);
}

/* What the quote attests (reference §1.2, §1.4-1.5). */
static json_t* measurements_json(const struct attest_verify_result* res) {
    json_t* m = json_object();
    if (res->body_type == QUOTE_BODY_SGX) {
        const struct quote_sgx_body* b = &res->sgx;
        set_hex(m, "mrenclave", b->mr_enclave, 32);
        set_hex(m, "mrsigner", b->mr_signer, 32);
        json_object_set_new(m, "isvprodid", json_integer(b->isv_prod_id));
        json_object_set_new(m, "isvsvn", json_integer(b->isv_svn));
        set_hex(m, "attributes", b->attributes, 16);
        set_hex(m, "misc_select", b->misc_select, 4);
        set_hex(m, "cpu_svn", b->cpu_svn, 16);
        set_hex(m, "config_id", b->config_id, 64);
        json_object_set_new(m, "config_svn", json_integer(b->config_svn));
        set_hex(m, "isv_ext_prod_id", b->isv_ext_prod_id, 16);
        set_hex(m, "isv_family_id", b->isv_family_id, 16);
    } else {
        const struct quote_td_body* b = &res->td;
        set_hex(m, "mr_td", b->mr_td, 48);
        for (int i = 0; i < 4; i++) {
            char key[8];
            snprintf(key, sizeof(key), "rtmr%d", i);
            set_hex(m, key, b->rtmr[i], 48);
        }
        set_hex(m, "mr_seam", b->mr_seam, 48);
        set_hex(m, "mr_signer_seam", b->mr_signer_seam, 48);
        set_hex(m, "td_attributes", b->td_attributes, 8);
        set_hex(m, "xfam", b->xfam, 8);
        set_hex(m, "mr_config_id", b->mr_config_id, 48);
        set_hex(m, "mr_owner", b->mr_owner, 48);
        set_hex(m, "mr_owner_config", b->mr_owner_config, 48);
        set_hex(m, "tee_tcb_svn", b->tee_tcb_svn, 16);
        if (b->is_v15) {
            set_hex(m, "tee_tcb_svn2", b->tee_tcb_svn2, 16);
            set_hex(m, "mr_servicetd", b->mr_servicetd, 48);
        }
    }
    json_object_set_new(m, "debug", json_boolean(res->debug));
    return m;
}

static const uint8_t* report_data(const struct attest_verify_result* res) {
    return res->body_type == QUOTE_BODY_SGX ? res->sgx.report_data : res->td.report_data;
}

static json_t* time_or_null(time_t t) {
    char buf[32];
    if (!t)
        return json_null();
    format_time(t, buf, sizeof(buf));
    return json_string(buf);
}

json_t* attest_verify_result_to_json(const struct attest_verify_result* res) {
    json_t* o = json_object();
    json_object_set_new(o, "status", json_string(res->status));
    json_object_set_new(o, "accepted", json_boolean(res->accepted));
    json_object_set_new(o, "reason", res->accepted ? json_null() : json_string(res->reason));
    json_object_set_new(o, "simulated", json_boolean(res->simulated));
    if (res->simulated)
        json_object_set_new(o, "warning",
                            json_string("SIMULATED quote: proves nothing about hardware"));
    json_object_set_new(
        o, "tcb_status",
        res->tcb_evaluated ? json_string(tcb_status_name(res->tcb_status)) : json_null());
    json_t* adv = json_array();
    for (size_t i = 0; i < res->n_advisories; i++)
        json_array_append_new(adv, json_string(res->advisories[i]));
    json_object_set_new(o, "advisories", adv);
    json_object_set_new(o, "tcb_date", res->tcb_date[0] ? json_string(res->tcb_date) : json_null());
    json_object_set_new(o, "earliest_expiry", time_or_null(res->earliest_expiry));
    json_object_set_new(o, "crl_checked", json_boolean(res->crl_checked));
    json_object_set_new(o, "stale_crl", json_boolean(res->stale_crl));
    if (res->parsed) {
        json_object_set_new(o, "version", json_integer(res->version));
        json_object_set_new(o, "tee", json_string(quote_tee_name(res->tee_type)));
        json_object_set_new(o, "body_type", json_string(quote_body_name(res->body_type)));
        json_object_set_new(o, "measurements", measurements_json(res));
        set_hex(o, "report_data", report_data(res), 64);
    }
    json_t* checks = json_array();
    for (int i = 0; i < ATTEST_CHECK_COUNT; i++) {
        const struct attest_check* c = &res->checks[i];
        json_t* e = json_pack("{s:s,s:s}", "name", attest_check_name((enum attest_check_id)i),
                              "result", attest_check_result_name(c->result));
        json_object_set_new(e, "status", c->status ? json_string(c->status) : json_null());
        json_object_set_new(e, "detail", json_string(c->detail));
        json_array_append_new(checks, e);
    }
    json_object_set_new(o, "checks", checks);
    if (!o || !checks) {
        fprintf(stderr, "out of memory\n");
        abort();
    }
    return o;
}

static void text_hex(struct strbuf* out, const char* name, const void* bytes, size_t n) {
    _cleanup_free_ char* hex = hex_encode_alloc(bytes, n);
    strbuf_printf(out, "  %-16s %s\n", name, hex);
}

static void measurements_text(const struct attest_verify_result* res, struct strbuf* out) {
    if (res->body_type == QUOTE_BODY_SGX) {
        const struct quote_sgx_body* b = &res->sgx;
        text_hex(out, "mrenclave:", b->mr_enclave, 32);
        text_hex(out, "mrsigner:", b->mr_signer, 32);
        strbuf_printf(out, "  %-16s %u\n  %-16s %u\n", "isvprodid:", b->isv_prod_id,
                      "isvsvn:", b->isv_svn);
        text_hex(out, "attributes:", b->attributes, 16);
    } else {
        const struct quote_td_body* b = &res->td;
        text_hex(out, "mr_td:", b->mr_td, 48);
        for (int i = 0; i < 4; i++) {
            char key[16];
            snprintf(key, sizeof(key), "rtmr%d:", i);
            text_hex(out, key, b->rtmr[i], 48);
        }
        text_hex(out, "mr_seam:", b->mr_seam, 48);
        text_hex(out, "td_attributes:", b->td_attributes, 8);
        text_hex(out, "xfam:", b->xfam, 8);
        text_hex(out, "mr_config_id:", b->mr_config_id, 48);
        text_hex(out, "mr_owner:", b->mr_owner, 48);
        text_hex(out, "mr_owner_config:", b->mr_owner_config, 48);
    }
    text_hex(out, "report_data:", report_data(res), 64);
}

void attest_verify_format_text(const struct attest_verify_result* res, struct strbuf* out) {
    if (res->simulated)
        strbuf_puts(out, "*** SIMULATED quote: proves nothing about hardware ***\n");
    strbuf_puts(out, "checks:\n");
    for (int i = 0; i < ATTEST_CHECK_COUNT; i++) {
        const struct attest_check* c = &res->checks[i];
        strbuf_printf(out, "  %-8s %-20s ",
                      c->result == ATTEST_FAIL ? "FAIL" : attest_check_result_name(c->result),
                      attest_check_name((enum attest_check_id)i));
        if (c->status)
            strbuf_printf(out, "%s: ", c->status);
        strbuf_printf(out, "%s\n", c->detail);
    }
    if (res->parsed) {
        strbuf_printf(out, "measurements (%s, quote v%u%s):\n", quote_body_name(res->body_type),
                      res->version, res->debug ? ", DEBUG" : "");
        measurements_text(res, out);
    }
    strbuf_printf(out, "%-20s%s\n", "status:", res->status);
    if (res->tcb_evaluated) {
        strbuf_printf(out, "%-20s", "advisories:");
        for (size_t i = 0; i < res->n_advisories; i++)
            strbuf_printf(out, "%s%s", i ? ", " : "", res->advisories[i]);
        strbuf_printf(out, "%s\n%-20s%s\n", res->n_advisories ? "" : "none",
                      "tcb date:", res->tcb_date[0] ? res->tcb_date : "-");
    }
    if (res->earliest_expiry) {
        char t[32];
        format_time(res->earliest_expiry, t, sizeof(t));
        strbuf_printf(out, "%-20s%s\n", "collateral expires:", t);
    }
    if (res->stale_crl)
        strbuf_printf(out, "%-20s%s\n", "stale CRL:", "yes (accepted with --allow-stale-crl)");
    if (res->accepted)
        strbuf_printf(out, "result: ACCEPTED (%s)\n", res->status);
    else
        strbuf_printf(out, "result: REJECTED: %s\n", res->reason);
    if (res->simulated)
        strbuf_puts(out, "*** SIMULATED quote: proves nothing about hardware ***\n");
}
