/* SPDX-License-Identifier: Apache-2.0 */
/* `moat quote <view|verify>`: DCAP quotes (reference/attestation.md §1), as
 * gramine-sgx-quote-view, for SGX and TDX, with or without MarbleRun's OpenEnclave header, and
 * their verification in Intel QVL's order (§2.2, src/attest/verify.h). A table of subcommands:
 * a new one is a `struct moat_command` named "quote <sub>" and one line in g_quote_commands. */
#include <getopt.h>
#include <jansson.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "../attest/verify.h" /* not src/sandbox/verify.h, which comes first on the path */
#include "collateral.h"
#include "commands.h"
#include "common.h"
#include "pccs.h"
#include "pck.h"
#include "quote.h"
#include "tcb.h"

extern const struct moat_command cmd_quote; /* main.c's table */

static int quote_run(int argc, char** argv);
static int quote_view_run(int argc, char** argv);
static int quote_verify_run(int argc, char** argv);

static const struct moat_command cmd_quote_view = {
    .name    = "quote view",
    .run     = quote_view_run,
    .summary = "show every field of a quote",
    .usage =
        "usage: moat quote view [--json] FILE\n"
        "\n"
        "Prints the header, the report body (SGX enclave or TD report), the QE report and the\n"
        "sizes and offsets of the signature data of a DCAP quote (version 3, 4 or 5; FILE may\n"
        "be '-' for standard input). A MarbleRun/OpenEnclave 16-byte header is accepted and\n"
        "removed. Nothing is verified: use the fields, not the fact that they print.\n"
        "\n"
        "options:\n"
        "  --json       every field as one JSON object (byte fields as hex)\n"
        "  -h, --help   show this help\n"
        "\n"
        "exit codes: 0 ok, 1 unreadable file, 2 usage error or not a valid quote.\n",
};

static const struct moat_command cmd_quote_verify = {
    .name    = "quote verify",
    .run     = quote_verify_run,
    .summary = "verify a quote: signatures, PCK chain, collateral, TCB level",
    .usage =
        "usage: moat quote verify FILE [--collateral FILE.json] [--tcb-info F] [--qe-identity F]\n"
        "           [--pck-crl F] [--root-crl F] [--tcb-info-chain F] [--qe-identity-chain F]\n"
        "           [--pck-crl-chain F] [--pck-chain F] [--trusted-root PEM] [--at TIME]\n"
        "           [--accept STATUS,...] [--allow-debug] [--allow-stale-crl] [--json]\n"
        "\n"
        "Verifies a DCAP quote (v3, v4, v5; SGX or TDX) in Intel QVL's order: the PCK certificate\n"
        "chain to the trust anchor with the CRLs, the TCB info and QE identity (signatures,\n"
        "dates, issuer chains), the TDX module identity, the QE report signature, the QE\n"
        "report-data binding of the attestation key, the QE identity, the quote signature, the\n"
        "TCB level, and the debug flag. Prints one line per check, the measurements and the\n"
        "verdict. Without collateral only the signatures, the binding and the PCK chain (without\n"
        "CRLs) are checked and the TCB stays unverified: such a quote is never accepted.\n"
        "A SIMULATED quote (moat attest init) says so: it proves nothing about hardware.\n"
        "\n"
        "options:\n"
        "  --collateral F         dcap-qvl QuoteCollateralV3 JSON (all of the pieces below)\n"
        "  --tcb-info F           Intel PCS {\"tcbInfo\": ..., \"signature\": ...}\n"
        "  --qe-identity F        Intel PCS {\"enclaveIdentity\": ..., \"signature\": ...}\n"
        "  --pck-crl F            PCK CRL (DER or PEM)\n"
        "  --root-crl F           Intel SGX Root CA CRL (DER or PEM)\n"
        "  --tcb-info-chain F     TCB info issuer chain (PEM; the root may be left out)\n"
        "  --qe-identity-chain F  QE identity issuer chain (default: the TCB info's)\n"
        "  --pck-crl-chain F      PCK CRL issuer chain (optional)\n"
        "  --pccs URL             fetch the collateral for the quote's FMSPC and PCK CA from a\n"
        "                         PCCS or Intel PCS (URL = the service root, e.g.\n"
        "                         https://api.trustedservices.intel.com); kept on disk\n"
        "  --pccs-cache DIR       where (default $XDG_CACHE_HOME/moat/pccs, else\n"
        "                         ~/.cache/moat/pccs); a day old responses are asked again\n"
        "  --pck-chain F          the PCK certificate (chain) when the quote does not carry it\n"
        "                         (certification data type 1-4); may be given twice\n"
        "                         (these override the pieces of --collateral)\n"
        "  --trusted-root PEM     trust anchor (default: the Intel SGX Root CA, built in)\n"
        "  --at TIME              verification time: 2025-06-20T00:00:00Z or Unix seconds\n"
        "                         (default: now)\n"
        "  --accept LIST          accepted TCB statuses (default UpToDate), e.g.\n"
        "                         UpToDate,SWHardeningNeeded,ConfigurationAndSWHardeningNeeded\n"
        "  --allow-debug          accept debug enclaves / TDs (INSECURE: their memory is open)\n"
        "  --allow-stale-crl      accept CRLs past their nextUpdate (reported as stale)\n"
        "  --json                 the verdict, measurements and every check as one JSON object\n"
        "  --repeat N             benchmarking aid: verify N times in this process, sharing a\n"
        "                         cache of checked collateral, PCK chain and QE report, and\n"
        "                         print verifications per second on stderr\n"
        "  -h, --help             show this help\n"
        "\n"
        "exit codes: 0 accepted, 1 rejected (the first failed check and the status say why),\n"
        "2 usage error, unreadable or malformed quote or collateral.\n",
};

