/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The commands of moat-marblerun (cli.h), in the `marblerun` CLI's words (reference/
 * marblerun.md §7; MarbleRun's cli/internal/cmd) over the client API (§3.5).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "cli.h"
#include "pck.h"

#define SESSION  _cleanup_(mr_session_clear) struct mr_session
#define RESPONSE _cleanup_(mr_response_clear) struct mr_response

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

int mr_print_json(const json_t* o) {
    _cleanup_free_ char* text = json_dumps(o, JSON_INDENT(2) | JSON_ENCODE_ANY);
    if (!text)
        return MOAT_EXIT_RUNTIME;
    puts(text);
    return MOAT_EXIT_OK;
}

/* A manifest file: its bytes, which must be JSON (MarbleRun also takes YAML; moat does not). */
static int load_manifest(const char* path, char** ret, size_t* ret_len) {
    struct moat_error err = {0};
    if (read_file(path, ret, ret_len, &err) < 0)
        return mr_fail(&err);
    json_error_t je;
    json_t* o = json_loadb(*ret, *ret_len, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        log_error(
            "manifest '%s' is not a JSON object: line %d: %s (moat reads JSON manifests "
            "only, not YAML)",
            path, je.line, o ? "not an object" : je.text);
        return MOAT_EXIT_USAGE;
    }
    json_decref(o);
    return 0;
}

static void sha256_hex(const void* p, size_t len, char out[SHA256_HEX_SIZE]) {
    uint8_t h[SHA256_DIGEST_SIZE];
    if (sha256_buf(p, len, h) < 0 || hex_encode(h, sizeof(h), out, SHA256_HEX_SIZE) < 0)
        out[0] = '\0';
}

static json_t* manifest_body(const char* raw, size_t len) {
    _cleanup_free_ char* b = base64_encode_alloc(raw, len);
    return json_pack("{s:s}", "manifest", b);
}

/* Writes to `path` ("-" or NULL: standard output). */
int mr_write_out(const char* path, const void* buf, size_t len, mode_t mode) {
    struct moat_error err = {0};
    if (!path || strcmp(path, "-") == 0) {
        fwrite(buf, 1, len, stdout);
        return 0;
    }
    return write_file_atomic(path, buf, len, mode, &err) < 0 ? mr_fail(&err) : 0;
}

/* A base64 member of `data` decoded; NULL when missing or not base64. */
static uint8_t* b64_member(const json_t* data, const char* name, size_t* ret_len) {
    json_t* v    = json_object_get(data, name);
    uint8_t* out = NULL;
    if (!json_is_string(v) ||
        base64_decode_alloc(json_string_value(v), json_string_length(v), &out, ret_len) < 0)
        return NULL;
    return out;
}

/* {"RecoverySecrets": …} to -r FILE or standard output (manifestSet.go, saveNewRecoveryData). */
static int save_recovery(const struct mr_args* a, json_t* secrets) {
    if (!secrets || json_is_null(secrets) || !json_object_size(secrets))
        return 0;
    json_t* o                 = json_pack("{s:O}", "RecoverySecrets", secrets);
    _cleanup_free_ char* text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!a->recovery_data) {
        puts(text);
        return 0;
    }
    int r = mr_write_out(a->recovery_data, text, strlen(text), 0600);
    if (r == 0)
        printf("Recovery data saved to: %s\n", a->recovery_data);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* status, manifest                                                                           */

