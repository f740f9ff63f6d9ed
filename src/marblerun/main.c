/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-marblerun, behind `moat marblerun`: the `marblerun` CLI's commands and flags for a
 * Coordinator outside Kubernetes (docs/marblerun-cli.md; reference/marblerun.md §7). Flags may
 * stand anywhere on the line, as with MarbleRun's cobra; the command is the leading words.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../attest/verify.h"
#include "cli.h"

struct mr_command {
    const char* words; /* "manifest update apply" */
    const char* args;  /* for the usage: "<manifest.json> <IP:PORT>" */
    int nargs;         /* positional arguments after the words; -2: at least 2 */
    int (*run)(const struct mr_args* a, char** args);
    const char* summary;
};

/* §7's table, in its order */
static const struct mr_command g_commands[] = {
    {"status", "<IP:PORT>", 1, mr_cmd_status, "the Coordinator's state"},
    {"manifest set", "<manifest.json> <IP:PORT> [-r FILE]", 2, mr_cmd_manifest_set,
     "verify the Coordinator, then set its manifest"},
    {"manifest get", "<IP:PORT> [-o FILE]", 1, mr_cmd_manifest_get, "the manifest it runs"},
    {"manifest log", "<IP:PORT>", 1, mr_cmd_manifest_log, "the update log"},
    {"manifest signature", "<manifest.json>", 1, mr_cmd_manifest_signature,
     "the manifest's SHA-256 (local)"},
    {"manifest verify", "<manifest.json|HASH> <IP:PORT>", 2, mr_cmd_manifest_verify,
     "verify the Coordinator runs this manifest (and cache its root)"},
    {"manifest update apply", "<manifest.json> <IP:PORT> -c CERT -k KEY [-r FILE]", 2,
     mr_cmd_update_apply, "submit an update manifest"},
    {"manifest update acknowledge", "<manifest.json> <IP:PORT> -c CERT -k KEY", 2,
     mr_cmd_update_acknowledge, "acknowledge a pending update"},
    {"manifest update cancel", "<IP:PORT> -c CERT -k KEY", 1, mr_cmd_update_cancel,
     "cancel a pending update"},
    {"manifest update get", "<IP:PORT> [-o FILE] [--missing]", 1, mr_cmd_update_get,
     "the pending update"},
    {"certificate root", "<IP:PORT> [-o FILE]", 1, mr_cmd_certificate_root,
     "the root certificate (PEM)"},
    {"certificate intermediate", "<IP:PORT> [-o FILE]", 1, mr_cmd_certificate_intermediate,
     "the intermediate certificate (PEM)"},
    {"certificate chain", "<IP:PORT> [-o FILE]", 1, mr_cmd_certificate_chain,
     "intermediate and root (PEM)"},
    {"secret set", "<secrets.json|cert.pem> <IP:PORT> -c CERT -k KEY [--from-pem NAME]", 2,
     mr_cmd_secret_set, "set user-defined secrets"},
    {"secret get", "<NAME>... <IP:PORT> -c CERT -k KEY [-o FILE]", -2, mr_cmd_secret_get,
     "read secrets"},
    {"recover", "<recovery_secret> <IP:PORT> -k PRIVATE_KEY", 2, mr_cmd_recover,
     "recover a Coordinator whose sealed state no longer opens"},
    {"recover-with-signature", "<recovery_secret> <IP:PORT> -s SIGNATURE", 2,
     mr_cmd_recover_with_signature, "recover with a secret and a signature made offline"},
    {"recover public-key", "<IP:PORT> [-o FILE]", 1, mr_cmd_recover_public_key,
     "the recovering Coordinator's ephemeral key (PEM)"},
    {"recover encrypt-secret", "<recovery_secret> --coordinator-pub-key PEM [-k KEY] [-o FILE]", 1,
     mr_cmd_recover_encrypt_secret, "encrypt a secret for the ephemeral key (offline)"},
    {"recover sign-secret", "<recovery_secret> -k PRIVATE_KEY [-o FILE]", 1,
     mr_cmd_recover_sign_secret, "sign a secret with the recovery key (offline)"},
};