/* Subcommands, in the order the usage lists them. */
static const struct moat_command* const g_quote_commands[] = {
    &cmd_quote_view,
    &cmd_quote_verify,
};

const struct moat_command cmd_quote = {
    .name    = "quote",
    .run     = quote_run,
    .summary = "show and verify SGX and TDX DCAP quotes",
    .usage =
        "usage: moat quote view [--json] FILE\n"
        "       moat quote verify FILE [collateral options] [--trusted-root PEM] [--at TIME]\n"
        "                         [--accept STATUS,...] [--allow-debug] [--json]\n"
        "\n"
        "Run 'moat quote SUBCOMMAND --help' for details.\n",
};

static int quote_run(int argc, char** argv) {
    if (argc < 2) {
        command_print_usage(&cmd_quote, stderr);
        return MOAT_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        command_print_usage(&cmd_quote, stdout);
        return MOAT_EXIT_OK;
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_quote_commands); i++) {
        const struct moat_command* sub = g_quote_commands[i];
        if (strcmp(sub->name + strlen("quote "), argv[1]) == 0)
            return sub->run(argc - 1, argv + 1);
    }
    return command_usage_error(&cmd_quote, "unknown subcommand '%s'", argv[1]);
}

/* Reads and parses path; an exit code on failure (1: unreadable, 2: not a quote). `buf` owns
 * the bytes the quote points into. */
static int load_quote(const char* path, char** buf, struct quote* ret) {
    struct moat_error err = {0};
    size_t len;
    if (read_file(path, buf, &len, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    if (quote_parse_input((const uint8_t*)*buf, len, ret, &err) < 0) {
        log_error("%s: %s", path, err.msg);
        return MOAT_EXIT_USAGE;
    }
    return MOAT_EXIT_OK;
}

static int print_json(const struct quote* q) {
    json_t* o                 = quote_to_json(q);
    _cleanup_free_ char* text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) {
        log_error("out of memory");
        return MOAT_EXIT_RUNTIME;
    }
    puts(text);
    return MOAT_EXIT_OK;
}

static int quote_view_run(int argc, char** argv) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    optind    = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
        switch (c) {
            case 'j':
                json = true;
                break;
            case 'h':
                command_print_usage(&cmd_quote_view, stdout);
                return MOAT_EXIT_OK;
            default:
                return command_usage_error(&cmd_quote_view, "invalid option");
        }
    }
    if (argc - optind != 1)
        return command_usage_error(&cmd_quote_view, "takes one FILE");
    const char* path         = argv[optind];
    _cleanup_free_ char* buf = NULL;
    struct quote q;
    int r = load_quote(path, &buf, &q);
    if (r != MOAT_EXIT_OK)
        return r;
    if (json)
        return print_json(&q);
    struct strbuf out = STRBUF_INIT;
    printf("%-22s%s\n", "file:", path);
    quote_format_text(&q, &out);
    fputs(out.buf, stdout);
    strbuf_free(&out);
    return MOAT_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* moat quote verify                                                                          */

