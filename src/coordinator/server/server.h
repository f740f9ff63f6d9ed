/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-coordinator: the MarbleRun-compatible Coordinator as a server (reference/marblerun.md §3,
 * §4, §6). A binary of its own behind `moat coordinator`, so that `moat run` never maps
 * libevent, nghttp2 or protobuf-c.
 *
 *   main.c     configuration (MarbleRun's EDG_* variables and flags), the Coordinator's own
 *              quote and sealing key, the event loops, SIGTERM
 *   mesh.c     the Marble API: gRPC /rpc.Marble/Activate on one event loop per core
 *   api.c      the client REST API (v2 and v1, JSend)
 *   metrics.c  Prometheus /metrics and /events
 *
 * Threads: the client API and the Prometheus listener run on the main thread's event loop; the
 * Marble API on `mesh_threads` loops of their own sharing one port (SO_REUSEPORT). The core
 * (src/coordinator/core.h) is thread-safe; everything here that several threads touch is
 * atomic or under `lock`.
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "core.h"

struct event_base;
struct attest_provider;
struct collateral;
struct attest_verify_opts;

struct server_config {
    const char* mesh_addr;        /* EDG_COORDINATOR_MESH_ADDR, ":2001" */
    const char* client_addr;      /* EDG_COORDINATOR_CLIENT_ADDR, ":4433" */
    const char* prometheus_addr;  /* EDG_COORDINATOR_PROMETHEUS_ADDR, NULL: off */
    char** dns_names;             /* EDG_COORDINATOR_DNS_NAMES, {"localhost"} */
    const char* seal_dir;         /* EDG_COORDINATOR_SEAL_DIR */
    const char* startup_manifest; /* EDG_STARTUP_MANIFEST */
    bool dev_mode;                /* EDG_COORDINATOR_DEV_MODE=1 */
    bool simulation;              /* OE_SIMULATION=1 / --simulation */
    bool debug;                   /* EDG_DEBUG_LOGGING=1 / --debug */
    bool json_logs;               /* EDG_LOG_FORMAT=json */
    bool no_seal;                 /* --no-seal: SealMode Disabled whatever the manifest says */
    /* verifying Marble quotes */
    const char* collateral;   /* dcap-qvl JSON */
    const char* pccs;         /* PCCS / Intel PCS URL: collateral per platform, fetched */
    const char* pccs_cache;   /* where fetched collateral is kept */
    const char* trusted_root; /* PEM trust anchor (default: Intel's, or the simulated root) */
    const char* sim_dir;      /* the simulated platform (default attest_default_sim_dir()) */
    const char* accept;       /* extra accepted TCB statuses for the Coordinator itself */
    unsigned mesh_threads;    /* default: the number of CPUs, at most 8 */
};

/* Activation events for /events (the newest EVENTS_KEPT). */
#define EVENTS_KEPT 1024
struct activation_event {
    time_t time;
    char* marble_type;
    char* uuid;
    char* quote_b64;
};

/* Counters for /metrics, per (marble type, UUID) as MarbleRun labels them; at most
 * COUNTERS_KEPT series (the types and UUIDs come from the network), the rest counted in one
 * overflow series. */
#define COUNTERS_KEPT       4096
#define COUNTER_INDEX_SLOTS 8192 /* a power of two, twice COUNTERS_KEPT */
struct type_counter {
    char* type;
    char* uuid;
    uint64_t total, success;
};

struct server {
    struct server_config cfg;
    struct coord_core* core;
    bool simulation; /* MarbleRun's inSimulationMode: no quote of our own */
    struct attest_provider* provider;

    pthread_mutex_t lock; /* quote, events, counters */
    uint8_t* quote;       /* OE-wrapped quote over sha256(root DER); NULL in simulation */
    size_t quote_len;
    uint8_t quote_root_hash[32]; /* of the root the cached quote is for */

    struct activation_event events[EVENTS_KEPT];
    size_t n_events, next_event;
    struct type_counter* counters;
    size_t n_counters;
    uint32_t* counter_index; /* open addressing over `counters` (index + 1; 0 empty) */

    /* the certificates the listeners present, to notice when the core rotated them */
    uint8_t client_cert_hash[32];
    uint8_t mesh_cert_hash[32];

    struct event_base* base; /* the main loop: client API, Prometheus, signals */
    struct net_http_server* client_api;
    struct net_http_server* prometheus;
    struct mesh* mesh;
    atomic_bool stopping;
};

/* main.c: one log line, "moat-coordinator: LEVEL: msg" or a JSON object (EDG_LOG_FORMAT=json);
 * level "debug" only with --debug. */
void slog(const char* level, const char* fmt, ...) PRINTF_FMT(2, 3);

/* mesh.c */
struct mesh;
int mesh_start(struct server* s, struct mesh** ret, struct moat_error* err) WARN_UNUSED;
/* New TLS credentials (the marble root and the intermediate key) for new connections. */
void mesh_update_credentials(struct mesh* m);
/* Asks every mesh loop to drain (GOAWAY; in-flight calls finish within grace_ms) and returns:
 * safe on the main loop. */
void mesh_stop(struct mesh* m, uint32_t grace_ms);
/* Stops the loops not asked yet (no grace), waits for the threads and frees. */
void mesh_free(struct mesh* m);
int mesh_port(const struct mesh* m);

/* api.c */
int api_start(struct server* s, struct moat_error* err) WARN_UNUSED;
/* The client API's request handler (a net_http_handler; ctx is the server). */
struct net_http_request;
struct net_http_response;
int api_handle(const struct net_http_request* req, struct net_http_response* resp, void* ctx);
/* After a call that may have rotated the CA: swaps the listeners' certificates. */
void server_refresh_credentials(struct server* s);

/* metrics.c */
int metrics_start(struct server* s, struct moat_error* err) WARN_UNUSED;
void metrics_count_activation(struct server* s, const char* type, const char* uuid,
                              const uint8_t* quote, size_t quote_len, bool ok);
void metrics_free(struct server* s);

/* main.c: a quote over sha256(root DER ‖ nonce) in MarbleRun's OpenEnclave wrapping
 * (nonce NULL: the cached one over the root alone). 0 with *ret NULL in simulation mode. */
int server_quote(struct server* s, const uint8_t* nonce, size_t nonce_len, uint8_t** ret,
                 size_t* ret_len, struct moat_error* err) WARN_UNUSED;

/* Loads the TLS credentials of a listener from the core: client API (root cert and key) or
 * mesh (marble root cert, intermediate key). */
struct net_tls_credentials;
int server_credentials(struct server* s, bool mesh, struct net_tls_credentials* ret,
                       uint8_t ret_hash[32]) WARN_UNUSED;
void server_credentials_clear(struct net_tls_credentials* c);
