/* SPDX-License-Identifier: Apache-2.0 */
/* `moat run`: gramine-direct (reference/gramine.md §1.1), in a Linux sandbox (docs/run.md). */
#include <string.h>

#include "commands.h"
#include "common.h"
#include "sandbox.h"

static int run_run(int argc, char** argv);

const struct moat_command cmd_run = {
    .name    = "run",
    .run     = run_run,
    .summary = "run an application under its manifest, in a sandbox",
    .usage =
        "usage: moat run [OPTIONS] STEM [ARGS...]\n"
        "\n"
        "Reads STEM.manifest (rendered by 'moat manifest render') and runs libos.entrypoint\n"
        "with the manifest's argv and environment rules in new user, mount, pid, ipc and uts\n"
        "namespaces: chroot mounts are served through a FUSE view that verifies trusted files\n"
        "(every read) and refuses unlisted ones under sgx.file_check_policy = \"strict\";\n"
        "tmpfs mounts, allowed files (bind mounts), /proc, a minimal /dev and a read-only /sys\n"
        "complete the root. ARGS reach the app only if the manifest allows it\n"
        "(loader.insecure__use_cmdline_argv). See docs/run.md.\n"
        "\n"
        "options (before STEM):\n"
        "      --learn[=FILE]  allow every file (as sgx.file_check_policy = "
        "\"allow_all_but_log\")\n"
        "                      and write the files the app used to FILE (default\n"
        "                      STEM.learned.toml) as sgx.trusted_files / sgx.allowed_files\n"
        "      --emulate-sgx-limits\n"
        "                      apply sgx.enclave_size as the address-space limit and\n"
        "                      sgx.max_threads as the thread limit, to find the sizes the app\n"
        "                      needs before deploying to SGX\n"
        "      --no-verify-cache\n"
        "                      hash every trusted file in this run, as if no earlier run had\n"
        "                      verified it (as moat.verify_cache = false; docs/security.md)\n"
        "      --print-seccomp [STEM]\n"
        "                      print the seccomp profile of the sandbox (one rule a line)\n"
        "                      and exit; with STEM, its manifest's own rules too\n"
        "                      (sys.debug__mock_syscalls, sys.disallow_subprocesses)\n"
        "  -h, --help          show this help\n"
        "\n"
        "exit status: the app's (128+N when it was killed by signal N); 1 when moat refuses to\n"
        "start it (the message says why) or cannot set the sandbox up, as gramine-direct; 2 for\n"
        "a usage error of moat run itself.\n",
};

static int run_run(int argc, char** argv) {
    int i              = 1;
    const char* learn  = NULL;
    bool learn_default = false;
    bool emulate       = false;
    bool no_vcache     = false;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            command_print_usage(&cmd_run, stdout);
            return MOAT_EXIT_OK;
        }
        if (!strcmp(argv[i], "--print-seccomp")) {
            /* with a STEM: that manifest's mocks and subprocess rule too */
            const char* stem = i + 1 < argc ? argv[i + 1] : NULL;
            return sandbox_print_seccomp(stdout, stem) < 0 ? MOAT_EXIT_USAGE : MOAT_EXIT_OK;
        }
        if (!strcmp(argv[i], "--emulate-sgx-limits")) {
            emulate = true;
            continue;
        }
        if (!strcmp(argv[i], "--no-verify-cache")) {
            no_vcache = true;
            continue;
        }
        if (!strcmp(argv[i], "--learn")) {
            learn_default = true;
            continue;
        }
        if (!strncmp(argv[i], "--learn=", 8) && argv[i][8]) {
            learn = argv[i] + 8;
            continue;
        }
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        }
        return command_usage_error(&cmd_run, "unknown option '%s'", argv[i]);
    }
    if (i >= argc)
        return command_usage_error(&cmd_run, "expected STEM (the manifest is STEM.manifest)");
    const char* stem = argv[i];
    size_t n         = strlen(stem);
    /* accept "app.manifest" too, as a convenience */
    _cleanup_free_ char* trimmed =
        n > 9 && !strcmp(stem + n - 9, ".manifest") ? xstrndup(stem, n - 9) : xstrdup(stem);
    _cleanup_free_ char* learn_file = learn_default ? xasprintf("%s.learned.toml", trimmed) : NULL;
    struct run_opts opts            = {
                   .stem               = trimmed,
                   .learn              = learn ? learn : learn_file,
                   .emulate_sgx_limits = emulate,
                   .no_verify_cache    = no_vcache,
                   .argv               = (const char* const*)argv + i,
                   .argc               = (size_t)(argc - i),
    };
    return sandbox_run(&opts);
}