/* The collateral pieces that have an option of their own (Intel PCS files, §2.4). */
enum piece_kind { PIECE_SIGNED_JSON, PIECE_CRL, PIECE_CHAIN };

struct piece {
    const char* option;
    enum piece_kind kind;
    const char* member; /* PIECE_SIGNED_JSON: "tcbInfo" / "enclaveIdentity" */
    size_t field;       /* offsetof the struct collateral member (the JSON text for signed) */
    size_t len_field, sig_field;
    bool optional;
};

enum {
    PIECE_TCB_INFO,
    PIECE_QE_IDENTITY,
    PIECE_PCK_CRL,
    PIECE_ROOT_CRL,
    PIECE_TCB_CHAIN,
    PIECE_QE_CHAIN,
    PIECE_PCK_CRL_CHAIN,
    PIECE_COUNT,
};

#define COLL(f) offsetof(struct collateral, f)
static const struct piece g_pieces[PIECE_COUNT] = {
    [PIECE_TCB_INFO]    = {"tcb-info", PIECE_SIGNED_JSON, "tcbInfo", COLL(tcb_info),
                           COLL(tcb_info_len), COLL(tcb_info_signature), false},
    [PIECE_QE_IDENTITY] = {"qe-identity", PIECE_SIGNED_JSON, "enclaveIdentity", COLL(qe_identity),
                           COLL(qe_identity_len), COLL(qe_identity_signature), false},
    [PIECE_PCK_CRL]     = {"pck-crl", PIECE_CRL, NULL, COLL(pck_crl), 0, 0, false},
    [PIECE_ROOT_CRL]    = {"root-crl", PIECE_CRL, NULL, COLL(root_ca_crl), 0, 0, false},
    [PIECE_TCB_CHAIN]   = {"tcb-info-chain", PIECE_CHAIN, NULL, COLL(tcb_info_issuer_chain), 0, 0,
                           false},
    [PIECE_QE_CHAIN] = {"qe-identity-chain", PIECE_CHAIN, NULL, COLL(qe_identity_issuer_chain), 0,
                        0, true},
    [PIECE_PCK_CRL_CHAIN] = {"pck-crl-chain", PIECE_CHAIN, NULL, COLL(pck_crl_issuer_chain), 0, 0,
                             true},
};

#define MAX_PCK_CHAIN_FILES 4

struct verify_args {
    const char* quote;
    const char* collateral;
    const char* pieces[PIECE_COUNT];
    const char* pck_chain[MAX_PCK_CHAIN_FILES];
    size_t n_pck_chain;
    const char* trusted_root;
    struct attest_verify_opts opts;
    bool at_set;
    bool json;
    unsigned long repeat;
    const char* pccs;       /* --pccs URL */
    const char* pccs_cache; /* --pccs-cache DIR */
};

/* The trust anchor (X509 and its PEM, to complete issuer chains that leave the root out). */
struct anchor {
    X509* cert;
    char* pem;
};

static void anchor_clear(struct anchor* a) {
    X509_free(a->cert);
    free(a->pem);
}

static int load_anchor(const char* path, struct anchor* ret, struct moat_error* err) {
    if (!path) {
        ret->pem = xstrdup(PCK_INTEL_SGX_ROOT_CA_PEM);
        return pck_intel_root_ca(&ret->cert, err);
    }
    size_t len;
    int r = read_file(path, &ret->pem, &len, err);
    if (r == 0 && (r = x509_parse(ret->pem, len, &ret->cert, err)) < 0)
        moat_error_prefix(err, "--trusted-root '%s'", path);
    return r;
}

/* A PEM chain from files; when it does not end in a self-signed root, with the anchor added. */
static int load_chain(const char* const* paths, size_t n, const struct anchor* a,
                      struct cert_chain** ret, struct moat_error* err) {
    _cleanup_strbuf_ struct strbuf pem = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char* buf = NULL;
        size_t len;
        int r = read_file(paths[i], &buf, &len, err);
        if (r < 0)
            return r;
        strbuf_append(&pem, buf, len);
        strbuf_putc(&pem, '\n');
    }
    struct moat_error first = {0};
    if (cert_chain_parse_pem(pem.buf, pem.len, ret, &first) == 0)
        return 0;
    strbuf_puts(&pem, a->pem);
    if (cert_chain_parse_pem(pem.buf, pem.len, ret, err) == 0)
        return 0;
    *err = first;
    return moat_error_prefix(err, "'%s'", paths[0]);
}

