/* commands.h - the ragd subcommands. Each lives in its own cmd_<name>.c and returns the
 * process exit code (0 ok, 1 runtime failure, 2 usage error). */
#ifndef RAGD_CLI_COMMANDS_H
#define RAGD_CLI_COMMANDS_H

typedef struct ragd_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} ragd_command;

int cmd_info(int argc, char **argv);

/* The table, NULL-terminated (defined in main.c). */
extern const ragd_command ragd_commands[];

#endif
