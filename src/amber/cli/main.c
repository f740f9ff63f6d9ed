/* SPDX-License-Identifier: Apache-2.0 */
/*
 * moat-amber-client: dispatches to the subcommands of the table below (STYLE.md §7). Exec'd by
 * `moat amber verify-token` and `moat kbs get-key` (src/cli/cmd_amber.c, cmd_kbs.c).
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_command g_commands[] = {
    {"token", "moat amber token", cli_token,
     "get an attestation token for this machine's evidence from a token service"},
    {"verify-token", "moat amber verify-token", cli_verify_token,
     "verify an attestation token (signature, expiry, x5c chain, CRLs)"},
    {"kbs-get-key", "moat kbs get-key", cli_kbs_get_key,
     "get a key from a key broker with an attestation token and unwrap it"},
};

static void usage(FILE* out) {
    fputs(
        "usage: moat-amber-client COMMAND [OPTIONS]   (COMMAND --help for the options)\n\n"
        "commands:\n",
        out);
    for (size_t i = 0; i < ARRAY_SIZE(g_commands); i++)
        fprintf(out, "  %-14s %s (%s)\n", g_commands[i].name, g_commands[i].summary,
                g_commands[i].display);
}

int main(int argc, char** argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_commands); i++)
        if (strcmp(argv[1], g_commands[i].name) == 0)
            return g_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "moat-amber-client: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}

/* ------------------------------------------------------------------------------------------ */
/* Shared helpers (cli.h)                                                                       */

int cli_read_arg(const char* arg, size_t max, const char* what, char** ret,
                 struct moat_error* err) {
    char* buf  = NULL;
    size_t len = 0;
    if (strcmp(arg, "-") == 0 || arg[0] == '@') {
        int r = read_file(arg[0] == '@' ? arg + 1 : "-", &buf, &len, err);
        if (r < 0)
            return moat_error_prefix(err, "cannot read the %s", what);
    } else {
        buf = xstrdup(arg);
        len = strlen(buf);
    }
    while (len > 0 && strchr(" \t\r\n", buf[len - 1]))
        buf[--len] = '\0';
    if (len == 0 || len > max || strlen(buf) != len) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        return moat_error_set(
            err, -EINVAL, "the %s is empty, has a NUL byte or is longer than %zu bytes", what, max);
    }
    *ret = buf;
    return 0;
}

PRINTF_FMT(3, 0)
static void vreport(const char* display, const char* level, const char* fmt, va_list ap) {
    fprintf(stderr, "%s: %s%s", display, level, level[0] ? ": " : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char* display, int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(display, "error", fmt, ap);
    va_end(ap);
    return code;
}

int cli_usage_error(const char* display, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(display, "", fmt, ap);
    va_end(ap);
    fprintf(stderr, "try '%s --help'\n", display);
    return CLI_EXIT_USAGE;
}

void cli_warn(const char* display, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(display, "warning", fmt, ap);
    va_end(ap);
}