static int load_piece(struct collateral* c, const struct piece* p, const char* path,
                      const struct anchor* a, struct moat_error* err) {
    char* base = (char*)c;
    size_t len;
    int r;
    if (p->kind == PIECE_CHAIN) {
        struct cert_chain** slot = (struct cert_chain**)(base + p->field);
        cert_chain_free(*slot);
        *slot = NULL;
        return load_chain(&path, 1, a, slot, err);
    }
    _cleanup_free_ char* text = NULL;
    if ((r = read_file(path, &text, &len, err)) < 0)
        return r;
    if (p->kind == PIECE_CRL) {
        X509_CRL** slot = (X509_CRL**)(base + p->field);
        X509_CRL_free(*slot);
        *slot = NULL;
        r     = x509_crl_parse(text, len, slot, err);
    } else {
        char** slot = (char**)(base + p->field);
        free(*slot);
        *slot = NULL;
        r     = pcs_signed_json_split(text, len, p->member, slot, (size_t*)(base + p->len_field),
                                      (uint8_t*)(base + p->sig_field), err);
    }
    return r < 0 ? moat_error_prefix(err, "--%s '%s'", p->option, path) : 0;
}

/* --collateral, then the single pieces over it. *ret stays NULL without any. */
static int load_collateral(const struct verify_args* a, const struct anchor* anchor,
                           struct collateral** ret, struct moat_error* err) {
    struct verify_args args = *a;
    bool any                = false;
    for (size_t i = 0; i < PIECE_COUNT; i++)
        any |= args.pieces[i] != NULL;
    if (!args.collateral && !any)
        return 0;
    if (!args.pieces[PIECE_QE_CHAIN]) /* Intel signs both with the TCB signing key */
        args.pieces[PIECE_QE_CHAIN] = args.pieces[PIECE_TCB_CHAIN];
    _cleanup_collateral_ struct collateral* c = NULL;
    int r = args.collateral ? collateral_load_qvl_json(args.collateral, &c, err) : 0;
    if (r < 0)
        return r;
    if (!c) {
        for (size_t i = 0; i < PIECE_COUNT; i++)
            if (!args.pieces[i] && !g_pieces[i].optional)
                return moat_error_set(err, -EINVAL, "--%s is missing (or give --collateral)",
                                      g_pieces[i].option);
        c = xcalloc(1, sizeof(*c));
    }
    for (size_t i = 0; i < PIECE_COUNT; i++)
        if (args.pieces[i] && (r = load_piece(c, &g_pieces[i], args.pieces[i], anchor, err)) < 0)
            return r;
    *ret = TAKE_PTR(c);
    return 0;
}

/* ISO 8601 "2025-06-20T00:00:00Z" or Unix seconds. */
static int parse_time(const char* s, time_t* ret) {
    int64_t v;
    if (parse_i64(s, 10, &v) == 0 && v >= 0) {
        *ret = (time_t)v;
        return 0;
    }
    return iso8601_parse(s, ret);
}

enum {
    OPT_COLLATERAL = 256,
    OPT_PIECE, /* + enum piece index */
    OPT_PCK_CHAIN = OPT_PIECE + PIECE_COUNT,
    OPT_TRUSTED_ROOT,
    OPT_AT,
    OPT_ACCEPT,
    OPT_ALLOW_DEBUG,
    OPT_ALLOW_STALE_CRL,
    OPT_JSON,
    OPT_REPEAT,
    OPT_PCCS,
    OPT_PCCS_CACHE,
};

