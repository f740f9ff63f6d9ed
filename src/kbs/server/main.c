/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-kbs (`moat kbs serve`): configuration, start-up and shutdown of the key broker
 * (attestation.md §4.3; docs/kbs.md). A program of its own, like moat-amber, so that `moat`
 * never maps libevent or libcurl.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat-config.h"
#include "provider.h"
#include "server.h"

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
    fprintf(stderr, "moat-kbs: %s: %s\n", level, msg);
    fflush(stderr);
    free(msg);
}

static const char g_usage[] =
    "usage: moat kbs serve [OPTIONS]\n"
    "\n"
    "Runs a key broker compatible with Intel Trust Authority's KBS in the foreground: keys are\n"
    "released to TEEs that present an attestation token from the token service (moat amber\n"
    "serve, or ITA) satisfying the key's transfer policy, wrapped for the public key the token\n"
    "holds. Logs go to stderr; SIGTERM or SIGINT drains and exits 0.\n"
    "\n"
    "options:\n"
    "  --addr ADDR            listen address (MOAT_KBS_ADDR, default :9443)\n"
    "  --state-dir DIR        keys and policies (MOAT_KBS_STATE_DIR, default ./moat-kbs-data)\n"
    "  --admin-token TOKEN    the bearer token of the admin API (MOAT_KBS_ADMIN_TOKEN)\n"
    "  --admin-token-file F   ... read from a file (first line)\n"
    "  --token-jwks URL|FILE  the token service's JWKS, e.g. https://localhost:8443/certs\n"
    "                         (MOAT_KBS_TOKEN_JWKS)\n"
    "  --token-ca PEM         CA certificates for the token service's TLS (default the system\n"
    "                         store)\n"
    "  --token-root-ca PEM    the token service's root CA certificate(s): only JWKS keys whose\n"
    "                         x5c chain ends there and whose certificates no CRL revokes are\n"
    "                         used (MOAT_KBS_TOKEN_ROOT_CA; without it the chain is not\n"
    "                         checked, and a warning says so)\n"
    "  --token-url URL        the token service, e.g. https://localhost:8443, for background-\n"
    "                         check mode (MOAT_KBS_TOKEN_URL; without it: passport mode only)\n"
    "  --token-api-key KEY    its x-api-key (MOAT_KBS_TOKEN_API_KEY)\n"
    "  --tls-cert PEM, --tls-key PEM  TLS credentials (default a self-signed certificate for\n"
    "                         localhost made at each start)\n"
    "  --no-seal              keep the master key in plain form instead of sealed with this\n"
    "                         machine's sealing key (MOAT_KBS_NO_SEAL=1)\n"
    "  --debug                debug logs\n"
    "  -h, --help             show this help\n"
    "\n"
    "exit codes: 0 stopped by a signal, 1 runtime failure, 2 usage error.\n";

enum {
    O_ADDR = 256,
    O_STATE,
    O_ADMIN,
    O_ADMIN_FILE,
    O_JWKS,
    O_CA,
    O_CERT,
    O_KEY,
    O_NOSEAL,
    O_DEBUG,
    O_TURL,
    O_TKEY,
    O_TROOT
};

