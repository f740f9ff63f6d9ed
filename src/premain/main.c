/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-premain: the Marble premain as an executable (docs/marblerun.md), used as Gramine's
 * libos.entrypoint in place of MarbleRun's premain-libos. argv[0] is the real app (Gramine's
 * loader.argv, Graphene's loader.argv0_override): it activates with the Coordinator, applies
 * Files and Env, and execs the app with the manifest's Argv (["./marble"] when it has none).
 */
#include <errno.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "premain.h"

extern char** environ;

/* argv[0] naming the premain itself would exec it again, forever */
static bool is_self(const char* path) {
    struct stat a, b;
    return stat(path, &a) == 0 && stat("/proc/self/exe", &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

int main(int argc, char** argv) {
    if (argc < 1 || !argv[0] || !*argv[0] || is_self(argv[0])) {
        fprintf(stderr,
                "panic: argv[0] must be the app to start, not the premain: set "
                "loader.argv = [\"<app>\"] (Graphene: loader.argv0_override)\n");
        return 2;
    }
    /* no openssl.cnf: a host file (unmeasured in a sandbox) that could load providers, and
     * time at every start */
    OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
    const char* service     = argv[0];
    struct premain_params p = {0};
    struct moat_error err   = {0};
    if (premain_run(&p, &err) < 0) {
        fprintf(stderr, "panic: %s\n", err.msg); /* as Go's premain, which panics */
        return 2;
    }
    char* marble[] = {(char*)"./marble", NULL};
    execve(service, p.argc ? p.argv : marble, environ);
    fprintf(stderr, "Error: %s: %s\n", service, strerror(errno));
    premain_params_clear(&p);
    return 1;
}
