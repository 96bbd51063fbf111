/* cmd_report.c — `patchgrid report RESULTS.h5 [-o DIR]`: what a sweep found.
 *
 * Prints, per experiment and metric, the cells with the largest |mean over
 * pairs|, and writes one heatmap PNG per experiment x metric (TransformerLens
 * `imshow` style, see heatmap.h) and an index.html showing them all. The
 * reading and averaging is results.c's; this file presents.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "canvas.h"
#include "cli.h"
#include "err.h"
#include "heatmap.h"
#include "results.h"

enum { DEFAULT_TOP = 10 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: patchgrid report RESULTS.h5 [-o DIR] [-n N]\n"
            "\n"
            "Summarises a results file of 'patchgrid run' (complete, partial, or still\n"
            "being written):\n"
            "  stdout  per experiment and metric, the N cells (default %d) where patching\n"
            "          changes the metric most: largest |mean over pairs of (value - the\n"
            "          patched run's own value)|, i.e. the change from the corrupted run when\n"
            "          denoising, from the clean run when noising (a cell's mean is over the\n"
            "          pairs that have it); with layer, position (index and pair 0's token,\n"
            "          or the position's name), head, the mean value and the change; the\n"
            "          baselines; how many work units are done.\n"
            "  DIR     EXPERIMENT.METRIC.png: the mean over pairs as a heatmap (layer x\n"
            "          position, layer x head, or a layer x head panel per position) on a\n"
            "          blue-white-red scale centred at 0, NaN (no value) hatched grey;\n"
            "          index.html shows every heatmap and table.\n"
            "\n"
            "  -o DIR  output directory (created if needed); default RESULTS_report/ next to\n"
            "          the results file (results.h5 -> results_report/)\n"
            "  -n N    cells per table (default %d)\n",
            DEFAULT_TOP, DEFAULT_TOP);
}

/* ---- small helpers --------------------------------------------------------------- */

/* "dir/name.h5" -> "dir/name_report". Caller frees. */
static char *default_out_dir(const char *results_path)
{
    size_t n = strlen(results_path);
    const char *base = strrchr(results_path, '/');
    base = base ? base + 1 : results_path;
    const char *dot = strrchr(base, '.');
    if (dot && dot != base) n = (size_t)(dot - results_path);
    char *out = xmalloc(n + sizeof "_report");
    memcpy(out, results_path, n);
    strcpy(out + n, "_report");
    return out;
}

