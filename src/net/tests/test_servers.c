/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the server plumbing: address parsing, in-memory TLS credentials (and their
 * rotation), SO_REUSEPORT, and the HTTP server's config checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/x509.h>

#include "net_internal.h"

static void test_parse_address(void** state) {
    (void)state;
    struct sockaddr_storage ss;
    int len;
    assert_int_equal(net_parse_address("127.0.0.1:8080", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in*)&ss)->sin_port), 8080);
    assert_int_equal(net_parse_address("[::1]:443", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(net_parse_address("4433", &ss, &len), 0);
    assert_int_equal(((struct sockaddr_in*)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
    /* ":port" as Go's net.Listen (MarbleRun's default ":4433") */
    assert_int_equal(net_parse_address(":4433", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in*)&ss)->sin_port), 4433);
    assert_int_equal(((struct sockaddr_in*)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
    static const char* const bad[] = {"",           "host:1",  "1.2.3.4:",   "1.2.3.4:65536",
                                      "1.2.3.4:-1", "[]:1",    "1.2.3.4:+1", "[::1]:x",
                                      "1.2.3.4: 1", "::1:1:x", "1.2.3.4"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_int_equal(net_parse_address(bad[i], &ss, &len), -EINVAL);
}

static EVP_PKEY* new_key(void) {
    EVP_PKEY* k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static X509* new_cert(EVP_PKEY* key) {
    X509* x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char*)"test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static int echo(const struct net_http_request* req, struct net_http_response* resp, void* ctx) {
    (void)req;
    (void)ctx;
    resp->status = 204;
    return 0;
}

static void test_credentials(void** state) {
    (void)state;
    EVP_PKEY *k1 = new_key(), *k2 = new_key();
    X509* c1                            = new_cert(k1);
    struct net_tls_credentials good     = {.cert = c1, .key = k1};
    struct net_tls_credentials mismatch = {.cert = c1, .key = k2};
    struct net_tls_credentials empty    = {0};
    struct moat_error err               = {0};
    SSL_CTX* ctx                        = NULL;
    assert_int_equal(net_ssl_ctx_new(&good, &ctx, &err), 0);
    SSL_CTX_free(ctx);
    assert_int_equal(net_ssl_ctx_new(&mismatch, &ctx, &err), -EINVAL);
    assert_int_equal(net_ssl_ctx_new(&empty, &ctx, &err), -EINVAL);
    assert_int_equal(net_ssl_ctx_new(NULL, &ctx, &err), -EINVAL);

    struct event_base* base = event_base_new();
    /* gRPC from memory, rotation, and a refused rotation that keeps the old context */
    static const struct net_grpc_method methods[] = {{"/x", NULL, NULL}};
    struct net_grpc_server_config gcfg            = {
                   .address = "127.0.0.1:0", .creds = &good, .methods = methods, .n_methods = 1};
    struct net_grpc_server* g = NULL;
    assert_int_equal(net_grpc_server_new(base, &gcfg, &g, &err), 0);
    assert_int_equal(net_grpc_server_set_credentials(g, &good, &err), 0);
    assert_int_equal(net_grpc_server_set_credentials(g, &mismatch, &err), -EINVAL);
    net_grpc_server_free(g);
    gcfg.creds = &mismatch;
    g          = NULL;
    assert_int_equal(net_grpc_server_new(base, &gcfg, &g, &err), -EINVAL);
    assert_null(g);

    /* HTTP: TLS needs credentials; a plain server cannot take any */
    struct net_http_server_config hcfg = {.address = "127.0.0.1:0", .tls = true, .handler = echo};
    struct net_http_server* h          = NULL;
    assert_int_equal(net_http_server_new(base, &hcfg, NULL, &h, &err), -EINVAL);
    assert_int_equal(net_http_server_new(base, &hcfg, &mismatch, &h, &err), -EINVAL);
    assert_null(h);
    assert_int_equal(net_http_server_new(base, &hcfg, &good, &h, &err), 0);
    assert_int_equal(net_http_server_set_credentials(h, &mismatch, &err), -EINVAL);
    assert_int_equal(net_http_server_set_credentials(h, &good, &err), 0);
    net_http_server_free(h);
    hcfg.tls = false;
    h        = NULL;
    assert_int_equal(net_http_server_new(base, &hcfg, NULL, &h, &err), 0);
    assert_int_equal(net_http_server_set_credentials(h, &good, &err), -EINVAL);
    net_http_server_free(h);
    hcfg.handler = NULL;
    h            = NULL;
    assert_int_equal(net_http_server_new(base, &hcfg, NULL, &h, &err), -EINVAL);
    hcfg.handler = echo;
    hcfg.address = "nowhere:1";
    assert_int_equal(net_http_server_new(base, &hcfg, NULL, &h, &err), -EINVAL);

    event_base_free(base);
    X509_free(c1);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}

/* Two servers, each on its own base, share a port only when both ask for SO_REUSEPORT. */
static void test_reuse_port(void** state) {
    (void)state;
    EVP_PKEY* k                     = new_key();
    X509* c                         = new_cert(k);
    struct net_tls_credentials cred = {.cert = c, .key = k};
    struct moat_error err           = {0};
    struct event_base *b1 = event_base_new(), *b2 = event_base_new();
    static const struct net_grpc_method methods[] = {{"/x", NULL, NULL}};
    struct net_grpc_server_config gcfg            = {.address    = "127.0.0.1:0",
                                                     .creds      = &cred,
                                                     .methods    = methods,
                                                     .n_methods  = 1,
                                                     .reuse_port = true};
    struct net_grpc_server *g1 = NULL, *g2 = NULL, *g3 = NULL;
    assert_int_equal(net_grpc_server_new(b1, &gcfg, &g1, &err), 0);
    _cleanup_free_ char* addr = xasprintf("127.0.0.1:%d", net_grpc_server_port(g1));
    gcfg.address              = addr;
    assert_int_equal(net_grpc_server_new(b2, &gcfg, &g2, &err), 0);
    assert_int_equal(net_grpc_server_port(g2), net_grpc_server_port(g1));
    gcfg.reuse_port = false;
    assert_int_equal(net_grpc_server_new(b2, &gcfg, &g3, &err), -EADDRINUSE);
    net_grpc_server_free(g1);
    net_grpc_server_free(g2);

    struct net_http_server_config hcfg = {
        .address = "127.0.0.1:0", .handler = echo, .reuse_port = true};
    struct net_http_server *h1 = NULL, *h2 = NULL, *h3 = NULL;
    assert_int_equal(net_http_server_new(b1, &hcfg, NULL, &h1, &err), 0);
    _cleanup_free_ char* haddr = xasprintf("127.0.0.1:%d", net_http_server_port(h1));
    hcfg.address               = haddr;
    assert_int_equal(net_http_server_new(b2, &hcfg, NULL, &h2, &err), 0);
    hcfg.reuse_port = false;
    assert_int_equal(net_http_server_new(b2, &hcfg, NULL, &h3, &err), -EADDRINUSE);
    net_http_server_free(h1);
    net_http_server_free(h2);
    event_base_free(b1);
    event_base_free(b2);
    X509_free(c);
    EVP_PKEY_free(k);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_address),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_reuse_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
