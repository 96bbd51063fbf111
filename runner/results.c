/* results.c — a results file as per-cell means over pairs (see include/results.h). */
#include "results.h"

#include <errno.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg.h"
#include "h5util.h"

/* Floats read per block of pairs: bounds the memory of a big sweep. */
enum { BLOCK_FLOATS = 1 << 22 };

/* ---- small HDF5 readers ------------------------------------------------------------ */

/* "path: what: HDF5's reason"; returns -1. */
static int h5_error(const char *path, const char *what, Err *err)
{
    char why[256];
    return err_set(err, "%s: %s: %s", path, what, h5_reason(why));
}

/* A string attribute (fixed or variable length), or "" if it is absent or
 * not a string. Caller frees. */
static char *attr_str(hid_t obj, const char *name)
{
    if (H5Aexists(obj, name) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return xstrdup("");
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    char *out = NULL;
    if (ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING && H5Sget_simple_extent_npoints(sp) == 1) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_cset(mt, H5Tget_cset(ft)); /* HDF5 converts no character set into another */
        if (H5Tis_variable_str(ft) > 0) {
            char *v = NULL;
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &v) >= 0 && v) out = xstrdup(v);
            if (v) H5free_memory(v);
        } else {
            size_t len = H5Tget_size(ft);
            char *buf = xcalloc(len + 1, 1);
            H5Tset_size(mt, len + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            if (H5Aread(a, mt, buf) >= 0) out = buf;
            else free(buf);
        }
        H5Tclose(mt);
    }
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    H5Eclear2(H5E_DEFAULT);
    return out ? out : xstrdup("");
}

/* Strings of a 1-d or 2-d string dataset: rows [row0, row0 + rows) of the
 * first dimension, all of the second. Fixed or variable length. Returns a
 * malloc'd array of malloc'd strings (*n of them), or NULL on error. */
static char **read_strings(hid_t d, hsize_t row0, hsize_t rows, size_t *n)
{
    hid_t ft = H5Dget_type(d), fs = H5Dget_space(d), mt = -1, ms = -1;
    char **out = NULL;
    int nd = fs >= 0 ? H5Sget_simple_extent_ndims(fs) : -1;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING || nd < 1 || nd > 2) goto out;
    hsize_t dims[2] = {0, 1}, start[2] = {row0, 0}, count[2] = {rows, 1};
    H5Sget_simple_extent_dims(fs, dims, NULL);
    if (row0 + rows > dims[0]) goto out;
    count[1] = nd == 2 ? dims[1] : 1;
    size_t total = (size_t)(count[0] * count[1]);
    ms = H5Screate_simple(nd, count, NULL);
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0) goto out;
    mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, H5Tget_cset(ft));
    out = xcalloc(total ? total : 1, sizeof *out);
    if (H5Tis_variable_str(ft) > 0) {
        char **v = xcalloc(total ? total : 1, sizeof *v);
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Dread(d, mt, ms, fs, H5P_DEFAULT, v) >= 0) {
            for (size_t i = 0; i < total; i++) out[i] = xstrdup(v[i] ? v[i] : "");
#if H5_VERSION_GE(1, 12, 0)
            H5Treclaim(mt, ms, H5P_DEFAULT, v);
#else
            H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, v);
#endif
        } else {
            free(out);
            out = NULL;
        }
        free(v);
    } else {
        size_t len = H5Tget_size(ft) + 1;
        char *buf = xcalloc(total ? total : 1, len);
        H5Tset_size(mt, len);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        if (H5Dread(d, mt, ms, fs, H5P_DEFAULT, buf) >= 0) {
            for (size_t i = 0; i < total; i++) out[i] = xstrdup(buf + i * len);
        } else {
            free(out);
            out = NULL;
        }
        free(buf);
    }
    if (out) *n = total;
out:
    if (mt >= 0) H5Tclose(mt);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (ft >= 0) H5Tclose(ft);
    return out;
}