/* mkdir -p. */
static int make_dirs(const char *dir, Err *err)
{
    char *p = xstrdup(dir);
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rc = err_set(err, "%s: cannot create directory: %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (c == '\0') break;
    }
    struct stat sb;
    if (rc == 0 && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        rc = err_set(err, "%s: not a directory", dir);
    free(p);
    return rc;
}

/* A file name from an experiment and a metric name: "resid.logit_diff.png",
 * anything but letters, digits, '_', '-' and '.' replaced by '_'. */
static void png_name(char *out, size_t size, const char *exp, const char *metric)
{
    snprintf(out, size, "%s.%s.png", exp, metric);
    for (char *s = out; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            *s = '_';
}

static int is_pos(const ResAxis *a)
{
    return a->index != NULL;
}

/* A position's label for a figure: "3 ·Mary" / "IO ·Mary" (the index or name,
 * then pair 0's token with its spaces made visible), or just the label. */
static void pos_figure_label(char *out, size_t size, const ResAxis *a, size_t i)
{
    if (a->token == NULL || a->token[i] == NULL) {
        snprintf(out, size, "%s", a->label[i]);
        return;
    }
    snprintf(out, size, "%s %s", a->label[i], a->token[i]);
    for (char *s = out + strlen(a->label[i]) + 1; *s; s++)
        if (*s == ' ') *s = CANVAS_VISIBLE_SPACE;
}

/* A token in double quotes for the terminal, so that its spaces show:
 * ` Mary` -> `" Mary"`; '"' and '\\' are escaped with a backslash. */
static void quote_token(char *out, size_t size, const char *tok)
{
    size_t n = 0;
    if (size < 4) {
        out[0] = '\0';
        return;
    }
    out[n++] = '"';
    for (const char *s = tok; *s && n + 3 < size; s++) {
        if (*s == '"' || *s == '\\') out[n++] = '\\';
        out[n++] = *s;
    }
    out[n++] = '"';
    out[n] = '\0';
}

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

/* ---- one table of top cells ------------------------------------------------------- */

/* The cells of one table, already chosen; printed as text or HTML. */
typedef struct Table {
    const ResExperiment *e;
    const ResMetric *m;
    size_t n_pairs;
    size_t *top; /* (n) cell indices */
    size_t n;
} Table;

/* Column widths for the text form (display glyphs). */
static void table_widths(const Table *t, size_t w_axis[RES_MAX_AXES], size_t *w_tok)
{
    *w_tok = 5;
    for (size_t a = 0; a < t->e->n_axes; a++) {
        const ResAxis *ax = &t->e->axes[a];
        w_axis[a] = strlen(ax->name);
        for (size_t i = 0; i < t->n; i++) {
            size_t k = results_cell_coord(t->e, t->top[i], a);
            size_t g = canvas_text_glyphs(ax->label[k]);
            if (g > w_axis[a]) w_axis[a] = g;
            if (is_pos(ax)) {
                char q[256];
                quote_token(q, sizeof q, ax->token[k] ? ax->token[k] : "");
                g = ax->token[k] ? canvas_text_glyphs(q) : 1;
                if (g > *w_tok) *w_tok = g;
            }
        }
    }
}

static void pad(size_t shown, size_t width)
{
    for (; shown < width; shown++) putchar(' ');
}

static void print_table(const Table *t)
{
    const ResExperiment *e = t->e;
    size_t w[RES_MAX_AXES], w_tok;
    table_widths(t, w, &w_tok);
    printf("    rank");
    for (size_t a = 0; a < e->n_axes; a++) {
        printf("  ");
        pad(strlen(e->axes[a].name), w[a]);
        printf("%s", e->axes[a].name);
        if (is_pos(&e->axes[a])) {
            printf("  token");
            pad(5, w_tok);
        }
    }
    printf("        mean%s  pairs\n", t->m->effect ? "      change" : "");
    for (size_t i = 0; i < t->n; i++) {
        size_t cell = t->top[i];
        printf("    %4zu", i + 1);
        for (size_t a = 0; a < e->n_axes; a++) {
            const ResAxis *ax = &e->axes[a];
            size_t k = results_cell_coord(e, cell, a);
            printf("  ");
            pad(canvas_text_glyphs(ax->label[k]), w[a]);
            printf("%s", ax->label[k]);
            if (is_pos(ax)) {
                char q[256];
                if (ax->token[k])
                    quote_token(q, sizeof q, ax->token[k]);
                else
                    strcpy(q, "-");
                printf("  %s", q);
                pad(canvas_text_glyphs(q), w_tok);
            }
        }
        printf("  %10.4g", t->m->mean[cell]);
        if (t->m->effect) printf("  %10.4g", t->m->effect[cell]);
        printf("  %zu/%zu\n", (size_t)t->m->count[cell], t->n_pairs);
    }
}

static void html_table(FILE *f, const Table *t)
{
    const ResExperiment *e = t->e;
    fputs("<table>\n<tr><th>rank</th>", f);
    for (size_t a = 0; a < e->n_axes; a++) {
        fputs("<th>", f);
        html_text(f, e->axes[a].name);
        fputs(is_pos(&e->axes[a]) ? "</th><th>token (pair 0)</th>" : "</th>", f);
    }
    fputs(t->m->effect ? "<th>mean</th><th>change</th><th>pairs</th></tr>\n"
                       : "<th>mean</th><th>pairs</th></tr>\n", f);
    for (size_t i = 0; i < t->n; i++) {
        size_t cell = t->top[i];
        fprintf(f, "<tr><td>%zu</td>", i + 1);
        for (size_t a = 0; a < e->n_axes; a++) {
            const ResAxis *ax = &e->axes[a];
            size_t k = results_cell_coord(e, cell, a);
            fputs("<td>", f);
            html_text(f, ax->label[k]);
            fputs("</td>", f);
            if (is_pos(ax)) {
                fputs("<td class=tok>", f);
                if (ax->token[k]) {
                    fputs("<code>", f);
                    html_text(f, ax->token[k]);
                    fputs("</code>", f);
                } else {
                    fputs("-", f);
                }
                fputs("</td>", f);
            }
        }
        double v = t->m->mean[cell];
        fprintf(f, "<td class=%s>%.4g</td>", v > 0 ? "pos" : v < 0 ? "neg" : "zero", v);
        if (t->m->effect) {
            double d = t->m->effect[cell];
            fprintf(f, "<td class=%s>%.4g</td>", d > 0 ? "pos" : d < 0 ? "neg" : "zero", d);
        }
        fprintf(f, "<td>%zu/%zu</td></tr>\n", (size_t)t->m->count[cell], t->n_pairs);
    }
    fputs("</table>\n", f);
}

/* ---- one heatmap ------------------------------------------------------------------ */

/* The mean over pairs of one metric as a figure: rows = the first axis
 * (layer), columns = the last; with three axes a panel per middle axis
 * (position). Writes dir/name and returns 0; 1 with the reason in err if
 * the grid is too big to draw; -1 with err on error. */
static int draw_metric(const Results *r, const ResExperiment *e, const ResMetric *m, const char *dir,
                       const char *name, Err *err)
{
    size_t na = e->n_axes;
    const ResAxis *row_ax = na >= 2 ? &e->axes[0] : NULL;
    const ResAxis *col_ax = &e->axes[na - 1];
    const ResAxis *panel_ax = na == 3 ? &e->axes[1] : NULL;
    size_t rows = row_ax ? row_ax->n : 1, cols = col_ax->n, panels = panel_ax ? panel_ax->n : 1;
    if (rows == 0 || cols == 0 || panels == 0) {
        err_set(err, "no cells to draw");
        return 1;
    }

    /* Figure order (panel, row, col) from the file's (row, [panel,] col). */
    float *vals = xmalloc(xmul(xmul(rows, cols), panels) * sizeof *vals);
    for (size_t rr = 0; rr < rows; rr++)
        for (size_t p = 0; p < panels; p++)
            for (size_t c = 0; c < cols; c++)
                vals[(p * rows + rr) * cols + c] = (float)m->mean[(rr * panels + p) * cols + c];

    char **labels = xcalloc(rows + cols + panels, sizeof *labels);
    char **row_labels = labels, **col_labels = labels + rows, **panel_labels = labels + rows + cols;
    char buf[512];
    for (size_t i = 0; i < rows; i++) row_labels[i] = xstrdup(row_ax ? row_ax->label[i] : "");
    for (size_t i = 0; i < cols; i++) {
        pos_figure_label(buf, sizeof buf, col_ax, i);
        col_labels[i] = xstrdup(buf);
    }
    for (size_t i = 0; i < panels; i++) {
        if (panel_ax) {
            pos_figure_label(buf, sizeof buf, panel_ax, i);
            char with_name[600];
            snprintf(with_name, sizeof with_name, "%s %s", panel_ax->name, buf);
            panel_labels[i] = xstrdup(with_name);
        } else {
            panel_labels[i] = xstrdup("");
        }
    }

    char title[512], subtitle[1024], x_name[256];
    snprintf(title, sizeof title, "%s: %s", e->name, m->name);
    int all_pairs = 1; /* every cell with a value has it for every pair */
    for (size_t c = 0; c < m->cells; c++) all_pairs &= m->count[c] == 0 || m->count[c] == r->n_pairs;
    int n = snprintf(subtitle, sizeof subtitle, "patch %s at %s, %s, source %s; mean over %s%zu pairs",
                     e->patch, e->hook, e->direction, e->source,
                     all_pairs ? "" : "the pairs that have each cell, of ", r->n_pairs);
    if (m->n_valued < m->cells && n > 0 && (size_t)n < sizeof subtitle)
        snprintf(subtitle + n, sizeof subtitle - (size_t)n, "; %zu of %zu cells without a value",
                 m->cells - m->n_valued, m->cells);
    if (is_pos(col_ax))
        snprintf(x_name, sizeof x_name, "%s (with pair 0's token, %c = space)", col_ax->name,
                 CANVAS_VISIBLE_SPACE);
    else if (panel_ax && is_pos(panel_ax))
        snprintf(x_name, sizeof x_name, "%s (a panel per %s, with pair 0's token, %c = space)",
                 col_ax->name, panel_ax->name, CANVAS_VISIBLE_SPACE);
    else if (panel_ax)
        snprintf(x_name, sizeof x_name, "%s (a panel per %s)", col_ax->name, panel_ax->name);
    else
        snprintf(x_name, sizeof x_name, "%s", col_ax->name);

    Heatmap h = {
        .title = title,
        .subtitle = subtitle,
        .x_name = x_name,
        .y_name = row_ax ? row_ax->name : "",
        .value_name = m->name,
        .panels = panels,
        .rows = rows,
        .cols = cols,
        .values = vals,
        .row_labels = (const char *const *)row_labels,
        .col_labels = (const char *const *)col_labels,
        .panel_labels = panel_ax ? (const char *const *)panel_labels : NULL,
    };
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc;
    if (heatmap_fits(&h))
        rc = heatmap_write_png(&h, path, err);
    else
        rc = 1, err_set(err, "%zu x %zu cells are too many to draw", rows, panels * cols);
    for (size_t i = 0; i < rows + cols + panels; i++) free(labels[i]);
    free(labels);
    free(vals);
    return rc;
}

/* ---- the report --------------------------------------------------------------------- */

/* What was made for one experiment x metric. */
typedef struct Figure {
    char png[300];       /* file name in the output directory, "" if not drawn */
    char problem[1024];  /* why not, or "" */
    Table table;
} Figure;

static void print_header(const Results *r, int complete)
{
    printf("%s: %zu pairs, %zu experiments; status %s, engine %s, model %s, config %s\n", r->path,
           r->n_pairs, r->n_exps, r->status[0] ? r->status : "?", r->engine[0] ? r->engine : "?",
           r->model_path[0] ? r->model_path : "?", r->config_path[0] ? r->config_path : "?");
    if (!complete)
        printf("partial: %zu of %zu units done (status %s: %s)\n", r->units_done, r->units_total,
               r->status[0] ? r->status : "?",
               strcmp(r->status, "running") == 0
                   ? "a sweep is writing this file, or was killed"
                   : "rerun 'patchgrid run' with the same config to finish it");
    if (r->n_baselines) {
        printf("baselines (mean over pairs, clean / corrupted):");
        for (size_t i = 0; i < r->n_baselines; i++)
            printf("%s %s %.4g / %.4g", i ? "," : "", r->baselines[i].metric, r->baselines[i].mean[0],
                   r->baselines[i].mean[1]);
        printf("\n");
    }
}

static void axes_text(char *out, size_t size, const ResExperiment *e, const char *times)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t a = 0; a < e->n_axes && n < size; a++)
        n += (size_t)snprintf(out + n, size - n, "%s%s", a ? times : "", e->axes[a].name);
    for (size_t a = 0; a < e->n_axes && n < size; a++)
        n += (size_t)snprintf(out + n, size - n, "%s%zu%s", a ? times : " (", e->axes[a].n,
                              a + 1 == e->n_axes ? ")" : "");
}

