/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Marble-facing client API endpoints and feature gates (reference/marblerun.md §1.6, §3.4,
 * §3.5; MarbleRun's clientapi.VerifyMarble, SetMonotonicCounter, SignQuote, FeatureEnabled).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core_internal.h"
#include "marble_quote.h"

#define K_COUNTER_PREFIX "monotonicCounter:"

static const char NOT_IN_STATE[] = "server is not in expected state";

static bool gate_locked(struct coord_core* c, const char* gate) {
    if (!c->gen->manifest || !gate)
        return false;
    const struct coord_strv* g = &c->gen->manifest->config.feature_gates;
    for (size_t i = 0; i < g->n; i++)
        if (!strcasecmp(g->v[i], gate))
            return true;
    return false;
}

bool coord_core_feature_gate(struct coord_core* c, const char* gate) {
    pthread_mutex_lock(&c->lock);
    bool on = c->state == COORD_STATE_ACCEPTING_MARBLES && gate_locked(c, gate);
    pthread_mutex_unlock(&c->lock);
    return on;
}

/* ---------------------------------------------------------------------------------------- */
/* Marble client certificates (clientapi.VerifyMarble)                                       */

/* The leaf must verify against the marble root alone (no intermediates are taken from the
 * client, as Go's Verify with only Roots set): a certificate a CA secret issued does not. */
static int verify_chain(struct coord_core* c, X509* leaf, struct moat_error* err) {
    X509_STORE* st      = X509_STORE_new();
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    int r               = -ENOMEM;
    if (st && ctx && X509_STORE_add_cert(st, c->gen->ca->marble_root_cert) == 1 &&
        X509_STORE_CTX_init(ctx, st, leaf, NULL) == 1) {
        r = 0;
        if (X509_verify_cert(ctx) != 1) {
            int e = X509_STORE_CTX_get_error(ctx);
            if (e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID)
                r = moat_error_set(err, -EACCES,
                                   "x509: certificate has expired or is not yet valid");
            else
                r = moat_error_set(err, -EACCES,
                                   "x509: certificate signed by unknown authority (%s)",
                                   X509_verify_cert_error_string(e));
        }
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return r;
}

/* The raw value of the 1.3.9903.2.1 extension (not ASN.1-wrapped, coordinator/oid). */
static char* marble_type_of(X509* x) {
    ASN1_OBJECT* want = OBJ_txt2obj(MOAT_OID_MARBLE_TYPE, 1);
    char* type        = NULL;
    for (int i = 0; want && i < X509_get_ext_count(x); i++) {
        X509_EXTENSION* ext = X509_get_ext(x, i);
        if (OBJ_cmp(X509_EXTENSION_get_object(ext), want) != 0)
            continue;
        const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(ext);
        const uint8_t* p           = ASN1_STRING_get0_data(v);
        size_t n                   = (size_t)ASN1_STRING_length(v);
        if (memchr(p, 0, n) == NULL)
            type = xstrndup((const char*)p, n);
        break;
    }
    ASN1_OBJECT_free(want);
    return type;
}

static int auth_marble_locked(struct coord_core* c, const uint8_t* der, size_t len, char** ret_type,
                              char** ret_uuid, struct moat_error* err) {
    if (c->state != COORD_STATE_ACCEPTING_MARBLES)
        return moat_error_set(err, -EPERM, "%s", NOT_IN_STATE);
    const uint8_t* p       = der;
    _cleanup_x509_ X509* x = d2i_X509(NULL, &p, (long)len);
    if (!x || p != der + len)
        return moat_error_set(err, -EACCES, "x509: malformed certificate");
    int r = verify_chain(c, x, err);
    if (r < 0)
        return r;
    char cn[128] = {0};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) < 0)
        cn[0] = 0;
    uint8_t id[16];
    struct moat_error e = {0};
    if (moat_uuid_parse(cn, id, &e) < 0)
        return moat_error_set(err, -EACCES, "%s", e.msg);
    _cleanup_free_ char* type = marble_type_of(x);
    if (!type)
        return moat_error_set(err, -EACCES, "MarbleType extension not found in certificate");
    char uuid[MOAT_UUID_STR_SIZE];
    moat_uuid_format(id, uuid);
    *ret_type = TAKE_PTR(type);
    *ret_uuid = xstrdup(uuid);
    return 0;
}

