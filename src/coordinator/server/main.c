/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-coordinator (`moat coordinator`): configuration, the Coordinator's own evidence and
 * sealing key, start-up and shutdown (reference/marblerun.md §3.1, §3.2, §6; docs/coordinator.md).
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "collateral.h"
#include "moat-config.h"
#include "net.h"
#include "pccs.h"
#include "provider.h"
#include "server.h"
#include "sim.h"
#include "verify.h"

#define DEV_ATTESTATION "/dev/attestation"

/* ---------------------------------------------------------------------------------------- */
/* Logging: "moat-coordinator: info: ..." lines, or JSON lines with EDG_LOG_FORMAT=json       */

static bool g_json_logs;
static bool g_debug_logs;
static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Marble types, UUIDs, user names and paths in log lines come from the network: control
 * characters (a forged second line) and bytes that are not UTF-8 (which would make the JSON
 * line unprintable and the event vanish) are written as \xNN. */
static char* log_safe(const char* msg) {
    json_t* probe = json_string(msg); /* NULL unless valid UTF-8 */
    bool utf8     = probe != NULL;
    json_decref(probe);
    struct strbuf sb = STRBUF_INIT;
    for (const unsigned char* p = (const unsigned char*)msg; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !utf8))
            strbuf_printf(&sb, "\\x%02x", *p);
        else
            strbuf_putc(&sb, (char)*p);
    }
    strbuf_putc(&sb, '\0');
    return strbuf_take(&sb, NULL);
}

