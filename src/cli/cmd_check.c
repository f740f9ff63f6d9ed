/* SPDX-License-Identifier: Apache-2.0 */
/* `moat manifest check` (gramine-manifest-check) and `moat manifest migrate`. */
#include <getopt.h>
#include <string.h>

#include "check.h"
#include "commands.h"
#include "common.h"
#include "model.h"
#include "sandbox.h"
#include "toml.h"

static int check_run(int argc, char** argv);
static int migrate_run(int argc, char** argv);

const struct moat_command cmd_manifest_check = {
    .name    = "manifest check",
    .run     = check_run,
    .summary = "validate manifests and report every problem",
    .usage =
        "usage: moat manifest check [--finalized] [--no-unknown-keys-check] FILE...\n"
        "\n"
        "Validates Gramine manifests (rendered, or hand-written) against every Gramine v1.9 key\n"
        "and every Graphene-era key, and reports all problems at once as\n"
        "FILE:LINE:COL: error|warning: MESSAGE. Unknown keys come with a suggestion;\n"
        "Graphene-era keys are warnings naming their replacement (see 'moat manifest migrate').\n"
        "\n"
        "options:\n"
        "      --finalized              also require what 'moat manifest render' adds\n"
        "                               (sha256 of every trusted file, loader.entrypoint.uri):\n"
        "                               what 'moat run' refuses, this refuses too\n"
        "      --no-unknown-keys-check  accept keys moat does not know\n"
        "  -h, --help                   show this help\n"
        "\n"
        "exit codes: 0 valid (warnings allowed), 1 a file could not be read, 2 invalid.\n",
};

const struct moat_command cmd_manifest_migrate = {
    .name    = "manifest migrate",
    .run     = migrate_run,
    .summary = "rewrite a Graphene-era manifest in current Gramine syntax",
    .usage =
        "usage: moat manifest migrate [--in-place] IN [OUT]\n"
        "\n"
        "Rewrites a Graphene-era manifest (or template without Jinja syntax) into current\n"
        "Gramine syntax: fs.mount.* -> fs.mounts, sgx.trusted_files.<id> -> arrays,\n"
        "sgx.protected_files -> encrypted mounts, sgx.thread_num -> sgx.max_threads,\n"
        "loader.argv0_override -> loader.argv, integer booleans -> true/false, and more.\n"
        "Every change is printed as a note, everything that could not be migrated as a\n"
        "warning with the reason. The result is then checked as 'moat manifest check' does.\n"
        "Writes OUT (default: standard output); --in-place replaces IN atomically.\n"
        "\n"
        "options:\n"
        "  -i, --in-place   rewrite IN itself\n"
        "  -q, --quiet      print only warnings and errors\n"
        "  -h, --help       show this help\n"
        "\n"
        "exit codes: 0 migrated and valid, 1 I/O failure, 2 usage error or the result is still\n"
        "invalid (nothing is written then).\n",
};

enum { OPT_FINALIZED = 256, OPT_NO_UNKNOWN };

