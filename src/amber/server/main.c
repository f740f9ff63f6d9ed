/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-amber (`moat amber serve`): configuration, trust set-up, start-up and shutdown of the
 * Amber / ITA compatible token service (attestation.md §4.1, §4.2; docs/amber.md). Built as a
 * program of its own, like moat-coordinator, so that `moat` never maps libevent.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat-config.h"
#include "provider.h"
#include "server.h"
#include "tcb.h"

static bool g_debug;

void slog(const char* level, const char* fmt, ...) {
    if (strcmp(level, "debug") == 0 && !g_debug)
        return;
    va_list ap;
    va_start(ap, fmt);
    char* msg = NULL;
    int n     = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* request data reaches log lines: no control characters (a forged second line) */
    for (char* p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "moat-amber: %s: %s\n", level, msg);
    fflush(stderr);
    free(msg);
}

static void log_sink(enum log_level level, const char* msg) {
    slog(level <= LOG_LEVEL_ERROR     ? "error"
         : level == LOG_LEVEL_WARNING ? "warning"
                                      : "debug",
         "%s", msg);
}

/* ------------------------------------------------------------------------------------------ */
/* Configuration                                                                                */

static const char g_usage[] =
    "usage: moat amber serve [OPTIONS]\n"
    "\n"
    "Runs an Intel Trust Authority (formerly Project Amber) compatible attestation token\n"
    "service in the foreground: nonces, attestation of SGX and TDX quotes (Amber beta, ITA v1\n"
    "and v2 request shapes), JWT tokens and the JWKS. Logs go to stderr; SIGTERM or SIGINT\n"
    "drains and exits 0. Every option has an environment variable; an option wins.\n"
    "\n"
    "options:\n"
    "  --addr ADDR              listen address (MOAT_AMBER_ADDR, default :8443)\n"
    "  --state-dir DIR          keys and certificates (MOAT_AMBER_STATE_DIR, default\n"
    "                           ./moat-amber-data)\n"
    "  --api-key KEY            an accepted x-api-key; repeatable (MOAT_AMBER_API_KEYS, comma-\n"
    "                           separated)\n"
    "  --api-key-file FILE      accepted keys, one a line (MOAT_AMBER_API_KEY_FILE)\n"
    "  --insecure-no-api-key    accept requests without a valid x-api-key\n"
    "  --collateral PATH        DCAP collateral for hardware quotes: a dcap-qvl JSON file or a\n"
    "                           directory of PCS files (MOAT_AMBER_COLLATERAL)\n"
    "  --pccs URL               fetch the collateral of each hardware quote's platform from a\n"
    "                           PCCS or Intel PCS, kept in memory and on disk (MOAT_PCCS_URL)\n"
    "  --pccs-cache DIR         where fetched collateral is kept (default\n"
    "                           $XDG_CACHE_HOME/moat/pccs)\n"
    "  --trusted-root PEM       trust anchor for hardware quotes (MOAT_AMBER_TRUSTED_ROOT;\n"
    "                           default the Intel SGX Root CA)\n"
    "  --trust-simulated DIR    accept moat SIMULATED quotes of the platform in DIR (moat\n"
    "                           attest init); their tokens say \"moat_simulated\": true\n"
    "                           (MOAT_AMBER_TRUST_SIMULATED)\n"
    "  --accept-tcb LIST        TCB statuses that get a token (MOAT_AMBER_ACCEPT_TCB; default\n"
    "                           every status but Revoked, as ITA: the token names the status)\n"
    "  --nonce-validity SECS    nonce freshness (MOAT_AMBER_NONCE_VALIDITY, default 300)\n"
    "  --token-validity SECS    exp - iat of tokens (MOAT_AMBER_TOKEN_VALIDITY, default 300)\n"
    "  --issuer NAME            the iss claim (MOAT_AMBER_ISSUER, default \"Intel Trust\n"
    "                           Authority\"; Amber beta tokens \"AS Attestation Token Issuer\")\n"
    "  --public-url URL         the service's URL for jku and the CRL distribution point\n"
    "                           (MOAT_AMBER_PUBLIC_URL, default https://localhost:PORT)\n"
    "  --tls-cert PEM, --tls-key PEM  TLS credentials (MOAT_AMBER_TLS_CERT/_KEY; default a\n"
    "                           self-signed certificate for localhost in the state directory)\n"
    "  --insecure-verify-at TIME  verify quotes and collateral as at TIME\n"
    "                           (2025-06-20T00:00:00Z or Unix seconds): tests with old data only\n"
    "  --policy-dir DIR         appraisal and token customization policies: <policy id>.rego\n"
    "                           files in moat's Rego subset (docs/rego.md) "
    "(MOAT_AMBER_POLICY_DIR)\n"
    "  --no-seal                keep the private keys in plain PEM instead of sealed with this\n"
    "                           machine's sealing key (MOAT_AMBER_NO_SEAL=1)\n"
    "  --debug                  debug logs (MOAT_AMBER_DEBUG=1)\n"
    "  -h, --help               show this help\n"
    "\n"
    "exit codes: 0 stopped by a signal, 1 runtime failure, 2 usage error.\n";

