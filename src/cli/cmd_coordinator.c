/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat coordinator: the MarbleRun-compatible Coordinator (docs/coordinator.md). The server is a
 * binary of its own, moat-coordinator, next to moat (or in MOAT_PKGLIBDIR when installed), so
 * that moat's other commands, `moat run` above all, never map libevent, nghttp2 or protobuf-c
 * (git's model of one front and many programs). This file only finds it and execs it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "moat-config.h"

int command_exec_program(const char* name, const char* what, int argc, char** argv) {
    char self[PATH_MAX];
    ssize_t n                    = readlink("/proc/self/exe", self, sizeof(self) - 1);
    _cleanup_free_ char* next_to = NULL;
    if (n > 0) {
        self[n]     = '\0';
        char* slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        next_to = xasprintf("%s/%s", self, name);
    }
    _cleanup_free_ char* installed = xasprintf("%s/%s", MOAT_PKGLIBDIR, name);
    const char* const candidates[] = {next_to, installed};
    char** args                    = xcalloc((size_t)argc + 1, sizeof(char*));
    args[0]                        = (char*)name;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
        if (candidates[i] && access(candidates[i], X_OK) == 0) {
            execv(candidates[i], args);
            fprintf(stderr, "%s: cannot run %s: %s\n", what, candidates[i], strerror(errno));
            free(args);
            return MOAT_EXIT_RUNTIME;
        }
    }
    free(args);
    fprintf(stderr, "%s: cannot find %s next to moat or in %s: reinstall moat\n", what, name,
            MOAT_PKGLIBDIR);
    return MOAT_EXIT_RUNTIME;
}

static int coordinator_run(int argc, char** argv) {
    return command_exec_program("moat-coordinator", "moat coordinator", argc, argv);
}

const struct moat_command cmd_coordinator = {
    .name    = "coordinator",
    .run     = coordinator_run,
    .summary = "run a MarbleRun-compatible Coordinator (client API, Marble API, metrics)",
    .usage   = "usage: moat coordinator [OPTIONS]   (moat coordinator --help for the options)\n",
};
