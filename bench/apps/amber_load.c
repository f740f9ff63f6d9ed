/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Load generator for bench/amber.sh: THREADS clients in a closed loop, each over one HTTPS
 * keep-alive connection (libcurl easy handle, HTTP/1.1), against `moat amber serve` or
 * `moat kbs serve`.
 *
 *   amber_load flow     URL THREADS SECONDS SIMDIR APIKEY [pid=P]
 *   amber_load attest   URL THREADS SECONDS SIMDIR APIKEY [pid=P]
 *   amber_load transfer URL THREADS SECONDS KEYID TOKENFILE [pid=P]
 *
 * flow: one token is the whole ITA v1 flow (attestation.md §4.1): GET /appraisal/v1/nonce,
 *   then a quote of the SIMULATED platform in SIMDIR made here (sim_quote: two ECDSA P-256
 *   signatures) over report data SHA-256(val ‖ iat ‖ runtime_data) ‖ 0^32, then POST
 *   /appraisal/v1/attest with {quote, verifier_nonce, runtime_data}. runtime_data is 32 fresh
 *   random bytes per token, so every quote is a new one.
 * attest: the same without the nonce (report data SHA-256(runtime_data) ‖ 0^32, no
 *   verifier_nonce): one request per token.
 * transfer: POST /kbs/v1/keys/KEYID/transfer with {"attestation_token": <TOKENFILE>}.
 *
 * Every answer must be 200 with the expected member ("token"; "wrapped_key"), else it counts
 * as an error. pid=P: the server's CPU time per operation over the same window. Prints one
 * JSON line: ops, errors, seconds, rate, p50/p99/max latency (ms), client CPU per op (ms),
 * server CPU per op (ms).
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/rand.h>
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
#include "loadgen.h"
#include "sim.h"

enum mode { MODE_FLOW, MODE_ATTEST, MODE_TRANSFER };

struct worker {
    pthread_t thread;
    CURL* curl;
    struct curl_slist* headers;
    struct strbuf body; /* the answer */
    struct samples samples;
    unsigned errors;
};

#define die(...) loadgen_die("amber_load", __VA_ARGS__)

static enum mode g_mode;
static const char* g_url;
static char* g_api_key_header;
static struct sim_platform* g_sim;
static char* g_transfer_body;
static char* g_transfer_url;
static pthread_barrier_t g_barrier;
static atomic_bool g_stop;

#define now_s loadgen_now

static size_t on_data(char* p, size_t size, size_t n, void* arg) {
    strbuf_append(arg, p, size * n);
    return size * n;
}

/* One request on the worker's connection; the answer's JSON if the status was 200. */
static json_t* request(struct worker* w, const char* url, const char* post, char** why) {
    w->body.len = 0;
    curl_easy_setopt(w->curl, CURLOPT_URL, url);
    if (post) {
        curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
    } else {
        curl_easy_setopt(w->curl, CURLOPT_HTTPGET, 1L);
    }
    CURLcode c  = curl_easy_perform(w->curl);
    long status = 0;
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    if (c != CURLE_OK || status != 200) {
        *why =
            xasprintf("%s: %s (HTTP %ld) %.*s", url, curl_easy_strerror(c), status,
                      (int)(w->body.len > 300 ? 300 : w->body.len), w->body.buf ? w->body.buf : "");
        return NULL;
    }
    json_t* j = json_loadb(w->body.buf, w->body.len, 0, NULL);
    if (!j)
        *why = xasprintf("%s: an answer that is not JSON", url);
    return j;
}

static int b64_member(json_t* o, const char* key, uint8_t** ret, size_t* len) {
    const char* s = json_string_value(json_object_get(o, key));
    return s ? base64_decode_alloc(s, strlen(s), ret, len) : -EINVAL;
}

