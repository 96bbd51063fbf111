/* patch.c — the patch engine (see include/patch.h).
 *
 * Fast engine, per batch of cells:
 *   1. For each cell, compare the source slice with the activation already
 *      in the run being patched ("base"). Identical everywhere: the cell is
 *      an exact no-op and takes the base run's metrics. Otherwise `start` is
 *      the first position that differs: nothing before it can change.
 *   2. Each remaining cell becomes a model segment: positions [start, T),
 *      entering the network at the patched layer at the point the patch
 *      acts (model_entry_kinds), with keys/values of positions < start read
 *      from the base run. The fill callback copies the base run's tensors
 *      for those rows and writes the source slice over them.
 *   3. Segments are sorted by entry layer and stacked, up to max_rows rows,
 *      into one model_forward with logits only at the last position and only
 *      the answer/wrong columns when the metrics need no more.
 * Naive engine: a full forward per cell with a hook that overwrites the
 * slice, as TransformerLens's patching functions do.
 *
 * Dimension legend: T tokens, C d_model, NH heads, HD d_head, V vocab, L layers.
 */
#include "patch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_ROWS 4096

struct PatchEngine {
    const Model *m;
    int naive;
    size_t max_rows;
    uint8_t keep[HOOK_KIND_COUNT]; /* what baseline runs keep */
    Fwd *work;                     /* workspace of patched runs (keeps nothing) */
    PatchStats stats;
};

struct PairRuns {
    const PatchEngine *e;
    int32_t *tokens[2];  /* (T) clean, corrupted */
    size_t T;
    int32_t answer, wrong;
    Fwd *run[2];
    float *clean_logp;   /* (V) log-softmax of the clean run's last position */
    float base[2 * METRIC_COUNT];
};

struct PatchMean {
    const PatchEngine *e;
    size_t T, count;
    double *sum[HOOK_KIND_COUNT];  /* (L, size(kind)) running sums */
    float *mean[HOOK_KIND_COUNT];  /* (L, size(kind)) after patch_mean_finish */
};

/* ---- what each patch kind touches --------------------------------------- */

static HookKind patched_hook(PatchKind k)
{
    static const HookKind map[PATCH_KIND_COUNT] = {
        [PATCH_RESID_PRE] = HOOK_RESID_PRE, [PATCH_RESID_MID] = HOOK_RESID_MID,
        [PATCH_RESID_POST] = HOOK_RESID_POST, [PATCH_ATTN_OUT] = HOOK_ATTN_OUT,
        [PATCH_MLP_OUT] = HOOK_MLP_OUT, [PATCH_Z] = HOOK_Z, [PATCH_Q] = HOOK_Q,
        [PATCH_K] = HOOK_K, [PATCH_V] = HOOK_V, [PATCH_PATTERN] = HOOK_PATTERN,
    };
    return map[k];
}

static ModelEntry patch_entry(PatchKind k)
{
    static const ModelEntry map[PATCH_KIND_COUNT] = {
        [PATCH_RESID_PRE] = MODEL_ENTRY_RESID_PRE, [PATCH_RESID_MID] = MODEL_ENTRY_RESID_MID,
        /* resid_post of layer l is resid_pre of layer l + 1 */
        [PATCH_RESID_POST] = MODEL_ENTRY_RESID_PRE, [PATCH_ATTN_OUT] = MODEL_ENTRY_ATTN_OUT,
        [PATCH_MLP_OUT] = MODEL_ENTRY_MLP_OUT, [PATCH_Z] = MODEL_ENTRY_Z,
        [PATCH_Q] = MODEL_ENTRY_QKV, [PATCH_K] = MODEL_ENTRY_QKV, [PATCH_V] = MODEL_ENTRY_QKV,
        [PATCH_PATTERN] = MODEL_ENTRY_PATTERN,
    };
    return map[k];
}

static int is_head_kind(PatchKind k) { return k >= PATCH_Z; }

