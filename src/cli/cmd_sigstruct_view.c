/* SPDX-License-Identifier: Apache-2.0 */
/* `moat sigstruct-view`: gramine-sgx-sigstruct-view (reference/gramine.md §3). */
#include <getopt.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "sigstruct.h"

static int view_run(int argc, char** argv);

const struct moat_command cmd_sigstruct_view = {
    .name    = "sigstruct-view",
    .run     = view_run,
    .summary = "show the fields of a SIGSTRUCT (.sig) file",
    .usage =
        "usage: moat sigstruct-view [-v] [--output-format text|toml|json] FILE.sig [OUTPUT]\n"
        "\n"
        "Prints mr_signer, mr_enclave, isv_prod_id, isv_svn and debug_enclave of a SIGSTRUCT\n"
        "(and the attribute, misc and date fields with -v), after checking its RSA signature.\n"
        "mr_enclave is moat's measurement (docs/measurement.md), not an SGX MRENCLAVE.\n"
        "\n"
        "options:\n"
        "  -v, --verbose              also print attributes, masks and the date\n"
        "  -f, --output-format FMT    text (default), toml or json\n"
        "  -h, --help                 show this help\n"
        "\n"
        "exit codes: 0 ok, 1 unreadable file or bad signature, 2 usage error or not a SIGSTRUCT.\n",
};

/* Reads, parses and verifies path; exit code on failure (2: not a SIGSTRUCT, 1: otherwise). */
static int load_verified(const char* path, struct sigstruct* ret) {
    struct moat_error err    = {0};
    _cleanup_free_ char* buf = NULL;
    size_t len;
    if (read_file(path, &buf, &len, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    if (sigstruct_parse((const uint8_t*)buf, len, ret, &err) < 0) {
        log_error("%s: %s", path, err.msg);
        return MOAT_EXIT_USAGE;
    }
    if (sigstruct_verify(ret, &err) < 0) {
        log_error("%s: %s", path, err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    return MOAT_EXIT_OK;
}

static int view_run(int argc, char** argv) {
    static const struct option options[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"output-format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool verbose              = false;
    enum sigstruct_format fmt = SIGSTRUCT_FORMAT_TEXT;
    optind                    = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+vf:h", options, NULL)) != -1) {
        switch (c) {
            case 'v':
                verbose = true;
                break;
            case 'f':
                if (sigstruct_format_parse(optarg, &fmt) < 0)
                    return command_usage_error(&cmd_sigstruct_view,
                                               "unknown output format '%s' (text, toml or json)",
                                               optarg);
                break;
            case 'h':
                command_print_usage(&cmd_sigstruct_view, stdout);
                return MOAT_EXIT_OK;
            default:
                return command_usage_error(&cmd_sigstruct_view, "invalid option");
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2)
        return command_usage_error(&cmd_sigstruct_view, "expected FILE.sig [OUTPUT]");

    struct sigstruct s;
    int ret = load_verified(argv[optind], &s);
    if (ret != MOAT_EXIT_OK)
        return ret;
    _cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
    struct moat_error err              = {0};
    if (sigstruct_format(&s, fmt, verbose, &out) < 0) {
        log_error("cannot format %s", argv[optind]);
        return MOAT_EXIT_RUNTIME;
    }
    const char* dest = npos == 2 ? argv[optind + 1] : "-";
    if (write_file_atomic(dest, out.buf, out.len, 0644, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    return MOAT_EXIT_OK;
}
