/* SPDX-License-Identifier: Apache-2.0 */
/* Collateral from a PCCS / PCS service: see pccs.h. */
#include "pccs.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pck.h"
#include "quote.h"

/* libcurl is loaded when a PCCS is first asked (moat quote verify --pccs), not linked: the other
 * commands — moat run above all, whose start-up counts — do not map it and the dozen
 * libraries behind it (../shared/ARCHITECTURE.md: a command loads only what it uses). */
static struct {
    CURL* (*easy_init)(void);
    CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
    CURLcode (*easy_perform)(CURL*);
    CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
    void (*easy_cleanup)(CURL*);
    const char* (*easy_strerror)(CURLcode);
    char* (*easy_unescape)(CURL*, const char*, int, int*);
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
                    CURL_SYM(easy_unescape) && CURL_SYM(free);
#undef CURL_SYM
}

/* One response: the body, and the issuer chain from the named header (URL-encoded PEM). */
struct response {
    struct strbuf body;
    char* chain;
    const char* const* chain_headers; /* the header names to look for, NULL-terminated */
};

static size_t on_body(char* p, size_t size, size_t n, void* arg) {
    struct response* r = arg;
    if (r->body.len + size * n > 16 * 1024 * 1024)
        return 0; /* no collateral is that large: stop */
    strbuf_append(&r->body, p, size * n);
    return size * n;
}

static size_t on_header(char* p, size_t size, size_t n, void* arg) {
    struct response* r = arg;
    size_t len         = size * n;
    for (const char* const* h = r->chain_headers; h && *h; h++) {
        size_t hl = strlen(*h);
        if (len > hl + 1 && !strncasecmp(p, *h, hl) && p[hl] == ':' && !r->chain) {
            const char* v = p + hl + 1;
            size_t vl     = len - hl - 1;
            while (vl && (*v == ' ' || *v == '\t'))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
                vl--;
            int out  = 0;
            char* un = g_curl.easy_unescape(NULL, v, (int)vl, &out);
            if (un)
                r->chain = xstrndup(un, (size_t)out);
            g_curl.free(un);
        }
    }
    return len;
}

