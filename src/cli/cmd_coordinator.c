/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat coordinator: the MarbleRun-compatible Coordinator (docs/coordinator.md). The server is a
 * binary of its own, moat-coordinator (program.c finds and execs it), so that moat's other
 * commands, `moat run` above all, never map libevent, nghttp2 or protobuf-c.
 */
#include "commands.h"

static int coordinator_run(int argc, char** argv) {
    return command_exec_program("coordinator", "moat-coordinator", argc, argv);
}

const struct moat_command cmd_coordinator = {
    .name    = "coordinator",
    .run     = coordinator_run,
    .summary = "run a MarbleRun-compatible Coordinator (client API, Marble API, metrics)",
    .usage   = "usage: moat coordinator [OPTIONS]   (moat coordinator --help for the options)\n",
};
