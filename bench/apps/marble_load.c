/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Load generator for bench/coordinator.sh, in C: N Marbles calling /rpc.Marble/Activate, each
 * call over a new TCP + TLS 1.3 + HTTP/2 connection as a Marble's start makes, with the Marbles
 * that bench/apps/marble_load.py prepared (key.pem, cert.pem, csr.der, quote.bin in DIR/m<i>).
 * The Python client (python3-grpcio) spends ~6 ms of CPU per new channel, more than the
 * Coordinator; this one spends about the TLS client's crypto, so on two cores the Coordinator
 * and not the client is what is measured.
 *
 *   marble_load DIR ADDR N SECONDS [rate=R] [pid=P]
 *
 * N threads in a closed loop, or with rate=R an open loop: each Marble starts activations at
 * random (Poisson) times, R per second in all, and latency counts from the planned start.
 * pid=P: the server's CPU time per activation over the same window. Prints one JSON line with
 * the keys marble_load.py prints.
 */
#include <errno.h>
#include <math.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "grpc_client.h"
#include "loadgen.h"
#include "marblerun.pb-c.h"

struct marble {
    SSL_CTX* ctx;
    char* csr;
    size_t csr_len;
    char* quote;
    size_t quote_len;
};

struct worker {
    pthread_t thread;
    int index;
    struct samples samples;
    unsigned errors;
};

#define die(...) loadgen_die("marble_load", __VA_ARGS__)

static struct marble* g_marbles;
static const char* g_addr;
static int g_n;
static double g_rate;
static pthread_barrier_t g_barrier;
static atomic_bool g_stop;

#define now_s loadgen_now

static void sleep_until(double t) {
    double d = t - now_s();
    while (d > 0 && !atomic_load(&g_stop)) {
        double step       = d > 0.05 ? 0.05 : d; /* wake up for stop */
        struct timespec s = {.tv_sec = (time_t)step, .tv_nsec = (long)((step - floor(step)) * 1e9)};
        nanosleep(&s, NULL);
        d = t - now_s();
    }
}

static void uuid_v4(char out[37]) {
    uint8_t u[16];
    if (RAND_bytes(u, sizeof(u)) != 1)
        die("RAND_bytes failed");
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
             u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
             u[14], u[15]);
}

/* one activation; 0 when the Coordinator answered OK with parameters */
static int activate(const struct marble* m, char** why) {
    char uuid[37];
    uuid_v4(uuid);
    Rpc__ActivationReq req = RPC__ACTIVATION_REQ__INIT;
    req.quote              = (ProtobufCBinaryData){m->quote_len, (uint8_t*)m->quote};
    req.csr                = (ProtobufCBinaryData){m->csr_len, (uint8_t*)m->csr};
    req.marbletype         = (char*)"bench";
    req.uuid               = uuid;
    size_t len             = rpc__activation_req__get_packed_size(&req);
    uint8_t* buf           = xmalloc(len);
    rpc__activation_req__pack(&req, buf);
    struct net_grpc_call call = {
        .address     = g_addr,
        .server_name = "localhost",
        .ctx         = m->ctx,
        .path        = "/rpc.Marble/Activate",
        .req         = buf,
        .req_len     = len,
    };
    struct net_grpc_reply rep = {0};
    struct moat_error err     = {0};
    int r                     = net_grpc_call(&call, &rep, &err);
    free(buf);
    if (r < 0) {
        *why = xstrdup(err.msg);
        return r;
    }
    Rpc__ActivationResp* resp =
        rep.status == 0 ? rpc__activation_resp__unpack(NULL, rep.resp_len, rep.resp) : NULL;
    if (!resp || !resp->parameters) {
        char msg[512];
        snprintf(msg, sizeof(msg), "rpc error: code = %d desc = %s", rep.status,
                 rep.message ? rep.message : "(no parameters)");
        *why = xstrdup(msg);
        r    = -EPROTO;
    }
    if (resp)
        rpc__activation_resp__free_unpacked(resp, NULL);
    net_grpc_reply_clear(&rep);
    return r;
}

static void* worker_main(void* arg) {
    struct worker* w       = arg;
    const struct marble* m = &g_marbles[w->index];
    char* why              = NULL;
    if (activate(m, &why) < 0) /* once before the clock starts */
        die("activation failed: %s", why);
    /* each Marble its own random stream: seeds that differ only in a few low bits (the index)
     * would give erand48's first draws nearly equal values, and the Marbles would start
     * together instead of at random */
    unsigned short seed[3];
    if (RAND_bytes((unsigned char*)seed, sizeof(seed)) != 1)
        die("RAND_bytes failed");
    pthread_barrier_wait(&g_barrier);
    double due = now_s();
    while (!atomic_load(&g_stop)) {
        double t0;
        if (g_rate > 0) {
            due += -log(1.0 - erand48(seed)) / (g_rate / g_n);
            sleep_until(due);
            if (atomic_load(&g_stop))
                break;
            t0 = due;
        } else {
            t0 = now_s();
        }
        if (activate(m, &why) < 0) {
            if (w->errors++ == 0)
                fprintf(stderr, "activation failed: %s\n", why);
            free(why);
            why = NULL;
            continue;
        }
        loadgen_push(&w->samples, t0, now_s());
    }
    return NULL;
}