static void free_strings(char **s, size_t n)
{
    if (s == NULL) return;
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* Reads a whole 1-d or 2-d integer dataset, converted to int32; NULL on error. */
static int32_t *read_int32(hid_t loc, const char *name, hsize_t *n_out)
{
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return NULL;
    hid_t sp = H5Dget_space(d);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int32_t *v = NULL;
    if (n >= 0) {
        v = xmalloc((size_t)(n ? n : 1) * sizeof *v);
        if (H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
            free(v);
            v = NULL;
        } else if (n_out) {
            *n_out = (hsize_t)n;
        }
    }
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return v;
}

/* Names of a group's links, in name order. */
typedef struct Names {
    char **v;
    size_t n, cap;
} Names;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    Names *ns = data;
    if (ns->n == ns->cap) {
        ns->cap = ns->cap ? 2 * ns->cap : 16;
        ns->v = xrealloc(ns->v, ns->cap * sizeof *ns->v);
    }
    ns->v[ns->n++] = xstrdup(name);
    return 0;
}

static int list_names(hid_t g, Names *ns)
{
    memset(ns, 0, sizeof *ns);
    hsize_t idx = 0;
    return H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, ns) < 0 ? -1 : 0;
}

/* H5I_GROUP / H5I_DATASET / ... of a member, H5I_BADID if it cannot be opened. */
static H5I_type_t member_type(hid_t g, const char *name)
{
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) {
        H5Eclear2(H5E_DEFAULT);
        return H5I_BADID;
    }
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t;
}

/* Metrics in the config's order (cfg.h), names it does not know after. */
static int metric_rank(const char *name)
{
    for (int m = 0; m < METRIC_COUNT; m++)
        if (strcmp(name, cfg_metric_name((Metric)m)) == 0) return m;
    return METRIC_COUNT;
}

static int by_metric_order(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int rx = metric_rank(x), ry = metric_rank(y);
    return rx != ry ? rx - ry : strcmp(x, y);
}

/* ---- the pairs: pair 0's tokens ------------------------------------------------- */

typedef struct Pair0 {
    long length;   /* tokens of pair 0, 0 if unknown */
    char **tokens; /* (length) decoded, or "#ID"; NULL if the file has neither */
} Pair0;

static void read_pair0(hid_t file, size_t n_pairs, Pair0 *p0)
{
    memset(p0, 0, sizeof *p0);
    if (n_pairs == 0) return;
    hsize_t n = 0;
    int32_t *len = read_int32(file, "pairs/length", &n);
    H5Eclear2(H5E_DEFAULT);
    if (len == NULL || n == 0) {
        free(len);
        return;
    }
    p0->length = len[0] > 0 ? len[0] : 0;
    free(len);
    hid_t d = H5Dopen2(file, "pairs/clean_token_str", H5P_DEFAULT);
    if (d >= 0) {
        size_t m = 0;
        char **s = read_strings(d, 0, 1, &m);
        H5Dclose(d);
        if (s && (long)m >= p0->length) {
            p0->tokens = s;
            for (size_t i = (size_t)p0->length; i < m; i++) free(s[i]);
            H5Eclear2(H5E_DEFAULT);
            return;
        }
        free_strings(s, m);
    }
    H5Eclear2(H5E_DEFAULT);
    /* No token strings (a model without a tokenizer): show the ids. */
    hsize_t total = 0;
    int32_t *ids = read_int32(file, "pairs/clean_tokens", &total);
    H5Eclear2(H5E_DEFAULT);
    if (ids && total >= (hsize_t)p0->length) {
        p0->tokens = xcalloc((size_t)p0->length + 1, sizeof *p0->tokens);
        for (long i = 0; i < p0->length; i++) {
            char buf[24];
            snprintf(buf, sizeof buf, "#%d", ids[i]);
            p0->tokens[i] = xstrdup(buf);
        }
    }
    free(ids);
}

