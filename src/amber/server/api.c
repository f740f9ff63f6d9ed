/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API of the token service (attestation.md §4.1): nonces, attestation of every
 * generation (Amber beta, ITA v1, ITA v2), the JWKS and the CRL. Routes are a table; every
 * answer carries a `trace-id` header and echoes `request-id`.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "server.h"

/* ------------------------------------------------------------------------------------------ */
/* Answers                                                                                      */

static void reply_json(struct net_http_response* resp, int status, json_t* body) {
    char* text     = body ? json_dumps(body, JSON_COMPACT) : NULL;
    resp->status   = text ? status : 500;
    resp->body     = (uint8_t*)text;
    resp->body_len = text ? strlen(text) : 0;
    json_decref(body);
}

static int reply_error(struct amber_server* s, struct net_http_response* resp, int status,
                       const char* fmt, ...) PRINTF_FMT(4, 5);
static int reply_error(struct amber_server* s, struct net_http_response* resp, int status,
                       const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char* msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    s->refusals++;
    if (status >= 0 && status < 600)
        s->refusals_by_status[status]++;
    slog("info", "refused (%d): %s", status, msg ? msg : "");
    reply_json(resp, status, json_pack("{s:s, s:i}", "error", msg ? msg : "", "status", status));
    free(msg);
    return 0;
}

static void add_header(struct net_http_response* resp, const char* name, const char* value) {
    if (resp->n_headers < NET_HTTP_MAX_EXTRA_HEADERS)
        resp->headers[resp->n_headers++] = (struct net_http_header){name, xstrdup(value)};
}

/* ------------------------------------------------------------------------------------------ */
/* Authentication and content negotiation                                                       */

/* `x-api-key` (§4.1) against every configured key, in constant time over their hashes. */
static bool api_key_ok(const struct amber_server* s, const char* key) {
    if (s->cfg.insecure_no_api_key)
        return true;
    if (!key)
        return false;
    uint8_t h[32], k[32];
    if (sha256_buf(key, strlen(key), h) < 0)
        return false;
    bool ok = false;
    for (size_t i = 0; s->cfg.api_keys && s->cfg.api_keys[i]; i++)
        if (sha256_buf(s->cfg.api_keys[i], strlen(s->cfg.api_keys[i]), k) == 0)
            ok |= CRYPTO_memcmp(h, k, sizeof(h)) == 0;
    OPENSSL_cleanse(h, sizeof(h));
    OPENSSL_cleanse(k, sizeof(k));
    return ok;
}