/* Floats of one layer of a kind for one prompt of T tokens. */
static size_t kind_size(const ModelConfig *c, HookKind k, size_t T)
{
    return hook_is_attn(k) ? c->n_heads * T * T : T * hook_width(c, k);
}

/* The slice a cell overwrites: rows [r0, r1) (query rows for the pattern),
 * columns [c0, c1) of a per-position kind, or head h of the pattern. */
typedef struct Slice {
    HookKind hook;
    size_t layer;
    size_t r0, r1, c0, c1, head;
} Slice;

static Slice cell_slice(const ModelConfig *c, const PatchExp *x, const PatchCell *cell, size_t T)
{
    Slice s = {.hook = patched_hook(x->kind), .layer = (size_t)cell->layer};
    int all_pos = is_head_kind(x->kind) && !x->per_pos;
    s.r0 = all_pos ? 0 : (size_t)cell->pos;
    s.r1 = all_pos ? T : s.r0 + 1;
    if (is_head_kind(x->kind)) {
        s.head = (size_t)cell->head;
        s.c0 = s.head * c->d_head;
        s.c1 = s.c0 + c->d_head;
    } else {
        s.c0 = 0;
        s.c1 = hook_width(c, s.hook);
    }
    return s;
}

/* Pointer to row r of slice s in a full (one prompt) activation `act`, and
 * the number of floats of that row that the slice covers. */
static size_t slice_row(const ModelConfig *c, const Slice *s, size_t T, size_t r, size_t *off)
{
    if (hook_is_attn(s->hook)) {
        *off = s->head * T * T + r * T;
        return T;
    }
    *off = r * hook_width(c, s->hook) + s->c0;
    return s->c1 - s->c0;
}

static const float *src_act(const PatchSrc *src, HookKind k, size_t layer)
{
    if (src->runs != NULL) return fwd_act(src->runs->run[src->run], k, layer);
    if (src->mean != NULL) {
        const ModelConfig *c = model_config(src->mean->e->m);
        return src->mean->mean[k] + layer * kind_size(c, k, src->mean->T);
    }
    return NULL; /* zero */
}

/* First row of the slice where the source differs from `base` (bitwise), or
 * -1 if they are identical: then the patch changes nothing. */
static long first_diff(const ModelConfig *c, const Slice *s, size_t T, const float *base,
                       const float *src)
{
    for (size_t r = s->r0; r < s->r1; r++) {
        size_t off, n = slice_row(c, s, T, r, &off);
        if (src == NULL) {
            for (size_t i = 0; i < n; i++)
                if (base[off + i] != 0.0f || signbit(base[off + i])) return (long)r;
        } else if (memcmp(base + off, src + off, n * sizeof(float)) != 0) {
            return (long)r;
        }
    }
    return -1;
}

/* Writes the source slice over dst, which holds rows [start, T) of the
 * activation (for the pattern: the (NH, T - start, T) block). */
static void apply_slice(const ModelConfig *c, const Slice *s, size_t T, size_t start, float *dst,
                        const float *src)
{
    size_t rows = T - start;
    for (size_t r = s->r0 > start ? s->r0 : start; r < s->r1; r++) {
        size_t off, n = slice_row(c, s, T, r, &off);
        float *d = hook_is_attn(s->hook)
                       ? dst + s->head * rows * T + (r - start) * T
                       : dst + (r - start) * hook_width(c, s->hook) + s->c0;
        if (src == NULL)
            memset(d, 0, n * sizeof(float));
        else
            memcpy(d, src + off, n * sizeof(float));
    }
}

/* ---- metrics -------------------------------------------------------------- */

static int needs_full_vocab(uint32_t metrics)
{
    return (metrics & ((1u << METRIC_PROB) | (1u << METRIC_LOGPROB) | (1u << METRIC_KL))) != 0;
}

