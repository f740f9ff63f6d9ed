/* SPDX-License-Identifier: Apache-2.0 */
/* `moat quote <view>`: DCAP quotes (reference/attestation.md §1), as gramine-sgx-quote-view,
 * for SGX and TDX, with or without MarbleRun's OpenEnclave header. A table of subcommands:
 * a new one is a `struct moat_command` named "quote <sub>" and one line in g_quote_commands. */
#include <getopt.h>
#include <jansson.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "quote.h"

extern const struct moat_command cmd_quote; /* main.c's table */

static int quote_run(int argc, char** argv);
static int quote_view_run(int argc, char** argv);

static const struct moat_command cmd_quote_view = {
    .name    = "quote view",
    .run     = quote_view_run,
    .summary = "show every field of a quote",
    .usage =
        "usage: moat quote view [--json] FILE\n"
        "\n"
        "Prints the header, the report body (SGX enclave or TD report), the QE report and the\n"
        "sizes and offsets of the signature data of a DCAP quote (version 3, 4 or 5; FILE may\n"
        "be '-' for standard input). A MarbleRun/OpenEnclave 16-byte header is accepted and\n"
        "removed. Nothing is verified: use the fields, not the fact that they print.\n"
        "\n"
        "options:\n"
        "  --json       every field as one JSON object (byte fields as hex)\n"
        "  -h, --help   show this help\n"
        "\n"
        "exit codes: 0 ok, 1 unreadable file, 2 usage error or not a valid quote.\n",
};

/* Subcommands, in the order the usage lists them. */
static const struct moat_command* const g_quote_commands[] = {
    &cmd_quote_view,
};

const struct moat_command cmd_quote = {
    .name    = "quote",
    .run     = quote_run,
    .summary = "show SGX and TDX DCAP quotes",
    .usage =
        "usage: moat quote view [--json] FILE\n"
        "\n"
        "Run 'moat quote SUBCOMMAND --help' for details.\n",
};

static int quote_run(int argc, char** argv) {
    if (argc < 2) {
        command_print_usage(&cmd_quote, stderr);
        return MOAT_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        command_print_usage(&cmd_quote, stdout);
        return MOAT_EXIT_OK;
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_quote_commands); i++) {
        const struct moat_command* sub = g_quote_commands[i];
        if (strcmp(sub->name + strlen("quote "), argv[1]) == 0)
            return sub->run(argc - 1, argv + 1);
    }
    return command_usage_error(&cmd_quote, "unknown subcommand '%s'", argv[1]);
}

/* Reads and parses path; an exit code on failure (1: unreadable, 2: not a quote). `buf` owns
 * the bytes the quote points into. */
static int load_quote(const char* path, char** buf, struct quote* ret) {
    struct moat_error err = {0};
    size_t len;
    if (read_file(path, buf, &len, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    if (quote_parse_input((const uint8_t*)*buf, len, ret, &err) < 0) {
        log_error("%s: %s", path, err.msg);
        return MOAT_EXIT_USAGE;
    }
    return MOAT_EXIT_OK;
}

static int print_json(const struct quote* q) {
    json_t* o                 = quote_to_json(q);
    _cleanup_free_ char* text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) {
        log_error("out of memory");
        return MOAT_EXIT_RUNTIME;
    }
    puts(text);
    return MOAT_EXIT_OK;
}

static int quote_view_run(int argc, char** argv) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    optind    = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
        switch (c) {
            case 'j':
                json = true;
                break;
            case 'h':
                command_print_usage(&cmd_quote_view, stdout);
                return MOAT_EXIT_OK;
            default:
                return command_usage_error(&cmd_quote_view, "invalid option");
        }
    }
    if (argc - optind != 1)
        return command_usage_error(&cmd_quote_view, "takes one FILE");
    const char* path         = argv[optind];
    _cleanup_free_ char* buf = NULL;
    struct quote q;
    int r = load_quote(path, &buf, &q);
    if (r != MOAT_EXIT_OK)
        return r;
    if (json)
        return print_json(&q);
    struct strbuf out = STRBUF_INIT;
    printf("%-22s%s\n", "file:", path);
    quote_format_text(&q, &out);
    fputs(out.buf, stdout);
    strbuf_free(&out);
    return MOAT_EXIT_OK;
}
