/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat amber verify-token: an attestation token checked as Intel Trust Authority's
 * client-for-go VerifyToken does (../shared/reference/attestation.md §4.2 "Verification"): the
 * JWKS (--jwks, or the token's jku), the key the token's kid names, its x5c chain to a root CA
 * the user trusts and the CRLs of its certificates (src/amber/jwks.c), then the signature with
 * the algorithm the key was published for — never the one the token's header asks for — and
 * exp/nbf with a small leeway.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "jwks.h"
#include "jwt.h"

#define ME             "moat amber verify-token"
#define MAX_TOKEN      (64 * 1024)
#define DEFAULT_LEEWAY 60

static const char g_usage[] =
    "usage: moat amber verify-token [OPTIONS] TOKEN|-|@FILE\n"
    "\n"
    "Verifies an attestation token of moat amber serve or Intel Trust Authority and prints its\n"
    "header and claims: the key its kid names in the JWKS, that key's x5c certificate chain up\n"
    "to the root CA given with --root-ca, the CRLs of the chain's certificates (from their CRL\n"
    "distribution points), the signature with the algorithm the key was published for, and\n"
    "exp/nbf. Tokens of the simulated platform (\"moat_simulated\": true) are labelled SIMULATED.\n"
    "\n"
    "options:\n"
    "  --jwks URL|FILE        the token service's JWKS (default the token header's jku)\n"
    "  --cacerts PEM          CA certificates for HTTPS (JWKS, CRLs; default the system store)\n"
    "  --root-ca PEM          the root CA certificate(s) the x5c chain must end at, e.g. ITA's,\n"
    "                         or root_ca.pem of moat amber serve's state directory\n"
    "  --insecure-self-signed-root\n"
    "                         without --root-ca, trust the x5c's own self-signed root (anyone\n"
    "                         can make one: for tests only)\n"
    "  --insecure-no-crl-check  do not fetch the CRLs (offline; revocation goes unnoticed)\n"
    "  --alg-allow LIST       algorithms accepted, comma-separated (default PS384,RS256)\n"
    "  --leeway SECONDS       clock skew allowed for exp and nbf (default 60)\n"
    "  -h, --help             show this help\n"
    "\n"
    "exit codes: 0 valid, 1 runtime failure (a file, the JWKS or a CRL unreachable), 2 usage\n"
    "error, 3 the token is invalid.\n";

struct opts {
    const char* jwks;
    const char* cacerts;
    const char* root_ca;
    bool self_root, no_crl;
    unsigned algs; /* bit (1 << enum amber_jwt_alg) */
    long leeway;
    const char* token;
};

enum { O_JWKS = 256, O_CACERTS, O_ROOT, O_SELF, O_NOCRL, O_ALGS, O_LEEWAY };

static const struct option g_opts[] = {
    {"jwks", required_argument, NULL, O_JWKS},
    {"cacerts", required_argument, NULL, O_CACERTS},
    {"root-ca", required_argument, NULL, O_ROOT},
    {"insecure-self-signed-root", no_argument, NULL, O_SELF},
    {"insecure-no-crl-check", no_argument, NULL, O_NOCRL},
    {"alg-allow", required_argument, NULL, O_ALGS},
    {"leeway", required_argument, NULL, O_LEEWAY},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_algs(const char* list, unsigned* ret) {
    unsigned algs = 0;
    for (const char* p = list; *p;) {
        size_t n                  = strcspn(p, ",");
        _cleanup_free_ char* name = xstrndup(p, n);
        enum amber_jwt_alg a;
        if (amber_jwt_alg_parse(name, &a, NULL) < 0)
            return cli_usage_error(ME, "--alg-allow: '%s' is not PS384 or RS256", name);
        algs |= 1u << a;
        p += n + (p[n] == ',');
    }
    if (!algs)
        return cli_usage_error(ME, "--alg-allow: no algorithm given");
    *ret = algs;
    return 0;
}

/* 0, 1 after --help, or CLI_EXIT_USAGE */
static int parse_opts(int argc, char** argv, struct opts* o) {
    *o = (struct opts){.algs   = (1u << AMBER_JWT_PS384) | (1u << AMBER_JWT_RS256),
                       .leeway = DEFAULT_LEEWAY};
    int c, r;
    int64_t v;
    while ((c = getopt_long(argc, argv, "h", g_opts, NULL)) != -1) {
        switch (c) {
            case O_JWKS:
                o->jwks = optarg;
                break;
            case O_CACERTS:
                o->cacerts = optarg;
                break;
            case O_ROOT:
                o->root_ca = optarg;
                break;
            case O_SELF:
                o->self_root = true;
                break;
            case O_NOCRL:
                o->no_crl = true;
                break;
            case O_ALGS:
                if ((r = parse_algs(optarg, &o->algs)) != 0)
                    return r;
                break;
            case O_LEEWAY:
                if (parse_i64(optarg, 10, &v) < 0 || v < 0 || v > 3600)
                    return cli_usage_error(ME, "--leeway '%s' is not 0 to 3600 seconds", optarg);
                o->leeway = (long)v;
                break;
            case 'h':
                fputs(g_usage, stdout);
                return 1;
            default:
                return cli_usage_error(ME, "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error(ME, "give one token (TOKEN, - for stdin, or @FILE)");
    if (o->root_ca && o->self_root)
        return cli_usage_error(ME, "--root-ca and --insecure-self-signed-root exclude each other");
    o->token = argv[optind];
    return 0;
}

/* Fetch and network failures are runtime errors; anything the token or its chain is guilty of
 * makes it invalid. */
static int exit_for(int code) {
    switch (code) {
        case -EIO:
        case -EHOSTUNREACH:
        case -ENOPKG:
        case -ENOENT:
        case -EACCES:
        case -ENOMEM:
            return CLI_EXIT_RUNTIME;
        default:
            return CLI_EXIT_INVALID;
    }
}

static int invalid(int code, const char* msg) {
    printf("verdict: INVALID: %s\n", msg);
    fflush(stdout);
    return code;
}

static void print_json(const char* title, const json_t* j) {
    char* s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("%s:\n%s\n", title, s ? s : "?");
    free(s);
}

static void format_time(json_int_t t, char out[32]) {
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "%lld", (long long)t);
}

static bool printable(const char* s, size_t max) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return n > 0 && n <= max;
}

struct verified {
    json_t* jwks;
    const json_t* jwk; /* borrowed from jwks */
    enum amber_jwt_alg alg;
    struct amber_x5c_result chain;
};

/* The JWKS, the key `kid` names, its algorithm and its chain. Returns an exit code. */
static int find_key(const struct opts* o, const char* source, const char* kid, const char* hdr_alg,
                    struct verified* v) {
    struct moat_error err = {0};
    int r                 = amber_jwks_load(source, o->cacerts, NULL, &v->jwks, &err);
    if (r < 0)
        return cli_fail(ME, CLI_EXIT_RUNTIME, "%s", err.msg);
    v->jwk = amber_jwks_find(v->jwks, kid);
    if (!v->jwk) {
        snprintf(err.msg, sizeof(err.msg), "no key '%s' in the JWKS %s", kid, source);
        return invalid(CLI_EXIT_INVALID, err.msg);
    }
    if (amber_jwk_alg(v->jwk, &v->alg, &err) < 0)
        return invalid(CLI_EXIT_INVALID, err.msg);
    if (!(o->algs & (1u << v->alg))) {
        snprintf(err.msg, sizeof(err.msg), "the key '%s' is for %s, which --alg-allow excludes",
                 kid, amber_jwt_alg_name(v->alg));
        return invalid(CLI_EXIT_INVALID, err.msg);
    }
    /* the verifier chooses the algorithm (from the JWK); a header that asks for another one —
     * "none", HS256 with the public key as the secret — is refused (RFC 8725 §3.1) */
    if (strcmp(hdr_alg, amber_jwt_alg_name(v->alg)) != 0) {
        snprintf(err.msg, sizeof(err.msg),
                 "the token's header says alg \"%.32s\" but the key '%s' is for %s", hdr_alg, kid,
                 amber_jwt_alg_name(v->alg));
        return invalid(CLI_EXIT_INVALID, err.msg);
    }
    STACK_OF(X509)* roots = NULL;
    if (o->root_ca && amber_roots_load(o->root_ca, &roots, &err) < 0)
        return cli_fail(ME, CLI_EXIT_RUNTIME, "--root-ca: %s", err.msg);
    struct amber_x5c_options xo = {.roots           = roots,
                                   .allow_self_root = o->self_root,
                                   .skip_crl        = o->no_crl,
                                   .cacerts         = o->cacerts};
    r                           = amber_jwk_verify_x5c(v->jwk, &xo, &v->chain, &err);
    sk_X509_pop_free(roots, X509_free);
    if (r == -EPERM && !o->root_ca && !o->self_root)
        return cli_fail(ME, CLI_EXIT_USAGE,
                        "%s: give --root-ca PEM (the token service's root CA certificate)",
                        err.msg);
    if (r < 0)
        return exit_for(r) == CLI_EXIT_RUNTIME ? cli_fail(ME, CLI_EXIT_RUNTIME, "%s", err.msg)
                                               : invalid(CLI_EXIT_INVALID, err.msg);
    return CLI_EXIT_OK;
}

static void print_verdict(const struct opts* o, const struct amber_jwt* t, const char* kid,
                          const char* source, const struct verified* v) {
    print_json("header", t->header);
    print_json("claims", t->claims);
    bool sim = json_is_true(json_object_get(t->claims, "moat_simulated"));
    if (sim)
        puts(
            "SIMULATED: \"moat_simulated\" is true: the quote came from moat's simulated "
            "platform and proves nothing about hardware");
    char exp[32], next[32];
    format_time(json_integer_value(json_object_get(t->claims, "exp")), exp);
    format_time((json_int_t)v->chain.next_update, next);
    printf(
        "verdict: valid%s: %s signature of key '%s' from %s; x5c chain to '%s'%s; %s%s%s; "
        "expires %s\n",
        sim ? " (SIMULATED)" : "", amber_jwt_alg_name(v->alg), kid, source, v->chain.root,
        v->chain.self_anchored ? " (its own self-signed root: NOT a trust anchor)" : "",
        v->chain.crl_checked ? "CRLs checked (next update " : "CRLs NOT checked",
        v->chain.crl_checked ? next : "", v->chain.crl_checked ? ")" : "", exp);
    if (o->self_root)
        cli_warn(ME,
                 "--insecure-self-signed-root: the chain ends at a root the token service "
                 "presents itself; this proves nothing about who signed the token");
}

int cli_verify_token(int argc, char** argv) {
    struct opts o;
    int r = parse_opts(argc, argv, &o);
    if (r != 0)
        return r == 1 ? CLI_EXIT_OK : r;
    if (o.no_crl)
        cli_warn(ME, "--insecure-no-crl-check: a revoked token-signing key goes unnoticed");
    struct moat_error err      = {0};
    _cleanup_free_ char* token = NULL;
    if (cli_read_arg(o.token, MAX_TOKEN, "token", &token, &err) < 0)
        return cli_fail(ME, CLI_EXIT_RUNTIME, "%s", err.msg);
    struct amber_jwt t = {0};
    if (amber_jwt_decode(token, &t, &err) < 0)
        return invalid(CLI_EXIT_INVALID, err.msg);
    /* copies: the header is replaced by the verified one below */
    const char* a            = json_string_value(json_object_get(t.header, "alg"));
    const char* k            = json_string_value(json_object_get(t.header, "kid"));
    const char* j            = json_string_value(json_object_get(t.header, "jku"));
    _cleanup_free_ char* alg = a ? xstrdup(a) : NULL;
    _cleanup_free_ char* kid = k ? xstrdup(k) : NULL;
    _cleanup_free_ char* jku = j ? xstrdup(j) : NULL;
    struct verified v        = {0};
    const char* source       = o.jwks ? o.jwks : jku;
    if (!alg || !kid) {
        r = invalid(CLI_EXIT_INVALID, "the token's header has no \"alg\" or no \"kid\"");
        goto out;
    }
    /* the kid and alg reach the terminal: printable ASCII only */
    if (!printable(kid, 256) || !printable(alg, 32)) {
        r = invalid(CLI_EXIT_INVALID, "the token's \"kid\" or \"alg\" is not printable ASCII");
        goto out;
    }
    if (!source) {
        r = cli_fail(ME, CLI_EXIT_USAGE, "the token's header has no \"jku\": give --jwks");
        goto out;
    }
    if (!o.jwks && (strncmp(source, "https://", 8) != 0 || !printable(source, 2048))) {
        r = invalid(CLI_EXIT_INVALID, "the token's jku is not an https:// URL: give --jwks");
        goto out;
    }
    if ((r = find_key(&o, source, kid, alg, &v)) != CLI_EXIT_OK)
        goto out;
    EVP_PKEY* key = NULL;
    if (amber_jwk_key(v.jwk, &key, &err) < 0) {
        r = invalid(CLI_EXIT_INVALID, err.msg);
        goto out;
    }
    amber_jwt_clear(&t);
    r = amber_jwt_verify(token, v.alg, key, time(NULL), o.leeway, &t, &err);
    EVP_PKEY_free(key);
    if (r < 0) {
        r = invalid(CLI_EXIT_INVALID, err.msg);
        goto out;
    }
    print_verdict(&o, &t, kid, source, &v);
    r = CLI_EXIT_OK;
out:
    json_decref(v.jwks);
    amber_jwt_clear(&t);
    return r;
}
