/* SPDX-License-Identifier: Apache-2.0 */
/* The attester's side of Amber / ITA: see client.h. */
#include "client.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "https.h"

#define MAX_NONCE_BYTES 4096
#define MAX_TOKEN_BYTES (256 * 1024)
#define MAX_KEY_BYTES   (256 * 1024)

static bool ends_with(const char* s, const char* suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

enum amber_client_api amber_client_api_of(const char* url) {
    if (ends_with(url, "/appraisal/v1/"))
        return AMBER_CLIENT_BETA;
    if (ends_with(url, "/appraisal/v2/") || ends_with(url, "/appraisal/v2"))
        return AMBER_CLIENT_V2;
    return AMBER_CLIENT_V1;
}

const char* amber_client_api_name(enum amber_client_api api) {
    return api == AMBER_CLIENT_BETA ? "Amber beta (/appraisal/v1/appraise)"
           : api == AMBER_CLIENT_V2 ? "ITA v2 (/appraisal/v2/attest)"
                                    : "ITA v1 (/appraisal/v1/attest)";
}

/* The request URL for `leaf` ("nonce", "attest", "appraise") of the generation. */
static char* endpoint_url(const char* url, enum amber_client_api api, const char* leaf) {
    if (api != AMBER_CLIENT_V1 || ends_with(url, "/appraisal/v1/"))
        return xasprintf("%s%s%s", url, ends_with(url, "/") ? "" : "/", leaf);
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    return xasprintf("%.*s/appraisal/v1/%s", (int)n, url, leaf);
}

/* The service's reason for a refusal: its JSON "error"/"message", else the start of the body,
 * printable characters only (it is the far side's text, shown to a user). */
static void refusal(const char* what, const char* url, const struct https_response* r,
                    struct moat_error* err) {
    char reason[200] = "";
    json_t* doc      = json_loadb(r->body, r->body_len, 0, NULL);
    const char* msg  = json_string_value(json_object_get(doc, "error"));
    if (!msg)
        msg = json_string_value(json_object_get(doc, "message"));
    if (!msg)
        msg = r->body;
    size_t j = 0;
    for (size_t i = 0; msg[i] && j + 1 < sizeof(reason); i++)
        reason[j++] = msg[i] >= 0x20 && msg[i] < 0x7f ? msg[i] : '?';
    reason[j] = '\0';
    json_decref(doc);
    moat_error_set(err, r->status == 401 || r->status == 403 ? -EACCES : -EPROTO,
                   "%s: %s answered HTTP %ld%s%s%s", what, url, r->status, reason[0] ? " (" : "",
                   reason, reason[0] ? ")" : "");
}

/* One exchange with a service; *ret holds a 200 answer. */
static int exchange(const struct amber_endpoint* ep, const char* what, const char* url,
                    const char* accept, const char* body, size_t max, struct https_response* ret,
                    struct moat_error* err) {
    _cleanup_free_ char* key =
        ep->api_key && *ep->api_key ? xasprintf("x-api-key: %s", ep->api_key) : NULL;
    _cleanup_free_ char* acc = xasprintf("Accept: %s", accept);
    char rid[MOAT_UUID_STR_SIZE], rid_buf[16 + MOAT_UUID_STR_SIZE];
    moat_uuid4(rid); /* §4.1: the client names each request */
    snprintf(rid_buf, sizeof(rid_buf), "request-id: %s", rid);
    const char* headers[5] = {acc, rid_buf};
    size_t n               = 2;
    if (body)
        headers[n++] = "Content-Type: application/json";
    if (key)
        headers[n++] = key;
    struct https_request hr = {
        .url             = url,
        .connect_ip      = ep->ip,
        .cacerts         = ep->cacerts,
        .cacerts_pem     = ep->cacerts_pem,
        .cacerts_pem_len = ep->cacerts_pem_len,
        .cancel          = ep->cancel,
        .headers         = headers,
        .body            = body,
        .body_len        = body ? strlen(body) : 0,
        .max_response    = max,
        .timeout_ms      = ep->timeout_ms,
    };
    int r = https_request(&hr, ret, err);
    if (key)
        OPENSSL_cleanse(key, strlen(key));
    if (r < 0)
        return moat_error_prefix(err, "%s", what);
    if (ret->status != 200) {
        refusal(what, url, ret, err);
        int code = err->code;
        https_response_clear(ret);
        return code;
    }
    return 0;
}

static int b64_field(json_t* nonce, const char* name, uint8_t** ret, size_t* ret_len,
                     struct moat_error* err) {
    const char* v = json_string_value(json_object_get(nonce, name));
    if (!v || base64_decode_alloc(v, strlen(v), ret, ret_len) < 0)
        return moat_error_set(err, -EPROTO, "the verifier nonce's '%s' is missing or not base64",
                              name);
    return 0;
}

/* §4.1: SGX SHA-256(val ‖ iat ‖ runtime data) then zeros; TDX SHA-512 of the same. */
static void report_data(json_t* nonce, const uint8_t* val, size_t val_len, const uint8_t* iat,
                        size_t iat_len, const struct amber_token_request* req, uint8_t out[64]) {
    memset(out, 0, 64);
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    unsigned n     = 0;
    if (!md || EVP_DigestInit_ex(md, req->tdx ? EVP_sha512() : EVP_sha256(), NULL) != 1 ||
        (nonce &&
         (EVP_DigestUpdate(md, val, val_len) != 1 || EVP_DigestUpdate(md, iat, iat_len) != 1)) ||
        (req->runtime_data_len &&
         EVP_DigestUpdate(md, req->runtime_data, req->runtime_data_len) != 1) ||
        EVP_DigestFinal_ex(md, out, &n) != 1)
        abort(); /* a digest of bytes in memory cannot fail */
    EVP_MD_CTX_free(md);
}

/* The attest body of the generation, a new reference. */
static json_t* attest_body(const struct amber_token_request* req, json_t* nonce,
                           const uint8_t* quote, size_t quote_len) {
    _cleanup_free_ char* q  = base64_encode_alloc(quote, quote_len);
    _cleanup_free_ char* rd = req->runtime_data_len
                                  ? base64_encode_alloc(req->runtime_data, req->runtime_data_len)
                                  : NULL;
    json_t* evidence        = json_object();
    json_object_set_new(evidence, "quote", json_string(q));
    if (req->api == AMBER_CLIENT_BETA) { /* Gramine PR #1065's body, the nonce verbatim */
        json_object_set(evidence, "nonce", nonce);
        json_object_set_new(evidence, "user_data", json_string(rd ? rd : ""));
        return evidence;
    }
    json_object_set(evidence, "verifier_nonce", nonce);
    if (rd)
        json_object_set_new(evidence, "runtime_data", json_string(rd));
    json_t* body = evidence;
    if (req->api == AMBER_CLIENT_V2) {
        body = json_object();
        json_object_set_new(body, req->tdx ? "tdx" : "sgx", evidence);
    }
    if (req->n_policy_ids) {
        json_t* ids = json_array();
        for (size_t i = 0; i < req->n_policy_ids; i++)
            json_array_append_new(ids, json_string(req->policy_ids[i]));
        json_object_set_new(body, "policy_ids", ids);
        json_object_set_new(body, "policy_must_match", json_boolean(req->policy_must_match));
    }
    if (req->signing_alg)
        json_object_set_new(body, "token_signing_alg", json_string(req->signing_alg));
    return body;
}

int amber_client_parse_token(enum amber_client_api api, const char* body, size_t len,
                             char** ret_token, struct moat_error* err) {
    _cleanup_free_ char* copy = xstrndup(body, len); /* a NUL in the body ends the token */
    const char* t             = copy;
    json_t* doc               = NULL;
    if (api != AMBER_CLIENT_BETA || (len && body[0] == '{')) {
        doc = json_loadb(body, len, 0, NULL);
        t   = json_string_value(json_object_get(doc, "token"));
    }
    size_t n = t ? strlen(t) : 0;
    while (n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' '))
        n--;
    /* a JWS compact serialization: three base64url parts */
    size_t dots = 0;
    bool ok     = n > 0;
    for (size_t i = 0; ok && i < n; i++) {
        char c = t[i];
        dots += c == '.';
        ok = c == '.' || c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
             (c >= 'A' && c <= 'Z');
    }
    if (!ok || dots != 2) {
        json_decref(doc);
        return moat_error_set(err, -EPROTO, "no token in the answer (%s)",
                              api == AMBER_CLIENT_BETA ? "expected a JWT as the body"
                                                       : "expected {\"token\": \"<JWT>\"}");
    }
    *ret_token = xstrndup(t, n);
    json_decref(doc);
    return 0;
}

