/* SPDX-License-Identifier: Apache-2.0 */
/* The Marble premain's activation: see premain.h. */
#include "premain.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "grpc_client.h"
#include "marblerun.pb-c.h"
#include "net.h"

#define ATTESTATION_DIR  "/dev/attestation"
#define KEYS_PREFIX      ATTESTATION_DIR "/keys/"
#define LEGACY_KEY_PATH  ATTESTATION_DIR "/protected_files_key"
#define MAX_QUOTE_SIZE   8192 /* MarbleRun reads the quote in one read of this size */
#define OE_HEADER_SIZE   16
#define CERT_COMMON_NAME "MarbleRun Marble"

/* ---------------------------------------------------------------------------------------- */
/* Environment                                                                                */

/* The environment is edited in `environ` itself, not through setenv/unsetenv: a program may
 * bring its own (bash does), which the preload form would call before the program's main has
 * set them up. The strings and arrays made here live as long as the process. */
extern char** environ;

const char* premain_getenv(const char* key) {
    size_t klen = strlen(key);
    for (size_t i = 0; environ && environ[i]; i++)
        if (strncmp(environ[i], key, klen) == 0 && environ[i][klen] == '=')
            return environ[i] + klen + 1;
    return NULL;
}

void premain_setenv(const char* key, const char* value) {
    size_t klen = strlen(key), n = 0;
    char* entry = xasprintf("%s=%s", key, value);
    for (; environ && environ[n]; n++)
        if (strncmp(environ[n], key, klen) == 0 && environ[n][klen] == '=') {
            environ[n] = entry;
            return;
        }
    char** env = xcalloc(n + 2, sizeof(char*));
    if (n)
        memcpy(env, environ, n * sizeof(char*));
    env[n]  = entry;
    environ = env;
}

void premain_unsetenv(const char* key) {
    size_t klen = strlen(key), out = 0;
    for (size_t i = 0; environ && environ[i]; i++)
        if (!(strncmp(environ[i], key, klen) == 0 && environ[i][klen] == '='))
            environ[out++] = environ[i];
    if (environ)
        environ[out] = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Logging                                                                                    */

static void json_string(FILE* f, const char* s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void premain_log(const char* level, const char* fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char* format = premain_getenv("EDG_LOG_FORMAT");
    if (format && strcmp(format, "json") == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        fprintf(stderr,
                "{\"level\":\"%s\",\"ts\":%lld.%06ld,\"logger\":\"PreMain\",\"msg\":", level,
                (long long)ts.tv_sec, ts.tv_nsec / 1000);
        json_string(stderr, msg);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "[PreMain] %s\n", msg);
    }
}

static int ossl_fail(struct moat_error* err, const char* what) {
    unsigned long e = ERR_get_error();
    char buf[256]   = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return moat_error_set(err, -EPROTO, "%s: %s", what, buf);
}

/* ---------------------------------------------------------------------------------------- */
/* Configuration (reference §4.2 step 1)                                                      */

struct config {
    const char* addr;
    const char* type;
    const char* dns_names;
    char* uuid_file;
};

static int read_config(struct config* c, struct moat_error* err) {
    const char* v = premain_getenv("EDG_MARBLE_COORDINATOR_ADDR");
    c->addr       = v && *v ? v : "localhost:2001";
    c->type       = premain_getenv("EDG_MARBLE_TYPE");
    if (!c->type || !*c->type)
        return moat_error_set(err, -EINVAL, "environment variable not set: EDG_MARBLE_TYPE");
    v            = premain_getenv("EDG_MARBLE_DNS_NAMES");
    c->dns_names = v && *v ? v : "localhost";
    v            = premain_getenv("EDG_MARBLE_UUID_FILE");
    if (v && *v) {
        c->uuid_file = xstrdup(v);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof(cwd)))
            return moat_error_set_errno(err, -errno, "getting the working directory");
        c->uuid_file = path_join(cwd, "uuid");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Key, certificate, CSR (§4.2 steps 2 and 4)                                                 */

static void add_ip(GENERAL_NAMES* names, const uint8_t* ip, int len) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) { /* once each */
        const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_IPADD && g->d.ip->length == len && memcmp(g->d.ip->data, ip, len) == 0)
            return;
    }
    GENERAL_NAME* g      = GENERAL_NAME_new();
    ASN1_OCTET_STRING* o = ASN1_OCTET_STRING_new();
    if (!g || !o || !ASN1_OCTET_STRING_set(o, ip, len))
        abort();
    GENERAL_NAME_set0_value(g, GEN_IPADD, o);
    sk_GENERAL_NAME_push(names, g);
}

