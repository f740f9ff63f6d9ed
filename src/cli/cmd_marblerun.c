/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat marblerun: a client for a MarbleRun Coordinator outside Kubernetes, with the `marblerun`
 * CLI's commands and flags (docs/marblerun-cli.md; reference/marblerun.md §7). The client is a
 * binary of its own, moat-marblerun (program.c finds and execs it), so that `moat run` never
 * maps libcurl.
 */
#include "commands.h"

static int marblerun_run(int argc, char** argv) {
    return command_exec_program("marblerun", "moat-marblerun", argc, argv);
}

const struct moat_command cmd_marblerun = {
    .name    = "marblerun",
    .run     = marblerun_run,
    .summary = "talk to a MarbleRun Coordinator as the marblerun CLI does (verified by its quote)",
    .usage =
        "usage: moat marblerun COMMAND [ARGS] [FLAGS]   (moat marblerun --help for the "
        "commands)\n",
};
