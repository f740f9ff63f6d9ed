/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test-only server for tests/test_net_http.py: answers every request with JSON echoing the
 * method, path, query, body length, the SHA-256 of the client certificate, and the serving
 * thread. Routes: /405 answers 405; /swap switches to the second certificate
 * (net_http_server_set_credentials); /fail makes the handler fail (500); /null answers 200 with
 * no body. Usage:
 *   http_echo_server [--plain] [--client-cert] [--threads N] [--max-body N] [--timeout-ms N]
 *                    [--max-conns N] PORT [CERT KEY [CERT2 KEY2]]
 * PORT 0: any; the bound port is printed as "listening on PORT". SIGTERM shuts every server
 * down gracefully and exits 0.
 */
#include <event2/event.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

struct worker {
    int index;
    struct event_base* base;
    struct net_http_server* srv;
    struct net_tls_credentials* second;
    int wake[2]; /* the main thread writes here on SIGTERM */
    struct event* wake_ev;
    pthread_t thread;
};

static void json_str(struct strbuf* sb, const char* s) {
    strbuf_putc(sb, '"');
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            strbuf_printf(sb, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f) /* UTF-8 passes through */
            strbuf_printf(sb, "\\u%04x", ch);
        else
            strbuf_putc(sb, (char)ch);
    }
    strbuf_putc(sb, '"');
}

static int echo(const struct net_http_request* req, struct net_http_response* resp, void* ctx) {
    struct worker* w = ctx;
    if (strcmp(req->path, "/405") == 0) {
        resp->status = 405;
        return 0;
    }
    if (strcmp(req->path, "/fail") == 0)
        return -EIO;
    if (strcmp(req->path, "/null") == 0) {
        resp->status = 200;
        return 0;
    }
    if (strcmp(req->path, "/swap") == 0) {
        struct moat_error err = {0};
        if (!w->second || net_http_server_set_credentials(w->srv, w->second, &err) < 0)
            return -EINVAL;
    }
    _cleanup_strbuf_ struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "{\"method\":");
    json_str(&sb, req->method);
    strbuf_puts(&sb, ",\"path\":");
    json_str(&sb, req->path);
    strbuf_puts(&sb, ",\"query\":");
    if (req->query)
        json_str(&sb, req->query);
    else
        strbuf_puts(&sb, "null");
    strbuf_printf(&sb, ",\"body_len\":%zu,\"body_nul\":%s,\"thread\":%d,\"cert\":", req->body_len,
                  req->body[req->body_len] == '\0' ? "true" : "false", w->index);
    if (req->peer_cert_der) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        if (sha256_buf(req->peer_cert_der, req->peer_cert_len, digest) < 0)
            return -EIO;
        _cleanup_free_ char* hex = hex_encode_alloc(digest, sizeof(digest));
        json_str(&sb, hex);
    } else {
        strbuf_puts(&sb, "null");
    }
    strbuf_puts(&sb, "}\n");
    resp->status = 200;
    resp->body   = (uint8_t*)strbuf_take(&sb, &resp->body_len);
    return 0;
}

static int load_creds(const char* cert, const char* key, struct net_tls_credentials* ret) {
    _cleanup_fclose_ FILE* fc = fopen(cert, "r");
    _cleanup_fclose_ FILE* fk = fopen(key, "r");
    if (!fc || !fk)
        return -errno;
    ret->cert  = PEM_read_X509(fc, NULL, NULL, NULL);
    ret->key   = PEM_read_PrivateKey(fk, NULL, NULL, NULL);
    ret->chain = NULL;
    return ret->cert && ret->key ? 0 : -EINVAL;
}

static void on_wake(evutil_socket_t fd, short what, void* arg) {
    (void)fd;
    (void)what;
    struct worker* w = arg;
    net_http_server_shutdown(w->srv, 5000);
}

