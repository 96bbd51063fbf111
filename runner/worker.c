/* worker.c — computing work units (see include/worker.h). */
#include "worker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patch.h"

struct Worker {
    const Model *m;
    const Plan *plan;
    PatchEngine *engine;
    PairRuns *runs;        /* baselines of pair `runs_pair` */
    size_t runs_pair;
    PairRuns *partner;     /* resample source: runs of pair `partner_pair` */
    size_t partner_pair;
    PatchMean *mean[2];    /* dataset means of the clean / corrupted runs */
    PatchCell *cells;      /* (max_block) */
    size_t *block_idx;     /* (max_block) */
    float *cell_vals;      /* (max_block, METRIC_COUNT) */
    float *vals;           /* (METRIC_COUNT, max_block) */
};

Worker *worker_new(const Model *m, const Plan *plan, int naive)
{
    Worker *w = xcalloc(1, sizeof *w);
    w->m = m;
    w->plan = plan;
    PatchExp *exps = xcalloc(plan->n_exps, sizeof *exps);
    for (size_t e = 0; e < plan->n_exps; e++) exps[e] = plan->exps[e].px;
    w->engine = patch_new(m, exps, plan->n_exps, naive, 0);
    free(exps);
    size_t mb = plan_max_block(plan);
    w->cells = xcalloc(mb, sizeof *w->cells);
    w->block_idx = xcalloc(mb, sizeof *w->block_idx);
    w->cell_vals = xcalloc(xmul(mb, METRIC_COUNT), sizeof(float));
    w->vals = xcalloc(xmul(mb, METRIC_COUNT), sizeof(float));
    w->runs_pair = w->partner_pair = SIZE_MAX;
    return w;
}

void worker_free(Worker *w)
{
    if (w == NULL) return;
    patch_pair_free(w->runs);
    patch_pair_free(w->partner);
    patch_mean_free(w->mean[0]);
    patch_mean_free(w->mean[1]);
    patch_free(w->engine);
    free(w->cells);
    free(w->block_idx);
    free(w->cell_vals);
    free(w->vals);
    free(w);
}

PatchStats worker_stats(const Worker *w) { return patch_stats(w->engine); }

static PatchPair pair_of(const CfgPair *p)
{
    return (PatchPair){.clean = p->clean, .corrupted = p->corrupted, .n_tokens = p->n_tokens,
                       .answer = p->answer, .wrong = p->wrong};
}

static int runs_for(Worker *w, size_t pair, PairRuns **runs, size_t *cached, Err *err)
{
    if (*cached == pair) return 0;
    patch_pair_free(*runs);
    *runs = NULL;
    *cached = SIZE_MAX;
    PatchPair pp = pair_of(&w->plan->cfg->pairs[pair]);
    if (patch_pair_runs(w->engine, &pp, runs, err)) return err_prefix(err, "pair %zu: ", pair);
    *cached = pair;
    return 0;
}

long worker_resample_partner(const Config *cfg, size_t i)
{
    size_t n = 0;
    for (size_t j = 0; j < cfg->n_pairs; j++)
        n += j != i && cfg->pairs[j].n_tokens == cfg->pairs[i].n_tokens;
    if (n == 0) return -1;
    /* splitmix64 of (seed, i): a fixed, well-mixed choice per pair */
    uint64_t z = cfg->seed + 0x9e3779b97f4a7c15ULL * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    size_t k = (size_t)(z % n);
    for (size_t j = 0; j < cfg->n_pairs; j++)
        if (j != i && cfg->pairs[j].n_tokens == cfg->pairs[i].n_tokens && k-- == 0) return (long)j;
    return -1;
}

/* The dataset mean of one run kind, computed on first use. */
static int mean_for(Worker *w, int run, const PatchMean **out, Err *err)
{
    if (w->mean[run] == NULL) {
        const Config *cfg = w->plan->cfg;
        PatchMean *mean = patch_mean_new(w->engine, cfg->pairs[0].n_tokens);
        for (size_t i = 0; i < cfg->n_pairs; i++) {
            PatchPair pp = pair_of(&cfg->pairs[i]);
            PairRuns *r;
            if (patch_pair_runs(w->engine, &pp, &r, err)) {
                patch_mean_free(mean);
                return err_prefix(err, "pair %zu: ", i);
            }
            patch_mean_add(mean, r, run);
            patch_pair_free(r);
        }
        patch_mean_finish(mean);
        w->mean[run] = mean;
    }
    *out = w->mean[run];
    return 0;
}

int worker_run_unit(Worker *w, Store *store, size_t id, Err *err)
{
    const Plan *plan = w->plan;
    PlanUnit u = plan_unit(plan, id);
    const PlanExp *x = &plan->exps[u.exp];
    int new_pair = w->runs_pair != u.pair;
    if (runs_for(w, u.pair, &w->runs, &w->runs_pair, err)) return -1;
    if (new_pair) {
        float base[2 * METRIC_COUNT];
        patch_baseline(w->runs, base);
        if (store_write_baseline(store, u.pair, base, err)) return -1;
    }
    /* The source run kind: the clean run's activations go into the
     * corrupted run when denoising, and the other way round. */
    int src_run = x->px.dir == DIR_DENOISING ? PATCH_RUN_CLEAN : PATCH_RUN_CORRUPTED;
    PatchSrc src = {0};
    switch (x->px.source) {
    case SRC_OTHER: src = (PatchSrc){.runs = w->runs, .run = src_run}; break;
    case SRC_ZERO: break;
    case SRC_MEAN:
        if (mean_for(w, src_run, &src.mean, err)) return -1;
        break;
    case SRC_RESAMPLE: {
        long j = worker_resample_partner(plan->cfg, u.pair);
        CHECK(j >= 0); /* checked when the run starts */
        if (runs_for(w, (size_t)j, &w->partner, &w->partner_pair, err)) return -1;
        src = (PatchSrc){.runs = w->partner, .run = src_run};
        break;
    }
    }
    size_t n = plan_unit_cells(plan, &u, w->cells, w->block_idx);
    if (patch_cells(w->engine, w->runs, &src, &x->px, w->cells, n, w->cell_vals, err))
        return err_prefix(err, "pair %zu, experiment %s: ", u.pair, x->cfg->name);
    for (size_t i = 0; i < (size_t)METRIC_COUNT * u.block; i++) w->vals[i] = NAN;
    for (size_t i = 0; i < n; i++)
        for (int m = 0; m < METRIC_COUNT; m++)
            if (x->px.metrics & (1u << m))
                w->vals[(size_t)m * u.block + w->block_idx[i]] =
                    w->cell_vals[i * METRIC_COUNT + (size_t)m];
    return store_write_unit(store, &u, w->vals, err);
}
