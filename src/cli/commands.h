/* commands.h - the ragd subcommands.
 *
 * Each subcommand lives in its own src/cli/cmd_<name>.c and registers itself:
 *
 *   static int run_tokenize(int argc, char **argv) { ... }
 *   RAGD_COMMAND(tokenize, 20, "text <-> token ids with a model's tokenizer", run_tokenize)
 *
 * `order` sorts the help listing. run() gets argv[0] = the subcommand name and returns the
 * process exit code: 0 ok, 1 runtime failure, 2 usage error.
 */
#ifndef RAGD_CLI_COMMANDS_H
#define RAGD_CLI_COMMANDS_H

typedef struct ragd_command {
    const char *name;
    const char *summary;
    int order;
    int (*run)(int argc, char **argv);
} ragd_command;

void ragd_command_register(const ragd_command *cmd);

#define RAGD_COMMAND(NAME, ORDER, SUMMARY, FN)                                                     \
    static const ragd_command ragd_cmd_##NAME = {#NAME, SUMMARY, ORDER, FN};                       \
    __attribute__((constructor)) static void ragd_register_##NAME(void) {                          \
        ragd_command_register(&ragd_cmd_##NAME);                                                   \
    }

#endif
