/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An HTTP/1.1 server on libevent's evhttp, over TLS (bufferevent_openssl) or plain, for the
 * Coordinator's client REST API (../shared/reference/marblerun.md §3.5: HTTPS, a client
 * certificate requested but optional, as Go's tls.RequestClientCert) and its Prometheus
 * listener (plain HTTP).
 *
 * evhttp hides its connections, so each one is tracked from the bufferevent we create for it
 * (evhttp_set_bevcb): we hold an extra reference on it until the same loop pass, then find the
 * evhttp_connection through the bufferevent's callback argument and hook its close callback.
 * That gives the connection count (max_connections), graceful shutdown (close idle
 * connections, finish busy ones), and a deadline for one whole request (a slowloris client that
 * trickles a byte at a time never trips an inactivity timeout).
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <string.h>

#include "net_internal.h"

#define HTTP_DEFAULT_MAX_BODY   ((size_t)32 << 20)
#define HTTP_DEFAULT_MAX_CONNS  1024u
#define HTTP_DEFAULT_TIMEOUT_MS 60000u
#define HTTP_MAX_HEADERS_SIZE   (64 * 1024)

struct conn {
    struct net_http_server* srv;
    struct bufferevent* bev;         /* holds our extra reference until attached */
    struct evhttp_connection* evcon; /* NULL until attached */
    struct evbuffer_cb_entry* in_cb; /* marks the connection busy on request bytes */
    struct event* deadline;          /* one request, from its first byte */
    bool busy;                       /* a request is being received or answered */
    bool reject;                     /* beyond max_connections: closed when attached */
    struct conn *prev, *next;
};

struct net_http_server {
    struct event_base* base;
    struct evhttp* http;
    struct evhttp_bound_socket* bound;
    struct net_listener listener;
    SSL_CTX* ssl; /* NULL: plain HTTP */
    struct net_http_server_config cfg;
    struct conn* conns;
    uint32_t n_conns;
    struct event* attach; /* hooks freshly accepted connections (see the top comment) */
    struct event* grace_timer;
    bool shutting_down;
};

static struct timeval tv_ms(uint32_t ms) {
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* ---------------------------------------------------------------------------------------- */
/* Connection tracking                                                                      */

static void conn_unlink(struct conn* c) {
    struct net_http_server* srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    if (c->in_cb)
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    if (c->deadline)
        event_free(c->deadline);
    free(c);
    if (srv->shutting_down && srv->n_conns == 0)
        event_base_loopexit(srv->base, NULL);
}

/* evhttp is freeing the connection (called before it frees the bufferevent). */
static void conn_closed(struct evhttp_connection* evcon, void* arg) {
    (void)evcon;
    conn_unlink(arg);
}

static void conn_deadline(evutil_socket_t fd, short what, void* arg) {
    (void)fd;
    (void)what;
    struct conn* c = arg;
    if (c->evcon)
        evhttp_connection_free(c->evcon); /* conn_closed frees c */
}

static void conn_input(struct evbuffer* buf, const struct evbuffer_cb_info* info, void* arg) {
    (void)buf;
    struct conn* c = arg;
    if (info->n_added == 0 || c->busy)
        return;
    c->busy           = true;
    struct timeval tv = tv_ms(c->srv->cfg.timeout_ms);
    if (c->deadline)
        evtimer_add(c->deadline, &tv);
}

/* The response was written: the connection is idle until the next request's first byte. */
static void request_complete(struct evhttp_request* req, void* arg) {
    (void)req;
    struct conn* c = arg;
    c->busy        = false;
    if (c->deadline)
        evtimer_del(c->deadline);
}

static void attach_pending(evutil_socket_t fd, short what, void* arg) {
    (void)fd;
    (void)what;
    struct net_http_server* srv = arg;
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->evcon)
            continue;
        struct bufferevent* bev = c->bev;
        void* cbarg             = NULL;
        bufferevent_getcb(bev, NULL, NULL, NULL, &cbarg);
        if (!cbarg) {
            /* evhttp already gave up on it (bufferevent_free cleared the callbacks) */
            conn_unlink(c);
            bufferevent_decref(bev);
            continue;
        }
        c->evcon = cbarg;
        evhttp_connection_set_closecb(c->evcon, conn_closed, c);
        bufferevent_decref(bev);
        if (c->reject || srv->shutting_down)
            evhttp_connection_free(c->evcon);
    }
}

