/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transport-free gRPC unary server session: nghttp2 parses HTTP/2, this file collects each
 * request's DATA, un-frames the one gRPC message (grpc PROTOCOL-HTTP2.md: 1-byte compressed flag,
 * 4-byte big-endian length), calls the method's handler and frames the answer. Memory a client
 * can make us hold is bounded: concurrent streams (SETTINGS_MAX_CONCURRENT_STREAMS, enforced by
 * nghttp2), header bytes per stream, message size, and request bytes buffered per connection
 * and per server.
 */
#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <string.h>

#include "net.h"

#define MAX_HEADER_BYTES 16384 /* per stream, counted as HPACK does (name + value + 32) */
#define MAX_PATH_LEN     1024
#define GRPC_PREFIX      5

struct stream {
    struct net_grpc_session* s;
    struct stream *prev, *next; /* all streams of the session: nghttp2_session_del and a
                                   refused stream close without on_stream_close */
    int32_t id;
    size_t header_bytes;
    char* path;
    bool post;
    bool grpc_content_type;
    bool identity_encoding;
    char* encoding;
    uint8_t* body; /* request bytes: prefix + message */
    size_t body_len;
    bool responded;
    bool reset_after_send; /* answered early: RST_STREAM once the answer is out */
    /* response */
    uint8_t* out; /* prefix + message */
    size_t out_len, out_off;
    char status_str[12];
    char* message; /* percent-encoded */
};

struct net_grpc_session {
    nghttp2_session* h2;
    const struct net_grpc_method* methods;
    size_t n_methods;
    struct net_grpc_limits limits;
    uint8_t* peer_cert;
    size_t peer_cert_len;
    size_t buffered; /* request bytes held over all streams */
    size_t* shared;  /* the server's total, or &own_shared */
    size_t own_shared;
    struct stream* streams;
};

static void buffered_sub(struct net_grpc_session* s, size_t n) {
    s->buffered -= n;
    *s->shared -= n;
}

static void stream_free(struct stream* st) {
    if (!st)
        return;
    if (st->prev)
        st->prev->next = st->next;
    else
        st->s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    buffered_sub(st->s, st->body_len);
    free(st->path);
    free(st->encoding);
    free(st->body);
    if (st->out) /* responses carry secrets (the Coordinator's keys and parameters) */
        OPENSSL_cleanse(st->out, st->out_len);
    free(st->out);
    free(st->message);
    free(st);
}

char* net_grpc_percent_encode(const char* msg) {
    struct strbuf sb = {0};
    for (const unsigned char* p = (const unsigned char*)msg; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%')
            strbuf_putc(&sb, (char)*p);
        else
            strbuf_printf(&sb, "%%%02X", *p);
    }
    strbuf_putc(&sb, '\0');
    return strbuf_take(&sb, NULL);
}

#define NV(n, v) \
    { (uint8_t*)(n), (uint8_t*)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME }

/* A plain HTTP error (not gRPC): the request was not a gRPC call at all. */
static int respond_http(struct stream* st, const char* status) {
    nghttp2_nv hdrs[] = {NV(":status", status)};
    st->responded     = true;
    return nghttp2_submit_response(st->s->h2, st->id, hdrs, ARRAY_SIZE(hdrs), NULL);
}

/* Trailers-Only response (PROTOCOL-HTTP2.md): one HEADERS frame carrying the status. */
static int respond_status(struct stream* st, int status, const char* message) {
    st->responded = true;
    snprintf(st->status_str, sizeof(st->status_str), "%d", status);
    st->message       = net_grpc_percent_encode(message ? message : "");
    nghttp2_nv hdrs[] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
        NV("grpc-accept-encoding", "identity"),
        NV("grpc-status", st->status_str),
        NV("grpc-message", st->message),
    };
    size_t n = ARRAY_SIZE(hdrs) - (message ? 0 : 1);
    return nghttp2_submit_response(st->s->h2, st->id, hdrs, n, NULL);
}

/* Answers before the request has ended, drops what was buffered and resets the stream so the
 * client stops sending (grpc-go does the same: a status, then RST_STREAM NO_ERROR). */
static int respond_early(struct stream* st, int status, const char* message) {
    buffered_sub(st->s, st->body_len);
    st->body_len = 0;
    free(st->body);
    st->body             = NULL;
    st->reset_after_send = true;
    return respond_status(st, status, message);
}