/* The SANs of util.GenerateCert: the DNS names, those that read as IP addresses as IPs, and
 * the loopback addresses. */
static GENERAL_NAMES* alt_names(const char* dns_names) {
    GENERAL_NAMES* names     = sk_GENERAL_NAME_new_null();
    _cleanup_free_ char* all = xstrdup(dns_names);
    char* save               = NULL;
    for (char* n = strtok_r(all, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        uint8_t ip[16];
        if (inet_pton(AF_INET, n, ip) == 1) {
            add_ip(names, ip, 4);
        } else if (inet_pton(AF_INET6, n, ip) == 1) {
            add_ip(names, ip, 16);
        } else {
            GENERAL_NAME* g   = GENERAL_NAME_new();
            ASN1_IA5STRING* s = ASN1_IA5STRING_new();
            if (!g || !s || !ASN1_STRING_set(s, n, (int)strlen(n)))
                abort();
            GENERAL_NAME_set0_value(g, GEN_DNS, s);
            sk_GENERAL_NAME_push(names, g);
        }
    }
    static const uint8_t v4[4] = {127, 0, 0, 1}, v6[16] = {[15] = 1};
    add_ip(names, v4, 4);
    add_ip(names, v6, 16);
    return names;
}

static X509_NAME* subject_name(void) {
    X509_NAME* n = X509_NAME_new();
    if (!n || !X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
                                          (const unsigned char*)CERT_COMMON_NAME, -1, -1, 0))
        abort();
    return n;
}

struct identity {
    EVP_PKEY* key;
    X509* cert;
    uint8_t* cert_der;
    int cert_len;
    uint8_t* csr_der;
    int csr_len;
};

static void identity_clear(struct identity* id) {
    EVP_PKEY_free(id->key);
    X509_free(id->cert);
    OPENSSL_free(id->cert_der);
    OPENSSL_free(id->csr_der);
    *id = (struct identity){0};
}

static int make_cert(struct identity* id, GENERAL_NAMES* sans, struct moat_error* err) {
    X509* c                 = X509_new();
    X509_NAME* name         = subject_name();
    ASN1_INTEGER* serial    = ASN1_INTEGER_new();
    BIGNUM* bn              = BN_new();
    EXTENDED_KEY_USAGE* eku = sk_ASN1_OBJECT_new_null();
    ASN1_BIT_STRING* usage  = ASN1_BIT_STRING_new();
    int ok                  = c && name && serial && bn && eku && usage &&
             BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) && !BN_is_zero(bn) &&
             BN_to_ASN1_INTEGER(bn, serial) && X509_set_version(c, X509_VERSION_3) &&
             X509_set_serialNumber(c, serial) && X509_set_subject_name(c, name) &&
             X509_set_issuer_name(c, name) && X509_gmtime_adj(X509_getm_notBefore(c), 0) &&
             /* "effectively infinite", as util.GenerateCert */
             ASN1_TIME_set_string_X509(X509_getm_notAfter(c), "99991231235959Z") &&
             X509_set_pubkey(c, id->key) &&
             sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_server_auth)) &&
             sk_ASN1_OBJECT_push(eku, OBJ_nid2obj(NID_client_auth)) &&
             ASN1_BIT_STRING_set_bit(usage, 0, 1) && /* digitalSignature */
             ASN1_BIT_STRING_set_bit(usage, 2, 1) && /* keyEncipherment */
             X509_add1_ext_i2d(c, NID_key_usage, usage, 1, X509V3_ADD_DEFAULT) &&
             X509_add1_ext_i2d(c, NID_ext_key_usage, eku, 0, X509V3_ADD_DEFAULT) &&
             X509_add1_ext_i2d(c, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) &&
             X509_sign(c, id->key, EVP_sha256()) > 0;
    X509_NAME_free(name);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    sk_ASN1_OBJECT_free(eku); /* the objects are OpenSSL's static ones */
    ASN1_BIT_STRING_free(usage);
    if (!ok) {
        X509_free(c);
        return ossl_fail(err, "creating the Marble's certificate");
    }
    id->cert     = c;
    id->cert_len = i2d_X509(c, &id->cert_der);
    if (id->cert_len <= 0)
        return ossl_fail(err, "encoding the Marble's certificate");
    return 0;
}