static void free_pair0(Pair0 *p0)
{
    free_strings(p0->tokens, (size_t)p0->length);
}

/* ---- experiments ----------------------------------------------------------------- */

static void free_axis(ResAxis *a)
{
    free(a->name);
    free_strings(a->label, a->n);
    free_strings(a->token, a->n);
    free(a->index);
}

/* A whole integer, as position labels like "-1" are. */
static int parse_long(const char *s, long *v)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno) return -1;
    *v = x;
    return 0;
}

/* Pair 0's position for a pos label: an index (negative from the end) or a
 * name from /pairs/positions. -1 if pair 0 has no such position. */
static long resolve_pos(hid_t file, const char *label, const Pair0 *p0)
{
    long idx;
    if (parse_long(label, &idx) == 0) {
        if (idx < 0) idx += p0->length;
    } else {
        char path[512];
        snprintf(path, sizeof path, "pairs/positions/%s", label);
        int32_t *v = read_int32(file, path, NULL);
        H5Eclear2(H5E_DEFAULT);
        idx = v ? v[0] : -1;
        free(v);
    }
    return idx >= 0 && idx < p0->length ? idx : -1;
}

/* Axis `name` of length n from the experiment group's dimension scale of
 * that name (0..n-1 when there is none or it cannot be read). */
static void read_axis(hid_t file, hid_t g, const char *name, size_t n, const Pair0 *p0, ResAxis *a)
{
    a->name = xstrdup(name);
    a->n = n;
    a->label = xcalloc(n ? n : 1, sizeof *a->label);
    hid_t d = H5Lexists(g, name, H5P_DEFAULT) > 0 ? H5Dopen2(g, name, H5P_DEFAULT) : -1;
    H5Eclear2(H5E_DEFAULT);
    int ok = 0;
    if (d >= 0) {
        hid_t t = H5Dget_type(d);
        hid_t sp = H5Dget_space(d);
        int scalar_ok = sp >= 0 && H5Sget_simple_extent_ndims(sp) == 1 &&
                        (size_t)H5Sget_simple_extent_npoints(sp) == n;
        if (scalar_ok && H5Tget_class(t) == H5T_STRING) {
            size_t m = 0;
            char **s = read_strings(d, 0, n, &m);
            if (s) {
                free(a->label);
                a->label = s;
                ok = 1;
            }
        } else if (scalar_ok && H5Tget_class(t) == H5T_INTEGER) {
            int32_t *v = xmalloc((n ? n : 1) * sizeof *v);
            if (H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0) {
                for (size_t i = 0; i < n; i++) {
                    char buf[24];
                    snprintf(buf, sizeof buf, "%d", v[i]);
                    a->label[i] = xstrdup(buf);
                }
                ok = 1;
            }
            free(v);
        }
        if (sp >= 0) H5Sclose(sp);
        if (t >= 0) H5Tclose(t);
        H5Dclose(d);
        H5Eclear2(H5E_DEFAULT);
    }
    if (!ok)
        for (size_t i = 0; i < n; i++) {
            char buf[24];
            snprintf(buf, sizeof buf, "%zu", i);
            a->label[i] = xstrdup(buf);
        }
    if (strcmp(name, "pos") == 0) {
        a->index = xmalloc((n ? n : 1) * sizeof *a->index);
        a->token = xcalloc(n ? n : 1, sizeof *a->token);
        for (size_t i = 0; i < n; i++) {
            a->index[i] = resolve_pos(file, a->label[i], p0);
            if (a->index[i] >= 0 && p0->tokens) a->token[i] = xstrdup(p0->tokens[a->index[i]]);
        }
    }
}

/* Means over pairs of one metric dataset [pair, cells...], a block of pairs
 * at a time; with ref (pair p's reference value at ref[p * 2]) also the
 * means of value - reference. */
