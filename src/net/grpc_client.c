/* SPDX-License-Identifier: Apache-2.0 */
/* A blocking gRPC unary call: see grpc_client.h. */
#include "grpc_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct call_state {
    SSL* ssl;
    int fd;
    int64_t deadline_ms;
    int32_t stream_id;
    bool closed;        /* the stream is closed */
    uint32_t rst_code;  /* its RST_STREAM/close error code */
    int http_status;    /* :status */
    bool grpc_ct;       /* content-type application/grpc[+...] */
    int grpc_status;    /* -1: none seen */
    char* grpc_message; /* raw (percent-encoded) */
    uint8_t* body;
    size_t body_len, max_body;
    bool too_big;
    const uint8_t* req; /* the framed request and what is sent of it */
    size_t req_len, req_off;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait for the socket until the deadline; -ETIMEDOUT when it passes */
static int wait_fd(struct call_state* s, short events) {
    int64_t left = s->deadline_ms - now_ms();
    if (left <= 0)
        return -ETIMEDOUT;
    struct pollfd p = {.fd = s->fd, .events = events};
    int r           = poll(&p, 1, (int)left);
    return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
}

/* "host:port", "[v6]:port" -> host, port */
static int split_address(const char* addr, char* host, size_t hn, char* port, size_t pn) {
    const char* colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= pn)
        return -EINVAL;
    const char* h = addr;
    size_t len    = (size_t)(colon - addr);
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']')
        h++, len -= 2;
    if (len == 0 || len >= hn)
        return -EINVAL;
    memcpy(host, h, len);
    host[len] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static int tcp_connect(struct call_state* s, const char* host, const char* port,
                       struct moat_error* err) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g != 0)
        return moat_error_set(err, -EHOSTUNREACH, "cannot resolve %s: %s", host, gai_strerror(g));
    int r = -ECONNREFUSED;
    for (struct addrinfo* a = ai; a && s->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            r = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        s->fd = fd;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        r            = errno == EINPROGRESS ? wait_fd(s, POLLOUT) : -errno;
        int soerr    = 0;
        socklen_t sl = sizeof(soerr);
        if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            break;
        if (r == 0)
            r = -soerr;
        close(fd);
        s->fd = -1;
    }
    freeaddrinfo(ai);
    if (s->fd < 0)
        return moat_error_set(err, r, "cannot connect to %s:%s: %s", host, port, strerror(-r));
    return 0;
}

/* SSL_connect/read/write on the non-blocking socket until done or the deadline */
static int ssl_retry(struct call_state* s, int ret) {
    switch (SSL_get_error(s->ssl, ret)) {
        case SSL_ERROR_WANT_READ:
            return wait_fd(s, POLLIN);
        case SSL_ERROR_WANT_WRITE:
            return wait_fd(s, POLLOUT);
        case SSL_ERROR_ZERO_RETURN:
            return -ECONNRESET;
        default:
            return -EPROTO;
    }
}

static int tls_connect(struct call_state* s, SSL_CTX* ctx, const char* name,
                       struct moat_error* err) {
    s->ssl = SSL_new(ctx);
    if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1 ||
        SSL_set_alpn_protos(s->ssl, (const unsigned char*)"\x02h2", 3) != 0 ||
        (name && SSL_set_tlsext_host_name(s->ssl, name) != 1) ||
        (name && SSL_get_verify_mode(s->ssl) != SSL_VERIFY_NONE &&
         SSL_set1_host(s->ssl, name) != 1))
        return moat_error_set(err, -ENOMEM, "cannot set up TLS");
    for (;;) {
        int r = SSL_connect(s->ssl);
        if (r == 1)
            break;
        int w = ssl_retry(s, r);
        if (w < 0) {
            char reason[256] = "the connection closed";
            unsigned long e  = ERR_peek_last_error();
            if (e)
                ERR_error_string_n(e, reason, sizeof(reason));
            else if (w == -ETIMEDOUT)
                snprintf(reason, sizeof(reason), "timed out");
            ERR_clear_error();
            return moat_error_set(err, w == -ETIMEDOUT ? w : -EPROTO, "TLS handshake: %s", reason);
        }
    }
    const unsigned char* alpn = NULL;
    unsigned alpn_len         = 0;
    SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0)
        return moat_error_set(err, -EPROTO, "the server did not select HTTP/2 (ALPN h2)");
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* nghttp2 callbacks                                                                          */