int mr_cmd_status(const struct mr_args* a, char** args) {
    SESSION s             = {0};
    RESPONSE r            = {0};
    int rc                = mr_connect(a, args[0], MR_TRUST_CACHE, false, &s);
    struct moat_error err = {0};
    if (rc)
        return rc;
    /* v2, v1 on 405 (§3.5) */
    if (mr_http_call(s.http, "GET", "/api/v2/status", NULL, &r, &err) == 0 && r.status == 405) {
        mr_response_clear(&r);
        if (mr_call(a, &s, args[0], "GET", "/status", NULL, &r))
            return MOAT_EXIT_RUNTIME;
    } else {
        mr_response_clear(&r);
        if (mr_call(a, &s, args[0], "GET", "/api/v2/status", NULL, &r))
            return MOAT_EXIT_RUNTIME;
    }
    json_t* code = json_object_get(r.data, "code") ?: json_object_get(r.data, "StatusCode");
    json_t* msg  = json_object_get(r.data, "message") ?: json_object_get(r.data, "StatusMessage");
    if (!json_is_integer(code) || !json_is_string(msg)) {
        log_error("unable to query Coordinator status: the answer has no code and message");
        return MOAT_EXIT_RUNTIME;
    }
    if (a->json) {
        json_t* o = json_pack("{s:O, s:O}", "code", code, "message", msg);
        rc        = mr_print_json(o);
        json_decref(o);
        return rc;
    }
    printf("%d: %s\n", (int)json_integer_value(code), json_string_value(msg));
    return MOAT_EXIT_OK;
}

int mr_cmd_manifest_set(const struct mr_args* a, char** args) {
    _cleanup_free_ char* raw = NULL;
    size_t len               = 0;
    int rc                   = load_manifest(args[0], &raw, &len);
    SESSION s                = {0};
    RESPONSE r               = {0};
    rc                       = rc ?: mr_connect(a, args[1], MR_TRUST_VERIFY_STORE, false, &s);
    if (rc)
        return rc;
    char sig[SHA256_HEX_SIZE];
    sha256_hex(raw, len, sig);
    if (!a->json) {
        puts("Successfully verified Coordinator, now uploading manifest");
        printf("Manifest signature: %s\n", sig);
    }
    json_t* body = manifest_body(raw, len);
    rc           = mr_call(a, &s, args[1], "POST", "/api/v2/manifest", body, &r);
    json_decref(body);
    if (rc) {
        log_error("setting manifest failed");
        return rc;
    }
    json_t* secrets = json_object_get(r.data, "RecoverySecrets");
    if (a->json) {
        json_t* o = json_pack("{s:s, s:O}", "manifestSignature", sig, "RecoverySecrets",
                              secrets ? secrets : json_null());
        rc        = a->recovery_data ? save_recovery(a, secrets) : 0;
        rc        = rc ?: mr_print_json(o);
        json_decref(o);
        return rc;
    }
    puts("Manifest successfully set");
    return save_recovery(a, secrets);
}

int mr_cmd_manifest_get(const struct mr_args* a, char** args) {
    SESSION s  = {0};
    RESPONSE r = {0};
    int rc     = mr_connect(a, args[0], MR_TRUST_CACHE, false, &s);
    rc         = rc ?: mr_call(a, &s, args[0], "GET", "/api/v2/manifest", NULL, &r);
    if (rc)
        return rc;
    if (a->json && !a->output)
        return mr_print_json(r.data);
    size_t len                = 0;
    _cleanup_free_ uint8_t* m = b64_member(r.data, "manifest", &len);
    if (!m) {
        log_error("the Coordinator has no manifest set");
        return MOAT_EXIT_RUNTIME;
    }
    rc = mr_write_out(a->output, m, len, 0644);
    if (rc == 0 && a->output)
        printf("Manifest written to: %s\n", a->output);
    return rc;
}

int mr_cmd_manifest_log(const struct mr_args* a, char** args) {
    SESSION s  = {0};
    RESPONSE r = {0};
    int rc     = mr_connect(a, args[0], MR_TRUST_CACHE, false, &s);
    rc         = rc ?: mr_call(a, &s, args[0], "GET", "/api/v2/update", NULL, &r);
    if (rc)
        return rc;
    json_t* log = json_object_get(r.data, "updateLog");
    if (a->json)
        return mr_print_json(log ? log : json_null());
    size_t i;
    json_t* line;
    json_array_foreach(log, i, line) {
        if (json_is_string(line))
            puts(json_string_value(line));
    }
    return MOAT_EXIT_OK;
}

