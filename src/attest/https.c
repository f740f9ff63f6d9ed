/* SPDX-License-Identifier: Apache-2.0 */
/* One HTTPS exchange with a libcurl loaded on first use: see https.h. */
#include "https.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static struct {
    CURL* (*easy_init)(void);
    CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
    CURLcode (*easy_perform)(CURL*);
    CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
    void (*easy_cleanup)(CURL*);
    const char* (*easy_strerror)(CURLcode);
    char* (*easy_unescape)(CURL*, const char*, int, int*);
    struct curl_slist* (*slist_append)(struct curl_slist*, const char*);
    void (*slist_free_all)(struct curl_slist*);
    void (*free)(void*);
} g_curl;
static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static bool g_curl_loaded;

static void curl_load(void) {
    void* lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
#define CURL_SYM(f) ((*(void**)& g_curl.f = dlsym(lib, "curl_" #f)) != NULL)
    g_curl_loaded = CURL_SYM(easy_init) && CURL_SYM(easy_setopt) && CURL_SYM(easy_perform) &&
                    CURL_SYM(easy_getinfo) && CURL_SYM(easy_cleanup) && CURL_SYM(easy_strerror) &&
                    CURL_SYM(easy_unescape) && CURL_SYM(slist_append) && CURL_SYM(slist_free_all) &&
                    CURL_SYM(free);
#undef CURL_SYM
}

static bool curl_ready(struct moat_error* err) {
    pthread_once(&g_curl_once, curl_load);
    if (!g_curl_loaded)
        moat_error_set(err, -ENOPKG,
                       "cannot load libcurl (libcurl.so.4), which moat's HTTPS client needs: "
                       "install it (apt install libcurl4)");
    return g_curl_loaded;
}

struct sink {
    const volatile bool* cancel;
    struct strbuf body;
    struct strbuf headers;
    size_t max;
    bool too_big;
};

static size_t on_body(char* p, size_t size, size_t n, void* arg) {
    struct sink* s = arg;
    if (s->body.len + size * n > s->max) {
        s->too_big = true;
        return 0;
    }
    strbuf_append(&s->body, p, size * n);
    return size * n;
}

static size_t on_header(char* p, size_t size, size_t n, void* arg) {
    struct sink* s = arg;
    size_t len     = size * n;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) /* a new response (after a 100 or a redirect) */
        s->headers.len = 0;
    if (s->headers.len + len <= 256 * 1024)
        strbuf_append(&s->headers, p, len);
    return len;
}

static int on_progress(void* arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    (void)a, (void)b, (void)c, (void)d;
    const struct sink* s = arg;
    return s->cancel && *s->cancel ? 1 : 0;
}

/* "::ADDR:" for CURLOPT_CONNECT_TO: any host and port of the URL goes to ADDR, same port. */
static int connect_to(const char* ip, char* buf, size_t size, struct moat_error* err) {
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1)
        snprintf(buf, size, "::%s:", ip);
    else if (inet_pton(AF_INET6, ip, a) == 1)
        snprintf(buf, size, "::[%s]:", ip);
    else
        return moat_error_set(err, -EINVAL, "'%s' is not a numeric IPv4 or IPv6 address", ip);
    return 0;
}