static int summarise_metric(hid_t d, size_t n_pairs, size_t cells, ResMetric *m,
                            const float *ref)
{
    m->cells = cells;
    m->mean = xmalloc((cells ? cells : 1) * sizeof *m->mean);
    m->count = xcalloc(cells ? cells : 1, sizeof *m->count);
    double *sum = xcalloc(cells ? cells : 1, sizeof *sum);
    double *dsum = ref ? xcalloc(cells ? cells : 1, sizeof *dsum) : NULL;
    size_t block = cells ? BLOCK_FLOATS / cells : 1;
    if (block == 0) block = 1;
    if (block > n_pairs) block = n_pairs;
    float *buf = xmalloc(xmul(block ? block : 1, cells ? cells : 1) * sizeof *buf);
    hid_t fs = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(fs);
    int rc = 0;
    for (size_t p0 = 0; p0 < n_pairs && rc == 0; p0 += block) {
        size_t np = n_pairs - p0 < block ? n_pairs - p0 : block;
        hsize_t start[1 + RES_MAX_AXES] = {p0}, count[1 + RES_MAX_AXES];
        H5Sget_simple_extent_dims(fs, count, NULL);
        count[0] = np;
        hid_t ms = H5Screate_simple(nd, count, NULL);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(d, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, buf) < 0)
            rc = -1;
        H5Sclose(ms);
        for (size_t i = 0; rc == 0 && i < np * cells; i++)
            if (!isnan(buf[i])) {
                sum[i % cells] += buf[i];
                if (dsum) dsum[i % cells] += (double)buf[i] - (double)ref[(p0 + i / cells) * 2];
                m->count[i % cells]++;
            }
    }
    if (dsum) m->effect = xmalloc((cells ? cells : 1) * sizeof *m->effect);
    for (size_t c = 0; c < cells; c++) {
        m->mean[c] = m->count[c] ? sum[c] / m->count[c] : NAN;
        if (dsum) m->effect[c] = m->count[c] ? dsum[c] / m->count[c] : NAN;
        m->n_valued += m->count[c] > 0;
    }
    H5Sclose(fs);
    free(buf);
    free(sum);
    free(dsum);
    return rc;
}

/* Splits "pair,layer,pos" into at most RES_MAX_AXES + 1 names. */
static size_t split_axes(const char *s, char names[][32], size_t max)
{
    size_t n = 0;
    while (*s && n < max) {
        size_t len = strcspn(s, ",");
        snprintf(names[n++], 32, "%.*s", (int)(len < 31 ? len : 31), s);
        s += len;
        if (*s == ',') s++;
    }
    return n;
}