static const struct option g_verify_options[] = {
    {"collateral", required_argument, NULL, OPT_COLLATERAL},
    {"tcb-info", required_argument, NULL, OPT_PIECE + PIECE_TCB_INFO},
    {"qe-identity", required_argument, NULL, OPT_PIECE + PIECE_QE_IDENTITY},
    {"pck-crl", required_argument, NULL, OPT_PIECE + PIECE_PCK_CRL},
    {"root-crl", required_argument, NULL, OPT_PIECE + PIECE_ROOT_CRL},
    {"tcb-info-chain", required_argument, NULL, OPT_PIECE + PIECE_TCB_CHAIN},
    {"qe-identity-chain", required_argument, NULL, OPT_PIECE + PIECE_QE_CHAIN},
    {"pck-crl-chain", required_argument, NULL, OPT_PIECE + PIECE_PCK_CRL_CHAIN},
    {"pck-chain", required_argument, NULL, OPT_PCK_CHAIN},
    {"trusted-root", required_argument, NULL, OPT_TRUSTED_ROOT},
    {"at", required_argument, NULL, OPT_AT},
    {"accept", required_argument, NULL, OPT_ACCEPT},
    {"allow-debug", no_argument, NULL, OPT_ALLOW_DEBUG},
    {"allow-stale-crl", no_argument, NULL, OPT_ALLOW_STALE_CRL},
    {"json", no_argument, NULL, OPT_JSON},
    {"repeat", required_argument, NULL, OPT_REPEAT},
    {"pccs", required_argument, NULL, OPT_PCCS},
    {"pccs-cache", required_argument, NULL, OPT_PCCS_CACHE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One option with an argument; MOAT_EXIT_OK or a usage error. */
static int verify_option(int c, const char* arg, struct verify_args* a) {
    struct moat_error err = {0};
    uint64_t n;
    if (c >= OPT_PIECE && c < OPT_PIECE + PIECE_COUNT) {
        a->pieces[c - OPT_PIECE] = arg;
        return MOAT_EXIT_OK;
    }
    switch (c) {
        case OPT_COLLATERAL:
            a->collateral = arg;
            return MOAT_EXIT_OK;
        case OPT_PCK_CHAIN:
            if (a->n_pck_chain == MAX_PCK_CHAIN_FILES)
                return command_usage_error(&cmd_quote_verify, "--pck-chain: at most %d files",
                                           MAX_PCK_CHAIN_FILES);
            a->pck_chain[a->n_pck_chain++] = arg;
            return MOAT_EXIT_OK;
        case OPT_TRUSTED_ROOT:
            a->trusted_root = arg;
            return MOAT_EXIT_OK;
        case OPT_AT:
            a->at_set = true;
            if (parse_time(arg, &a->opts.at) < 0)
                return command_usage_error(&cmd_quote_verify,
                                           "--at: '%s' is neither YYYY-MM-DDTHH:MM:SSZ nor Unix "
                                           "seconds",
                                           arg);
            return MOAT_EXIT_OK;
        case OPT_ACCEPT:
            if (attest_accept_parse(arg, &a->opts.accepted, &err) < 0)
                return command_usage_error(&cmd_quote_verify, "--accept: %s", err.msg);
            return MOAT_EXIT_OK;
        case OPT_PCCS:
            a->pccs = arg;
            return MOAT_EXIT_OK;
        case OPT_PCCS_CACHE:
            a->pccs_cache = arg;
            return MOAT_EXIT_OK;
        case OPT_REPEAT:
            if (parse_u64(arg, 10, &n) < 0 || n == 0 || n > 100000000)
                return command_usage_error(
                    &cmd_quote_verify, "--repeat: '%s' is not a count from 1 to 100000000", arg);
            a->repeat = (unsigned long)n;
            return MOAT_EXIT_OK;
        default:
            return command_usage_error(&cmd_quote_verify, "invalid option");
    }
}

static int verify_parse_args(int argc, char** argv, struct verify_args* a) {
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", g_verify_options, NULL)) != -1) {
        int r = MOAT_EXIT_OK;
        if (c == 'h') {
            command_print_usage(&cmd_quote_verify, stdout);
            return -1;
        } else if (c == OPT_ALLOW_DEBUG) {
            a->opts.allow_debug = true;
        } else if (c == OPT_ALLOW_STALE_CRL) {
            a->opts.allow_stale_crl = true;
        } else if (c == OPT_JSON) {
            a->json = true;
        } else {
            r = verify_option(c, optarg, a);
        }
        if (r != MOAT_EXIT_OK)
            return r;
    }
    if (argc - optind != 1)
        return command_usage_error(&cmd_quote_verify, "takes one FILE");
    a->quote = argv[optind];
    if (!a->at_set)
        a->opts.at = time(NULL);
    return MOAT_EXIT_OK;
}

static int print_verdict(const struct verify_args* a, const struct attest_verify_result* res) {
    if (a->json) {
        json_t* o                 = attest_verify_result_to_json(res);
        _cleanup_free_ char* text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text) {
            log_error("out of memory");
            return MOAT_EXIT_USAGE;
        }
        puts(text);
    } else {
        struct strbuf out = STRBUF_INIT;
        printf("%-20s%s\n", "file:", a->quote);
        attest_verify_format_text(res, &out);
        fputs(out.buf, stdout);
        strbuf_free(&out);
    }
    if (res->simulated)
        fprintf(stderr, "moat: warning: %s: SIMULATED quote: proves nothing about hardware\n",
                a->quote);
    if (!res->accepted)
        log_error("%s: rejected: %s", a->quote, res->reason);
    return res->accepted ? MOAT_EXIT_OK : MOAT_EXIT_RUNTIME;
}

