/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Trusting a Coordinator (cli.h; reference/marblerun.md §7 "Attestation flow"): GET
 * /api/v2/quote?nonce=N (v1 /quote on 405), verify the quote (marblerun.h), keep or compare the
 * root in the cache, then talk TLS with the root as the only anchor.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "../attest/verify.h"
#include "cli.h"
#include "collateral.h"
#include "pck.h"
#include "sim.h"

/* The exact text of MarbleRun's CLI (cli/internal/cmd/certificate.go). */
static const char g_root_changed[] =
    "root certificate of Coordinator changed. Run 'marblerun manifest verify' to verify the "
    "instance and update the local cache";

void mr_session_clear(struct mr_session* s) {
    mr_http_free(s->http);
    free(s->chain_pem);
    *s = (struct mr_session){0};
}

int mr_fail(const struct moat_error* err) {
    log_error("%s", err->msg);
    return MOAT_EXIT_RUNTIME;
}

/* What /quote gave. */
struct quote_reply {
    char* chain_pem;
    uint8_t* quote;
    size_t quote_len;
    X509* root;
    X509* intermediate;
};

static void quote_reply_clear(struct quote_reply* q) {
    free(q->chain_pem);
    free(q->quote);
    X509_free(q->root);
    X509_free(q->intermediate);
}

static bool same_cert(X509* a, X509* b) {
    return a && b && X509_cmp(a, b) == 0;
}

/* The era config: --era-config, else ./coordinator-era.json, then the identity flags over it. */
static int load_era(const struct mr_args* a, struct mr_era* ret, struct moat_error* err) {
    struct mr_era e = {0};
    const char* path =
        a->era_config ? a->era_config
                      : (access("coordinator-era.json", F_OK) == 0 ? "coordinator-era.json" : NULL);
    bool flags = a->unique_id || a->signer_id;
    if (path && mr_era_load(path, &e, err) < 0)
        return -EINVAL;
    if (!path && !flags)
        return moat_error_set(err, -EINVAL,
                              "no era config: give --era-config coordinator-era.json (MarbleRun's "
                              "format) or --unique-id / --signer-id (moat downloads none), or "
                              "--insecure");
    if (a->unique_id &&
        (strlen(a->unique_id) != 64 || hex_decode(a->unique_id, 64, e.unique_id, 32) < 0))
        return moat_error_set(err, -EINVAL, "--unique-id '%s' is not 32 bytes of hex",
                              a->unique_id);
    if (a->signer_id &&
        (strlen(a->signer_id) != 64 || hex_decode(a->signer_id, 64, e.signer_id, 32) < 0))
        return moat_error_set(err, -EINVAL, "--signer-id '%s' is not 32 bytes of hex",
                              a->signer_id);
    e.has_unique_id |= a->unique_id != NULL;
    e.has_signer_id |= a->signer_id != NULL;
    if (a->product_id && parse_u64(a->product_id, 10, &e.product_id) < 0)
        return moat_error_set(err, -EINVAL, "--product-id '%s' is not a number", a->product_id);
    if (a->security_version && parse_u64(a->security_version, 10, &e.security_version) < 0)
        return moat_error_set(err, -EINVAL, "--security-version '%s' is not a number",
                              a->security_version);
    e.has_product_id |= a->product_id != NULL;
    e.has_security_version |= a->security_version != NULL;
    e.debug |= a->allow_debug;
    *ret = e;
    return 0;
}

/* The collateral and anchor: the simulated platform, or --collateral / --trusted-root. */
static int load_collateral(const struct mr_args* a, struct collateral** ret_c, X509** ret_anchor,
                           struct moat_error* err) {
    if (a->collateral) {
        int r = collateral_load_qvl_json(a->collateral, ret_c, err);
        if (r < 0)
            return moat_error_prefix(err, "--collateral '%s'", a->collateral);
        if (!a->trusted_root)
            return 0;
        _cleanup_free_ char* pem = NULL;
        size_t len               = 0;
        r                        = read_file(a->trusted_root, &pem, &len, err);
        r                        = r ?: x509_parse(pem, len, ret_anchor, err);
        return r < 0 ? moat_error_prefix(err, "--trusted-root '%s'", a->trusted_root) : 0;
    }
    if (a->sim_dir) {
        int r = sim_load_verifier(a->sim_dir, ret_c, ret_anchor, err);
        return r < 0 ? moat_error_prefix(err, "--sim-dir '%s'", a->sim_dir) : 0;
    }
    return 0; /* no collateral: the verification says what is missing */
}

