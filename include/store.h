/* store.h — the results file (docs/store.md describes the layout).
 *
 * One HDF5 file per sweep, written through parallel HDF5 (MPI-IO) by every
 * rank of a communicator. store_open() creates every group, dataset and
 * attribute collectively, preallocated (NaN-filled) and flushed, before any
 * work starts; during the sweep ranks only write raw hyperslabs
 * (independently: no metadata changes, no object time tracking). At each
 * store_sync() all ranks flush collectively and only then mark the units
 * they finished before it as done, so a kill -9 at any moment leaves a file
 * that opens and whose done flags never claim missing data.
 *
 * Opening an existing file resumes it: the config hash must match (or
 * `overwrite` recreates the file) and units already done are reported by
 * store_unit_done(). The model knows nothing of the store and the store knows
 * nothing of the model's internals: it is given shapes and labels.
 */
#ifndef PATCHGRID_STORE_H
#define PATCHGRID_STORE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "plan.h"

struct ModelConfig;

/* An activation stored for the clean and corrupted runs of every pair under
 * /activations/<run>/<name>/act, float32 [pair, (layer,) dims...], NaN past a
 * pair's length. Built by the caller from the model's hook shapes. */
typedef struct StoreActs {
    char name[48];          /* TL hook name without "blocks.N.", e.g. "attn.hook_z" */
    int kind;               /* the caller's id of the hook (the store does not read it) */
    size_t n_layers;        /* 0 for a hook that is not per layer */
    int32_t *layers;        /* (n_layers) model layer numbers */
    size_t ndim;            /* dims of one prompt's activation */
    size_t dims[3];         /* sizes, positions counted at the longest pair */
    const char *dim_names[3];
    uint8_t is_pos[3];      /* 1: one entry per token */
} StoreActs;

typedef struct StoreMeta {
    const char *engine;          /* "fast" or "naive" */
    const char *model_sha256;
    const char *blas_core;
    int ranks;
    /* Token strings for labels, or NULL: tok_str[pair][run][pos] (run 0
     * clean, 1 corrupted), n_tokens of the pair entries each. */
    char ***tok_str[2];
    /* (n_pairs) the pair each pair resamples from, or NULL if no experiment
     * resamples. */
    const int32_t *resample_partner;
    const StoreActs *acts;  /* (n_acts) activations to store, or none */
    size_t n_acts;
} StoreMeta;

typedef struct Store Store;

/* Collective over comm. Creates path, or resumes it if it exists and holds
 * the same config (sha256 of the config text); a different config is an
 * error unless overwrite, which recreates the file. All ranks return the same
 * status; err is set on every rank. */
int store_open(Store **out, const char *path, const Plan *plan, const struct ModelConfig *mc,
               const StoreMeta *meta, int overwrite, MPI_Comm comm, Err *err);

/* 1 if the unit was marked done in the file (at open or by a sync since). */
int store_unit_done(const Store *s, size_t unit);
size_t store_done_count(const Store *s);
int store_resumed(const Store *s); /* 1 if the file existed and was resumed */

/* Raw writes by the calling rank alone. vals[m * u->block + i]: metric m
 * (for the experiment's metrics), cell i of the unit's block. */
int store_write_unit(Store *s, const PlanUnit *u, const float *vals, Err *err);
/* base[run * METRIC_COUNT + metric] of one pair. */
int store_write_baseline(Store *s, size_t pair, const float *base, Err *err);
/* One prompt's activation (run 0 clean, 1 corrupted) for meta->acts[act] at
 * its layer_index-th layer: data has the act's dims with T tokens. */
int store_write_act(Store *s, size_t act, size_t layer_index, size_t pair, int run,
                    const float *data, size_t T, Err *err);

/* Collective: flush everything written so far, then mark done the units
 * each rank passes (its own, finished before this call), then flush again. */
int store_sync(Store *s, const size_t *units, size_t n_units, Err *err);

/* Collective: records the finish time and status ("complete" when every unit
 * is done, else "partial") and closes the file. Frees s (accepts NULL). */
int store_close(Store *s, Err *err);

#endif
