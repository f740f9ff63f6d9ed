/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat kbs get-key: a key from a key broker in passport mode (../shared/reference/
 * attestation.md §4.3): POST {url}/kbs/v1/keys/{id}/transfer {"attestation_token": …}, then
 * RSA-OAEP (SHA-256) of `wrapped_swk` with the private key whose public half the token holds in
 * attester_held_data (§4.1), and AES-256-GCM of `wrapped_key` (12-byte header ‖ IV ‖ ct ‖ tag)
 * with that SWK (src/kbs/wrap.c). The secret goes to --out (0600, atomically) or stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "https.h"
#include "jwt.h"
#include "kbs.h"

#define ME        "moat kbs get-key"
#define MAX_TOKEN (64 * 1024)
#define MAX_ID    128

static const char g_usage[] =
    "usage: moat kbs get-key [OPTIONS] KEY_ID\n"
    "\n"
    "Gets key KEY_ID from a key broker (moat kbs serve, or Intel Trust Authority's KBS) with an\n"
    "attestation token whose attester_held_data is the public half of --private-key (passport\n"
    "mode), unwraps it and writes the secret's raw bytes.\n"
    "\n"
    "options:\n"
    "  --url URL            the key broker, e.g. https://kbs.example:9443, or Gramine-style\n"
    "                       https://kbs.example:9443/kbs/v1/keys/ (MOAT_KBS_URL)\n"
    "  --ip ADDR            connect to this IP address; the URL still names the TLS host\n"
    "  --cacerts PEM        CA certificates for the key broker's TLS (default the system store)\n"
    "  --token TOKEN|-|@FILE  the attestation token\n"
    "  --private-key PEM    the RSA private key whose public half the token holds\n"
    "  --out FILE           where the secret goes (written atomically, mode 0600; default\n"
    "                       stdout)\n"
    "  --json               print the key broker's response as it is (no --private-key needed)\n"
    "  -h, --help           show this help\n"
    "\n"
    "exit codes: 0 the key was written, 1 runtime failure (network, files, a response that does\n"
    "not unwrap), 2 usage error, 3 the key broker refused (HTTP 4xx).\n";

struct opts {
    const char *url, *ip, *cacerts, *token, *private_key, *out, *id;
    bool json;
};

enum { O_URL = 256, O_IP, O_CACERTS, O_TOKEN, O_PRIV, O_OUT, O_JSON };