static ssize_t read_response(nghttp2_session* h2, int32_t id, uint8_t* buf, size_t len,
                             uint32_t* flags, nghttp2_data_source* src, void* user) {
    (void)user;
    struct stream* st = src->ptr;
    size_t n          = st->out_len - st->out_off;
    if (n > len)
        n = len;
    memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv trailers[] = {NV("grpc-status", "0")};
        if (nghttp2_submit_trailer(h2, id, trailers, ARRAY_SIZE(trailers)) != 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

static int respond_message(struct stream* st, uint8_t* resp, size_t resp_len) {
    st->responded = true;
    st->out_len   = GRPC_PREFIX + resp_len;
    st->out       = xmalloc(st->out_len);
    st->out[0]    = 0;
    st->out[1]    = (uint8_t)(resp_len >> 24);
    st->out[2]    = (uint8_t)(resp_len >> 16);
    st->out[3]    = (uint8_t)(resp_len >> 8);
    st->out[4]    = (uint8_t)resp_len;
    if (resp_len)
        memcpy(st->out + GRPC_PREFIX, resp, resp_len);
    nghttp2_nv hdrs[] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
        NV("grpc-accept-encoding", "identity"),
    };
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_response};
    return nghttp2_submit_response(st->s->h2, st->id, hdrs, ARRAY_SIZE(hdrs), &dp);
}

static const struct net_grpc_method* find_method(const struct net_grpc_session* s,
                                                 const char* path) {
    for (size_t i = 0; i < s->n_methods; i++)
        if (strcmp(s->methods[i].path, path) == 0)
            return &s->methods[i];
    return NULL;
}

/* grpc-go's messages for a path that names no method (server.go handleStream). */
static int respond_unknown(struct stream* st) {
    const char* path         = st->path ? st->path : "";
    const char* slash        = path[0] == '/' ? strrchr(path, '/') : NULL;
    _cleanup_free_ char* msg = NULL;
    if (!slash || slash == path) {
        msg = xasprintf("malformed method name: \"%s\"", path);
    } else {
        size_t svc_len = (size_t)(slash - path) + 1; /* "/svc/" */
        bool known_svc = false;
        for (size_t i = 0; i < st->s->n_methods; i++)
            known_svc |= strncmp(st->s->methods[i].path, path, svc_len) == 0;
        if (known_svc)
            msg = xasprintf("unknown method %s for service %.*s", slash + 1, (int)svc_len - 2,
                            path + 1);
        else
            msg = xasprintf("unknown service %.*s", (int)svc_len - 2, path + 1);
    }
    return respond_status(st, NET_GRPC_UNIMPLEMENTED, msg);
}

static int call_handler(struct stream* st, const struct net_grpc_method* m, const uint8_t* req,
                        size_t len) {
    _cleanup_free_ uint8_t* resp = NULL;
    _cleanup_free_ char* message = NULL;
    size_t resp_len              = 0;
    int status                   = 0;
    int r = m->handler(req, len, st->s->peer_cert, st->s->peer_cert_len, &resp, &resp_len, &status,
                       &message, m->ctx);
    if (r < 0)
        return respond_status(st, NET_GRPC_INTERNAL, "internal error");
    if (status != 0)
        return respond_status(st, status, message ? message : "");
    if (resp_len > UINT32_MAX)
        r = respond_status(st, NET_GRPC_INTERNAL, "response message too large");
    else
        r = respond_message(st, resp, resp_len);
    if (resp)
        OPENSSL_cleanse(resp, resp_len);
    return r;
}

/* The request is complete (END_STREAM): check it is a unary gRPC call and answer it. */
static int handle_request(struct stream* st) {
    if (!st->post)
        return respond_http(st, "405");
    if (!st->grpc_content_type)
        return respond_http(st, "415");
    if (st->encoding && strcmp(st->encoding, "identity") != 0) {
        _cleanup_free_ char* msg =
            xasprintf("grpc: Decompressor is not installed for grpc-encoding \"%s\"", st->encoding);
        return respond_status(st, NET_GRPC_UNIMPLEMENTED, msg);
    }
    const struct net_grpc_method* m = st->path ? find_method(st->s, st->path) : NULL;
    if (!m)
        return respond_unknown(st);

    struct cursor c = cursor_init(st->body, st->body_len);
    uint8_t flag;
    uint32_t len;
    const uint8_t* msg;
    if (cur_u8(&c, &flag) < 0 || cur_u32be(&c, &len) < 0 || cur_ptr(&c, len, &msg) < 0)
        return respond_status(st, NET_GRPC_INTERNAL, "grpc: server received no complete request");
    if (c.len != 0)
        return respond_status(st, NET_GRPC_INTERNAL,
                              "grpc: client streaming protocol violation: get <nil>, want <EOF>");
    if (flag == 1)
        return respond_status(st, NET_GRPC_INTERNAL,
                              "grpc: compressed flag set with identity or empty encoding");
    if (flag != 0) {
        _cleanup_free_ char* m2 = xasprintf("grpc: received unexpected payload format %u", flag);
        return respond_status(st, NET_GRPC_INTERNAL, m2);
    }
    return call_handler(st, m, msg, len);
}