static const char g_flags[] =
    "trust (every command that talks to a Coordinator):\n"
    "  --era-config FILE         the identity the Coordinator's quote must have (MarbleRun's\n"
    "                            coordinator-era.json; default ./coordinator-era.json)\n"
    "  --unique-id HEX, --signer-id HEX, --product-id N, --security-version N\n"
    "                            the identity as flags (over the era config's)\n"
    "  --debug-coordinator       accept a debug Coordinator (era's \"Debug\": true)\n"
    "  --accepted-tcb-statuses L TCB statuses besides UpToDate (comma-separated, repeatable)\n"
    "  --accepted-advisories L   advisories accepted with SWHardeningNeeded\n"
    "  --sim-dir DIR             trust quotes of the SIMULATED platform in DIR (moat attest\n"
    "                            init; default $MOAT_SIM_DIR): proves nothing about hardware\n"
    "  --collateral FILE         dcap-qvl collateral JSON for a hardware quote\n"
    "  --trusted-root PEM        its trust anchor (default: the Intel SGX Root CA)\n"
    "  --nonce STRING            the nonce (default: 32 random bytes)\n"
    "  --save-sgx-quote FILE     keep the Coordinator's quote\n"
    "  --coordinator-cert FILE   the root cache (default\n"
    "                            $XDG_CONFIG_HOME/marblerun/coordinator-cert.pem)\n"
    "  -i, --insecure            skip the quote verification and the cache check (INSECURE;\n"
    "                            needed for a Coordinator in simulation mode)\n"
    "other flags:\n"
    "  -c, --cert FILE, -k, --key FILE   client certificate and key (PEM); recover: -k is the\n"
    "                            recovery private key\n"
    "  -o, --output FILE         where to write (certificate, manifest get, secret get)\n"
    "  -r, --recoverydata FILE   where to write recovery secrets (manifest set, update)\n"
    "  --from-pem NAME           secret set: the file is a PEM certificate and key for NAME\n"
    "  -s, --signature FILE      recover-with-signature: the secret's signature\n"
    "  --coordinator-pub-key F   recover encrypt-secret: the ephemeral key (recover public-key)\n"
    "  --missing                 manifest update get: the users who have not acknowledged\n"
    "  --json                    results as JSON on standard output\n"
    "  -h, --help                this help\n"
    "\n"
    "exit codes: 0 success, 1 failure (also a refused verification), 2 usage error.\n";

static void usage(FILE* out) {
    fputs(
        "usage: moat marblerun COMMAND ARGS [FLAGS]\n\n"
        "A client for a MarbleRun Coordinator with the marblerun CLI's commands and flags\n"
        "(docs/marblerun-cli.md). It verifies the Coordinator's quote before trusting it.\n\n"
        "commands:\n",
        out);
    for (size_t i = 0; i < ARRAY_SIZE(g_commands); i++)
        fprintf(out, "  %s %s\n      %s\n", g_commands[i].words, g_commands[i].args,
                g_commands[i].summary);
    fprintf(out, "\n%s", g_flags);
}

PRINTF_FMT(1, 2) static int usage_error(const char* fmt, ...) {
    va_list ap;
    fputs("moat marblerun: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'moat marblerun --help' for more information.\n", stderr);
    return MOAT_EXIT_USAGE;
}

enum {
    OPT_JSON = 256,
    OPT_COORDINATOR_CERT,
    OPT_ERA_CONFIG,
    OPT_UNIQUE_ID,
    OPT_SIGNER_ID,
    OPT_PRODUCT_ID,
    OPT_SECURITY_VERSION,
    OPT_DEBUG,
    OPT_ACCEPTED_TCB,
    OPT_ACCEPTED_ADVISORIES,
    OPT_NONCE,
    OPT_SAVE_QUOTE,
    OPT_SIM_DIR,
    OPT_COLLATERAL,
    OPT_TRUSTED_ROOT,
    OPT_FROM_PEM,
    OPT_MISSING,
    OPT_COORDINATOR_PUB_KEY,
};

