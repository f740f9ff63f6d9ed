/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The REST API of the key broker (attestation.md §4.3; docs/kbs.md): the transfer endpoint
 * (passport mode) and the admin API for keys and key-transfer policies behind a bearer token.
 * Routes are a table; paths with an id are matched as prefix + UUID (+ suffix).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "moat-config.h"
#include "server.h"

static void reply_json(struct net_http_response* resp, int status, json_t* body) {
    char* text     = body ? json_dumps(body, JSON_COMPACT) : NULL;
    resp->status   = text ? status : 500;
    resp->body     = (uint8_t*)text;
    resp->body_len = text ? strlen(text) : 0;
    json_decref(body);
}

static int reply_error(struct kbs_server* s, struct net_http_response* resp, int status,
                       const char* fmt, ...) PRINTF_FMT(4, 5);
static int reply_error(struct kbs_server* s, struct net_http_response* resp, int status,
                       const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char* msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    s->refusals++;
    slog("info", "refused (%d): %s", status, msg ? msg : "");
    reply_json(resp, status, json_pack("{s:s, s:i}", "error", msg ? msg : "", "status", status));
    free(msg);
    return 0;
}

/* Whether an Accept value names application/json (or a wildcard covering it). */
static bool accepts_json(const char* accept) {
    for (const char* p = accept; p && *p;) {
        p += strspn(p, " \t,");
        size_t l = strcspn(p, ",;");
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        if ((l == 16 && strncasecmp(p, "application/json", 16) == 0) ||
            (l == 3 && strncmp(p, "*/*", 3) == 0) ||
            (l == 13 && strncasecmp(p, "application/*", 13) == 0))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

static bool is_json_type(const char* ct) {
    return ct && strncasecmp(ct, "application/json", 16) == 0 &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* The bearer token of the admin API, compared in constant time over hashes. */
static bool admin_ok(const struct kbs_server* s, const struct net_http_request* req) {
    const char* h = net_http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    uint8_t a[32], b[32];
    bool ok = sha256_buf(h + 7, strlen(h + 7), a) == 0 &&
              sha256_buf(s->cfg.admin_token, strlen(s->cfg.admin_token), b) == 0 &&
              CRYPTO_memcmp(a, b, sizeof(a)) == 0;
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Transfer (§4.3 passport mode)                                                                */

/* Verifies the token against the token service's JWKS: the key its kid names, that key's
 * algorithm only, exp/nbf. 0 or an HTTP status with `err`. */
static int verify_token(struct kbs_server* s, const char* token, struct amber_jwt* ret,
                        struct moat_error* err) {
    json_t* header = NULL; /* the claims are decoded once, by amber_jwt_verify */
    if (amber_jwt_decode_header(token, &header, err) < 0)
        return 401;
    const char* kid               = json_string_value(json_object_get(header, "kid"));
    _cleanup_free_ char* kid_copy = kid ? xstrdup(kid) : NULL;
    json_decref(header);
    if (!kid_copy) {
        moat_error_set(err, -EINVAL, "the token's header has no 'kid'");
        return 401;
    }
    EVP_PKEY* key          = NULL;
    enum amber_jwt_alg alg = AMBER_JWT_PS384;
    if (kbs_jwks_find(&s->jwks, kid_copy, &key, &alg, err) < 0)
        return 401;
    int r = amber_jwt_verify(token, alg, key, time(NULL), 0, ret, err);
    EVP_PKEY_free(key);
    return r < 0 ? 401 : 0;
}

/* Verifies `token`, matches the policy, wraps the key for the token's held key (§4.3). */
static int release(struct kbs_server* s, const struct kbs_stored_key* k, const char* token,
                   struct net_http_response* resp) {
    struct moat_error err = {0};
    struct amber_jwt jwt  = {0};
    int status            = verify_token(s, token, &jwt, &err);
    if (status)
        return reply_error(s, resp, status, "invalid attestation token: %s", err.msg);
    const struct kbs_stored_policy* p = kbs_store_policy(&s->store, k->policy_id);
    if (!p) {
        amber_jwt_clear(&jwt);
        return reply_error(s, resp, 500, "the transfer policy %s of key %s is missing",
                           k->policy_id, k->id);
    }
    if (kbs_policy_match(&p->policy, jwt.claims, &err) < 0) {
        amber_jwt_clear(&jwt);
        return reply_error(s, resp, 403, "key %s: %s", k->id, err.msg);
    }
    EVP_PKEY* pub = NULL;
    int r = kbs_held_key(json_string_value(json_object_get(jwt.claims, "attester_held_data")),
                         p->policy.tee, &pub, &err);
    amber_jwt_clear(&jwt);
    if (r < 0)
        return reply_error(s, resp, 400, "%s", err.msg);
    _cleanup_free_ uint8_t *wk = NULL, *ws = NULL;
    uint8_t* secret = NULL;
    size_t wk_len = 0, ws_len = 0, secret_len = 0;
    r = kbs_store_secret(&s->store, k, &secret, &secret_len, &err);
    if (r == 0) {
        r = kbs_wrap(pub, secret, secret_len, &wk, &wk_len, &ws, &ws_len, &err);
        OPENSSL_cleanse(secret, secret_len);
        free(secret);
    }
    EVP_PKEY_free(pub);
    if (r < 0)
        return reply_error(s, resp, 500, "%s", err.msg);
    _cleanup_free_ char* wk64 = base64_encode_alloc(wk, wk_len);
    _cleanup_free_ char* ws64 = base64_encode_alloc(ws, ws_len);
    s->transfers++;
    slog("info", "key %s transferred (policy %s)", k->id, k->policy_id);
    reply_json(resp, 200, json_pack("{s:s, s:s}", "wrapped_key", wk64, "wrapped_swk", ws64));
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Background-check mode (§4.3): the broker gets the nonce and the token itself                 */

static int token_service(struct kbs_server* s, const char* path, const char* body, json_t** ret,
                         long* ret_status, struct moat_error* err) {
    _cleanup_free_ char* url  = xasprintf("%s%s", s->cfg.token_url, path);
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    int r =
        kbs_http(url, s->cfg.token_ca, s->cfg.token_api_key, body, &text, &len, ret_status, err);
    if (r < 0)
        return r;
    *ret = json_loadb(text, len, 0, NULL);
    if (!json_is_object(*ret)) {
        json_decref(*ret);
        *ret = NULL;
        return moat_error_set(err, -EBADMSG, "%s: HTTP %ld, not a JSON object", url, *ret_status);
    }
    return 0;
}

static int bgcheck_nonce(struct kbs_server* s, const struct kbs_stored_policy* p,
                         struct net_http_response* resp) {
    struct moat_error err = {0};
    json_t* nonce         = NULL;
    long status           = 0;
    if (token_service(s, "/appraisal/v1/nonce", NULL, &nonce, &status, &err) < 0)
        return reply_error(s, resp, 502, "the token service: %s", err.msg);
    if (status != 200) {
        json_decref(nonce);
        return reply_error(s, resp, 502, "the token service answered HTTP %ld to a nonce request",
                           status);
    }
    resp->headers[resp->n_headers++] =
        (struct net_http_header){"Attestation-Type", xstrdup(kbs_tee_name(p->policy.tee))};
    reply_json(resp, 200, nonce);
    return 0;
}

static int bgcheck_attest(struct kbs_server* s, const struct net_http_request* req,
                          const struct kbs_stored_key* k, const struct kbs_stored_policy* p,
                          const json_t* body, struct net_http_response* resp) {
    struct moat_error err = {0};
    const char* type      = net_http_header(req, "Attestation-Type");
    if (!type)
        return reply_error(s, resp, 400, "a quote needs the 'Attestation-Type' header");
    if (strcasecmp(type, kbs_tee_name(p->policy.tee)) != 0)
        return reply_error(s, resp, 403,
                           "Attestation-Type %s does not match the key's transfer "
                           "policy (%s)",
                           type, kbs_tee_name(p->policy.tee));
    const json_t *quote = json_object_get(body, "quote"), *nonce = json_object_get(body, "nonce"),
                 *user = json_object_get(body, "user_data"),
                 *log  = json_object_get(body, "event_log");
    if (!json_is_string(quote) || (nonce && !json_is_object(nonce)) ||
        (user && !json_is_string(user)) || (log && !json_is_string(log)))
        return reply_error(s, resp, 400,
                           "expected {\"quote\": b64, \"nonce\": {val, iat, signature}, "
                           "\"user_data\": b64, \"event_log\": b64}");
    /* §4.3: the broker calls /appraisal/v1/attest itself with the policy's policy_ids */
    json_t* ids = json_array();
    for (size_t i = 0; i < p->policy.policy_ids.n; i++)
        json_array_append_new(ids, json_string(p->policy.policy_ids.v[i]));
    json_t* areq = json_pack("{s:O, s:o}", "quote", quote, "policy_ids", ids);
    if (nonce)
        json_object_set(areq, "verifier_nonce", (json_t*)nonce);
    if (user)
        json_object_set(areq, "runtime_data", (json_t*)user);
    if (log)
        json_object_set(areq, "event_log", (json_t*)log);
    _cleanup_free_ char* text = json_dumps(areq, JSON_COMPACT);
    json_decref(areq);
    json_t* answer = NULL;
    long status    = 0;
    if (!text || token_service(s, "/appraisal/v1/attest", text, &answer, &status, &err) < 0)
        return reply_error(s, resp, 502, "the token service: %s", err.msg);
    const char* token = json_string_value(json_object_get(answer, "token"));
    int r;
    if (status != 200 || !token) {
        const char* why = json_string_value(json_object_get(answer, "error"));
        r = reply_error(s, resp, status >= 500 ? 502 : 401, "attestation failed (HTTP %ld): %s",
                        status, why ? why : "no token");
    } else {
        r = release(s, k, token, resp);
    }
    json_decref(answer);
    return r;
}

/* ------------------------------------------------------------------------------------------ */

static int transfer(struct kbs_server* s, const struct net_http_request* req, const char* id,
                    struct net_http_response* resp) {
    if (!accepts_json(net_http_header(req, "Accept")))
        return reply_error(s, resp, 406,
                           "the transfer endpoint answers application/json: "
                           "send 'Accept: application/json'");
    if (req->body_len && !is_json_type(net_http_header(req, "Content-Type")))
        return reply_error(s, resp, 415, "the body must be 'Content-Type: application/json'");
    const struct kbs_stored_key* k = kbs_store_key(&s->store, id);
    if (!k)
        return reply_error(s, resp, 404, "no key %s", id);
    const struct kbs_stored_policy* p = kbs_store_policy(&s->store, k->policy_id);
    if (!p)
        return reply_error(s, resp, 500, "the transfer policy %s of key %s is missing",
                           k->policy_id, k->id);
    if (req->body_len == 0 && !s->cfg.token_url)
        return reply_error(s, resp, 501,
                           "background-check mode (an empty body) needs the broker started with "
                           "--token-url: send {\"attestation_token\": …}");
    if (req->body_len == 0)
        return bgcheck_nonce(s, p, resp);
    json_error_t je;
    json_t* body = json_loadb((const char*)req->body, req->body_len, 0, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        return reply_error(s, resp, 400, "the body is not a JSON object: %s", je.text);
    }
    int r;
    const char* token = json_string_value(json_object_get(body, "attestation_token"));
    if (json_object_get(body, "quote") && s->cfg.token_url)
        r = bgcheck_attest(s, req, k, p, body, resp);
    else if (!token)
        r = reply_error(s, resp, 400, "the body needs \"attestation_token\" (a JWT)");
    else
        r = release(s, k, token, resp);
    json_decref(body);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Admin API                                                                                    */

static json_t* admin_body(struct kbs_server* s, const struct net_http_request* req,
                          struct net_http_response* resp) {
    if (!is_json_type(net_http_header(req, "Content-Type"))) {
        reply_error(s, resp, 415, "the body must be 'Content-Type: application/json'");
        return NULL;
    }
    json_error_t je;
    json_t* body = json_loadb((const char*)req->body, req->body_len, 0, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        reply_error(s, resp, 400, "the body is not a JSON object: %s", je.text);
        return NULL;
    }
    return body;
}

static int policy_create(struct kbs_server* s, const struct net_http_request* req, const char* id,
                         struct net_http_response* resp) {
    (void)id;
    json_t* body = admin_body(s, req, resp);
    if (!body)
        return 0;
    struct moat_error err               = {0};
    struct kbs_policy p                 = {0};
    const struct kbs_stored_policy* out = NULL;
    int r                               = kbs_policy_parse(body, &p, &err);
    json_decref(body);
    if (r < 0)
        return reply_error(s, resp, 400, "invalid key-transfer policy: %s", err.msg);
    r = kbs_store_add_policy(&s->store, &p, &out, &err);
    kbs_policy_clear(&p);
    if (r < 0)
        return reply_error(s, resp, 500, "%s", err.msg);
    slog("info", "key-transfer policy %s created", out->id);
    reply_json(resp, 201, json_incref(out->json));
    return 0;
}

static int policy_list(struct kbs_server* s, const struct net_http_request* req, const char* id,
                       struct net_http_response* resp) {
    (void)req;
    if (id) {
        const struct kbs_stored_policy* p = kbs_store_policy(&s->store, id);
        if (!p)
            return reply_error(s, resp, 404, "no key-transfer policy %s", id);
        reply_json(resp, 200, json_incref(p->json));
        return 0;
    }
    json_t* a = json_array();
    for (size_t i = 0; i < s->store.n_policies; i++)
        json_array_append(a, s->store.policies[i].json);
    reply_json(resp, 200, a);
    return 0;
}

static int key_create(struct kbs_server* s, const struct net_http_request* req, const char* id,
                      struct net_http_response* resp) {
    (void)id;
    json_t* body = admin_body(s, req, resp);
    if (!body)
        return 0;
    const char *alg = NULL, *pid = NULL, *data = NULL;
    int bits                       = 0;
    json_error_t je                = {0};
    _cleanup_free_ uint8_t* raw    = NULL;
    size_t raw_len                 = 0;
    const struct kbs_stored_key* k = NULL;
    struct moat_error err          = {0};
    int r =
        json_unpack_ex(body, &je, JSON_STRICT, "{s:{s:s, s:i, s?:s}, s:s}", "key_info", "algorithm",
                       &alg, "key_length", &bits, "key_data", &data, "transfer_policy_id", &pid);
    if (r < 0)
        r = reply_error(s, resp, 400,
                        "expected {\"key_info\": {\"algorithm\": \"AES\", \"key_length\": 256"
                        "[, \"key_data\": b64]}, \"transfer_policy_id\": uuid}: %s",
                        je.text);
    else if (strcmp(alg, "AES") != 0 || (bits != 128 && bits != 192 && bits != 256))
        r = reply_error(s, resp, 400,
                        "unsupported key %s-%d: this KBS holds AES keys of 128, 192 or 256 bits",
                        alg, bits);
    else if (!kbs_store_policy(&s->store, pid))
        r = reply_error(s, resp, 400, "no key-transfer policy %s", pid);
    else if (data && (base64_decode_alloc(data, strlen(data), &raw, &raw_len) < 0 ||
                      raw_len != (size_t)bits / 8))
        r = reply_error(s, resp, 400, "'key_data' must be base64 of %d bytes", bits / 8);
    else if (kbs_store_add_key(&s->store, pid, (unsigned)bits, raw, &k, &err) < 0)
        r = reply_error(s, resp, 500, "%s", err.msg);
    else {
        slog("info", "key %s created (AES-%d, policy %s)", k->id, bits, pid);
        reply_json(resp, 201, kbs_stored_key_json(k));
    }
    if (raw)
        OPENSSL_cleanse(raw, raw_len);
    json_decref(body); /* after: alg, pid point into it */
    return r;
}

static int key_list(struct kbs_server* s, const struct net_http_request* req, const char* id,
                    struct net_http_response* resp) {
    (void)req;
    if (id) {
        const struct kbs_stored_key* k = kbs_store_key(&s->store, id);
        if (!k)
            return reply_error(s, resp, 404, "no key %s", id);
        reply_json(resp, 200, kbs_stored_key_json(k));
        return 0;
    }
    json_t* a = json_array();
    for (size_t i = 0; i < s->store.n_keys; i++)
        json_array_append_new(a, kbs_stored_key_json(&s->store.keys[i]));
    reply_json(resp, 200, a);
    return 0;
}

static int version(struct kbs_server* s, const struct net_http_request* req, const char* id,
                   struct net_http_response* resp) {
    (void)s, (void)req, (void)id;
    reply_json(resp, 200, json_pack("{s:s, s:s}", "name", "moat-kbs", "version", MOAT_VERSION));
    return 0;
}

static int transfer_route(struct kbs_server* s, const struct net_http_request* req, const char* id,
                          struct net_http_response* resp) {
    return transfer(s, req, id, resp);
}

/* ------------------------------------------------------------------------------------------ */
/* Routing                                                                                      */

enum id_use { ID_NONE, ID_REQUIRED, ID_OPTIONAL };

struct route {
    const char* method;
    const char* prefix; /* followed by /<uuid> when the route takes an id */
    const char* suffix; /* after the id ("/transfer"), "" for none */
    enum id_use id;
    bool admin;
    int (*fn)(struct kbs_server*, const struct net_http_request*, const char* id,
              struct net_http_response*);
};

static const struct route g_routes[] = {
    {"POST", "/kbs/v1/keys", "/transfer", ID_REQUIRED, false, transfer_route},
    {"POST", "/kbs/v1/keys", "", ID_NONE, true, key_create},
    {"GET", "/kbs/v1/keys", "", ID_OPTIONAL, true, key_list},
    {"POST", "/kbs/v1/key-transfer-policies", "", ID_NONE, true, policy_create},
    {"GET", "/kbs/v1/key-transfer-policies", "", ID_OPTIONAL, true, policy_list},
    {"GET", "/kbs/v1/version", "", ID_NONE, false, version},
};

/* Whether `path` is the route's; the id (any text up to the suffix, checked by the caller)
 * goes to `id`. */
static bool route_matches(const struct route* r, const char* path, char* id, size_t id_size) {
    size_t pl = strlen(r->prefix);
    if (strncmp(path, r->prefix, pl) != 0)
        return false;
    const char* rest = path + pl;
    id[0]            = '\0';
    if (*rest == '\0')
        return r->id != ID_REQUIRED && *r->suffix == '\0';
    if (r->id == ID_NONE || *rest != '/')
        return false;
    rest++;
    size_t sl = strlen(r->suffix), rl = strlen(rest);
    if (rl <= sl || strcmp(rest + rl - sl, r->suffix) != 0 || memchr(rest, '/', rl - sl))
        return false;
    snprintf(id, id_size, "%.*s", (int)(rl - sl < id_size ? rl - sl : id_size - 1), rest);
    return rl - sl < id_size;
}

int kbs_api_handle(const struct net_http_request* req, struct net_http_response* resp, void* ctx) {
    struct kbs_server* s      = ctx;
    const struct route* found = NULL;
    bool path_known           = false;
    char id[64]               = "";
    for (size_t i = 0; i < ARRAY_SIZE(g_routes) && !found; i++) {
        if (!route_matches(&g_routes[i], req->path, id, sizeof(id)))
            continue;
        path_known = true;
        if (strcmp(g_routes[i].method, req->method) == 0)
            found = &g_routes[i];
    }
    if (!found && path_known)
        return reply_error(s, resp, 405, "method %s not allowed on %s", req->method, req->path);
    if (!found)
        return reply_error(s, resp, 404, "no such endpoint: %s", req->path);
    if (found->admin && !admin_ok(s, req))
        return reply_error(s, resp, 401,
                           "the admin API needs 'Authorization: Bearer <admin token>'");
    uint8_t u[16];
    char canon[MOAT_UUID_STR_SIZE];
    if (id[0]) {
        if (moat_uuid_parse(id, u, NULL) < 0)
            return reply_error(s, resp, 404, "no such id: %s is not a UUID", id);
        moat_uuid_format(u, canon);
    }
    return found->fn(s, req, id[0] ? canon : NULL, resp);
}