int amber_client_parse_nonce(const char* body, size_t len, void** ret_nonce, uint8_t** ret_val,
                             size_t* ret_val_len, uint8_t** ret_iat, size_t* ret_iat_len,
                             struct moat_error* err) {
    json_t* nonce = json_loadb(body, len, 0, NULL);
    uint8_t *val = NULL, *iat = NULL;
    size_t val_len = 0, iat_len = 0;
    int r = 0;
    if (!json_is_object(nonce))
        r = moat_error_set(err, -EPROTO, "the verifier nonce is not a JSON object");
    if (r == 0 && (b64_field(nonce, "val", &val, &val_len, err) < 0 ||
                   b64_field(nonce, "iat", &iat, &iat_len, err) < 0))
        r = -EPROTO;
    if (r == 0 && !json_is_string(json_object_get(nonce, "signature")))
        r = moat_error_set(err, -EPROTO, "the verifier nonce has no 'signature'");
    if (r < 0) {
        free(val);
        free(iat);
        json_decref(nonce);
        return r;
    }
    *ret_nonce   = nonce;
    *ret_val     = val;
    *ret_val_len = val_len;
    *ret_iat     = iat;
    *ret_iat_len = iat_len;
    return 0;
}

int amber_client_token(const struct amber_token_request* req, char** ret_token,
                       struct moat_error* err) {
    const struct amber_endpoint* ep = req->service;
    if (!ep->url || !*ep->url)
        return moat_error_set(err, -EDESTADDRREQ, "no token service URL is set");
    _cleanup_free_ char* nurl = endpoint_url(ep->url, req->api, "nonce");
    _cleanup_(https_response_clear) struct https_response nr = {0};
    int r =
        exchange(ep, "verifier nonce", nurl, "application/json", NULL, MAX_NONCE_BYTES, &nr, err);
    if (r < 0)
        return r;
    void* parsed                = NULL;
    _cleanup_free_ uint8_t *val = NULL, *iat = NULL;
    size_t val_len = 0, iat_len = 0;
    if ((r = amber_client_parse_nonce(nr.body, nr.body_len, &parsed, &val, &val_len, &iat, &iat_len,
                                      err)) < 0)
        return moat_error_prefix(err, "%s", nurl);
    json_t* nonce = parsed;
    uint8_t rd[64];
    report_data(nonce, val, val_len, iat, iat_len, req, rd);
    uint8_t* quote = NULL;
    size_t qlen    = 0;
    if ((r = req->quote(req->quote_ctx, rd, &quote, &qlen, err)) < 0) {
        json_decref(nonce);
        return moat_error_prefix(err, "the quote");
    }
    json_t* body = attest_body(req, nonce, quote, qlen);
    json_decref(nonce);
    free(quote);
    _cleanup_free_ char* text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    const char* leaf          = req->api == AMBER_CLIENT_BETA ? "appraise" : "attest";
    _cleanup_free_ char* aurl = endpoint_url(ep->url, req->api, leaf);
    _cleanup_(https_response_clear) struct https_response ar = {0};
    r                                                        = exchange(ep, "attestation", aurl,
                 req->api == AMBER_CLIENT_BETA ? "application/jwt" : "application/json", text,
                                                                        MAX_TOKEN_BYTES, &ar, err);
    if (r < 0)
        return r;
    r = amber_client_parse_token(req->api, ar.body, ar.body_len, ret_token, err);
    return r < 0 ? moat_error_prefix(err, "%s", aurl) : 0;
}

