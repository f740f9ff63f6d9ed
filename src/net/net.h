/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat net: the one public header of src/net.
 *
 * A gRPC unary server over HTTP/2 (nghttp2) over TLS (OpenSSL) on a libevent loop, as the
 * MarbleRun Coordinator serves `/rpc.Marble/Activate` (../shared/reference/marblerun.md §4.1):
 * ALPN "h2" required, a client certificate required (any certificate: verifying it is the
 * handler's business, it gets the DER), gRPC length-prefixed framing, grpc-status/grpc-message
 * trailers. Single-threaded: everything runs on the caller's event_base, handlers included.
 *
 * Two layers: `net_grpc_session_*` is the transport-free HTTP/2 + gRPC logic (bytes in, bytes
 * out; the fuzzer drives it directly), `net_grpc_server_*` puts it behind TLS sockets.
 *
 * And an HTTP/1.1 server (`net_http_server_*`, evhttp), over TLS or plain, for the
 * Coordinator's client REST API (marblerun.md §3.5) and its Prometheus listener.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common.h"

struct event_base;

/* TLS credentials: a leaf certificate, optional extra chain certificates, and the leaf's
 * private key. Borrowed: a server takes its own references. */
struct net_tls_credentials {
    X509* cert;
    STACK_OF(X509) * chain; /* may be NULL */
    EVP_PKEY* key;
};

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum net_grpc_status {
    NET_GRPC_OK                  = 0,
    NET_GRPC_CANCELLED           = 1,
    NET_GRPC_UNKNOWN             = 2,
    NET_GRPC_INVALID_ARGUMENT    = 3,
    NET_GRPC_DEADLINE_EXCEEDED   = 4,
    NET_GRPC_NOT_FOUND           = 5,
    NET_GRPC_ALREADY_EXISTS      = 6,
    NET_GRPC_PERMISSION_DENIED   = 7,
    NET_GRPC_RESOURCE_EXHAUSTED  = 8,
    NET_GRPC_FAILED_PRECONDITION = 9,
    NET_GRPC_ABORTED             = 10,
    NET_GRPC_OUT_OF_RANGE        = 11,
    NET_GRPC_UNIMPLEMENTED       = 12,
    NET_GRPC_INTERNAL            = 13,
    NET_GRPC_UNAVAILABLE         = 14,
    NET_GRPC_DATA_LOSS           = 15,
    NET_GRPC_UNAUTHENTICATED     = 16,
};

/*
 * A unary method. `req`/`len` is the request message (unframed protobuf bytes, valid for the
 * call only); `peer_cert_der` the client's certificate (never NULL on a TLS connection; may be
 * NULL with cert_len 0 when driven through a bare session, e.g. by the fuzzer).
 * On return:
 *   *grpc_status == 0: *resp (malloc'd, may be NULL for an empty message) / *resp_len is sent;
 *   *grpc_status != 0: the call fails with that status and *grpc_message (malloc'd or NULL;
 *   sent percent-encoded); *resp is ignored (freed if set).
 * The server owns and frees *resp and *grpc_message. A negative return is an internal error:
 * the call fails with INTERNAL.
 */
typedef int (*net_grpc_handler)(const uint8_t* req, size_t len, const uint8_t* peer_cert_der,
                                size_t cert_len, uint8_t** resp, size_t* resp_len, int* grpc_status,
                                char** grpc_message, void* ctx);

/* Limits; a zero field takes its default. */
struct net_grpc_limits {
    size_t max_message;            /* request message bytes; default 4 MiB (grpc's default) */
    size_t max_conn_buffered;      /* request bytes buffered per connection; default 16 MiB */
    size_t max_server_buffered;    /* ... over all connections of a server; default 256 MiB */
    size_t max_output_buffered;    /* response bytes queued before reading pauses; 1 MiB */
    uint32_t max_streams;          /* concurrent streams per connection; default 100 */
    uint32_t max_connections;      /* per server; default 1024 */
    uint32_t handshake_timeout_ms; /* TLS handshake; default 10 s */
    uint32_t idle_timeout_ms;      /* no bytes from the client; default 120 s */
};

/* Replaces the zero fields of `l` with the defaults. */
void net_grpc_limits_fill(struct net_grpc_limits* l);

/* A method table (STYLE §7): path -> handler. Not copied; must outlive the server/session. */
struct net_grpc_method {
    const char* path; /* "/rpc.Marble/Activate" */
    net_grpc_handler handler;
    void* ctx;
};

/* ---------------------------------------------------------------------------------------- */
/* Transport-free session                                                                   */

struct net_grpc_session;

/* A server-side HTTP/2 session. The SETTINGS frame is queued at once. `peer_cert_der` is
 * copied. Returns 0, -ENOMEM. */
int net_grpc_session_new(const struct net_grpc_method* methods, size_t n_methods,
                         const struct net_grpc_limits* limits, const uint8_t* peer_cert_der,
                         size_t cert_len, struct net_grpc_session** ret_session) WARN_UNUSED;
void net_grpc_session_free(struct net_grpc_session* s);
/* Makes the session also count its buffered request bytes in `*shared` (the server's total,
 * held below limits.max_server_buffered). `shared` must outlive the session. */
void net_grpc_session_share_budget(struct net_grpc_session* s, size_t* shared);
/* Feeds bytes from the client; handlers run from here. Returns 0, or -EPROTO when the session
 * must be closed (a GOAWAY may be pending: send it, then close). */
int net_grpc_session_recv(struct net_grpc_session* s, const uint8_t* data, size_t len) WARN_UNUSED;
/* Takes the next chunk of bytes to send (pointer valid until the next session call), 0 length
 * when there is nothing to send now. Returns 0 or -EPROTO. */
int net_grpc_session_send(struct net_grpc_session* s, const uint8_t** ret_data,
                          size_t* ret_len) WARN_UNUSED;
/* True while the session has something to read or write; false: close the connection. */
bool net_grpc_session_alive(const struct net_grpc_session* s);
/* Graceful shutdown: GOAWAY naming the last stream received; those streams still complete. */
void net_grpc_session_goaway(struct net_grpc_session* s);

/* ---------------------------------------------------------------------------------------- */
/* TLS server on a libevent loop                                                            */

struct net_grpc_server;

struct net_grpc_server_config {
    const char* address;   /* "host:port", "[v6]:port", "port" or ":port" (all addresses) */
    const char* cert_file; /* PEM certificate chain (unless `creds`) */
    const char* key_file;  /* PEM private key (unless `creds`) */
    const struct net_tls_credentials* creds; /* in-memory credentials instead of the files */
    const struct net_grpc_method* methods;
    size_t n_methods;
    struct net_grpc_limits limits;
    bool reuse_port; /* SO_REUSEPORT: one server per thread (each its own event_base), one port */
};

/* Loads the certificate and key, binds and listens on `base`. Fails with -EINVAL (bad
 * config/certificate), -EADDRINUSE etc. (bind), and a message in `err`. `creds` is only
 * borrowed for the call. */
int net_grpc_server_new(struct event_base* base, const struct net_grpc_server_config* config,
                        struct net_grpc_server** ret_server, struct moat_error* err) WARN_UNUSED;
/* The bound port (useful after listening on port 0). */
int net_grpc_server_port(const struct net_grpc_server* s);
/* Replaces the certificate and key for new connections (the Coordinator rotates its
 * certificates); established connections keep theirs. Returns 0 or -EINVAL (they do not
 * match; the old ones stay). */
int net_grpc_server_set_credentials(struct net_grpc_server* s,
                                    const struct net_tls_credentials* creds,
                                    struct moat_error* err) WARN_UNUSED;
/* Stops accepting, sends GOAWAY on every connection and lets in-flight calls finish; when the
 * last connection closes (or after `grace_ms`), breaks `base`'s loop with event_base_loopexit.
 * Safe to call from a libevent signal callback (evsignal_new(base, SIGTERM, ...)), and twice. */
void net_grpc_server_shutdown(struct net_grpc_server* s, uint32_t grace_ms);
/* Closes whatever is left and frees the server. NULL is fine. */
void net_grpc_server_free(struct net_grpc_server* s);
static inline void net_grpc_server_freep(struct net_grpc_server** s) {
    net_grpc_server_free(*s);
}

/* Percent-encodes a grpc-message value (grpc PROTOCOL-HTTP2.md: bytes outside 0x20-0x7e and
 * '%' become %XX). Returns a malloc'd string. */
char* net_grpc_percent_encode(const char* msg);

/* ---------------------------------------------------------------------------------------- */
/* HTTP/1.1 server (evhttp) on a libevent loop                                              */

/*
 * One request, valid for the handler call only. Any method and path reaches the handler: the
 * caller routes (and answers 405/404 itself).
 */
struct net_http_request {
    const char* method;  /* "GET", "POST", ... as sent */
    const char* path;    /* percent-decoded, without the query; never contains NUL */
    const char* query;   /* the raw query string after '?', NULL when none */
    const uint8_t* body; /* NUL-terminated copy (never NULL); body_len excludes the NUL */
    size_t body_len;
    const uint8_t* peer_cert_der; /* the TLS client certificate (DER), NULL: none / plain HTTP */
    size_t peer_cert_len;
    const void* headers; /* the request's headers (libevent's); read with net_http_header() */
};

/* The value of the request header `name` (case-insensitive; the first when repeated), NULL when
 * absent. Valid for the handler call only. */
const char* net_http_header(const struct net_http_request* req, const char* name);

#define NET_HTTP_MAX_EXTRA_HEADERS 4
struct net_http_header {
    const char* name; /* a static string */
    char* value;      /* malloc'd; the server frees it (a value with CR or LF is dropped) */
};

struct net_http_response {
    int status;               /* HTTP status; 0 (or outside 100-599) = 500 */
    const char* content_type; /* a static string; NULL = "application/json" */
    uint8_t* body;            /* malloc'd or NULL; the server frees it */
    size_t body_len;
    struct net_http_header headers[NET_HTTP_MAX_EXTRA_HEADERS]; /* extra response headers */
    size_t n_headers;
};

/* A handler fills `resp` (zeroed on entry). A negative return answers 500 with an empty body
 * (resp->body is freed). Runs on the server's event_base; must not block. */
typedef int (*net_http_handler)(const struct net_http_request* req, struct net_http_response* resp,
                                void* ctx);

struct net_http_server_config {
    const char* address;      /* as net_grpc_server_config.address */
    bool tls;                 /* false: plain HTTP (the Prometheus listener) */
    bool request_client_cert; /* TLS: ask for a client certificate and accept any, or none (Go's
                                 tls.RequestClientCert: no verification, optional) */
    net_http_handler handler;
    void* ctx;
    size_t max_body;          /* request body bytes; default 32 MiB; larger: 413, no handler */
    uint32_t max_connections; /* default 1024; connections beyond are closed at once */
    uint32_t timeout_ms;      /* per connection: read/write inactivity, TLS handshake, and the
                                 whole of one request from its first byte; default 60 s */
    bool reuse_port;          /* SO_REUSEPORT, so that one server per thread can share a port */
};

struct net_http_server;

/* Binds and listens on `base`. `creds` (borrowed) is required when cfg->tls, ignored otherwise.
 * Fails with -EINVAL (config, credentials), -EADDRINUSE etc. (bind), and a message in `err`. */
int net_http_server_new(struct event_base* base, const struct net_http_server_config* cfg,
                        const struct net_tls_credentials* creds, struct net_http_server** ret,
                        struct moat_error* err) WARN_UNUSED;
/* The bound port (useful after listening on port 0). */
int net_http_server_port(const struct net_http_server* s);
/* Replaces the certificate and key for new connections; established connections keep theirs.
 * Returns 0, -EINVAL (plain server, or the key does not match; the old ones stay). */
int net_http_server_set_credentials(struct net_http_server* s,
                                    const struct net_tls_credentials* creds,
                                    struct moat_error* err) WARN_UNUSED;
/* Stops accepting, closes idle connections, lets requests in progress finish (answered with
 * "Connection: close"); when the last connection is gone (or after `grace_ms`), breaks `base`'s
 * loop with event_base_loopexit. Safe from a libevent signal callback, and twice. */
void net_http_server_shutdown(struct net_http_server* s, uint32_t grace_ms);
/* Closes whatever is left and frees the server. NULL is fine. */
void net_http_server_free(struct net_http_server* s);
static inline void net_http_server_freep(struct net_http_server** s) {
    net_http_server_free(*s);
}
