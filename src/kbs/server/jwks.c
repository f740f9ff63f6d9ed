/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The token service's JWKS (attestation.md §4.2 "Verification": select the key by `kid`):
 * fetched over HTTPS with libcurl (TLS verified against --token-ca or the system store) or read
 * from a file. Refreshed when a token names an unknown kid, at most every 10 seconds.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

#include "server.h"

#define JWKS_MAX_BYTES (1024 * 1024)

static size_t on_data(char* p, size_t size, size_t n, void* arg) {
    struct strbuf* sb = arg;
    if (sb->len + size * n > JWKS_MAX_BYTES)
        return 0;
    strbuf_append(sb, p, size * n);
    return size * n;
}

int kbs_http(const char* url, const char* ca, const char* api_key, const char* body, char** ret,
             size_t* ret_len, long* ret_status, struct moat_error* err) {
    _cleanup_strbuf_ struct strbuf sb = {0};
    _cleanup_free_ char* key_header   = api_key ? xasprintf("x-api-key: %s", api_key) : NULL;
    struct curl_slist* headers        = curl_slist_append(NULL, "Accept: application/json");
    if (body)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    if (key_header)
        headers = curl_slist_append(headers, key_header);
    CURL* c = curl_easy_init();
    if (!c || !headers) {
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        return moat_error_set(err, -ENOMEM, "curl_easy_init");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sb);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    if (key_header)
        OPENSSL_cleanse(key_header, strlen(key_header));
    if (rc != CURLE_OK)
        return moat_error_set(err, -EIO, "%s: %s", url, curl_easy_strerror(rc));
    *ret = strbuf_take(&sb, ret_len);
    if (!*ret) {
        *ret     = xstrdup("");
        *ret_len = 0;
    }
    *ret_status = status;
    return 0;
}

static int fetch(const struct kbs_jwks* j, char** ret, size_t* ret_len, struct moat_error* err) {
    if (strncmp(j->source, "https://", 8) != 0)
        return read_file(j->source, ret, ret_len, err);
    long status = 0;
    int r       = kbs_http(j->source, j->ca, NULL, NULL, ret, ret_len, &status, err);
    if (r < 0)
        return r;
    if (status != 200) {
        free(*ret);
        return moat_error_set(err, -EIO, "cannot fetch the JWKS %s: HTTP %ld", j->source, status);
    }
    return 0;
}

int kbs_jwks_load(struct kbs_jwks* j, struct moat_error* err) {
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    int r                     = fetch(j, &text, &len, err);
    if (r < 0)
        return r;
    j->fetched     = time(NULL);
    json_error_t e = {0};
    json_t* doc    = json_loadb(text, len, 0, &e);
    json_t* keys   = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        return moat_error_set(err, -EINVAL, "%s is not a JWKS ({\"keys\": [...]})", j->source);
    }
    kbs_jwks_clear(j);
    j->keys = json_incref(keys);
    json_decref(doc);
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
        const char* alg = json_string_value(json_object_get(k, "alg"));
        int r           = amber_jwt_alg_parse(alg ? alg : "PS384", ret_alg, err);
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
    int r = find(j, kid, ret, ret_alg, err);
    if (r != -ENOKEY || time(NULL) - j->fetched < 10)
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
    for (size_t i = 0; i < j->n_pkeys; i++)
        EVP_PKEY_free(j->pkeys[i]);
    free(j->pkeys);
    j->pkeys   = NULL;
    j->n_pkeys = 0;
    json_decref(j->keys);
    j->keys = NULL;
}