static const struct option g_options[] = {
    {"cert", required_argument, NULL, 'c'},
    {"key", required_argument, NULL, 'k'},
    {"insecure", no_argument, NULL, 'i'},
    {"output", required_argument, NULL, 'o'},
    {"recoverydata", required_argument, NULL, 'r'},
    {"signature", required_argument, NULL, 's'},
    {"coordinator-pub-key", required_argument, NULL, OPT_COORDINATOR_PUB_KEY},
    {"help", no_argument, NULL, 'h'},
    {"json", no_argument, NULL, OPT_JSON},
    {"coordinator-cert", required_argument, NULL, OPT_COORDINATOR_CERT},
    {"era-config", required_argument, NULL, OPT_ERA_CONFIG},
    {"unique-id", required_argument, NULL, OPT_UNIQUE_ID},
    {"signer-id", required_argument, NULL, OPT_SIGNER_ID},
    {"product-id", required_argument, NULL, OPT_PRODUCT_ID},
    {"security-version", required_argument, NULL, OPT_SECURITY_VERSION},
    {"debug-coordinator", no_argument, NULL, OPT_DEBUG},
    {"accepted-tcb-statuses", required_argument, NULL, OPT_ACCEPTED_TCB},
    {"accepted-advisories", required_argument, NULL, OPT_ACCEPTED_ADVISORIES},
    {"nonce", required_argument, NULL, OPT_NONCE},
    {"save-sgx-quote", required_argument, NULL, OPT_SAVE_QUOTE},
    {"sim-dir", required_argument, NULL, OPT_SIM_DIR},
    {"collateral", required_argument, NULL, OPT_COLLATERAL},
    {"trusted-root", required_argument, NULL, OPT_TRUSTED_ROOT},
    {"from-pem", required_argument, NULL, OPT_FROM_PEM},
    {"missing", no_argument, NULL, OPT_MISSING},
    {NULL, 0, NULL, 0},
};

/* The flags with a string value, and where each is kept. */
#define ARG(f) offsetof(struct mr_args, f)
static const struct {
    int opt;
    size_t field;
} g_string_flags[] = {
    {'c', ARG(cert)},
    {'k', ARG(key)},
    {'o', ARG(output)},
    {'r', ARG(recovery_data)},
    {'s', ARG(signature)},
    {OPT_COORDINATOR_PUB_KEY, ARG(coordinator_pub_key)},
    {OPT_COORDINATOR_CERT, ARG(coordinator_cert)},
    {OPT_ERA_CONFIG, ARG(era_config)},
    {OPT_UNIQUE_ID, ARG(unique_id)},
    {OPT_SIGNER_ID, ARG(signer_id)},
    {OPT_PRODUCT_ID, ARG(product_id)},
    {OPT_SECURITY_VERSION, ARG(security_version)},
    {OPT_NONCE, ARG(nonce)},
    {OPT_SAVE_QUOTE, ARG(save_sgx_quote)},
    {OPT_SIM_DIR, ARG(sim_dir)},
    {OPT_COLLATERAL, ARG(collateral)},
    {OPT_TRUSTED_ROOT, ARG(trusted_root)},
    {OPT_FROM_PEM, ARG(from_pem)},
};

static const char** string_flag(struct mr_args* a, int c) {
    for (size_t i = 0; i < ARRAY_SIZE(g_string_flags); i++)
        if (g_string_flags[i].opt == c)
            return (const char**)((char*)a + g_string_flags[i].field);
    return NULL;
}

/* --accepted-advisories A,B (repeatable) */
static void add_advisories(struct mr_args* a, const char* list) {
    for (const char* p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n) {
            a->advisories = xrealloc(a->advisories, (a->n_advisories + 1) * sizeof(char*));
            a->advisories[a->n_advisories++] = xstrndup(p, n);
        }
        p += n + (p[n] == ',');
    }
}