/* log-sum-exp of a logits row, in double. */
static double logsumexp(const float *x, size_t n)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += exp((double)x[i] - (double)mx);
    return (double)mx + log(s);
}

/* Metrics of one last-position logits row: either the full vocabulary
 * (full != 0) or just [answer, wrong]. */
static void metrics_of(float *out, uint32_t want, const float *row, int full, const PairRuns *r)
{
    const ModelConfig *c = model_config(r->e->m);
    float la = full ? row[r->answer] : row[0];
    float lw = full ? row[r->wrong] : row[1];
    float ld = la - lw;
    if (want & (1u << METRIC_LOGIT_DIFF)) out[METRIC_LOGIT_DIFF] = ld;
    if (want & (1u << METRIC_LOGIT_DIFF_NORM)) {
        float clean = r->base[PATCH_RUN_CLEAN * METRIC_COUNT + METRIC_LOGIT_DIFF];
        float corr = r->base[PATCH_RUN_CORRUPTED * METRIC_COUNT + METRIC_LOGIT_DIFF];
        out[METRIC_LOGIT_DIFF_NORM] = (ld - corr) / (clean - corr);
    }
    if (!full) return;
    double lse = logsumexp(row, c->d_vocab);
    if (want & (1u << METRIC_LOGPROB)) out[METRIC_LOGPROB] = (float)((double)la - lse);
    if (want & (1u << METRIC_PROB)) out[METRIC_PROB] = (float)exp((double)la - lse);
    if (want & (1u << METRIC_KL)) {
        double kl = 0.0;
        for (size_t v = 0; v < c->d_vocab; v++) {
            double lp = (double)r->clean_logp[v];
            kl += exp(lp) * (lp - ((double)row[v] - lse));
        }
        out[METRIC_KL] = (float)kl;
    }
}

/* ---- engine --------------------------------------------------------------- */

PatchEngine *patch_new(const Model *m, const PatchExp *exps, size_t n_exps, int naive,
                       size_t max_rows)
{
    PatchEngine *e = xcalloc(1, sizeof *e);
    e->m = m;
    e->naive = naive;
    e->max_rows = max_rows ? max_rows : DEFAULT_MAX_ROWS;
    e->keep[HOOK_K] = e->keep[HOOK_V] = 1; /* every segment's prefix */
    for (size_t i = 0; i < n_exps; i++) {
        e->keep[patched_hook(exps[i].kind)] = 1;
        HookKind kinds[4];
        size_t n = model_entry_kinds(patch_entry(exps[i].kind), kinds);
        for (size_t j = 0; j < n; j++) e->keep[kinds[j]] = 1;
    }
    e->work = fwd_new(m, NULL);
    return e;
}

void patch_keep(PatchEngine *e, const uint8_t *keep)
{
    for (int k = 0; k < HOOK_KIND_COUNT; k++) e->keep[k] |= keep[k];
}

const float *patch_pair_act(const PairRuns *r, int run, HookKind kind, size_t layer)
{
    CHECK(r->e->keep[kind]);
    return fwd_act(r->run[run], kind, layer);
}

size_t patch_pair_tokens(const PairRuns *r) { return r->T; }

void patch_free(PatchEngine *e)
{
    if (e == NULL) return;
    fwd_free(e->work);
    free(e);
}

PatchStats patch_stats(const PatchEngine *e) { return e->stats; }

void patch_pair_free(PairRuns *r)
{
    if (r == NULL) return;
    for (int i = 0; i < 2; i++) {
        fwd_free(r->run[i]);
        free(r->tokens[i]);
    }
    free(r->clean_logp);
    free(r);
}

/* Baseline metrics and the clean log-probabilities of a pair whose runs hold
 * their last-position logits at last[run]. */