static int http_get(const struct pccs_request* req, const char* url, struct response* r,
                    struct moat_error* err) {
    pthread_once(&g_curl_once, curl_load);
    if (!g_curl_loaded)
        return moat_error_set(err, -ENOPKG,
                              "cannot load libcurl (libcurl.so.4), which fetching collateral "
                              "needs: install it (apt install libcurl4)");
    CURL* c = g_curl.easy_init();
    if (!c)
        return moat_error_set(err, -ENOMEM, "cannot start libcurl");
    char cerr[CURL_ERROR_SIZE] = "";
    g_curl.easy_setopt(c, CURLOPT_URL, url);
    g_curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    g_curl.easy_setopt(c, CURLOPT_WRITEDATA, r);
    g_curl.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    g_curl.easy_setopt(c, CURLOPT_HEADERDATA, r);
    g_curl.easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    g_curl.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    g_curl.easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    g_curl.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (req->insecure__no_tls_verify) {
        g_curl.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        g_curl.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = g_curl.easy_perform(c);
    long status = 0;
    g_curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    g_curl.easy_cleanup(c);
    if (rc != CURLE_OK)
        return moat_error_set(err, -EHOSTUNREACH, "%s: %s", url,
                              cerr[0] ? cerr : g_curl.easy_strerror(rc));
    if (status != 200)
        return moat_error_set(err, -ENOENT, "%s: HTTP status %ld", url, status);
    return 0;
}

/* What is fetched, and where it is kept. */
struct item {
    const char* file;       /* in the cache directory */
    const char* chain_file; /* NULL: no issuer chain header */
    const char* chain_headers[3];
};

static const struct item g_items[] = {
    {"tcb_info.json",
     "tcb_info_chain.pem",
     {"TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain", NULL}},
    {"qe_identity.json", "qe_identity_chain.pem", {"SGX-Enclave-Identity-Issuer-Chain", NULL}},
    {"pck_crl.der", "pck_crl_chain.pem", {"SGX-PCK-CRL-Issuer-Chain", NULL}},
    {"root_crl.der", NULL, {NULL}},
};

/* The request path of item i below the service root (§2.4). */
static char* item_path(size_t i, const struct pccs_request* req, const char* fmspc) {
    const char* tee = req->tdx ? "tdx" : "sgx";
    switch (i) {
        case 0:
            return xasprintf("/%s/certification/v4/tcb?fmspc=%s", tee, fmspc);
        case 1:
            return xasprintf("/%s/certification/v4/qe/identity", tee);
        case 2:
            return xasprintf("/sgx/certification/v4/pckcrl?ca=%s&encoding=der",
                             req->processor_ca ? "processor" : "platform");
        default:
            return xstrdup("/sgx/certification/v4/rootcacrl");
    }
}

static int save(const char* dir, const char* name, const void* data, size_t len,
                struct moat_error* err) {
    _cleanup_free_ char* path = path_join(dir, name);
    return write_file_atomic(path, data, len, 0600, err);
}

static int fetch(const struct pccs_request* req, const char* dir, struct moat_error* err) {
    _cleanup_free_ char* fmspc = hex_encode_alloc(req->fmspc, 6);
    size_t root_len            = strlen(req->url);
    while (root_len && req->url[root_len - 1] == '/')
        root_len--;
    for (size_t i = 0; i < ARRAY_SIZE(g_items); i++) {
        const struct item* it     = &g_items[i];
        _cleanup_free_ char* path = item_path(i, req, fmspc);
        _cleanup_free_ char* url  = xasprintf("%.*s%s", (int)root_len, req->url, path);
        struct response r         = {.body = STRBUF_INIT, .chain_headers = it->chain_headers};
        int rc                    = http_get(req, url, &r, err);
        if (rc == 0 && it->chain_file && !r.chain)
            rc = moat_error_set(err, -EBADMSG, "%s: no %s header", url, it->chain_headers[0]);
        if (rc == 0)
            rc = save(dir, it->file, r.body.buf ? r.body.buf : "", r.body.len, err);
        if (rc == 0 && it->chain_file)
            rc = save(dir, it->chain_file, r.chain, strlen(r.chain), err);
        strbuf_free(&r.body);
        free(r.chain);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Every kept file is younger than max_age (0 when one is missing). */
static bool kept_fresh(const char* dir, unsigned max_age, bool* ret_any) {
    bool fresh = true;
    *ret_any   = true;
    for (size_t i = 0; i < ARRAY_SIZE(g_items); i++) {
        _cleanup_free_ char* path = path_join(dir, g_items[i].file);
        struct stat st;
        if (stat(path, &st) < 0) {
            *ret_any = false;
            return false;
        }
        if (time(NULL) - st.st_mtime > (time_t)max_age)
            fresh = false;
    }
    return fresh;
}

int pccs_collateral(const struct pccs_request* req, struct collateral** ret,
                    struct moat_error* err) {
    _cleanup_free_ char* fmspc = hex_encode_alloc(req->fmspc, 6);
    _cleanup_free_ char* sub   = xasprintf("%s-%s-%s", req->tdx ? "tdx" : "sgx", fmspc,
                                         req->processor_ca ? "processor" : "platform");
    _cleanup_free_ char* base  = NULL;
    if (!req->cache_dir) {
        const char* xdg  = getenv("XDG_CACHE_HOME");
        const char* home = getenv("HOME");
        base             = xdg && *xdg ? xasprintf("%s/moat/pccs", xdg)
                                       : xasprintf("%s/.cache/moat/pccs", home && *home ? home : ".");
    }
    _cleanup_free_ char* dir   = path_join(req->cache_dir ? req->cache_dir : base, sub);
    _cleanup_free_ char* probe = path_join(dir, "x");
    int r                      = mkdir_parents(probe, 0700);
    if (r < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
        return moat_error_set_errno(err, r < 0 ? r : -errno, "cannot create %s", dir);
    bool any   = false;
    bool fresh = kept_fresh(dir, req->max_age ? req->max_age : 86400, &any);
    if (!fresh) {
        struct moat_error ferr = {0};
        r                      = fetch(req, dir, &ferr);
        if (r < 0 && !any)
            return moat_error_set(err, r, "collateral from %s: %s", req->url, ferr.msg);
        if (r < 0)
            log_warning("collateral from %s: %s; using the responses kept in %s", req->url,
                        ferr.msg, dir);
    }
    _cleanup_free_ char *ti = path_join(dir, "tcb_info.json"),
                        *tc = path_join(dir, "tcb_info_chain.pem");
    _cleanup_free_ char *qi = path_join(dir, "qe_identity.json"),
                        *qc = path_join(dir, "qe_identity_chain.pem");
    _cleanup_free_ char *rc = path_join(dir, "root_crl.der"), *pc = path_join(dir, "pck_crl.der");
    _cleanup_free_ char* pcc          = path_join(dir, "pck_crl_chain.pem");
    struct collateral_pcs_files files = {.tcb_info                 = ti,
                                         .tcb_info_issuer_chain    = tc,
                                         .qe_identity              = qi,
                                         .qe_identity_issuer_chain = qc,
                                         .root_ca_crl              = rc,
                                         .pck_crl                  = pc,
                                         .pck_crl_issuer_chain     = pcc};
    r                                 = collateral_load_pcs_files(&files, ret, err);
    return r < 0 ? moat_error_prefix(err, "collateral kept in %s", dir) : 0;
}

int pccs_request_for_quote(const uint8_t* quote, size_t len, const struct cert_chain* given,
                           struct pccs_request* req, struct moat_error* err) {
    struct quote q;
    int r = quote_parse_input(quote, len, &q, err);
    if (r < 0)
        return r;
    _cleanup_cert_chain_ struct cert_chain* own = NULL;
    if (!given && !q.pck_chain)
        return moat_error_set(err, -EINVAL,
                              "the quote carries no PCK certificate to find its collateral by");
    if (!given && (r = cert_chain_parse_pem(q.pck_chain, q.pck_chain_len, &own, err)) < 0)
        return r;
    const struct cert_chain* chain = given ? given : own;
    struct pck_ext ext;
    if ((r = pck_ext_parse(chain->certs[0], &ext, err)) < 0)
        return r;
    char ca[256] = "";
    if (chain->n > 1)
        X509_NAME_get_text_by_NID(X509_get_subject_name(chain->certs[1]), NID_commonName, ca,
                                  sizeof(ca));
    req->tdx          = q.tee_type == QUOTE_TEE_TDX;
    req->processor_ca = strstr(ca, "Processor") != NULL;
    memcpy(req->fmspc, ext.fmspc, 6);
    return 0;
}
