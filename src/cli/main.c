/* main.c - the ragd binary: dispatch to the self-registered subcommands (see commands.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpuinfo.h"
#include "cli/commands.h"

#define MAX_COMMANDS 64
static const ragd_command *g_commands[MAX_COMMANDS];
static int g_n_commands;

void ragd_command_register(const ragd_command *cmd) {
    if (g_n_commands >= MAX_COMMANDS) return;
    int i = g_n_commands++;
    /* keep sorted by (order, name) */
    while (i > 0 && (g_commands[i - 1]->order > cmd->order ||
                     (g_commands[i - 1]->order == cmd->order &&
                      strcmp(g_commands[i - 1]->name, cmd->name) > 0))) {
        g_commands[i] = g_commands[i - 1];
        i--;
    }
    g_commands[i] = cmd;
}

static void usage(FILE *f) {
    fprintf(f,
            "ragd %s - retrieval-augmented question answering, near the hardware limit\n\n"
            "usage: ragd <command> [options]\n\ncommands:\n",
            RAGD_VERSION);
    for (int i = 0; i < g_n_commands; i++)
        fprintf(f, "  %-16s %s\n", g_commands[i]->name, g_commands[i]->summary);
    fprintf(f, "  %-16s %s\n", "help", "show this list");
    fprintf(f, "\nrun 'ragd <command> --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    /* OpenBLAS picks its kernels when it loads: make sure it sees the right core type. */
    if (ragd_cpu_fix_openblas_env()) {
        execv("/proc/self/exe", argv);
        /* if re-exec fails we simply continue with the default kernels */
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("ragd %s\n", RAGD_VERSION);
        return 0;
    }
    for (int i = 0; i < g_n_commands; i++)
        if (!strcmp(g_commands[i]->name, name)) return g_commands[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "ragd: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
