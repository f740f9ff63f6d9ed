/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat kbs: the key broker (Intel Trust Authority KBS compatible) (docs/kbs.md).
 * `moat kbs serve` execs moat-kbs and `moat kbs get-key` execs moat-amber-client, so that
 * moat itself never maps libevent or libcurl.
 */
#include <string.h>

#include "commands.h"
#include "common.h"

static int kbs_run(int argc, char** argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        command_print_usage(&cmd_kbs, argc < 2 ? stderr : stdout);
        return argc < 2 ? MOAT_EXIT_USAGE : MOAT_EXIT_OK;
    }
    /* moat-kbs sees `serve`'s options as its own */
    if (strcmp(argv[1], "serve") == 0)
        return command_exec_program("kbs serve", "moat-kbs", argc - 1, argv + 1);
    if (strcmp(argv[1], "get-key") == 0) {
        /* moat-amber-client kbs-get-key OPTIONS… (argv[0] becomes the program's name) */
        _cleanup_free_ char** args = xcalloc((size_t)argc + 1, sizeof(char*));
        args[0]                    = argv[0];
        args[1]                    = (char*)"kbs-get-key";
        for (int i = 2; i < argc; i++)
            args[i] = argv[i];
        return command_exec_program("kbs get-key", "moat-amber-client", argc, args);
    }
    return command_usage_error(&cmd_kbs, "unknown subcommand '%s'", argv[1]);
}

const struct moat_command cmd_kbs = {
    .name    = "kbs",
    .run     = kbs_run,
    .summary = "run a key broker that releases keys to attested TEEs (ITA KBS compatible)",
    .usage =
        "usage: moat kbs serve [OPTIONS]            run the key broker\n"
        "       moat kbs get-key [OPTIONS] KEY_ID   get a key with an attestation token\n"
        "(moat kbs SUBCOMMAND --help for the options)\n",
};
