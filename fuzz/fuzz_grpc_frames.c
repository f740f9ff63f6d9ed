/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the gRPC server session of src/net (HTTP/2 frames, HPACK, gRPC framing,
 * the limits) and the Activate request decoding behind it (protobuf-c, our marblerun.proto).
 *
 * The input is what a client sends after the HTTP/2 connection preface, which is prepended so
 * that the fuzzer starts inside the frame layer. Byte 0 picks where the input is split in two
 * deliveries, so that frames cut across reads are exercised. Everything the session answers is
 * drained after each delivery, as the server does. Small limits make the limit paths reachable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "marblerun.pb-c.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

static const char g_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static int activate(const uint8_t* req, size_t len, const uint8_t* cert, size_t cert_len,
                    uint8_t** resp, size_t* resp_len, int* status, char** message, void* ctx) {
    (void)cert;
    (void)cert_len;
    (void)ctx;
    Rpc__ActivationReq* ar = rpc__activation_req__unpack(NULL, len, req);
    if (!ar) {
        *status  = NET_GRPC_INVALID_ARGUMENT;
        *message = xstrdup("cannot decode ActivationReq \x01%");
        return 0;
    }
    if (ar->marbletype[0] == 'f') {
        rpc__activation_req__free_unpacked(ar, NULL);
        return -EIO;
    }
    Rpc__ActivationResp out;
    rpc__activation_resp__init(&out);
    *resp_len = rpc__activation_resp__get_packed_size(&out) + ar->quote.len;
    *resp     = xmalloc(*resp_len + 1);
    size_t n  = rpc__activation_resp__pack(&out, *resp);
    memcpy(*resp + n, ar->quote.data, ar->quote.len);
    rpc__activation_req__free_unpacked(ar, NULL);
    return 0;
}

static const struct net_grpc_method g_methods[] = {
    {"/rpc.Marble/Activate", activate, NULL},
};

static int drain(struct net_grpc_session* s) {
    for (;;) {
        const uint8_t* out;
        size_t len;
        if (net_grpc_session_send(s, &out, &len) < 0)
            return -1;
        if (len == 0)
            return 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1)
        return 0;
    size_t split = data[0] % 64;
    data++;
    size--;
    if (split > size)
        split = size;
    struct net_grpc_limits limits = {
        .max_message       = 4096,
        .max_conn_buffered = 16384,
        .max_streams       = 8,
    };
    static const uint8_t cert[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    struct net_grpc_session* s  = NULL;
    if (net_grpc_session_new(g_methods, 1, &limits, cert, sizeof(cert), &s) < 0)
        abort();
    if (net_grpc_session_recv(s, (const uint8_t*)g_preface, sizeof(g_preface) - 1) == 0 &&
        drain(s) == 0 && net_grpc_session_recv(s, data, split) == 0 && drain(s) == 0 &&
        net_grpc_session_recv(s, data + split, size - split) == 0 && drain(s) == 0) {
        net_grpc_session_goaway(s);
        (void)drain(s);
        (void)net_grpc_session_alive(s);
    }
    net_grpc_session_free(s);
    return 0;
}
