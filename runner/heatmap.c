/* heatmap.c — imshow-style figures on a Canvas (see include/heatmap.h).
 *
 * Layout, left to right: margin, y axis name (upright), row labels, the
 * panels, the colour bar with its tick values and name, margin. Top to
 * bottom: title, subtitle, panel labels, cells, column labels, x axis name.
 * Sizes are in pixels; text is the canvas font at scale 1 (6 x 10), the
 * title at scale 2.
 */
#include "heatmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MARGIN = 16,
    GAP = 6,             /* between a label and what it labels */
    PANEL_GAP = 14,      /* between panels */
    MAX_LABEL = 18,      /* glyphs of a tick or panel label */
    BAR_GAP = 22,        /* cells to colour bar */
    BAR_W = 16,
    BAR_MIN_H = 170,
    TICK = 4,
    SWATCH_H = 12,
    MAX_PLOT = 16000,    /* cells' extent either way: keeps the PNG within canvas limits */
};

static const Rgb WHITE = {255, 255, 255}, INK = {20, 20, 20}, AXIS = {90, 90, 90};

/* ColorBrewer RdBu (11 classes) from negative to positive: blue, white, red. */
static const Rgb DIVERGING[] = {
    {5, 48, 97},     {33, 102, 172},  {67, 147, 195}, {146, 197, 222}, {209, 229, 240}, {247, 247, 247},
    {253, 219, 199}, {244, 165, 130}, {214, 96, 77},  {178, 24, 43},   {103, 0, 31},
};
enum { N_STOPS = sizeof DIVERGING / sizeof DIVERGING[0] };

Rgb heatmap_color(float v, float vmax)
{
    if (isnan(v)) return HEATMAP_NAN_RGB;
    CHECK(vmax > 0);
    double t = ((double)v / vmax + 1.0) / 2.0 * (N_STOPS - 1); /* 0 .. N_STOPS-1 */
    if (!(t > 0)) t = 0; /* also -inf */
    if (t > N_STOPS - 1) t = N_STOPS - 1;
    size_t i = (size_t)t;
    if (i == N_STOPS - 1) return DIVERGING[i];
    double f = t - (double)i;
    const Rgb a = DIVERGING[i], b = DIVERGING[i + 1];
    return (Rgb){(uint8_t)lround(a.r + f * (b.r - a.r)), (uint8_t)lround(a.g + f * (b.g - a.g)),
                 (uint8_t)lround(a.b + f * (b.b - a.b))};
}

static long clampl(long v, long lo, long hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The NaN pattern over a rectangle; the hatching follows the rectangle's own
 * corner so every NaN cell looks the same. */
static void fill_nan(Canvas *c, long x, long y, long w, long h)
{
    for (long dy = 0; dy < h; dy++)
        for (long dx = 0; dx < w; dx++)
            canvas_set(c, x + dx, y + dy, (dx + dy) % 5 == 0 ? HEATMAP_HATCH_RGB : HEATMAP_NAN_RGB);
}

/* Longest of n labels, cut to MAX_LABEL glyphs, in pixels at scale 1. */
static long max_label_len(const char *const *labels, size_t n)
{
    long m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t g = canvas_text_glyphs(labels[i]);
        long len = (long)(g < MAX_LABEL ? g : MAX_LABEL) * CANVAS_GLYPH_W;
        if (len > m) m = len;
    }
    return m;
}

/* Cell values are printed with as many decimals as the scale warrants:
 * vmax 2.3 -> "1.23", 0.04 -> "0.0312", 150 -> "150". */
static int value_decimals(float vmax)
{
    return (int)clampl(2 - (long)floor(log10(vmax) + 1e-6), 0, 4); /* 0.9999999 counts as 1 */
}

/* v with the given decimals; what rounds to zero shows as "0.00", not "-0.00". */
static void format_value(char *buf, size_t size, float v, int decimals)
{
    double x = (double)v;
    if (fabs(x) < 0.5 * pow(10.0, -decimals)) x = 0.0;
    snprintf(buf, size, "%.*f", decimals, x);
}