/* Whether a header value (a list of media ranges) names `type`; a missing Accept takes all. */
static bool accepts(const char* accept, const char* type) {
    if (!accept || !*accept)
        return true;
    size_t tl = strlen(type);
    for (const char* p = accept; *p;) {
        p += strspn(p, " \t,");
        size_t l = strcspn(p, ",;");
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if ((l == tl && strncasecmp(p, type, tl) == 0) || (l == 3 && strncmp(p, "*/*", 3) == 0) ||
            (l == 13 && strncasecmp(p, "application/*", 13) == 0))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

static bool explicitly_accepts(const char* accept, const char* type) {
    return accept && strcasestr(accept, type) != NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Policies                                                                                     */

/*
 * Appraisal policies (§4.1 policy_ids): not implemented yet. The Rego subset (src/amber/rego.c,
 * issue 14) plugs in here: evaluate each requested policy over `claims` and fill the matched
 * and unmatched lists ([{id, version}]). Until then every requested id is unknown, which ITA
 * answers with 400; without policy_ids the lists stay empty.
 */
/* ------------------------------------------------------------------------------------------ */
/* Attestation                                                                                  */

static void hash_into(json_t* o, const char* key, const void* p, size_t len) {
    uint8_t h[32];
    if (p && sha256_buf(p, len, h) == 0) {
        _cleanup_free_ char* hex = hex_encode_alloc(h, sizeof(h));
        json_object_set_new(o, key, json_string(hex));
    }
}

static void hash_cert(json_t* o, const char* key, const struct cert_chain* chain) {
    uint8_t* der = NULL;
    int n        = chain && chain->n ? i2d_X509(chain->certs[0], &der) : 0;
    if (n > 0)
        hash_into(o, key, der, (size_t)n);
    OPENSSL_free(der);
}

static void hash_crl(json_t* o, const char* key, X509_CRL* crl) {
    uint8_t* der = NULL;
    int n        = crl ? i2d_X509_CRL(crl, &der) : 0;
    if (n > 0)
        hash_into(o, key, der, (size_t)n);
    OPENSSL_free(der);
}

/* §4.2 sgx_collateral / tdx_collateral: SHA-256 of the quote, of the exact signed TCB info and
 * QE identity bytes, of their signing certificates (DER) and of the root CA CRL that covers
 * those certificates. */
static json_t* collateral_hashes(const struct collateral* c, const uint8_t* quote, size_t len) {
    json_t* o = json_object();
    hash_into(o, "quotehash", quote, len);
    if (c) {
        hash_into(o, "tcbinfohash", c->tcb_info, c->tcb_info_len);
        hash_into(o, "qeidhash", c->qe_identity, c->qe_identity_len);
        hash_cert(o, "tcbinfocerthash", c->tcb_info_issuer_chain);
        hash_cert(o, "qeidcerthash", c->qe_identity_issuer_chain);
        hash_crl(o, "tcbinfocrlhash", c->root_ca_crl);
        hash_crl(o, "qeidcrlhash", c->root_ca_crl);
    }
    return o;
}

/* The verdict on the request's quote, or an answer already written (returns 1). */
static int verify_quote(struct amber_server* s, const struct amber_attest_request* req,
                        struct attest_verify_result* res, struct amber_trust** ret_trust,
                        const struct collateral** ret_collateral, struct net_http_response* resp) {
    struct moat_error err = {0};
    struct quote parsed;
    if (quote_parse_input(req->quote, req->quote_len, &parsed, &err) < 0)
        return reply_error(s, resp, 400, "'quote' is not a DCAP quote: %s", err.msg), 1;
    bool tdx = parsed.tee_type == QUOTE_TEE_TDX;
    if (req->tee && strcmp(req->tee, tdx ? "tdx" : "sgx") != 0)
        return reply_error(s, resp, 400, "the quote under '%s' is a %s quote", req->tee,
                           tdx ? "TDX" : "SGX"),
               1;
    struct amber_trust* t = &s->hw;
    /* the SIMULATED mark is in the signed header (sim.c): a quote that lies about it fails the
     * verifier it is sent to */
    if (memcmp(parsed.user_data, ATTEST_SIMULATED_MARK, strlen(ATTEST_SIMULATED_MARK)) == 0) {
        if (!s->sim.configured)
            return reply_error(s, resp, 403,
                               "quote verification failed: a moat SIMULATED quote, and this "
                               "service does not trust the simulated platform (--trust-simulated)"),
                   1;
        t = &s->sim;
    }
    const struct collateral* coll = NULL;
    int r = amber_trust_collateral(t, req->quote, req->quote_len, &coll, &err);
    if (r < 0)
        return reply_error(s, resp, r == -EINVAL ? 400 : 503,
                           "no collateral for the quote's platform: %s", err.msg),
               1;
    struct attest_verify_opts opts = {
        .anchor      = t->anchor,
        .at          = s->cfg.verify_at ? s->cfg.verify_at : time(NULL),
        .allow_debug = true, /* reported in the claims; policies decide (as ITA) */
        .accepted    = s->accepted_tcb,
        .cache       = t->cache,
    };
    r = attest_verify(req->quote, req->quote_len, coll, &opts, res, &err);
    if (r < 0)
        return reply_error(s, resp, 400, "'quote' is not a DCAP quote: %s", err.msg), 1;
    if (!res->accepted)
        return reply_error(s, resp, 403, "quote verification failed: %s", res->reason), 1;
    *ret_trust      = t;
    *ret_collateral = coll;
    return 0;
}

/* The report data must bind the nonce and runtime data (§4.1 "Report-data binding"). */
static bool binding_ok(const struct amber_attest_request* req,
                       const struct attest_verify_result* res) {
    uint8_t want[64];
    bool tdx = res->tee_type == QUOTE_TEE_TDX;
    if (amber_expected_report_data(req, tdx, want) == 0)
        return true;
    const uint8_t* have = tdx ? res->td.report_data : res->sgx.report_data;
    return CRYPTO_memcmp(want, have, 64) == 0;
}

static void log_token(const struct amber_attest_request* req,
                      const struct attest_verify_result* res, bool simulated) {
    bool tdx = res->tee_type == QUOTE_TEE_TDX;
    _cleanup_free_ char* m =
        hex_encode_alloc(tdx ? res->td.mr_td : res->sgx.mr_enclave, tdx ? 48 : 32);
    slog("info", "token issued (%s, %s, %s): %s %s, TCB %s",
         req->api == AMBER_API_BETA ? "Amber beta"
         : req->api == AMBER_API_V1 ? "v1"
                                    : "v2",
         amber_jwt_alg_name(req->alg), tdx ? "TDX" : "SGX", tdx ? "MRTD" : "MRENCLAVE", m,
         res->status);
    if (simulated)
        slog("warning",
             "SIMULATED quote accepted (--trust-simulated): the token carries "
             "\"moat_simulated\": true and proves nothing about hardware");
}

static int issue_token(struct amber_server* s, const struct amber_attest_request* req,
                       const struct attest_verify_result* res, const struct amber_trust* t,
                       const struct collateral* coll, struct net_http_response* resp) {
    struct moat_error err       = {0};
    json_t* matched             = json_array();
    json_t* unmatched           = json_array();
    json_t* hashes              = collateral_hashes(coll, req->quote, req->quote_len);
    struct amber_claims_opts co = {
        .issuer            = s->cfg.issuer                ? s->cfg.issuer
                             : req->api == AMBER_API_BETA ? "AS Attestation Token Issuer"
                                                          : "Intel Trust Authority",
        .instance_id       = s->pki.instance_id,
        .validity          = s->cfg.token_validity,
        .now               = time(NULL),
        .collateral_hashes = hashes,
        .policy_matched    = matched,
        .policy_unmatched  = unmatched,
    };
    json_t* claims  = amber_claims_build(req, res, &co);
    json_t* defined = json_object();
    char* token     = NULL;
    int status      = 400;
    /* the policies see the claims as the token will carry them (ITA's `input`) */
    int r = amber_policies_evaluate(s, req->policy_ids, req->n_policy_ids, claims, matched,
                                    unmatched, defined, &status, &err);
    if (r < 0) {
        r = reply_error(s, resp, status, "%s", err.msg);
        goto out;
    }
    if (req->policy_must_match && json_array_size(unmatched) > 0) {
        r = reply_error(s, resp, 403, "policy %s did not match (policy_must_match)",
                        json_string_value(json_object_get(json_array_get(unmatched, 0), "id")));
        goto out;
    }
    bool beta = req->api == AMBER_API_BETA;
    json_object_set(claims, beta ? "amber_matched_policy_ids" : "policy_ids_matched", matched);
    json_object_set(claims, beta ? "amber_unmatched_policy_ids" : "policy_ids_unmatched",
                    unmatched);
    if (json_object_size(defined) > 0)
        json_object_set(claims, beta ? "amber_custom_policy" : "policy_defined_claims", defined);
    if (res->simulated || t == &s->sim)
        json_object_set_new(claims, "moat_simulated", json_true());
    const char* kid = req->alg == AMBER_JWT_RS256 ? s->pki.kid_rs256 : s->pki.kid;
    if (amber_jwt_sign(req->alg, s->pki.signing_key, kid, s->jku, claims, &token, &err) < 0) {
        slog("error", "signing a token: %s", err.msg);
        r = -EIO;
        goto out;
    }
    s->tokens++;
    log_token(req, res, res->simulated || t == &s->sim);
    if (req->api == AMBER_API_BETA) {
        resp->status       = 200;
        resp->content_type = "application/jwt";
        resp->body_len     = strlen(token);
        resp->body         = (uint8_t*)TAKE_PTR(token);
    } else {
        reply_json(resp, 200, json_pack("{s:s}", "token", token));
    }
    r = 0;
out:
    free(token);
    json_decref(claims);
    json_decref(defined);
    json_decref(hashes);
    json_decref(matched);
    json_decref(unmatched);
    return r;
}

static int attest(struct amber_server* s, const struct net_http_request* req,
                  struct net_http_response* resp, enum amber_api api) {
    const char* ct = net_http_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        return reply_error(s, resp, 415, "Content-Type must be application/json");
    const char* accept = net_http_header(req, "Accept");
    /* §4.1: /attest answers a raw JWT to `Accept: application/jwt` (Amber beta) */
    if (api == AMBER_API_V1 && explicitly_accepts(accept, "application/jwt") &&
        !explicitly_accepts(accept, "application/json"))
        api = AMBER_API_BETA;
    const char* answer = api == AMBER_API_BETA ? "application/jwt" : "application/json";
    if (!accepts(accept, answer))
        return reply_error(s, resp, 406, "this endpoint answers %s", answer);

    struct moat_error err              = {0};
    struct amber_attest_request parsed = {0};
    if (amber_attest_request_parse((const char*)req->body, req->body_len, api, &parsed, &err) < 0)
        return reply_error(s, resp, 400, "%s", err.msg);
    struct attest_verify_result res = {0};
    struct amber_trust* trust       = NULL;
    const struct collateral* coll   = NULL;
    int r                           = 0;
    if (parsed.has_nonce && amber_nonce_check(s->pki.nonce_key, &parsed.nonce, time(NULL),
                                              s->cfg.nonce_validity, &err) < 0)
        r = reply_error(s, resp, 403, "%s", err.msg);
    else if (verify_quote(s, &parsed, &res, &trust, &coll, resp) == 0) {
        if (!binding_ok(&parsed, &res))
            r = reply_error(s, resp, 403,
                            "report data does not match the verifier nonce and runtime data");
        else
            r = issue_token(s, &parsed, &res, trust, coll, resp);
    }
    attest_verify_result_clear(&res);
    amber_attest_request_clear(&parsed);
    return r;
}

static int attest_beta(struct amber_server* s, const struct net_http_request* req,
                       struct net_http_response* resp) {
    return attest(s, req, resp, AMBER_API_BETA);
}
static int attest_v1(struct amber_server* s, const struct net_http_request* req,
                     struct net_http_response* resp) {
    return attest(s, req, resp, AMBER_API_V1);
}
static int attest_v2(struct amber_server* s, const struct net_http_request* req,
                     struct net_http_response* resp) {
    return attest(s, req, resp, AMBER_API_V2);
}

/* ------------------------------------------------------------------------------------------ */
/* Nonce, JWKS, CRL                                                                             */

static int nonce(struct amber_server* s, const struct net_http_request* req,
                 struct net_http_response* resp) {
    (void)req;
    struct moat_error err = {0};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_t* n = amber_nonce_new(s->pki.nonce_key, &now, &err);
    if (!n) {
        slog("error", "%s", err.msg);
        return -EIO;
    }
    s->nonces++;
    reply_json(resp, 200, n);
    return 0;
}

static int certs(struct amber_server* s, const struct net_http_request* req,
                 struct net_http_response* resp) {
    (void)req;
    STACK_OF(X509)* chain = sk_X509_new_null();
    if (!chain || !sk_X509_push(chain, s->pki.signing) || !sk_X509_push(chain, s->pki.ca) ||
        !sk_X509_push(chain, s->pki.root)) {
        sk_X509_free(chain);
        return -ENOMEM;
    }
    json_t* keys = json_array();
    json_array_append_new(keys,
                          amber_jwk_new(s->pki.signing_key, AMBER_JWT_PS384, s->pki.kid, chain));
    json_array_append_new(
        keys, amber_jwk_new(s->pki.signing_key, AMBER_JWT_RS256, s->pki.kid_rs256, chain));
    json_array_append_new(keys,
                          amber_jwk_new(s->pki.nonce_key, AMBER_JWT_PS384, s->pki.nonce_kid, NULL));
    sk_X509_free(chain); /* the certificates stay the PKI's */
    reply_json(resp, 200, json_pack("{s:o}", "keys", keys));
    return 0;
}

/* The CRLs the certificates of the x5c chain name (§4.2 "Verification"). */
static int crl(struct amber_server* s, const struct net_http_request* req,
               struct net_http_response* resp) {
    const uint8_t* der = NULL;
    size_t len         = 0;
    if (strcmp(req->path, "/crl/root.crl") == 0) {
        der = s->pki.root_crl_der;
        len = s->pki.root_crl_len;
    } else if (strcmp(req->path, "/crl/signing-ca.crl") == 0) {
        der = s->pki.ca_crl_der;
        len = s->pki.ca_crl_len;
    } else {
        return reply_error(s, resp, 404, "no such CRL: %s", req->path);
    }
    resp->status       = 200;
    resp->content_type = "application/pkix-crl";
    resp->body         = xmemdup(der, len);
    resp->body_len     = len;
    return 0;
}

static int health(struct amber_server* s, const struct net_http_request* req,
                  struct net_http_response* resp) {
    (void)req;
    reply_json(resp, 200,
               json_pack("{s:s, s:I, s:I}", "status", "ok", "tokens", (json_int_t)s->tokens,
                         "refusals", (json_int_t)s->refusals));
    return 0;
}

/* Prometheus text format (ARCHITECTURE.md "Services": both servers expose /metrics). */
static int metrics(struct amber_server* s, const struct net_http_request* req,
                   struct net_http_response* resp) {
    (void)req;
    struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb,
                  "# HELP moat_amber_tokens_total Attestation tokens issued.\n"
                  "# TYPE moat_amber_tokens_total counter\n"
                  "moat_amber_tokens_total %llu\n"
                  "# HELP moat_amber_nonces_total Verifier nonces issued.\n"
                  "# TYPE moat_amber_nonces_total counter\n"
                  "moat_amber_nonces_total %llu\n"
                  "# HELP moat_amber_refusals_total Requests refused, by HTTP status.\n"
                  "# TYPE moat_amber_refusals_total counter\n",
                  (unsigned long long)s->tokens, (unsigned long long)s->nonces);
    for (int st = 0; st < 600; st++)
        if (s->refusals_by_status[st])
            strbuf_printf(&sb, "moat_amber_refusals_total{status=\"%d\"} %llu\n", st,
                          (unsigned long long)s->refusals_by_status[st]);
    size_t len         = 0;
    resp->body         = (uint8_t*)strbuf_take(&sb, &len);
    resp->body_len     = len;
    resp->status       = 200;
    resp->content_type = "text/plain; version=0.0.4";
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Routes (STYLE §7)                                                                            */

struct route {
    const char* method;
    const char* path; /* ending in '/': a prefix */
    bool auth;
    int (*fn)(struct amber_server*, const struct net_http_request*, struct net_http_response*);
};

static const struct route g_routes[] = {
    {"GET", "/appraisal/v1/nonce", true, nonce},
    {"GET", "/appraisal/v2/nonce", true, nonce},
    {"POST", "/appraisal/v1/appraise", true, attest_beta},
    {"POST", "/appraisal/v1/attest", true, attest_v1},
    {"POST", "/appraisal/v2/attest", true, attest_v2},
    {"GET", "/certs", false, certs},
    {"GET", "/crl/", false, crl},
    {"GET", "/health", false, health},
    {"GET", "/metrics", false, metrics},
};

static bool path_matches(const char* route, const char* path) {
    size_t l = strlen(route);
    return route[l - 1] == '/' ? strncmp(route, path, l) == 0 && path[l] : strcmp(route, path) == 0;
}

/* A request-id worth echoing: printable ASCII, at most 128 characters. */
static bool printable_id(const char* v) {
    size_t n = 0;
    for (; v[n]; n++)
        if (v[n] < 0x21 || v[n] > 0x7e || n >= 128)
            return false;
    return n > 0;
}

int amber_api_handle(const struct net_http_request* req, struct net_http_response* resp,
                     void* ctx) {
    struct amber_server* s = ctx;
    char trace[MOAT_UUID_STR_SIZE];
    moat_uuid4(trace);
    add_header(resp, "trace-id", trace);
    const char* rid = net_http_header(req, "request-id");
    if (rid && printable_id(rid))
        add_header(resp, "request-id", rid);
    const struct route* found = NULL;
    bool path_known           = false;
    for (size_t i = 0; i < ARRAY_SIZE(g_routes) && !found; i++) {
        if (!path_matches(g_routes[i].path, req->path))
            continue;
        path_known = true;
        if (strcmp(g_routes[i].method, req->method) == 0)
            found = &g_routes[i];
    }
    if (!found && path_known)
        return reply_error(s, resp, 405, "method %s not allowed on %s", req->method, req->path);
    if (!found)
        return reply_error(s, resp, 404, "no such endpoint: %s", req->path);
    if (found->auth && !api_key_ok(s, net_http_header(req, "x-api-key")))
        return reply_error(
            s, resp, 401,
            net_http_header(req, "x-api-key") ? "invalid API key" : "missing x-api-key header");
    return found->fn(s, req, resp);
}