static struct bufferevent* make_bev(struct event_base* base, void* arg) {
    struct net_http_server* srv = arg;
    struct bufferevent* bev     = NULL;
    bool reject                 = srv->n_conns >= srv->cfg.max_connections;
    if (srv->ssl) {
        SSL* ssl = SSL_new(srv->ssl); /* takes a reference on the current context */
        if (ssl) {
            bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
            if (!bev)
                SSL_free(ssl);
        }
        /* never let evhttp fall back to plain HTTP on a TLS port: close it when attached */
        if (!bev)
            reject = true;
    }
    if (!bev)
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!bev)
        return NULL;
    struct conn* c = xcalloc(1, sizeof(*c));
    c->srv         = srv;
    c->bev         = bev;
    c->reject      = reject;
    c->deadline    = evtimer_new(base, conn_deadline, c);
    c->in_cb       = evbuffer_add_cb(bufferevent_get_input(bev), conn_input, c);
    c->next        = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    /* the TLS handshake and the first request share the deadline of one request */
    struct timeval tv = tv_ms(srv->cfg.timeout_ms);
    if (c->deadline)
        evtimer_add(c->deadline, &tv);
    bufferevent_incref(bev); /* until attach_pending ran */
    event_active(srv->attach, EV_TIMEOUT, 1);
    return bev;
}

/* ---------------------------------------------------------------------------------------- */
/* Requests                                                                                 */

static const char* method_name(enum evhttp_cmd_type t) {
    static const struct {
        enum evhttp_cmd_type type;
        const char* name;
    } table[] = {
        {EVHTTP_REQ_GET, "GET"},       {EVHTTP_REQ_POST, "POST"},
        {EVHTTP_REQ_HEAD, "HEAD"},     {EVHTTP_REQ_PUT, "PUT"},
        {EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_OPTIONS, "OPTIONS"},
        {EVHTTP_REQ_TRACE, "TRACE"},   {EVHTTP_REQ_CONNECT, "CONNECT"},
        {EVHTTP_REQ_PATCH, "PATCH"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(table); i++)
        if (table[i].type == t)
            return table[i].name;
    return "UNKNOWN";
}

static struct conn* conn_of(struct net_http_server* srv, struct evhttp_connection* evcon) {
    for (struct conn* c = srv->conns; c; c = c->next)
        if (c->evcon == evcon)
            return c;
    return NULL;
}

/* Bodies may carry secrets (GET /secrets): wiped when libevent is done with them. */
static void wipe_body(const void* data, size_t len, void* extra) {
    (void)extra;
    OPENSSL_cleanse((void*)data, len);
    free((void*)data);
}

const char* net_http_header(const struct net_http_request* req, const char* name) {
    return req->headers ? evhttp_find_header(req->headers, name) : NULL;
}

/* Adds the handler's extra headers and frees their values. */
static void add_extra_headers(struct evhttp_request* req, struct net_http_response* resp) {
    struct evkeyvalq* out = evhttp_request_get_output_headers(req);
    size_t n =
        resp->n_headers < NET_HTTP_MAX_EXTRA_HEADERS ? resp->n_headers : NET_HTTP_MAX_EXTRA_HEADERS;
    for (size_t i = 0; i < NET_HTTP_MAX_EXTRA_HEADERS; i++) {
        char* v = resp->headers[i].value;
        if (i < n && v && resp->headers[i].name && !strpbrk(v, "\r\n"))
            evhttp_add_header(out, resp->headers[i].name, v);
        free(v);
        resp->headers[i].value = NULL;
    }
}

/* Sends the reply; takes `body` (malloc'd or NULL). */
static void send_reply(struct net_http_server* srv, struct evhttp_request* req, int status,
                       const char* content_type, uint8_t* body, size_t len) {
    struct evkeyvalq* out = evhttp_request_get_output_headers(req);
    struct evbuffer* buf  = evhttp_request_get_output_buffer(req);
    bool no_body          = status < 200 || status == 204 || status == 304;
    if (!no_body) {
        char clen[32];
        snprintf(clen, sizeof(clen), "%zu", len);
        evhttp_add_header(out, "Content-Type", content_type ? content_type : "application/json");
        evhttp_add_header(out, "Content-Length", clen);
    }
    if (!no_body && len > 0 && evbuffer_add_reference(buf, body, len, wipe_body, NULL) == 0)
        body = NULL; /* libevent owns it now */
    if (body)
        wipe_body(body, len, NULL);
    if (srv->shutting_down)
        evhttp_add_header(out, "Connection", "close");
    evhttp_send_reply(req, status, NULL, NULL);
}

/* The peer certificate of a TLS connection, as DER (OPENSSL_malloc'd), or NULL. */
static unsigned char* peer_cert_der(struct evhttp_request* req, int* ret_len) {
    struct evhttp_connection* evcon = evhttp_request_get_connection(req);
    struct bufferevent* bev         = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    SSL* ssl                        = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    X509* peer                      = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (!peer)
        return NULL;
    unsigned char* der = NULL;
    int len            = i2d_X509(peer, &der);
    if (len <= 0)
        return NULL;
    *ret_len = len;
    return der;
}

static void handle_request(struct evhttp_request* req, void* arg) {
    struct net_http_server* srv = arg;
    struct conn* c              = conn_of(srv, evhttp_request_get_connection(req));
    if (c)
        evhttp_request_set_on_complete_cb(req, request_complete, c);

    const struct evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
    const char* raw_path         = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!raw_path || !*raw_path)
        raw_path = "/";
    size_t path_len           = 0;
    _cleanup_free_ char* path = evhttp_uridecode(raw_path, 0, &path_len);
    if (!path || strlen(path) != path_len) { /* %00: the handler's C string would lie */
        send_reply(srv, req, 400, "text/plain", (uint8_t*)xstrdup("bad request path\n"), 17);
        return;
    }

    struct evbuffer* in = evhttp_request_get_input_buffer(req);
    size_t body_len     = evbuffer_get_length(in);
    if (body_len > srv->cfg.max_body) {
        send_reply(srv, req, 413, "text/plain", (uint8_t*)xstrdup("request body too large\n"), 23);
        return;
    }
    _cleanup_free_ uint8_t* body = xmalloc(body_len + 1);
    if (evbuffer_copyout(in, body, body_len) != (ev_ssize_t)body_len) {
        send_reply(srv, req, 500, NULL, NULL, 0);
        return;
    }
    body[body_len] = '\0';

    int cert_len                 = 0;
    unsigned char* der           = srv->ssl ? peer_cert_der(req, &cert_len) : NULL;
    struct net_http_request hreq = {
        .method        = method_name(evhttp_request_get_command(req)),
        .path          = path,
        .query         = uri ? evhttp_uri_get_query(uri) : NULL,
        .body          = body,
        .body_len      = body_len,
        .peer_cert_der = der,
        .peer_cert_len = der ? (size_t)cert_len : 0,
        .headers       = evhttp_request_get_input_headers(req),
    };
    struct net_http_response resp = {0};
    int r                         = srv->cfg.handler(&hreq, &resp, srv->cfg.ctx);
    OPENSSL_free(der);
    add_extra_headers(req, &resp);
    if (r < 0) {
        if (resp.body)
            wipe_body(resp.body, resp.body_len, NULL);
        send_reply(srv, req, 500, NULL, NULL, 0);
        return;
    }
    int status = resp.status >= 100 && resp.status <= 599 ? resp.status : 500;
    send_reply(srv, req, status, resp.content_type, resp.body, resp.body ? resp.body_len : 0);
}

