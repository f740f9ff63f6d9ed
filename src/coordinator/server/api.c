/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client REST API (reference/marblerun.md §3.5): v2 under /api/v2 and the deprecated v1
 * without a prefix, over HTTPS with the Coordinator's root certificate; a client certificate is
 * requested but optional (users authenticate with it, Marbles too for /monotonic-counter).
 *
 * Envelopes are JSend as MarbleRun writes them: success 200 application/json
 * {"status":"success","data":…}; errors as Go's http.Error writes them, text/plain
 * {"status":"error","data":null,"message":"…"} and a newline; an unknown path or method is 405
 * (the marblerun CLI falls back from v2 to v1 on it).
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "server.h"

enum api_version { V1, V2 };

/* ---------------------------------------------------------------------------------------- */
/* Envelopes                                                                                  */

/* Serialises `o` (stolen) into resp; the text is wiped when freed (it may hold secrets). */
static int send_json(struct net_http_response* resp, int status, const char* content_type,
                     json_t* o, bool newline) {
    char* text = o ? json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(o);
    if (!text)
        return -ENOMEM;
    size_t len = strlen(text);
    if (newline) {
        char* t = xmalloc(len + 2);
        memcpy(t, text, len);
        t[len++] = '\n';
        t[len]   = '\0';
        OPENSSL_cleanse(text, len - 1);
        free(text);
        text = t;
    }
    resp->status       = status;
    resp->content_type = content_type;
    resp->body         = (uint8_t*)text;
    resp->body_len     = len;
    return 0;
}

static int reply_success(struct net_http_response* resp, json_t* data) {
    /* Go's json.Encoder: a newline after the object */
    return send_json(
        resp, 200, "application/json",
        json_pack("{s:s, s:o}", "status", "success", "data", data ? data : json_null()), true);
}

/* JSend "error" through Go's http.Error: text/plain, a newline; no "message" when empty. */
static int reply_error(struct net_http_response* resp, int status, const char* msg) {
    slog("debug", "client API: %d %s", status, msg);
    json_t* o = json_pack("{s:s, s:n}", "status", "error", "data");
    if (msg && *msg)
        json_object_set_new(o, "message", json_string(msg));
    return send_json(resp, status, "text/plain; charset=utf-8", o, true);
}

/* JSend "fail" (v2: a bad request or a failed authentication): application/json. */
static int reply_fail(struct net_http_response* resp, int status, json_t* data, const char* msg) {
    slog("debug", "client API: %d %s", status, msg);
    return send_json(resp, status, "application/json",
                     json_pack("{s:s, s:o, s:s}", "status", "fail", "data",
                               data ? data : json_null(), "message", msg),
                     true);
}

/* The request is malformed: v2 answers "fail", v1 "error", both 400. */
static int reply_bad_request(struct net_http_response* resp, enum api_version v, const char* msg) {
    return v == V2 ? reply_fail(resp, 400, NULL, msg) : reply_error(resp, 400, msg);
}

/* A core error: v2 answers 500, v1 400 (MarbleRun's handlers). */
static int reply_core_error(struct net_http_response* resp, enum api_version v,
                            const struct moat_error* err) {
    return reply_error(resp, v == V2 ? 500 : 400, err->msg[0] ? err->msg : "internal error");
}

static json_t* b64_json(const uint8_t* p, size_t len) {
    if (!p)
        return json_null();
    char* b   = base64_encode_alloc(p, len);
    json_t* s = json_string(b);
    OPENSSL_cleanse(b, strlen(b));
    free(b);
    return s;
}

