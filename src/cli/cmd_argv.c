/* SPDX-License-Identifier: Apache-2.0 */
/* `moat manifest argv-serialize`: gramine-argv-serializer, for loader.argv_src_file and
 * loader.env_src_file (reference/gramine.md §1.3). */
#include <string.h>

#include "commands.h"
#include "common.h"

static int argv_run(int argc, char** argv);

const struct moat_command cmd_manifest_argv = {
    .name    = "manifest argv-serialize",
    .run     = argv_run,
    .summary = "write arguments as NUL-terminated strings (for loader.argv_src_file)",
    .usage =
        "usage: moat manifest argv-serialize [-o FILE] ARG...\n"
        "\n"
        "Writes every ARG followed by a NUL byte (gramine-argv-serializer's format) to FILE\n"
        "(atomically) or to standard output. Point loader.argv_src_file at the result for a\n"
        "fixed argv (ARG 0 is argv[0]); for loader.env_src_file pass NAME=VALUE strings.\n"
        "\n"
        "options:\n"
        "  -o, --output FILE   write FILE instead of standard output\n"
        "  -h, --help          show this help\n",
};

static int argv_run(int argc, char** argv) {
    const char* out = "-";
    int i           = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            command_print_usage(&cmd_manifest_argv, stdout);
            return MOAT_EXIT_OK;
        }
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) {
            out = argv[++i];
            continue;
        }
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        }
        break;
    }
    if (i >= argc)
        return command_usage_error(&cmd_manifest_argv, "expected at least one ARG");
    struct strbuf sb = STRBUF_INIT;
    for (; i < argc; i++)
        strbuf_append(&sb, argv[i], strlen(argv[i]) + 1); /* with its NUL */
    struct moat_error err = {0};
    int r                 = write_file_atomic(out, sb.buf, sb.len, 0644, &err);
    strbuf_free(&sb);
    if (r < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    return MOAT_EXIT_OK;
}