static void finish_pair(PairRuns *r, const float *last[2])
{
    const ModelConfig *c = model_config(r->e->m);
    r->clean_logp = xmalloc(c->d_vocab * sizeof(float));
    double lse = logsumexp(last[PATCH_RUN_CLEAN], c->d_vocab);
    for (size_t v = 0; v < c->d_vocab; v++)
        r->clean_logp[v] = (float)((double)last[PATCH_RUN_CLEAN][v] - lse);
    /* Logit differences first: the normalised one divides by them. */
    uint32_t all = (1u << METRIC_COUNT) - 1;
    for (int i = 0; i < 2; i++)
        r->base[i * METRIC_COUNT + METRIC_LOGIT_DIFF] = last[i][r->answer] - last[i][r->wrong];
    for (int i = 0; i < 2; i++) metrics_of(r->base + i * METRIC_COUNT, all, last[i], 1, r);
    r->base[PATCH_RUN_CLEAN * METRIC_COUNT + METRIC_KL] = 0.0f;
}

int patch_pairs_runs(PatchEngine *e, const PatchPair *pairs, size_t n, PairRuns **out, Err *err)
{
    const ModelConfig *c = model_config(e->m);
    for (size_t i = 0; i < n; i++) out[i] = NULL;
    for (size_t i = 0; i < n; i++)
        if (pairs[i].answer < 0 || (size_t)pairs[i].answer >= c->d_vocab || pairs[i].wrong < 0 ||
            (size_t)pairs[i].wrong >= c->d_vocab)
            return err_set(err, "answer/wrong token id outside the vocabulary of %zu",
                           c->d_vocab);
    /* Every prompt of the batch in one forward (many rows per matrix
     * product); logits at the last position only, unless ln_final's hooks
     * are kept: they then need every position. */
    int all_rows = e->keep[HOOK_LNF_SCALE] || e->keep[HOOK_LNF_NORMALIZED];
    ModelSeg *segs = xcalloc(2 * n, sizeof *segs);
    for (size_t i = 0; i < n; i++) {
        segs[2 * i] = (ModelSeg){.tokens = pairs[i].clean, .n_tokens = pairs[i].n_tokens};
        segs[2 * i + 1] = (ModelSeg){.tokens = pairs[i].corrupted, .n_tokens = pairs[i].n_tokens};
    }
    ModelRun run = {.segs = segs, .n_segs = 2 * n, .entry = MODEL_ENTRY_EMBED,
                    .last_only = !all_rows};
    Fwd *batch = fwd_new(e->m, e->keep);
    int rc = model_forward(e->m, batch, &run, err);
    free(segs);
    if (rc) {
        fwd_free(batch);
        return -1;
    }
    e->stats.flops += fwd_flops(batch);
    for (size_t i = 0; i < n; i++) {
        PairRuns *r = xcalloc(1, sizeof *r);
        r->e = e;
        r->T = pairs[i].n_tokens;
        r->answer = pairs[i].answer;
        r->wrong = pairs[i].wrong;
        const float *last[2];
        for (int k = 0; k < 2; k++) {
            const int32_t *toks = k == PATCH_RUN_CLEAN ? pairs[i].clean : pairs[i].corrupted;
            r->tokens[k] = xmalloc(r->T * sizeof(int32_t));
            memcpy(r->tokens[k], toks, r->T * sizeof(int32_t));
            r->run[k] = fwd_extract(batch, 2 * i + (size_t)k);
            last[k] = fwd_logits(r->run[k], 0) + (all_rows ? (r->T - 1) * c->d_vocab : 0);
        }
        finish_pair(r, last);
        out[i] = r;
    }
    fwd_free(batch);
    return 0;
}

int patch_pair_runs(PatchEngine *e, const PatchPair *pair, PairRuns **out, Err *err)
{
    return patch_pairs_runs(e, pair, 1, out, err);
}

void patch_baseline(const PairRuns *r, float out[2 * METRIC_COUNT])
{
    memcpy(out, r->base, sizeof r->base);
}

/* ---- fast engine ---------------------------------------------------------- */

