/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the gRPC session of src/net, driven in memory by an nghttp2 client session:
 * framing, statuses and messages (grpc PROTOCOL-HTTP2.md; grpc-go's texts), the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "net.h"

#define MAX_STREAMS 16

struct reply {
    char status[8];
    char grpc_status[8];
    char grpc_message[256];
    uint8_t data[256];
    size_t data_len;
    bool closed;
    uint32_t error_code;
};

struct body {
    const uint8_t* p;
    size_t len;
    bool end;
};

struct client {
    nghttp2_session* h2;
    struct reply replies[MAX_STREAMS];
    struct body bodies[MAX_STREAMS];
};

static int g_calls;

static int echo(const uint8_t* req, size_t len, const uint8_t* cert, size_t cert_len,
                uint8_t** resp, size_t* resp_len, int* status, char** message, void* ctx) {
    (void)ctx;
    g_calls++;
    assert_int_equal(cert_len, 3);
    assert_memory_equal(cert, "DER", 3);
    if (len >= 4 && memcmp(req, "fail", 4) == 0) {
        *status  = NET_GRPC_PERMISSION_DENIED;
        *message = xstrdup("bad 100% \xc3\xa9\n");
        return 0;
    }
    if (len >= 5 && memcmp(req, "crash", 5) == 0)
        return -EIO;
    *resp     = xmalloc(len + 1);
    *resp_len = len;
    for (size_t i = 0; i < len; i++)
        (*resp)[i] = req[len - 1 - i];
    return 0;
}

static const struct net_grpc_method g_methods[] = {{"/rpc.Marble/Activate", echo, NULL}};

static struct reply* reply_of(struct client* c, int32_t id) {
    assert_true(id > 0 && id / 2 < MAX_STREAMS);
    return &c->replies[id / 2];
}

static int on_header(nghttp2_session* h2, const nghttp2_frame* frame, const uint8_t* name,
                     size_t namelen, const uint8_t* value, size_t valuelen, uint8_t flags,
                     void* user) {
    (void)h2;
    (void)flags;
    struct reply* r = reply_of(user, frame->hd.stream_id);
    char* dst       = NULL;
    size_t cap      = 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0)
        dst = r->status, cap = sizeof(r->status);
    else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        dst = r->grpc_status, cap = sizeof(r->grpc_status);
    else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
        dst = r->grpc_message, cap = sizeof(r->grpc_message);
    if (dst)
        snprintf(dst, cap, "%.*s", (int)valuelen, value);
    return 0;
}

static int on_data(nghttp2_session* h2, uint8_t flags, int32_t id, const uint8_t* data, size_t len,
                   void* user) {
    (void)h2;
    (void)flags;
    struct reply* r = reply_of(user, id);
    assert_true(r->data_len + len <= sizeof(r->data));
    memcpy(r->data + r->data_len, data, len);
    r->data_len += len;
    return 0;
}

static int on_close(nghttp2_session* h2, int32_t id, uint32_t code, void* user) {
    (void)h2;
    struct reply* r = reply_of(user, id);
    r->closed       = true;
    r->error_code   = code;
    return 0;
}

static ssize_t read_body(nghttp2_session* h2, int32_t id, uint8_t* buf, size_t len, uint32_t* flags,
                         nghttp2_data_source* src, void* user) {
    (void)h2;
    (void)id;
    (void)user;
    struct body* b = src->ptr;
    size_t n       = b->len < len ? b->len : len;
    memcpy(buf, b->p, n);
    b->p += n;
    b->len -= n;
    if (b->len == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!b->end)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return (ssize_t)n;
}