static void* run(void* arg) {
    struct worker* w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

struct options {
    struct net_http_server_config cfg;
    int threads;
    const char *port, *cert, *key, *cert2, *key2;
};

static int parse_args(int argc, char** argv, struct options* o) {
    o->threads = 1;
    int i      = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--plain") == 0)
            o->cfg.tls = false;
        else if (strcmp(argv[i], "--client-cert") == 0)
            o->cfg.request_client_cert = true;
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
            o->threads = (int)strtol(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--max-body") == 0)
            o->cfg.max_body = strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--timeout-ms") == 0)
            o->cfg.timeout_ms = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--max-conns") == 0)
            o->cfg.max_connections = (uint32_t)strtoul(argv[++i], NULL, 10);
        else
            return -EINVAL;
    }
    if (i >= argc || o->threads < 1 || o->threads > 16)
        return -EINVAL;
    o->port = argv[i++];
    if (o->cfg.tls) {
        if (i + 2 > argc)
            return -EINVAL;
        o->cert = argv[i++];
        o->key  = argv[i++];
        if (i + 2 <= argc) {
            o->cert2 = argv[i++];
            o->key2  = argv[i++];
        }
    }
    return i == argc ? 0 : -EINVAL;
}

int main(int argc, char** argv) {
    struct options o = {.cfg = {.tls = true, .handler = echo}};
    if (parse_args(argc, argv, &o) < 0) {
        fprintf(stderr,
                "usage: http_echo_server [--plain] [--client-cert] [--threads N] "
                "[--max-body N] [--timeout-ms N] [--max-conns N] PORT [CERT KEY "
                "[CERT2 KEY2]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct net_tls_credentials creds = {0}, second = {0};
    if (o.cfg.tls && (load_creds(o.cert, o.key, &creds) < 0 ||
                      (o.cert2 && load_creds(o.cert2, o.key2, &second) < 0))) {
        fprintf(stderr, "http_echo_server: error: cannot load the certificates\n");
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the workers inherit it; main sigwaits */

    struct worker workers[16] = {0};
    int port                  = (int)strtol(o.port, NULL, 10);
    o.cfg.reuse_port          = o.threads > 1;
    for (int t = 0; t < o.threads; t++) {
        struct worker* w                = &workers[t];
        w->index                        = t;
        w->second                       = o.cert2 ? &second : NULL;
        w->base                         = event_base_new();
        _cleanup_free_ char* addr       = xasprintf("127.0.0.1:%d", port);
        struct net_http_server_config c = o.cfg;
        c.address                       = addr;
        c.ctx                           = w;
        struct moat_error err           = {0};
        if (!w->base || pipe(w->wake) < 0 ||
            net_http_server_new(w->base, &c, o.cfg.tls ? &creds : NULL, &w->srv, &err) < 0) {
            fprintf(stderr, "http_echo_server: error: %s\n", err.msg);
            return 1;
        }
        port       = net_http_server_port(w->srv); /* the others share it */
        w->wake_ev = event_new(w->base, w->wake[0], EV_READ, on_wake, w);
        if (!w->wake_ev || event_add(w->wake_ev, NULL) < 0)
            return 1;
    }
    printf("listening on %d\n", port);
    fflush(stdout);
    for (int t = 0; t < o.threads; t++)
        if (pthread_create(&workers[t].thread, NULL, run, &workers[t]) != 0)
            return 1;
    int sig;
    sigwait(&set, &sig);
    for (int t = 0; t < o.threads; t++)
        if (write(workers[t].wake[1], "x", 1) != 1)
            return 1;
    for (int t = 0; t < o.threads; t++) {
        pthread_join(workers[t].thread, NULL);
        net_http_server_free(workers[t].srv);
        event_free(workers[t].wake_ev);
        event_base_free(workers[t].base);
        close(workers[t].wake[0]);
        close(workers[t].wake[1]);
    }
    X509_free(creds.cert);
    EVP_PKEY_free(creds.key);
    X509_free(second.cert);
    EVP_PKEY_free(second.key);
    return 0;
}