int https_request(const struct https_request* req, struct https_response* ret,
                  struct moat_error* err) {
    memset(ret, 0, sizeof(*ret));
    const char* url = req->url ? req->url : "";
    bool https      = !strncasecmp(url, "https://", 8);
    if (!https && !(req->allow_http && !strncasecmp(url, "http://", 7)))
        return moat_error_set(err, -EINVAL, "'%s': only %s URLs are accepted", url,
                              req->allow_http ? "https:// and http://" : "https://");
    char to[80] = "";
    if (req->connect_ip && *req->connect_ip && connect_to(req->connect_ip, to, sizeof(to), err) < 0)
        return -EINVAL;
    if (!curl_ready(err))
        return -ENOPKG;
    CURL* c = g_curl.easy_init();
    if (!c)
        return moat_error_set(err, -ENOMEM, "cannot start libcurl");
    struct sink s = {.max = req->max_response ? req->max_response : 1 << 20, .cancel = req->cancel};
    struct curl_slist* headers = NULL;
    for (const char* const* h = req->headers; h && *h; h++)
        headers = g_curl.slist_append(headers, *h);
    struct curl_slist* connect = to[0] ? g_curl.slist_append(NULL, to) : NULL;
    char cerr[CURL_ERROR_SIZE] = "";
    g_curl.easy_setopt(c, CURLOPT_URL, url);
    g_curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, req->allow_http ? "http,https" : "https");
    g_curl.easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, req->allow_http ? "http,https" : "https");
    g_curl.easy_setopt(c, CURLOPT_FOLLOWLOCATION, req->follow_redirects ? 1L : 0L);
    g_curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* from a thread of a program with handlers */
    g_curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 30000L);
    g_curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    g_curl.easy_setopt(c, CURLOPT_WRITEDATA, &s);
    g_curl.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    g_curl.easy_setopt(c, CURLOPT_HEADERDATA, &s);
    g_curl.easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    g_curl.easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
    if (headers)
        g_curl.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (connect)
        g_curl.easy_setopt(c, CURLOPT_CONNECT_TO, connect);
    if (req->cancel) {
        g_curl.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        g_curl.easy_setopt(c, CURLOPT_XFERINFODATA, &s);
        g_curl.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    struct curl_blob blob = {(void*)req->cacerts_pem, req->cacerts_pem_len, CURL_BLOB_COPY};
    if (req->cacerts_pem)
        g_curl.easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    else if (req->cacerts && *req->cacerts) {
        struct stat st;
        bool dir = stat(req->cacerts, &st) == 0 && S_ISDIR(st.st_mode);
        g_curl.easy_setopt(c, dir ? CURLOPT_CAPATH : CURLOPT_CAINFO, req->cacerts);
        if (dir)
            g_curl.easy_setopt(c, CURLOPT_CAINFO, NULL);
    }
    if (req->insecure_no_verify) {
        g_curl.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        g_curl.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (req->body) {
        g_curl.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        g_curl.easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
    }
    if (req->method && strcmp(req->method, req->body ? "POST" : "GET") != 0)
        g_curl.easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    CURLcode rc = g_curl.easy_perform(c);
    long status = 0;
    g_curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    g_curl.easy_cleanup(c);
    g_curl.slist_free_all(headers);
    g_curl.slist_free_all(connect);
    int r = 0;
    if (req->cancel && *req->cancel)
        r = moat_error_set(err, -ECANCELED, "%s: cancelled", url);
    else if (s.too_big)
        r = moat_error_set(err, -EFBIG, "%s: the response is larger than %zu bytes", url, s.max);
    else if (rc != CURLE_OK)
        r = moat_error_set(err, -EHOSTUNREACH, "%s: %s", url,
                           cerr[0] ? cerr : g_curl.easy_strerror(rc));
    if (r < 0) {
        strbuf_free(&s.body);
        strbuf_free(&s.headers);
        return r;
    }
    ret->status  = status;
    ret->body    = strbuf_take(&s.body, &ret->body_len);
    ret->headers = strbuf_take(&s.headers, NULL);
    if (!ret->body)
        ret->body = xstrdup("");
    if (!ret->headers)
        ret->headers = xstrdup("");
    return 0;
}

char* https_header(const struct https_response* r, const char* name) {
    size_t nl = strlen(name);
    for (const char* p = r->headers; p && *p;) {
        const char* end = strchr(p, '\n');
        size_t len      = end ? (size_t)(end - p) : strlen(p);
        if (len > nl && !strncasecmp(p, name, nl) && p[nl] == ':') {
            const char* v = p + nl + 1;
            size_t vl     = len - nl - 1;
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            return xstrndup(v, vl);
        }
        p += len + (end ? 1 : 0);
    }
    return NULL;
}

char* https_unescape(const char* s, size_t len, size_t* ret_len) {
    struct moat_error err = {0};
    if (!curl_ready(&err) || len > INT32_MAX)
        return NULL;
    int out  = 0;
    char* un = g_curl.easy_unescape(NULL, s, (int)len, &out);
    if (!un)
        return NULL;
    char* copy = xstrndup(un, (size_t)out);
    g_curl.free(un);
    if (ret_len)
        *ret_len = (size_t)out;
    return copy;
}

void https_response_clear(struct https_response* r) {
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}
