/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only server for tests/test_net_grpc.py: serves /rpc.Marble/Activate
 * (../shared/reference/marblerun.md §4.1) by echoing the request back as Parameters, plus the
 * SHA-256 of the client certificate the handler was given. MarbleType "fail" answers
 * PERMISSION_DENIED. Usage: grpc_echo_server PORT CERT KEY (PORT 0: any; the bound port is
 * printed as "listening on PORT"). SIGTERM shuts it down gracefully. GRPC_ECHO_IDLE_MS sets the
 * idle timeout (tests of it should not wait the default 120 s).
 */
#include <event2/event.h>
#include <signal.h>
#include <string.h>

#include "marblerun.pb-c.h"
#include "net.h"

static Rpc__Parameters__FilesEntry* file_entry(const char* key, ProtobufCBinaryData v) {
    Rpc__Parameters__FilesEntry* e = xcalloc(1, sizeof(*e));
    rpc__parameters__files_entry__init(e);
    e->key   = (char*)key;
    e->value = v;
    return e;
}

static Rpc__Parameters__EnvEntry* env_entry(const char* key, const char* v) {
    Rpc__Parameters__EnvEntry* e = xcalloc(1, sizeof(*e));
    rpc__parameters__env_entry__init(e);
    e->key   = (char*)key;
    e->value = (ProtobufCBinaryData){.data = (uint8_t*)v, .len = strlen(v)};
    return e;
}

static int activate(const uint8_t* req, size_t len, const uint8_t* cert, size_t cert_len,
                    uint8_t** resp, size_t* resp_len, int* status, char** message, void* ctx) {
    (void)ctx;
    Rpc__ActivationReq* ar = rpc__activation_req__unpack(NULL, len, req);
    if (!ar) {
        *status  = NET_GRPC_INVALID_ARGUMENT;
        *message = xstrdup("cannot decode ActivationReq");
        return 0;
    }
    if (strcmp(ar->marbletype, "fail") == 0 || strncmp(ar->marbletype, "fail:", 5) == 0) {
        /* "fail:TEXT" puts TEXT in the message: percent-encoding end to end */
        *status  = NET_GRPC_PERMISSION_DENIED;
        *message = xasprintf("marble verification failed: %s",
                             ar->marbletype[4] ? ar->marbletype + 5 : "test");
        rpc__activation_req__free_unpacked(ar, NULL);
        return 0;
    }
    uint8_t digest[SHA256_DIGEST_SIZE];
    if (sha256_buf(cert, cert_len, digest) < 0) {
        rpc__activation_req__free_unpacked(ar, NULL);
        return -EIO;
    }
    _cleanup_free_ char* hex = hex_encode_alloc(digest, sizeof(digest));

    Rpc__Parameters__FilesEntry* files[2] = {file_entry("quote", ar->quote),
                                             file_entry("csr", ar->csr)};
    Rpc__Parameters__EnvEntry* env[2]     = {env_entry("MarbleType", ar->marbletype),
                                             env_entry("UUID", ar->uuid)};
    char* argv[2]                         = {"echo", hex};
    Rpc__Parameters params;
    rpc__parameters__init(&params);
    params.n_files = 2;
    params.files   = files;
    params.n_env   = 2;
    params.env     = env;
    params.n_argv  = 2;
    params.argv    = argv;
    Rpc__ActivationResp out;
    rpc__activation_resp__init(&out);
    out.parameters = &params;
    *resp_len      = rpc__activation_resp__get_packed_size(&out);
    *resp          = xmalloc(*resp_len ? *resp_len : 1);
    rpc__activation_resp__pack(&out, *resp);
    for (size_t i = 0; i < 2; i++) {
        free(files[i]);
        free(env[i]);
    }
    rpc__activation_req__free_unpacked(ar, NULL);
    return 0;
}

static void on_sigterm(evutil_socket_t sig, short what, void* arg) {
    (void)sig;
    (void)what;
    net_grpc_server_shutdown(arg, 5000);
}

int main(int argc, char** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: grpc_echo_server PORT CERT KEY\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    static const struct net_grpc_method methods[] = {
        {"/rpc.Marble/Activate", activate, NULL},
    };
    _cleanup_free_ char* addr         = xasprintf("127.0.0.1:%s", argv[1]);
    struct net_grpc_server_config cfg = {
        .address   = addr,
        .cert_file = argv[2],
        .key_file  = argv[3],
        .methods   = methods,
        .n_methods = ARRAY_SIZE(methods),
        .limits    = {.handshake_timeout_ms = 5000},
    };
    const char* idle = getenv("GRPC_ECHO_IDLE_MS");
    if (idle)
        cfg.limits.idle_timeout_ms = (uint32_t)strtoul(idle, NULL, 10);
    struct event_base* base = event_base_new();
    if (!base)
        return 1;
    struct moat_error err       = {0};
    struct net_grpc_server* srv = NULL;
    if (net_grpc_server_new(base, &cfg, &srv, &err) < 0) {
        fprintf(stderr, "grpc_echo_server: error: %s\n", err.msg);
        event_base_free(base);
        return 1;
    }
    struct event* term = evsignal_new(base, SIGTERM, on_sigterm, srv);
    if (!term || event_add(term, NULL) < 0)
        return 1;
    printf("listening on %d\n", net_grpc_server_port(srv));
    fflush(stdout);
    event_base_dispatch(base);
    event_free(term);
    net_grpc_server_free(srv);
    event_base_free(base);
    return 0;
}