static int make_csr(struct identity* id, GENERAL_NAMES* sans, struct moat_error* err) {
    X509_REQ* req                  = X509_REQ_new();
    X509_NAME* name                = subject_name();
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    int ok = req && name && exts && X509_REQ_set_version(req, X509_REQ_VERSION_1) &&
             X509_REQ_set_subject_name(req, name) && X509_REQ_set_pubkey(req, id->key) &&
             X509V3_add1_i2d(&exts, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT) &&
             X509_REQ_add_extensions(req, exts) && X509_REQ_sign(req, id->key, EVP_sha256()) > 0;
    if (ok)
        id->csr_len = i2d_X509_REQ(req, &id->csr_der);
    X509_NAME_free(name);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_REQ_free(req);
    if (!ok || id->csr_len <= 0)
        return ossl_fail(err, "creating the certificate signing request");
    return 0;
}

static int make_identity(const struct config* c, struct identity* id, struct moat_error* err) {
    id->key = EVP_EC_gen("P-384");
    if (!id->key)
        return ossl_fail(err, "generating a P-384 key");
    GENERAL_NAMES* sans = alt_names(c->dns_names);
    int r               = make_cert(id, sans, err);
    if (r == 0)
        r = make_csr(id, sans, err);
    GENERAL_NAMES_free(sans);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* UUID (§4.2 step 3)                                                                         */

static int load_uuid(const char* path, char out[MOAT_UUID_STR_SIZE], struct moat_error* err) {
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    uint8_t u[16];
    struct moat_error e = {0};
    int r               = read_file(path, &text, &len, &e);
    if (r == 0) {
        /* google/uuid's UnmarshalText: the bytes as they are (no trailing newline) */
        if (strlen(text) != len)
            return moat_error_set(err, -EINVAL, "%s: invalid UUID format", path);
        if (moat_uuid_parse(text, u, err) < 0)
            return moat_error_prefix(err, "%s", path);
        moat_uuid_format(u, out);
        return 0;
    }
    if (r != -ENOENT)
        return moat_error_set(err, r, "%s", e.msg);
    if (RAND_bytes(u, sizeof(u)) != 1)
        return ossl_fail(err, "generating a UUID");
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    moat_uuid_format(u, out);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, out, MOAT_UUID_STR_SIZE - 1) < 0)
        return moat_error_set_errno(err, -errno, "writing the UUID file %s", path);
    premain_log("info", "generated UUID %s, saved in %s", out, path);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Quote (§5 GramineQuoteIssuer)                                                              */

/* *ret_len 0: there is no /dev/attestation (not in an enclave or a moat sandbox with
 * attestation): MarbleRun's simulation mode, which only a simulation-mode Coordinator accepts. */
