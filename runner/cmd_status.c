/* cmd_status.c — `patchgrid status FILE.h5...`: how far a results file is, for
 * people watching a sweep and for job scripts deciding whether to requeue.
 *
 * The done flags are the truth, not /status: a run killed after its last
 * sync still says "running" although every unit may be done.
 */
#include <stdio.h>
#include <string.h>

#include "cfg.h"
#include "cli.h"
#include "err.h"
#include "sweepfile.h"

enum { STATUS_INCOMPLETE = 3 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: patchgrid status [-v] FILE.h5...\n"
            "       patchgrid status [-v] --config CONFIG.yaml\n"
            "\n"
            "Prints, for each results file, one line: its state and how much is done, e.g.\n"
            "    results.h5: running, 33.3%% done (1200 of 3600 done flags)\n"
            "counting the done flags of its experiments (one per pair and layer slice, set\n"
            "when those results are final). The state is `complete` when every flag is\n"
            "set, else the file's /status (`running` while a run writes it, or after a\n"
            "run that was killed; `partial` after a run that stopped early, a part of a\n"
            "job array or a partial merge).\n"
            "The file can be read while a run writes it.\n"
            "\n"
            "  --config CONFIG.yaml   the file that `patchgrid run CONFIG.yaml` writes\n"
            "                         (the config's `output`)\n"
            "  -v                     also name the pairs that are not done\n"
            "\n"
            "Exit status: 0 every file is complete, 3 some file is not, 1 error.\n");
}

static int report(const char *path, int verbose, int *incomplete)
{
    Err err;
    SweepFile *f;
    if (sf_open(&f, path, 0, &err)) return cli_fail(&err);
    size_t done, total;
    sf_count(f, &done, &total);
    const char *state = done == total ? "complete" : f->status[0] ? f->status : "unknown";
    printf("%s: %s, %.1f%% done (%zu of %zu done flags)", path, state,
           total ? 100.0 * (double)done / (double)total : 100.0, done, total);
    if (done == total && strcmp(f->status, "complete") != 0)
        printf(" (/status says %s: its last run ended without closing the file)",
               f->status[0] ? f->status : "nothing");
    printf("\n");
    if (verbose && done < total) {
        char missing[4096];
        sf_missing(f, missing, sizeof missing);
        printf("  not done: %s\n", missing);
    }
    *incomplete |= done < total;
    sf_close(f);
    return 0;
}

int cmd_status(int argc, char **argv)
{
    const char *config = NULL;
    int verbose = 0, n_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(o, "--config") == 0) {
            if (i + 1 >= argc) return cli_usage_error("status", "--config needs a file");
            config = argv[++i];
        } else if (strcmp(o, "-v") == 0 || strcmp(o, "--verbose") == 0) {
            verbose = 1;
        } else if (o[0] == '-' && o[1] != '\0') {
            return cli_usage_error("status", "unknown option '%s'", o);
        } else {
            n_files++;
        }
    }
    if ((config == NULL) == (n_files == 0))
        return cli_usage_error("status", "expected FILE.h5... or --config CONFIG.yaml");
    int incomplete = 0;
    if (config != NULL) {
        Err err;
        Config *cfg;
        if (cfg_load(&cfg, config, &err)) return cli_fail(&err);
        int rc = report(cfg->output, verbose, &incomplete);
        cfg_free(cfg);
        if (rc) return rc;
    } else {
        for (int i = 1; i < argc; i++) {
            if (argv[i][0] == '-' && argv[i][1] != '\0') continue;
            int rc = report(argv[i], verbose, &incomplete);
            if (rc) return rc;
        }
    }
    return incomplete ? STATUS_INCOMPLETE : 0;
}