int mr_cmd_manifest_signature(const struct mr_args* a, char** args) {
    _cleanup_free_ char* raw = NULL;
    size_t len               = 0;
    int rc                   = load_manifest(args[0], &raw, &len);
    if (rc)
        return rc;
    char sig[SHA256_HEX_SIZE];
    sha256_hex(raw, len, sig);
    if (a->json) {
        json_t* o = json_pack("{s:s}", "manifestSignature", sig);
        rc        = mr_print_json(o);
        json_decref(o);
        return rc;
    }
    puts(sig);
    return MOAT_EXIT_OK;
}

/* manifestVerify.go getSignatureFromString: a file's hash, or a hash given as is. */
static int local_signature(const char* arg, char out[SHA256_HEX_SIZE]) {
    if (access(arg, F_OK) != 0) {
        uint8_t h[32];
        if (strlen(arg) != 64) {
            log_error(
                "%s is not a file and of invalid length to be a signature (needs to be 32 "
                "bytes)",
                arg);
            return MOAT_EXIT_USAGE;
        }
        if (hex_decode(arg, 64, h, sizeof(h)) < 0 || hex_encode(h, 32, out, SHA256_HEX_SIZE) < 0) {
            log_error("%s is not a file and not a valid signature (needs to be in hex format)",
                      arg);
            return MOAT_EXIT_USAGE;
        }
        return 0;
    }
    _cleanup_free_ char* raw = NULL;
    size_t len               = 0;
    int rc                   = load_manifest(arg, &raw, &len);
    if (rc == 0)
        sha256_hex(raw, len, out);
    return rc;
}