static ssize_t send_cb(nghttp2_session* session, const uint8_t* data, size_t length, int flags,
                       void* user) {
    (void)session, (void)flags;
    struct call_state* s = user;
    size_t off           = 0;
    while (off < length) {
        int n = SSL_write(s->ssl, data + off, (int)(length - off));
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (ssl_retry(s, n) < 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return (ssize_t)length;
}

static int header_cb(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                     size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                     void* user) {
    (void)session, (void)flags;
    struct call_state* s = user;
    if (frame->hd.stream_id != s->stream_id)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        s->http_status = valuelen == 3 ? atoi((const char*)value) : -1;
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        s->grpc_ct = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                     (valuelen == 16 || value[16] == '+' || value[16] == ';');
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        int v = 0;
        for (size_t i = 0; i < valuelen && v >= 0; i++)
            v = value[i] >= '0' && value[i] <= '9' && v < 1000 ? v * 10 + (value[i] - '0') : -2;
        s->grpc_status = valuelen > 0 && v >= 0 ? v : NET_GRPC_UNKNOWN;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        free(s->grpc_message);
        s->grpc_message = strndup((const char*)value, valuelen);
    }
    return 0;
}

static int data_cb(nghttp2_session* session, uint8_t flags, int32_t stream_id, const uint8_t* data,
                   size_t len, void* user) {
    (void)session, (void)flags;
    struct call_state* s = user;
    if (stream_id != s->stream_id || s->too_big)
        return 0;
    if (len > s->max_body - s->body_len) {
        s->too_big = true;
        return 0;
    }
    s->body = xrealloc(s->body, s->body_len + len);
    memcpy(s->body + s->body_len, data, len);
    s->body_len += len;
    return 0;
}

static int close_cb(nghttp2_session* session, int32_t stream_id, uint32_t code, void* user) {
    (void)session;
    struct call_state* s = user;
    if (stream_id == s->stream_id) {
        s->closed   = true;
        s->rst_code = code;
    }
    return 0;
}

static ssize_t body_read_cb(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                            size_t length, uint32_t* flags, nghttp2_data_source* src, void* user) {
    (void)session, (void)stream_id, (void)src;
    struct call_state* s = user;
    size_t n             = s->req_len - s->req_off;
    if (n > length)
        n = length;
    memcpy(buf, s->req + s->req_off, n);
    s->req_off += n;
    if (s->req_off == s->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* gRPC's percent-decoding of grpc-message (invalid escapes are kept as they are) */
static char* percent_decode(const char* in) {
    size_t n = strlen(in), o = 0;
    char* out = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        int hi = -1, lo = -1;
        if (in[i] == '%' && i + 2 < n) {
            hi = hex_digit_value(in[i + 1]);
            lo = hex_digit_value(in[i + 2]);
        }
        if (hi >= 0 && lo >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int h2_call(struct call_state* s, const struct net_grpc_call* c, const char* authority,
                   struct moat_error* err) {
    nghttp2_session_callbacks* cbs = NULL;
    nghttp2_session* h2            = NULL;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return moat_error_set(err, -ENOMEM, "out of memory");
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, data_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, close_cb);
    int r = nghttp2_session_client_new(&h2, cbs, s);
    nghttp2_session_callbacks_del(cbs);
    if (r != 0)
        return moat_error_set(err, -ENOMEM, "out of memory");

    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    r                                 = nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, settings, 1);
#define NV(n, v)                                                         \
    {                                                                    \
        (uint8_t*)(n), (uint8_t*)(v), sizeof(n) - 1, strlen(v),          \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE \
    }
    const nghttp2_nv hdrs[] = {
        NV(":method", "POST"),
        NV(":scheme", "https"),
        NV(":path", c->path),
        NV(":authority", authority),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        NV("user-agent", "moat-grpc/1"),
    };
#undef NV
    nghttp2_data_provider dp = {.read_callback = body_read_cb};
    if (r == 0) {
        s->stream_id =
            nghttp2_submit_request(h2, NULL, hdrs, sizeof(hdrs) / sizeof(hdrs[0]), &dp, NULL);
        r = s->stream_id < 0 ? s->stream_id : 0;
    }
    uint8_t buf[16384];
    while (r == 0 && !s->closed) {
        if (nghttp2_session_want_write(h2) && (r = nghttp2_session_send(h2)) != 0)
            break;
        if (s->closed)
            break;
        int n = SSL_read(s->ssl, buf, sizeof(buf));
        if (n > 0) {
            ssize_t m = nghttp2_session_mem_recv(h2, buf, (size_t)n);
            r         = m < 0 ? (int)m : 0;
            continue;
        }
        int w = ssl_retry(s, n);
        if (w < 0) {
            nghttp2_session_del(h2);
            ERR_clear_error();
            return moat_error_set(
                err, w == -ETIMEDOUT ? w : -ECONNRESET,
                w == -ETIMEDOUT ? "the call timed out" : "the connection closed during the call");
        }
    }
    nghttp2_session_del(h2);
    if (r != 0)
        return moat_error_set(err, -EPROTO, "HTTP/2: %s", nghttp2_strerror(r));
    return 0;
}

int net_grpc_call(const struct net_grpc_call* c, struct net_grpc_reply* ret,
                  struct moat_error* err) {
    *ret = (struct net_grpc_reply){0};
    char host[256], port[16];
    if (split_address(c->address, host, sizeof(host), port, sizeof(port)) < 0)
        return moat_error_set(err, -EINVAL, "invalid address %s (want host:port)", c->address);
    if (c->req_len > UINT32_MAX)
        return moat_error_set(err, -EMSGSIZE, "the request is too large");
    struct call_state s = {
        .fd          = -1,
        .deadline_ms = now_ms() + (c->timeout_ms > 0 ? c->timeout_ms : 30000),
        .grpc_status = -1,
        .max_body    = (c->max_resp ? c->max_resp : (size_t)16 << 20) + 5,
        .req_len     = c->req_len + 5,
    };
    uint8_t* framed = xmalloc(s.req_len);
    framed[0]       = 0; /* not compressed */
    framed[1]       = (uint8_t)(c->req_len >> 24);
    framed[2]       = (uint8_t)(c->req_len >> 16);
    framed[3]       = (uint8_t)(c->req_len >> 8);
    framed[4]       = (uint8_t)c->req_len;
    if (c->req_len)
        memcpy(framed + 5, c->req, c->req_len);
    s.req = framed;

    const char* name = c->server_name ? c->server_name : host;
    int r            = tcp_connect(&s, host, port, err);
    if (r == 0)
        r = tls_connect(&s, c->ctx, name, err);
    if (r == 0)
        r = h2_call(&s, c, name, err);
    if (s.ssl) {
        SSL_shutdown(s.ssl); /* close_notify; the answer is not awaited */
        SSL_free(s.ssl);
    }
    if (s.fd >= 0)
        close(s.fd);
    ERR_clear_error();
    OPENSSL_cleanse(framed, s.req_len);
    free(framed);

    if (r == 0 && s.http_status != 200)
        r = moat_error_set(err, -EPROTO, "the server answered HTTP status %d", s.http_status);
    else if (r == 0 && s.grpc_status < 0)
        r = moat_error_set(err, -EPROTO, "the server sent no grpc-status%s",
                           s.rst_code ? " (the stream was reset)" : "");
    else if (r == 0 && s.grpc_status == 0 && !s.grpc_ct)
        r = moat_error_set(err, -EPROTO, "the response is not application/grpc");
    else if (r == 0 && s.too_big)
        r = moat_error_set(err, -EMSGSIZE, "the response is larger than %zu bytes", s.max_body - 5);
    if (r == 0 && s.grpc_status == 0) {
        /* exactly one message: flag 0, its length, the bytes */
        uint32_t n = s.body_len >= 5 ? (uint32_t)s.body[1] << 24 | (uint32_t)s.body[2] << 16 |
                                           (uint32_t)s.body[3] << 8 | s.body[4]
                                     : 0;
        if (s.body_len < 5 || s.body[0] != 0 || (size_t)n != s.body_len - 5)
            r = moat_error_set(err, -EPROTO, "the response is not one uncompressed gRPC message");
        else {
            ret->resp_len = n;
            ret->resp     = xmalloc(n ? n : 1);
            memcpy(ret->resp, s.body + 5, n);
        }
    }
    if (r == 0) {
        ret->status  = s.grpc_status;
        ret->message = s.grpc_message ? percent_decode(s.grpc_message) : NULL;
    }
    if (s.body)
        OPENSSL_cleanse(s.body, s.body_len); /* an activation response carries secrets */
    free(s.body);
    free(s.grpc_message);
    return r;
}

void net_grpc_reply_clear(struct net_grpc_reply* r) {
    if (!r)
        return;
    if (r->resp)
        OPENSSL_cleanse(r->resp, r->resp_len);
    free(r->resp);
    free(r->message);
    *r = (struct net_grpc_reply){0};
}