/* A token (flow, attest): 0, or -1 with *why. */
static int one_token(struct worker* w, char** why) {
    char url[1024];
    uint8_t runtime[32];
    if (RAND_bytes(runtime, sizeof(runtime)) != 1)
        die("RAND_bytes failed");
    json_t* nonce        = NULL;
    struct sim_enclave e = {.isvprodid = 0};
    memset(e.mrenclave, 0xab, sizeof(e.mrenclave));
    struct sha256_ctx sha = {0};
    if (sha256_init(&sha) < 0)
        die("sha256_init failed");
    if (g_mode == MODE_FLOW) {
        snprintf(url, sizeof(url), "%s/appraisal/v1/nonce", g_url);
        if (!(nonce = request(w, url, NULL, why)))
            return sha256_ctx_free(&sha), -1;
        uint8_t *val = NULL, *iat = NULL;
        size_t val_len = 0, iat_len = 0;
        if (b64_member(nonce, "val", &val, &val_len) < 0 ||
            b64_member(nonce, "iat", &iat, &iat_len) < 0)
            die("a nonce without val or iat");
        if (sha256_update(&sha, val, val_len) < 0 || sha256_update(&sha, iat, iat_len) < 0)
            die("sha256 failed");
        free(val);
        free(iat);
    }
    if (sha256_update(&sha, runtime, sizeof(runtime)) < 0 || sha256_final(&sha, e.report_data) < 0)
        die("sha256 failed");
    sha256_ctx_free(&sha);
    uint8_t* quote        = NULL;
    size_t quote_len      = 0;
    struct moat_error err = {0};
    if (sim_quote(g_sim, &e, &quote, &quote_len, &err) < 0)
        die("sim_quote: %s", err.msg);
    _cleanup_free_ char* q64 = base64_encode_alloc(quote, quote_len);
    _cleanup_free_ char* r64 = base64_encode_alloc(runtime, sizeof(runtime));
    free(quote);
    json_t* req = json_pack("{s:s, s:s}", "quote", q64, "runtime_data", r64);
    if (nonce)
        json_object_set_new(req, "verifier_nonce", nonce);
    _cleanup_free_ char* body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    snprintf(url, sizeof(url), "%s/appraisal/v1/attest", g_url);
    json_t* ans = request(w, url, body, why);
    int r       = ans && json_string_value(json_object_get(ans, "token")) ? 0 : -1;
    if (ans && r < 0)
        *why = xstrdup("an answer without \"token\"");
    json_decref(ans);
    return r;
}

static int one_transfer(struct worker* w, char** why) {
    json_t* ans = request(w, g_transfer_url, g_transfer_body, why);
    int r       = ans && json_string_value(json_object_get(ans, "wrapped_key")) &&
                    json_string_value(json_object_get(ans, "wrapped_swk"))
                      ? 0
                      : -1;
    if (ans && r < 0)
        *why = xstrdup("an answer without wrapped_key and wrapped_swk");
    json_decref(ans);
    return r;
}

static int one(struct worker* w, char** why) {
    return g_mode == MODE_TRANSFER ? one_transfer(w, why) : one_token(w, why);
}

static void* worker_main(void* arg) {
    struct worker* w = arg;
    char* why        = NULL;
    if (one(w, &why) < 0) /* once before the clock starts: the connection is made */
        die("%s", why);
    pthread_barrier_wait(&g_barrier);
    while (!atomic_load(&g_stop)) {
        double t0 = now_s();
        if (one(w, &why) < 0) {
            if (w->errors++ == 0)
                fprintf(stderr, "amber_load: %s\n", why);
            free(why);
            why = NULL;
            continue;
        }
        loadgen_push(&w->samples, t0, now_s());
    }
    return NULL;
}

