/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The moat subcommand table: one entry per subcommand, one file per subcommand (cmd_*.c).
 * Every handler gets argv with argv[0] = the subcommand name ("manifest render" for nested
 * ones), parses its options with getopt_long, and returns a process exit code
 * (MOAT_EXIT_OK, MOAT_EXIT_RUNTIME, MOAT_EXIT_USAGE).
 */
#pragma once

#include <stdio.h>

struct moat_command {
    const char* name;
    int (*run)(int argc, char** argv);
    const char* summary; /* one line for `moat help` */
    const char* usage;   /* full help text for `moat help <cmd>` / `--help` */
};

/* Prints the usage of `cmd` to `out`. */
void command_print_usage(const struct moat_command* cmd, FILE* out);
/* Reports a usage error ("moat <cmd>: <msg>" + hint) on stderr and returns MOAT_EXIT_USAGE. */
int command_usage_error(const struct moat_command* cmd, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Shared option handling: if argv contains -h/--help (before "--"), prints usage and returns
 * true. */
int command_wants_help(const struct moat_command* cmd, int argc, char** argv);

/* Execs `program` (argv[0] = program, then argv[1..]) found next to moat or in MOAT_PKGLIBDIR
 * (program.c): the commands whose libraries moat itself must not map. Returns only on failure,
 * with MOAT_EXIT_RUNTIME after a message naming `command` ("moat <command>: ..."). */
int command_exec_program(const char* command, const char* program, int argc, char** argv);

extern const struct moat_command cmd_manifest;
extern const struct moat_command cmd_manifest_render;
extern const struct moat_command cmd_manifest_check;
extern const struct moat_command cmd_manifest_migrate;
extern const struct moat_command cmd_manifest_argv;
extern const struct moat_command cmd_sign;
extern const struct moat_command cmd_sigstruct_view;
extern const struct moat_command cmd_run;
extern const struct moat_command cmd_pf;
extern const struct moat_command cmd_quote;
extern const struct moat_command cmd_attest;
extern const struct moat_command cmd_coordinator;
extern const struct moat_command cmd_marblerun;
extern const struct moat_command cmd_amber;
extern const struct moat_command cmd_kbs;
