/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Marble API (reference/marblerun.md §4.1, §4.3): gRPC /rpc.Marble/Activate over TLS with
 * the marble root certificate and the intermediate key, on `mesh_threads` event loops that
 * share one port (SO_REUSEPORT), so that the ECDSA work of many activations uses every core.
 *
 * Each loop owns its event_base and its net_grpc_server. The main thread talks to a loop only
 * through a user event made active with event_active() (libevent with pthreads is thread-safe
 * there): "swap your credentials" and "drain and stop".
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marblerun.pb-c.h"
#include "net.h"
#include "server.h"

struct mesh_loop {
    struct mesh* mesh;
    struct event_base* base;
    struct event* wake; /* made active by the main thread */
    struct net_grpc_server* grpc;
    pthread_t thread;
    bool started;
    atomic_bool want_creds, want_stop, stop_requested;
};

struct mesh {
    struct server* s;
    size_t n;
    struct mesh_loop* loops;
    struct net_grpc_method method;
    int port;
    atomic_uint_fast32_t grace_ms;
};

/* ---------------------------------------------------------------------------------------- */
/* Activate                                                                                   */

/* Packs the Parameters; the map entries point into `params`. */
static int pack_response(const struct coord_params* params, uint8_t** resp, size_t* resp_len) {
    Rpc__Parameters__FilesEntry* files = xcalloc(params->n_files + 1, sizeof(*files));
    Rpc__Parameters__FilesEntry** fp   = xcalloc(params->n_files + 1, sizeof(*fp));
    Rpc__Parameters__EnvEntry* env     = xcalloc(params->n_env + 1, sizeof(*env));
    Rpc__Parameters__EnvEntry** ep     = xcalloc(params->n_env + 1, sizeof(*ep));
    for (size_t i = 0; i < params->n_files; i++) {
        rpc__parameters__files_entry__init(&files[i]);
        files[i].key = params->files[i].name;
        files[i].value =
            (ProtobufCBinaryData){.data = params->files[i].data, .len = params->files[i].len};
        fp[i] = &files[i];
    }
    for (size_t i = 0; i < params->n_env; i++) {
        rpc__parameters__env_entry__init(&env[i]);
        env[i].key = params->env[i].name;
        env[i].value =
            (ProtobufCBinaryData){.data = params->env[i].data, .len = params->env[i].len};
        ep[i] = &env[i];
    }
    Rpc__Parameters p;
    rpc__parameters__init(&p);
    p.n_files = params->n_files;
    p.files   = fp;
    p.n_env   = params->n_env;
    p.env     = ep;
    p.n_argv  = params->argc;
    p.argv    = params->argv;
    Rpc__ActivationResp out;
    rpc__activation_resp__init(&out);
    out.parameters = &p;
    *resp_len      = rpc__activation_resp__get_packed_size(&out);
    *resp          = xmalloc(*resp_len ? *resp_len : 1);
    rpc__activation_resp__pack(&out, *resp);
    free(files);
    free(fp);
    free(env);
    free(ep);
    return 0;
}

