/* cmd_tokenize.c — placeholder until the command lands. */
#include <stdio.h>
#include "cli.h"
int cmd_tokenize(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "patchgrid tokenize: not implemented yet\n");
    return 1;
}