static void strv_push(char*** v, size_t* n, const char* s) {
    *v           = xrealloc(*v, (*n + 2) * sizeof(char*));
    (*v)[(*n)++] = xstrdup(s);
    (*v)[*n]     = NULL;
}

static void strv_free(char** v) {
    for (size_t i = 0; v && v[i]; i++) {
        OPENSSL_cleanse(v[i], strlen(v[i]));
        free(v[i]);
    }
    free(v);
}

/* Splits `s` at any of `seps`, trimming blanks; empty pieces are skipped. */
static void strv_split(char*** v, size_t* n, const char* s, const char* seps) {
    _cleanup_free_ char* dup = xstrdup(s);
    char* save               = NULL;
    for (char* tok = strtok_r(dup, seps, &save); tok; tok = strtok_r(NULL, seps, &save)) {
        tok += strspn(tok, " \t\r");
        size_t l = strlen(tok);
        while (l > 0 && strchr(" \t\r", tok[l - 1]))
            tok[--l] = '\0';
        if (l > 0)
            strv_push(v, n, tok);
    }
    OPENSSL_cleanse(dup, strlen(s));
}

static int parse_seconds(const char* opt, const char* v, long* ret) {
    uint64_t n = 0;
    if (parse_u64(v, 10, &n) < 0 || n < 1 || n > 86400 * 365) {
        fprintf(stderr, "moat amber serve: %s: expected seconds (1..31536000), got '%s'\n", opt, v);
        return -EINVAL;
    }
    *ret = (long)n;
    return 0;
}

static const char* env_or_null(const char* name) {
    const char* v = getenv(name);
    return v && *v ? v : NULL;
}

enum {
    O_ADDR = 256,
    O_STATE,
    O_KEY,
    O_KEYFILE,
    O_NOKEY,
    O_COLL,
    O_ROOT,
    O_SIM,
    O_ACCEPT,
    O_NONCE,
    O_TOKEN,
    O_ISSUER,
    O_URL,
    O_CERT,
    O_TLSKEY,
    O_NOSEAL,
    O_PCCS,
    O_PCCS_CACHE,
    O_VERIFY_AT,
    O_DEBUG,
    O_POLICY_DIR,
};

