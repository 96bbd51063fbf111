/* worker.h — what one rank does with a work unit: baseline runs of the
 * unit's pair (cached while consecutive units share it), the patch engine
 * over the unit's cells, and the raw writes of the results into the store.
 */
#ifndef PATCHGRID_WORKER_H
#define PATCHGRID_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "err.h"
#include "model.h"
#include "plan.h"
#include "store.h"

typedef struct Worker Worker;

/* A worker for a plan; naive selects the oracle engine. acts lists the
 * activations to store for every pair's baseline runs (kind = HookKind). */
Worker *worker_new(const Model *m, const Plan *plan, int naive, const StoreActs *acts,
                   size_t n_acts);
void worker_free(Worker *w); /* accepts NULL */

/* Computes unit `id` and writes its results (and its pair's baselines) into
 * the store. Returns 0, or -1 with err set. */
int worker_run_unit(Worker *w, Store *store, size_t id, Err *err);

/* Cells computed and skipped as no-ops, FLOPs, since worker_new. */
PatchStats worker_stats(const Worker *w);

/* The pair whose values a resample source takes for pair i: another pair of
 * the same length, chosen by the config's seed; -1 if there is none. */
long worker_resample_partner(const Config *cfg, size_t i);

#endif
