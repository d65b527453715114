/* main.c - the ragd binary: dispatch to subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpuinfo.h"
#include "cli/commands.h"

const ragd_command ragd_commands[] = {
    {"info", "show the build, CPU features and (with --bench) sgemm and bandwidth", cmd_info},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
    fprintf(f,
            "ragd %s - retrieval-augmented question answering, near the hardware limit\n\n"
            "usage: ragd <command> [options]\n\ncommands:\n",
            RAGD_VERSION);
    for (const ragd_command *c = ragd_commands; c->name; c++)
        fprintf(f, "  %-16s %s\n", c->name, c->summary);
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
    for (const ragd_command *c = ragd_commands; c->name; c++)
        if (!strcmp(c->name, name)) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "ragd: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