static int base_run_of(const PatchExp *x)
{
    return x->dir == DIR_DENOISING ? PATCH_RUN_CORRUPTED : PATCH_RUN_CLEAN;
}

typedef struct CellPlan {
    size_t job, cell;   /* the caller's job and its cell */
    size_t entry_layer; /* layer the segment enters */
    size_t start;       /* first position recomputed */
    Slice slice;
} CellPlan;

typedef struct FillCtx {
    const ModelConfig *c;
    const PatchExp *exp;
    const PatchJob *jobs;
    const CellPlan *plans; /* (segments of this forward) */
} FillCtx;

static void fill(void *vctx, size_t seg, HookKind kind, size_t layer, float *dst)
{
    const FillCtx *x = vctx;
    const CellPlan *p = &x->plans[seg];
    const PatchJob *job = &x->jobs[p->job];
    const Fwd *base_run = job->runs->run[base_run_of(x->exp)];
    size_t T = job->runs->T, start = p->start, rows = T - start;
    /* resid_post of layer l enters as resid_pre of layer l + 1 */
    HookKind from = kind;
    size_t from_layer = layer;
    if (x->exp->kind == PATCH_RESID_POST && kind == HOOK_RESID_PRE) {
        from = HOOK_RESID_POST;
        from_layer = layer - 1;
    }
    const float *base = fwd_act(base_run, from, from_layer);
    if (hook_is_attn(kind)) {
        for (size_t h = 0; h < x->c->n_heads; h++)
            memcpy(dst + h * rows * T, base + h * T * T + start * T, rows * T * sizeof(float));
    } else {
        size_t w = hook_width(x->c, kind);
        memcpy(dst, base + start * w, rows * w * sizeof(float));
    }
    if (from == p->slice.hook && from_layer == p->slice.layer)
        apply_slice(x->c, &p->slice, T, start, dst, src_act(&job->src, from, from_layer));
}

static int cmp_plan(const void *a, const void *b)
{
    const CellPlan *x = a, *y = b;
    if (x->entry_layer != y->entry_layer) return x->entry_layer < y->entry_layer ? -1 : 1;
    if (x->job != y->job) return x->job < y->job ? -1 : 1; /* stable: the given order */
    return x->cell < y->cell ? -1 : (x->cell > y->cell);
}

