/* SPDX-License-Identifier: Apache-2.0 */
/* moat: one binary, a table of subcommands (as wg and crun do). */
#include <stdarg.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "moat-config.h"

static int cmd_help_run(int argc, char** argv);
static int cmd_version_run(int argc, char** argv);

static const struct moat_command cmd_help = {
    .name    = "help",
    .run     = cmd_help_run,
    .summary = "show help for moat or one of its commands",
    .usage   = "usage: moat help [COMMAND [SUBCOMMAND]]\n",
};

static const struct moat_command cmd_version = {
    .name    = "version",
    .run     = cmd_version_run,
    .summary = "print moat's version",
    .usage   = "usage: moat version\n       moat --version\n",
};

/* Top-level commands, in the order `moat help` lists them. */
static const struct moat_command* const g_commands[] = {
    &cmd_manifest, &cmd_sign,   &cmd_sigstruct_view, &cmd_run,       &cmd_pf,
    &cmd_quote,    &cmd_attest, &cmd_coordinator,    &cmd_marblerun, &cmd_amber,
    &cmd_kbs,      &cmd_help,   &cmd_version,
};

static const char g_exit_codes[] =
    "exit codes:\n"
    "  0  success\n"
    "  1  runtime failure (I/O error, failed signature, missing file at run time)\n"
    "  2  usage error or bad manifest\n";

void command_print_usage(const struct moat_command* cmd, FILE* out) {
    fputs(cmd->usage, out);
}

int command_usage_error(const struct moat_command* cmd, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "moat %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'moat %s --help' for more information.\n", cmd->name);
    return MOAT_EXIT_USAGE;
}

int command_wants_help(const struct moat_command* cmd, int argc, char** argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            command_print_usage(cmd, stdout);
            return 1;
        }
    }
    return 0;
}

static void print_main_usage(FILE* out) {
    fputs(
        "usage: moat [--version] [--help] COMMAND [ARGS...]\n\n"
        "moat runs unmodified Linux applications as attested, sealed workloads, using\n"
        "Gramine-compatible manifests.\n\ncommands:\n",
        out);
    for (size_t i = 0; i < ARRAY_SIZE(g_commands); i++)
        fprintf(out, "  %-16s %s\n", g_commands[i]->name, g_commands[i]->summary);
    fprintf(out, "\nRun 'moat help COMMAND' for a command's options.\n\n%s", g_exit_codes);
}

static const struct moat_command* find_command(const char* name) {
    for (size_t i = 0; i < ARRAY_SIZE(g_commands); i++)
        if (strcmp(g_commands[i]->name, name) == 0)
            return g_commands[i];
    return NULL;
}

static int cmd_version_run(int argc, char** argv) {
    (void)argc;
    (void)argv;
    printf("moat %s\n", MOAT_VERSION);
    return MOAT_EXIT_OK;
}

static int cmd_help_run(int argc, char** argv) {
    if (argc < 2) {
        print_main_usage(stdout);
        return MOAT_EXIT_OK;
    }
    const struct moat_command* cmd = find_command(argv[1]);
    if (!cmd) {
        fprintf(stderr, "moat help: unknown command '%s'\n", argv[1]);
        return MOAT_EXIT_USAGE;
    }
    /* nested commands ("help manifest render") print their own usage via --help */
    char help_flag[]  = "--help";
    char* sub_argv[3] = {argv[1], argc > 2 ? argv[2] : help_flag, help_flag};
    if (argc > 2)
        return cmd->run(3, sub_argv);
    command_print_usage(cmd, stdout);
    return MOAT_EXIT_OK;
}

int main(int argc, char** argv) {
    log_set_prefix("moat");
    if (argc < 2) {
        print_main_usage(stderr);
        return MOAT_EXIT_USAGE;
    }
    const char* name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
        return cmd_version_run(0, NULL);
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_main_usage(stdout);
        return MOAT_EXIT_OK;
    }
    const struct moat_command* cmd = find_command(name);
    if (!cmd) {
        fprintf(stderr, "moat: unknown command '%s'\nTry 'moat help'.\n", name);
        return MOAT_EXIT_USAGE;
    }
    return cmd->run(argc - 1, argv + 1);
}
