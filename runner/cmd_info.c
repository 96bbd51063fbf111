/* cmd_info.c — placeholder until the command lands. */
#include <stdio.h>
#include "cli.h"
int cmd_info(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "patchgrid info: not implemented yet\n");
    return 1;
}
