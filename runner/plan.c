/* plan.c — experiments as result arrays and work units (see include/plan.h). */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "model.h"

#define DEFAULT_CELLS_PER_UNIT 2048
#define MAX_PAIRS_PER_UNIT 64

const char *plan_axis_name(PlanAxisKind a)
{
    return a == AXIS_LAYER ? "layer" : a == AXIS_POS ? "pos" : "head";
}

size_t plan_layer(const PlanExp *x, size_t i) { return x->cfg->layers ? x->cfg->layers[i] : i; }
size_t plan_head(const PlanExp *x, size_t i) { return x->cfg->heads ? x->cfg->heads[i] : i; }

int plan_build(Plan **out, const Config *cfg, const ModelConfig *mc, size_t cells_per_unit,
               Err *err)
{
    *out = NULL;
    if (cells_per_unit == 0) cells_per_unit = DEFAULT_CELLS_PER_UNIT;
    Plan *p = xcalloc(1, sizeof *p);
    p->cfg = cfg;
    p->n_layers = mc->n_layers;
    p->n_heads = mc->n_heads;
    p->n_pairs = cfg->n_pairs;
    for (size_t i = 0; i < cfg->n_pairs; i++)
        if (cfg->pairs[i].n_tokens > p->max_tokens) p->max_tokens = cfg->pairs[i].n_tokens;
    p->n_exps = cfg->n_exps;
    p->exps = xcalloc(cfg->n_exps, sizeof *p->exps);
    for (size_t e = 0; e < cfg->n_exps; e++) {
        const CfgExperiment *c = &cfg->exps[e];
        PlanExp *x = &p->exps[e];
        x->cfg = c;
        x->px = (PatchExp){.kind = c->kind, .per_pos = c->per_pos, .dir = c->dir,
                           .source = c->source, .metrics = c->metrics};
        p->metrics |= c->metrics;
        int head_kind = c->kind >= PATCH_Z;
        x->n_pos = (!head_kind || c->per_pos) ? (c->positions ? c->n_positions : p->max_tokens) : 0;
        x->axes[x->n_axes] = AXIS_LAYER;
        x->dims[x->n_axes++] = c->layers ? c->n_layers : mc->n_layers;
        if (x->n_pos) {
            x->axes[x->n_axes] = AXIS_POS;
            x->dims[x->n_axes++] = x->n_pos;
        }
        if (head_kind) {
            x->axes[x->n_axes] = AXIS_HEAD;
            x->dims[x->n_axes++] = c->heads ? c->n_heads : mc->n_heads;
        }
        x->cells = 1;
        for (size_t a = 0; a < x->n_axes; a++) x->cells = xmul(x->cells, x->dims[a]);
        if (x->cells == 0) {
            plan_free(p);
            return err_set(err, "%s:%d:%d: experiment '%s' has no cells", c->mark.file,
                           c->mark.line, c->mark.col, c->name);
        }
        /* Split into layer slices: as asked, or to keep units small enough
         * that the last ones do not leave ranks idle. */
        size_t nl = x->dims[0];
        size_t slices = cfg->units_per_pair ? cfg->units_per_pair
                                            : (x->cells + cells_per_unit - 1) / cells_per_unit;
        if (slices > nl) slices = nl;
        if (slices < 1) slices = 1;
        x->layers_per_slice = (nl + slices - 1) / slices;
        x->n_slices = (nl + x->layers_per_slice - 1) / x->layers_per_slice;
        p->units_per_block += x->n_slices;
    }
    /* Pairs per unit: enough that the largest slice of any experiment, times
     * the pairs, reaches the target (more rows per matrix product). */
    size_t ppu = cfg->pairs_per_unit;
    if (ppu == 0) {
        size_t biggest = 1;
        for (size_t e = 0; e < p->n_exps; e++) {
            const PlanExp *x = &p->exps[e];
            size_t per_slice = x->layers_per_slice * (x->cells / x->dims[0]);
            if (per_slice > biggest) biggest = per_slice;
        }
        ppu = cells_per_unit / biggest;
        if (ppu > MAX_PAIRS_PER_UNIT) ppu = MAX_PAIRS_PER_UNIT;
    }
    if (ppu < 1) ppu = 1;
    if (ppu > p->n_pairs) ppu = p->n_pairs;
    p->pairs_per_unit = ppu;
    p->n_blocks = (p->n_pairs + ppu - 1) / ppu;
    p->n_units = xmul(p->units_per_block, p->n_blocks);
    p->unit_exp = xcalloc(p->units_per_block, sizeof(size_t));
    p->unit_slice = xcalloc(p->units_per_block, sizeof(size_t));
    size_t k = 0;
    for (size_t e = 0; e < p->n_exps; e++)
        for (size_t s = 0; s < p->exps[e].n_slices; s++, k++) {
            p->unit_exp[k] = e;
            p->unit_slice[k] = s;
        }
    *out = p;
    return 0;
}