static int get_quote(const struct identity* id, uint8_t** ret, size_t* ret_len,
                     struct moat_error* err) {
    *ret     = NULL;
    *ret_len = 0;
    uint8_t hash[SHA256_DIGEST_SIZE];
    if (sha256_buf(id->cert_der, (size_t)id->cert_len, hash) < 0)
        return moat_error_set(err, -EIO, "hashing the certificate");
    int fd = open(ATTESTATION_DIR "/user_report_data", O_WRONLY | O_CLOEXEC);
    if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) {
        premain_log("warn",
                    "failed to get quote: " ATTESTATION_DIR
                    "/user_report_data: %s. Proceeding in simulation mode",
                    strerror(errno));
        return 0;
    }
    if (fd < 0)
        return moat_error_set_errno(err, -errno, "failed to get quote: opening %s",
                                    ATTESTATION_DIR "/user_report_data");
    int r = write_all(fd, hash, sizeof(hash));
    close(fd);
    if (r < 0)
        return moat_error_set(err, r, "failed to get quote: writing %s: %s",
                              ATTESTATION_DIR "/user_report_data", strerror(-r));
    fd = open(ATTESTATION_DIR "/quote", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return moat_error_set_errno(err, -errno, "failed to get quote: opening %s",
                                    ATTESTATION_DIR "/quote");
    uint8_t* buf = xmalloc(OE_HEADER_SIZE + MAX_QUOTE_SIZE);
    ssize_t n    = read(fd, buf + OE_HEADER_SIZE, MAX_QUOTE_SIZE); /* one read, as MarbleRun */
    int saved    = errno;
    close(fd);
    if (n < 0) {
        free(buf);
        return moat_error_set(err, -saved, "failed to get quote: reading %s: %s",
                              ATTESTATION_DIR "/quote", strerror(saved));
    }
    if (n == 0 || n >= MAX_QUOTE_SIZE) {
        free(buf);
        return moat_error_set(err, -EINVAL, "failed to get quote: invalid quote size");
    }
    /* the OpenEnclave remote report header (util.AddOEQuoteHeader) */
    const uint64_t fields[] = {1 | (uint64_t)2 << 32, (uint64_t)n};
    for (int i = 0; i < 16; i++)
        buf[i] = (uint8_t)(fields[i / 8] >> (8 * (i % 8)));
    *ret     = buf;
    *ret_len = OE_HEADER_SIZE + (size_t)n;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Activate (§4.1)                                                                            */

static const char* grpc_code_name(int code) {
    static const char* const names[] = {
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    };
    return code >= 0 && (size_t)code < ARRAY_SIZE(names) ? names[code] : "Unknown";
}

/* MOAT_MARBLE_COORDINATOR_CERT (beyond MarbleRun, whose premain talks to whatever answers):
 * certificates, as PEM text or a file, that the Coordinator's Marble API must present the key
 * of. The Coordinator presents its Marble root, whose key is its intermediate's, so the chain
 * of `GET /api/v2/certificate` (intermediate, root) pins it. In the Gramine manifest (a
 * constant loader.env value or a trusted file) the pin is part of the measurement. */
static int load_pins(STACK_OF(X509) * *ret, struct moat_error* err) {
    *ret          = NULL;
    const char* v = premain_getenv("MOAT_MARBLE_COORDINATOR_CERT");
    if (!v || !*v)
        return 0;
    _cleanup_free_ char* text = NULL;
    if (strncmp(v, "-----BEGIN", 10) == 0) {
        text = xstrdup(v);
    } else {
        size_t len          = 0;
        struct moat_error e = {0};
        if (read_file(v, &text, &len, &e) < 0)
            return moat_error_set(err, -EINVAL, "MOAT_MARBLE_COORDINATOR_CERT: %s", e.msg);
    }
    BIO* bio              = BIO_new_mem_buf(text, -1);
    STACK_OF(X509)* certs = sk_X509_new_null();
    X509* x;
    while (bio && certs && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
        sk_X509_push(certs, x);
    BIO_free(bio);
    ERR_clear_error();
    if (sk_X509_num(certs) == 0) {
        sk_X509_free(certs);
        return moat_error_set(err, -EINVAL,
                              "MOAT_MARBLE_COORDINATOR_CERT: no PEM certificate in it");
    }
    *ret = certs;
    return 0;
}

static int pinned_verify(X509_STORE_CTX* store, void* arg) {
    const STACK_OF(X509)* pins = arg;
    X509* peer                 = X509_STORE_CTX_get0_cert(store);
    EVP_PKEY* key              = peer ? X509_get0_pubkey(peer) : NULL;
    for (int i = 0; key && i < sk_X509_num(pins); i++) {
        EVP_PKEY* pin = X509_get0_pubkey(sk_X509_value(pins, i));
        if (pin && EVP_PKEY_eq(key, pin) == 1)
            return 1;
    }
    X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_UNTRUSTED);
    return 0;
}

static int activate(const struct config* c, const struct identity* id, const char* uuid,
                    Rpc__ActivationResp** ret, struct moat_error* err) {
    _cleanup_free_ uint8_t* quote = NULL;
    size_t quote_len              = 0;
    int r                         = get_quote(id, &quote, &quote_len, err);
    if (r < 0)
        return r;

    Rpc__ActivationReq req      = RPC__ACTIVATION_REQ__INIT;
    req.quote                   = (ProtobufCBinaryData){quote_len, quote};
    req.csr                     = (ProtobufCBinaryData){(size_t)id->csr_len, id->csr_der};
    req.marbletype              = (char*)c->type;
    req.uuid                    = (char*)uuid;
    size_t len                  = rpc__activation_req__get_packed_size(&req);
    _cleanup_free_ uint8_t* buf = xmalloc(len ? len : 1);
    rpc__activation_req__pack(&req, buf);

    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        SSL_CTX_use_certificate(ctx, id->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, id->key) != 1) {
        SSL_CTX_free(ctx);
        return ossl_fail(err, "setting up TLS");
    }
    /* MarbleRun's premain does not verify the Coordinator (its clients attest it, and a
     * Marble's certificates are worth nothing outside the real one's PKI); with pins, moat's
     * does */
    STACK_OF(X509)* pins = NULL;
    r                    = load_pins(&pins, err);
    if (r < 0) {
        SSL_CTX_free(ctx);
        return r;
    }
    if (pins) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, pinned_verify, pins);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    _cleanup_free_ char* host = xstrdup(c->addr);
    char* colon               = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct net_grpc_call call = {
        .address     = c->addr,
        .server_name = host,
        .ctx         = ctx,
        .path        = "/rpc.Marble/Activate",
        .req         = buf,
        .req_len     = len,
    };
    struct net_grpc_reply rep = {0};
    struct moat_error e       = {0};
    r                         = net_grpc_call(&call, &rep, &e);
    bool pinned               = pins != NULL;
    SSL_CTX_free(ctx);
    sk_X509_pop_free(pins, X509_free);
    if (r < 0)
        return moat_error_set(err, r, "rpc error: code = Unavailable desc = connection error: %s%s",
                              e.msg,
                              pinned ? " (is the Coordinator the one MOAT_MARBLE_COORDINATOR_CERT "
                                       "names?)"
                                     : "");
    if (rep.status != 0) {
        r = moat_error_set(err, -EPERM, "rpc error: code = %s desc = %s",
                           grpc_code_name(rep.status), rep.message ? rep.message : "");
        net_grpc_reply_clear(&rep);
        return r;
    }
    Rpc__ActivationResp* resp = rpc__activation_resp__unpack(NULL, rep.resp_len, rep.resp);
    net_grpc_reply_clear(&rep);
    if (!resp)
        return moat_error_set(err, -EPROTO,
                              "rpc error: code = Internal desc = grpc: failed to unmarshal the "
                              "received message");
    *ret = resp;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Applying the parameters (§4.2 step 8, §5 step 4)                                           */

