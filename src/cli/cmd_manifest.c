/* SPDX-License-Identifier: Apache-2.0 */
/* `moat manifest <render|check|migrate>`: dispatches to the nested command table. */
#include <string.h>

#include "commands.h"
#include "common.h"

static const struct moat_command* const g_manifest_commands[] = {
    &cmd_manifest_render,
    &cmd_manifest_check,
    &cmd_manifest_migrate,
    &cmd_manifest_argv,
};

static int manifest_run(int argc, char** argv);

const struct moat_command cmd_manifest = {
    .name    = "manifest",
    .run     = manifest_run,
    .summary = "render, check and migrate Gramine manifests",
    .usage =
        "usage: moat manifest render [-D NAME[=VALUE]]... [--check|--no-check] "
        "[--chroot DIR] TEMPLATE [OUTPUT]\n"
        "       moat manifest check [--finalized] FILE...\n"
        "       moat manifest migrate [--in-place] IN [OUT]\n"
        "       moat manifest argv-serialize [-o FILE] ARG...\n"
        "\n"
        "Run 'moat manifest SUBCOMMAND --help' for details.\n",
};

static int manifest_run(int argc, char** argv) {
    if (argc < 2) {
        command_print_usage(&cmd_manifest, stderr);
        return MOAT_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        command_print_usage(&cmd_manifest, stdout);
        return MOAT_EXIT_OK;
    }
    for (size_t i = 0; i < ARRAY_SIZE(g_manifest_commands); i++) {
        const struct moat_command* sub = g_manifest_commands[i];
        /* nested names are "manifest <sub>" */
        if (strcmp(sub->name + strlen("manifest "), argv[1]) == 0)
            return sub->run(argc - 1, argv + 1);
    }
    return command_usage_error(&cmd_manifest, "unknown subcommand '%s'", argv[1]);
}
