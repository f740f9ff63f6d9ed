/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat kbs: the key broker (Intel Trust Authority KBS compatible) (docs/kbs.md).
 * `moat kbs serve` execs moat-kbs, so that
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
    if (strcmp(argv[1], "serve") != 0)
        return command_usage_error(&cmd_kbs, "unknown subcommand '%s'", argv[1]);
    /* moat-kbs sees `serve`'s options as its own */
    return command_exec_program("kbs serve", "moat-kbs", argc - 1, argv + 1);
}

const struct moat_command cmd_kbs = {
    .name    = "kbs",
    .run     = kbs_run,
    .summary = "run a key broker that releases keys to attested TEEs (ITA KBS compatible)",
    .usage   = "usage: moat kbs serve [OPTIONS]   (moat kbs serve --help for the options)\n",
};