static char* slurp(const char* dir, int i, const char* name, size_t* len) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/m%d/%s", dir, i, name);
    char* buf             = NULL;
    struct moat_error err = {0};
    if (read_file(path, &buf, len, &err) < 0)
        die("%s", err.msg);
    return buf;
}

int main(int argc, char** argv) {
    if (argc < 5)
        die("usage: marble_load DIR ADDR N SECONDS [rate=R] [pid=P]");
    const char* dir = argv[1];
    g_addr          = argv[2];
    g_n             = atoi(argv[3]);
    double seconds  = atof(argv[4]);
    long pid        = 0;
    for (int i = 5; i < argc; i++) {
        if (strncmp(argv[i], "rate=", 5) == 0)
            g_rate = atof(argv[i] + 5);
        else if (strncmp(argv[i], "pid=", 4) == 0)
            pid = atol(argv[i] + 4);
        else
            die("unknown argument %s", argv[i]);
    }
    if (g_n <= 0 || seconds <= 0)
        die("N and SECONDS must be positive");

    g_marbles = xcalloc((size_t)g_n, sizeof(*g_marbles));
    for (int i = 0; i < g_n; i++) {
        struct marble* m = &g_marbles[i];
        char path[4096];
        m->ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(m->ctx, TLS1_3_VERSION);
        SSL_CTX_set_verify(m->ctx, SSL_VERIFY_NONE, NULL); /* as MarbleRun's premain */
        snprintf(path, sizeof(path), "%s/m%d/cert.pem", dir, i);
        if (SSL_CTX_use_certificate_file(m->ctx, path, SSL_FILETYPE_PEM) != 1)
            die("cannot use %s", path);
        snprintf(path, sizeof(path), "%s/m%d/key.pem", dir, i);
        if (SSL_CTX_use_PrivateKey_file(m->ctx, path, SSL_FILETYPE_PEM) != 1)
            die("cannot use %s", path);
        m->csr   = slurp(dir, i, "csr.der", &m->csr_len);
        m->quote = slurp(dir, i, "quote.bin", &m->quote_len);
    }

    struct worker* w = xcalloc((size_t)g_n, sizeof(*w));
    pthread_barrier_init(&g_barrier, NULL, (unsigned)g_n + 1);
    for (int i = 0; i < g_n; i++) {
        w[i].index = i;
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
            die("pthread_create failed");
    }
    pthread_barrier_wait(&g_barrier);
    double c0 = loadgen_self_cpu(), s0 = loadgen_proc_cpu(pid), t0 = now_s();
    sleep_until(t0 + seconds);
    double c1 = loadgen_self_cpu(), s1 = loadgen_proc_cpu(pid), t1 = now_s();
    atomic_store(&g_stop, true);
    unsigned errors = 0;
    for (int i = 0; i < g_n; i++) {
        pthread_join(w[i].thread, NULL);
        errors += w[i].errors;
    }
    /* the activations that ended inside the window (in a steady state, the throughput) */
    const struct samples** sets = xcalloc((size_t)g_n, sizeof(*sets));
    for (int i = 0; i < g_n; i++)
        sets[i] = &w[i].samples;
    struct latency l = loadgen_latency(sets, (size_t)g_n, t0, t1);
    free(sets);
    size_t n    = l.n;
    double wall = t1 - t0, cpu = c1 - c0;
    printf(
        "{\"activations\": %zu, \"errors\": %u, \"seconds\": %.6f, \"rate\": %.3f, "
        "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, \"offered_rate\": %.3f, "
        "\"client_cpu_s\": %.3f, \"client_cpu_per_activation_ms\": %.4f",
        n, errors, wall, (double)n / wall, l.p50_ms, l.p99_ms, l.max_ms, g_rate, cpu,
        n ? cpu / (double)n * 1000 : 0);
    if (s0 >= 0 && s1 >= 0)
        printf(", \"server_cpu_per_activation_ms\": %.4f", n ? (s1 - s0) / (double)n * 1000 : 0);
    printf("}\n");
    for (int i = 0; i < g_n; i++) {
        free(w[i].samples.v);
        SSL_CTX_free(g_marbles[i].ctx);
        free(g_marbles[i].csr);
        free(g_marbles[i].quote);
    }
    free(w);
    free(g_marbles);
    pthread_barrier_destroy(&g_barrier);
    return fflush(stdout) == 0 ? 0 : 1;
}
