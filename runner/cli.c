/* cli.c — helpers shared by the subcommands (see include/cli.h). */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"
#include "err.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "patchgrid %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'patchgrid %s --help')\n", cmd);
    return 2;
}

int cli_fail(const Err *err)
{
    fprintf(stderr, "%s\n", err->msg);
    return 1;
}