char* amber_client_transfer_url(const char* url, const char* key_id, struct moat_error* err) {
    uint8_t id[16];
    char canon[MOAT_UUID_STR_SIZE];
    if (!key_id || moat_uuid_parse(key_id, id, err) < 0) {
        moat_error_set(err, -EINVAL, "the key ID '%s' is not a UUID", key_id ? key_id : "");
        return NULL;
    }
    moat_uuid_format(id, canon);
    if (ends_with(url, "/keys/"))
        return xasprintf("%s%s/transfer", url, canon);
    if (ends_with(url, "/keys"))
        return xasprintf("%s/%s/transfer", url, canon);
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    return xasprintf("%.*s/kbs/v1/keys/%s/transfer", (int)n, url, canon);
}

int amber_client_transfer(const struct amber_endpoint* kbs, const char* key_id, const char* token,
                          char** ret_json, size_t* ret_len, struct moat_error* err) {
    if (!kbs->url || !*kbs->url)
        return moat_error_set(err, -EDESTADDRREQ, "no key broker URL is set");
    if (!token || !*token)
        return moat_error_set(err, -EINVAL, "no attestation token to present");
    _cleanup_free_ char* url = amber_client_transfer_url(kbs->url, key_id, err);
    if (!url)
        return -EINVAL;
    json_t* body              = json_pack("{s:s}", "attestation_token", token);
    _cleanup_free_ char* text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    _cleanup_(https_response_clear) struct https_response r = {0};
    int rc = exchange(kbs, "key transfer", url, "application/json", text, MAX_KEY_BYTES, &r, err);
    if (rc < 0)
        return rc;
    json_t* doc = json_loadb(r.body, r.body_len, 0, NULL);
    bool ok     = json_is_string(json_object_get(doc, "wrapped_key")) &&
              json_is_string(json_object_get(doc, "wrapped_swk"));
    json_decref(doc);
    if (!ok)
        return moat_error_set(err, -EPROTO,
                              "%s answered no {\"wrapped_key\", \"wrapped_swk\"} object", url);
    *ret_len  = r.body_len;
    *ret_json = TAKE_PTR(r.body);
    return 0;
}