static int load_manifest(const char* path, struct toml_value** ret_root) {
    struct moat_error err     = {0};
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    if (read_file(path, &text, &len, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    struct toml_error terr;
    if (toml_parse(text, len, path, ret_root, &terr, &err) < 0) {
        fprintf(stderr, "%s:%u:%u: error: %s\n", path, terr.line, terr.col, terr.msg);
        return MOAT_EXIT_USAGE;
    }
    return MOAT_EXIT_OK;
}

/* The same load `moat run` does (model.h): with --finalized, check and run accept and refuse the
 * same manifests. */
static int check_one(const char* path, const struct manifest_check_opts* opts) {
    struct moat_error err     = {0};
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    if (read_file(path, &text, &len, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    struct manifest_load_opts lopts = {
        .finalized     = opts->finalized,
        .runtime       = opts->finalized,
        .allow_unknown = opts->allow_unknown,
        .syscall_known = sandbox_syscall_known,
    };
    struct manifest_diags diags = {0};
    struct manifest* m          = NULL;
    int ret                     = manifest_load(text, len, path, &lopts, &m, &diags, &err);
    manifest_free(m);
    manifest_diags_print(&diags, path, stderr);
    size_t errors = manifest_diags_count(&diags, DIAG_ERROR);
    manifest_diags_free(&diags);
    if (ret < 0 && strstr(err.msg, ": the manifest is invalid")) /* not a syntax error */
        fprintf(stderr, "%s: %zu %s\n", path, errors, errors == 1 ? "error" : "errors");
    return ret < 0 ? MOAT_EXIT_USAGE : MOAT_EXIT_OK;
}

static int check_run(int argc, char** argv) {
    static const struct option options[] = {
        {"finalized", no_argument, NULL, OPT_FINALIZED},
        {"no-unknown-keys-check", no_argument, NULL, OPT_NO_UNKNOWN},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct manifest_check_opts opts = {0};
    optind                          = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+h", options, NULL)) != -1) {
        switch (c) {
            case OPT_FINALIZED:
                opts.finalized = true;
                break;
            case OPT_NO_UNKNOWN:
                opts.allow_unknown = true;
                break;
            case 'h':
                command_print_usage(&cmd_manifest_check, stdout);
                return MOAT_EXIT_OK;
            default:
                return command_usage_error(&cmd_manifest_check, "invalid option");
        }
    }
    if (optind >= argc)
        return command_usage_error(&cmd_manifest_check, "expected at least one FILE");
    int worst = MOAT_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        int ret = check_one(argv[i], &opts);
        /* a bad manifest (2) outranks an unreadable one (1) in the final status */
        if (ret == MOAT_EXIT_USAGE || (ret == MOAT_EXIT_RUNTIME && worst == MOAT_EXIT_OK))
            worst = ret;
    }
    return worst;
}

static void print_filtered(const struct manifest_diags* diags, const char* path, bool quiet) {
    if (!quiet) {
        manifest_diags_print(diags, path, stderr);
        return;
    }
    struct manifest_diags loud = {0};
    for (size_t i = 0; i < diags->len; i++) {
        const struct manifest_diag* g = &diags->items[i];
        if (g->sev != DIAG_NOTE)
            manifest_diags_add(&loud, g->sev, g->key, g->line, g->col, "%s", g->msg);
    }
    manifest_diags_print(&loud, path, stderr);
    manifest_diags_free(&loud);
}

static int migrate_run(int argc, char** argv) {
    static const struct option options[] = {
        {"in-place", no_argument, NULL, 'i'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool in_place = false, quiet = false;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+iqh", options, NULL)) != -1) {
        switch (c) {
            case 'i':
                in_place = true;
                break;
            case 'q':
                quiet = true;
                break;
            case 'h':
                command_print_usage(&cmd_manifest_migrate, stdout);
                return MOAT_EXIT_OK;
            default:
                return command_usage_error(&cmd_manifest_migrate, "invalid option");
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2 || (in_place && npos != 1))
        return command_usage_error(&cmd_manifest_migrate, in_place
                                                              ? "--in-place takes exactly one file"
                                                              : "expected IN [OUT]");
    const char* in  = argv[optind];
    const char* out = in_place ? in : npos == 2 ? argv[optind + 1] : "-";

    _cleanup_toml_ struct toml_value* root = NULL;
    int ret                                = load_manifest(in, &root);
    if (ret != MOAT_EXIT_OK)
        return ret;
    struct manifest_diags diags = {0};
    struct moat_error err       = {0};
    if (manifest_migrate(root, &diags, &err) < 0) {
        manifest_diags_free(&diags);
        log_error("%s: %s", in, err.msg);
        return MOAT_EXIT_USAGE;
    }
    struct manifest_check_opts opts = {0};
    int errors                      = manifest_check(root, &opts, &diags);
    print_filtered(&diags, in, quiet);
    size_t warnings = manifest_diags_count(&diags, DIAG_WARNING);
    size_t changes  = manifest_diags_count(&diags, DIAG_NOTE);
    manifest_diags_free(&diags);
    if (errors > 0) {
        fprintf(stderr,
                "%s: the migrated manifest still has %d %s (listed above); nothing written\n", in,
                errors, errors == 1 ? "error" : "errors");
        return MOAT_EXIT_USAGE;
    }
    size_t len;
    _cleanup_free_ char* doc = toml_write(root, &len);
    if (write_file_atomic(out, doc, len, 0644, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    if (!quiet)
        fprintf(stderr, "%s: %zu %s, %zu %s\n", in, changes, changes == 1 ? "change" : "changes",
                warnings, warnings == 1 ? "warning" : "warnings");
    return MOAT_EXIT_OK;
}