static bool is_key_file(const char* path) {
    return strncmp(path, KEYS_PREFIX, strlen(KEYS_PREFIX)) == 0 ||
           strcmp(path, LEGACY_KEY_PATH) == 0;
}

static int write_key(const char* path, const ProtobufCBinaryData* v, struct moat_error* err) {
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && strncmp(path, KEYS_PREFIX, strlen(KEYS_PREFIX)) == 0)
        return moat_error_set(err, -ENOENT,
                              "writing key file %s: no such key (no encrypted mount and no "
                              "fs.insecure__keys entry of the Gramine manifest names key \"%s\")",
                              path, path + strlen(KEYS_PREFIX));
    if (fd < 0)
        return moat_error_set_errno(err, -errno, "writing key file %s", path);
    int r = write_all(fd, v->data, v->len);
    if (r < 0)
        return moat_error_set(err, r, "writing key file %s: %s", path, strerror(-r));
    return 0;
}

static int write_param_file(const char* path, const ProtobufCBinaryData* v,
                            struct moat_error* err) {
    int r = mkdir_parents(path, 0700);
    if (r < 0)
        return moat_error_set(err, r, "creating the directory of %s: %s", path, strerror(-r));
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return moat_error_set_errno(err, -errno, "writing file %s", path);
    r = write_all(fd, v->data, v->len);
    if (r < 0)
        return moat_error_set(err, r, "writing file %s: %s", path, strerror(-r));
    return 0;
}

