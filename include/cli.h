/* cli.h — the subcommands of the patchgrid binary.
 *
 * Each takes the arguments after its name (argv[0] is the command name) and
 * returns the process exit status: 0 success, 1 error (message already
 * printed on stderr), 2 usage error. Each handles its own --help.
 */
#ifndef PATCHGRID_CLI_H
#define PATCHGRID_CLI_H

int cmd_info(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_merge(int argc, char **argv);

/* 1 if any argument after argv[0] is --help or -h. */
int cli_wants_help(int argc, char **argv);

/* Prints "patchgrid: MSG" style errors for bad command-line usage and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints an Err message (one line) on stderr and returns 1. */
struct Err;
int cli_fail(const struct Err *err);

#endif