static const struct option g_opts[] = {
    {"addr", required_argument, NULL, O_ADDR},
    {"state-dir", required_argument, NULL, O_STATE},
    {"admin-token", required_argument, NULL, O_ADMIN},
    {"admin-token-file", required_argument, NULL, O_ADMIN_FILE},
    {"token-jwks", required_argument, NULL, O_JWKS},
    {"token-ca", required_argument, NULL, O_CA},
    {"tls-cert", required_argument, NULL, O_CERT},
    {"tls-key", required_argument, NULL, O_KEY},
    {"no-seal", no_argument, NULL, O_NOSEAL},
    {"token-url", required_argument, NULL, O_TURL},
    {"token-api-key", required_argument, NULL, O_TKEY},
    {"token-root-ca", required_argument, NULL, O_TROOT},
    {"debug", no_argument, NULL, O_DEBUG},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char* env_or_null(const char* name) {
    const char* v = getenv(name);
    return v && *v ? v : NULL;
}

/* Options first, then the environment. Returns 1 after --help. `token_buf` owns a token read
 * from a file. */
static int parse_config(int argc, char** argv, struct kbs_config* c, char** token_buf) {
    const char* token_file = NULL;
    *c                     = (struct kbs_config){
                            .addr          = env_or_null("MOAT_KBS_ADDR"),
                            .state_dir     = env_or_null("MOAT_KBS_STATE_DIR"),
                            .admin_token   = env_or_null("MOAT_KBS_ADMIN_TOKEN"),
                            .token_jwks    = env_or_null("MOAT_KBS_TOKEN_JWKS"),
                            .no_seal       = env_or_null("MOAT_KBS_NO_SEAL") != NULL,
                            .token_url     = env_or_null("MOAT_KBS_TOKEN_URL"),
                            .token_api_key = env_or_null("MOAT_KBS_TOKEN_API_KEY"),
                            .token_root_ca = env_or_null("MOAT_KBS_TOKEN_ROOT_CA"),
    };
    int o;
    while ((o = getopt_long(argc, argv, "h", g_opts, NULL)) != -1) {
        switch (o) {
            case O_ADDR:
                c->addr = optarg;
                break;
            case O_STATE:
                c->state_dir = optarg;
                break;
            case O_ADMIN:
                c->admin_token = optarg;
                break;
            case O_ADMIN_FILE:
                token_file = optarg;
                break;
            case O_JWKS:
                c->token_jwks = optarg;
                break;
            case O_CA:
                c->token_ca = optarg;
                break;
            case O_CERT:
                c->tls_cert = optarg;
                break;
            case O_KEY:
                c->tls_key = optarg;
                break;
            case O_NOSEAL:
                c->no_seal = true;
                break;
            case O_TURL:
                c->token_url = optarg;
                break;
            case O_TKEY:
                c->token_api_key = optarg;
                break;
            case O_TROOT:
                c->token_root_ca = optarg;
                break;
            case O_DEBUG:
                c->debug = true;
                break;
            case 'h':
                fputs(g_usage, stdout);
                return 1;
            default:
                fputs("Try 'moat kbs serve --help'.\n", stderr);
                return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moat kbs serve: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (token_file) {
        struct moat_error err = {0};
        size_t len            = 0;
        if (read_file(token_file, token_buf, &len, &err) < 0) {
            fprintf(stderr, "moat kbs serve: --admin-token-file: %s\n", err.msg);
            return -EINVAL;
        }
        (*token_buf)[strcspn(*token_buf, "\r\n")] = '\0';
        c->admin_token                            = *token_buf;
    }
    if (!c->admin_token || strlen(c->admin_token) < 16) {
        fputs(
            "moat kbs serve: the admin API needs a token of at least 16 characters: give "
            "--admin-token or --admin-token-file\n",
            stderr);
        return -EINVAL;
    }
    if (!c->token_jwks) {
        fputs("moat kbs serve: give --token-jwks (the token service's JWKS URL or file)\n", stderr);
        return -EINVAL;
    }
    if (!!c->tls_cert != !!c->tls_key) {
        fputs("moat kbs serve: --tls-cert and --tls-key go together\n", stderr);
        return -EINVAL;
    }
    if (c->token_url && strncmp(c->token_url, "https://", 8) != 0) {
        fprintf(stderr, "moat kbs serve: --token-url '%s' is not an https:// URL\n", c->token_url);
        return -EINVAL;
    }
    if (!c->addr)
        c->addr = ":9443";
    if (!c->state_dir)
        c->state_dir = "moat-kbs-data";
    return 0;
}

/* moat's per-machine sealing key (MRENCLAVE policy) for the KBS as a product, HKDF-SHA256 to
 * 32 bytes (as moat-amber derives its state key, with the KBS's own labels). */
static int state_seal_key(uint8_t out[32], struct moat_error* err) {
    return attest_product_state_key("moat kbs product key", "moat kbs state key", out, err);
}

/* TLS: --tls-cert/--tls-key, or a self-signed P-256 certificate for localhost made now. */
static int tls_load(const struct kbs_config* c, struct net_tls_credentials* ret,
                    struct moat_error* err) {
    if (c->tls_cert) {
        FILE* f   = fopen(c->tls_cert, "re");
        ret->cert = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
        if (f)
            fclose(f);
        f        = fopen(c->tls_key, "re");
        ret->key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
        if (f)
            fclose(f);
        if (!ret->cert || !ret->key || X509_check_private_key(ret->cert, ret->key) != 1)
            return moat_error_set(err, -EINVAL,
                                  "--tls-cert %s / --tls-key %s: not a matching "
                                  "PEM certificate and key",
                                  c->tls_cert, c->tls_key);
        return 0;
    }
    ret->key       = EVP_EC_gen("P-256");
    ret->cert      = X509_new();
    X509_NAME* sub = X509_NAME_new();
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, ret->cert, ret->cert, NULL, NULL, 0);
    X509_EXTENSION* san =
        X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
    uint8_t serial[8];
    bool ok = ret->key && ret->cert && sub && san && RAND_bytes(serial, sizeof(serial)) == 1 &&
              X509_NAME_add_entry_by_txt(sub, "CN", MBSTRING_UTF8,
                                         (const unsigned char*)"localhost", -1, -1, 0) &&
              X509_set_version(ret->cert, 2) &&
              ASN1_INTEGER_set_uint64(X509_get_serialNumber(ret->cert), serial[0] & 0x7f) &&
              X509_set_subject_name(ret->cert, sub) && X509_set_issuer_name(ret->cert, sub) &&
              X509_gmtime_adj(X509_getm_notBefore(ret->cert), -3600) &&
              X509_gmtime_adj(X509_getm_notAfter(ret->cert), 365L * 86400) &&
              X509_set_pubkey(ret->cert, ret->key) && X509_add_ext(ret->cert, san, -1) &&
              X509_sign(ret->cert, ret->key, EVP_sha256()) > 0;
    X509_EXTENSION_free(san);
    X509_NAME_free(sub);
    return ok ? 0 : moat_error_set(err, -EIO, "cannot make a TLS certificate");
}

static void on_signal(evutil_socket_t sig, short what, void* arg) {
    (void)what;
    struct kbs_server* s = arg;
    slog("info", "%s received: draining and stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    net_http_server_shutdown(s->http, 10000);
}

static int serve(struct kbs_server* s) {
    struct moat_error err            = {0};
    struct net_tls_credentials creds = {0};
    struct event *sigterm = NULL, *sigint = NULL;
    int code = MOAT_EXIT_RUNTIME;
    uint8_t seal_key[32];
    const uint8_t* sk = s->cfg.no_seal ? NULL : seal_key;
    if (s->cfg.no_seal)
        slog("warning", "--no-seal: the master key in %s is kept in plain form", s->cfg.state_dir);
    s->jwks = (struct kbs_jwks){.source = s->cfg.token_jwks, .ca = s->cfg.token_ca};
    if (!s->cfg.token_root_ca)
        slog("warning",
             "no --token-root-ca: the x5c chain and CRLs of the token service's keys are not "
             "checked; the JWKS is trusted as %s serves it",
             s->cfg.token_jwks);
    if (s->cfg.token_root_ca && amber_roots_load(s->cfg.token_root_ca, &s->jwks.roots, &err) < 0) {
        slog("error", "--token-root-ca: %s", err.msg);
        goto out;
    }
    if ((sk && state_seal_key(seal_key, &err) < 0) ||
        kbs_store_open(&s->store, s->cfg.state_dir, sk, &err) < 0 ||
        kbs_jwks_load(&s->jwks, &err) < 0 || tls_load(&s->cfg, &creds, &err) < 0) {
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
        .handler  = kbs_api_handle,
        .ctx      = s,
        .max_body = 256 * 1024,
    };
    if (net_http_server_new(s->base, &hc, &creds, &s->http, &err) < 0) {
        slog("error", "%s", err.msg);
        goto out;
    }
    sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
    sigint  = evsignal_new(s->base, SIGINT, on_signal, s);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0) {
        slog("error", "cannot watch signals");
        goto out;
    }
    slog("info",
         "key broker started on %s (port %d), state in %s, %zu keys, %zu policies, "
         "tokens from %s",
         s->cfg.addr, net_http_server_port(s->http), s->cfg.state_dir, s->store.n_keys,
         s->store.n_policies, s->cfg.token_jwks);
    event_base_dispatch(s->base);
    slog("info", "key broker stopped: %llu transfers, %llu refusals",
         (unsigned long long)s->transfers, (unsigned long long)s->refusals);
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
    X509_free(creds.cert);
    EVP_PKEY_free(creds.key);
    return code;
}

int main(int argc, char** argv) {
    signal(SIGPIPE, SIG_IGN);
    struct kbs_server s         = {0};
    _cleanup_free_ char* tokbuf = NULL;
    int r                       = parse_config(argc, argv, &s.cfg, &tokbuf);
    if (r != 0)
        return r > 0 ? MOAT_EXIT_OK : MOAT_EXIT_USAGE;
    g_debug = s.cfg.debug;
    slog("info", "moat-kbs %s starting", MOAT_VERSION);
    int code = serve(&s);
    kbs_store_close(&s.store);
    kbs_jwks_clear(&s.jwks);
    if (tokbuf)
        OPENSSL_cleanse(tokbuf, strlen(tokbuf));
    return code;
}
