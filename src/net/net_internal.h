/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the gRPC and the HTTP server of src/net (not part of the public API):
 * listen-address parsing, the listening socket, and TLS contexts from in-memory credentials.
 */
#pragma once

#include <event2/listener.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "net.h"

/* "host:port", "[v6]:port", "port" or ":port" (all IPv4 addresses); numeric hosts only.
 * Returns 0 or -EINVAL. */
int net_parse_address(const char* address, struct sockaddr_storage* ss, int* sslen) WARN_UNUSED;

/* A listening socket whose accept errors (EMFILE...) pause accepting for 1 s instead of
 * spinning. */
struct net_listener {
    struct evconnlistener* l;
    bool handed_off;      /* evhttp owns `l` (evhttp_bind_listener): close does not free it */
    struct event* resume; /* re-enables accepting after an accept() error */
    int port;             /* the bound port */
};

/* Binds and listens on `address` (SO_REUSEADDR, SO_REUSEPORT when `reuse_port`). `cb` may be
 * NULL (evhttp_bind_listener sets its own). Returns 0, -EINVAL (address), -errno (bind). */
int net_listener_open(struct event_base* base, const char* address, bool reuse_port,
                      evconnlistener_cb cb, void* arg, struct net_listener* ret,
                      struct moat_error* err) WARN_UNUSED;
/* Frees the listener (unless handed off) and the timer. Zeroed structs are fine. */
void net_listener_close(struct net_listener* nl);

/* A TLS 1.2+ server context for `creds` (certificate, chain, key: referenced, not copied).
 * Returns 0, -EINVAL (no certificate/key, or they do not match) or -ENOMEM. */
int net_ssl_ctx_new(const struct net_tls_credentials* creds, SSL_CTX** ret_ctx,
                    struct moat_error* err) WARN_UNUSED;

/* The verify callback for "any client certificate": verifying it is the handler's business. */
int net_verify_any(int ok, X509_STORE_CTX* ctx);
