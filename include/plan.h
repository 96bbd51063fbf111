/* plan.h — a resolved config as a grid of results and a list of work units.
 *
 * Each experiment's results per metric are one array [pair, axes...] with the
 * axes in TransformerLens's order: (layer, pos) for the residual kinds,
 * (layer, head) for head kinds over all positions, (layer, pos, head) for
 * head kinds per position. A work unit is one pair x one experiment x one
 * block of layers ("slice"); its results are the contiguous block
 * [pair, layers of the slice, ...] of each metric's array. Units are numbered
 * pair-major, so consecutive units share a pair and its baseline runs.
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
    size_t units_per_pair;       /* sum of n_slices */
    size_t n_units;
    uint32_t metrics;            /* union of the experiments' metrics */
    size_t *unit_exp, *unit_slice; /* (units_per_pair) unit k of a pair -> exp, slice */
} Plan;

typedef struct PlanUnit {
    size_t id, pair, exp, slice;
    size_t layer0, layer1;       /* indices into the experiment's layer list */
    size_t block;                /* floats per metric of this unit's result block */
    size_t offset;               /* of the block in the [pair, ...] array, in floats */
} PlanUnit;

/* Builds the plan of a resolved config. cells_per_unit bounds the cells of
 * one unit (experiments are split into layer slices to stay under it;
 * config units_per_pair, when set, overrides); 0 picks the default. */
int plan_build(Plan **out, const Config *cfg, const struct ModelConfig *mc, size_t cells_per_unit,
               Err *err);
void plan_free(Plan *p); /* accepts NULL */

PlanUnit plan_unit(const Plan *p, size_t id);

/* The cells of a unit that exist for its pair, in block order; block_idx[i]
 * is cell i's index in the unit's result block (cells of positions a pair
 * does not have are left out, so their results stay NaN). Both arrays must
 * hold u->block entries. Returns the number of cells. */
size_t plan_unit_cells(const Plan *p, const PlanUnit *u, PatchCell *cells, size_t *block_idx);

/* The largest block of any unit. */
size_t plan_max_block(const Plan *p);

/* The layer / head index of axis entry i (resolved lists of the experiment). */
size_t plan_layer(const PlanExp *x, size_t i);
size_t plan_head(const PlanExp *x, size_t i);

const char *plan_axis_name(PlanAxisKind a); /* "layer", "pos", "head" */

#endif
