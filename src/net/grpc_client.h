/* SPDX-License-Identifier: Apache-2.0 */
/* A blocking gRPC unary call over TLS (ALPN h2) with nghttp2: one connection per call, as a
 * Marble makes its one Activate at start. Needs only OpenSSL and nghttp2 (no event loop), so
 * small programs (a premain, a load generator) can link it.
 *
 * The caller configures the SSL_CTX: its client certificate, and how it verifies the server
 * (MarbleRun's premain skips verification: the Coordinator is attested by other means). */
#pragma once

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "net.h"

struct net_grpc_call {
    const char* address;     /* "host:port" or "[v6]:port" */
    const char* server_name; /* SNI, :authority and (if the ctx verifies) the checked name;
                              * NULL: the address's host */
    SSL_CTX* ctx;            /* a TLS client context (TLS_client_method) */
    const char* path;        /* "/rpc.Marble/Activate" */
    const uint8_t* req;      /* the request message (unframed) */
    size_t req_len;
    int timeout_ms;  /* for the whole call; 0: 30 s */
    size_t max_resp; /* 0: 16 MiB */
};

struct net_grpc_reply {
    int status;    /* grpc-status (enum net_grpc_status); 0 with resp set */
    char* message; /* grpc-message, percent-decoded; NULL when none */
    uint8_t* resp; /* the response message (unframed), malloc'd; NULL unless status 0 */
    size_t resp_len;
};

/* 0: the call completed and *ret holds the server's status (which may be an error); <0: the
 * call did not complete (connection, TLS, HTTP/2, framing or time-out), err says which step.
 * Free *ret with net_grpc_reply_clear. */
int net_grpc_call(const struct net_grpc_call* call, struct net_grpc_reply* ret,
                  struct moat_error* err) WARN_UNUSED;
void net_grpc_reply_clear(struct net_grpc_reply* r);
