/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-amber-client: the clients of the token service and the key broker (issue 14;
 * docs/amber.md, docs/kbs.md), a program of its own that `moat amber …` and `moat kbs …` exec
 * so that `moat` never maps libcurl. main.c holds the table of subcommands, each in a file of
 * its own (token.c, verify_token.c,
 * kbs_get_key.c); this header is what they share.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common.h"

/* Exit codes of every subcommand (documented in their --help). */
enum {
    CLI_EXIT_OK      = 0,
    CLI_EXIT_RUNTIME = 1, /* a file, the network, a server error */
    CLI_EXIT_USAGE   = 2,
    CLI_EXIT_INVALID = 3, /* the token is invalid / the key broker refused */
};

/* A subcommand: run(argc, argv) with argv[0] its own name, options from argv[1]. */
struct cli_command {
    const char* name;    /* "verify-token" */
    const char* display; /* how users call it: "moat amber verify-token" */
    int (*run)(int argc, char** argv);
    const char* summary;
};

int cli_token(int argc, char** argv);
int cli_verify_token(int argc, char** argv);
int cli_kbs_get_key(int argc, char** argv);

/* "TEXT", "-" (stdin) or "@FILE", at most `max` bytes, trailing whitespace removed. *ret is
 * malloc'd (the caller wipes it when it is a secret). `what` names it in errors. */
int cli_read_arg(const char* arg, size_t max, const char* what, char** ret,
                 struct moat_error* err) WARN_UNUSED;

/* "<display>: error: <msg>" on stderr; returns `code`. */
int cli_fail(const char* display, int code, const char* fmt, ...) PRINTF_FMT(3, 4);
/* "<display>: <msg>" plus a hint to --help on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char* display, const char* fmt, ...) PRINTF_FMT(2, 3);
/* "<display>: warning: <msg>" on stderr. */
void cli_warn(const char* display, const char* fmt, ...) PRINTF_FMT(2, 3);
