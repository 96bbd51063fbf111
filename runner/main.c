/* main.c — the patchgrid command line: dispatch to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "version.h"

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"info", cmd_info, "describe a Hugging Face model directory"},
    {"cache", cmd_cache, "run prompts, write logits and hooked activations to HDF5"},
    {"tokenize", cmd_tokenize, "text to token ids and back with the model's tokenizer"},
    {"run", cmd_run, "run a patching sweep from a YAML config (MPI-aware, resumable)"},
    {"report", cmd_report, "tables and heatmap PNGs of a results file"},
    {"status", cmd_status, "how far a results file is (exit 0 when complete)"},
    {"merge", cmd_merge, "combine part files of a job array into one results file"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: patchgrid COMMAND [ARGS]\n"
            "\n"
            "Activation patching on transformer language models, from one core to a cluster.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'patchgrid COMMAND --help' describes one command. Version %s.\n",
            PATCHGRID_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("patchgrid %s\n", PATCHGRID_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "patchgrid: unknown command '%s' (see 'patchgrid --help')\n", argv[1]);
    return 2;
}