static int read_experiment(hid_t file, hid_t eg, const char *path, const char *name, size_t n_pairs,
                           const Pair0 *p0, const Results *base, ResExperiment *e, Err *err)
{
    e->name = xstrdup(name);
    e->patch = attr_str(eg, "patch");
    e->hook = attr_str(eg, "hook");
    e->direction = attr_str(eg, "direction");
    e->source = attr_str(eg, "source");
    char *axes_attr = attr_str(eg, "axes");
    char axis_names[RES_MAX_AXES + 2][32];
    size_t n_names = split_axes(axes_attr, axis_names, RES_MAX_AXES + 2);
    int rc = -1;
    if (n_names < 2 || n_names > RES_MAX_AXES + 1 || strcmp(axis_names[0], "pair") != 0) {
        err_set(err, "%s: /experiments/%s: axes attribute \"%s\" is not \"pair,<axes>\" with 1 to %d axes",
                path, name, axes_attr, RES_MAX_AXES);
        goto out;
    }
    e->n_axes = n_names - 1;

    /* Done flags: [pair, slice]. */
    hid_t dd = H5Lexists(eg, "done", H5P_DEFAULT) > 0 ? H5Dopen2(eg, "done", H5P_DEFAULT) : -1;
    H5Eclear2(H5E_DEFAULT);
    if (dd >= 0) {
        hid_t sp = H5Dget_space(dd);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        uint8_t *flags = xmalloc((size_t)(n > 0 ? n : 1));
        if (n >= 0 && H5Dread(dd, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, flags) >= 0) {
            e->units_total = (size_t)n;
            for (hssize_t i = 0; i < n; i++) e->units_done += flags[i] != 0;
        }
        free(flags);
        H5Sclose(sp);
        H5Dclose(dd);
        H5Eclear2(H5E_DEFAULT);
    }

    /* Metrics: float datasets of rank 1 + n_axes that are not dimension scales. */
    Names ns;
    if (list_names(eg, &ns)) {
        h5_error(path, "cannot list an experiment group", err);
        goto out;
    }
    qsort(ns.v, ns.n, sizeof *ns.v, by_metric_order);
    e->metrics = xcalloc(ns.n ? ns.n : 1, sizeof *e->metrics);
    hsize_t dims[1 + RES_MAX_AXES] = {0};
    int have_dims = 0;
    for (size_t i = 0; i < ns.n; i++) {
        if (member_type(eg, ns.v[i]) != H5I_DATASET) continue;
        hid_t d = H5Dopen2(eg, ns.v[i], H5P_DEFAULT);
        if (d < 0) continue;
        hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
        int nd = H5Sget_simple_extent_ndims(sp);
        hsize_t dd2[1 + RES_MAX_AXES + 1];
        int is_metric = H5Tget_class(t) == H5T_FLOAT && nd == (int)(1 + e->n_axes) && H5DSis_scale(d) <= 0;
        if (is_metric) H5Sget_simple_extent_dims(sp, dd2, NULL);
        H5Tclose(t);
        H5Sclose(sp);
        H5Eclear2(H5E_DEFAULT);
        if (!is_metric) {
            H5Dclose(d);
            continue;
        }
        if (!have_dims) {
            memcpy(dims, dd2, sizeof dims);
            have_dims = 1;
        }
        if (memcmp(dims, dd2, (1 + e->n_axes) * sizeof *dims) != 0 || dims[0] != n_pairs) {
            H5Dclose(d);
            err_set(err, "%s: /experiments/%s/%s: shape differs from the experiment's other metrics or the pair count",
                    path, name, ns.v[i]);
            goto free_names;
        }
        size_t cells = 1;
        for (size_t a = 0; a < e->n_axes; a++) cells = xmul(cells, (size_t)dims[1 + a]);
        ResMetric *m = &e->metrics[e->n_metrics++];
        m->name = xstrdup(ns.v[i]);
        /* The patched run's own value of this metric: its baseline. */
        const float *ref = NULL;
        for (size_t b = 0; b < base->n_baselines; b++)
            if (strcmp(base->baselines[b].metric, ns.v[i]) == 0 && base->baselines[b].values)
                ref = base->baselines[b].values + (strcmp(e->direction, "noising") == 0 ? 0 : 1);
        int bad = summarise_metric(d, n_pairs, cells, m, ref);
        H5Dclose(d);
        if (bad) {
            char what[300];
            snprintf(what, sizeof what, "cannot read /experiments/%s/%s", name, ns.v[i]);
            h5_error(path, what, err);
            goto free_names;
        }
    }
    for (size_t a = 0; a < e->n_axes; a++) {
        size_t n = have_dims ? (size_t)dims[1 + a] : 0;
        read_axis(file, eg, axis_names[1 + a], n, p0, &e->axes[a]);
    }
    rc = 0;
free_names:
    for (size_t i = 0; i < ns.n; i++) free(ns.v[i]);
    free(ns.v);
out:
    free(axes_attr);
    return rc;
}

static void free_experiment(ResExperiment *e)
{
    free(e->name);
    free(e->patch);
    free(e->hook);
    free(e->direction);
    free(e->source);
    for (size_t a = 0; a < e->n_axes; a++) free_axis(&e->axes[a]);
    for (size_t i = 0; i < e->n_metrics; i++) {
        free(e->metrics[i].name);
        free(e->metrics[i].mean);
        free(e->metrics[i].effect);
        free(e->metrics[i].count);
    }
    free(e->metrics);
}