static const struct option g_opts[] = {
    {"url", required_argument, NULL, O_URL},
    {"ip", required_argument, NULL, O_IP},
    {"cacerts", required_argument, NULL, O_CACERTS},
    {"token", required_argument, NULL, O_TOKEN},
    {"private-key", required_argument, NULL, O_PRIV},
    {"out", required_argument, NULL, O_OUT},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Key ids are UUIDs at ITA's KBS and moat's; anything that could leave the path segment is
 * refused. */
static bool id_ok(const char* id) {
    size_t n = strlen(id);
    return n > 0 && n <= MAX_ID &&
           strspn(id,
                  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789-_.") == n &&
           strcmp(id, ".") != 0 && strcmp(id, "..") != 0;
}

/* 0, 1 after --help, or CLI_EXIT_USAGE */
static int parse_opts(int argc, char** argv, struct opts* o) {
    const char* env = getenv("MOAT_KBS_URL");
    *o              = (struct opts){.url = env && *env ? env : NULL};
    int c;
    while ((c = getopt_long(argc, argv, "h", g_opts, NULL)) != -1) {
        switch (c) {
            case O_URL:
                o->url = optarg;
                break;
            case O_IP:
                o->ip = optarg;
                break;
            case O_CACERTS:
                o->cacerts = optarg;
                break;
            case O_TOKEN:
                o->token = optarg;
                break;
            case O_PRIV:
                o->private_key = optarg;
                break;
            case O_OUT:
                o->out = optarg;
                break;
            case O_JSON:
                o->json = true;
                break;
            case 'h':
                fputs(g_usage, stdout);
                return 1;
            default:
                return cli_usage_error(ME, "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(ME, "give one KEY_ID");
    o->id = argv[optind];
    if (!id_ok(o->id))
        return cli_usage_error(ME, "KEY_ID '%.*s' is not a key id (letters, digits, '-', '_', '.')",
                               MAX_ID, o->id);
    if (!o->url)
        return cli_usage_error(ME, "give --url (the key broker, e.g. https://localhost:9443)");
    if (strncmp(o->url, "https://", 8) != 0)
        return cli_usage_error(ME, "--url '%s' is not an https:// URL", o->url);
    if (!o->token)
        return cli_usage_error(ME, "give --token (the attestation token)");
    if (!o->json && !o->private_key)
        return cli_usage_error(ME, "give --private-key (or --json for the raw response)");
    return 0;
}

/* {url}/kbs/v1/keys/{id}/transfer; a URL that already ends in /kbs/v1/keys (Gramine's
 * sgx.kbs_url style) gets {id}/transfer only. */
static char* transfer_url(const char* base, const char* id) {
    size_t n = strlen(base);
    while (n > 8 && base[n - 1] == '/')
        n--;
    static const char suffix[] = "/kbs/v1/keys";
    bool has =
        n >= strlen(suffix) && memcmp(base + n - strlen(suffix), suffix, strlen(suffix)) == 0;
    return xasprintf("%.*s%s/%s/transfer", (int)n, base, has ? "" : suffix, id);
}

static int load_private_key(const char* path, EVP_PKEY** ret, struct moat_error* err) {
    FILE* f = fopen(path, "re");
    if (!f)
        return moat_error_set_errno(err, -errno, "--private-key %s", path);
    EVP_PKEY* k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k)
        return moat_error_set(err, -EBADMSG, "--private-key %s: not a PEM private key", path);
    if (!EVP_PKEY_is_a(k, "RSA")) {
        EVP_PKEY_free(k);
        return moat_error_set(err, -EINVAL, "--private-key %s: not an RSA key", path);
    }
    *ret = k;
    return 0;
}

/* The token's attester_held_data (§4.1) must be the private key's public half: otherwise the
 * key broker wraps the key for someone else and nothing here could unwrap it. The token is not
 * verified here — the key broker does that. Tokens without held data are let through. */
static int check_held_key(const char* token, EVP_PKEY* priv, struct moat_error* err) {
    struct amber_jwt t = {0};
    int r              = amber_jwt_decode(token, &t, err);
    if (r < 0)
        return moat_error_prefix(err, "--token");
    const char* held = json_string_value(json_object_get(t.claims, "attester_held_data"));
    const char* type = json_string_value(json_object_get(t.claims, "attester_type"));
    EVP_PKEY* pub    = NULL;
    if (held && type && (strcmp(type, "SGX") == 0 || strcmp(type, "TDX") == 0)) {
        enum kbs_tee tee = strcmp(type, "SGX") == 0 ? KBS_TEE_SGX : KBS_TEE_TDX;
        if (kbs_held_key(held, tee, &pub, NULL) < 0 || EVP_PKEY_eq(pub, priv) != 1)
            r = moat_error_set(err, -EKEYREJECTED,
                               "the token's attester_held_data is not the public half of "
                               "--private-key: the key broker would wrap the key for another key");
    }
    EVP_PKEY_free(pub);
    amber_jwt_clear(&t);
    return r;
}

/* The key broker's {"error": …} (or the start of the body), printable. */
static void report_refusal(const struct https_response* resp) {
    json_t* doc     = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char* msg = json_string_value(json_object_get(doc, "error"));
    if (!msg)
        msg = json_string_value(json_object_get(doc, "message"));
    _cleanup_free_ char* text = xstrndup(msg ? msg : resp->body, 512);
    for (char* p = text; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "%s: error: the key broker answered HTTP %ld: %s\n", ME, resp->status, text);
    json_decref(doc);
}

static int write_out(const char* out, const void* data, size_t len, struct moat_error* err) {
    if (out && strcmp(out, "-") != 0)
        return write_file_atomic(out, data, len, 0600, err);
    if (write_all(STDOUT_FILENO, data, len) < 0)
        return moat_error_set_errno(err, -errno, "cannot write to stdout");
    return 0;
}

static int post(const struct opts* o, const char* token, struct https_response* resp,
                struct moat_error* err) {
    json_t* req_body = json_pack("{s:s}", "attestation_token", token);
    char* body       = json_dumps(req_body, JSON_COMPACT);
    json_decref(req_body);
    if (!body)
        return moat_error_set(err, -ENOMEM, "JSON");
    _cleanup_free_ char* url    = transfer_url(o->url, o->id);
    const char* const headers[] = {"Accept: application/json", "Content-Type: application/json",
                                   NULL};
    struct https_request req    = {.method       = "POST",
                                   .url          = url,
                                   .connect_ip   = o->ip,
                                   .cacerts      = o->cacerts,
                                   .headers      = headers,
                                   .body         = body,
                                   .body_len     = strlen(body),
                                   .max_response = KBS_MAX_RESPONSE};
    int r                       = https_request(&req, resp, err);
    free(body);
    return r < 0 ? moat_error_prefix(err, "POST %s", url) : 0;
}

static int unwrap(const struct https_response* resp, EVP_PKEY* priv, const char* out,
                  struct moat_error* err) {
    struct kbs_wrapped w = {0};
    int r                = kbs_transfer_response_parse(resp->body, resp->body_len, &w, err);
    uint8_t* secret      = NULL;
    size_t len           = 0;
    if (r == 0)
        r = kbs_unwrap(priv, w.key, w.key_len, w.swk, w.swk_len, &secret, &len, err);
    kbs_wrapped_clear(&w);
    if (r < 0)
        return r;
    r = write_out(out, secret, len, err);
    OPENSSL_cleanse(secret, len);
    free(secret);
    return r;
}

int cli_kbs_get_key(int argc, char** argv) {
    struct opts o;
    int r = parse_opts(argc, argv, &o);
    if (r != 0)
        return r == 1 ? CLI_EXIT_OK : r;
    struct moat_error err      = {0};
    _cleanup_free_ char* token = NULL;
    EVP_PKEY* priv             = NULL;
    struct https_response resp = {0};
    if (cli_read_arg(o.token, MAX_TOKEN, "token", &token, &err) < 0 ||
        (o.private_key && (load_private_key(o.private_key, &priv, &err) < 0 ||
                           check_held_key(token, priv, &err) < 0)) ||
        post(&o, token, &resp, &err) < 0) {
        r = cli_fail(
            ME,
            err.code == -EINVAL || err.code == -EKEYREJECTED ? CLI_EXIT_USAGE : CLI_EXIT_RUNTIME,
            "%s", err.msg);
        goto out;
    }
    if (resp.status != 200) {
        if (o.json)
            (void)!write_out(o.out, resp.body, resp.body_len, &err);
        report_refusal(&resp);
        r = resp.status >= 400 && resp.status < 500 ? CLI_EXIT_INVALID : CLI_EXIT_RUNTIME;
        goto out;
    }
    if (o.json)
        r = write_out(o.out, resp.body, resp.body_len, &err);
    else
        r = unwrap(&resp, priv, o.out, &err);
    if (r < 0)
        r = cli_fail(ME, CLI_EXIT_RUNTIME, "%s", err.msg);
    else
        r = CLI_EXIT_OK;
out:
    if (token)
        OPENSSL_cleanse(token, strlen(token));
    EVP_PKEY_free(priv);
    https_response_clear(&resp);
    return r;
}