static int apply(const Rpc__Parameters* p, struct moat_error* err) {
    for (size_t i = 0; i < p->n_env; i++)
        if (strcmp(p->env[i]->key, "MARBLE_TTLS_CONFIG") == 0)
            return moat_error_set(err, -ENOTSUP,
                                  "the manifest configures TTLS (MARBLE_TTLS_CONFIG), which "
                                  "Gramine Marbles do not support");
    /* the encrypted-files keys first, so they exist before a file in an encrypted mount is
     * written */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < p->n_files; i++) {
            const char* path = p->files[i]->key;
            if (is_key_file(path) != (pass == 0))
                continue;
            int r = pass == 0 ? write_key(path, &p->files[i]->value, err)
                              : write_param_file(path, &p->files[i]->value, err);
            if (r < 0)
                return r;
        }
    for (size_t i = 0; i < p->n_env; i++) {
        const ProtobufCBinaryData* v = &p->env[i]->value;
        if (memchr(v->data, '\0', v->len))
            return moat_error_set(err, -EINVAL, "setenv %s: invalid argument (a NUL byte)",
                                  p->env[i]->key);
        if (!*p->env[i]->key || strchr(p->env[i]->key, '='))
            return moat_error_set(err, -EINVAL, "setenv %s: invalid argument", p->env[i]->key);
        _cleanup_free_ char* s = xstrndup((const char*)v->data, v->len);
        premain_setenv(p->env[i]->key, s);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */

int premain_run(struct premain_params* ret, struct moat_error* err) {
    *ret               = (struct premain_params){0};
    struct config c    = {0};
    struct identity id = {0};
    char uuid[MOAT_UUID_STR_SIZE];
    Rpc__ActivationResp* resp = NULL;
    premain_log("info", "starting PreMain");
    int r = read_config(&c, err);
    if (r == 0)
        r = make_identity(&c, &id, err);
    if (r == 0)
        r = load_uuid(c.uuid_file, uuid, err);
    if (r == 0) {
        premain_log("info",
                    "activating as a Marble of type %s (UUID %s) with the Coordinator at %s",
                    c.type, uuid, c.addr);
        r = activate(&c, &id, uuid, &resp, err);
    }
    if (r == 0) {
        premain_log("info", "Not using TTLS");
        static const Rpc__Parameters empty = RPC__PARAMETERS__INIT;
        const Rpc__Parameters* p           = resp->parameters ? resp->parameters : &empty;
        r                                  = apply(p, err);
        if (r == 0) {
            ret->argc = p->n_argv;
            ret->argv = xcalloc(p->n_argv + 1, sizeof(char*));
            for (size_t i = 0; i < p->n_argv; i++)
                ret->argv[i] = p->argv[i];
            ret->resp = resp;
            resp      = NULL;
            premain_log("info", "done: %zu files, %zu environment variables, %zu arguments",
                        p->n_files, p->n_env, p->n_argv);
        }
    }
    if (resp)
        rpc__activation_resp__free_unpacked(resp, NULL);
    identity_clear(&id);
    free(c.uuid_file);
    return r;
}

void premain_params_clear(struct premain_params* p) {
    if (p->resp)
        rpc__activation_resp__free_unpacked(p->resp, NULL);
    free(p->argv);
    *p = (struct premain_params){0};
}
