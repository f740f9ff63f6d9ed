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

enum fmt { FMT_TEXT, FMT_TOML, FMT_JSON };

struct field {
    const char* name;
    char value[160];
    bool quoted; /* a string in toml/json */
};

static size_t collect(const struct sigstruct* s, bool verbose, struct field* f) {
    size_t n = 0;
    uint8_t mrsigner[32];
    if (sigstruct_mrsigner(s, mrsigner) < 0)
        memset(mrsigner, 0, sizeof(mrsigner));
    f[n].name   = "mr_signer";
    f[n].quoted = true;
    (void)!hex_encode(mrsigner, 32, f[n++].value, sizeof(f[0].value));
    f[n].name   = "mr_enclave";
    f[n].quoted = true;
    (void)!hex_encode(s->enclave_hash, 32, f[n++].value, sizeof(f[0].value));
    f[n].name = "isv_prod_id";
    snprintf(f[n++].value, sizeof(f[0].value), "%u", s->isv_prod_id);
    f[n].name = "isv_svn";
    snprintf(f[n++].value, sizeof(f[0].value), "%u", s->isv_svn);
    f[n].name = "debug_enclave";
    snprintf(f[n++].value, sizeof(f[0].value), "%s",
             s->attr_flags & SGX_FLAGS_DEBUG ? "true" : "false");
    if (!verbose)
        return n;
    static const char* const names[] = {
        "attribute_flags",     "attribute_xfrms", "misc_select", "attribute_flags_mask",
        "attribute_xfrm_mask", "misc_mask",       "date"};
    unsigned long long values[] = {
        s->attr_flags,     s->attr_xfrm, s->misc_select, s->attr_mask_flags,
        s->attr_mask_xfrm, s->misc_mask, s->date};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        f[n].name   = names[i];
        f[n].quoted = true;
        snprintf(f[n++].value, sizeof(f[0].value), "0x%llx", values[i]);
    }
    return n;
}

static void print_fields(FILE* out, const struct field* f, size_t n, enum fmt fmt) {
    if (fmt == FMT_JSON)
        fputs("{", out);
    if (fmt == FMT_TEXT)
        fputs("Attributes:\n", out);
    for (size_t i = 0; i < n; i++) {
        bool is_bool = !strcmp(f[i].name, "debug_enclave");
        switch (fmt) {
            case FMT_TEXT:
                fprintf(out, "    %s: %s\n", f[i].name,
                        is_bool ? (!strcmp(f[i].value, "true") ? "True" : "False") : f[i].value);
                break;
            case FMT_TOML:
                fprintf(out, f[i].quoted ? "%s = \"%s\"\n" : "%s = %s\n", f[i].name, f[i].value);
                break;
            case FMT_JSON:
                fprintf(out, f[i].quoted ? "%s\"%s\": \"%s\"" : "%s\"%s\": %s", i ? ", " : "",
                        f[i].name, f[i].value);
                break;
        }
    }
    if (fmt == FMT_JSON)
        fputs("}\n", out);
}

static int view_run(int argc, char** argv) {
    static const struct option options[] = {
        {"verbose", no_argument, NULL, 'v'},
        {"output-format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool verbose = false;
    enum fmt fmt = FMT_TEXT;
    optind       = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+vf:h", options, NULL)) != -1) {
        switch (c) {
            case 'v':
                verbose = true;
                break;
            case 'f':
                if (!strcmp(optarg, "text"))
                    fmt = FMT_TEXT;
                else if (!strcmp(optarg, "toml"))
                    fmt = FMT_TOML;
                else if (!strcmp(optarg, "json"))
                    fmt = FMT_JSON;
                else
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
    const char* path = argv[optind];

    struct moat_error err    = {0};
    _cleanup_free_ char* buf = NULL;
    size_t len;
    if (read_file(path, &buf, &len, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    struct sigstruct s;
    if (sigstruct_parse((const uint8_t*)buf, len, &s, &err) < 0) {
        log_error("%s: %s", path, err.msg);
        return MOAT_EXIT_USAGE;
    }
    if (sigstruct_verify(&s, &err) < 0) {
        log_error("%s: %s", path, err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    struct field fields[16];
    memset(fields, 0, sizeof(fields));
    size_t n = collect(&s, verbose, fields);
    if (npos == 2) {
        struct strbuf sb = STRBUF_INIT;
        char* mem        = NULL;
        size_t memlen    = 0;
        FILE* out        = open_memstream(&mem, &memlen);
        if (!out) {
            log_error("out of memory");
            return MOAT_EXIT_RUNTIME;
        }
        print_fields(out, fields, n, fmt);
        fclose(out);
        strbuf_append(&sb, mem, memlen);
        free(mem);
        int ret = write_file_atomic(argv[optind + 1], sb.buf, sb.len, 0644, &err);
        strbuf_free(&sb);
        if (ret < 0) {
            log_error("%s", err.msg);
            return MOAT_EXIT_RUNTIME;
        }
        return MOAT_EXIT_OK;
    }
    print_fields(stdout, fields, n, fmt);
    return MOAT_EXIT_OK;
}
