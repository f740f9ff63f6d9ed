/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gRPC session behind TLS on a libevent loop. MarbleRun's Coordinator requires a client
 * certificate (any: the handler checks it) and recent grpc-go requires ALPN "h2"
 * (../shared/reference/marblerun.md §4.1); a connection without either is closed after the
 * handshake. A client cannot stall the server: the handshake and idle periods time out, reading
 * pauses while the client does not take our output, and connections are capped.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/socket.h>

#include "net_internal.h"

struct conn {
    struct net_grpc_server* srv;
    struct bufferevent* bev;
    struct net_grpc_session* session; /* NULL until the handshake completed */
    bool read_paused;
    bool closing; /* the session failed: close once the output (a GOAWAY) is written */
    struct conn *prev, *next;
};

struct net_grpc_server {
    struct event_base* base;
    SSL_CTX* ssl;
    struct net_listener listener;
    struct net_grpc_server_config cfg;
    struct conn* conns;
    uint32_t n_conns;
    size_t buffered; /* request bytes held by all sessions (limits.max_server_buffered) */
    bool shutting_down;
    struct event* grace_timer;
};

static struct timeval tv_ms(uint32_t ms) {
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

static void conn_close(struct conn* c) {
    struct net_grpc_server* srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    net_grpc_session_free(c->session);
    bufferevent_free(c->bev); /* BEV_OPT_CLOSE_ON_FREE: frees the SSL and closes the fd */
    free(c);
    if (srv->shutting_down && srv->n_conns == 0)
        event_base_loopexit(srv->base, NULL);
}

/* Moves what the session has to send into the output buffer. Returns false if the connection
 * was closed. */
static bool conn_flush(struct conn* c) {
    struct evbuffer* out = bufferevent_get_output(c->bev);
    for (;;) {
        const uint8_t* data;
        size_t len;
        if (net_grpc_session_send(c->session, &data, &len) < 0) {
            conn_close(c);
            return false;
        }
        if (len == 0)
            break;
        if (evbuffer_add(out, data, len) != 0) {
            conn_close(c);
            return false;
        }
    }
    if (!net_grpc_session_alive(c->session) && evbuffer_get_length(out) == 0) {
        conn_close(c);
        return false;
    }
    return true;
}

static void conn_read(struct bufferevent* bev, void* arg) {
    struct conn* c = arg;
    if (!c->session)
        return;
    struct evbuffer* in  = bufferevent_get_input(bev);
    struct evbuffer* out = bufferevent_get_output(bev);
    while (evbuffer_get_length(in) > 0) {
        if (evbuffer_get_length(out) >= c->srv->cfg.limits.max_output_buffered) {
            /* the client is not reading our answers: stop reading its requests */
            bufferevent_disable(bev, EV_READ);
            c->read_paused = true;
            return;
        }
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        /* at most 16 KiB at a time so the output check above runs often */
        size_t n = v.iov_len < 16384 ? v.iov_len : 16384;
        if (net_grpc_session_recv(c->session, v.iov_base, n) < 0) {
            evbuffer_drain(in, evbuffer_get_length(in));
            if (!conn_flush(c)) /* the GOAWAY, if any */
                return;
            c->closing = true;
            bufferevent_disable(bev, EV_READ);
            if (evbuffer_get_length(out) == 0)
                conn_close(c);
            return;
        }
        evbuffer_drain(in, n);
        if (!conn_flush(c))
            return;
    }
}

static void conn_write(struct bufferevent* bev, void* arg) {
    struct conn* c = arg;
    if (!c->session)
        return;
    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            conn_close(c);
        return;
    }
    if (!conn_flush(c))
        return;
    if (c->read_paused) {
        c->read_paused = false;
        bufferevent_enable(bev, EV_READ);
        conn_read(bev, c);
    }
}

static int conn_handshake_done(struct conn* c) {
    SSL* ssl = bufferevent_openssl_get_ssl(c->bev);
    const unsigned char* alpn;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0)
        return -EPROTO;
    X509* peer = SSL_get0_peer_certificate(ssl);
    if (!peer)
        return -EACCES;
    unsigned char* der = NULL;
    int der_len        = i2d_X509(peer, &der);
    if (der_len <= 0)
        return -EACCES;
    int r = net_grpc_session_new(c->srv->cfg.methods, c->srv->cfg.n_methods, &c->srv->cfg.limits,
                                 der, (size_t)der_len, &c->session);
    OPENSSL_free(der);
    if (r < 0)
        return r;
    net_grpc_session_share_budget(c->session, &c->srv->buffered);
    struct timeval idle = tv_ms(c->srv->cfg.limits.idle_timeout_ms);
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    if (c->srv->shutting_down)
        net_grpc_session_goaway(c->session);
    return 0;
}

static void conn_event(struct bufferevent* bev, short what, void* arg) {
    (void)bev;
    struct conn* c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (conn_handshake_done(c) < 0) {
            conn_close(c);
            return;
        }
        if (conn_flush(c))
            conn_read(c->bev, c); /* bytes that came with the handshake */
        return;
    }
    /* EOF, error or timeout (handshake or idle) */
    conn_close(c);
}

