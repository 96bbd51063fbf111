/* worker.c — computing work units (see include/worker.h). */
#include "worker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patch.h"

struct Worker {
    const Model *m;
    const Plan *plan;
    const StoreActs *acts;
    size_t n_acts;
    PatchEngine *engine;
    size_t runs_pair0;     /* runs[i] are the baselines of pair runs_pair0 + i */
    size_t n_runs;
    PairRuns **runs;       /* (pairs_per_unit) */
    PairRuns **partner;    /* (pairs_per_unit) resample sources outside the block */
    size_t *partner_pair;  /* (pairs_per_unit) whose runs partner[i] holds */
    PatchMean *mean[2];    /* dataset means of the clean / corrupted runs */
    PatchJob *jobs;        /* (pairs_per_unit) */
    PatchCell *cells;      /* (max_block) */
    size_t *block_idx;     /* (max_block) */
    float *cell_vals;      /* (max_block, METRIC_COUNT) */
    float *vals;           /* (METRIC_COUNT, max_block) */
};

Worker *worker_new(const Model *m, const Plan *plan, int naive, const StoreActs *acts,
                   size_t n_acts)
{
    Worker *w = xcalloc(1, sizeof *w);
    w->m = m;
    w->plan = plan;
    w->acts = acts;
    w->n_acts = n_acts;
    PatchExp *exps = xcalloc(plan->n_exps, sizeof *exps);
    for (size_t e = 0; e < plan->n_exps; e++) exps[e] = plan->exps[e].px;
    w->engine = patch_new(m, exps, plan->n_exps, naive, 0);
    free(exps);
    uint8_t keep[HOOK_KIND_COUNT] = {0};
    for (size_t a = 0; a < n_acts; a++) keep[acts[a].kind] = 1;
    patch_keep(w->engine, keep);
    size_t ppu = plan->pairs_per_unit, mb = plan_max_vals(plan);
    w->runs = xcalloc(ppu, sizeof *w->runs);
    w->partner = xcalloc(ppu, sizeof *w->partner);
    w->partner_pair = xcalloc(ppu, sizeof *w->partner_pair);
    for (size_t i = 0; i < ppu; i++) w->partner_pair[i] = SIZE_MAX;
    w->jobs = xcalloc(ppu, sizeof *w->jobs);
    w->cells = xcalloc(mb, sizeof *w->cells);
    w->block_idx = xcalloc(mb, sizeof *w->block_idx);
    w->cell_vals = xcalloc(xmul(mb, METRIC_COUNT), sizeof(float));
    w->vals = xcalloc(xmul(mb, METRIC_COUNT), sizeof(float));
    w->runs_pair0 = SIZE_MAX;
    return w;
}

static void drop_runs(Worker *w)
{
    for (size_t i = 0; i < w->n_runs; i++) {
        patch_pair_free(w->runs[i]);
        w->runs[i] = NULL;
    }
    w->n_runs = 0;
    w->runs_pair0 = SIZE_MAX;
}

