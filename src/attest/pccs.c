/* SPDX-License-Identifier: Apache-2.0 */
/* Collateral from a PCCS / PCS service: see pccs.h. */
#include "pccs.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "https.h"
#include "pck.h"
#include "quote.h"

/* One collateral response: the body, and the issuer chain from the named header (URL-encoded
 * PEM). libcurl is loaded on first use (https.h): other commands never map it. */
struct response {
    struct strbuf body;
    char* chain;
    const char* const* chain_headers; /* the header names to look for, NULL-terminated */
};

static int http_get(const struct pccs_request* req, const char* url, struct response* r,
                    struct moat_error* err) {
    struct https_request hr                                    = {.url                = url,
                                                                  .max_response       = 16 * 1024 * 1024,
                                                                  .allow_http         = true,
                                                                  .follow_redirects   = true,
                                                                  .insecure_no_verify = req->insecure__no_tls_verify};
    _cleanup_(https_response_clear) struct https_response resp = {0};
    int rc                                                     = https_request(&hr, &resp, err);
    if (rc < 0)
        return rc;
    if (resp.status != 200)
        return moat_error_set(err, -ENOENT, "%s: HTTP status %ld", url, resp.status);
    strbuf_append(&r->body, resp.body, resp.body_len);
    for (const char* const* h = r->chain_headers; h && *h && !r->chain; h++) {
        _cleanup_free_ char* v = https_header(&resp, *h);
        if (v)
            r->chain = https_unescape(v, strlen(v), NULL);
    }
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