/* ---- baselines ------------------------------------------------------------------ */

static int read_baselines(hid_t file, const char *path, size_t n_pairs, Results *r, Err *err)
{
    if (H5Lexists(file, "baseline", H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return 0; /* an old or hand-made file: nothing to say */
    }
    hid_t g = H5Gopen2(file, "baseline", H5P_DEFAULT);
    Names ns;
    if (g < 0 || list_names(g, &ns)) {
        if (g >= 0) H5Gclose(g);
        h5_error(path, "cannot read /baseline", err);
        return -1;
    }
    qsort(ns.v, ns.n, sizeof *ns.v, by_metric_order);
    r->baselines = xcalloc(ns.n ? ns.n : 1, sizeof *r->baselines);
    int rc = 0;
    for (size_t i = 0; i < ns.n && rc == 0; i++) {
        if (member_type(g, ns.v[i]) != H5I_DATASET) continue;
        hid_t d = H5Dopen2(g, ns.v[i], H5P_DEFAULT);
        if (d < 0) continue;
        hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
        hsize_t dims[2];
        int ok = H5Tget_class(t) == H5T_FLOAT && H5Sget_simple_extent_ndims(sp) == 2 &&
                 H5Sget_simple_extent_dims(sp, dims, NULL) == 2 && dims[0] == n_pairs && dims[1] == 2;
        H5Tclose(t);
        H5Sclose(sp);
        if (ok) {
            ResMetric m = {0};
            float *values = xmalloc(xmul(n_pairs ? n_pairs : 1, 2) * sizeof *values);
            if (summarise_metric(d, n_pairs, 2, &m, NULL) ||
                H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
                free(values);
                char what[300];
                snprintf(what, sizeof what, "cannot read /baseline/%s", ns.v[i]);
                h5_error(path, what, err);
                rc = -1;
            } else {
                ResBaseline *b = &r->baselines[r->n_baselines++];
                b->metric = xstrdup(ns.v[i]);
                b->mean[0] = m.mean[0];
                b->mean[1] = m.mean[1];
                b->values = values;
            }
            free(m.mean);
            free(m.count);
        }
        H5Dclose(d);
        H5Eclear2(H5E_DEFAULT);
    }
    for (size_t i = 0; i < ns.n; i++) free(ns.v[i]);
    free(ns.v);
    H5Gclose(g);
    return rc;
}

/* ---- the file ---------------------------------------------------------------------- */

/* The run state: the string of the dataset /status (raw data, so that a run
 * never changes metadata); "" if absent. */
static char *read_status(hid_t f)
{
    hid_t d = H5Lexists(f, "status", H5P_DEFAULT) > 0 ? H5Dopen2(f, "status", H5P_DEFAULT) : -1;
    size_t n = 0;
    char **v = d >= 0 ? read_strings(d, 0, 1, &n) : NULL;
    if (d >= 0) H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
    char *s = xstrdup(v && n >= 1 ? v[0] : "");
    free_strings(v, n);
    return s;
}

/* Opens path read-only with messages a user can act on. */
static hid_t open_file(const char *path, Err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(sb.st_mode)) {
        err_set(err, "%s: is a directory, not a results file", path);
        return -1;
    }
#if H5_VERSION_GE(1, 12, 0)
    htri_t is_h5 = H5Fis_accessible(path, H5P_DEFAULT);
#else
    htri_t is_h5 = H5Fis_hdf5(path);
#endif
    H5Eclear2(H5E_DEFAULT);
    if (is_h5 == 0) {
        err_set(err, "%s: not an HDF5 file (expected the results file of 'patchgrid run')", path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) h5_error(path, "cannot open", err);
    return f;
}

int results_load(Results **out, const char *path, Err *err)
{
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = open_file(path, err);
    if (f < 0) return -1;
    Results *r = xcalloc(1, sizeof *r);
    r->path = xstrdup(path);
    Pair0 p0 = {0};
    hid_t eg = -1;
    Names ns = {0};
    int rc = -1;

    char *format = attr_str(f, "format");
    int is_ours = strcmp(format, "patchgrid") == 0;
    free(format);
    if (!is_ours) {
        err_set(err, "%s: not a patchgrid results file (no attribute format = \"patchgrid\")", path);
        goto out;
    }
    r->status = read_status(f);
    r->engine = attr_str(f, "engine");
    r->model_path = attr_str(f, "model_path");
    r->config_path = attr_str(f, "config_path");

    hsize_t n_pairs = 0;
    int32_t *len = read_int32(f, "pairs/length", &n_pairs);
    int have_pairs = len != NULL;
    free(len);
    if (!have_pairs) {
        h5_error(path, "cannot read /pairs/length (not a complete patchgrid results file?)", err);
        goto out;
    }
    r->n_pairs = (size_t)n_pairs;
    read_pair0(f, r->n_pairs, &p0);
    if (read_baselines(f, path, r->n_pairs, r, err)) goto out;

    eg = H5Gopen2(f, "experiments", H5P_DEFAULT);
    if (eg < 0 || list_names(eg, &ns)) {
        h5_error(path, "cannot read /experiments (not a complete patchgrid results file?)", err);
        goto out;
    }
    r->exps = xcalloc(ns.n ? ns.n : 1, sizeof *r->exps);
    for (size_t i = 0; i < ns.n; i++) {
        if (member_type(eg, ns.v[i]) != H5I_GROUP) continue;
        hid_t g = H5Gopen2(eg, ns.v[i], H5P_DEFAULT);
        ResExperiment *e = &r->exps[r->n_exps++];
        int bad = g < 0 || read_experiment(f, g, path, ns.v[i], r->n_pairs, &p0, r, e, err);
        if (g >= 0) H5Gclose(g);
        if (bad) goto out;
        r->units_done += e->units_done;
        r->units_total += e->units_total;
    }
    rc = 0;
out:
    for (size_t i = 0; i < ns.n; i++) free(ns.v[i]);
    free(ns.v);
    free_pair0(&p0);
    if (eg >= 0) H5Gclose(eg);
    H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    if (rc) {
        results_free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void results_free(Results *r)
{
    if (r == NULL) return;
    free(r->path);
    free(r->status);
    free(r->engine);
    free(r->model_path);
    free(r->config_path);
    for (size_t i = 0; i < r->n_baselines; i++) {
        free(r->baselines[i].metric);
        free(r->baselines[i].values);
    }
    free(r->baselines);
    for (size_t i = 0; i < r->n_exps; i++) free_experiment(&r->exps[i]);
    free(r->exps);
    free(r);
}

/* ---- summaries ------------------------------------------------------------------- */

typedef struct Ranked {
    double size;
    size_t cell;
} Ranked;

static int by_size_desc(const void *a, const void *b)
{
    const Ranked *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return x->cell < y->cell ? -1 : x->cell > y->cell;
}

size_t results_top_cells(const ResMetric *m, size_t k, size_t *top)
{
    Ranked *r = xmalloc((m->n_valued ? m->n_valued : 1) * sizeof *r);
    size_t n = 0;
    for (size_t c = 0; c < m->cells; c++)
        if (m->count[c]) r[n++] = (Ranked){fabs(m->effect ? m->effect[c] : m->mean[c]), c};
    qsort(r, n, sizeof *r, by_size_desc);
    if (k > n) k = n;
    for (size_t i = 0; i < k; i++) top[i] = r[i].cell;
    free(r);
    return k;
}

size_t results_cell_coord(const ResExperiment *e, size_t cell, size_t a)
{
    CHECK(a < e->n_axes);
    for (size_t b = e->n_axes; b-- > a + 1;) cell /= e->axes[b].n;
    return cell % e->axes[a].n;
}