static int activate(const uint8_t* req, size_t len, const uint8_t* cert, size_t cert_len,
                    uint8_t** resp, size_t* resp_len, int* grpc_status, char** grpc_message,
                    void* ctx) {
    struct mesh* m         = ctx;
    struct server* s       = m->s;
    Rpc__ActivationReq* ar = rpc__activation_req__unpack(NULL, len, req);
    if (!ar) {
        *grpc_status  = NET_GRPC_INVALID_ARGUMENT;
        *grpc_message = xstrdup("grpc: error unmarshalling request: cannot decode ActivationReq");
        slog("info", "Activate: undecodable request (%zu bytes)", len);
        return 0;
    }
    slog("info", "Received activation request: MarbleType=%s UUID=%s", ar->marbletype, ar->uuid);
    struct coord_params params = {0};
    enum coord_status st       = COORD_STATUS_INTERNAL;
    struct moat_error err      = {0};
    int r = coord_core_activate(s->core, ar->quote.data, ar->quote.len, ar->csr.data, ar->csr.len,
                                ar->marbletype, ar->uuid, cert, cert_len, &params, &st, &err);
    metrics_count_activation(s, ar->marbletype, ar->uuid, ar->quote.data, ar->quote.len, r == 0);
    if (r < 0) {
        *grpc_status  = st == COORD_STATUS_OK ? NET_GRPC_INTERNAL : (int)st;
        *grpc_message = xstrdup(err.msg[0] ? err.msg : "activation failed");
        slog("info", "Marble activation failed: MarbleType=%s UUID=%s: %s: %s", ar->marbletype,
             ar->uuid, coord_status_name(st), *grpc_message);
        rpc__activation_req__free_unpacked(ar, NULL);
        return 0;
    }
    pack_response(&params, resp, resp_len);
    slog("info", "Successfully activated new Marble: MarbleType=%s UUID=%s", ar->marbletype,
         ar->uuid);
    coord_params_clear(&params);
    rpc__activation_req__free_unpacked(ar, NULL);
    *grpc_status = NET_GRPC_OK;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Loops                                                                                      */

static int loop_credentials(struct mesh_loop* l, struct moat_error* err) {
    struct net_tls_credentials creds;
    uint8_t hash[32];
    int r = server_credentials(l->mesh->s, true, &creds, hash);
    if (r < 0)
        return moat_error_set(err, r, "cannot load the Marble API certificate");
    r = net_grpc_server_set_credentials(l->grpc, &creds, err);
    server_credentials_clear(&creds);
    return r;
}

static void on_wake(evutil_socket_t fd, short what, void* arg) {
    (void)fd;
    (void)what;
    struct mesh_loop* l = arg;
    if (atomic_exchange(&l->want_creds, false)) {
        struct moat_error err = {0};
        if (loop_credentials(l, &err) < 0)
            slog("error", "Marble API: keeping the old certificate: %s", err.msg);
    }
    if (atomic_exchange(&l->want_stop, false))
        net_grpc_server_shutdown(l->grpc, (uint32_t)atomic_load(&l->mesh->grace_ms));
}

static void* loop_main(void* arg) {
    struct mesh_loop* l = arg;
    event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* "host:port" of `addr` with the port replaced. */
static char* with_port(const char* addr, int port) {
    const char* colon = strrchr(addr, ':');
    size_t host_len   = colon ? (size_t)(colon - addr) : 0;
    return xasprintf("%.*s:%d", (int)host_len, addr, port);
}

int mesh_start(struct server* s, struct mesh** ret, struct moat_error* err) {
    struct mesh* m = xcalloc(1, sizeof(*m));
    m->s           = s;
    m->n           = s->cfg.mesh_threads ? s->cfg.mesh_threads : 1;
    m->loops       = xcalloc(m->n, sizeof(*m->loops));
    m->method =
        (struct net_grpc_method){.path = "/rpc.Marble/Activate", .handler = activate, .ctx = m};
    atomic_store(&m->grace_ms, 10000);
    *ret = m;

    struct net_tls_credentials creds;
    int r = server_credentials(s, true, &creds, s->mesh_cert_hash);
    if (r < 0)
        return moat_error_set(err, r, "cannot load the Marble API certificate");
    _cleanup_free_ char* addr = xstrdup(s->cfg.mesh_addr);
    for (size_t i = 0; i < m->n; i++) {
        struct mesh_loop* l = &m->loops[i];
        l->mesh             = m;
        l->base             = event_base_new();
        if (!l->base) {
            r = moat_error_set(err, -ENOMEM, "cannot create an event loop");
            break;
        }
        struct net_grpc_server_config cfg = {
            .address    = addr,
            .creds      = &creds,
            .methods    = &m->method,
            .n_methods  = 1,
            .reuse_port = m->n > 1,
        };
        r = net_grpc_server_new(l->base, &cfg, &l->grpc, err);
        if (r < 0) {
            moat_error_prefix(err, "Marble API on %s", s->cfg.mesh_addr);
            break;
        }
        if (i == 0) {
            /* ":0" binds any port: the other loops must take the same one */
            m->port = net_grpc_server_port(l->grpc);
            free(addr);
            addr = with_port(s->cfg.mesh_addr, m->port);
        }
        l->wake = event_new(l->base, -1, 0, on_wake, l);
        if (!l->wake) {
            r = moat_error_set(err, -ENOMEM, "cannot create an event");
            break;
        }
    }
    server_credentials_clear(&creds);
    if (r < 0)
        return r;
    for (size_t i = 0; i < m->n; i++) {
        struct mesh_loop* l = &m->loops[i];
        r                   = pthread_create(&l->thread, NULL, loop_main, l);
        if (r != 0)
            return moat_error_set(err, -r, "cannot start a Marble API thread: %s", strerror(r));
        l->started = true;
    }
    slog("debug", "Marble API: %zu event loops on port %d", m->n, m->port);
    return 0;
}

int mesh_port(const struct mesh* m) {
    return m ? m->port : -1;
}

void mesh_update_credentials(struct mesh* m) {
    for (size_t i = 0; m && i < m->n; i++) {
        struct mesh_loop* l = &m->loops[i];
        if (!l->wake)
            continue;
        atomic_store(&l->want_creds, true);
        event_active(l->wake, 0, 0);
    }
}

void mesh_stop(struct mesh* m, uint32_t grace_ms) {
    if (!m)
        return;
    atomic_store(&m->grace_ms, grace_ms);
    for (size_t i = 0; i < m->n; i++) {
        struct mesh_loop* l = &m->loops[i];
        if (!l->started)
            continue;
        atomic_store(&l->stop_requested, true);
        atomic_store(&l->want_stop, true);
        event_active(l->wake, 0, 0);
    }
}

void mesh_free(struct mesh* m) {
    if (!m)
        return;
    /* a loop asked to stop earlier keeps its grace time; net_grpc_server_shutdown breaks each
     * loop once its last connection closed */
    for (size_t i = 0; i < m->n; i++) {
        struct mesh_loop* l = &m->loops[i];
        if (l->started && !atomic_load(&l->stop_requested)) {
            atomic_store(&l->want_stop, true);
            event_active(l->wake, 0, 0);
        }
    }
    for (size_t i = 0; i < m->n; i++) {
        struct mesh_loop* l = &m->loops[i];
        if (l->started)
            pthread_join(l->thread, NULL);
        if (l->wake)
            event_free(l->wake);
        net_grpc_server_free(l->grpc);
        if (l->base)
            event_base_free(l->base);
    }
    free(m->loops);
    free(m);
}