void plan_free(Plan *p)
{
    if (p == NULL) return;
    free(p->exps);
    free(p->unit_exp);
    free(p->unit_slice);
    free(p);
}

PlanUnit plan_unit(const Plan *p, size_t id)
{
    CHECK(id < p->n_units);
    PlanUnit u = {.id = id, .block = id / p->units_per_block};
    size_t k = id % p->units_per_block;
    u.exp = p->unit_exp[k];
    u.slice = p->unit_slice[k];
    u.pair0 = u.block * p->pairs_per_unit;
    u.pair1 = u.pair0 + p->pairs_per_unit;
    if (u.pair1 > p->n_pairs) u.pair1 = p->n_pairs;
    const PlanExp *x = &p->exps[u.exp];
    size_t per_layer = x->cells / x->dims[0];
    u.layer0 = u.slice * x->layers_per_slice;
    u.layer1 = u.layer0 + x->layers_per_slice;
    if (u.layer1 > x->dims[0]) u.layer1 = x->dims[0];
    u.pair_vals = (u.layer1 - u.layer0) * per_layer;
    u.n_vals = (u.pair1 - u.pair0) * u.pair_vals;
    return u;
}

size_t plan_max_pair_vals(const Plan *p)
{
    size_t m = 0;
    for (size_t e = 0; e < p->n_exps; e++) {
        const PlanExp *x = &p->exps[e];
        size_t b = x->layers_per_slice * (x->cells / x->dims[0]);
        if (b > m) m = b;
    }
    return m;
}

size_t plan_max_vals(const Plan *p) { return p->pairs_per_unit * plan_max_pair_vals(p); }

/* The position of pos-axis entry i for a pair, or -1 if the pair lacks it. */
static long pos_of(const PlanExp *x, const CfgPair *pair, size_t i)
{
    if (x->cfg->positions == NULL) return i < pair->n_tokens ? (long)i : -1;
    return cfg_pos_index(&x->cfg->positions[i], pair);
}

size_t plan_unit_cells(const Plan *p, const PlanUnit *u, size_t pair_id, PatchCell *cells,
                       size_t *block_idx)
{
    const PlanExp *x = &p->exps[u->exp];
    CHECK(pair_id >= u->pair0 && pair_id < u->pair1);
    const CfgPair *pair = &p->cfg->pairs[pair_id];
    size_t n_heads = x->axes[x->n_axes - 1] == AXIS_HEAD ? x->dims[x->n_axes - 1] : 0;
    size_t n = 0, idx = 0;
    for (size_t li = u->layer0; li < u->layer1; li++) {
        int32_t layer = (int32_t)plan_layer(x, li);
        size_t n_pos = x->n_pos ? x->n_pos : 1;
        for (size_t pi = 0; pi < n_pos; pi++) {
            long pos = x->n_pos ? pos_of(x, pair, pi) : -1;
            size_t n_h = n_heads ? n_heads : 1;
            for (size_t hi = 0; hi < n_h; hi++, idx++) {
                if (x->n_pos && pos < 0) continue;
                cells[n] = (PatchCell){.layer = layer, .pos = (int32_t)pos,
                                       .head = n_heads ? (int32_t)plan_head(x, hi) : -1};
                block_idx[n++] = idx;
            }
        }
    }
    CHECK(idx == u->pair_vals);
    return n;
}