typedef struct Layout {
    long plot_left, plot_top, plot_w, plot_h;
    long cell_w, cell_h, panel_step;
    long ylab_w, xlab_h, upright_cols, col_step; /* label every col_step-th column */
    long bar_x, bar_h, ticks_w, width, height;
    long x_name_x, x_name_y;
    float vmax;
    int decimals, print_values;
} Layout;

/* -1 if the cells cannot fit in MAX_PLOT pixels. */
static int layout(const Heatmap *h, Layout *L)
{
    memset(L, 0, sizeof *L);
    long ncols = (long)(h->panels * h->cols);
    long panel_gap = h->panels == 1 ? 0 : h->panels > 64 ? 3 : PANEL_GAP;
    long room = MAX_PLOT - ((long)h->panels - 1) * panel_gap; /* for the cells */
    /* Cells wide enough for an upright label each (12) up to a comfortable 48;
     * narrower (labels thinned out) only when the columns would not fit. */
    L->cell_w = clampl(720 / ncols, 12, 48);
    if (L->cell_w * ncols > room) L->cell_w = room / ncols;
    L->cell_h = clampl(360 / (long)h->rows, 14, 40);
    if (L->cell_w < 1 || L->cell_h * (long)h->rows > MAX_PLOT) return -1;
    L->col_step = (CANVAS_GLYPH_H + 1 + L->cell_w - 1) / L->cell_w;
    L->panel_step = (long)h->cols * L->cell_w + panel_gap;
    L->plot_w = (long)h->panels * L->panel_step - panel_gap;
    L->plot_h = (long)h->rows * L->cell_h;

    float vmax = 0;
    size_t n = h->panels * h->rows * h->cols;
    for (size_t i = 0; i < n; i++)
        if (isfinite(h->values[i]) && fabsf(h->values[i]) > vmax) vmax = fabsf(h->values[i]);
    L->vmax = vmax > 0 ? vmax : 1.0f; /* nothing to scale (all 0 or NaN): any range will do */
    L->decimals = value_decimals(L->vmax);

    /* Print values in the cells if every one fits. */
    L->print_values = L->cell_h >= CANVAS_GLYPH_H + 2;
    for (size_t i = 0; i < n && L->print_values; i++) {
        char buf[32];
        format_value(buf, sizeof buf, h->values[i], L->decimals);
        if (canvas_text_len(buf, 1) > L->cell_w - 3) L->print_values = 0;
    }

    long xl = max_label_len(h->col_labels, h->cols);
    L->upright_cols = L->col_step > 1 || xl > L->cell_w - 2;
    L->xlab_h = L->upright_cols ? xl : CANVAS_GLYPH_H;
    L->ylab_w = max_label_len(h->row_labels, h->rows);
    L->plot_left = MARGIN + CANVAS_GLYPH_H + 2 * GAP + L->ylab_w;
    L->plot_top = MARGIN + 2 * CANVAS_GLYPH_H + GAP + (h->subtitle ? CANVAS_GLYPH_H + GAP : 0) + GAP;
    if (h->panel_labels) L->plot_top += CANVAS_GLYPH_H + GAP;

    L->bar_x = L->plot_left + L->plot_w + BAR_GAP;
    L->bar_h = L->plot_h > BAR_MIN_H ? L->plot_h : BAR_MIN_H;
    char buf[32];
    for (int k = -2; k <= 2; k++) {
        snprintf(buf, sizeof buf, "%.3g", (double)(L->vmax * (float)k / 2));
        if (canvas_text_len(buf, 1) > L->ticks_w) L->ticks_w = canvas_text_len(buf, 1);
    }
    long right = BAR_W + TICK + GAP + L->ticks_w + GAP + CANVAS_GLYPH_H;
    long legend = BAR_W + GAP + canvas_text_len("NaN = no value", 1);
    if (legend > right) right = legend;

    long w = L->bar_x + right + MARGIN;
    long tw = 2 * MARGIN + canvas_text_len(h->title, 2);
    if (tw > w) w = tw;
    if (h->subtitle && 2 * MARGIN + canvas_text_len(h->subtitle, 1) > w)
        w = 2 * MARGIN + canvas_text_len(h->subtitle, 1);
    /* The x axis name, centred under the cells; when it is wider than they are
     * and would run into the colour bar's column, it goes below the legend. */
    long below_bar = L->plot_top + L->bar_h + 2 * GAP + SWATCH_H;
    long xlen = canvas_text_len(h->x_name, 1);
    L->x_name_x = L->plot_left + (L->plot_w - xlen) / 2;
    if (L->x_name_x < MARGIN) L->x_name_x = MARGIN;
    L->x_name_y = L->plot_top + L->plot_h + TICK + GAP + L->xlab_h + GAP;
    if (L->x_name_x + xlen > L->bar_x - GAP && L->x_name_y < below_bar + GAP)
        L->x_name_y = below_bar + GAP;
    if (L->x_name_x + xlen + MARGIN > w) w = L->x_name_x + xlen + MARGIN;
    long below_plot = L->x_name_y + CANVAS_GLYPH_H;
    L->width = w;
    L->height = (below_plot > below_bar ? below_plot : below_bar) + MARGIN;
    return 0;
}

