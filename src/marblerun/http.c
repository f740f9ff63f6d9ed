/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTPS to a Coordinator's client API over libcurl, and MarbleRun's JSend envelopes
 * (marblerun.h; reference/marblerun.md §3.5). The Coordinator's root is the only trust anchor
 * (§7 step 4): the system CAs are not loaded.
 */
#include <curl/curl.h>
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>

#include "marblerun.h"

struct mr_http {
    CURL* curl;
    char* base; /* https://host:port */
    struct mr_http_opts opts;
};

static size_t on_body(char* p, size_t size, size_t n, void* user) {
    struct strbuf* sb = user;
    if (sb->len + size * n > (64u << 20)) /* a response larger than 64 MiB is not the API's */
        return 0;
    strbuf_append(sb, p, size * n);
    return size * n;
}

int mr_http_new(const char* addr, const struct mr_http_opts* opts, struct mr_http** ret,
                struct moat_error* err) {
    if (!*addr || strchr(addr, '/') || strchr(addr, '?') || strchr(addr, '@'))
        return moat_error_set(err, -EINVAL,
                              "'%s' is not an address: give the client API as IP:PORT or "
                              "HOST:PORT",
                              addr);
    static bool global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return moat_error_set(err, -EIO, "cannot initialise libcurl");
        global_done = true;
    }
    struct mr_http* h = xcalloc(1, sizeof(*h));
    h->curl           = curl_easy_init();
    if (!h->curl) {
        free(h);
        return moat_error_set(err, -ENOMEM, "cannot initialise libcurl");
    }
    h->base        = xasprintf("https://%s", addr);
    h->opts        = *opts; /* the strings are copied: the caller's may go */
    h->opts.ca_pem = opts->ca_pem ? xstrdup(opts->ca_pem) : NULL;
    h->opts.cert   = opts->cert ? xstrdup(opts->cert) : NULL;
    h->opts.key    = opts->key ? xstrdup(opts->key) : NULL;
    *ret           = h;
    return 0;
}

void mr_http_free(struct mr_http* h) {
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h->base);
    free((char*)h->opts.ca_pem);
    free((char*)h->opts.cert);
    free((char*)h->opts.key);
    free(h);
}

void mr_response_clear(struct mr_response* r) {
    json_decref(r->data);
    free(r->message);
    *r = (struct mr_response){0};
}

static void setup_tls(struct mr_http* h) {
    CURL* c = h->curl;
    if (h->opts.ca_pem) {
        struct curl_blob blob = {
            .data = (void*)h->opts.ca_pem, .len = strlen(h->opts.ca_pem), .flags = CURL_BLOB_COPY};
        curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    } else {
        /* only to fetch /quote, whose content is verified instead (era's InsecureGetCertificate),
         * or with --insecure */
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (h->opts.cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, h->opts.cert);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLKEY, h->opts.key ? h->opts.key : h->opts.cert);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
}

/* The JSend envelope: data and message; a body that is not JSON keeps its first line. */
static void parse_envelope(const struct strbuf* body, struct mr_response* r) {
    json_t* o = body->len ? json_loadb(body->buf, body->len, 0, NULL) : NULL;
    if (o && json_is_object(o)) {
        json_t* d = json_object_get(o, "data");
        r->data   = d && !json_is_null(d) ? json_incref(d) : NULL;
        json_t* m = json_object_get(o, "message");
        if (json_is_string(m))
            r->message = xstrdup(json_string_value(m));
    } else if (body->len) {
        size_t n   = strcspn(body->buf, "\n");
        r->message = xstrndup(body->buf, n > 200 ? 200 : n);
    }
    json_decref(o);
}

int mr_http_call(struct mr_http* h, const char* method, const char* path, const json_t* body,
                 struct mr_response* r, struct moat_error* err) {
    *r                                  = (struct mr_response){0};
    CURL* c                             = h->curl;
    _cleanup_free_ char* url            = xasprintf("%s%s", h->base, path);
    _cleanup_free_ char* text           = body ? json_dumps(body, JSON_COMPACT) : NULL;
    _cleanup_strbuf_ struct strbuf resp = STRBUF_INIT;
    char errbuf[CURL_ERROR_SIZE]        = "";
    struct curl_slist* headers          = NULL;
    curl_easy_reset(c);
    setup_tls(h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, h->opts.timeout_s ? h->opts.timeout_s : 60L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text ? text : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(text ? strlen(text) : 0));
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (text) /* it may carry secrets (POST /secrets, /recover) */
        OPENSSL_cleanse(text, strlen(text));
    if (rc != CURLE_OK) {
        r->tls_peer_refused = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT ||
                              rc == CURLE_SSL_CACERT_BADFILE;
        return moat_error_set(err, -EIO, "%s %s: %s", method, url,
                              errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    parse_envelope(&resp, r);
    if (resp.len)
        OPENSSL_cleanse(resp.buf, resp.len);
    return 0;
}

static const char* status_text(long s) {
    static const struct {
        long code;
        const char* text;
    } table[] = {
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {410, "Gone"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(table); i++)
        if (table[i].code == s)
            return table[i].text;
    return "";
}

int mr_http_expect(struct mr_http* h, const char* method, const char* path, const json_t* body,
                   struct mr_response* r, struct moat_error* err) {
    int rc = mr_http_call(h, method, path, body, r, err);
    if (rc < 0)
        return rc;
    if (r->status == 200)
        return 0;
    /* MarbleRun's rest client (cli/internal/rest): 401 is an authorisation failure */
    if (r->status == 401)
        rc = moat_error_set(err, -EPERM, "%s %s%s: unable to authorize user: %s", method, h->base,
                            path, r->message ? r->message : "");
    else
        rc = moat_error_set(err, -EIO, "%s %s%s: %ld %s: %s", method, h->base, path, r->status,
                            status_text(r->status), r->message ? r->message : "");
    return rc;
}