static void client_init(struct client* c) {
    memset(c, 0, sizeof(*c));
    nghttp2_session_callbacks* cbs;
    assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    assert_int_equal(nghttp2_session_client_new(&c->h2, cbs, c), 0);
    nghttp2_session_callbacks_del(cbs);
    assert_int_equal(nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

#define NVS(n, v) \
    { (uint8_t*)(n), (uint8_t*)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

/* A request; `extra` is one more header (name, value) or NULL. */
static int32_t request(struct client* c, const char* method, const char* path, const char* ctype,
                       const char* extra_name, const char* extra_value, const void* body,
                       size_t len, bool end) {
    nghttp2_nv nva[] = {
        NVS(":method", method),
        NVS(":scheme", "https"),
        NVS(":path", path),
        NVS(":authority", "local"),
        NVS("content-type", ctype),
        NVS("te", "trailers"),
        NVS(extra_name ? extra_name : "x-none", extra_value ? extra_value : ""),
    };
    int32_t next             = nghttp2_session_get_next_stream_id(c->h2);
    c->bodies[next / 2]      = (struct body){body, len, end};
    nghttp2_data_provider dp = {.source.ptr = &c->bodies[next / 2], .read_callback = read_body};
    int32_t id               = nghttp2_submit_request(c->h2, NULL, nva, ARRAY_SIZE(nva), &dp, NULL);
    assert_true(id > 0);
    return id;
}

/* Moves bytes both ways until both sides are quiet. */
static void pump(struct client* c, struct net_grpc_session* s) {
    for (int round = 0; round < 1000; round++) {
        bool moved = false;
        const uint8_t* p;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(c->h2, &p)) > 0) {
            assert_int_equal(net_grpc_session_recv(s, p, (size_t)n), 0);
            moved = true;
        }
        size_t len;
        for (;;) {
            assert_int_equal(net_grpc_session_send(s, &p, &len), 0);
            if (len == 0)
                break;
            assert_int_equal(nghttp2_session_mem_recv(c->h2, p, len), (ssize_t)len);
            moved = true;
        }
        if (!moved)
            return;
    }
    fail_msg("no quiescence");
}

static struct net_grpc_session* session(const struct net_grpc_limits* limits) {
    struct net_grpc_session* s;
    assert_int_equal(net_grpc_session_new(g_methods, 1, limits, (const uint8_t*)"DER", 3, &s), 0);
    return s;
}

static void grpc_frame(uint8_t* out, uint8_t flag, const char* msg) {
    size_t n = strlen(msg);
    out[0]   = flag;
    out[1] = out[2] = out[3] = 0;
    out[4]                   = (uint8_t)n;
    memcpy(out + 5, msg, n);
}

static const char* AG = "application/grpc";

static void test_unary_ok_and_errors(void** state) {
    (void)state;
    struct client c;
    client_init(&c);
    struct net_grpc_session* s = session(NULL);
    uint8_t ok[16], fail[16], crash[16], comp[16], two[32];
    grpc_frame(ok, 0, "abc");
    grpc_frame(fail, 0, "fail");
    grpc_frame(crash, 0, "crash");
    grpc_frame(comp, 1, "abc");
    grpc_frame(two, 0, "ab");
    grpc_frame(two + 7, 0, "cd");
    g_calls    = 0;
    int32_t i1 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, ok, 8, true);
    int32_t i2 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, fail, 9, true);
    int32_t i3 = request(&c, "POST", "/rpc.Marble/Nope", AG, NULL, NULL, ok, 8, true);
    int32_t i4 = request(&c, "POST", "/rpc.Other/Activate", AG, NULL, NULL, ok, 8, true);
    int32_t i5 = request(&c, "POST", "/nopath", AG, NULL, NULL, ok, 8, true);
    int32_t i6 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, comp, 8, true);
    int32_t i7 =
        request(&c, "POST", "/rpc.Marble/Activate", AG, "grpc-encoding", "gzip", ok, 8, true);
    int32_t i8 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, two, 14, true);
    int32_t i9 = request(&c, "POST", "/rpc.Marble/Activate", "text/plain", NULL, NULL, ok, 8, true);
    int32_t i10 = request(&c, "GET", "/rpc.Marble/Activate", AG, NULL, NULL, ok, 8, true);
    int32_t i11 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, crash, 10, true);
    int32_t i12 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, ok, 3, true);
    pump(&c, s);
    assert_int_equal(g_calls, 3); /* ok, fail, crash */

    struct reply* r = reply_of(&c, i1);
    assert_string_equal(r->status, "200");
    assert_string_equal(r->grpc_status, "0");
    assert_int_equal(r->data_len, 8);
    assert_memory_equal(r->data, "\0\0\0\0\3cba", 8);
    assert_true(r->closed);
    assert_int_equal(r->error_code, 0);

    struct {
        int32_t id;
        const char* status;
        const char* message;
    } want[] = {
        {i2, "7", "bad 100%25 %C3%A9%0A"},
        {i3, "12", "unknown method Nope for service rpc.Marble"},
        {i4, "12", "unknown service rpc.Other"},
        {i5, "12", "malformed method name: \"/nopath\""},
        {i6, "13", "grpc: compressed flag set with identity or empty encoding"},
        {i7, "12", "grpc: Decompressor is not installed for grpc-encoding \"gzip\""},
        {i8, "13", "grpc: client streaming protocol violation: get <nil>, want <EOF>"},
        {i11, "13", "internal error"},
        {i12, "13", "grpc: server received no complete request"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        r = reply_of(&c, want[i].id);
        assert_string_equal(r->status, "200");
        assert_string_equal(r->grpc_status, want[i].status);
        assert_string_equal(r->grpc_message, want[i].message);
        assert_int_equal(r->data_len, 0);
    }
    assert_string_equal(reply_of(&c, i9)->status, "415");
    assert_string_equal(reply_of(&c, i10)->status, "405");

    /* graceful shutdown: nothing in flight, the session is done */
    assert_true(net_grpc_session_alive(s));
    net_grpc_session_goaway(s);
    pump(&c, s);
    assert_false(net_grpc_session_alive(s));
    net_grpc_session_free(s);
    nghttp2_session_del(c.h2);
}