/* ---------------------------------------------------------------------------------------- */
/* nghttp2 callbacks                                                                         */

static int on_begin_headers(nghttp2_session* h2, const nghttp2_frame* frame, void* user) {
    struct net_grpc_session* s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream* st = xcalloc(1, sizeof(*st));
    st->s             = s;
    st->id            = frame->hd.stream_id;
    st->next          = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    if (nghttp2_session_set_stream_user_data(h2, st->id, st) != 0) {
        stream_free(st);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static bool header_is(const uint8_t* name, size_t len, const char* want) {
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

static int on_header(nghttp2_session* h2, const nghttp2_frame* frame, const uint8_t* name,
                     size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                     void* user) {
    (void)flags;
    (void)user;
    struct stream* st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!st || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* client trailers: ignored */
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > MAX_HEADER_BYTES)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
    if (header_is(name, namelen, ":path") && !st->path && valuelen <= MAX_PATH_LEN)
        st->path = xstrndup((const char*)value, valuelen);
    else if (header_is(name, namelen, ":method"))
        st->post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    else if (header_is(name, namelen, "content-type"))
        /* "application/grpc" or "application/grpc+proto" etc. */
        st->grpc_content_type = valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                                (valuelen == 16 || value[16] == '+' || value[16] == ';');
    else if (header_is(name, namelen, "grpc-encoding") && !st->encoding)
        st->encoding = xstrndup((const char*)value, valuelen);
    return 0;
}

static int on_data_chunk(nghttp2_session* h2, uint8_t flags, int32_t id, const uint8_t* data,
                         size_t len, void* user) {
    (void)flags;
    struct net_grpc_session* s = user;
    struct stream* st          = nghttp2_session_get_stream_user_data(h2, id);
    if (!st || st->responded)
        return 0;
    size_t max = GRPC_PREFIX + s->limits.max_message;
    if (len > max - st->body_len) {
        /* grpc-go's text (rpc_util.go recvMsg), with the length the prefix declares */
        uint8_t prefix[GRPC_PREFIX] = {0};
        size_t have                 = st->body_len < GRPC_PREFIX ? st->body_len : GRPC_PREFIX;
        if (have)
            memcpy(prefix, st->body, have);
        memcpy(prefix + have, data, GRPC_PREFIX - have < len ? GRPC_PREFIX - have : len);
        uint64_t declared = (uint64_t)prefix[1] << 24 | (uint64_t)prefix[2] << 16 |
                            (uint64_t)prefix[3] << 8 | prefix[4];
        _cleanup_free_ char* msg =
            xasprintf("grpc: received message larger than max (%llu vs. %zu)",
                      (unsigned long long)declared, s->limits.max_message);
        return respond_early(st, NET_GRPC_RESOURCE_EXHAUSTED, msg) ? NGHTTP2_ERR_CALLBACK_FAILURE
                                                                   : 0;
    }
    if (len > s->limits.max_conn_buffered - s->buffered ||
        len > s->limits.max_server_buffered - *s->shared)
        return respond_early(st, NET_GRPC_RESOURCE_EXHAUSTED,
                             "grpc: too many request bytes buffered")
                   ? NGHTTP2_ERR_CALLBACK_FAILURE
                   : 0;
    st->body = xrealloc(st->body, st->body_len + len);
    memcpy(st->body + st->body_len, data, len);
    st->body_len += len;
    s->buffered += len;
    *s->shared += len;
    return 0;
}

static int on_frame_recv(nghttp2_session* h2, const nghttp2_frame* frame, void* user) {
    (void)user;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct stream* st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!st || st->responded)
        return 0;
    int r = handle_request(st);
    /* the request bytes are no longer needed */
    buffered_sub(st->s, st->body_len);
    st->body_len = 0;
    free(st->body);
    st->body = NULL;
    return r == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* The RST_STREAM of an early answer goes out after the answer: submitted together, nghttp2
 * would send the reset first and drop the HEADERS, and the client would see no status. */
static int on_frame_send(nghttp2_session* h2, const nghttp2_frame* frame, void* user) {
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS || !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct stream* st = nghttp2_session_get_stream_user_data(h2, frame->hd.stream_id);
    if (!st || !st->reset_after_send)
        return 0;
    st->reset_after_send = false;
    return nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR) == 0
               ? 0
               : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_stream_close(nghttp2_session* h2, int32_t id, uint32_t error_code, void* user) {
    (void)error_code;
    (void)user;
    struct stream* st = nghttp2_session_get_stream_user_data(h2, id);
    if (st) {
        (void)nghttp2_session_set_stream_user_data(h2, id, NULL);
        stream_free(st);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

void net_grpc_limits_fill(struct net_grpc_limits* l) {
    if (!l->max_message)
        l->max_message = 4u << 20;
    if (!l->max_conn_buffered)
        l->max_conn_buffered = 16u << 20;
    if (!l->max_server_buffered)
        l->max_server_buffered = 256u << 20;
    if (!l->max_output_buffered)
        l->max_output_buffered = 1u << 20;
    if (!l->max_streams)
        l->max_streams = 100;
    if (!l->max_connections)
        l->max_connections = 1024;
    if (!l->handshake_timeout_ms)
        l->handshake_timeout_ms = 10000;
    if (!l->idle_timeout_ms)
        l->idle_timeout_ms = 120000;
}

int net_grpc_session_new(const struct net_grpc_method* methods, size_t n_methods,
                         const struct net_grpc_limits* limits, const uint8_t* peer_cert_der,
                         size_t cert_len, struct net_grpc_session** ret_session) {
    struct net_grpc_session* s = xcalloc(1, sizeof(*s));
    s->methods                 = methods;
    s->n_methods               = n_methods;
    s->shared                  = &s->own_shared;
    if (limits)
        s->limits = *limits;
    net_grpc_limits_fill(&s->limits);
    if (cert_len) {
        s->peer_cert = xmalloc(cert_len);
        memcpy(s->peer_cert, peer_cert_der, cert_len);
        s->peer_cert_len = cert_len;
    }

    nghttp2_session_callbacks* cbs = NULL;
    nghttp2_option* opt            = NULL;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        net_grpc_session_free(s);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    /* a peer that never reads our SETTINGS/PING ACKs must not queue them without bound */
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    int r = nghttp2_session_server_new2(&s->h2, cbs, s, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (r != 0) {
        net_grpc_session_free(s);
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->limits.max_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_BYTES},
    };
    if (nghttp2_submit_settings(s->h2, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv)) != 0) {
        net_grpc_session_free(s);
        return -ENOMEM;
    }
    *ret_session = s;
    return 0;
}

void net_grpc_session_free(struct net_grpc_session* s) {
    if (!s)
        return;
    nghttp2_session_del(s->h2);
    while (s->streams)
        stream_free(s->streams);
    free(s->peer_cert);
    free(s);
}

void net_grpc_session_share_budget(struct net_grpc_session* s, size_t* shared) {
    *shared += s->buffered;
    s->shared = shared;
}

int net_grpc_session_recv(struct net_grpc_session* s, const uint8_t* data, size_t len) {
    ssize_t n = nghttp2_session_mem_recv(s->h2, data, len);
    return n < 0 || (size_t)n != len ? -EPROTO : 0;
}

int net_grpc_session_send(struct net_grpc_session* s, const uint8_t** ret_data, size_t* ret_len) {
    const uint8_t* data = NULL;
    ssize_t n           = nghttp2_session_mem_send(s->h2, &data);
    if (n < 0)
        return -EPROTO;
    *ret_data = data;
    *ret_len  = (size_t)n;
    return 0;
}

bool net_grpc_session_alive(const struct net_grpc_session* s) {
    return nghttp2_session_want_read(s->h2) || nghttp2_session_want_write(s->h2);
}

void net_grpc_session_goaway(struct net_grpc_session* s) {
    (void)nghttp2_submit_goaway(s->h2, NGHTTP2_FLAG_NONE,
                                nghttp2_session_get_last_proc_stream_id(s->h2), NGHTTP2_NO_ERROR,
                                NULL, 0);
}