void slog(const char* level, const char* fmt, ...) {
    if (strcmp(level, "debug") == 0 && !g_debug_logs)
        return;
    va_list ap;
    va_start(ap, fmt);
    char* raw = NULL;
    int n     = vasprintf(&raw, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char* msg = log_safe(raw);
    free(raw);
    pthread_mutex_lock(&g_log_lock);
    if (g_json_logs) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        json_t* o  = json_pack("{s:s, s:f, s:s, s:s}", "level", level, "ts",
                               (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, "logger", "coordinator",
                               "msg", msg);
        char* line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (line)
            fprintf(stderr, "%s\n", line);
        free(line);
        json_decref(o);
    } else {
        fprintf(stderr, "moat-coordinator: %s: %s\n", level, msg);
    }
    fflush(stderr);
    pthread_mutex_unlock(&g_log_lock);
    free(msg);
}

/* The libraries' log_warning()/log_error()/log_debug() go through slog too. */
static void log_sink(enum log_level level, const char* msg) {
    const char* name = level <= LOG_LEVEL_ERROR     ? "error"
                       : level == LOG_LEVEL_WARNING ? "warning"
                                                    : "debug";
    slog(name, "%s", msg);
}

/* ---------------------------------------------------------------------------------------- */
/* Configuration                                                                              */

static const char g_usage[] =
    "usage: moat coordinator [OPTIONS]\n"
    "\n"
    "Runs a MarbleRun-compatible Coordinator in the foreground: the client REST API (HTTPS),\n"
    "the Marble API (gRPC /rpc.Marble/Activate) and, if asked, Prometheus metrics. Logs go to\n"
    "stderr; SIGTERM or SIGINT drains the listeners and exits 0. Every option has MarbleRun's\n"
    "environment variable; an option wins over its variable.\n"
    "\n"
    "options:\n"
    "  --mesh-addr ADDR        Marble API (EDG_COORDINATOR_MESH_ADDR, default :2001)\n"
    "  --client-addr ADDR      client API (EDG_COORDINATOR_CLIENT_ADDR, default :4433)\n"
    "  --prometheus-addr ADDR  /metrics and /events (EDG_COORDINATOR_PROMETHEUS_ADDR; off)\n"
    "  --dns-names A,B         names and IPs in the root certificate\n"
    "                          (EDG_COORDINATOR_DNS_NAMES, default localhost)\n"
    "  --seal-dir DIR          sealed state (EDG_COORDINATOR_SEAL_DIR, default\n"
    "                          $EDG_CWD or the working directory + /marblerun-coordinator-data)\n"
    "  --startup-manifest F    set this manifest at start (EDG_STARTUP_MANIFEST)\n"
    "  --dev-mode              start even if the Coordinator's own quote fails\n"
    "                          (EDG_COORDINATOR_DEV_MODE=1)\n"
    "  --simulation            MarbleRun's simulation mode: no quote of our own, Marble\n"
    "                          quotes NOT verified (OE_SIMULATION=1)\n"
    "  --no-seal               keep the state in memory only\n"
    "  --collateral F          dcap-qvl collateral JSON for verifying Marble quotes\n"
    "  --pccs URL              fetch the collateral for each Marble's platform from a PCCS\n"
    "                          or Intel PCS (MOAT_PCCS_URL), kept in memory and on disk\n"
    "  --pccs-cache DIR        where fetched collateral is kept (default\n"
    "                          $XDG_CACHE_HOME/moat/pccs)\n"
    "  --trusted-root PEM      trust anchor for Marble quotes (default: Intel's; with the\n"
    "                          simulated platform: its root)\n"
    "  --sim-dir DIR           the simulated platform (MOAT_SIM_DIR; moat attest init)\n"
    "  --mesh-threads N        event loops for the Marble API (default: CPUs, at most 8)\n"
    "  --debug                 debug logs (EDG_DEBUG_LOGGING=1)\n"
    "  --log-format text|json  (EDG_LOG_FORMAT)\n"
    "  -h, --help              show this help\n"
    "\n"
    "exit codes: 0 stopped by a signal, 1 runtime failure, 2 usage error.\n";

static bool env_true(const char* name) {
    const char* v = getenv(name);
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

static char** split_names(const char* s) {
    size_t n = 1;
    for (const char* p = s; *p; p++)
        n += *p == ',';
    char** v  = xcalloc(n + 1, sizeof(char*));
    size_t i  = 0;
    char* dup = xstrdup(s);
    char* save;
    for (char* tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t l = strlen(tok);
        while (l > 0 && tok[l - 1] == ' ')
            tok[--l] = '\0';
        if (l > 0)
            v[i++] = xstrdup(tok);
    }
    free(dup);
    if (i == 0)
        v[i++] = xstrdup("localhost");
    return v;
}

static void strv_free(char** v) {
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static char* g_default_seal_dir;

static int parse_config(int argc, char** argv, struct server_config* c) {
    *c = (struct server_config){
        .mesh_addr        = getenv("EDG_COORDINATOR_MESH_ADDR"),
        .client_addr      = getenv("EDG_COORDINATOR_CLIENT_ADDR"),
        .prometheus_addr  = getenv("EDG_COORDINATOR_PROMETHEUS_ADDR"),
        .seal_dir         = getenv("EDG_COORDINATOR_SEAL_DIR"),
        .startup_manifest = getenv("EDG_STARTUP_MANIFEST"),
        .dev_mode         = env_true("EDG_COORDINATOR_DEV_MODE"),
        .simulation       = env_true("OE_SIMULATION"),
        .debug            = env_true("EDG_DEBUG_LOGGING"),
        .sim_dir          = getenv("MOAT_SIM_DIR"),
        .pccs             = getenv("MOAT_PCCS_URL"),
    };
    const char* fmt   = getenv("EDG_LOG_FORMAT");
    const char* names = getenv("EDG_COORDINATOR_DNS_NAMES");
    enum {
        O_MESH = 256,
        O_CLIENT,
        O_PROM,
        O_DNS,
        O_SEAL,
        O_STARTUP,
        O_DEV,
        O_SIM,
        O_NOSEAL,
        O_COLL,
        O_PCCS,
        O_PCCS_CACHE,
        O_ROOT,
        O_SIMDIR,
        O_THREADS,
        O_DEBUG,
        O_FMT,
    };
    static const struct option opts[] = {
        {"mesh-addr", required_argument, NULL, O_MESH},
        {"client-addr", required_argument, NULL, O_CLIENT},
        {"prometheus-addr", required_argument, NULL, O_PROM},
        {"dns-names", required_argument, NULL, O_DNS},
        {"seal-dir", required_argument, NULL, O_SEAL},
        {"startup-manifest", required_argument, NULL, O_STARTUP},
        {"dev-mode", no_argument, NULL, O_DEV},
        {"simulation", no_argument, NULL, O_SIM},
        {"no-seal", no_argument, NULL, O_NOSEAL},
        {"collateral", required_argument, NULL, O_COLL},
        {"pccs", required_argument, NULL, O_PCCS},
        {"pccs-cache", required_argument, NULL, O_PCCS_CACHE},
        {"trusted-root", required_argument, NULL, O_ROOT},
        {"sim-dir", required_argument, NULL, O_SIMDIR},
        {"mesh-threads", required_argument, NULL, O_THREADS},
        {"debug", no_argument, NULL, O_DEBUG},
        {"log-format", required_argument, NULL, O_FMT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    uint64_t threads = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
            case O_MESH:
                c->mesh_addr = optarg;
                break;
            case O_CLIENT:
                c->client_addr = optarg;
                break;
            case O_PROM:
                c->prometheus_addr = optarg;
                break;
            case O_DNS:
                names = optarg;
                break;
            case O_SEAL:
                c->seal_dir = optarg;
                break;
            case O_STARTUP:
                c->startup_manifest = optarg;
                break;
            case O_DEV:
                c->dev_mode = true;
                break;
            case O_SIM:
                c->simulation = true;
                break;
            case O_NOSEAL:
                c->no_seal = true;
                break;
            case O_COLL:
                c->collateral = optarg;
                break;
            case O_PCCS:
                c->pccs = optarg;
                break;
            case O_PCCS_CACHE:
                c->pccs_cache = optarg;
                break;
            case O_ROOT:
                c->trusted_root = optarg;
                break;
            case O_SIMDIR:
                c->sim_dir = optarg;
                break;
            case O_THREADS:
                if (parse_u64(optarg, 10, &threads) < 0 || threads < 1 || threads > 64) {
                    fprintf(stderr, "moat coordinator: --mesh-threads: expected 1..64, got '%s'\n",
                            optarg);
                    return -EINVAL;
                }
                break;
            case O_DEBUG:
                c->debug = true;
                break;
            case O_FMT:
                fmt = optarg;
                break;
            case 'h':
                fputs(g_usage, stdout);
                return 1;
            default:
                fputs("Try 'moat coordinator --help'.\n", stderr);
                return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                "moat coordinator: unexpected argument '%s'\nTry 'moat coordinator --help'.\n",
                argv[optind]);
        return -EINVAL;
    }
    if (fmt && *fmt && strcmp(fmt, "json") != 0 && strcmp(fmt, "text") != 0) {
        fprintf(stderr, "moat coordinator: log format must be 'text' or 'json', got '%s'\n", fmt);
        return -EINVAL;
    }
    c->json_logs = fmt && strcmp(fmt, "json") == 0;
    if (!c->mesh_addr || !*c->mesh_addr)
        c->mesh_addr = ":2001";
    if (!c->client_addr || !*c->client_addr)
        c->client_addr = ":4433";
    if (c->prometheus_addr && !*c->prometheus_addr)
        c->prometheus_addr = NULL;
    if (c->pccs && !*c->pccs)
        c->pccs = NULL;
    if (c->pccs && c->collateral) {
        fprintf(stderr,
                "moat coordinator: --pccs fetches the collateral: give it or "
                "--collateral, not both\n");
        return -EINVAL;
    }
    c->dns_names = split_names(names && *names ? names : "localhost");
    if (!c->seal_dir || !*c->seal_dir) {
        const char* cwd = getenv("EDG_CWD");
        char buf[PATH_MAX];
        if (!cwd || !*cwd)
            cwd = getcwd(buf, sizeof(buf)) ? buf : ".";
        g_default_seal_dir = path_join(cwd, "marblerun-coordinator-data");
        c->seal_dir        = g_default_seal_dir;
    }
    long cpus       = sysconf(_SC_NPROCESSORS_ONLN);
    c->mesh_threads = threads ? (unsigned)threads : (unsigned)(cpus < 1 ? 1 : cpus > 8 ? 8 : cpus);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The Coordinator's identity, quote and sealing key                                          */

static bool in_moat_run(void) {
    return access(DEV_ATTESTATION "/quote", F_OK) == 0;
}

/* Outside `moat run` the Coordinator's measurement is the hash of its own executable. */
static int self_identity(struct attest_identity* id, struct moat_error* err) {
    *id                      = (struct attest_identity){0};
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    int r                    = read_file("/proc/self/exe", &buf, &len, err);
    if (r < 0)
        return r;
    return sha256_buf(buf, len, id->mrenclave) < 0 ? moat_error_set(err, -EIO, "sha256") : 0;
}

static int write_all_path(const char* path, const void* data, size_t len, struct moat_error* err) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return moat_error_set(err, -errno, "%s: %s", path, strerror(errno));
    ssize_t n = write(fd, data, len);
    int e     = errno;
    close(fd);
    if (n != (ssize_t)len)
        return moat_error_set(err, n < 0 ? -e : -EIO, "%s: %s", path,
                              n < 0 ? strerror(e) : "short write");
    return 0;
}

/* Gramine's way, inside `moat run`: report data into user_report_data, one read of quote. */
static int dev_attestation_quote(const uint8_t report_data[64], uint8_t** ret, size_t* ret_len,
                                 struct moat_error* err) {
    int r = write_all_path(DEV_ATTESTATION "/user_report_data", report_data, 64, err);
    if (r < 0)
        return r;
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    r                        = read_file(DEV_ATTESTATION "/quote", &buf, &len, err);
    if (r < 0)
        return r;
    *ret     = (uint8_t*)TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

/* MarbleRun's OpenEnclave remote-report header (§4.2): version 1, type 2, u64le length. */
static uint8_t* oe_wrap(const uint8_t* quote, size_t len, size_t* ret_len) {
    uint8_t* out = xmalloc(len + 16);
    memset(out, 0, 16);
    out[0] = 1;
    out[4] = 2;
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    memcpy(out + 16, quote, len);
    *ret_len = len + 16;
    return out;
}

int server_quote(struct server* s, const uint8_t* nonce, size_t nonce_len, uint8_t** ret,
                 size_t* ret_len, struct moat_error* err) {
    *ret     = NULL;
    *ret_len = 0;
    if (s->simulation)
        return 0;
    _cleanup_free_ uint8_t* root = NULL;
    size_t root_len              = 0;
    uint8_t* der                 = NULL;
    if (coord_core_root_cert(s->core, &der, &root_len) < 0)
        return moat_error_set(err, -ENOMEM, "cannot encode the root certificate");
    root = xmemdup(der, root_len);
    OPENSSL_free(der);
    uint8_t rd[64] = {0};
    uint8_t root_hash[32];
    if (sha256_buf(root, root_len, root_hash) < 0)
        return moat_error_set(err, -EIO, "sha256");
    if (!nonce) {
        pthread_mutex_lock(&s->lock);
        if (s->quote && memcmp(s->quote_root_hash, root_hash, 32) == 0) {
            *ret     = xmemdup(s->quote, s->quote_len);
            *ret_len = s->quote_len;
        }
        pthread_mutex_unlock(&s->lock);
        if (*ret)
            return 0;
        memcpy(rd, root_hash, 32);
    } else {
        /* sha256(root DER ‖ nonce) */
        _cleanup_free_ uint8_t* cat = xmalloc(root_len + nonce_len);
        memcpy(cat, root, root_len);
        if (nonce_len)
            memcpy(cat + root_len, nonce, nonce_len);
        if (sha256_buf(cat, root_len + nonce_len, rd) < 0)
            return moat_error_set(err, -EIO, "sha256");
    }
    _cleanup_free_ uint8_t* q = NULL;
    size_t qlen               = 0;
    int r;
    if (in_moat_run()) {
        r = dev_attestation_quote(rd, &q, &qlen, err);
    } else {
        struct attest_identity id;
        r = self_identity(&id, err);
        if (r == 0)
            r = attest_provider_quote(s->provider, &id, rd, &q, &qlen, err);
    }
    if (r < 0)
        return r;
    *ret = oe_wrap(q, qlen, ret_len);
    if (!nonce) {
        pthread_mutex_lock(&s->lock);
        free(s->quote);
        s->quote     = xmemdup(*ret, *ret_len);
        s->quote_len = *ret_len;
        memcpy(s->quote_root_hash, root_hash, 32);
        pthread_mutex_unlock(&s->lock);
    }
    return 0;
}

/* 32 bytes from a 16-byte SGX-style sealing key (HKDF-SHA256, info names the use). */
static int expand_key(const uint8_t* ikm, size_t len, uint8_t out[32]) {
    EVP_KDF* kdf     = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    static const char info[] = "moat coordinator sealed_key";
    OSSL_PARAM params[]      = {
             OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char*)"SHA256", 0),
             OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void*)ikm, len),
             OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void*)info, sizeof(info) - 1),
             OSSL_PARAM_construct_end(),
    };
    int ok = ctx && EVP_KDF_derive(ctx, out, 32, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok ? 0 : -EIO;
}