int mr_cmd_manifest_verify(const struct mr_args* a, char** args) {
    char local[SHA256_HEX_SIZE];
    int rc     = local_signature(args[0], local);
    SESSION s  = {0};
    RESPONSE r = {0};
    rc         = rc ?: mr_connect(a, args[1], MR_TRUST_VERIFY_STORE, false, &s);
    rc         = rc ?: mr_call(a, &s, args[1], "GET", "/api/v2/manifest", NULL, &r);
    if (rc)
        return rc;
    json_t* fp         = json_object_get(r.data, "manifestFingerprint");
    const char* remote = json_is_string(fp) ? json_string_value(fp) : "";
    bool ok            = strcmp(remote, local) == 0;
    if (a->json) {
        json_t* o = json_pack("{s:b, s:s, s:s}", "match", ok, "remote", remote, "local", local);
        mr_print_json(o);
        json_decref(o);
    }
    if (!ok) {
        log_error("remote signature differs from local signature: %s != %s", remote, local);
        return MOAT_EXIT_RUNTIME;
    }
    if (!a->json)
        puts("OK");
    return MOAT_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* manifest update (manifestUpdate.go)                                                        */

static void join_users(const json_t* users, struct strbuf* sb) {
    size_t i;
    json_t* u;
    json_array_foreach(users, i, u) {
        if (json_is_string(u))
            strbuf_printf(sb, "%s%s", sb->len ? ", " : "", json_string_value(u));
    }
}

/* POST an update manifest to `path` (/update: apply, /update-manifest: acknowledge). */
static int post_update(const struct mr_args* a, char** args, const char* path, bool ack) {
    _cleanup_free_ char* raw = NULL;
    size_t len               = 0;
    int rc                   = load_manifest(args[0], &raw, &len);
    SESSION s                = {0};
    RESPONSE r               = {0};
    rc                       = rc ?: mr_connect(a, args[1], MR_TRUST_CACHE, true, &s);
    if (rc)
        return rc;
    json_t* body = manifest_body(raw, len);
    rc           = mr_call(a, &s, args[1], "POST", path, body, &r);
    json_decref(body);
    if (rc) {
        log_error(ack ? "acknowledging update manifest failed" : "applying update failed");
        return rc;
    }
    if (a->json)
        return mr_print_json(r.data ? r.data : json_null());
    json_int_t missing = json_integer_value(json_object_get(r.data, "missingAcknowledgments"));
    _cleanup_strbuf_ struct strbuf users = STRBUF_INIT;
    join_users(json_object_get(r.data, "missingUsers"), &users);
    if (ack)
        puts("Acknowledgement successful:");
    if (missing == 0)
        puts(ack ? "All users have acknowledged the update manifest. Update successfully applied"
                 : "Update manifest set successfully");
    else if (ack)
        printf(
            "%lld user%s still need%s to acknowledge the update manifest.\nThe following users "
            "have not yet accepted: %s\n",
            (long long)missing, missing == 1 ? "" : "s", missing == 1 ? "s" : "",
            users.len ? users.buf : "");
    else
        printf(
            "Update manifest submitted successfully.\nChanges are pending and have not been "
            "applied yet.\n%lld user%s still need%s to acknowledge the update manifest.\nThe "
            "following users may acknowledge the update: %s\n",
            (long long)missing, missing == 1 ? "" : "s", missing == 1 ? "s" : "",
            users.len ? users.buf : "");
    return save_recovery(a, json_object_get(r.data, "recoverySecrets"));
}

int mr_cmd_update_apply(const struct mr_args* a, char** args) {
    return post_update(a, args, "/api/v2/update", false);
}

int mr_cmd_update_acknowledge(const struct mr_args* a, char** args) {
    return post_update(a, args, "/api/v2/update-manifest", true);
}

int mr_cmd_update_cancel(const struct mr_args* a, char** args) {
    SESSION s  = {0};
    RESPONSE r = {0};
    int rc     = mr_connect(a, args[0], MR_TRUST_CACHE, true, &s);
    rc         = rc ?: mr_call(a, &s, args[0], "POST", "/api/v2/update-cancel", NULL, &r);
    if (rc) {
        log_error("canceling update failed");
        return rc;
    }
    if (a->json)
        return mr_print_json(r.data ? r.data : json_null());
    puts("Cancellation successful");
    return MOAT_EXIT_OK;
}

int mr_cmd_update_get(const struct mr_args* a, char** args) {
    SESSION s  = {0};
    RESPONSE r = {0};
    int rc     = mr_connect(a, args[0], MR_TRUST_CACHE, false, &s);
    rc         = rc ?: mr_call(a, &s, args[0], "GET", "/api/v2/update-manifest", NULL, &r);
    if (rc) {
        log_error("retrieving pending update manifest failed");
        return rc;
    }
    if (a->json)
        return mr_print_json(r.data ? r.data : json_null());
    if (a->missing) {
        _cleanup_strbuf_ struct strbuf users = STRBUF_INIT;
        join_users(json_object_get(r.data, "missingUsers"), &users);
        printf("The following users have not yet acknowledged the update: [%s]\n",
               users.len ? users.buf : "");
        return MOAT_EXIT_OK;
    }
    size_t len                = 0;
    _cleanup_free_ uint8_t* m = b64_member(r.data, "manifest", &len);
    if (!m) {
        log_error("the pending update has no manifest");
        return MOAT_EXIT_RUNTIME;
    }
    return mr_write_out(a->output, m, len, 0644);
}

/* ---------------------------------------------------------------------------------------- */
/* certificate (certificate*.go)                                                              */

enum which_cert { CERT_ROOT, CERT_INTERMEDIATE, CERT_CHAIN };

static int certificate(const struct mr_args* a, const char* addr, enum which_cert which) {
    static const char* const defaults[] = {"marblerunRootCA.crt", "marblerunIntermediateCA.crt",
                                           "marblerunChainCA.crt"};
    SESSION s                           = {0};
    int rc                              = mr_connect(a, addr, MR_TRUST_VERIFY_COMPARE, false, &s);
    if (rc)
        return rc;
    struct moat_error err      = {0};
    _cleanup_x509_ X509* inter = NULL;
    _cleanup_x509_ X509* root  = NULL;
    if (mr_chain_parse(s.chain_pem, strlen(s.chain_pem), &inter, &root, &err) < 0)
        return mr_fail(&err);
    _cleanup_strbuf_ struct strbuf pem = STRBUF_INIT;
    X509* certs[2] = {which == CERT_ROOT ? root : inter, which == CERT_CHAIN ? root : NULL};
    for (size_t i = 0; i < 2 && certs[i]; i++) {
        BIO* b = BIO_new(BIO_s_mem());
        char* p;
        if (!b || !PEM_write_bio_X509(b, certs[i])) {
            BIO_free(b);
            log_error("cannot encode the certificate");
            return MOAT_EXIT_RUNTIME;
        }
        long n = BIO_get_mem_data(b, &p);
        strbuf_append(&pem, p, (size_t)n);
        BIO_free(b);
    }
    const char* out = a->output ? a->output : defaults[which];
    rc              = mr_write_out(out, pem.buf, pem.len, 0644);
    if (rc == 0 && strcmp(out, "-") != 0)
        fprintf(a->json ? stderr : stdout, "Certificate written to %s\n", out);
    return rc;
}

int mr_cmd_certificate_root(const struct mr_args* a, char** args) {
    return certificate(a, args[0], CERT_ROOT);
}
int mr_cmd_certificate_intermediate(const struct mr_args* a, char** args) {
    return certificate(a, args[0], CERT_INTERMEDIATE);
}
int mr_cmd_certificate_chain(const struct mr_args* a, char** args) {
    return certificate(a, args[0], CERT_CHAIN);
}

/* ---------------------------------------------------------------------------------------- */
/* secret (secretSet.go, secretGet.go)                                                        */

/* --from-pem NAME: a PEM file with a certificate and its private key, as a cert secret. */
static int secrets_from_pem(const char* path, const char* name, json_t** ret) {
    struct moat_error err    = {0};
    _cleanup_free_ char* pem = NULL;
    size_t len               = 0;
    if (read_file(path, &pem, &len, &err) < 0)
        return mr_fail(&err);
    BIO* b                    = BIO_new_mem_buf(pem, (int)len);
    _cleanup_x509_ X509* cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    b             = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY* key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    OPENSSL_cleanse(pem, len);
    if (!cert || !key) {
        EVP_PKEY_free(key);
        log_error("--from-pem: '%s' must hold a PEM certificate and its PEM private key", path);
        return MOAT_EXIT_USAGE;
    }
    _cleanup_free_ uint8_t* cder = NULL;
    unsigned char* kder          = NULL;
    int clen                     = i2d_X509(cert, &cder);
    int klen                     = i2d_PrivateKey(key, &kder); /* PKCS#8 for EC, RSA: PKCS#1 */
    PKCS8_PRIV_KEY_INFO* p8      = EVP_PKEY2PKCS8(key);
    EVP_PKEY_free(key);
    OPENSSL_clear_free(kder, klen > 0 ? (size_t)klen : 0);
    kder = NULL;
    klen = p8 ? i2d_PKCS8_PRIV_KEY_INFO(p8, &kder) : -1;
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (clen <= 0 || klen <= 0) {
        OPENSSL_free(kder);
        log_error("--from-pem: cannot encode the certificate or key of '%s'", path);
        return MOAT_EXIT_RUNTIME;
    }
    _cleanup_free_ char* c64 = base64_encode_alloc(cder, (size_t)clen);
    char* k64                = base64_encode_alloc(kder, (size_t)klen);
    OPENSSL_clear_free(kder, (size_t)klen);
    *ret = json_pack("{s:{s:s, s:s}}", name, "Cert", c64, "Private", k64);
    OPENSSL_cleanse(k64, strlen(k64));
    free(k64);
    return 0;
}

static int load_secrets(const struct mr_args* a, const char* path, json_t** ret) {
    if (a->from_pem)
        return secrets_from_pem(path, a->from_pem, ret);
    struct moat_error err     = {0};
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    if (read_file(path, &text, &len, &err) < 0)
        return mr_fail(&err);
    json_error_t je;
    json_t* o = json_loadb(text, len, 0, &je);
    OPENSSL_cleanse(text, len);
    if (!o || !json_is_object(o) || !json_object_size(o)) {
        log_error(
            "secret file '%s' must be a JSON object of secrets ({\"name\": {\"Key\": "
            "base64, …}}): %s",
            path, o ? "not a non-empty object" : je.text);
        json_decref(o);
        return MOAT_EXIT_USAGE;
    }
    *ret = o;
    return 0;
}

int mr_cmd_secret_set(const struct mr_args* a, char** args) {
    json_t* secrets = NULL;
    int rc          = load_secrets(a, args[0], &secrets);
    SESSION s       = {0};
    RESPONSE r      = {0};
    rc              = rc ?: mr_connect(a, args[1], MR_TRUST_CACHE, true, &s);
    if (rc) {
        json_decref(secrets);
        return rc;
    }
    json_t* body = json_pack("{s:o}", "secrets", secrets);
    rc           = mr_call(a, &s, args[1], "POST", "/api/v2/secrets", body, &r);
    json_decref(body);
    if (rc)
        return rc;
    if (a->json)
        return mr_print_json(json_null());
    puts("Secret successfully set");
    return MOAT_EXIT_OK;
}

/* RFC 3986 unreserved characters as they are, the rest %XX. */
static void url_escape(struct strbuf* sb, const char* s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            strbuf_putc(sb, (char)c);
        else
            strbuf_printf(sb, "%%%02X", c);
    }
}

