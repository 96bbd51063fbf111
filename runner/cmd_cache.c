/* cmd_cache.c — placeholder until the command lands. */
#include <stdio.h>
#include "cli.h"
int cmd_cache(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "patchgrid cache: not implemented yet\n");
    return 1;
}