static json_t* strv_json(char** v, size_t n) {
    json_t* a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* Go encodes a nil []string as null. */
static json_t* users_json(char** v, size_t n) {
    return n ? strv_json(v, n) : json_null();
}

/* RecoverySecrets: name → base64, or null when there are none. */
static json_t* recovery_json(const struct coord_recovery_secrets* rs) {
    if (!rs->n)
        return json_null();
    json_t* o = json_object();
    for (size_t i = 0; i < rs->n; i++)
        json_object_set_new(o, rs->names[i], json_string(rs->secrets_b64[i]));
    return o;
}

/* ---------------------------------------------------------------------------------------- */
/* Requests                                                                                   */

/* Decodes standard or URL-safe base64, padded or not. */
static int b64_any_decode(const char* in, size_t len, uint8_t** ret, size_t* ret_len) {
    _cleanup_free_ char* t = xmalloc(len + 4);
    size_t n               = 0;
    for (size_t i = 0; i < len; i++)
        t[n++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    while (n % 4)
        t[n++] = '=';
    t[n]  = '\0';
    int r = base64_decode_alloc(t, n, ret, ret_len);
    OPENSSL_cleanse(t, n);
    return r;
}

/* The JSON body as an object, or a 400 answered. */
static json_t* body_object(enum api_version v, const struct net_http_request* req,
                           struct net_http_response* resp) {
    json_error_t je;
    json_t* o = json_loadb((const char*)req->body, req->body_len, JSON_DECODE_ANY, &je);
    if (!o || !json_is_object(o)) {
        char msg[256];
        if (o)
            snprintf(msg, sizeof(msg), "json: cannot unmarshal the request body: not an object");
        else if (req->body_len == 0)
            snprintf(msg, sizeof(msg), "EOF");
        else
            snprintf(msg, sizeof(msg), "invalid request body: %s (line %d, column %d)", je.text,
                     je.line, je.column);
        reply_bad_request(resp, v, msg);
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A base64 field of a JSON object (Go: []byte). Missing or null gives len 0, *ret NULL. */
static int b64_field(enum api_version v, json_t* o, const char* key, uint8_t** ret, size_t* ret_len,
                     struct net_http_response* resp) {
    *ret      = NULL;
    *ret_len  = 0;
    json_t* f = NULL;
    const char* k;
    json_t* val;
    json_object_foreach(o, k, val) {
        if (strcasecmp(k, key) == 0) /* encoding/json: field names match case-insensitively */
            f = val;
    }
    if (!f || json_is_null(f))
        return 0;
    if (!json_is_string(f) ||
        base64_decode_alloc(json_string_value(f), json_string_length(f), ret, ret_len) < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "json: cannot unmarshal field \"%s\": illegal base64 data", key);
        reply_bad_request(resp, v, msg);
        return -EINVAL;
    }
    return 0;
}

static json_t* field(json_t* o, const char* key) {
    const char* k;
    json_t* val;
    json_t* found = NULL;
    json_object_foreach(o, k, val) {
        if (strcasecmp(k, key) == 0)
            found = val;
    }
    return found;
}

/* Every value of `name` in a query string ("s=a&s=b"), percent-decoded. */
static char** query_values(const char* query, const char* name, size_t* ret_n) {
    size_t cap = 4, n = 0;
    char** v  = xcalloc(cap, sizeof(char*));
    size_t nl = strlen(name);
    for (const char* p = query; p && *p;) {
        const char* end = p + strcspn(p, "&");
        if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            const char* val = p + nl + 1;
            char* out       = xmalloc((size_t)(end - val) + 1);
            size_t o        = 0;
            for (const char* q = val; q < end; q++) {
                int hi, lo;
                if (*q == '%' && end - q > 2 && (hi = hex_digit_value(q[1])) >= 0 &&
                    (lo = hex_digit_value(q[2])) >= 0) {
                    out[o++] = (char)(hi << 4 | lo);
                    q += 2;
                } else {
                    out[o++] = *q == '+' ? ' ' : *q;
                }
            }
            out[o] = '\0';
            if (n + 1 >= cap)
                v = xrealloc(v, (cap *= 2) * sizeof(char*));
            v[n++] = out;
            v[n]   = NULL;
        }
        p = *end ? end + 1 : end;
    }
    *ret_n = n;
    return v;
}

static void strv_free_n(char** v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The authenticated user, or a 401 answered (v2 "fail", v1 "error"). */
static char* auth_user(struct server* s, enum api_version v, const struct net_http_request* req,
                       struct net_http_response* resp) {
    char* user            = NULL;
    struct moat_error err = {0};
    int r = coord_core_auth_user(s->core, req->peer_cert_der, req->peer_cert_len, &user, &err);
    if (r < 0) {
        if (v == V2)
            reply_fail(resp, 401, NULL, err.msg);
        else
            reply_error(resp, 401, err.msg);
        return NULL;
    }
    return user;
}

/* ---------------------------------------------------------------------------------------- */
/* Handlers                                                                                   */

struct route {
    const char* method;
    const char* path; /* after /api/v2 for v2 */
    int (*fn)(struct server* s, enum api_version v, const struct net_http_request* req,
              struct net_http_response* resp);
    bool v1, v2;
};

static int h_status(struct server* s, enum api_version v, const struct net_http_request* req,
                    struct net_http_response* resp) {
    (void)req;
    enum coord_state st = coord_core_state(s->core);
    const char* msg     = coord_state_message(st);
    if (v == V2)
        return reply_success(resp, json_pack("{s:i, s:s}", "code", (int)st, "message", msg));
    return reply_success(resp,
                         json_pack("{s:i, s:s}", "StatusCode", (int)st, "StatusMessage", msg));
}

static int h_quote(struct server* s, enum api_version v, const struct net_http_request* req,
                   struct net_http_response* resp) {
    struct moat_error err         = {0};
    size_t n_nonce                = 0;
    char** nonces                 = query_values(req->query, "nonce", &n_nonce);
    _cleanup_free_ uint8_t* nonce = NULL;
    size_t nonce_len              = 0;
    if (n_nonce && b64_any_decode(nonces[0], strlen(nonces[0]), &nonce, &nonce_len) < 0) {
        strv_free_n(nonces, n_nonce);
        return reply_bad_request(resp, v, "invalid query: bad nonce format: illegal base64 data");
    }
    strv_free_n(nonces, n_nonce);
    _cleanup_free_ char* chain = NULL;
    size_t chain_len           = 0;
    if (coord_core_cert_chain_pem(s->core, &chain, &chain_len) < 0)
        return reply_error(resp, 500, "cannot encode the certificate chain");
    uint8_t* q       = NULL;
    size_t qlen      = 0;
    const uint8_t* n = n_nonce ? (nonce ? nonce : (const uint8_t*)"") : NULL;
    if (server_quote(s, n, nonce_len, &q, &qlen, &err) < 0) {
        _cleanup_free_ char* msg = xasprintf("failed to get quote: %s", err.msg);
        return reply_error(resp, 500, msg);
    }
    char* qb = base64_encode_alloc(q ? q : (const uint8_t*)"", qlen);
    free(q);
    json_t* data =
        json_pack("{s:s, s:s}", v == V2 ? "cert" : "Cert", chain, v == V2 ? "quote" : "Quote", qb);
    free(qb);
    return reply_success(resp, data);
}

static int h_get_manifest(struct server* s, enum api_version v, const struct net_http_request* req,
                          struct net_http_response* resp) {
    (void)req;
    struct coord_manifest_info mi = {0};
    if (coord_core_manifest_info(s->core, &mi) < 0)
        return reply_error(resp, 500, "cannot read the manifest");
    json_t* data;
    if (v == V2)
        data = json_pack("{s:o, s:s, s:o}", "manifestSignatureRootECDSA",
                         b64_json(mi.signature, mi.signature_len), "manifestFingerprint",
                         mi.raw ? mi.fingerprint : "", "manifest", b64_json(mi.raw, mi.raw_len));
    else
        data = json_pack("{s:o, s:s, s:o}", "ManifestSignatureRootECDSA",
                         b64_json(mi.signature, mi.signature_len), "ManifestSignature",
                         mi.raw ? mi.fingerprint : "", "Manifest", b64_json(mi.raw, mi.raw_len));
    coord_manifest_info_clear(&mi);
    return reply_success(resp, data);
}

/* v2 requests carry {"manifest": base64}; v1 requests the raw manifest. */
static int manifest_body(enum api_version v, const struct net_http_request* req,
                         struct net_http_response* resp, uint8_t** ret, size_t* ret_len) {
    if (v == V1) {
        *ret     = xmemdup(req->body, req->body_len);
        *ret_len = req->body_len;
        return 0;
    }
    json_t* o = body_object(v, req, resp);
    if (!o)
        return -EINVAL;
    int r = b64_field(v, o, "manifest", ret, ret_len, resp);
    json_decref(o);
    return r;
}

static int h_set_manifest(struct server* s, enum api_version v, const struct net_http_request* req,
                          struct net_http_response* resp) {
    _cleanup_free_ uint8_t* raw = NULL;
    size_t len                  = 0;
    if (manifest_body(v, req, resp, &raw, &len) < 0)
        return 0;
    struct coord_recovery_secrets rs = {0};
    struct moat_error err            = {0};
    int r = coord_core_set_manifest(s->core, raw ? raw : (const uint8_t*)"", len, &rs, &err);
    if (r < 0) {
        slog("info", "POST manifest refused: %s", err.msg);
        return reply_core_error(resp, v, &err);
    }
    slog("info", "manifest set (%zu bytes)%s", len, rs.n ? ", recovery secrets returned" : "");
    server_refresh_credentials(s);
    /* v2 always answers {"RecoverySecrets": map or null}; v1 data null without secrets */
    json_t* data =
        rs.n || v == V2 ? json_pack("{s:o}", "RecoverySecrets", recovery_json(&rs)) : NULL;
    coord_recovery_secrets_clear(&rs);
    return reply_success(resp, data);
}

static int h_get_update(struct server* s, enum api_version v, const struct net_http_request* req,
                        struct net_http_response* resp) {
    (void)req;
    char** lines          = NULL;
    size_t n              = 0;
    struct moat_error err = {0};
    if (coord_core_update_log(s->core, &lines, &n, &err) < 0)
        return reply_core_error(resp, v, &err);
    json_t* data;
    if (v == V2) {
        data = json_pack("{s:o}", "updateLog", strv_json(lines, n));
    } else {
        size_t total = 2;
        for (size_t i = 0; i < n; i++)
            total += strlen(lines[i]) + 1;
        char* joined = xmalloc(total);
        size_t o     = 0;
        for (size_t i = 0; i < n; i++) {
            size_t l = strlen(lines[i]);
            memcpy(joined + o, lines[i], l);
            o += l;
            joined[o++] = '\n';
        }
        if (n == 0)
            joined[o++] = '\n'; /* strings.Join(nothing, "\n") + "\n" */
        joined[o] = '\0';
        data      = json_string(joined);
        free(joined);
    }
    strv_free_n(lines, n);
    return reply_success(resp, data);
}

static json_t* update_result_json(const struct coord_update_result* ur, bool with_message) {
    json_t* o = json_object();
    if (with_message)
        json_object_set_new(o, "message", json_string(ur->message ? ur->message : ""));
    json_object_set_new(o, "missingUsers", users_json(ur->missing_users, ur->n_missing_users));
    json_object_set_new(o, "missingAcknowledgments", json_integer((json_int_t)ur->missing_acks));
    if (ur->recovery.n)
        json_object_set_new(o, "recoverySecrets", recovery_json(&ur->recovery));
    return o;
}

/* POST /update and /update-manifest: the authenticated user and the manifest of the body, or
 * -1 with the reply made. */
static int user_and_manifest(struct server* s, enum api_version v,
                             const struct net_http_request* req, struct net_http_response* resp,
                             char** ret_user, uint8_t** ret_raw, size_t* ret_len) {
    *ret_user = auth_user(s, v, req, resp);
    if (!*ret_user)
        return -1;
    if (manifest_body(v, req, resp, ret_raw, ret_len) < 0) {
        free(*ret_user);
        *ret_user = NULL;
        return -1;
    }
    return 0;
}

static int h_post_update(struct server* s, enum api_version v, const struct net_http_request* req,
                         struct net_http_response* resp) {
    _cleanup_free_ char* user   = NULL;
    _cleanup_free_ uint8_t* raw = NULL;
    size_t len                  = 0;
    if (user_and_manifest(s, v, req, resp, &user, &raw, &len) < 0)
        return 0;
    struct coord_update_result ur = {0};
    struct moat_error err         = {0};
    if (coord_core_update_manifest(s->core, user, raw ? raw : (const uint8_t*)"", len, &ur, &err) <
        0) {
        slog("info", "update by %s refused: %s", user, err.msg);
        return reply_core_error(resp, v, &err);
    }
    slog("info", "update by %s: %s", user, ur.applied ? "applied" : "pending acknowledgements");
    if (ur.applied)
        server_refresh_credentials(s);
    json_t* data = v == V2 ? update_result_json(&ur, false) : NULL;
    coord_update_result_clear(&ur);
    return reply_success(resp, data);
}

static int h_get_update_manifest(struct server* s, enum api_version v,
                                 const struct net_http_request* req,
                                 struct net_http_response* resp) {
    (void)req;
    _cleanup_free_ uint8_t* raw   = NULL;
    size_t len                    = 0;
    struct coord_update_result ur = {0};
    struct moat_error err         = {0};
    int r                         = coord_core_pending_update(s->core, &raw, &len, &ur, &err);
    if (r == -ENOENT) /* §1.8: 404 "no update in progress" */
        return reply_error(resp, 404, err.msg);
    if (r < 0)
        return reply_core_error(resp, v, &err);
    json_t* data = json_pack("{s:o, s:s, s:o}", "manifest", b64_json(raw, len), "message",
                             ur.message ? ur.message : "", "missingUsers",
                             users_json(ur.missing_users, ur.n_missing_users));
    coord_update_result_clear(&ur);
    return reply_success(resp, data);
}

static int h_ack_update(struct server* s, enum api_version v, const struct net_http_request* req,
                        struct net_http_response* resp) {
    _cleanup_free_ char* user   = NULL;
    _cleanup_free_ uint8_t* raw = NULL;
    size_t len                  = 0;
    if (user_and_manifest(s, v, req, resp, &user, &raw, &len) < 0)
        return 0;
    struct coord_update_result ur = {0};
    struct moat_error err         = {0};
    int r = coord_core_ack_update(s->core, user, raw ? raw : (const uint8_t*)"", len, &ur, &err);
    if (r < 0)
        return r == -ENOENT ? reply_error(resp, 404, err.msg) : reply_core_error(resp, v, &err);
    slog("info", "update acknowledged by %s%s", user, ur.applied ? ": applied" : "");
    if (ur.applied)
        server_refresh_credentials(s);
    json_t* data = update_result_json(&ur, true);
    coord_update_result_clear(&ur);
    return reply_success(resp, data);
}

static int h_cancel_update(struct server* s, enum api_version v, const struct net_http_request* req,
                           struct net_http_response* resp) {
    _cleanup_free_ char* user = auth_user(s, v, req, resp);
    if (!user)
        return 0;
    struct moat_error err = {0};
    int r                 = coord_core_cancel_update(s->core, user, &err);
    if (r < 0)
        return r == -ENOENT ? reply_error(resp, 404, err.msg) : reply_core_error(resp, v, &err);
    slog("info", "update cancelled by %s", user);
    return reply_success(resp, json_pack("{s:s}", "message", "Update successfully cancelled"));
}

static int h_get_secrets(struct server* s, enum api_version v, const struct net_http_request* req,
                         struct net_http_response* resp) {
    _cleanup_free_ char* user = auth_user(s, v, req, resp);
    if (!user)
        return 0;
    size_t n     = 0;
    char** names = query_values(req->query, "s", &n);
    bool empty   = false;
    for (size_t i = 0; i < n; i++)
        empty |= names[i][0] == '\0';
    if (n == 0 || empty) {
        strv_free_n(names, n);
        if (v == V1)
            return reply_error(resp, 400, n == 0 ? "invalid query" : "malformed query string");
        return reply_fail(resp, 400, NULL,
                          n == 0 ? "invalid query: endpoint requires at least one query parameter"
                                 : "malformed query string: empty query parameter");
    }
    json_t* secrets       = NULL;
    struct moat_error err = {0};
    int r = coord_core_get_secrets(s->core, user, (const char* const*)names, n, &secrets, &err);
    strv_free_n(names, n);
    if (r < 0)
        return reply_core_error(resp, v, &err);
    slog("info", "secrets read by %s", user);
    return reply_success(resp, v == V2 ? json_pack("{s:o}", "secrets", secrets) : secrets);
}

static int h_post_secrets(struct server* s, enum api_version v, const struct net_http_request* req,
                          struct net_http_response* resp) {
    _cleanup_free_ char* user = auth_user(s, v, req, resp);
    if (!user)
        return 0;
    const void* body = req->body;
    size_t len       = req->body_len;
    char* text       = NULL;
    if (v == V2) {
        json_t* o = body_object(v, req, resp);
        if (!o)
            return 0;
        json_t* secrets = field(o, "secrets");
        text = secrets ? json_dumps(secrets, JSON_COMPACT | JSON_ENCODE_ANY) : xstrdup("null");
        json_decref(o);
        body = text;
        len  = strlen(text);
    }
    struct moat_error err = {0};
    int r                 = coord_core_write_secrets(s->core, user, body, len, &err);
    if (text) {
        OPENSSL_cleanse(text, len);
        free(text);
    }
    if (r < 0)
        return reply_core_error(resp, v, &err);
    slog("info", "secrets written by %s", user);
    return reply_success(resp, NULL);
}

static int h_recover_v1(struct server* s, enum api_version v, const struct net_http_request* req,
                        struct net_http_response* resp) {
    (void)s;
    (void)v;
    (void)req;
    return reply_error(resp, 410,
                       "Recovering the Coordinator using the /recover API endpoint has been "
                       "disabled. Use the /api/v2/recover endpoint instead.");
}

static int h_recover(struct server* s, enum api_version v, const struct net_http_request* req,
                     struct net_http_response* resp) {
    json_t* o = body_object(v, req, resp);
    if (!o)
        return 0;
    uint8_t *secret = NULL, *sig = NULL;
    size_t secret_len = 0, sig_len = 0;
    int r = b64_field(v, o, "recoverySecret", &secret, &secret_len, resp);
    if (r == 0)
        r = b64_field(v, o, "recoverySecretSignature", &sig, &sig_len, resp);
    json_decref(o);
    if (r < 0) {
        free(secret);
        free(sig);
        return 0;
    }
    size_t remaining      = 0;
    char* message         = NULL;
    struct moat_error err = {0};
    r = coord_core_recover(s->core, secret ? secret : (const uint8_t*)"", secret_len,
                           sig ? sig : (const uint8_t*)"", sig_len, &remaining, &message, &err);
    if (secret)
        OPENSSL_cleanse(secret, secret_len);
    free(secret);
    free(sig);
    if (r < 0) {
        slog("warning", "recovery attempt refused: %s", err.msg);
        return reply_core_error(resp, v, &err);
    }
    slog("info", "recovery: %s", message);
    if (remaining == 0)
        server_refresh_credentials(s);
    json_t* data = json_pack("{s:I, s:s}", "remaining", (json_int_t)remaining, "message", message);
    free(message);
    return reply_success(resp, data);
}

static int h_recover_key(struct server* s, enum api_version v, const struct net_http_request* req,
                         struct net_http_response* resp) {
    (void)req;
    uint8_t* der          = NULL;
    size_t len            = 0;
    struct moat_error err = {0};
    if (coord_core_recovery_public_key(s->core, &der, &len, &err) < 0)
        return reply_core_error(resp, v, &err);
    json_t* data =
        json_pack("{s:s, s:o}", "algorithm", "RSA", "ephemeralPublicKey", b64_json(der, len));
    OPENSSL_free(der);
    return reply_success(resp, data);
}

static int h_sign_quote(struct server* s, enum api_version v, const struct net_http_request* req,
                        struct net_http_response* resp) {
    if (!coord_core_feature_gate(s->core, "SignQuoteEndpoint"))
        return reply_error(resp, 403, "SignQuoteEndpoint feature is not enabled in the manifest");
    json_error_t je;
    json_t* o = json_loadb((const char*)req->body, req->body_len, JSON_DECODE_ANY, &je);
    json_t* q = o && json_is_object(o) ? field(o, "sgxQuote") : NULL;
    _cleanup_free_ uint8_t* quote = NULL;
    size_t qlen                   = 0;
    if (!o || !json_is_object(o) || (q && !json_is_null(q) && !json_is_string(q)) ||
        (q && json_is_string(q) &&
         base64_decode_alloc(json_string_value(q), json_string_length(q), &quote, &qlen) < 0)) {
        json_decref(o);
        return reply_fail(resp, 400, json_pack("{s:s}", "sgxQuote", "failed to parse JSON data"),
                          "bad request: the body must be {\"sgxQuote\": base64}");
    }
    json_decref(o);
    char* tcb             = NULL;
    uint8_t* sig          = NULL;
    size_t sig_len        = 0;
    struct moat_error err = {0};
    int r = coord_core_sign_quote(s->core, quote ? quote : (const uint8_t*)"", qlen, &tcb, &sig,
                                  &sig_len, &err);
    if (r == -EOPNOTSUPP)
        return reply_error(resp, 403, err.msg);
    if (r == -EINVAL) { /* clientapi.QuoteVerifyError */
        static const char prefix[] = "quote verification failed: ";
        const char* why            = strncmp(err.msg, prefix, sizeof(prefix) - 1) == 0
                                         ? err.msg + sizeof(prefix) - 1
                                         : err.msg;
        return reply_fail(resp, 400, json_pack("{s:s}", "sgxQuote", why),
                          "quote verification failed");
    }
    if (r < 0)
        return reply_core_error(resp, v, &err);
    json_t* data =
        json_pack("{s:s, s:o}", "tcbStatus", tcb, "verificationSignature", b64_json(sig, sig_len));
    free(tcb);
    free(sig);
    return reply_success(resp, data);
}

static int h_monotonic_counter(struct server* s, enum api_version v,
                               const struct net_http_request* req, struct net_http_response* resp) {
    if (!coord_core_feature_gate(s->core, "MonotonicCounter"))
        return reply_error(resp, 403, "MonotonicCounter feature is not enabled in the manifest");
    _cleanup_free_ char *type = NULL, *uuid = NULL;
    struct moat_error err = {0};
    int r =
        coord_core_auth_marble(s->core, req->peer_cert_der, req->peer_cert_len, &type, &uuid, &err);
    if (r < 0)
        return reply_fail(resp, 401, NULL, err.msg);
    json_t* o = body_object(v, req, resp);
    if (!o)
        return 0;
    json_t* name  = field(o, "name");
    json_t* value = field(o, "value");
    if (!json_is_string(name) || (value && !json_is_integer(value)) ||
        (value && json_integer_value(value) < 0)) {
        json_decref(o);
        return reply_fail(resp, 400, NULL,
                          "json: cannot unmarshal the request: want {\"name\": string, "
                          "\"value\": uint64}");
    }
    uint64_t prev = 0;
    r             = coord_core_set_monotonic_counter(s->core, type, uuid, json_string_value(name),
                                         value ? (uint64_t)json_integer_value(value) : 0, &prev,
                                                     &err);
    json_decref(o);
    if (r == -EOPNOTSUPP)
        return reply_error(resp, 403, err.msg);
    if (r < 0)
        return reply_core_error(resp, v, &err);
    return reply_success(resp, json_pack("{s:I}", "value", (json_int_t)prev));
}

static const struct route g_routes[] = {
    {"GET", "/status", h_status, true, true},
    {"GET", "/quote", h_quote, true, true},
    {"GET", "/manifest", h_get_manifest, true, true},
    {"POST", "/manifest", h_set_manifest, true, true},
    {"GET", "/update", h_get_update, true, true},
    {"POST", "/update", h_post_update, true, true},
    {"GET", "/update-manifest", h_get_update_manifest, true, true},
    {"POST", "/update-manifest", h_ack_update, true, true},
    {"POST", "/update-cancel", h_cancel_update, true, true},
    {"GET", "/secrets", h_get_secrets, true, true},
    {"POST", "/secrets", h_post_secrets, true, true},
    {"POST", "/recover", h_recover_v1, true, false},
    {"POST", "/recover", h_recover, false, true},
    {"GET", "/recover/public-key", h_recover_key, false, true},
    {"POST", "/sign-quote", h_sign_quote, false, true},
    {"POST", "/monotonic-counter", h_monotonic_counter, false, true},
};

int api_handle(const struct net_http_request* req, struct net_http_response* resp, void* ctx) {
    struct server* s       = ctx;
    enum api_version v     = V1;
    const char* path       = req->path;
    static const char v2[] = "/api/v2";
    if (strncmp(path, v2, sizeof(v2) - 1) == 0 && (path[sizeof(v2) - 1] == '/')) {
        v = V2;
        path += sizeof(v2) - 1;
    }
    size_t pl = strlen(path);
    while (pl > 1 && path[pl - 1] == '/') /* Go's mux: /status/ is not /status, but be kind */
        pl--;
    for (size_t i = 0; i < ARRAY_SIZE(g_routes); i++) {
        const struct route* rt = &g_routes[i];
        if (!(v == V2 ? rt->v2 : rt->v1) || strlen(rt->path) != pl ||
            strncmp(rt->path, path, pl) != 0 || strcmp(rt->method, req->method) != 0)
            continue;
        slog("debug", "client API: %s %s", req->method, req->path);
        if (v == V1)
            slog("info",
                 "%s %s: the v1 API is deprecated and will be removed; use /api/v2%s instead",
                 req->method, req->path, rt->path);
        return rt->fn(s, v, req, resp);
    }
    slog("debug", "client API: %s %s: 405", req->method, req->path);
    return reply_error(resp, 405, ""); /* MarbleRun's MethodNotAllowedHandler: no message */
}

int api_start(struct server* s, struct moat_error* err) {
    struct net_tls_credentials creds;
    int r = server_credentials(s, false, &creds, s->client_cert_hash);
    if (r < 0)
        return moat_error_set(err, r, "cannot load the client API certificate");
    struct net_http_server_config cfg = {
        .address             = s->cfg.client_addr,
        .tls                 = true,
        .request_client_cert = true,
        .handler             = api_handle,
        .ctx                 = s,
    };
    r = net_http_server_new(s->base, &cfg, &creds, &s->client_api, err);
    server_credentials_clear(&creds);
    if (r < 0)
        return moat_error_prefix(err, "client API on %s", s->cfg.client_addr);
    return 0;
}

void server_refresh_credentials(struct server* s) {
    struct net_tls_credentials creds;
    uint8_t hash[32];
    struct moat_error err = {0};
    if (server_credentials(s, false, &creds, hash) == 0) {
        if (memcmp(hash, s->client_cert_hash, 32) != 0 && s->client_api) {
            if (net_http_server_set_credentials(s->client_api, &creds, &err) == 0) {
                memcpy(s->client_cert_hash, hash, 32);
                slog("info", "client API: now presenting the new root certificate");
            } else {
                slog("error", "client API: keeping the old certificate: %s", err.msg);
            }
        }
        server_credentials_clear(&creds);
    }
    if (server_credentials(s, true, &creds, hash) == 0) {
        if (memcmp(hash, s->mesh_cert_hash, 32) != 0) {
            memcpy(s->mesh_cert_hash, hash, 32);
            mesh_update_credentials(s->mesh);
            slog("info", "Marble API: now presenting the new marble root certificate");
        }
        server_credentials_clear(&creds);
    }
}
