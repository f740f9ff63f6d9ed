/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One HTTPS exchange with libcurl, which is loaded (dlopen) at the first call and never linked:
 * `moat run` — whose start-up counts — maps libcurl and the dozen libraries behind it only when
 * the app reads /dev/amber, and `moat quote verify` only with --pccs
 * (../shared/ARCHITECTURE.md: a command loads only what it uses).
 *
 * Only https:// is spoken unless the request allows plain http; TLS is always verified, against
 * the request's CA file or directory or else the system store, except with the explicit
 * `insecure_no_verify` (PCCS's documented option). Redirects are not followed unless asked
 * (a token service or a key broker that answers elsewhere is an error, not a hop).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

struct https_request {
    const char* method; /* "GET", "POST"...; NULL: POST with a body, else GET */
    const char* url;
    /* Connect to this address instead of resolving the URL's host; the URL still names the
     * host for the request and the TLS peer name (Gramine's sgx.amber_ip: an enclave has no
     * resolver). NULL or "": resolve. A numeric IPv4 or IPv6 address. */
    const char* connect_ip;
    const char* cacerts;     /* PEM file or hashed directory of trusted CAs; NULL: system */
    const char* cacerts_pem; /* or the PEM text itself (takes precedence); NULL: none */
    size_t cacerts_pem_len;
    const volatile bool* cancel; /* when it turns true, the exchange ends (-ECANCELED) */
    const char* const* headers;  /* "Name: value" lines, NULL-terminated; may be NULL */
    const char* body;            /* may be NULL */
    size_t body_len;
    size_t max_response; /* bytes of body kept at most (larger: an error); 0: 1 MiB */
    long timeout_ms;     /* the whole exchange; 0: 30 s */
    bool allow_http;     /* http:// too */
    bool follow_redirects;
    bool insecure_no_verify; /* no TLS verification at all (only where documented as such) */
};

struct https_response {
    long status; /* the HTTP status */
    char* body;  /* NUL-terminated (not counted in body_len); "" when empty */
    size_t body_len;
    char* headers; /* the response's header lines, as received (last response only) */
};

/* 0 with *ret filled (any HTTP status, the caller judges it), or <0 when no response came:
 * -ENOPKG (no libcurl), -EINVAL (URL or scheme refused), -EFBIG (body over max_response),
 * -EHOSTUNREACH (connection, TLS or time-out, with curl's reason in err). */
int https_request(const struct https_request* req, struct https_response* ret,
                  struct moat_error* err) WARN_UNUSED;
/* The value of the first header `name` (case-insensitive), trimmed, malloc'd; NULL if none. */
char* https_header(const struct https_response* r, const char* name);
/* URL-decodes s[0..len) (libcurl's curl_easy_unescape); malloc'd, NULL if libcurl is missing. */
char* https_unescape(const char* s, size_t len, size_t* ret_len);
void https_response_clear(struct https_response* r);
