/* plan.h — a resolved config as a grid of results and a list of work units.
 *
 * Each experiment's results per metric are one array [pair, axes...] with the
 * axes in TransformerLens's order: (layer, pos) for the residual kinds,
 * (layer, head) for head kinds over all positions, (layer, pos, head) for
 * head kinds per position. A work unit is a block of consecutive pairs x one
 * experiment x one block of layers ("slice"); its results are the hyperslab
 * [pairs of the block, layers of the slice, ...] of each metric's array.
 * Units are numbered block-major, so consecutive units share their pairs and
 * the pairs' baseline runs. Several pairs per unit let the engine stack many
 * cells into each matrix product.
 *
 * The plan depends only on the config and the model's shape, never on the
 * number of ranks: the same config gives the same units, the same batches
 * and bitwise the same results on any number of ranks.
 */
#ifndef PATCHGRID_PLAN_H
#define PATCHGRID_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "err.h"
#include "patch.h"

enum { PLAN_MAX_AXES = 3 };
typedef enum PlanAxisKind { AXIS_LAYER, AXIS_POS, AXIS_HEAD } PlanAxisKind;

typedef struct PlanExp {
    const CfgExperiment *cfg;
    PatchExp px;
    size_t n_axes;
    PlanAxisKind axes[PLAN_MAX_AXES];
    size_t dims[PLAN_MAX_AXES];  /* axis lengths */
    size_t cells;                /* product of dims: cells per pair */
    size_t n_pos;                /* pos axis length (0 if no pos axis) */
    size_t n_slices;             /* units per pair */
    size_t layers_per_slice;
} PlanExp;

typedef struct Plan {
    const Config *cfg;
    size_t n_layers, n_heads;    /* of the model */
    PlanExp *exps;
    size_t n_exps;
    size_t n_pairs;
    size_t max_tokens;           /* longest pair */
    size_t pairs_per_unit;       /* pairs of a block (the last block may have fewer) */
    size_t n_blocks;
    size_t units_per_block;      /* sum of n_slices */
    size_t n_units;
    uint32_t metrics;            /* union of the experiments' metrics */
    size_t *unit_exp, *unit_slice; /* (units_per_block) unit k of a block -> exp, slice */
} Plan;

typedef struct PlanUnit {
    size_t id, block, exp, slice;
    size_t pair0, pair1;         /* the pairs [pair0, pair1) */
    size_t layer0, layer1;       /* indices into the experiment's layer list */
    size_t pair_vals;            /* floats per metric of one pair's part of the results */
    size_t n_vals;               /* floats per metric of the unit: pairs x pair_vals */
} PlanUnit;

/* Builds the plan of a resolved config. cells_per_unit is the cell count a
 * unit aims at: experiments with more cells per pair are split into layer
 * slices, smaller ones get several pairs per unit (the config's
 * units_per_pair and pairs_per_unit, when set, decide instead); 0 picks the
 * default. */
int plan_build(Plan **out, const Config *cfg, const struct ModelConfig *mc, size_t cells_per_unit,
               Err *err);
void plan_free(Plan *p); /* accepts NULL */

PlanUnit plan_unit(const Plan *p, size_t id);

/* The cells of a unit for one of its pairs, in result order; block_idx[i]
 * is cell i's index in that pair's part of the results (u->pair_vals
 * floats; cells of positions the pair does not have are left out, so their
 * results stay NaN). Both arrays must hold u->pair_vals entries. Returns the
 * number of cells. */
size_t plan_unit_cells(const Plan *p, const PlanUnit *u, size_t pair, PatchCell *cells,
                       size_t *block_idx);

/* The largest pair_vals and n_vals of any unit. */
size_t plan_max_pair_vals(const Plan *p);
size_t plan_max_vals(const Plan *p);

/* The layer / head index of axis entry i (resolved lists of the experiment). */
size_t plan_layer(const PlanExp *x, size_t i);
size_t plan_head(const PlanExp *x, size_t i);

const char *plan_axis_name(PlanAxisKind a); /* "layer", "pos", "head" */

#endif