/* 0, 1 (--help printed) or a usage error. */
static int parse_flag(struct mr_args* a, int c) {
    const char** slot     = string_flag(a, c);
    struct moat_error err = {0};
    uint32_t mask;
    if (slot) {
        *slot = optarg;
        return 0;
    }
    switch (c) {
        case 'h':
            usage(stdout);
            return 1;
        case 'i':
            a->insecure = true;
            return 0;
        case OPT_JSON:
            a->json = true;
            return 0;
        case OPT_DEBUG:
            a->allow_debug = true;
            return 0;
        case OPT_MISSING:
            a->missing = true;
            return 0;
        case OPT_ACCEPTED_ADVISORIES:
            add_advisories(a, optarg);
            return 0;
        case OPT_ACCEPTED_TCB:
            if (attest_accept_parse(optarg, &mask, &err) < 0)
                return usage_error("--accepted-tcb-statuses: %s", err.msg);
            a->accepted_tcb |= mask;
            return 0;
        default:
            return usage_error("%s", "invalid option");
    }
}

/* The command whose words are the most leading positional arguments. */
static const struct mr_command* find_command(int npos, char** pos, int* ret_words) {
    const struct mr_command* best = NULL;
    int best_words                = 0;
    for (size_t i = 0; i < ARRAY_SIZE(g_commands); i++) {
        const char* w = g_commands[i].words;
        int n         = 0;
        bool ok       = true;
        while (ok && *w) {
            size_t len = strcspn(w, " ");
            ok         = n < npos && strlen(pos[n]) == len && strncmp(pos[n], w, len) == 0;
            w += len + (w[len] == ' ');
            n++;
        }
        if (ok && n > best_words) {
            best       = &g_commands[i];
            best_words = n;
        }
    }
    *ret_words = best_words;
    return best;
}

static void args_clear(struct mr_args* a) {
    for (size_t i = 0; i < a->n_advisories; i++)
        free(a->advisories[i]);
    free(a->advisories);
    free(a->default_cache);
}

static int run(int argc, char** argv) {
    struct mr_args a _cleanup_(args_clear) = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:k:io:r:s:h", g_options, NULL)) != -1) {
        if (c == '?')
            return usage_error("unknown flag or missing value: '%s'", argv[optind - 1]);
        int r = parse_flag(&a, c);
        if (r)
            return r == 1 ? MOAT_EXIT_OK : r;
    }
    int npos   = argc - optind;
    char** pos = argv + optind;
    if (npos == 0) {
        usage(stderr);
        return MOAT_EXIT_USAGE;
    }
    int words                    = 0;
    const struct mr_command* cmd = find_command(npos, pos, &words);
    if (!cmd)
        return usage_error("unknown command '%s'", pos[0]);
    int n = npos - words;
    if ((cmd->nargs >= 0 && n != cmd->nargs) || (cmd->nargs == -2 && n < 2)) {
        fprintf(stderr,
                "moat marblerun %s: wrong number of arguments: usage: moat marblerun %s %s\n",
                cmd->words, cmd->words, cmd->args);
        return MOAT_EXIT_USAGE;
    }
    if (!a.coordinator_cert)
        a.coordinator_cert = a.default_cache = mr_cache_default_path();
    if (!a.sim_dir && getenv("MOAT_SIM_DIR") && *getenv("MOAT_SIM_DIR"))
        a.sim_dir = getenv("MOAT_SIM_DIR");
    if (a.insecure)
        fputs(
            "moat marblerun: warning: --insecure: the Coordinator's quote is not verified and a "
            "changed root certificate is accepted\n",
            stderr);
    /* the positional arguments after the words, NULL-terminated (secret get counts them) */
    return cmd->run(&a, pos + words);
}

int main(int argc, char** argv) {
    log_set_prefix("moat marblerun");
    return run(argc, argv);
}