static char* nonce_query(const uint8_t* nonce, size_t len) {
    _cleanup_free_ char* b = base64_encode_alloc(nonce, len);
    size_t n               = strcspn(b, "=");
    b[n]                   = '\0';
    for (char* p = b; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return xasprintf("/api/v2/quote?nonce=%s", b);
}

/* GET /quote (v2 with the nonce; v1 without on 405: then the nonce is empty). */
static int fetch_quote(struct mr_http* h, uint8_t* nonce, size_t* nonce_len, struct quote_reply* q,
                       struct moat_error* err) {
    struct mr_response r _cleanup_(mr_response_clear) = {0};
    _cleanup_free_ char* path                         = nonce_query(nonce, *nonce_len);
    int rc                                            = mr_http_call(h, "GET", path, NULL, &r, err);
    bool v1                                           = rc == 0 && r.status == 405;
    if (v1) {
        mr_response_clear(&r);
        *nonce_len = 0;
        rc         = mr_http_call(h, "GET", "/quote", NULL, &r, err);
    }
    if (rc == 0 && r.status != 200)
        rc = moat_error_set(err, -EIO, "GET /quote: %ld: %s", r.status, r.message ? r.message : "");
    if (rc < 0)
        return moat_error_prefix(err, "retrieving certificate from Coordinator");
    json_t* cert  = json_object_get(r.data, v1 ? "Cert" : "cert");
    json_t* quote = json_object_get(r.data, v1 ? "Quote" : "quote");
    if (!json_is_string(cert) || !json_is_string(quote))
        return moat_error_set(err, -EIO, "the Coordinator's /quote answer has no cert and quote");
    q->chain_pem = xstrdup(json_string_value(cert));
    if (base64_decode_alloc(json_string_value(quote), json_string_length(quote), &q->quote,
                            &q->quote_len) < 0)
        return moat_error_set(err, -EIO, "the Coordinator's quote is not base64");
    return mr_chain_parse(q->chain_pem, strlen(q->chain_pem), &q->intermediate, &q->root, err);
}

/* What a quote is checked against: the era config, the collateral and its anchor. */
struct trust_inputs {
    struct mr_era era;
    struct collateral* collateral;
    X509* anchor;
};

static void trust_inputs_clear(struct trust_inputs* t) {
    collateral_free(t->collateral);
    X509_free(t->anchor);
}

static int load_trust_inputs(const struct mr_args* a, struct trust_inputs* t,
                             struct moat_error* err) {
    if (a->insecure)
        return 0;
    int r = load_era(a, &t->era, err);
    return r ?: load_collateral(a, &t->collateral, &t->anchor, err);
}

/* The quote against the era config; prints what was verified on stderr. */
static int verify(const struct mr_args* a, const struct trust_inputs* t,
                  const struct quote_reply* q, const uint8_t* nonce, size_t nonce_len,
                  struct moat_error* err) {
    struct mr_verify_opts o     = {.era                   = &t->era,
                                   .collateral            = t->collateral,
                                   .anchor                = t->anchor,
                                   .at                    = time(NULL),
                                   .accepted_tcb          = a->accepted_tcb,
                                   .accepted_advisories   = a->advisories,
                                   .n_accepted_advisories = a->n_advisories};
    _cleanup_free_ uint8_t* der = NULL;
    int der_len                 = i2d_X509(q->root, &der);
    if (der_len <= 0)
        return moat_error_set(err, -EIO, "cannot encode the root certificate");
    struct mr_verdict v;
    int r = mr_verify_quote(q->quote, q->quote_len, der, (size_t)der_len, nonce, nonce_len, &o, &v,
                            err);
    if (v.simulated)
        fputs(
            "moat marblerun: warning: the Coordinator's quote is SIMULATED (moat attest "
            "init): it proves nothing about hardware\n",
            stderr);
    if (r < 0 && !t->collateral)
        return moat_error_prefix(err,
                                 "no collateral given (--sim-dir DIR for moat's simulated "
                                 "platform, --collateral FILE for hardware)");
    if (r < 0)
        return r;
    fprintf(stderr,
            "moat marblerun: verified the Coordinator%s: UniqueID %s, SignerID %s, ProductID %u, "
            "SecurityVersion %u, TCB %s\n",
            v.simulated ? " (SIMULATED quote)" : "", v.unique_id, v.signer_id, v.product_id,
            v.security_version, v.tcb_status);
    return 0;
}

/* The cache after a verification, as `trust` says. */
static int handle_cache(const struct mr_args* a, enum mr_trust trust, const struct quote_reply* q,
                        struct moat_error* err) {
    if (trust == MR_TRUST_VERIFY_ONLY)
        return 0;
    _cleanup_free_ char* pem  = NULL;
    _cleanup_x509_ X509* root = NULL;
    int r                     = mr_cache_load(a->coordinator_cert, &pem, &root, err);
    if (r < 0 && r != -ENOENT)
        return r;
    bool changed = r == 0 && !same_cert(root, q->root);
    if (trust == MR_TRUST_VERIFY_COMPARE && changed) {
        if (!a->insecure)
            return moat_error_set(err, -EPERM, "%s", g_root_changed);
        fputs(
            "moat marblerun: warning: --insecure: the root certificate of the Coordinator "
            "changed\n",
            stderr);
        return 0;
    }
    if (a->insecure) /* an unverified root is never cached */
        return 0;
    if (r == 0 && !changed)
        return 0;
    if (changed)
        fprintf(stderr, "moat marblerun: the Coordinator's root certificate changed: %s updated\n",
                a->coordinator_cert);
    return mr_cache_store(a->coordinator_cert, q->chain_pem, err);
}

static int session_for(const struct mr_args* a, const char* addr, const char* ca, bool auth,
                       struct mr_session* s, struct moat_error* err) {
    struct mr_http_opts o = {.ca_pem = ca};
    if (auth) {
        o.cert = a->cert;
        o.key  = a->key;
    }
    s->chain_pem = ca ? xstrdup(ca) : NULL;
    return mr_http_new(addr, &o, &s->http, err);
}

static void http_freep(struct mr_http** h) {
    mr_http_free(*h);
}

static int connect_verified(const struct mr_args* a, const char* addr, enum mr_trust trust,
                            bool auth, struct mr_session* ret, struct moat_error* err) {
    _cleanup_(http_freep) struct mr_http* h           = NULL;
    struct mr_http_opts plain                         = {0};
    struct quote_reply q _cleanup_(quote_reply_clear) = {0};
    uint8_t nonce_buf[32];
    const uint8_t* nonce = nonce_buf;
    size_t nonce_len     = sizeof(nonce_buf);
    if (a->nonce) {
        nonce     = (const uint8_t*)a->nonce;
        nonce_len = strlen(a->nonce);
    } else if (RAND_bytes(nonce_buf, sizeof(nonce_buf)) != 1) {
        return moat_error_set(err, -EIO, "cannot make a nonce");
    }
    struct trust_inputs t _cleanup_(trust_inputs_clear) = {0};
    int r                                               = load_trust_inputs(a, &t, err);
    if (r < 0)
        return r;
    uint8_t* n = xmemdup(nonce, nonce_len ? nonce_len : 1);
    r          = mr_http_new(addr, &plain, &h, err);
    r          = r ?: fetch_quote(h, n, &nonce_len, &q, err);
    if (r == 0 && a->save_sgx_quote)
        r = write_file_atomic(a->save_sgx_quote, q.quote, q.quote_len, 0644, err);
    if (r == 0 && a->insecure)
        fputs("Warning: skipping quote verification\n", stderr);
    else if (r == 0)
        r = verify(a, &t, &q, n, nonce_len, err);
    free(n);
    r = r ?: handle_cache(a, trust, &q, err);
    return r ?: session_for(a, addr, q.chain_pem, auth, ret, err);
}

int mr_connect(const struct mr_args* a, const char* addr, enum mr_trust trust, bool auth,
               struct mr_session* ret) {
    struct moat_error err = {0};
    *ret                  = (struct mr_session){0};
    if (auth && (!a->cert || !a->key)) {
        log_error("this command needs a client certificate: give -c/--cert and -k/--key");
        return MOAT_EXIT_USAGE;
    }
    /* named here: libcurl would only say that it could not load "the client certificate" */
    for (int i = 0; auth && i < 2; i++) {
        const char* path = i ? a->key : a->cert;
        if (access(path, R_OK) != 0) {
            log_error("%s '%s': %s", i ? "-k/--key" : "-c/--cert", path, strerror(errno));
            return MOAT_EXIT_USAGE;
        }
    }
    int r = 0;
    if (trust == MR_TRUST_CACHE) {
        _cleanup_free_ char* pem  = NULL;
        _cleanup_x509_ X509* root = NULL;
        r                         = mr_cache_load(a->coordinator_cert, &pem, &root, &err);
        if (r == 0) /* --insecure: the cached root is not required either */
            r = session_for(a, addr, a->insecure ? NULL : pem, auth, ret, &err);
        else if (r == -ENOENT)
            r = connect_verified(a, addr, trust, auth, ret, &err);
    } else {
        r = connect_verified(a, addr, trust, auth, ret, &err);
    }
    if (r < 0) {
        mr_session_clear(ret);
        return mr_fail(&err);
    }
    return 0;
}

/* After a TLS refusal with the cached root: a root that changed is named in MarbleRun's words. */
static bool root_changed(const struct mr_session* s, const char* addr) {
    struct moat_error err                             = {0};
    struct mr_http_opts plain                         = {0};
    _cleanup_(http_freep) struct mr_http* h           = NULL;
    struct quote_reply q _cleanup_(quote_reply_clear) = {0};
    _cleanup_cert_chain_ struct cert_chain* cached    = NULL;
    uint8_t nonce[1]                                  = {0};
    size_t nonce_len                                  = 1;
    if (!s->chain_pem || mr_http_new(addr, &plain, &h, &err) < 0 ||
        fetch_quote(h, nonce, &nonce_len, &q, &err) < 0 ||
        cert_chain_parse_pem(s->chain_pem, strlen(s->chain_pem), &cached, &err) < 0)
        return false;
    return !same_cert(cached->certs[cached->n - 1], q.root);
}

int mr_call(const struct mr_args* a, struct mr_session* s, const char* addr, const char* method,
            const char* path, const json_t* body, struct mr_response* r) {
    (void)a;
    struct moat_error err = {0};
    if (mr_http_expect(s->http, method, path, body, r, &err) == 0)
        return 0;
    if (r->tls_peer_refused && root_changed(s, addr))
        moat_error_set(&err, -EPERM, "%s", g_root_changed);
    return mr_fail(&err);
}