static void print_secret(const char* name, json_t* secret) {
    printf("%s:\n", name);
    const char* key;
    json_t* v;
    json_object_foreach(secret, key, v) {
        if (json_is_null(v) || (json_is_string(v) && !json_string_length(v)))
            continue;
        _cleanup_free_ char* text =
            json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("\t%-12s %s\n", key, text ? text : json_string_value(v));
    }
}

int mr_cmd_secret_get(const struct mr_args* a, char** args) {
    size_t n = 0;
    while (args[n])
        n++;
    const char* addr                    = args[n - 1];
    _cleanup_strbuf_ struct strbuf path = STRBUF_INIT;
    strbuf_puts(&path, "/api/v2/secrets");
    for (size_t i = 0; i + 1 < n; i++) {
        strbuf_puts(&path, i ? "&s=" : "?s=");
        url_escape(&path, args[i]);
    }
    SESSION s  = {0};
    RESPONSE r = {0};
    int rc     = mr_connect(a, addr, MR_TRUST_CACHE, true, &s);
    rc         = rc ?: mr_call(a, &s, addr, "GET", path.buf, NULL, &r);
    if (rc)
        return rc;
    json_t* secrets = json_object_get(r.data, "secrets");
    if (a->output || a->json) {
        _cleanup_free_ char* text =
            json_dumps(secrets ? secrets : json_null(), JSON_INDENT(2) | JSON_ENCODE_ANY);
        if (!a->output)
            return puts(text) < 0 ? MOAT_EXIT_RUNTIME : MOAT_EXIT_OK;
        rc = mr_write_out(a->output, text, strlen(text), 0600);
        OPENSSL_cleanse(text, strlen(text));
        if (rc == 0)
            printf("Saved secrets to: %s\n", a->output);
        return rc;
    }
    const char* name;
    json_t* v;
    json_object_foreach(secrets, name, v) print_secret(name, v);
    return MOAT_EXIT_OK;
}