static int fast_run(PatchEngine *e, const PatchExp *x, const PatchJob *jobs, size_t n_jobs,
                    Err *err)
{
    const ModelConfig *c = model_config(e->m);
    int base_run = base_run_of(x);
    size_t n_total = 0;
    for (size_t j = 0; j < n_jobs; j++) n_total += jobs[j].n_cells;
    CellPlan *plans = xcalloc(n_total ? n_total : 1, sizeof *plans);
    size_t n_plans = 0;
    for (size_t j = 0; j < n_jobs; j++) {
        const PatchJob *job = &jobs[j];
        const PairRuns *r = job->runs;
        const Fwd *base = r->run[base_run];
        for (size_t i = 0; i < job->n_cells; i++) {
            Slice s = cell_slice(c, x, &job->cells[i], r->T);
            long d = first_diff(c, &s, r->T, fwd_act(base, s.hook, s.layer),
                                src_act(&job->src, s.hook, s.layer));
            if (d < 0) { /* exact no-op: the base run's own metrics */
                for (int k = 0; k < METRIC_COUNT; k++)
                    if (x->metrics & (1u << k))
                        job->out[i * METRIC_COUNT + k] = r->base[base_run * METRIC_COUNT + k];
                e->stats.noop_cells++;
                continue;
            }
            plans[n_plans++] = (CellPlan){.job = j, .cell = i,
                                          .entry_layer = s.layer + (x->kind == PATCH_RESID_POST),
                                          .start = (size_t)d, .slice = s};
        }
    }
    qsort(plans, n_plans, sizeof *plans, cmp_plan);

    int full = needs_full_vocab(x->metrics);
    int32_t (*ids)[2] = xcalloc(n_jobs ? n_jobs : 1, sizeof *ids);
    for (size_t j = 0; j < n_jobs; j++) ids[j][0] = jobs[j].runs->answer, ids[j][1] = jobs[j].runs->wrong;
    ModelSeg *segs = xcalloc(n_plans ? n_plans : 1, sizeof *segs);
    for (size_t i = 0; i < n_plans; i++) {
        const PairRuns *r = jobs[plans[i].job].runs;
        segs[i] = (ModelSeg){.tokens = r->tokens[base_run], .n_tokens = r->T,
                             .start = plans[i].start, .entry_layer = plans[i].entry_layer,
                             .prefix = plans[i].start > 0 ? r->run[base_run] : NULL,
                             .logit_ids = full ? NULL : ids[plans[i].job],
                             .n_logit_ids = full ? 0 : 2};
    }
    int rc = 0;
    for (size_t b = 0; b < n_plans && rc == 0;) {
        /* One forward: as many segments as fit in max_rows stacked rows. */
        size_t rows = segs[b].n_tokens - segs[b].start, n = 1;
        while (b + n < n_plans && rows + (segs[b + n].n_tokens - segs[b + n].start) <= e->max_rows) {
            rows += segs[b + n].n_tokens - segs[b + n].start;
            n++;
        }
        FillCtx ctx = {.c = c, .exp = x, .jobs = jobs, .plans = plans + b};
        ModelRun run = {.segs = segs + b, .n_segs = n, .entry = patch_entry(x->kind),
                        .last_only = 1, .fill = fill, .fill_ctx = &ctx};
        rc = model_forward(e->m, e->work, &run, err);
        if (rc == 0) {
            e->stats.flops += fwd_flops(e->work);
            for (size_t i = 0; i < n; i++) {
                const CellPlan *p = &plans[b + i];
                const PatchJob *job = &jobs[p->job];
                metrics_of(job->out + p->cell * METRIC_COUNT, x->metrics,
                           fwd_logits(e->work, i), full, job->runs);
            }
        }
        e->stats.cells += n;
        b += n;
    }
    free(ids);
    free(segs);
    free(plans);
    return rc;
}

/* ---- naive engine --------------------------------------------------------- */

typedef struct HookCtx {
    const ModelConfig *c;
    const Slice *slice;
    size_t T;
    const float *src;
} HookCtx;

static void patch_hook(void *vctx, HookKind kind, size_t layer, float *act, const Fwd *f)
{
    const HookCtx *x = vctx;
    if (kind == x->slice->hook && layer == x->slice->layer)
        apply_slice(x->c, x->slice, x->T, 0, act, x->src);
}

static int naive_job(PatchEngine *e, const PatchExp *x, const PatchJob *job, Err *err)
{
    const ModelConfig *c = model_config(e->m);
    const PairRuns *r = job->runs;
    uint8_t want[HOOK_KIND_COUNT] = {0};
    want[patched_hook(x->kind)] = 1;
    ModelSeg seg = {.tokens = r->tokens[base_run_of(x)], .n_tokens = r->T};
    for (size_t i = 0; i < job->n_cells; i++) {
        Slice s = cell_slice(c, x, &job->cells[i], r->T);
        HookCtx ctx = {.c = c, .slice = &s, .T = r->T, .src = src_act(&job->src, s.hook, s.layer)};
        ModelRun run = {.segs = &seg, .n_segs = 1, .entry = MODEL_ENTRY_EMBED,
                        .hook = patch_hook, .hook_ctx = &ctx, .hook_want = want};
        if (model_forward(e->m, e->work, &run, err)) return -1;
        e->stats.flops += fwd_flops(e->work);
        e->stats.cells++;
        const float *last = fwd_logits(e->work, 0) + (r->T - 1) * c->d_vocab;
        metrics_of(job->out + i * METRIC_COUNT, x->metrics, last, 1, r);
    }
    return 0;
}

