/* patch.h — the patch engine: metrics of patched runs, cell by cell.
 *
 * A pair is a clean and a corrupted prompt of equal length with an answer and
 * a wrong token. patch_pair_runs() runs both prompts once, keeping the
 * activations patches read (the "baselines"). patch_cells() then gives, for
 * each cell (layer, pos, head) of an experiment, the metrics of the run in
 * which that one activation is replaced by the source's:
 *   denoising: the corrupted run, patched with the clean run's activation;
 *   noising:   the clean run, patched with the corrupted run's activation;
 * the source being the pair's other run, zero, the dataset mean or another
 * pair's run (resample).
 *
 * Two engines give the same numbers:
 *   fast  — recomputes only what a patch can change: from the patched layer
 *           on, from the first changed position on (earlier positions' keys
 *           and values come from the baseline), only the logits the metrics
 *           read, many cells stacked into each matrix product, and cells whose
 *           source equals the activation already there are not run at all
 *           (their value is the baseline's, exactly).
 *   naive — TransformerLens's way: one full forward pass per cell with a hook
 *           that overwrites the activation, full logits. The oracle the fast
 *           engine is tested against and the benchmark's baseline.
 */
#ifndef PATCHGRID_PATCH_H
#define PATCHGRID_PATCH_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "err.h"
#include "model.h"

enum { PATCH_RUN_CLEAN = 0, PATCH_RUN_CORRUPTED = 1 };

typedef struct PatchPair {
    const int32_t *clean, *corrupted; /* (n_tokens) */
    size_t n_tokens;
    int32_t answer, wrong;
} PatchPair;

/* What an experiment does; the grid axes are the cells passed in. */
typedef struct PatchExp {
    PatchKind kind;
    int per_pos;        /* head kinds: 1 = one position per cell, 0 = all positions */
    PatchDir dir;
    PatchSource source;
    uint32_t metrics;   /* bit (1u << Metric) per metric to compute */
} PatchExp;

/* One cell: pos is -1 for head kinds over all positions, head is -1 for the
 * residual kinds. */
typedef struct PatchCell {
    int32_t layer, pos, head;
} PatchCell;

typedef struct PatchEngine PatchEngine;
typedef struct PairRuns PairRuns;
typedef struct PatchMean PatchMean;

/* The patch source of an experiment: a run of a pair (the pair's own other
 * run, or another pair's for resample), or a dataset mean, or zero (both
 * NULL). */
typedef struct PatchSrc {
    const PairRuns *runs;
    int run;               /* PATCH_RUN_CLEAN or PATCH_RUN_CORRUPTED */
    const PatchMean *mean;
} PatchSrc;

/* An engine for model m (which must outlive it). `exps` lists every
 * experiment it will be asked to run, so that baselines keep exactly the
 * activations those need. naive selects the oracle engine. max_rows bounds
 * the stacked rows of one batched forward (memory ~ max_rows x 20 d_model
 * floats); 0 picks a default. */
PatchEngine *patch_new(const Model *m, const PatchExp *exps, size_t n_exps, int naive,
                       size_t max_rows);

/* Baseline runs also keep these hook kinds (keep[HOOK_KIND_COUNT]), for a
 * caller that stores activations; read them with patch_pair_act(). */
void patch_keep(PatchEngine *e, const uint8_t *keep);

/* A baseline run's activation of kind at layer (0 for per-model kinds), in
 * TransformerLens's shape for one prompt (see hook_shape), for a kept kind. */
const float *patch_pair_act(const PairRuns *r, int run, HookKind kind, size_t layer);
size_t patch_pair_tokens(const PairRuns *r);
void patch_free(PatchEngine *e); /* accepts NULL */

/* Runs the pair's clean and corrupted prompts. Errors: token ids out of the
 * vocabulary, prompts longer than the context. */
int patch_pair_runs(PatchEngine *e, const PatchPair *pair, PairRuns **out, Err *err);

/* The same for n pairs at once, in one batched forward (faster: more rows per
 * matrix product); out[i] are the pairs' runs. On error out[] is all NULL. */
int patch_pairs_runs(PatchEngine *e, const PatchPair *pairs, size_t n, PairRuns **out,
                     Err *err);
void patch_pair_free(PairRuns *r); /* accepts NULL */

/* Metrics of the unpatched runs: out[run * METRIC_COUNT + metric]. KL of the
 * clean run is 0; normalised logit difference is 1 (clean) and 0 (corrupted). */
void patch_baseline(const PairRuns *r, float out[2 * METRIC_COUNT]);

/* The cells of one pair to compute, with their source, and where the
 * metrics go: out[c * METRIC_COUNT + metric] for the metrics in exp->metrics
 * (others are left untouched). Cells must be in range for the model and pair. */
typedef struct PatchJob {
    const PairRuns *runs;
    PatchSrc src;
    const PatchCell *cells;
    size_t n_cells;
    float *out;
} PatchJob;

/* Computes the jobs of one experiment. The fast engine stacks the cells of
 * all jobs (several pairs) into the same forward passes, so that matrix
 * products see many rows; the results of a cell do not depend on which other
 * cells share its batch beyond float rounding, and are bitwise the same for
 * the same list of jobs. Returns 0, or -1 on an error from the model. */
int patch_run(PatchEngine *e, const PatchExp *exp, const PatchJob *jobs, size_t n_jobs,
              Err *err);

/* patch_run of a single job. */
int patch_cells(PatchEngine *e, const PairRuns *r, const PatchSrc *src, const PatchExp *exp,
                const PatchCell *cells, size_t n_cells, float *out, Err *err);

/* Work counters since patch_new: cells computed, cells skipped as exact
 * no-ops, forward FLOPs (matrix products and attention). */
typedef struct PatchStats {
    uint64_t cells, noop_cells;
    double flops;
} PatchStats;
PatchStats patch_stats(const PatchEngine *e);

/* Dataset means of one run kind (clean or corrupted) over pairs of one
 * length, for `source: mean`. */
PatchMean *patch_mean_new(const PatchEngine *e, size_t n_tokens);
void patch_mean_add(PatchMean *mean, const PairRuns *r, int run); /* same n_tokens */
void patch_mean_finish(PatchMean *mean);
void patch_mean_free(PatchMean *mean); /* accepts NULL */

#endif
