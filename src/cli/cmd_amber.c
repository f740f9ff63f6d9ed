/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat amber: the Amber / Intel Trust Authority compatible token service (docs/amber.md).
 * `moat amber serve` execs moat-amber (as `moat coordinator` execs moat-coordinator), so that
 * moat itself never maps libevent; `moat amber token` and `verify-token` exec moat-amber-client
 * (libcurl).
 */
#include <string.h>

#include "commands.h"
#include "common.h"

static int amber_run(int argc, char** argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        command_print_usage(&cmd_amber, argc < 2 ? stderr : stdout);
        return argc < 2 ? MOAT_EXIT_USAGE : MOAT_EXIT_OK;
    }
    /* moat-amber sees `serve`'s options as its own */
    if (strcmp(argv[1], "serve") == 0)
        return command_exec_program("amber serve", "moat-amber", argc - 1, argv + 1);
    /* moat-amber-client gets the subcommand's name first (argv[0] becomes the program's) */
    if (strcmp(argv[1], "verify-token") == 0)
        return command_exec_program("amber verify-token", "moat-amber-client", argc, argv);
    if (strcmp(argv[1], "token") == 0)
        return command_exec_program("amber token", "moat-amber-client", argc, argv);
    return command_usage_error(&cmd_amber, "unknown subcommand '%s'", argv[1]);
}

const struct moat_command cmd_amber = {
    .name = "amber",
    .run  = amber_run,
    .summary =
        "run an Intel Trust Authority (Project Amber) compatible token service; get and "
        "verify its tokens",
    .usage =
        "usage: moat amber serve [OPTIONS]          run the token service\n"
        "       moat amber token --url URL [OPTIONS]\n"
        "                                         get a token for this machine's evidence\n"
        "       moat amber verify-token [OPTIONS] TOKEN|-|@FILE\n"
        "                                         verify a token (signature, expiry, x5c "
        "chain, CRLs)\n"
        "(moat amber SUBCOMMAND --help for the options)\n",
};