int main(int argc, char** argv) {
    if (argc < 7)
        die("usage: amber_load flow|attest|transfer URL THREADS SECONDS (SIMDIR APIKEY | KEYID "
            "TOKENFILE) [pid=P]");
    if (strcmp(argv[1], "flow") == 0)
        g_mode = MODE_FLOW;
    else if (strcmp(argv[1], "attest") == 0)
        g_mode = MODE_ATTEST;
    else if (strcmp(argv[1], "transfer") == 0)
        g_mode = MODE_TRANSFER;
    else
        die("unknown mode %s", argv[1]);
    g_url          = argv[2];
    int n          = atoi(argv[3]);
    double seconds = atof(argv[4]);
    long pid       = 0;
    for (int i = 7; i < argc; i++) {
        if (strncmp(argv[i], "pid=", 4) == 0)
            pid = atol(argv[i] + 4);
        else
            die("unknown argument %s", argv[i]);
    }
    if (n <= 0 || seconds <= 0)
        die("THREADS and SECONDS must be positive");
    struct moat_error err = {0};
    if (g_mode == MODE_TRANSFER) {
        char* token = NULL;
        size_t len  = 0;
        if (read_file(argv[6], &token, &len, &err) < 0)
            die("%s", err.msg);
        while (len && (token[len - 1] == '\n' || token[len - 1] == '\r'))
            token[--len] = '\0';
        g_transfer_body = xasprintf("{\"attestation_token\":\"%s\"}", token);
        g_transfer_url  = xasprintf("%s/kbs/v1/keys/%s/transfer", g_url, argv[5]);
        free(token);
    } else {
        if (sim_load(argv[5], &g_sim, &err) < 0)
            die("%s", err.msg);
        g_api_key_header = xasprintf("x-api-key: %s", argv[6]);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        die("curl_global_init failed");

    struct worker* w = xcalloc((size_t)n, sizeof(*w));
    pthread_barrier_init(&g_barrier, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        w[i].curl = curl_easy_init();
        if (!w[i].curl)
            die("curl_easy_init failed");
        w[i].headers = curl_slist_append(NULL, "Content-Type: application/json");
        w[i].headers = curl_slist_append(w[i].headers, "Accept: application/json");
        if (g_api_key_header)
            w[i].headers = curl_slist_append(w[i].headers, g_api_key_header);
        curl_easy_setopt(w[i].curl, CURLOPT_HTTPHEADER, w[i].headers);
        curl_easy_setopt(w[i].curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        /* the servers' self-signed certificates, on 127.0.0.1 */
        curl_easy_setopt(w[i].curl, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(w[i].curl, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(w[i].curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(w[i].curl, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(w[i].curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(w[i].curl, CURLOPT_WRITEDATA, &w[i].body);
        curl_easy_setopt(w[i].curl, CURLOPT_TIMEOUT, 60L);
        if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0)
            die("pthread_create failed");
    }
    pthread_barrier_wait(&g_barrier);
    double c0 = loadgen_self_cpu(), s0 = loadgen_proc_cpu(pid), t0 = now_s();
    struct timespec d = {.tv_sec  = (time_t)seconds,
                         .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&d, &d) < 0 && errno == EINTR) {
    }
    double c1 = loadgen_self_cpu(), s1 = loadgen_proc_cpu(pid), t1 = now_s();
    atomic_store(&g_stop, true);
    unsigned errors = 0;
    long conns      = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].thread, NULL);
        errors += w[i].errors;
        long c = 0;
        if (curl_easy_getinfo(w[i].curl, CURLINFO_NUM_CONNECTS, &c) == CURLE_OK)
            conns += c;
    }
    /* the operations that ended inside the window (in a steady state, the throughput) */
    const struct samples** sets = xcalloc((size_t)n, sizeof(*sets));
    for (int i = 0; i < n; i++)
        sets[i] = &w[i].samples;
    struct latency l = loadgen_latency(sets, (size_t)n, t0, t1);
    free(sets);
    size_t k    = l.n;
    double wall = t1 - t0, cpu = c1 - c0;
    printf(
        "{\"ops\": %zu, \"errors\": %u, \"seconds\": %.6f, \"rate\": %.3f, \"p50_ms\": %.3f, "
        "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"client_cpu_s\": %.3f, "
        "\"client_cpu_per_op_ms\": %.4f, \"new_connections_last_op\": %ld",
        k, errors, wall, (double)k / wall, l.p50_ms, l.p99_ms, l.max_ms, cpu,
        k ? cpu / (double)k * 1000 : 0, conns);
    if (s0 >= 0 && s1 >= 0)
        printf(", \"server_cpu_per_op_ms\": %.4f", k ? (s1 - s0) / (double)k * 1000 : 0);
    printf("}\n");
    for (int i = 0; i < n; i++) {
        free(w[i].samples.v);
        strbuf_free(&w[i].body);
        curl_slist_free_all(w[i].headers);
        curl_easy_cleanup(w[i].curl);
    }
    free(w);
    free(g_api_key_header);
    free(g_transfer_body);
    free(g_transfer_url);
    sim_free(g_sim);
    curl_global_cleanup();
    pthread_barrier_destroy(&g_barrier);
    return fflush(stdout) == 0 ? 0 : 1;
}
