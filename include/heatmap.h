/* heatmap.h — TransformerLens-style `imshow` figures of patching results.
 *
 * A heatmap is one or more panels side by side, each rows x cols cells
 * (for patching results: layer x position, layer x head, or one layer x head
 * panel per position), on a diverging colour map centred at 0: blue for
 * negative, white at 0, red for positive, the range symmetric at +-vmax with
 * vmax = max |value| (ColorBrewer's RdBu, reversed, as in TL's plots with
 * color_continuous_midpoint=0). Cells without a value (NaN) are grey with
 * darker diagonal hatching, which the legend under the colour bar names.
 * The figure has a title, axis names, tick labels (the column labels are
 * turned upright when they do not fit across a cell), a colour bar with tick
 * values, and each value printed in its cell when every value fits.
 */
#ifndef PATCHGRID_HEATMAP_H
#define PATCHGRID_HEATMAP_H

#include <stddef.h>

#include "canvas.h"
#include "err.h"

#define HEATMAP_NAN_RGB ((Rgb){190, 190, 190})   /* NaN cell background */
#define HEATMAP_HATCH_RGB ((Rgb){130, 130, 130}) /* its hatching: (x + y) % 5 == 0 in the cell */

typedef struct Heatmap {
    const char *title;               /* first line, large */
    const char *subtitle;            /* second line, or NULL */
    const char *x_name, *y_name;     /* axis names (columns, rows) */
    const char *value_name;          /* colour bar label */
    size_t panels, rows, cols;       /* each >= 1 */
    const float *values;             /* (panels, rows, cols); NaN = no value */
    const char *const *row_labels;   /* (rows), top to bottom */
    const char *const *col_labels;   /* (cols), the same under every panel */
    const char *const *panel_labels; /* (panels) shown above each panel, or NULL */
} Heatmap;

/* Where the cells are, so that tests and tools can find them: cell (p, r, c)
 * covers x in [x0 + p*panel_step + c*cell_w, +cell_w), y in [y0 + r*cell_h,
 * +cell_h). */
typedef struct HeatmapGeometry {
    long x0, y0, cell_w, cell_h, panel_step;
    float vmax; /* the colour scale's half range */
} HeatmapGeometry;

/* The colour of v on the scale [-vmax, vmax] (values beyond are clamped;
 * NaN gives HEATMAP_NAN_RGB). vmax > 0. */
Rgb heatmap_color(float v, float vmax);

/* 1 if the figure can be drawn, 0 if its grid is too big (see below). */
int heatmap_fits(const Heatmap *h);

/* Draws the figure. The caller frees the canvas; geom (may be NULL) gets
 * the cells' placement. Cells are 12 to 48 pixels wide (narrower, with
 * every k-th column labelled, when there are thousands of columns); a grid
 * that cannot fit in 16000 pixels either way is an error (NULL, err set). */
Canvas *heatmap_render(const Heatmap *h, HeatmapGeometry *geom, Err *err);

/* Renders and writes a PNG with tEXt chunks Title, Software and
 * "patchgrid:heatmap" (the geometry as "x0=.. y0=.. cell_w=.. cell_h=..
 * panel_step=.. panels=.. rows=.. cols=.. vmax=.."). -1 with err on failure. */
int heatmap_write_png(const Heatmap *h, const char *path, Err *err);

#endif