int patch_run(PatchEngine *e, const PatchExp *exp, const PatchJob *jobs, size_t n_jobs, Err *err)
{
    const ModelConfig *c = model_config(e->m);
    for (size_t j = 0; j < n_jobs; j++) {
        const PatchJob *job = &jobs[j];
        for (size_t i = 0; i < job->n_cells; i++) {
            const PatchCell *p = &job->cells[i];
            CHECK(p->layer >= 0 && (size_t)p->layer < c->n_layers);
            CHECK(is_head_kind(exp->kind) ? p->head >= 0 && (size_t)p->head < c->n_heads
                                          : p->head < 0);
            CHECK((is_head_kind(exp->kind) && !exp->per_pos)
                      ? p->pos < 0
                      : p->pos >= 0 && (size_t)p->pos < job->runs->T);
        }
        CHECK(job->src.runs == NULL || job->src.runs->T == job->runs->T);
        CHECK(job->src.mean == NULL || job->src.mean->T == job->runs->T);
    }
    if (!e->naive) return fast_run(e, exp, jobs, n_jobs, err);
    for (size_t j = 0; j < n_jobs; j++)
        if (naive_job(e, exp, &jobs[j], err)) return -1;
    return 0;
}

int patch_cells(PatchEngine *e, const PairRuns *r, const PatchSrc *src, const PatchExp *exp,
                const PatchCell *cells, size_t n_cells, float *out, Err *err)
{
    PatchJob job = {.runs = r, .src = *src, .cells = cells, .n_cells = n_cells, .out = out};
    return patch_run(e, exp, &job, 1, err);
}

/* ---- dataset means -------------------------------------------------------- */

PatchMean *patch_mean_new(const PatchEngine *e, size_t n_tokens)
{
    const ModelConfig *c = model_config(e->m);
    PatchMean *mean = xcalloc(1, sizeof *mean);
    mean->e = e;
    mean->T = n_tokens;
    for (int k = 0; k < HOOK_KIND_COUNT; k++)
        if (e->keep[k] && hook_per_layer((HookKind)k))
            mean->sum[k] = xcalloc(xmul(c->n_layers, kind_size(c, (HookKind)k, n_tokens)),
                                   sizeof(double));
    return mean;
}

void patch_mean_add(PatchMean *mean, const PairRuns *r, int run)
{
    const ModelConfig *c = model_config(mean->e->m);
    CHECK(r->T == mean->T && mean->count < SIZE_MAX);
    for (int k = 0; k < HOOK_KIND_COUNT; k++) {
        if (mean->sum[k] == NULL) continue;
        size_t n = kind_size(c, (HookKind)k, mean->T);
        for (size_t l = 0; l < c->n_layers; l++) {
            const float *a = fwd_act(r->run[run], (HookKind)k, l);
            double *s = mean->sum[k] + l * n;
            for (size_t i = 0; i < n; i++) s[i] += a[i];
        }
    }
    mean->count++;
}

void patch_mean_finish(PatchMean *mean)
{
    const ModelConfig *c = model_config(mean->e->m);
    CHECK(mean->count > 0);
    for (int k = 0; k < HOOK_KIND_COUNT; k++) {
        if (mean->sum[k] == NULL) continue;
        size_t n = xmul(c->n_layers, kind_size(c, (HookKind)k, mean->T));
        free(mean->mean[k]);
        mean->mean[k] = xmalloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) mean->mean[k][i] = (float)(mean->sum[k][i] / (double)mean->count);
    }
}

void patch_mean_free(PatchMean *mean)
{
    if (mean == NULL) return;
    for (int k = 0; k < HOOK_KIND_COUNT; k++) {
        free(mean->sum[k]);
        free(mean->mean[k]);
    }
    free(mean);
}