static void draw_colour_bar(Canvas *c, const Heatmap *h, const Layout *L)
{
    long y0 = L->plot_top;
    for (long py = 0; py < L->bar_h; py++) {
        float v = L->vmax * (1.0f - 2.0f * ((float)py + 0.5f) / (float)L->bar_h);
        canvas_fill(c, L->bar_x, y0 + py, BAR_W, 1, heatmap_color(v, L->vmax));
    }
    canvas_frame(c, L->bar_x - 1, y0 - 1, BAR_W + 2, L->bar_h + 2, AXIS);
    for (int k = 2; k >= -2; k--) {
        long ty = y0 + (long)lround((double)(2 - k) / 4.0 * (double)(L->bar_h - 1));
        canvas_fill(c, L->bar_x + BAR_W, ty, TICK, 1, AXIS);
        char buf[32];
        snprintf(buf, sizeof buf, "%.3g", (double)(L->vmax * (float)k / 2));
        canvas_text(c, L->bar_x + BAR_W + TICK + GAP / 2, ty - 4, buf, 1, CANVAS_RIGHT, INK);
    }
    long name_x = L->bar_x + BAR_W + TICK + GAP + L->ticks_w + GAP;
    long name_len = canvas_text_len(h->value_name, 1);
    canvas_text(c, name_x, y0 + L->bar_h / 2 + name_len / 2, h->value_name, 1, CANVAS_UP, INK);

    long sy = y0 + L->bar_h + 2 * GAP;
    fill_nan(c, L->bar_x, sy, BAR_W, SWATCH_H);
    canvas_frame(c, L->bar_x - 1, sy - 1, BAR_W + 2, SWATCH_H + 2, AXIS);
    canvas_text(c, L->bar_x + BAR_W + GAP, sy + 2, "NaN = no value", 1, CANVAS_RIGHT, INK);
}