/* ---------------------------------------------------------------------------------------- */
/* TLS                                                                                      */

/* ALPN: HTTP/1.1 only. A client that offers only h2 gets no ALPN answer (it may fall back or
 * give up); we never select h2, which evhttp cannot speak. */
static int select_http11(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                         const unsigned char* in, unsigned inlen, void* arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    unsigned char* sel;
    if (SSL_select_next_proto(&sel, outlen, http11, sizeof(http11), in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int http_ssl_ctx(const struct net_http_server_config* cfg,
                        const struct net_tls_credentials* creds, SSL_CTX** ret,
                        struct moat_error* err) {
    SSL_CTX* ctx = NULL;
    int r        = net_ssl_ctx_new(creds, &ctx, err);
    if (r < 0)
        return r;
    /* §3.5: the client certificate is requested, never required nor verified here */
    SSL_CTX_set_verify(ctx, cfg->request_client_cert ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                       cfg->request_client_cert ? net_verify_any : NULL);
    SSL_CTX_set_alpn_select_cb(ctx, select_http11, NULL);
    *ret = ctx;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Server                                                                                   */

int net_http_server_new(struct event_base* base, const struct net_http_server_config* cfg,
                        const struct net_tls_credentials* creds, struct net_http_server** ret,
                        struct moat_error* err) {
    if (!cfg->handler)
        return moat_error_set(err, -EINVAL, "an HTTP server needs a handler");
    _cleanup_(net_http_server_freep) struct net_http_server* srv = xcalloc(1, sizeof(*srv));
    srv->base                                                    = base;
    srv->cfg                                                     = *cfg;
    if (!srv->cfg.max_body)
        srv->cfg.max_body = HTTP_DEFAULT_MAX_BODY;
    if (!srv->cfg.max_connections)
        srv->cfg.max_connections = HTTP_DEFAULT_MAX_CONNS;
    if (!srv->cfg.timeout_ms)
        srv->cfg.timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
    if (cfg->tls) {
        int r = http_ssl_ctx(cfg, creds, &srv->ssl, err);
        if (r < 0)
            return r;
    }
    srv->attach = event_new(base, -1, 0, attach_pending, srv);
    srv->http   = evhttp_new(base);
    if (!srv->attach || !srv->http)
        return moat_error_set(err, -ENOMEM, "cannot create the HTTP server");
    int r = net_listener_open(base, cfg->address, cfg->reuse_port, NULL, NULL, &srv->listener, err);
    if (r < 0)
        return r;
    srv->bound = evhttp_bind_listener(srv->http, srv->listener.l);
    if (!srv->bound)
        return moat_error_set(err, -ENOMEM, "cannot listen on '%s'", cfg->address);
    srv->listener.handed_off = true;

    struct timeval tv = tv_ms(srv->cfg.timeout_ms);
    evhttp_set_timeout_tv(srv->http, &tv);
    evhttp_set_max_headers_size(srv->http, HTTP_MAX_HEADERS_SIZE);
    /* evhttp answers 413 itself (without calling us) once the body outgrows this */
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)srv->cfg.max_body);
    evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_bevcb(srv->http, make_bev, srv);
    evhttp_set_gencb(srv->http, handle_request, srv);
    *ret = TAKE_PTR(srv);
    return 0;
}

int net_http_server_port(const struct net_http_server* s) {
    return s->listener.port;
}

int net_http_server_set_credentials(struct net_http_server* s,
                                    const struct net_tls_credentials* creds,
                                    struct moat_error* err) {
    if (!s->ssl)
        return moat_error_set(err, -EINVAL, "a plain HTTP server has no TLS credentials");
    SSL_CTX* ctx = NULL;
    int r        = http_ssl_ctx(&s->cfg, creds, &ctx, err);
    if (r < 0)
        return r;
    SSL_CTX_free(s->ssl); /* connections made with it hold their own reference */
    s->ssl = ctx;
    return 0;
}

static void close_all(struct net_http_server* srv) {
    while (srv->conns) {
        struct conn* c = srv->conns;
        if (c->evcon) {
            evhttp_connection_free(c->evcon); /* conn_closed unlinks c */
        } else {
            struct bufferevent* bev = c->bev;
            conn_unlink(c);
            bufferevent_decref(bev); /* evhttp still owns it and frees it in evhttp_free */
        }
    }
}

static void grace_expired(evutil_socket_t fd, short what, void* arg) {
    (void)fd;
    (void)what;
    struct net_http_server* srv = arg;
    close_all(srv);
    event_base_loopexit(srv->base, NULL);
}

void net_http_server_shutdown(struct net_http_server* srv, uint32_t grace_ms) {
    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    if (srv->bound) {
        evhttp_del_accept_socket(srv->http, srv->bound); /* frees the listener */
        srv->bound = NULL;
        net_listener_close(&srv->listener);
    }
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (c->evcon && !c->busy)
            evhttp_connection_free(c->evcon); /* idle keep-alive: nothing in flight */
    }
    if (srv->n_conns == 0) {
        event_base_loopexit(srv->base, NULL);
        return;
    }
    srv->grace_timer  = evtimer_new(srv->base, grace_expired, srv);
    struct timeval tv = tv_ms(grace_ms);
    if (srv->grace_timer)
        evtimer_add(srv->grace_timer, &tv);
}

void net_http_server_free(struct net_http_server* srv) {
    if (!srv)
        return;
    srv->shutting_down = false; /* no loopexit from here */
    close_all(srv);
    if (srv->http)
        evhttp_free(srv->http); /* frees the bound listener */
    net_listener_close(&srv->listener);
    if (srv->grace_timer)
        event_free(srv->grace_timer);
    if (srv->attach)
        event_free(srv->attach);
    SSL_CTX_free(srv->ssl);
    free(srv);
}