static void print_experiment(const ResExperiment *e, const Figure *figs)
{
    char axes[256];
    axes_text(axes, sizeof axes, e, " x ");
    printf("\n== %s: patch %s, %s, source %s; %s; %zu/%zu units done\n", e->name, e->patch,
           e->direction, e->source, axes, e->units_done, e->units_total);
    if (e->n_metrics == 0) printf("   no metrics in this experiment\n");
    for (size_t i = 0; i < e->n_metrics; i++) {
        const ResMetric *m = &e->metrics[i];
        if (figs[i].table.n == 0) {
            printf("-- %s: no values yet (0 of %zu cells)\n", m->name, m->cells);
            continue;
        }
        if (m->effect)
            printf("-- %s: top %zu of %zu cells by |change from the %s run| (mean over pairs)",
                   m->name, figs[i].table.n, m->cells,
                   strcmp(e->direction, "noising") == 0 ? "clean" : "corrupted");
        else
            printf("-- %s: top %zu of %zu cells by |mean over pairs|", m->name, figs[i].table.n,
                   m->cells);
        if (m->n_valued < m->cells) printf(" (%zu cells have no value)", m->cells - m->n_valued);
        printf("\n");
        print_table(&figs[i].table);
    }
}

static const char CSS[] =
    "body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222}"
    "h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;font-size:90%;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f3f3f3}"
    "td.tok{text-align:left}td.pos{color:#b2182b}td.neg{color:#2166ac}"
    "code{background:#f6f6f6;white-space:pre}.fig{overflow-x:auto}.fig img{border:1px solid #ddd}"
    ".meta{color:#555}.partial{background:#fff3cd;border:1px solid #e0c060;padding:.5em 1em}"
    ".problem{color:#a00}";