static void draw_cells(Canvas *c, const Heatmap *h, const Layout *L)
{
    for (size_t p = 0; p < h->panels; p++) {
        long px = L->plot_left + (long)p * L->panel_step;
        for (size_t r = 0; r < h->rows; r++)
            for (size_t col = 0; col < h->cols; col++) {
                float v = h->values[(p * h->rows + r) * h->cols + col];
                long x = px + (long)col * L->cell_w, y = L->plot_top + (long)r * L->cell_h;
                if (isnan(v)) {
                    fill_nan(c, x, y, L->cell_w, L->cell_h);
                    continue;
                }
                canvas_fill(c, x, y, L->cell_w, L->cell_h, heatmap_color(v, L->vmax));
                if (!L->print_values) continue;
                char buf[32];
                format_value(buf, sizeof buf, v, L->decimals);
                long len = canvas_text_len(buf, 1);
                Rgb ink = fabsf(v) > 0.6f * L->vmax ? WHITE : INK;
                canvas_text(c, x + (L->cell_w - len) / 2 + 1, y + (L->cell_h - 7) / 2, buf, 1,
                            CANVAS_RIGHT, ink);
            }
        canvas_frame(c, px - 1, L->plot_top - 1, (long)h->cols * L->cell_w + 2, L->plot_h + 2, AXIS);

        if (h->panel_labels) {
            char buf[256];
            size_t fit = (size_t)((long)h->cols * L->cell_w / CANVAS_GLYPH_W);
            canvas_text_fit(buf, sizeof buf, h->panel_labels[p], fit);
            long len = canvas_text_len(buf, 1);
            canvas_text(c, px + ((long)h->cols * L->cell_w - len) / 2,
                        L->plot_top - CANVAS_GLYPH_H - GAP, buf, 1, CANVAS_RIGHT, INK);
        }
        /* Column ticks and labels. */
        long ly = L->plot_top + L->plot_h + TICK + GAP / 2;
        for (size_t col = 0; col < h->cols; col += (size_t)L->col_step) {
            long cx = px + (long)col * L->cell_w + L->cell_w / 2;
            canvas_fill(c, cx, L->plot_top + L->plot_h + 1, 1, TICK, AXIS);
            char buf[256];
            canvas_text_fit(buf, sizeof buf, h->col_labels[col], MAX_LABEL);
            long len = canvas_text_len(buf, 1);
            if (L->upright_cols) /* reads upwards and ends at the axis */
                canvas_text(c, cx - 4, ly + len, buf, 1, CANVAS_UP, INK);
            else
                canvas_text(c, cx - len / 2 + 1, ly, buf, 1, CANVAS_RIGHT, INK);
        }
    }
    /* Row ticks and labels, right-aligned against the first panel. */
    for (size_t r = 0; r < h->rows; r++) {
        long cy = L->plot_top + (long)r * L->cell_h + L->cell_h / 2;
        canvas_fill(c, L->plot_left - 1 - TICK, cy, TICK, 1, AXIS);
        char buf[256];
        canvas_text_fit(buf, sizeof buf, h->row_labels[r], MAX_LABEL);
        canvas_text(c, L->plot_left - TICK - GAP / 2 - canvas_text_len(buf, 1), cy - 4, buf, 1,
                    CANVAS_RIGHT, INK);
    }
}

int heatmap_fits(const Heatmap *h)
{
    Layout L;
    return layout(h, &L) == 0;
}

Canvas *heatmap_render(const Heatmap *h, HeatmapGeometry *geom, Err *err)
{
    CHECK(h->panels >= 1 && h->rows >= 1 && h->cols >= 1);
    Layout L;
    if (layout(h, &L)) {
        err_set(err, "%zu x %zu cells are too many to draw", h->rows, h->panels * h->cols);
        return NULL;
    }
    Canvas *c = canvas_new((size_t)L.width, (size_t)L.height, WHITE);

    canvas_text(c, MARGIN, MARGIN, h->title, 2, CANVAS_RIGHT, INK);
    if (h->subtitle)
        canvas_text(c, MARGIN, MARGIN + 2 * CANVAS_GLYPH_H + GAP, h->subtitle, 1, CANVAS_RIGHT, AXIS);
    draw_cells(c, h, &L);
    draw_colour_bar(c, h, &L);

    long ylen = canvas_text_len(h->y_name, 1);
    canvas_text(c, MARGIN, L.plot_top + L.plot_h / 2 + ylen / 2, h->y_name, 1, CANVAS_UP, INK);
    canvas_text(c, L.x_name_x, L.x_name_y, h->x_name, 1, CANVAS_RIGHT, INK);

    if (geom)
        *geom = (HeatmapGeometry){.x0 = L.plot_left, .y0 = L.plot_top, .cell_w = L.cell_w,
                                  .cell_h = L.cell_h, .panel_step = L.panel_step, .vmax = L.vmax};
    return c;
}

int heatmap_write_png(const Heatmap *h, const char *path, Err *err)
{
    HeatmapGeometry g;
    Canvas *c = heatmap_render(h, &g, err);
    if (c == NULL) return err_prefix(err, "%s: ", path);
    char where[256];
    snprintf(where, sizeof where,
             "x0=%ld y0=%ld cell_w=%ld cell_h=%ld panel_step=%ld panels=%zu rows=%zu cols=%zu vmax=%.9g",
             g.x0, g.y0, g.cell_w, g.cell_h, g.panel_step, h->panels, h->rows, h->cols, (double)g.vmax);
    const char *text[] = {"Title", h->title, "Software", "patchgrid report", "patchgrid:heatmap", where};
    int rc = canvas_write_png(c, path, text, 3, err);
    canvas_free(c);
    return rc;
}
