/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat amber token: evidence from this machine's attestation provider, traded for a token at any
 * ITA-compatible service (moat amber serve, or Intel Trust Authority with --url/--api-key) —
 * the exchange /dev/amber/token makes for an app, from the command line (src/amber/client.c).
 */
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "jwt.h"
#include "provider.h"

#define ME           "moat amber token"
#define MAX_API_KEY  4096
#define MAX_RUNTIME  (64 * 1024)
#define MAX_POLICIES 16

static const char g_usage[] =
    "usage: moat amber token --url URL [OPTIONS]\n"
    "\n"
    "Gets an attestation token: a verifier nonce from the service, a quote from this machine's\n"
    "attestation provider over the report data that binds the nonce and the runtime data\n"
    "(reference §4.1), then the token, printed on stdout. The provider is a confidential VM's\n"
    "configfs-tsm when there is one (TDX), else the SIMULATED platform of --sim-dir (made by\n"
    "'moat attest init'; its tokens prove nothing about hardware and say so).\n"
    "\n"
    "The URL decides the protocol: .../appraisal/v1/ is Amber beta (Gramine's form),\n"
    ".../appraisal/v2/ is ITA v2, a service root (https://api.trustauthority.intel.com) is ITA "
    "v1.\n"
    "\n"
    "options:\n"
    "  --url URL               the token service (env MOAT_AMBER_URL)\n"
    "  --ip ADDR               connect to this address; the URL still names the TLS peer\n"
    "  --api-key KEY|@FILE     x-api-key (env MOAT_AMBER_API_KEY)\n"
    "  --cacerts PEM           CA certificates for TLS (default the system store)\n"
    "  --api beta|v1|v2        override the generation the URL names\n"
    "  --runtime-data DATA|@FILE  bytes bound into the report data (@FILE: raw bytes; DATA:\n"
    "                          base64), e.g. an RSA public key in the key-release layout\n"
    "  --policy-id UUID        an appraisal policy to apply (repeatable; v1 and v2)\n"
    "  --policy-must-match     fail unless every policy matches\n"
    "  --alg PS384|RS256       the token's signing algorithm (default the service's)\n"
    "  --sim-dir DIR           the simulated platform (default $MOAT_SIM_DIR, else\n"
    "                          ~/.local/share/moat/sim)\n"
    "  --mrenclave HEX, --mrsigner HEX, --isvprodid N, --isvsvn N, --debug\n"
    "                          the SGX identity a simulated quote claims (default zeros)\n"
    "  --claims                also print the token's claims (unverified) on stderr\n"
    "  -h, --help              show this help\n"
    "\n"
    "exit codes: 0 a token, 1 runtime failure (network, TLS, provider), 2 usage error, 3 the\n"
    "service refused the evidence or the API key.\n";

enum {
    O_URL = 256,
    O_IP,
    O_KEY,
    O_CA,
    O_API,
    O_RUNTIME,
    O_POLICY,
    O_MUST,
    O_ALG,
    O_SIM,
    O_MRENCLAVE,
    O_MRSIGNER,
    O_PROD,
    O_SVN,
    O_DEBUG,
    O_CLAIMS,
};