void worker_free(Worker *w)
{
    if (w == NULL) return;
    drop_runs(w);
    for (size_t i = 0; i < w->plan->pairs_per_unit; i++) patch_pair_free(w->partner[i]);
    patch_mean_free(w->mean[0]);
    patch_mean_free(w->mean[1]);
    patch_free(w->engine);
    free(w->runs);
    free(w->partner);
    free(w->partner_pair);
    free(w->jobs);
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

static int pair_runs(Worker *w, size_t pair, PairRuns **out, Err *err)
{
    PatchPair pp = pair_of(&w->plan->cfg->pairs[pair]);
    if (patch_pair_runs(w->engine, &pp, out, err)) return err_prefix(err, "pair %zu: ", pair);
    return 0;
}

/* Baselines of the unit's pairs (kept while consecutive units share them),
 * written to the store when computed. */
static int block_runs(Worker *w, Store *store, const PlanUnit *u, Err *err)
{
    if (w->runs_pair0 == u->pair0 && w->n_runs == u->pair1 - u->pair0) return 0;
    drop_runs(w);
    size_t n = u->pair1 - u->pair0;
    PatchPair *pairs = xcalloc(n, sizeof *pairs);
    for (size_t i = 0; i < n; i++) pairs[i] = pair_of(&w->plan->cfg->pairs[u->pair0 + i]);
    int rc = patch_pairs_runs(w->engine, pairs, n, w->runs, err);
    free(pairs);
    if (rc) return err_prefix(err, "pairs %zu..%zu: ", u->pair0, u->pair1 - 1);
    w->n_runs = n;
    for (size_t p = u->pair0; p < u->pair1; p++) {
        const PairRuns *r = w->runs[p - u->pair0];
        float base[2 * METRIC_COUNT];
        patch_baseline(r, base);
        int bad = store_write_baseline(store, p, base, err);
        for (size_t a = 0; a < w->n_acts && !bad; a++)
            for (size_t li = 0; li < (w->acts[a].n_layers ? w->acts[a].n_layers : 1) && !bad; li++)
                for (int run = 0; run < 2 && !bad; run++) {
                    size_t layer = w->acts[a].n_layers ? (size_t)w->acts[a].layers[li] : 0;
                    bad = store_write_act(store, a, li, p, run,
                                          patch_pair_act(r, run, (HookKind)w->acts[a].kind, layer),
                                          patch_pair_tokens(r), err);
                }
        if (bad) {
            drop_runs(w);
            return -1;
        }
    }
    w->runs_pair0 = u->pair0;
    return 0;
}

/* The runs of pair j, as the resample source of slot i of the block. */
static int partner_runs(Worker *w, size_t i, size_t j, const PairRuns **out, Err *err)
{
    if (j >= w->runs_pair0 && j < w->runs_pair0 + w->n_runs) {
        *out = w->runs[j - w->runs_pair0];
        return 0;
    }
    if (w->partner_pair[i] != j) {
        patch_pair_free(w->partner[i]);
        w->partner[i] = NULL;
        w->partner_pair[i] = SIZE_MAX;
        if (pair_runs(w, j, &w->partner[i], err)) return -1;
        w->partner_pair[i] = j;
    }
    *out = w->partner[i];
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
    if (block_runs(w, store, &u, err)) return -1;
    /* The source run kind: the clean run's activations go into the
     * corrupted run when denoising, and the other way round. */
    int src_run = x->px.dir == DIR_DENOISING ? PATCH_RUN_CLEAN : PATCH_RUN_CORRUPTED;
    const PatchMean *mean = NULL;
    if (x->px.source == SRC_MEAN && mean_for(w, src_run, &mean, err)) return -1;
    size_t n_pairs = u.pair1 - u.pair0, off = 0;
    for (size_t i = 0; i < n_pairs; i++) {
        size_t pair = u.pair0 + i;
        PatchJob *job = &w->jobs[i];
        *job = (PatchJob){.runs = w->runs[i], .cells = w->cells + off,
                          .out = w->cell_vals + off * METRIC_COUNT};
        switch (x->px.source) {
        case SRC_OTHER: job->src = (PatchSrc){.runs = w->runs[i], .run = src_run}; break;
        case SRC_ZERO: break;
        case SRC_MEAN: job->src = (PatchSrc){.mean = mean}; break;
        case SRC_RESAMPLE: {
            long j = worker_resample_partner(plan->cfg, pair);
            CHECK(j >= 0); /* checked when the run starts */
            if (partner_runs(w, i, (size_t)j, &job->src.runs, err)) return -1;
            job->src.run = src_run;
            break;
        }
        }
        job->n_cells = plan_unit_cells(plan, &u, pair, w->cells + off, w->block_idx + off);
        off += job->n_cells;
    }
    if (patch_run(w->engine, &x->px, w->jobs, n_pairs, err))
        return err_prefix(err, "pairs %zu..%zu, experiment %s: ", u.pair0, u.pair1 - 1,
                          x->cfg->name);
    for (size_t i = 0; i < (size_t)METRIC_COUNT * u.n_vals; i++) w->vals[i] = NAN;
    for (size_t i = 0; i < n_pairs; i++) {
        const PatchJob *job = &w->jobs[i];
        size_t first = (size_t)(job->cells - w->cells);
        for (size_t c = 0; c < job->n_cells; c++)
            for (int m = 0; m < METRIC_COUNT; m++)
                if (x->px.metrics & (1u << m))
                    w->vals[(size_t)m * u.n_vals + i * u.pair_vals + w->block_idx[first + c]] =
                        job->out[c * METRIC_COUNT + (size_t)m];
    }
    return store_write_unit(store, &u, w->vals, err);
}