static const struct option g_opts[] = {
    {"addr", required_argument, NULL, O_ADDR},
    {"state-dir", required_argument, NULL, O_STATE},
    {"api-key", required_argument, NULL, O_KEY},
    {"api-key-file", required_argument, NULL, O_KEYFILE},
    {"insecure-no-api-key", no_argument, NULL, O_NOKEY},
    {"collateral", required_argument, NULL, O_COLL},
    {"trusted-root", required_argument, NULL, O_ROOT},
    {"trust-simulated", required_argument, NULL, O_SIM},
    {"accept-tcb", required_argument, NULL, O_ACCEPT},
    {"nonce-validity", required_argument, NULL, O_NONCE},
    {"token-validity", required_argument, NULL, O_TOKEN},
    {"issuer", required_argument, NULL, O_ISSUER},
    {"public-url", required_argument, NULL, O_URL},
    {"tls-cert", required_argument, NULL, O_CERT},
    {"tls-key", required_argument, NULL, O_TLSKEY},
    {"no-seal", no_argument, NULL, O_NOSEAL},
    {"pccs", required_argument, NULL, O_PCCS},
    {"pccs-cache", required_argument, NULL, O_PCCS_CACHE},
    {"insecure-verify-at", required_argument, NULL, O_VERIFY_AT},
    {"debug", no_argument, NULL, O_DEBUG},
    {"policy-dir", required_argument, NULL, O_POLICY_DIR},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int load_key_file(const char* path, char*** keys, size_t* n) {
    struct moat_error err    = {0};
    _cleanup_free_ char* buf = NULL;
    size_t len               = 0;
    if (read_file(path, &buf, &len, &err) < 0) {
        fprintf(stderr, "moat amber serve: --api-key-file: %s\n", err.msg);
        return -ENOENT;
    }
    strv_split(keys, n, buf, "\n");
    OPENSSL_cleanse(buf, len);
    return 0;
}

/* Options first, then the environment for what they left unset. Returns 1 after --help. */
static int parse_config(int argc, char** argv, struct amber_config* c) {
    const char *nonce_v  = env_or_null("MOAT_AMBER_NONCE_VALIDITY"),
               *token_v  = env_or_null("MOAT_AMBER_TOKEN_VALIDITY");
    const char* key_file = env_or_null("MOAT_AMBER_API_KEY_FILE");
    size_t n_keys        = 0;
    bool keys_given      = false;
    *c                   = (struct amber_config){
                          .addr            = env_or_null("MOAT_AMBER_ADDR"),
                          .state_dir       = env_or_null("MOAT_AMBER_STATE_DIR"),
                          .collateral      = env_or_null("MOAT_AMBER_COLLATERAL"),
                          .trusted_root    = env_or_null("MOAT_AMBER_TRUSTED_ROOT"),
                          .trust_simulated = env_or_null("MOAT_AMBER_TRUST_SIMULATED"),
                          .accept_tcb      = env_or_null("MOAT_AMBER_ACCEPT_TCB"),
                          .issuer          = env_or_null("MOAT_AMBER_ISSUER"),
                          .public_url      = env_or_null("MOAT_AMBER_PUBLIC_URL"),
                          .tls_cert        = env_or_null("MOAT_AMBER_TLS_CERT"),
                          .tls_key         = env_or_null("MOAT_AMBER_TLS_KEY"),
                          .no_seal         = env_or_null("MOAT_AMBER_NO_SEAL") != NULL,
                          .pccs            = env_or_null("MOAT_PCCS_URL"),
                          .debug           = env_or_null("MOAT_AMBER_DEBUG") != NULL,
                          .policy_dir      = env_or_null("MOAT_AMBER_POLICY_DIR"),
    };
    int o;
    uint64_t at = 0;
    while ((o = getopt_long(argc, argv, "h", g_opts, NULL)) != -1) {
        switch (o) {
            case O_ADDR:
                c->addr = optarg;
                break;
            case O_STATE:
                c->state_dir = optarg;
                break;
            case O_KEY:
                keys_given = true;
                strv_push(&c->api_keys, &n_keys, optarg);
                break;
            case O_KEYFILE:
                key_file = optarg;
                break;
            case O_NOKEY:
                c->insecure_no_api_key = true;
                break;
            case O_COLL:
                c->collateral = optarg;
                break;
            case O_ROOT:
                c->trusted_root = optarg;
                break;
            case O_SIM:
                c->trust_simulated = optarg;
                break;
            case O_ACCEPT:
                c->accept_tcb = optarg;
                break;
            case O_NONCE:
                nonce_v = optarg;
                break;
            case O_TOKEN:
                token_v = optarg;
                break;
            case O_ISSUER:
                c->issuer = optarg;
                break;
            case O_URL:
                c->public_url = optarg;
                break;
            case O_CERT:
                c->tls_cert = optarg;
                break;
            case O_TLSKEY:
                c->tls_key = optarg;
                break;
            case O_NOSEAL:
                c->no_seal = true;
                break;
            case O_PCCS:
                c->pccs = optarg;
                break;
            case O_PCCS_CACHE:
                c->pccs_cache = optarg;
                break;
            case O_VERIFY_AT:
                if (parse_u64(optarg, 10, &at) == 0)
                    c->verify_at = (time_t)at;
                else if (iso8601_parse(optarg, &c->verify_at) < 0) {
                    fprintf(stderr,
                            "moat amber serve: --insecure-verify-at: '%s' is neither "
                            "YYYY-MM-DDTHH:MM:SSZ nor Unix seconds\n",
                            optarg);
                    return -EINVAL;
                }
                break;
            case O_DEBUG:
                c->debug = true;
                break;
            case O_POLICY_DIR:
                c->policy_dir = optarg;
                break;
            case 'h':
                fputs(g_usage, stdout);
                return 1;
            default:
                fputs("Try 'moat amber serve --help'.\n", stderr);
                return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moat amber serve: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (!keys_given && env_or_null("MOAT_AMBER_API_KEYS"))
        strv_split(&c->api_keys, &n_keys, getenv("MOAT_AMBER_API_KEYS"), ",");
    if (key_file && load_key_file(key_file, &c->api_keys, &n_keys) < 0)
        return -EINVAL;
    c->nonce_validity = 300;
    c->token_validity = 300;
    if ((nonce_v && parse_seconds("--nonce-validity", nonce_v, &c->nonce_validity) < 0) ||
        (token_v && parse_seconds("--token-validity", token_v, &c->token_validity) < 0))
        return -EINVAL;
    if (n_keys == 0 && !c->insecure_no_api_key) {
        fputs(
            "moat amber serve: no API key: give --api-key KEY or --api-key-file FILE (or, "
            "for tests only, --insecure-no-api-key)\n",
            stderr);
        return -EINVAL;
    }
    if (c->pccs && c->collateral) {
        fputs(
            "moat amber serve: --pccs fetches the collateral: give it or --collateral, not "
            "both\n",
            stderr);
        return -EINVAL;
    }
    if (!c->addr)
        c->addr = ":8443";
    if (!c->state_dir)
        c->state_dir = "moat-amber-data";
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The sealing key of the state directory                                                       */

/*
 * moat's per-machine sealing key (MRENCLAVE policy) for the token service as a product, as the
 * Coordinator seals its store natively: the keys survive an upgrade of the binary on this
 * machine and are unreadable on another. HKDF-SHA256 to 32 bytes, the info naming the use.
 */
static int state_seal_key(uint8_t out[32], struct moat_error* err) {
    return attest_product_state_key("moat amber product key", "moat amber state key", out, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Start-up and shutdown                                                                        */

static void on_signal(evutil_socket_t sig, short what, void* arg) {
    (void)what;
    struct amber_server* s = arg;
    slog("info", "%s received: draining and stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    net_http_server_shutdown(s->http, 10000);
}

static int serve(struct amber_server* s) {
    struct moat_error err            = {0};
    struct net_tls_credentials creds = {0};
    struct event *sigterm = NULL, *sigint = NULL;
    int code = MOAT_EXIT_RUNTIME;
    uint8_t seal_key[32];
    const uint8_t* sk = s->cfg.no_seal ? NULL : seal_key;
    if (s->cfg.no_seal)
        slog("warning", "--no-seal: the private keys in %s are kept in plain PEM",
             s->cfg.state_dir);
    if (amber_trust_setup(s, &err) < 0 || (sk && state_seal_key(seal_key, &err) < 0) ||
        amber_tls_load(s->cfg.state_dir, s->cfg.tls_cert, s->cfg.tls_key, sk, &creds, &err) < 0) {
        slog("error", "%s", err.msg);
        goto out;
    }
    s->base = event_base_new();
    if (!s->base) {
        slog("error", "cannot create the event loop");
        goto out;
    }
    struct net_http_server_config hc = {
        .address  = s->cfg.addr,
        .tls      = true,
        .handler  = amber_api_handle,
        .ctx      = s,
        .max_body = 1024 * 1024,
    };
    if (net_http_server_new(s->base, &hc, &creds, &s->http, &err) < 0) {
        slog("error", "%s", err.msg);
        goto out;
    }
    int port = net_http_server_port(s->http);
    s->public_url =
        s->cfg.public_url ? xstrdup(s->cfg.public_url) : xasprintf("https://localhost:%d", port);
    size_t ul = strlen(s->public_url);
    while (ul > 0 && s->public_url[ul - 1] == '/')
        s->public_url[--ul] = '\0';
    s->jku = xasprintf("%s/certs", s->public_url);
    if (amber_pki_load(s->cfg.state_dir, s->public_url, sk, &s->pki, &err) < 0) {
        slog("error", "%s", err.msg);
        goto out;
    }
    if (s->cfg.insecure_no_api_key)
        slog("warning", "--insecure-no-api-key: requests without a valid x-api-key are served");
    sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
    sigint  = evsignal_new(s->base, SIGINT, on_signal, s);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0) {
        slog("error", "cannot watch signals");
        goto out;
    }
    slog("info", "token service started on %s (port %d), state in %s, JWKS at %s", s->cfg.addr,
         port, s->cfg.state_dir, s->jku);
    event_base_dispatch(s->base);
    slog("info", "token service stopped: %llu tokens, %llu refusals", (unsigned long long)s->tokens,
         (unsigned long long)s->refusals);
    code = MOAT_EXIT_OK;
out:
    OPENSSL_cleanse(seal_key, sizeof(seal_key));
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    net_http_server_free(s->http);
    if (s->base)
        event_base_free(s->base);
    amber_tls_clear(&creds);
    return code;
}

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    struct amber_server s = {0};
    int r                 = parse_config(argc, argv, &s.cfg);
    if (r != 0) {
        strv_free(s.cfg.api_keys);
        return r > 0 ? MOAT_EXIT_OK : MOAT_EXIT_USAGE;
    }
    g_debug = s.cfg.debug;
    log_set_level(g_debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING);
    log_set_sink(log_sink);
    slog("info", "moat-amber %s starting", MOAT_VERSION);
    struct moat_error err = {0};
    int code              = MOAT_EXIT_USAGE;
    if (amber_policies_load(&s, &err) < 0)
        fprintf(stderr, "moat amber serve: %s\n", err.msg);
    else
        code = serve(&s);
    amber_policies_clear(&s);
    amber_pki_clear(&s.pki);
    amber_trust_clear(&s.hw);
    amber_trust_clear(&s.sim);
    free(s.public_url);
    free(s.jku);
    strv_free(s.cfg.api_keys);
    return code;
}
