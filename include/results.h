/* results.h — read a results file (docs/store.md) as per-cell means over pairs.
 *
 * For `patchgrid report`: everything a summary needs, without holding a
 * sweep's full [pair, ...] arrays in memory (they are read a block of pairs
 * at a time). Works on files of partial runs and on a file a sweep is still
 * writing: a cell's mean is over the pairs that have a value there (NaN =
 * not computed), and the done flags say how many work units are finished.
 * Serial HDF5, read-only; nothing in the file is changed.
 */
#ifndef PATCHGRID_RESULTS_H
#define PATCHGRID_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum { RES_MAX_AXES = 3 };

typedef struct ResAxis {
    char *name;    /* "layer", "pos", "head" (the dimension scale's name) */
    size_t n;
    char **label;  /* (n) the scale's values as text: "3", "-1", "IO" */
    /* pos axes only, else NULL: */
    long *index;   /* (n) the position in pair 0 (a named or negative position resolved), -1 if none */
    char **token;  /* (n) pair 0's clean token there (decoded, or "#ID" without a tokenizer), NULL if none */
} ResAxis;

typedef struct ResMetric {
    char *name;
    size_t cells;     /* per pair: the product of the axes' lengths */
    double *mean;     /* (cells) over the pairs that have the cell; NaN if none has */
    double *effect;   /* (cells) mean over the same pairs of the value minus the patched
                         run's own value (its baseline: corrupted when denoising, clean
                         when noising), or NULL when the file has no such baseline */
    uint32_t *count;  /* (cells) how many pairs have it */
    size_t n_valued;  /* cells that at least one pair has */
} ResMetric;

typedef struct ResExperiment {
    char *name, *patch, *hook, *direction, *source; /* attributes ("" if absent) */
    size_t n_axes;                   /* after pair */
    ResAxis axes[RES_MAX_AXES];      /* in the file's order: layer, [pos,] [head] */
    size_t units_done, units_total;  /* done flags set / flags */
    ResMetric *metrics;              /* logit_diff, logit_diff_norm, prob, logprob, kl, then others */
    size_t n_metrics;
} ResExperiment;

typedef struct ResBaseline {
    char *metric;
    double mean[2];  /* clean, corrupted run: mean over the pairs that have it (NaN if none) */
    float *values;   /* (n_pairs, 2) per pair */
} ResBaseline;

typedef struct Results {
    char *path;
    char *status;      /* "running", "partial", "complete"; "" if the file does not say */
    char *engine, *model_path, *config_path; /* root attributes ("" if absent) */
    size_t n_pairs;
    ResBaseline *baselines;
    size_t n_baselines;
    ResExperiment *exps;  /* by name */
    size_t n_exps;
    size_t units_done, units_total; /* over all experiments */
} Results;

/* Reads the file at path. On error returns -1 with a one-line message naming
 * the file (missing, not HDF5, not a patchgrid results file, malformed) and
 * *out NULL. The caller frees *out with results_free (accepts NULL). */
int results_load(Results **out, const char *path, Err *err);
void results_free(Results *r);

/* The k (or fewer) cells with the largest |effect| (|mean| when the metric
 * has no effect), cells without a value excluded, largest first, ties in
 * cell order; writes their indices to top and returns how many. A cell index
 * is row-major over the axes. */
size_t results_top_cells(const ResMetric *m, size_t k, size_t *top);

/* The index of axis a of cell (row-major over the experiment's axes). */
size_t results_cell_coord(const ResExperiment *e, size_t cell, size_t a);

#endif
