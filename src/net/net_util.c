/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the gRPC and the HTTP server share: the listening socket and the TLS context.
 */
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <pthread.h>
#include <string.h>

#include "net_internal.h"

int net_parse_address(const char* address, struct sockaddr_storage* ss, int* sslen) {
    char host[64]        = "0.0.0.0";
    const char* port_str = address;
    const char* colon    = strrchr(address, ':');
    if (colon) {
        const char* h = address;
        size_t hlen   = (size_t)(colon - address);
        if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
            h++;
            hlen -= 2;
            if (hlen == 0)
                return -EINVAL;
        }
        if (hlen >= sizeof(host))
            return -EINVAL;
        if (hlen > 0) { /* ":port": all addresses, as Go's net.Listen */
            memcpy(host, h, hlen);
            host[hlen] = '\0';
        }
        port_str = colon + 1;
    }
    char* end;
    errno              = 0;
    unsigned long port = strtoul(port_str, &end, 10);
    if (errno || end == port_str || *end || port > 65535 || port_str[0] == '-' ||
        port_str[0] == '+' || port_str[0] == ' ')
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in* in4  = (struct sockaddr_in*)ss;
    struct sockaddr_in6* in6 = (struct sockaddr_in6*)ss;
    if (evutil_inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port   = htons((uint16_t)port);
        *sslen          = (int)sizeof(*in4);
    } else if (evutil_inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port   = htons((uint16_t)port);
        *sslen           = (int)sizeof(*in6);
    } else {
        return -EINVAL;
    }
    return 0;
}

static void accept_resume(evutil_socket_t fd, short what, void* arg) {
    (void)fd;
    (void)what;
    struct net_listener* nl = arg;
    evconnlistener_enable(nl->l);
}

/* The error callback gets the listener's callback argument, which evhttp_bind_listener replaces
 * with its own: the listeners are found through this registry instead (one per server thread). */
static pthread_mutex_t g_listeners_lock = PTHREAD_MUTEX_INITIALIZER;
static struct net_listener** g_listeners;
static size_t g_n_listeners, g_listeners_cap;

static void registry_add(struct net_listener* nl) {
    pthread_mutex_lock(&g_listeners_lock);
    g_listeners = xgrow(g_listeners, &g_listeners_cap, g_n_listeners + 1, sizeof(*g_listeners));
    g_listeners[g_n_listeners++] = nl;
    pthread_mutex_unlock(&g_listeners_lock);
}

static void registry_remove(struct net_listener* nl) {
    pthread_mutex_lock(&g_listeners_lock);
    for (size_t i = 0; i < g_n_listeners; i++)
        if (g_listeners[i] == nl) {
            g_listeners[i] = g_listeners[--g_n_listeners];
            break;
        }
    pthread_mutex_unlock(&g_listeners_lock);
}

static struct net_listener* registry_find(const struct evconnlistener* l) {
    struct net_listener* found = NULL;
    pthread_mutex_lock(&g_listeners_lock);
    for (size_t i = 0; i < g_n_listeners && !found; i++)
        if (g_listeners[i]->l == l)
            found = g_listeners[i];
    pthread_mutex_unlock(&g_listeners_lock);
    return found;
}

/* accept() failed (EMFILE, ENFILE, ENOBUFS...): the pending connection stays in the backlog and
 * the socket stays readable, so without a pause the loop would spin. Pause accepting for 1 s. */
static void on_accept_error(struct evconnlistener* l, void* arg) {
    (void)arg;
    struct net_listener* nl = registry_find(l);
    evconnlistener_disable(l);
    struct timeval tv = {.tv_sec = 1};
    if (!nl || !nl->resume || evtimer_add(nl->resume, &tv) < 0)
        evconnlistener_enable(l);
}

int net_listener_open(struct event_base* base, const char* address, bool reuse_port,
                      evconnlistener_cb cb, void* arg, struct net_listener* ret,
                      struct moat_error* err) {
    struct sockaddr_storage ss;
    int sslen;
    if (!address || net_parse_address(address, &ss, &sslen) < 0)
        return moat_error_set(err, -EINVAL, "invalid listen address '%s'", address ? address : "");
    unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
    if (reuse_port)
        flags |= LEV_OPT_REUSEABLE_PORT;
    errno = 0;
    struct evconnlistener* l =
        evconnlistener_new_bind(base, cb, arg, flags, -1, (struct sockaddr*)&ss, sslen);
    if (!l) {
        int e = errno ? errno : EADDRNOTAVAIL;
        return moat_error_set_errno(err, -e, "cannot listen on '%s'", address);
    }
    /* accepted sockets inherit it: small responses (a gRPC reply, its trailers; TLS handshake
     * flights) go out at once instead of waiting for the peer's delayed ACK (40 ms on Linux) */
    int one = 1;
    (void)setsockopt(evconnlistener_get_fd(l), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct event* resume = evtimer_new(base, accept_resume, ret);
    if (!resume) {
        evconnlistener_free(l);
        return moat_error_set(err, -ENOMEM, "cannot create a timer");
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    int port       = 0;
    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr*)&bound, &blen) == 0)
        port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6*)&bound)->sin6_port
                                                 : ((struct sockaddr_in*)&bound)->sin_port);
    evconnlistener_set_error_cb(l, on_accept_error);
    *ret = (struct net_listener){.l = l, .resume = resume, .port = port};
    registry_add(ret);
    return 0;
}

void net_listener_close(struct net_listener* nl) {
    if (nl->resume)
        registry_remove(nl);
    if (nl->l && !nl->handed_off)
        evconnlistener_free(nl->l);
    if (nl->resume)
        event_free(nl->resume);
    *nl = (struct net_listener){0};
}

int net_verify_any(int ok, X509_STORE_CTX* ctx) {
    (void)ok;
    (void)ctx;
    return 1;
}

int net_ssl_ctx_new(const struct net_tls_credentials* creds, SSL_CTX** ret_ctx,
                    struct moat_error* err) {
    if (!creds || !creds->cert || !creds->key)
        return moat_error_set(err, -EINVAL, "TLS credentials need a certificate and a key");
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return moat_error_set(err, -ENOMEM, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* no resumption: a Marble connects once per start, an API client once per command. With
     * NO_TICKET alone a TLS 1.3 server still sends two tickets per handshake and keeps their
     * sessions in its cache. */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    bool ok = SSL_CTX_use_certificate(ctx, creds->cert) == 1 &&
              SSL_CTX_use_PrivateKey(ctx, creds->key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    for (int i = 0; ok && creds->chain && i < sk_X509_num(creds->chain); i++)
        ok = SSL_CTX_add1_chain_cert(ctx, sk_X509_value(creds->chain, i)) == 1;
    if (!ok) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return moat_error_set(err, -EINVAL,
                              "cannot use the TLS certificate and key (does the key match?)");
    }
    *ret_ctx = ctx;
    return 0;
}
