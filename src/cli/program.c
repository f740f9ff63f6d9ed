/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The programs behind the `moat` front (git's model of one front and many programs): a command
 * whose libraries `moat run` must never map (libevent, nghttp2, protobuf-c for the Coordinator;
 * libcurl for the marblerun client) lives in a binary of its own next to moat in a build tree,
 * or in MOAT_PKGLIBDIR when installed. This file finds it and execs it.
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

int command_exec_program(const char* command, const char* program, int argc, char** argv) {
    char self[PATH_MAX];
    ssize_t n                    = readlink("/proc/self/exe", self, sizeof(self) - 1);
    _cleanup_free_ char* next_to = NULL;
    if (n > 0) {
        self[n]     = '\0';
        char* slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        next_to = xasprintf("%s/%s", self, program);
    }
    _cleanup_free_ char* installed = xasprintf("%s/%s", MOAT_PKGLIBDIR, program);
    const char* const candidates[] = {next_to, installed};
    _cleanup_free_ char** args     = xcalloc((size_t)argc + 1, sizeof(char*));
    args[0]                        = (char*)program;
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    for (size_t i = 0; i < ARRAY_SIZE(candidates); i++) {
        if (candidates[i] && access(candidates[i], X_OK) == 0) {
            execv(candidates[i], args);
            fprintf(stderr, "moat %s: cannot run %s: %s\n", command, candidates[i],
                    strerror(errno));
            return MOAT_EXIT_RUNTIME;
        }
    }
    fprintf(stderr, "moat %s: cannot find %s next to moat or in %s: reinstall moat\n", command,
            program, MOAT_PKGLIBDIR);
    return MOAT_EXIT_RUNTIME;
}
