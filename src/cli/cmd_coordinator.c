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

static int coordinator_run(int argc, char** argv) {
    char self[PATH_MAX];
    ssize_t n                    = readlink("/proc/self/exe", self, sizeof(self) - 1);
    _cleanup_free_ char* next_to = NULL;
    if (n > 0) {
        self[n]     = '\0';
        char* slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        next_to = xasprintf("%s/moat-coordinator", self);
    }
    _cleanup_free_ char* installed = xasprintf("%s/moat-coordinator", MOAT_PKGLIBDIR);
    const char* const candidates[] = {next_to, installed};
    char** args                    = xcalloc((size_t)argc + 1, sizeof(char*));
    args[0]                        = (char*)"moat-coordinator";
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
        if (candidates[i] && access(candidates[i], X_OK) == 0) {
            execv(candidates[i], args);
            fprintf(stderr, "moat coordinator: cannot run %s: %s\n", candidates[i],
                    strerror(errno));
            free(args);
            return MOAT_EXIT_RUNTIME;
        }
    }
    free(args);
    fprintf(stderr,
            "moat coordinator: cannot find moat-coordinator next to moat or in %s: reinstall "
            "moat\n",
            MOAT_PKGLIBDIR);
    return MOAT_EXIT_RUNTIME;
}

const struct moat_command cmd_coordinator = {
    .name    = "coordinator",
    .run     = coordinator_run,
    .summary = "run a MarbleRun-compatible Coordinator (client API, Marble API, metrics)",
    .usage   = "usage: moat coordinator [OPTIONS]   (moat coordinator --help for the options)\n",
};