static void test_limits(void** state) {
    (void)state;
    struct client c;
    client_init(&c);
    struct net_grpc_limits limits = {.max_message = 16, .max_conn_buffered = 40, .max_streams = 3};
    struct net_grpc_session* s    = session(&limits);
    static uint8_t big[64]        = {0, 0, 0, 0, 59};
    static uint8_t part[20]       = {0, 0, 0, 0, 15};
    g_calls                       = 0;
    /* a message over max_message: answered at once, and the stream reset */
    int32_t i1 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, big, 64, true);
    pump(&c, s);
    struct reply* r = reply_of(&c, i1);
    assert_string_equal(r->grpc_status, "8");
    assert_string_equal(r->grpc_message, "grpc: received message larger than max (59 vs. 16)");
    assert_true(r->closed);
    assert_int_equal(g_calls, 0);

    /* open requests hold bytes: the per-connection budget (40) stops the third at 60 */
    int32_t i2 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, part, 20, false);
    int32_t i3 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, part, 20, false);
    int32_t i4 = request(&c, "POST", "/rpc.Marble/Activate", AG, NULL, NULL, part, 20, false);
    pump(&c, s);
    assert_false(reply_of(&c, i2)->closed);
    assert_false(reply_of(&c, i3)->closed);
    assert_string_equal(reply_of(&c, i4)->grpc_status, "8");
    assert_true(reply_of(&c, i4)->closed);

    /* huge headers: the stream is reset, the session lives on */
    static char huge[20000];
    memset(huge, 'a', sizeof(huge) - 1);
    nghttp2_session_del(c.h2);
    net_grpc_session_free(s); /* frees the open streams (ASan checks) */
    client_init(&c);
    s          = session(NULL);
    int32_t i7 = request(&c, "POST", "/rpc.Marble/Activate", AG, "x-big", huge, part, 0, true);
    pump(&c, s);
    assert_true(reply_of(&c, i7)->closed);
    assert_int_not_equal(reply_of(&c, i7)->error_code, 0);
    assert_true(net_grpc_session_alive(s));
    net_grpc_session_free(s);
    nghttp2_session_del(c.h2);
}

/* nghttp2's client keeps to our SETTINGS_MAX_CONCURRENT_STREAMS; a hostile one does not: raw
 * HEADERS frames (HPACK by nghttp2's deflater) on four streams against a limit of three. */
static void test_stream_cap(void** state) {
    (void)state;
    struct net_grpc_limits limits = {.max_streams = 3};
    struct net_grpc_session* s    = session(&limits);
    static const char preface[]   = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    assert_int_equal(net_grpc_session_recv(s, (const uint8_t*)preface, sizeof(preface) - 1), 0);
    nghttp2_hd_deflater* def;
    assert_int_equal(nghttp2_hd_deflate_new(&def, 4096), 0);
    nghttp2_nv nva[] = {NVS(":method", "POST"), NVS(":scheme", "https"),
                        NVS(":path", "/rpc.Marble/Activate"), NVS(":authority", "x"),
                        NVS("content-type", AG)};
    for (uint8_t id = 1; id <= 7; id += 2) {
        uint8_t frame[9 + 256] = {0};
        ssize_t n              = nghttp2_hd_deflate_hd(def, frame + 9, 256, nva, ARRAY_SIZE(nva));
        assert_true(n > 0 && n < 256);
        frame[2] = (uint8_t)n;
        frame[3] = NGHTTP2_HEADERS;
        frame[4] = NGHTTP2_FLAG_END_HEADERS;
        frame[8] = id;
        assert_int_equal(net_grpc_session_recv(s, frame, 9 + (size_t)n), 0);
    }
    nghttp2_hd_deflate_del(def);
    /* find RST_STREAM(7, REFUSED_STREAM) among the server's frames */
    bool refused = false;
    for (;;) {
        const uint8_t* p;
        size_t len;
        assert_int_equal(net_grpc_session_send(s, &p, &len), 0);
        if (len == 0)
            break;
        struct cursor c = cursor_init(p, len);
        while (c.len >= 9) {
            uint32_t flen = (uint32_t)c.p[0] << 16 | c.p[1] << 8 | c.p[2];
            if (c.p[3] == NGHTTP2_RST_STREAM && c.p[8] == 7 && flen == 4 && c.len >= 13)
                refused |= c.p[12] == NGHTTP2_REFUSED_STREAM;
            assert_int_equal(cur_skip(&c, 9 + flen), 0);
        }
    }
    assert_true(refused);
    net_grpc_session_free(s);
}

static void test_percent_encode(void** state) {
    (void)state;
    _cleanup_free_ char* a = net_grpc_percent_encode("plain: text ~");
    assert_string_equal(a, "plain: text ~");
    _cleanup_free_ char* b = net_grpc_percent_encode("50%\t\x7f\xff");
    assert_string_equal(b, "50%25%09%7F%FF");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_ok_and_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_stream_cap),
        cmocka_unit_test(test_percent_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