static void on_accept(struct evconnlistener* l, evutil_socket_t fd, struct sockaddr* sa, int salen,
                      void* arg) {
    (void)l;
    (void)sa;
    (void)salen;
    struct net_grpc_server* srv = arg;
    if (srv->shutting_down || srv->n_conns >= srv->cfg.limits.max_connections) {
        evutil_closesocket(fd);
        return;
    }
    SSL* ssl = SSL_new(srv->ssl);
    if (!ssl) {
        evutil_closesocket(fd);
        return;
    }
    struct bufferevent* bev = bufferevent_openssl_socket_new(
        srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return;
    }
    struct conn* c = xcalloc(1, sizeof(*c));
    c->srv         = srv;
    c->bev         = bev;
    c->next        = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    struct timeval hs = tv_ms(srv->cfg.limits.handshake_timeout_ms);
    bufferevent_set_timeouts(bev, &hs, &hs);
    bufferevent_setcb(bev, conn_read, conn_write, conn_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static int select_h2(SSL* ssl, const unsigned char** out, unsigned char* outlen,
                     const unsigned char* in, unsigned inlen, void* arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char h2[] = {2, 'h', '2'};
    unsigned char* sel;
    if (SSL_select_next_proto(&sel, outlen, h2, sizeof(h2), in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void grpc_ssl_ctx_setup(SSL_CTX* ctx) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, net_verify_any);
    SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
}

static int ssl_ctx_from_files(const struct net_grpc_server_config* cfg, SSL_CTX** ret,
                              struct moat_error* err) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return moat_error_set(err, -ENOMEM, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (!cfg->cert_file || SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return moat_error_set(err, -EINVAL, "cannot load the TLS certificate '%s'",
                              cfg->cert_file ? cfg->cert_file : "");
    }
    if (!cfg->key_file || SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return moat_error_set(err, -EINVAL,
                              "cannot load the TLS key '%s' (or it does not match '%s')",
                              cfg->key_file ? cfg->key_file : "", cfg->cert_file);
    }
    *ret = ctx;
    return 0;
}

static int ssl_ctx_new(const struct net_grpc_server_config* cfg,
                       const struct net_tls_credentials* creds, SSL_CTX** ret,
                       struct moat_error* err) {
    SSL_CTX* ctx = NULL;
    int r        = creds ? net_ssl_ctx_new(creds, &ctx, err) : ssl_ctx_from_files(cfg, &ctx, err);
    if (r < 0)
        return r;
    grpc_ssl_ctx_setup(ctx);
    *ret = ctx;
    return 0;
}

int net_grpc_server_new(struct event_base* base, const struct net_grpc_server_config* config,
                        struct net_grpc_server** ret_server, struct moat_error* err) {
    _cleanup_(net_grpc_server_freep) struct net_grpc_server* srv = xcalloc(1, sizeof(*srv));
    srv->base                                                    = base;
    srv->cfg                                                     = *config;
    srv->cfg.creds                                               = NULL; /* borrowed */
    net_grpc_limits_fill(&srv->cfg.limits);
    int r = ssl_ctx_new(config, config->creds, &srv->ssl, err);
    if (r < 0)
        return r;
    r = net_listener_open(base, config->address, config->reuse_port, on_accept, srv, &srv->listener,
                          err);
    if (r < 0)
        return r;
    *ret_server = TAKE_PTR(srv);
    return 0;
}

int net_grpc_server_port(const struct net_grpc_server* s) {
    return s->listener.port;
}

int net_grpc_server_set_credentials(struct net_grpc_server* s,
                                    const struct net_tls_credentials* creds,
                                    struct moat_error* err) {
    SSL_CTX* ctx = NULL;
    int r        = ssl_ctx_new(&s->cfg, creds, &ctx, err);
    if (r < 0)
        return r;
    SSL_CTX_free(s->ssl); /* connections made with it hold their own reference */
    s->ssl = ctx;
    return 0;
}

static void grace_expired(evutil_socket_t fd, short what, void* arg) {
    (void)fd;
    (void)what;
    struct net_grpc_server* srv = arg;
    while (srv->conns)
        conn_close(srv->conns);
    event_base_loopexit(srv->base, NULL);
}

void net_grpc_server_shutdown(struct net_grpc_server* srv, uint32_t grace_ms) {
    if (srv->shutting_down)
        return;
    srv->shutting_down = true;
    net_listener_close(&srv->listener);
    for (struct conn *c = srv->conns, *next; c; c = next) {
        next = c->next;
        if (!c->session) {
            conn_close(c); /* still handshaking: nothing in flight */
            continue;
        }
        net_grpc_session_goaway(c->session);
        (void)conn_flush(c);
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

void net_grpc_server_free(struct net_grpc_server* srv) {
    if (!srv)
        return;
    srv->shutting_down = false; /* no loopexit from here */
    while (srv->conns)
        conn_close(srv->conns);
    if (srv->grace_timer)
        event_free(srv->grace_timer);
    net_listener_close(&srv->listener);
    SSL_CTX_free(srv->ssl);
    free(srv);
}