/* 16 bytes of a Gramine key file, HKDF'd to 32. -ENOENT when the file is not there. */
static int gramine_key(const char* path, uint8_t out[32]) {
    uint8_t k16[16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -ENOENT;
    ssize_t n = read(fd, k16, sizeof(k16));
    close(fd);
    int r = n == (ssize_t)sizeof(k16) ? expand_key(k16, sizeof(k16), out) : -ENOENT;
    OPENSSL_cleanse(k16, sizeof(k16));
    return r;
}

/* moat's per-machine sealing key for an identity, HKDF'd to 32 bytes. */
static int machine_key(const struct attest_identity* id, uint8_t out[32], struct moat_error* err) {
    uint8_t k16[16];
    int r = attest_seal_key(NULL, false, id, k16, err);
    if (r < 0)
        return r;
    r = expand_key(k16, sizeof(k16), out);
    OPENSSL_cleanse(k16, sizeof(k16));
    return r < 0 ? moat_error_set(err, r, "cannot derive the sealing key") : 0;
}

/*
 * The keys the DEK is sealed with (§3.4, §1.6 SealMode): the product key (MarbleRun's default
 * ProductKey) and the unique key (UniqueKey). Inside `moat run`: Gramine's
 * /dev/attestation/keys/_sgx_mrsigner and _sgx_mrenclave (an unsigned manifest has no MRSIGNER
 * key: then both are the MRENCLAVE key). Natively: moat's per-machine sealing key for the
 * Coordinator as a product (the state survives an upgrade of the binary on this machine and
 * is unreadable on another) and for this very binary (its SHA-256).
 */
static int seal_keys(uint8_t product[32], uint8_t unique[32], const char** ret_info,
                     const char** ret_unique_info, struct moat_error* err) {
    if (in_moat_run()) {
        if (gramine_key(DEV_ATTESTATION "/keys/_sgx_mrenclave", unique) < 0)
            return moat_error_set(err, -ENOKEY,
                                  "no sealing key in " DEV_ATTESTATION
                                  "/keys/_sgx_mrenclave: run the Coordinator under a manifest "
                                  "with attestation, or pass --no-seal");
        *ret_unique_info = "moat-seal-v1 gramine _sgx_mrenclave";
        if (gramine_key(DEV_ATTESTATION "/keys/_sgx_mrsigner", product) == 0) {
            *ret_info = "moat-seal-v1 gramine _sgx_mrsigner";
            slog("info", "sealing with " DEV_ATTESTATION
                         "/keys/_sgx_mrsigner (ProductKey) and "
                         "_sgx_mrenclave (UniqueKey)");
        } else {
            memcpy(product, unique, 32);
            *ret_info = *ret_unique_info;
            slog("warning", "the manifest is not signed: no " DEV_ATTESTATION
                            "/keys/_sgx_mrsigner, so ProductKey seals with _sgx_mrenclave "
                            "too (a new build cannot unseal the state: recovery)");
        }
        return 0;
    }
    struct attest_identity id      = {0};
    static const char product_id[] = "moat coordinator product key";
    if (sha256_buf(product_id, sizeof(product_id) - 1, id.mrenclave) < 0)
        return moat_error_set(err, -EIO, "sha256");
    int r = machine_key(&id, product, err);
    if (r < 0)
        return r;
    *ret_info = "moat-seal-v1 machine product";
    if ((r = self_identity(&id, err)) < 0 || (r = machine_key(&id, unique, err)) < 0)
        return r;
    *ret_unique_info = "moat-seal-v1 machine unique";
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Verifying Marble quotes                                                                    */

/* Collateral fetched from a PCCS, per platform (SGX/TDX, FMSPC, PCK CA). Entries are
 * refreshed after PCCS_MAX_AGE; a replaced collateral may still be in use by a verification
 * on another thread, so it is kept until exit (one per platform per day). */
#define PCCS_MAX_AGE 86400
struct pccs_entry {
    bool tdx, processor_ca;
    uint8_t fmspc[6];
    time_t fetched;
    struct collateral* collateral;
};

struct verifier {
    struct collateral* collateral;
    X509* anchor;
    struct attest_verify_opts opts;
    const char* pccs;
    const char* pccs_cache;
    pthread_mutex_t pccs_lock;
    struct pccs_entry* entries;
    size_t n_entries;
    struct collateral** old;
    size_t n_old;
    bool pccs_lock_init;
};

static int pccs_hook(void* ctx, const uint8_t* quote, size_t len, const struct collateral** ret,
                     struct moat_error* err) {
    struct verifier* v      = ctx;
    struct pccs_request req = {.url = v->pccs, .cache_dir = v->pccs_cache};
    int r                   = pccs_request_for_quote(quote, len, NULL, &req, err);
    if (r < 0)
        return r;
    time_t now = time(NULL);
    pthread_mutex_lock(&v->pccs_lock);
    struct pccs_entry* e = NULL;
    for (size_t i = 0; i < v->n_entries && !e; i++)
        if (v->entries[i].tdx == req.tdx && v->entries[i].processor_ca == req.processor_ca &&
            memcmp(v->entries[i].fmspc, req.fmspc, 6) == 0)
            e = &v->entries[i];
    if (e && now - e->fetched < PCCS_MAX_AGE) {
        *ret = e->collateral;
        pthread_mutex_unlock(&v->pccs_lock);
        return 0;
    }
    /* fetched under the lock: one request per platform, not one per waiting Marble */
    struct collateral* c = NULL;
    r                    = pccs_collateral(&req, &c, err);
    if (r < 0) {
        if (e) { /* the service is down: keep using what we have, pccs_collateral warned */
            *ret = e->collateral;
            moat_error_clear(err);
            r = 0;
        }
        pthread_mutex_unlock(&v->pccs_lock);
        return r;
    }
    if (e) {
        v->old             = xrealloc(v->old, (v->n_old + 1) * sizeof(*v->old));
        v->old[v->n_old++] = e->collateral;
    } else {
        v->entries = xrealloc(v->entries, (v->n_entries + 1) * sizeof(*v->entries));
        e          = &v->entries[v->n_entries++];
        *e         = (struct pccs_entry){.tdx = req.tdx, .processor_ca = req.processor_ca};
        memcpy(e->fmspc, req.fmspc, 6);
    }
    e->collateral = c;
    e->fetched    = now;
    *ret          = c;
    pthread_mutex_unlock(&v->pccs_lock);
    _cleanup_free_ char* fmspc = hex_encode_alloc(req.fmspc, 6);
    slog("info", "collateral for FMSPC %s (%s) fetched from %s", fmspc, req.tdx ? "TDX" : "SGX",
         v->pccs);
    return 0;
}

static int load_anchor(const char* path, X509** ret, struct moat_error* err) {
    _cleanup_free_ char* pem = NULL;
    size_t len               = 0;
    int r                    = read_file(path, &pem, &len, err);
    if (r < 0)
        return r;
    r = x509_parse(pem, len, ret, err);
    return r < 0 ? moat_error_prefix(err, "%s", path) : 0;
}

static int verifier_setup(const struct server_config* cfg, struct verifier* v,
                          struct moat_error* err) {
    int r;
    pthread_mutex_init(&v->pccs_lock, NULL);
    v->pccs_lock_init = true;
    if (cfg->pccs) {
        v->pccs       = cfg->pccs;
        v->pccs_cache = cfg->pccs_cache;
        if (cfg->trusted_root && (r = load_anchor(cfg->trusted_root, &v->anchor, err)) < 0)
            return r;
        slog("info", "Marble quotes are verified with collateral from %s against %s", cfg->pccs,
             cfg->trusted_root ? cfg->trusted_root : "the Intel SGX Root CA");
    } else if (cfg->collateral) {
        r = collateral_load_qvl_json(cfg->collateral, &v->collateral, err);
        if (r < 0)
            return moat_error_prefix(err, "--collateral %s", cfg->collateral);
        if (cfg->trusted_root && (r = load_anchor(cfg->trusted_root, &v->anchor, err)) < 0)
            return r;
        slog("info", "Marble quotes are verified with the collateral in %s against %s",
             cfg->collateral, cfg->trusted_root ? cfg->trusted_root : "the Intel SGX Root CA");
    } else {
        _cleanup_free_ char* dir = cfg->sim_dir ? xstrdup(cfg->sim_dir) : attest_default_sim_dir();
        _cleanup_free_ char* ti  = path_join(dir, SIM_TCB_INFO);
        if (access(ti, R_OK) != 0)
            return moat_error_set(err, -ENOENT,
                                  "no collateral to verify Marble quotes: pass --collateral "
                                  "FILE (hardware quotes), create a simulated platform with "
                                  "'moat attest init' (now missing: %s), or run in MarbleRun's "
                                  "simulation mode (OE_SIMULATION=1: quotes are not verified)",
                                  ti);
        r = sim_load_verifier(dir, &v->collateral, &v->anchor, err);
        if (r < 0)
            return moat_error_prefix(err, "simulated platform %s", dir);
        if (cfg->trusted_root) {
            X509_free(v->anchor);
            v->anchor = NULL;
            if ((r = load_anchor(cfg->trusted_root, &v->anchor, err)) < 0)
                return r;
        }
        slog("warning",
             "Marble quotes are verified against the SIMULATED platform in %s: they prove "
             "nothing about hardware (package identities, Debug, SVNs and TCB status are "
             "checked for real)",
             dir);
    }
    v->opts = (struct attest_verify_opts){.anchor = v->anchor}; /* the core keeps the caches */
    return 0;
}

static void verifier_clear(struct verifier* v) {
    collateral_free(v->collateral);
    for (size_t i = 0; i < v->n_entries; i++)
        collateral_free(v->entries[i].collateral);
    for (size_t i = 0; i < v->n_old; i++)
        collateral_free(v->old[i]);
    free(v->entries);
    free(v->old);
    if (v->pccs_lock_init)
        pthread_mutex_destroy(&v->pccs_lock);
    X509_free(v->anchor);
    attest_verify_cache_free(v->opts.cache);
    *v = (struct verifier){0};
}

/* ---------------------------------------------------------------------------------------- */
/* TLS credentials of the listeners                                                           */

int server_credentials(struct server* s, bool mesh, struct net_tls_credentials* ret,
                       uint8_t ret_hash[32]) {
    *ret  = (struct net_tls_credentials){0};
    int r = coord_core_tls_credentials(s->core, mesh, &ret->cert, &ret->key);
    if (r < 0)
        return r;
    uint8_t* der = NULL;
    int n        = i2d_X509(ret->cert, &der);
    if (n <= 0 || sha256_buf(der, (size_t)n, ret_hash) < 0) {
        OPENSSL_free(der);
        server_credentials_clear(ret);
        return -ENOMEM;
    }
    OPENSSL_free(der);
    return 0;
}

void server_credentials_clear(struct net_tls_credentials* c) {
    X509_free(c->cert);
    EVP_PKEY_free(c->key);
    *c = (struct net_tls_credentials){0};
}

/* ---------------------------------------------------------------------------------------- */
/* Start-up and shutdown                                                                      */

static void on_signal(evutil_socket_t sig, short what, void* arg) {
    (void)what;
    struct server* s = arg;
    if (atomic_exchange(&s->stopping, true))
        return;
    slog("info", "%s received: draining and stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (s->mesh)
        mesh_stop(s->mesh, 10000);
    if (s->prometheus)
        net_http_server_shutdown(s->prometheus, 2000);
    if (s->client_api)
        net_http_server_shutdown(s->client_api, 10000);
    else
        event_base_loopexit(s->base, NULL);
}

static int startup_manifest(struct server* s, struct moat_error* err) {
    const char* path = s->cfg.startup_manifest;
    if (!path || !*path)
        return 0;
    if (coord_core_state(s->core) != COORD_STATE_ACCEPTING_MANIFEST) {
        slog("info", "a manifest is already set: %s is not applied", path);
        return 0;
    }
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    int r                    = read_file(path, &buf, &len, err);
    if (r < 0)
        return moat_error_prefix(err, "EDG_STARTUP_MANIFEST");
    struct coord_recovery_secrets rs = {0};
    r                                = coord_core_set_manifest(s->core, buf, len, &rs, err);
    if (r < 0)
        return moat_error_prefix(err, "setting the start-up manifest %s", path);
    if (rs.n)
        slog("warning",
             "the start-up manifest has RecoveryKeys: its recovery secrets are not printed; "
             "set such manifests through the API to receive them");
    coord_recovery_secrets_clear(&rs);
    slog("info", "start-up manifest %s set", path);
    return 0;
}

static int run(struct server* s) {
    struct moat_error err = {0};
    int r;
    /* evidence: in simulation (MarbleRun's OE_SIMULATION) there is none */
    if (!s->cfg.simulation && !in_moat_run()) {
        r = attest_provider_open(s->cfg.sim_dir, NULL, &s->provider, &err);
        if (r < 0) {
            slog("error", "%s", err.msg);
            return MOAT_EXIT_RUNTIME;
        }
        slog("info", "attestation provider: %s", attest_provider_describe(s->provider));
    }
    bool no_provider = s->provider && attest_provider_kind(s->provider) == ATTEST_NONE;
    s->simulation    = s->cfg.simulation || no_provider;
    if (in_moat_run() && !s->cfg.simulation) {
        char type[64]          = {0};
        _cleanup_free_ char* t = NULL;
        size_t tl              = 0;
        if (read_file(DEV_ATTESTATION "/attestation_type", &t, &tl, &err) == 0) {
            snprintf(type, sizeof(type), "%.*s", (int)tl, t);
            type[strcspn(type, "\n")] = '\0';
        }
        moat_error_clear(&err);
        slog("info", "inside moat run: attestation type '%s'", type);
        if (strcmp(type, "none") == 0 || !type[0])
            s->simulation = true;
    }

    uint8_t key[32], unique[32];
    const char *key_info = NULL, *unique_info = NULL;
    bool sealing = !s->cfg.no_seal;
    if (sealing && seal_keys(key, unique, &key_info, &unique_info, &err) < 0) {
        slog("error", "%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    struct verifier v = {0};
    if (!s->simulation && verifier_setup(&s->cfg, &v, &err) < 0) {
        slog("error", "%s", err.msg);
        OPENSSL_cleanse(key, sizeof(key));
        OPENSSL_cleanse(unique, sizeof(unique));
        return MOAT_EXIT_RUNTIME;
    }
    struct coord_core_opts co = {
        .seal_dir             = sealing ? s->cfg.seal_dir : NULL,
        .seal_key             = sealing ? key : NULL,
        .seal_key_info        = key_info,
        .unique_seal_key      = sealing ? unique : NULL,
        .unique_seal_key_info = unique_info,
        .dns_names            = (const char* const*)s->cfg.dns_names,
        .simulation           = s->simulation,
        .collateral           = v.collateral,
        .verify_opts          = s->simulation ? NULL : &v.opts,
        .collateral_for_quote = v.pccs ? pccs_hook : NULL,
        .collateral_ctx       = &v,
    };
    r = coord_core_new(&co, &s->core, &err);
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(unique, sizeof(unique));
    if (r < 0) {
        slog("error", "starting the core: %s", err.msg);
        verifier_clear(&v);
        return MOAT_EXIT_RUNTIME;
    }
    slog("info", "state: %s (seal dir %s)",
         coord_state_message(coord_core_state(s->core))[0]
             ? coord_state_message(coord_core_state(s->core))
             : "uninitialized",
         sealing ? s->cfg.seal_dir : "none: in memory only");

    /* §3.2: after start-up the Coordinator caches a quote over sha256(root DER) */
    if (!s->simulation) {
        uint8_t* q = NULL;
        size_t ql  = 0;
        r          = server_quote(s, NULL, 0, &q, &ql, &err);
        free(q);
        if (r < 0) {
            if (!s->cfg.dev_mode) {
                slog("error", "cannot get the Coordinator's quote: %s", err.msg);
                coord_core_free(s->core);
                verifier_clear(&v);
                return MOAT_EXIT_RUNTIME;
            }
            slog("warning", "cannot get the Coordinator's quote (%s); EDG_COORDINATOR_DEV_MODE",
                 err.msg);
            moat_error_clear(&err);
        }
    }
    if (s->simulation)
        slog("warning",
             "Failed to get quote. Proceeding in simulation mode. SIMULATION MODE: the "
             "Coordinator has no quote of its own and accepts ANY Marble quote (MarbleRun's "
             "simulation mode); never use it in production");

    int exit_code = MOAT_EXIT_RUNTIME;
    if (startup_manifest(s, &err) < 0) {
        slog("error", "%s", err.msg);
        goto out;
    }
    s->base = event_base_new();
    if (!s->base) {
        slog("error", "cannot create the event loop");
        goto out;
    }
    if (api_start(s, &err) < 0 || metrics_start(s, &err) < 0 || mesh_start(s, &s->mesh, &err) < 0) {
        slog("error", "%s", err.msg);
        goto out;
    }
    struct event* sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
    struct event* sigint  = evsignal_new(s->base, SIGINT, on_signal, s);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    char metrics[320] = "";
    if (s->prometheus)
        snprintf(metrics, sizeof(metrics), ", metrics on %s (port %d)", s->cfg.prometheus_addr,
                 net_http_server_port(s->prometheus));
    slog("info", "Coordinator started: client API on %s (port %d), Marble API on %s (port %d)%s",
         s->cfg.client_addr, net_http_server_port(s->client_api), s->cfg.mesh_addr,
         mesh_port(s->mesh), metrics);
    event_base_dispatch(s->base);
    event_free(sigterm);
    event_free(sigint);
    exit_code = MOAT_EXIT_OK;
    slog("info", "Coordinator stopped");
out:
    if (s->mesh) {
        mesh_stop(s->mesh, 1000);
        mesh_free(s->mesh);
    }
    net_http_server_free(s->client_api);
    net_http_server_free(s->prometheus);
    if (s->base)
        event_base_free(s->base);
    coord_core_free(s->core);
    verifier_clear(&v);
    return exit_code;
}

/* jansson holds secrets (GET/POST /secrets, recovery secrets): every block it frees is wiped. */
static void wiping_free(void* p) {
    if (p)
        OPENSSL_cleanse(p, malloc_usable_size(p));
    free(p);
}

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    json_set_alloc_funcs(malloc, wiping_free);
    struct server s = {0};
    int r           = parse_config(argc, argv, &s.cfg);
    if (r != 0)
        return r > 0 ? MOAT_EXIT_OK : MOAT_EXIT_USAGE;
    g_json_logs  = s.cfg.json_logs;
    g_debug_logs = s.cfg.debug;
    log_set_level(s.cfg.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING);
    log_set_sink(log_sink);
    if (evthread_use_pthreads() < 0) {
        slog("error", "libevent without thread support");
        return MOAT_EXIT_RUNTIME;
    }
    /* libevent's signal events see SIGTERM/SIGINT only on the main loop's thread */
    pthread_mutex_init(&s.lock, NULL);
    slog("info", "moat-coordinator %s starting", MOAT_VERSION);
    int code = run(&s);
    metrics_free(&s);
    attest_provider_free(s.provider);
    free(s.quote);
    strv_free(s.cfg.dns_names);
    free(g_default_seal_dir);
    pthread_mutex_destroy(&s.lock);
    return code;
}