static const struct option g_opts[] = {
    {"url", required_argument, NULL, O_URL},
    {"ip", required_argument, NULL, O_IP},
    {"api-key", required_argument, NULL, O_KEY},
    {"cacerts", required_argument, NULL, O_CA},
    {"api", required_argument, NULL, O_API},
    {"runtime-data", required_argument, NULL, O_RUNTIME},
    {"policy-id", required_argument, NULL, O_POLICY},
    {"policy-must-match", no_argument, NULL, O_MUST},
    {"alg", required_argument, NULL, O_ALG},
    {"sim-dir", required_argument, NULL, O_SIM},
    {"mrenclave", required_argument, NULL, O_MRENCLAVE},
    {"mrsigner", required_argument, NULL, O_MRSIGNER},
    {"isvprodid", required_argument, NULL, O_PROD},
    {"isvsvn", required_argument, NULL, O_SVN},
    {"debug", no_argument, NULL, O_DEBUG},
    {"claims", no_argument, NULL, O_CLAIMS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct opts {
    const char *url, *ip, *key_arg, *cacerts, *runtime_arg, *alg, *sim_dir;
    bool api_set, must_match, claims;
    enum amber_client_api api;
    const char* policy_ids[MAX_POLICIES];
    size_t n_policy_ids;
    struct attest_identity id;
};

static int hex32(const char* opt, const char* v, uint8_t out[32]) {
    if (strlen(v) != 64 || hex_decode(v, 64, out, 32) != 32)
        return cli_usage_error(ME, "%s: expected 64 hex digits", opt);
    return 0;
}

static int u16_opt(const char* opt, const char* v, uint16_t* out) {
    int64_t n;
    if (parse_i64(v, 10, &n) < 0 || n < 0 || n > 65535)
        return cli_usage_error(ME, "%s '%s' is not 0 to 65535", opt, v);
    *out = (uint16_t)n;
    return 0;
}

/* 0, 1 after --help, or CLI_EXIT_USAGE */
static int parse_opts(int argc, char** argv, struct opts* o) {
    *o = (struct opts){.url = getenv("MOAT_AMBER_URL"), .key_arg = getenv("MOAT_AMBER_API_KEY")};
    int c, r = 0;
    uint8_t uuid[16];
    while ((c = getopt_long(argc, argv, "h", g_opts, NULL)) != -1) {
        switch (c) {
            case O_URL:
                o->url = optarg;
                break;
            case O_IP:
                o->ip = optarg;
                break;
            case O_KEY:
                o->key_arg = optarg;
                break;
            case O_CA:
                o->cacerts = optarg;
                break;
            case O_API:
                o->api_set = true;
                if (!strcmp(optarg, "beta"))
                    o->api = AMBER_CLIENT_BETA;
                else if (!strcmp(optarg, "v1"))
                    o->api = AMBER_CLIENT_V1;
                else if (!strcmp(optarg, "v2"))
                    o->api = AMBER_CLIENT_V2;
                else
                    return cli_usage_error(ME, "--api '%s' is not beta, v1 or v2", optarg);
                break;
            case O_RUNTIME:
                o->runtime_arg = optarg;
                break;
            case O_POLICY:
                if (moat_uuid_parse(optarg, uuid, NULL) < 0)
                    return cli_usage_error(ME, "--policy-id '%s' is not a UUID", optarg);
                if (o->n_policy_ids == MAX_POLICIES)
                    return cli_usage_error(ME, "at most %d --policy-id", MAX_POLICIES);
                o->policy_ids[o->n_policy_ids++] = optarg;
                break;
            case O_MUST:
                o->must_match = true;
                break;
            case O_ALG:
                if (strcmp(optarg, "PS384") != 0 && strcmp(optarg, "RS256") != 0)
                    return cli_usage_error(ME, "--alg '%s' is not PS384 or RS256", optarg);
                o->alg = optarg;
                break;
            case O_SIM:
                o->sim_dir = optarg;
                break;
            case O_MRENCLAVE:
                r = hex32("--mrenclave", optarg, o->id.mrenclave);
                break;
            case O_MRSIGNER:
                r = hex32("--mrsigner", optarg, o->id.mrsigner);
                break;
            case O_PROD:
                r = u16_opt("--isvprodid", optarg, &o->id.isvprodid);
                break;
            case O_SVN:
                r = u16_opt("--isvsvn", optarg, &o->id.isvsvn);
                break;
            case O_DEBUG:
                o->id.debug = true;
                break;
            case O_CLAIMS:
                o->claims = true;
                break;
            case 'h':
                fputs(g_usage, stdout);
                return 1;
            default:
                return cli_usage_error(ME, "unknown option");
        }
        if (r)
            return r;
    }
    if (optind != argc)
        return cli_usage_error(ME, "unexpected argument '%s'", argv[optind]);
    if (!o->url || !*o->url)
        return cli_usage_error(ME, "give the token service: --url URL (or MOAT_AMBER_URL)");
    return 0;
}

struct quote_ctx {
    struct attest_provider* provider;
    const struct attest_identity* id;
};

static int make_quote(void* arg, const uint8_t report_data[64], uint8_t** ret, size_t* ret_len,
                      struct moat_error* err) {
    const struct quote_ctx* q = arg;
    return attest_provider_quote(q->provider, q->id, report_data, ret, ret_len, err);
}

/* The claims of a token, unverified, pretty-printed on stderr. */
static void print_claims(const char* token) {
    struct amber_jwt t = {0};
    char* text         = amber_jwt_decode(token, &t, NULL) == 0
                             ? json_dumps(t.claims, JSON_INDENT(2) | JSON_SORT_KEYS)
                             : NULL;
    if (text)
        fprintf(stderr, "claims (not verified here: moat amber verify-token does):\n%s\n", text);
    free(text);
    amber_jwt_clear(&t);
}

int cli_token(int argc, char** argv) {
    struct opts o;
    int r = parse_opts(argc, argv, &o);
    if (r)
        return r == 1 ? CLI_EXIT_OK : r;
    struct moat_error err         = {0};
    _cleanup_free_ char* key      = NULL;
    _cleanup_free_ uint8_t* rdata = NULL;
    size_t rdata_len              = 0;
    if (o.key_arg && cli_read_arg(o.key_arg, MAX_API_KEY, "API key", &key, &err) < 0)
        return cli_fail(ME, CLI_EXIT_RUNTIME, "%s", err.msg);
    if (o.runtime_arg && o.runtime_arg[0] == '@') {
        char* raw = NULL;
        if (read_file(o.runtime_arg + 1, &raw, &rdata_len, &err) < 0)
            return cli_fail(ME, CLI_EXIT_RUNTIME, "--runtime-data: %s", err.msg);
        rdata = (uint8_t*)raw;
    } else if (o.runtime_arg &&
               base64_decode_alloc(o.runtime_arg, strlen(o.runtime_arg), &rdata, &rdata_len) < 0)
        return cli_usage_error(ME, "--runtime-data: not base64 (or give @FILE)");
    if (rdata_len > MAX_RUNTIME)
        return cli_usage_error(ME, "--runtime-data: %zu bytes, at most %d", rdata_len, MAX_RUNTIME);
    struct attest_provider* provider = NULL;
    if (attest_provider_open(o.sim_dir, NULL, &provider, &err) < 0)
        return cli_fail(ME, CLI_EXIT_RUNTIME, "%s", err.msg);
    enum attest_kind kind = attest_provider_kind(provider);
    if (kind == ATTEST_NONE) {
        attest_provider_free(provider);
        return cli_fail(ME, CLI_EXIT_RUNTIME,
                        "no attestation provider: no configfs-tsm here and no simulated "
                        "platform (make one with 'moat attest init'%s)",
                        o.sim_dir ? "" : " or give --sim-dir");
    }
    fprintf(stderr, "%s: evidence from %s\n", ME, attest_provider_describe(provider));
    struct amber_endpoint ep = {.url = o.url, .ip = o.ip, .api_key = key, .cacerts = o.cacerts};
    struct quote_ctx qc      = {provider, &o.id};
    struct amber_token_request req = {
        .service           = &ep,
        .api               = o.api_set ? o.api : amber_client_api_of(o.url),
        .tdx               = kind == ATTEST_TSM,
        .runtime_data      = rdata,
        .runtime_data_len  = rdata_len,
        .policy_ids        = o.policy_ids,
        .n_policy_ids      = o.n_policy_ids,
        .policy_must_match = o.must_match,
        .signing_alg       = o.alg,
        .quote             = make_quote,
        .quote_ctx         = &qc,
    };
    _cleanup_free_ char* token = NULL;
    r                          = amber_client_token(&req, &token, &err);
    attest_provider_free(provider);
    if (key)
        OPENSSL_cleanse(key, strlen(key));
    if (r < 0)
        return cli_fail(ME, r == -EACCES || r == -EPROTO ? CLI_EXIT_INVALID : CLI_EXIT_RUNTIME,
                        "%s", err.msg);
    printf("%s\n", token);
    if (o.claims)
        print_claims(token);
    if (kind == ATTEST_SIM)
        fprintf(stderr, "%s: the quote is SIMULATED: this token proves nothing about hardware\n",
                ME);
    return CLI_EXIT_OK;
}
