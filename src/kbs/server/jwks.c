/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token service's JWKS (attestation.md §4.2 "Verification": select the key by `kid`):
 * fetched over HTTPS (attest's https.c; TLS verified against --token-ca or the system store) or
 * read from a file. Refreshed when a token names an unknown kid, at most every 10 seconds. With
 * --token-root-ca, each key's x5c chain and CRLs are checked (src/amber/jwks.c) and only the
 * keys that pass are used. kbs_http (background-check mode) goes through the same https.c, so
 * that moat-kbs loads libcurl only when it makes a request.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

#include "https.h"
#include "server.h"

#define HTTP_MAX_BYTES (1024 * 1024)

int kbs_http(const char* url, const char* ca, const char* api_key, const char* body, char** ret,
             size_t* ret_len, long* ret_status, struct moat_error* err) {
    _cleanup_free_ char* key_header = api_key ? xasprintf("x-api-key: %s", api_key) : NULL;
    const char* headers[4]          = {"Accept: application/json", NULL, NULL, NULL};
    size_t n                        = 1;
    if (body)
        headers[n++] = "Content-Type: application/json";
    if (key_header)
        headers[n++] = key_header;
    struct https_request req   = {.url          = url,
                                  .cacerts      = ca,
                                  .headers      = headers,
                                  .body         = body,
                                  .body_len     = body ? strlen(body) : 0,
                                  .max_response = HTTP_MAX_BYTES};
    struct https_response resp = {0};
    int r                      = https_request(&req, &resp, err);
    if (key_header)
        OPENSSL_cleanse(key_header, strlen(key_header));
    if (r < 0) /* err names the URL and curl's reason */
        return err ? (err->code = -EIO) : -EIO;
    *ret        = resp.body;
    *ret_len    = resp.body_len;
    *ret_status = resp.status;
    resp.body   = NULL;
    https_response_clear(&resp);
    return 0;
}

#define REVERIFY_SECONDS 3600

/* With roots: the keys whose x5c chain ends at one of them and whose CRLs are good (§4.2);
 * the others are logged and dropped. */
static int verified_keys(struct kbs_jwks* j, json_t* keys, json_t** ret, time_t* ret_until,
                         struct moat_error* err) {
    json_t* good                = json_array();
    time_t until                = time(NULL) + REVERIFY_SECONDS;
    struct amber_x5c_options xo = {.roots = j->roots, .cacerts = j->ca};
    struct moat_error last      = {0};
    size_t i;
    json_t* k;
    json_array_foreach(keys, i, k) {
        const char* kid             = json_string_value(json_object_get(k, "kid"));
        struct amber_x5c_result res = {0};
        if (amber_jwk_verify_x5c(k, &xo, &res, &last) < 0) {
            slog("warning", "JWKS %s: key '%s' is not used: %s", j->source, kid ? kid : "?",
                 last.msg);
            continue;
        }
        if (res.next_update && res.next_update < until)
            until = res.next_update;
        json_array_append(good, k);
    }
    if (json_array_size(good) == 0 && json_array_size(keys) > 0) {
        json_decref(good);
        return moat_error_set(err, last.code ? last.code : -EPERM,
                              "no key of the JWKS %s has a valid x5c chain to --token-root-ca: %s",
                              j->source, last.msg);
    }
    *ret       = good;
    *ret_until = until;
    return 0;
}

static void pkeys_clear(struct kbs_jwks* j) {
    for (size_t i = 0; i < j->n_pkeys; i++)
        EVP_PKEY_free(j->pkeys[i]);
    free(j->pkeys);
    j->pkeys   = NULL;
    j->n_pkeys = 0;
}

int kbs_jwks_load(struct kbs_jwks* j, struct moat_error* err) {
    json_t* doc = NULL;
    j->fetched  = time(NULL);
    int r       = amber_jwks_load(j->source, j->ca, NULL, &doc, err);
    if (r < 0)
        return r;
    json_t* keys = json_incref(json_object_get(doc, "keys"));
    time_t until = 0;
    json_decref(doc);
    if (j->roots) {
        json_t* good = NULL;
        r            = verified_keys(j, keys, &good, &until, err);
        json_decref(keys);
        if (r < 0)
            return r;
        keys = good;
    }
    pkeys_clear(j);
    json_decref(j->keys);
    j->keys        = keys;
    j->valid_until = until;
    /* each key made once: building an RSA key from n and e, and its Montgomery context at its
     * first use, cost more than the PS384 verification itself */
    j->n_pkeys = json_array_size(keys);
    j->pkeys   = xcalloc(j->n_pkeys ? j->n_pkeys : 1, sizeof(*j->pkeys));
    for (size_t i = 0; i < j->n_pkeys; i++) {
        struct moat_error ignored = {0}; /* reported by find() for the kid that names it */
        if (amber_jwk_key(json_array_get(keys, i), &j->pkeys[i], &ignored) < 0)
            j->pkeys[i] = NULL;
    }
    return 0;
}

static int find(const struct kbs_jwks* j, const char* kid, EVP_PKEY** ret,
                enum amber_jwt_alg* ret_alg, struct moat_error* err) {
    size_t i;
    json_t* k;
    json_array_foreach(j->keys, i, k) {
        const char* id = json_string_value(json_object_get(k, "kid"));
        if (!id || strcmp(id, kid) != 0)
            continue;
        int r = amber_jwk_alg(k, ret_alg, err);
        if (r < 0)
            return r;
        if (i < j->n_pkeys && j->pkeys[i] && EVP_PKEY_up_ref(j->pkeys[i]) == 1) {
            *ret = j->pkeys[i];
            return 0;
        }
        return amber_jwk_key(k, ret, err); /* not an RSA key: its error */
    }
    return -ENOKEY;
}

int kbs_jwks_find(struct kbs_jwks* j, const char* kid, EVP_PKEY** ret, enum amber_jwt_alg* ret_alg,
                  struct moat_error* err) {
    time_t now = time(NULL);
    /* verified keys are verified again when a CRL's nextUpdate (or an hour) has passed; until
     * that succeeds no token is accepted (a revoked key must not outlive its CRL) */
    if (j->roots && now >= j->valid_until) {
        struct moat_error e = {0};
        if (now - j->fetched < 10 || kbs_jwks_load(j, &e) < 0) {
            if (e.msg[0])
                slog("warning", "%s", e.msg);
            return moat_error_set(err, -ESTALE,
                                  "the token service's keys could not be verified again (JWKS, "
                                  "x5c chain or CRLs): %s",
                                  e.msg[0] ? e.msg : "retrying shortly");
        }
    }
    int r = find(j, kid, ret, ret_alg, err);
    if (r != -ENOKEY || now - j->fetched < 10)
        return r == -ENOKEY ? moat_error_set(err, r, "no key '%s' in the token service's JWKS", kid)
                            : r;
    struct moat_error e = {0};
    if (kbs_jwks_load(j, &e) < 0)
        slog("warning", "%s", e.msg);
    r = find(j, kid, ret, ret_alg, err);
    return r == -ENOKEY ? moat_error_set(err, r, "no key '%s' in the token service's JWKS", kid)
                        : r;
}

void kbs_jwks_clear(struct kbs_jwks* j) {
    pkeys_clear(j);
    json_decref(j->keys);
    j->keys = NULL;
    sk_X509_pop_free(j->roots, X509_free);
    j->roots = NULL;
}
