/* SPDX-License-Identifier: Apache-2.0 */
/* `moat attest init`: the simulated SGX platform (src/attest/sim.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "provider.h"
#include "sim.h"

static int attest_run(int argc, char** argv);

const struct moat_command cmd_attest = {
    .name    = "attest",
    .run     = attest_run,
    .summary = "create the simulated SGX platform that signs simulated quotes",
    .usage =
        "usage: moat attest init [--dir DIR] [--days N] [--force]\n"
        "\n"
        "Creates a SIMULATED SGX platform: a private PKI shaped like Intel's (a root CA, a PCK\n"
        "CA, a PCK certificate with Intel's SGX extension, a TCB-signing certificate, CRLs) and\n"
        "the TCB info and QE identity that describe it, signed like Intel's collateral. The\n"
        "'sim' provider signs quotes with it. A simulated quote proves nothing about hardware:\n"
        "anyone with the files in DIR can make one. Verify such quotes with DIR/root_ca.pem as\n"
        "the trust anchor; against the Intel SGX Root CA they fail, as they must.\n"
        "\n"
        "options:\n"
        "  --dir DIR    where (default $MOAT_SIM_DIR, else $XDG_DATA_HOME/moat/sim, else\n"
        "               ~/.local/share/moat/sim); made with mode 0700, keys.pem is 0600\n"
        "  --days N     validity of certificates, CRLs and collateral (default 3650)\n"
        "  --force      replace an existing platform (its old quotes stop verifying)\n"
        "  -h, --help   show this help\n"
        "\n"
        "exit codes: 0 created, 1 it could not be created, 2 usage error.\n",
};

static int attest_init(int argc, char** argv) {
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"days", required_argument, NULL, 'n'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    _cleanup_free_ char* dir = NULL;
    unsigned long days       = 3650;
    bool force               = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char* end = NULL;
        switch (c) {
            case 'd':
                free(dir);
                dir = xstrdup(optarg);
                break;
            case 'n':
                days = strtoul(optarg, &end, 10);
                if (!*optarg || *end || days == 0 || days > 36500)
                    return command_usage_error(
                        &cmd_attest, "--days: '%s' is not a number of days from 1 to 36500",
                        optarg);
                break;
            case 'f':
                force = true;
                break;
            case 'h':
                fputs(cmd_attest.usage, stdout);
                return 0;
            default:
                return command_usage_error(&cmd_attest, "unknown option");
        }
    }
    if (optind != argc)
        return command_usage_error(&cmd_attest, "unexpected argument '%s'", argv[optind]);
    if (!dir)
        dir = attest_default_sim_dir();
    struct moat_error err = {0};
    if (sim_create(dir, (unsigned)days, force, &err) < 0) {
        log_error("%s", err.msg);
        return 1;
    }
    printf(
        "created a SIMULATED SGX platform in %s (it proves nothing about hardware)\n"
        "  trust anchor for its quotes: %s/%s\n"
        "  collateral: %s, %s, %s, %s, %s\n",
        dir, dir, SIM_ROOT_CERT, SIM_TCB_INFO, SIM_QE_IDENTITY, SIM_TCB_CHAIN, SIM_ROOT_CRL,
        SIM_PCK_CRL);
    return 0;
}

static int attest_run(int argc, char** argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(cmd_attest.usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? MOAT_EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "init"))
        return attest_init(argc - 1, argv + 1);
    return command_usage_error(&cmd_attest, "unknown subcommand '%s' (there is: init)", argv[1]);
}