int coord_core_auth_marble(struct coord_core* c, const uint8_t* cert_der, size_t len,
                           char** ret_type, char** ret_uuid, struct moat_error* err) {
    if (!cert_der || len == 0)
        return moat_error_set(err, -ENOKEY, "no client certificate provided");
    pthread_mutex_lock(&c->lock);
    int r = auth_marble_locked(c, cert_der, len, ret_type, ret_uuid, err);
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Monotonic counters (§3.4: monotonicCounter:<b64 type>:<b64 uuid bytes>:<b64 name>, u64 LE) */

static char* counter_key(const char* type, const uint8_t uuid[16], const char* name) {
    _cleanup_free_ char* t = base64_encode_alloc(type, strlen(type));
    _cleanup_free_ char* u = base64_encode_alloc(uuid, 16);
    _cleanup_free_ char* n = base64_encode_alloc(name, strlen(name));
    return xasprintf(K_COUNTER_PREFIX "%s:%s:%s", t, u, n);
}

static int set_counter_locked(struct coord_core* c, const char* type, const char* uuid,
                              const char* name, uint64_t value, uint64_t* ret_prev,
                              struct moat_error* err) {
    if (c->state != COORD_STATE_ACCEPTING_MARBLES)
        return moat_error_set(err, -EPERM, "%s", NOT_IN_STATE);
    if (!gate_locked(c, "MonotonicCounter"))
        return moat_error_set(err, -EOPNOTSUPP,
                              "MonotonicCounter feature is not enabled in the manifest");
    uint8_t id[16];
    int r = moat_uuid_parse(uuid ? uuid : "", id, err);
    if (r < 0)
        return moat_error_prefix(err, "invalid UUID");
    _cleanup_free_ char* key = counter_key(type ? type : "", id, name ? name : "");
    struct store_txn* t      = store_begin(c->store);
    const uint8_t* v;
    size_t n;
    uint64_t prev = 0;
    if (txn_get(t, key, &v, &n) == 0) {
        struct cursor cur = cursor_init(v, n);
        if (n != 8 || cur_u64le(&cur, &prev) < 0) {
            store_rollback(t);
            return moat_error_set(err, -EBADMSG, "monotonic counter %s is corrupt", key);
        }
    }
    if (value <= prev) { /* the counter only increases */
        store_rollback(t);
        *ret_prev = prev;
        return 0;
    }
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(value >> (8 * i));
    txn_put(t, key, le, sizeof(le));
    r = store_commit(t, err);
    if (r < 0)
        return moat_error_prefix(err, "committing store transaction");
    *ret_prev = prev;
    return 0;
}

int coord_core_set_monotonic_counter(struct coord_core* c, const char* type, const char* uuid,
                                     const char* name, uint64_t value, uint64_t* ret_prev,
                                     struct moat_error* err) {
    pthread_mutex_lock(&c->lock);
    int r = set_counter_locked(c, type, uuid, name, value, ret_prev, err);
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* POST /sign-quote (clientapi.verifyAndSignQuote)                                            */

/* ego's VerifyRemoteReport: any TCB level passes (ErrTCBLevelInvalid is not an error there),
 * debug enclaves too; anything else is "quote verification failed: …". */
static int verify_any_tcb(struct coord_core* c, const uint8_t* quote, size_t len,
                          enum tcb_status* ret, struct moat_error* err) {
    struct attest_verify_opts o;
    struct core_verify_slot* slot = core_verify_acquire(c, &o);
    o.allow_debug                 = true;
    for (int s = TCB_UP_TO_DATE; s <= TCB_REVOKED; s++)
        o.accepted |= ATTEST_ACCEPT(s);
    struct attest_verify_result res = {0};
    struct moat_error e             = {0};
    const struct collateral* col    = NULL;
    int r                           = core_collateral(c, quote, len, &col, &e);
    if (r == 0)
        r = attest_verify(quote, len, col, &o, &res, &e);
    core_verify_release(slot);
    if (r < 0)
        r = moat_error_set(err, -EINVAL, "quote verification failed: %s", e.msg);
    else if (res.first_failure >= 0 && res.first_failure != ATTEST_CHECK_TCB_LEVEL)
        r = moat_error_set(err, -EINVAL, "quote verification failed: %s", res.reason);
    else if (!res.tcb_evaluated || res.tcb_status == TCB_NOT_SUPPORTED)
        r = moat_error_set(err, -EINVAL, "quote verification failed: %s",
                           res.reason[0] ? res.reason : "no TCB verdict");
    else if (!res.parsed || res.body_type != 1)
        r = moat_error_set(err, -EINVAL, "quote verification failed: not an SGX enclave quote");
    else
        *ret = res.tcb_status;
    attest_verify_result_clear(&res);
    return r;
}

/* ECDSA (ASN.1 DER) with the root key over sha256(base64(quote) || tcbStatus). */
static int sign_locked(struct coord_core* c, const uint8_t* quote, size_t len, const char* tcb,
                       uint8_t** ret, size_t* ret_len, struct moat_error* err) {
    _cleanup_free_ char* b64 = base64_encode_alloc(quote, len);
    struct strbuf msg        = STRBUF_INIT;
    strbuf_puts(&msg, b64);
    strbuf_puts(&msg, tcb);
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    size_t n       = 0;
    uint8_t* sig   = NULL;
    int r          = -EIO;
    if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, c->gen->ca->root_key) == 1 &&
        EVP_DigestSign(md, NULL, &n, (const uint8_t*)msg.buf, msg.len) == 1) {
        sig = xmalloc(n);
        if (EVP_DigestSign(md, sig, &n, (const uint8_t*)msg.buf, msg.len) == 1)
            r = 0;
    }
    EVP_MD_CTX_free(md);
    strbuf_free(&msg);
    if (r < 0) {
        free(sig);
        return moat_error_set(err, r, "signing quote");
    }
    *ret     = sig;
    *ret_len = n;
    return 0;
}

int coord_core_sign_quote(struct coord_core* c, const uint8_t* quote, size_t len,
                          char** ret_tcb_status, uint8_t** ret_sig, size_t* ret_sig_len,
                          struct moat_error* err) {
    if (!coord_core_feature_gate(c, "SignQuoteEndpoint"))
        return moat_error_set(err, -EOPNOTSUPP,
                              "SignQuoteEndpoint feature is not enabled in the manifest");
    if (c->simulation || !c->verify_opts)
        return moat_error_set(err, -EOPNOTSUPP,
                              "sign-quote: the Coordinator runs in simulation mode and has no "
                              "quote verifier");
    if (!quote || len == 0)
        return moat_error_set(err, -EINVAL, "quote verification failed: the quote is empty");
    /* the verifier takes a raw SGX quote or one behind an OpenEnclave header alike */
    enum tcb_status st;
    int r = verify_any_tcb(c, quote, len, &st, err);
    if (r < 0)
        return r;
    const char* tcb = tcb_status_name(st);
    pthread_mutex_lock(&c->lock);
    r = sign_locked(c, quote, len, tcb, ret_sig, ret_sig_len, err);
    pthread_mutex_unlock(&c->lock);
    if (r == 0)
        *ret_tcb_status = xstrdup(tcb);
    return r;
}