static int write_index(const Results *r, int complete, Figure *const *figs, const char *dir,
                       Err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) return err_set(err, "%s: cannot write: %s", path, strerror(errno));
    fputs("<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<title>patchgrid report: ", f);
    html_text(f, r->path);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>patchgrid report: <code>", CSS);
    html_text(f, r->path);
    fprintf(f, "</code></h1>\n<p class=meta>%zu pairs &middot; %zu experiments &middot; status ", r->n_pairs,
            r->n_exps);
    html_text(f, r->status);
    fputs(" &middot; engine ", f);
    html_text(f, r->engine);
    fputs(" &middot; model <code>", f);
    html_text(f, r->model_path);
    fputs("</code> &middot; config <code>", f);
    html_text(f, r->config_path);
    fputs("</code></p>\n", f);
    if (!complete) {
        fprintf(f, "<p class=partial>partial: %zu of %zu units done. Cells without a value are "
                   "hatched grey in the heatmaps; means are over the pairs that have the cell.</p>\n",
                r->units_done, r->units_total);
    }
    fputs("<p>Each heatmap is the mean over pairs of one metric, TransformerLens <code>imshow</code> "
          "style: blue negative, white 0, red positive, symmetric about 0; hatched grey = no value (NaN). "
          "Tables list the cells where patching changes the metric most (largest |mean change from "
          "the patched run's own value|).</p>\n<ul>\n", f);
    for (size_t i = 0; i < r->n_exps; i++) {
        fputs("<li><a href=\"#exp-", f);
        html_text(f, r->exps[i].name);
        fputs("\">", f);
        html_text(f, r->exps[i].name);
        fputs("</a></li>\n", f);
    }
    fputs("</ul>\n", f);
    if (r->n_baselines) {
        fputs("<h2>Baselines</h2>\n<table>\n<tr><th>metric</th><th>clean</th><th>corrupted</th></tr>\n", f);
        for (size_t i = 0; i < r->n_baselines; i++) {
            fputs("<tr><td>", f);
            html_text(f, r->baselines[i].metric);
            fprintf(f, "</td><td>%.4g</td><td>%.4g</td></tr>\n", r->baselines[i].mean[0],
                    r->baselines[i].mean[1]);
        }
        fputs("</table>\n<p class=meta>Mean over pairs of the unpatched runs.</p>\n", f);
    }
    for (size_t i = 0; i < r->n_exps; i++) {
        const ResExperiment *e = &r->exps[i];
        char axes[256];
        axes_text(axes, sizeof axes, e, " &times; ");
        fputs("<h2 id=\"exp-", f);
        html_text(f, e->name);
        fputs("\">", f);
        html_text(f, e->name);
        fputs("</h2>\n<p class=meta>patch <b>", f);
        html_text(f, e->patch);
        fputs("</b> at <code>", f);
        html_text(f, e->hook);
        fputs("</code> &middot; ", f);
        html_text(f, e->direction);
        fputs(" &middot; source ", f);
        html_text(f, e->source);
        fprintf(f, " &middot; %s &middot; %zu/%zu units done</p>\n", axes, e->units_done, e->units_total);
        for (size_t k = 0; k < e->n_metrics; k++) {
            const Figure *fig = &figs[i][k];
            fputs("<h3>", f);
            html_text(f, e->name);
            fputs(": ", f);
            html_text(f, e->metrics[k].name);
            fputs("</h3>\n", f);
            if (fig->png[0]) {
                fputs("<figure><div class=fig><img src=\"", f);
                html_text(f, fig->png);
                fputs("\" alt=\"heatmap of ", f);
                html_text(f, e->name);
                fputs(" ", f);
                html_text(f, e->metrics[k].name);
                fputs("\"></div><figcaption>", f);
                html_text(f, fig->png);
                fprintf(f, ": mean over pairs; %zu of %zu cells have a value</figcaption></figure>\n",
                        e->metrics[k].n_valued, e->metrics[k].cells);
            } else if (fig->problem[0]) {
                fputs("<p class=problem>no heatmap: ", f);
                html_text(f, fig->problem);
                fputs("</p>\n", f);
            }
            if (fig->table.n)
                html_table(f, &fig->table);
            else
                fputs("<p>No values yet.</p>\n", f);
        }
    }
    fputs("</body>\n</html>\n", f);
    if (ferror(f) | fclose(f)) return err_set(err, "%s: cannot write: %s", path, strerror(errno));
    return 0;
}