/* Verifies a->repeat times (benchmark) and reports the rate on stderr; *res holds the last. */
static int verify_repeat(const struct verify_args* a, const uint8_t* quote, size_t len,
                         const struct collateral* c, struct attest_verify_result* res,
                         struct moat_error* err) {
    /* repeated, the verifications share a cache, as a verifier seeing many quotes does:
     * the collateral, the PCK chain and the QE report are checked by the first */
    struct attest_verify_opts opts = a->opts;
    opts.cache                     = a->repeat > 1 ? attest_verify_cache_new() : NULL;
    uint64_t t0                    = time_now_ns();
    int r                          = 0;
    for (unsigned long i = 0; i < a->repeat && r == 0; i++) {
        attest_verify_result_clear(res);
        r = attest_verify(quote, len, c, &opts, res, err);
    }
    double secs = (double)(time_now_ns() - t0) / 1e9;
    attest_verify_cache_free(opts.cache);
    if (r == 0 && a->repeat > 1)
        fprintf(stderr, "moat quote verify: %lu verifications in %.3f s: %.0f verifications/s\n",
                a->repeat, secs, (double)a->repeat / secs);
    return r;
}

/* --pccs: the collateral for the quote's platform (FMSPC and PCK CA from its PCK certificate,
 * SGX or TDX from its header). */
static int pccs_for_quote(const struct verify_args* a, const uint8_t* buf, size_t len,
                          const struct cert_chain* given, struct collateral** ret,
                          struct moat_error* err) {
    struct pccs_request req = {.url = a->pccs, .cache_dir = a->pccs_cache};
    int r                   = pccs_request_for_quote(buf, len, given, &req, err);
    if (r < 0)
        return moat_error_prefix(err, "--pccs: %s", a->quote);
    return pccs_collateral(&req, ret, err);
}

static int quote_verify_run(int argc, char** argv) {
    struct verify_args a = {.repeat = 1};
    int r                = verify_parse_args(argc, argv, &a);
    if (r != MOAT_EXIT_OK)
        return r < 0 ? MOAT_EXIT_OK : r;
    if (a.opts.allow_debug)
        fputs("moat: warning: --allow-debug: debug enclaves and TDs are accepted (insecure)\n",
              stderr);
    if (a.opts.allow_stale_crl)
        fputs("moat: warning: --allow-stale-crl: CRLs past their nextUpdate are accepted\n",
              stderr);
    struct moat_error err                        = {0};
    struct anchor anchor _cleanup_(anchor_clear) = {0};
    _cleanup_collateral_ struct collateral* c    = NULL;
    _cleanup_cert_chain_ struct cert_chain* pck  = NULL;
    _cleanup_free_ char* buf                     = NULL;
    size_t len                                   = 0;
    r                                            = load_anchor(a.trusted_root, &anchor, &err);
    r                                            = r ?: read_file(a.quote, &buf, &len, &err);
    r                                            = r ?: load_collateral(&a, &anchor, &c, &err);
    if (r == 0 && a.n_pck_chain)
        r = load_chain(a.pck_chain, a.n_pck_chain, &anchor, &pck, &err);
    if (r == 0 && a.pccs && c)
        return command_usage_error(&cmd_quote_verify,
                                   "--pccs fetches the collateral: give it or the files, not both");
    if (r < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_USAGE;
    }
    if (a.pccs && pccs_for_quote(&a, (const uint8_t*)buf, len, pck, &c, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    a.opts.anchor                                                         = anchor.cert;
    a.opts.pck_chain                                                      = pck;
    struct attest_verify_result res _cleanup_(attest_verify_result_clear) = {0};
    if (verify_repeat(&a, (const uint8_t*)buf, len, c, &res, &err) < 0) {
        log_error("%s: %s", a.quote, err.msg);
        return MOAT_EXIT_USAGE;
    }
    return print_verdict(&a, &res);
}
