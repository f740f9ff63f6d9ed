/* SPDX-License-Identifier: Apache-2.0 */
/* `moat manifest render`: the gramine-manifest command line. */
#include <getopt.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "manifest.h"

static int render_run(int argc, char** argv);

const struct moat_command cmd_manifest_render = {
    .name    = "manifest render",
    .run     = render_run,
    .summary = "render a manifest template into a finalized manifest",
    .usage =
        "usage: moat manifest render [OPTIONS] TEMPLATE [OUTPUT]\n"
        "       moat manifest render [OPTIONS] -c TEXT [OUTPUT]\n"
        "\n"
        "Renders a Gramine manifest template (Jinja subset, strict undefined variables), injects\n"
        "gramine-manifest's defaults, validates the result, expands sgx.trusted_files\n"
        "directories and hashes every trusted file (in parallel), then writes the finalized\n"
        "manifest to OUTPUT (default: standard output). Same semantics as gramine-manifest.\n"
        "\n"
        "options:\n"
        "  -D, --define NAME[=VALUE]  define a template variable (bare NAME means True)\n"
        "  -c, --string TEXT          render TEXT instead of a template file\n"
        "      --check                validate the manifest (default)\n"
        "      --no-check             skip validation: unknown keys pass through untouched\n"
        "      --chroot DIR           hash trusted files as found under DIR\n"
        "      --no-progress          never show the hashing progress bar\n"
        "  -h, --help                 show this help\n"
        "\n"
        "template globals: gramine.runtimedir(), gramine.libos, gramine.pkglibdir,\n"
        "python.* (from the host python3), env, ldd(); see docs/templates.md.\n"
        "exit codes: 0 ok, 1 runtime failure, 2 usage error or invalid manifest.\n",
};

enum { OPT_CHECK = 256, OPT_NO_CHECK, OPT_CHROOT, OPT_NO_PROGRESS };

static const struct option g_render_options[] = {
    {"define", required_argument, NULL, 'D'},
    {"string", required_argument, NULL, 'c'},
    {"check", no_argument, NULL, OPT_CHECK},
    {"no-check", no_argument, NULL, OPT_NO_CHECK},
    {"chroot", required_argument, NULL, OPT_CHROOT},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct render_args {
    struct jinja_define* defs;
    size_t ndefs, cap;
    const char* string;
    struct render_opts opts;
};

/* "-D name=value": the name must be an identifier, as Jinja variables are. */
static int add_define(struct render_args* a, char* arg) {
    char* eq = strchr(arg, '=');
    if (eq)
        *eq = '\0';
    bool ok = arg[0] != '\0' && !(arg[0] >= '0' && arg[0] <= '9');
    for (const char* p = arg; *p && ok; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '_';
    if (!ok)
        return command_usage_error(&cmd_manifest_render,
                                   "invalid -D '%s': the name must be an identifier", arg);
    a->defs                 = xgrow(a->defs, &a->cap, a->ndefs + 1, sizeof(*a->defs));
    a->defs[a->ndefs].name  = arg;
    a->defs[a->ndefs].value = eq ? eq + 1 : NULL;
    a->ndefs++;
    return 0;
}

static int parse_render_args(int argc, char** argv, struct render_args* a) {
    a->opts.check    = true;
    a->opts.progress = true;
    optind           = 1;
    int c;
    while ((c = getopt_long(argc, argv, "+D:c:h", g_render_options, NULL)) != -1) {
        switch (c) {
            case 'D':
                if (add_define(a, optarg) != 0)
                    return MOAT_EXIT_USAGE;
                break;
            case 'c':
                a->string = optarg;
                break;
            case OPT_CHECK:
                a->opts.check = true;
                break;
            case OPT_NO_CHECK:
                a->opts.check = false;
                break;
            case OPT_CHROOT:
                a->opts.chroot = optarg;
                break;
            case OPT_NO_PROGRESS:
                a->opts.progress = false;
                break;
            case 'h':
                command_print_usage(&cmd_manifest_render, stdout);
                return -1;
            default:
                return command_usage_error(&cmd_manifest_render, "invalid option");
        }
    }
    return 0;
}

static int render_run(int argc, char** argv) {
    struct render_args a      = {0};
    _cleanup_free_ void* defs = NULL;
    int ret                   = parse_render_args(argc, argv, &a);
    defs                      = a.defs;
    if (ret != 0)
        return ret < 0 ? MOAT_EXIT_OK : ret;
    a.opts.defs  = a.defs;
    a.opts.ndefs = a.ndefs;

    int npos    = argc - optind;
    int max_pos = a.string ? 1 : 2;
    if ((!a.string && npos < 1) || npos > max_pos)
        return command_usage_error(&cmd_manifest_render, a.string
                                                             ? "expected at most one OUTPUT with -c"
                                                             : "expected TEMPLATE [OUTPUT]");
    const char* tmpl_path = a.string ? "<string>" : argv[optind];
    const char* out_path  = npos == max_pos ? argv[argc - 1] : "-";

    struct moat_error err     = {0};
    _cleanup_free_ char* text = NULL;
    size_t len                = 0;
    if (a.string) {
        text = xstrdup(a.string);
        len  = strlen(text);
    } else if (read_file(tmpl_path, &text, &len, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }

    struct manifest_diags diags = {0};
    _cleanup_free_ char* out    = NULL;
    size_t out_len              = 0;
    ret = manifest_render_text(text, len, tmpl_path, &a.opts, &out, &out_len, &diags, &err);
    manifest_diags_print(&diags, tmpl_path, stderr);
    manifest_diags_free(&diags);
    if (ret < 0) {
        log_error("%s", err.msg);
        /* bad template or manifest: usage class; I/O and hashing failures: runtime */
        return ret == -EINVAL ? MOAT_EXIT_USAGE : MOAT_EXIT_RUNTIME;
    }
    if (write_file_atomic(out_path, out, out_len, 0644, &err) < 0) {
        log_error("%s", err.msg);
        return MOAT_EXIT_RUNTIME;
    }
    return MOAT_EXIT_OK;
}