static int report(const char *results_path, const char *out_dir, size_t top_n, Err *err)
{
    Results *r;
    if (results_load(&r, results_path, err)) return -1;
    int complete = strcmp(r->status, "complete") == 0 ||
                   (r->status[0] == '\0' && r->units_done == r->units_total);
    char *dir = out_dir ? xstrdup(out_dir) : default_out_dir(results_path);
    Figure **figs = xcalloc(r->n_exps ? r->n_exps : 1, sizeof *figs);
    size_t n_png = 0;
    int rc = make_dirs(dir, err);
    for (size_t i = 0; i < r->n_exps && rc == 0; i++) {
        const ResExperiment *e = &r->exps[i];
        figs[i] = xcalloc(e->n_metrics ? e->n_metrics : 1, sizeof **figs);
        for (size_t k = 0; k < e->n_metrics && rc == 0; k++) {
            const ResMetric *m = &e->metrics[k];
            Figure *fig = &figs[i][k];
            fig->table = (Table){.e = e, .m = m, .n_pairs = r->n_pairs,
                                 .top = xmalloc((top_n ? top_n : 1) * sizeof(size_t))};
            fig->table.n = results_top_cells(m, top_n, fig->table.top);
            if (e->n_axes == 0 || m->cells == 0) continue;
            char name[300];
            png_name(name, sizeof name, e->name, m->name);
            Err why;
            int drawn = draw_metric(r, e, m, dir, name, &why);
            if (drawn == 0) {
                snprintf(fig->png, sizeof fig->png, "%s", name);
                n_png++;
            } else if (drawn == 1) { /* say so, go on */
                fprintf(stderr, "patchgrid report: no heatmap for %s %s: %s\n", e->name, m->name, why.msg);
                snprintf(fig->problem, sizeof fig->problem, "%s", why.msg);
            } else {
                *err = why;
                rc = -1;
            }
        }
    }
    if (rc == 0) {
        print_header(r, complete);
        for (size_t i = 0; i < r->n_exps; i++) print_experiment(&r->exps[i], figs[i]);
        rc = write_index(r, complete, figs, dir, err);
    }
    if (rc == 0) printf("\nwrote %zu heatmaps and index.html to %s/\n", n_png, dir);
    for (size_t i = 0; i < r->n_exps; i++) {
        if (figs[i] == NULL) continue;
        for (size_t k = 0; k < r->exps[i].n_metrics; k++) free(figs[i][k].table.top);
        free(figs[i]);
    }
    free(figs);
    free(dir);
    results_free(r);
    return rc;
}

int cmd_report(int argc, char **argv)
{
    const char *results = NULL, *out_dir = NULL;
    size_t top_n = DEFAULT_TOP;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "-n") == 0) {
            if (i + 1 >= argc) return cli_usage_error("report", "%s needs a value", a);
            const char *v = argv[++i];
            if (a[1] == 'o') {
                if (*v == '\0') return cli_usage_error("report", "-o needs a directory");
                out_dir = v;
            } else {
                char *end;
                errno = 0;
                long n = strtol(v, &end, 10);
                if (end == v || *end || errno || n < 1 || n > 1000000)
                    return cli_usage_error("report", "-n %s: expected a count from 1 to 1000000", v);
                top_n = (size_t)n;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error("report", "unknown option '%s'", a);
        } else if (results == NULL) {
            results = a;
        } else {
            return cli_usage_error("report", "expected one RESULTS.h5, got '%s' too", a);
        }
    }
    if (results == NULL) return cli_usage_error("report", "expected RESULTS.h5");
    Err err;
    if (report(results, out_dir, top_n, &err)) return cli_fail(&err);
    return 0;
}
