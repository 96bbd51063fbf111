/* store.c — the results file through parallel HDF5 (see include/store.h and
 * docs/store.md).
 *
 * Collective calls (every rank, same arguments): file create/open/flush/
 * close, group/dataset/attribute creation, dimension scales. Independent
 * calls (one rank): raw H5Dwrite of hyperslabs into preallocated datasets.
 */
#include "store.h"

#include <hdf5.h>
#include <hdf5_hl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "h5util.h"
#include "model.h"
#include "version.h"

#define FORMAT_VERSION 1
#define ATTR_STR_LEN 64 /* fixed size of rewritable string attributes */

typedef struct ExpDsets {
    hid_t group;
    hid_t metric[METRIC_COUNT]; /* -1 when the experiment does not compute it */
    hid_t done;                 /* uint8 [pair, slice] */
} ExpDsets;

#define STATE_LEN 32 /* bytes of /status and /finished */

struct Store {
    const Plan *plan;
    const StoreActs *acts;        /* (n_acts) */
    size_t n_acts;
    hid_t *act_dsets;             /* (2 * n_acts) clean, corrupted */
    hid_t status, finished;       /* string [1] raw datasets: the run state */
    MPI_Comm comm;
    int rank;
    hid_t file;
    hid_t baseline[METRIC_COUNT]; /* float32 [pair, run] */
    ExpDsets *exps;
    uint8_t *done;                /* (n_units) */
    size_t n_done;
    int resumed;
    char *path;
};

/* ---- small HDF5 helpers (collective unless noted) ------------------------ */

static int h5fail(Err *err, const char *path, const char *what)
{
    char why[256];
    return err_set(err, "%s: %s: %s", path, what, h5_reason(why));
}

static hid_t str_type(size_t len)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len ? len : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* A string attribute of fixed size (ATTR_STR_LEN unless the value is longer),
 * replacing an existing one. */
static int attr_str(hid_t loc, const char *name, const char *value)
{
    if (H5Aexists(loc, name) > 0 && H5Adelete(loc, name) < 0) return -1;
    size_t len = strlen(value) + 1;
    if (len < ATTR_STR_LEN) len = ATTR_STR_LEN;
    char *buf = xcalloc(len, 1);
    memcpy(buf, value, strlen(value));
    hid_t t = str_type(len), sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, t, buf) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    free(buf);
    return rc;
}

static int attr_int(hid_t loc, const char *name, long long v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_NATIVE_LLONG, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, H5T_NATIVE_LLONG, &v) >= 0) ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

/* Reads a string attribute into buf (n bytes, NUL-terminated); -1 if absent. */
static int attr_read_str(hid_t loc, const char *name, char *buf, size_t n)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    size_t len = H5Tget_size(ft);
    int rc = -1;
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
        char *tmp = xcalloc(len + 1, 1);
        hid_t mt = str_type(len);
        if (H5Aread(a, mt, tmp) >= 0) {
            snprintf(buf, n, "%s", tmp);
            rc = 0;
        }
        H5Tclose(mt);
        free(tmp);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static hid_t make_group(hid_t loc, const char *name)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0);
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    return g;
}

/* A preallocated dataset filled with *fill (or zeros). */
static hid_t make_dset(hid_t loc, const char *name, hid_t type, int ndim, const hsize_t *dims,
                       const void *fill)
{
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC);
    if (fill) H5Pset_fill_value(dcpl, type, fill);
    hid_t d = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return d;
}

/* Independent write of a whole dataset (rank 0 only, by the caller). */
static int write_all(hid_t d, hid_t type, const void *data)
{
    return H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0 ? -1 : 0;
}

/* Rank 0 writes the run state (raw data; the others skip). */
static int write_state(Store *s, const char *status, const char *finished)
{
    if (s->rank != 0) return 0;
    char buf[2][STATE_LEN] = {{0}};
    snprintf(buf[0], STATE_LEN, "%s", status);
    snprintf(buf[1], STATE_LEN, "%s", finished);
    hid_t t = str_type(STATE_LEN);
    int rc = write_all(s->status, t, buf[0]) || write_all(s->finished, t, buf[1]) ? -1 : 0;
    H5Tclose(t);
    return rc;
}

/* A 1-d int32 dimension scale named `name` in loc with the given values
 * (written by rank 0). Returns the dataset (caller closes). */
static hid_t make_scale_int(hid_t loc, const char *name, const int32_t *vals, size_t n, int rank)
{
    hsize_t dims[1] = {n};
    hid_t d = make_dset(loc, name, H5T_NATIVE_INT32, 1, dims, NULL);
    if (d < 0) return -1;
    if (H5DSset_scale(d, name) < 0 || (rank == 0 && write_all(d, H5T_NATIVE_INT32, vals) < 0)) {
        H5Dclose(d);
        return -1;
    }
    return d;
}

/* A 1-d fixed-length string dimension scale. */
static hid_t make_scale_str(hid_t loc, const char *name, const char *const *vals, size_t n,
                            int rank)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        if (strlen(vals[i]) + 1 > len) len = strlen(vals[i]) + 1;
    char *buf = xcalloc(n ? n : 1, len);
    for (size_t i = 0; i < n; i++) memcpy(buf + i * len, vals[i], strlen(vals[i]));
    hsize_t dims[1] = {n};
    hid_t t = str_type(len);
    hid_t d = make_dset(loc, name, t, 1, dims, NULL);
    int ok = d >= 0 && H5DSset_scale(d, name) >= 0 && (rank != 0 || write_all(d, t, buf) == 0);
    H5Tclose(t);
    free(buf);
    if (!ok && d >= 0) H5Dclose(d), d = -1;
    return d;
}

static int32_t *iota32(size_t n)
{
    int32_t *v = xmalloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = (int32_t)i;
    return v;
}

static const char *hook_of_kind(PatchKind k)
{
    static const char *const hooks[PATCH_KIND_COUNT] = {
        [PATCH_RESID_PRE] = "blocks.{layer}.hook_resid_pre",
        [PATCH_RESID_MID] = "blocks.{layer}.hook_resid_mid",
        [PATCH_RESID_POST] = "blocks.{layer}.hook_resid_post",
        [PATCH_ATTN_OUT] = "blocks.{layer}.hook_attn_out",
        [PATCH_MLP_OUT] = "blocks.{layer}.hook_mlp_out",
        [PATCH_Z] = "blocks.{layer}.attn.hook_z",
        [PATCH_Q] = "blocks.{layer}.attn.hook_q",
        [PATCH_K] = "blocks.{layer}.attn.hook_k",
        [PATCH_V] = "blocks.{layer}.attn.hook_v",
        [PATCH_PATTERN] = "blocks.{layer}.attn.hook_pattern",
    };
    return hooks[k];
}

/* ---- creation --------------------------------------------------------------- */

static void sha256_text(const char *text, size_t len, char out[65]);

/* Fixed-length string dataset [n] (or [n, m] when m > 0) from strings (NULL = ""). */
static int write_strings(hid_t loc, const char *name, const char *const *strs, size_t n,
                         size_t m, int rank)
{
    size_t total = n * (m ? m : 1), len = 1;
    for (size_t i = 0; i < total; i++)
        if (strs[i] && strlen(strs[i]) + 1 > len) len = strlen(strs[i]) + 1;
    char *buf = xcalloc(total ? total : 1, len);
    for (size_t i = 0; i < total; i++)
        if (strs[i]) memcpy(buf + i * len, strs[i], strlen(strs[i]));
    hsize_t dims[2] = {n, m};
    hid_t t = str_type(len);
    hid_t d = make_dset(loc, name, t, m ? 2 : 1, dims, NULL);
    int rc = (d >= 0 && (rank != 0 || write_all(d, t, buf) == 0)) ? 0 : -1;
    if (d >= 0) H5Dclose(d);
    H5Tclose(t);
    free(buf);
    return rc;
}

static int create_pairs(Store *s, const StoreMeta *meta)
{
    const Plan *p = s->plan;
    const Config *cfg = p->cfg;
    size_t N = p->n_pairs, T = p->max_tokens;
    hid_t g = make_group(s->file, "pairs");
    if (g < 0) return -1;
    int rc = -1;
    int32_t *toks = xmalloc(xmul(N, T) * sizeof *toks);
    int32_t *col = xmalloc(N * sizeof *col);
    const char **strs = xcalloc(xmul(N, T), sizeof *strs);
    hsize_t d2[2] = {N, T}, d1[1] = {N};
    for (int run = 0; run < 2; run++) {
        for (size_t i = 0; i < N; i++)
            for (size_t t = 0; t < T; t++) {
                const CfgPair *pr = &cfg->pairs[i];
                const int32_t *src = run == 0 ? pr->clean : pr->corrupted;
                toks[i * T + t] = t < pr->n_tokens ? src[t] : -1;
            }
        hid_t d = make_dset(g, run == 0 ? "clean_tokens" : "corrupted_tokens", H5T_NATIVE_INT32,
                            2, d2, NULL);
        if (d < 0 || (s->rank == 0 && write_all(d, H5T_NATIVE_INT32, toks))) goto out;
        H5Dclose(d);
        if (meta->tok_str[0] != NULL) {
            for (size_t i = 0; i < N; i++)
                for (size_t t = 0; t < T; t++)
                    strs[i * T + t] = t < cfg->pairs[i].n_tokens ? meta->tok_str[run][i][t] : NULL;
            if (write_strings(g, run == 0 ? "clean_token_str" : "corrupted_token_str", strs, N,
                              T, s->rank))
                goto out;
        }
    }
    struct { const char *name; size_t off; } cols[] = {
        {"length", 0}, {"answer", 1}, {"wrong", 2}};
    for (size_t c = 0; c < 3; c++) {
        for (size_t i = 0; i < N; i++) {
            const CfgPair *pr = &cfg->pairs[i];
            col[i] = c == 0 ? (int32_t)pr->n_tokens : c == 1 ? pr->answer : pr->wrong;
        }
        hid_t d = make_dset(g, cols[c].name, H5T_NATIVE_INT32, 1, d1, NULL);
        if (d < 0 || (s->rank == 0 && write_all(d, H5T_NATIVE_INT32, col))) goto out;
        H5Dclose(d);
    }
    if (meta->resample_partner != NULL) {
        hid_t d = make_dset(g, "resample_partner", H5T_NATIVE_INT32, 1, d1, NULL);
        if (d < 0 || (s->rank == 0 && write_all(d, H5T_NATIVE_INT32, meta->resample_partner)))
            goto out;
        H5Dclose(d);
    }
    /* Texts, when the pairs were given as text. */
    int any_text = 0;
    for (size_t i = 0; i < N; i++) any_text |= cfg->pairs[i].clean_text != NULL;
    if (any_text) {
        const char *names[4] = {"clean_text", "corrupted_text", "answer_text", "wrong_text"};
        for (int f = 0; f < 4; f++) {
            for (size_t i = 0; i < N; i++) {
                const CfgPair *pr = &cfg->pairs[i];
                const char *v[4] = {pr->clean_text, pr->corrupted_text, pr->answer_text,
                                    pr->wrong_text};
                strs[i] = v[f];
            }
            if (write_strings(g, names[f], strs, N, 0, s->rank)) goto out;
        }
    }
    /* Named positions: one int32 [pair] per name, -1 where a pair lacks it. */
    hid_t pg = make_group(g, "positions");
    if (pg < 0) goto out;
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < cfg->pairs[i].n_positions; j++) {
            const char *name = cfg->pairs[i].positions[j].name;
            if (H5Lexists(pg, name, H5P_DEFAULT) > 0) continue;
            for (size_t k = 0; k < N; k++) {
                col[k] = -1;
                for (size_t q = 0; q < cfg->pairs[k].n_positions; q++)
                    if (strcmp(cfg->pairs[k].positions[q].name, name) == 0)
                        col[k] = (int32_t)cfg->pairs[k].positions[q].index;
            }
            hid_t d = make_dset(pg, name, H5T_NATIVE_INT32, 1, d1, NULL);
            if (d < 0 || (s->rank == 0 && write_all(d, H5T_NATIVE_INT32, col))) {
                H5Gclose(pg);
                goto out;
            }
            H5Dclose(d);
        }
    H5Gclose(pg);
    rc = 0;
out:
    free(toks);
    free(col);
    free(strs);
    H5Gclose(g);
    return rc;
}

static int create_baseline(Store *s)
{
    const Plan *p = s->plan;
    hid_t g = make_group(s->file, "baseline");
    if (g < 0) return -1;
    int32_t *pairs = iota32(p->n_pairs);
    const char *runs[2] = {"clean", "corrupted"};
    hid_t sp = make_scale_int(g, "pair", pairs, p->n_pairs, s->rank);
    hid_t sr = make_scale_str(g, "run", runs, 2, s->rank);
    free(pairs);
    int rc = (sp >= 0 && sr >= 0) ? 0 : -1;
    float nan = NAN;
    hsize_t dims[2] = {p->n_pairs, 2};
    for (int m = 0; m < METRIC_COUNT && rc == 0; m++) {
        s->baseline[m] = make_dset(g, cfg_metric_name((Metric)m), H5T_NATIVE_FLOAT, 2, dims, &nan);
        if (s->baseline[m] < 0 || H5DSattach_scale(s->baseline[m], sp, 0) < 0 ||
            H5DSattach_scale(s->baseline[m], sr, 1) < 0)
            rc = -1;
    }
    if (sp >= 0) H5Dclose(sp);
    if (sr >= 0) H5Dclose(sr);
    H5Gclose(g);
    return rc;
}

static int create_experiment(Store *s, const PlanExp *x, hid_t parent, ExpDsets *ed)
{
    const Plan *p = s->plan;
    const CfgExperiment *c = x->cfg;
    ed->group = make_group(parent, c->name);
    if (ed->group < 0) return -1;
    hid_t g = ed->group;
    char axes[64] = "pair";
    for (size_t a = 0; a < x->n_axes; a++) {
        strcat(axes, ",");
        strcat(axes, plan_axis_name(x->axes[a]));
    }
    if (attr_str(g, "patch", cfg_patch_name(c->kind)) || attr_str(g, "hook", hook_of_kind(c->kind)) ||
        attr_str(g, "axes", axes) || attr_str(g, "direction", cfg_dir_name(c->dir)) ||
        attr_str(g, "source", cfg_source_name(c->source)) || attr_int(g, "per_pos", c->per_pos) ||
        attr_int(g, "layers_per_slice", (long long)x->layers_per_slice))
        return -1;

    /* Coordinates: pair, layer, pos (ints, or labels when named), head. */
    hid_t scales[1 + PLAN_MAX_AXES];
    int rc = -1;
    size_t n_scales = 0;
    int32_t *v = iota32(p->n_pairs);
    scales[n_scales++] = make_scale_int(g, "pair", v, p->n_pairs, s->rank);
    free(v);
    for (size_t a = 0; a < x->n_axes; a++) {
        size_t n = x->dims[a];
        v = xmalloc(n * sizeof *v);
        hid_t d;
        if (x->axes[a] == AXIS_POS && c->positions != NULL) {
            int named = 0;
            for (size_t i = 0; i < n; i++) named |= c->positions[i].name != NULL;
            if (named) {
                char **labels = xcalloc(n, sizeof *labels);
                for (size_t i = 0; i < n; i++) {
                    labels[i] = xmalloc(32 + (c->positions[i].name ? strlen(c->positions[i].name) : 0));
                    if (c->positions[i].name)
                        strcpy(labels[i], c->positions[i].name);
                    else
                        sprintf(labels[i], "%ld", c->positions[i].index);
                }
                d = make_scale_str(g, "pos", (const char *const *)labels, n, s->rank);
                for (size_t i = 0; i < n; i++) free(labels[i]);
                free(labels);
            } else {
                for (size_t i = 0; i < n; i++) v[i] = (int32_t)c->positions[i].index;
                d = make_scale_int(g, "pos", v, n, s->rank);
            }
        } else {
            for (size_t i = 0; i < n; i++)
                v[i] = (int32_t)(x->axes[a] == AXIS_LAYER  ? plan_layer(x, i)
                                 : x->axes[a] == AXIS_HEAD ? plan_head(x, i)
                                                           : i);
            d = make_scale_int(g, plan_axis_name(x->axes[a]), v, n, s->rank);
        }
        free(v);
        scales[n_scales++] = d;
    }
    for (size_t i = 0; i < n_scales; i++)
        if (scales[i] < 0) goto out;

    hsize_t dims[1 + PLAN_MAX_AXES] = {p->n_pairs};
    for (size_t a = 0; a < x->n_axes; a++) dims[1 + a] = x->dims[a];
    float nan = NAN;
    for (int m = 0; m < METRIC_COUNT; m++) {
        ed->metric[m] = -1;
        if (!(c->metrics & (1u << m))) continue;
        ed->metric[m] = make_dset(g, cfg_metric_name((Metric)m), H5T_NATIVE_FLOAT,
                                  (int)(1 + x->n_axes), dims, &nan);
        if (ed->metric[m] < 0) goto out;
        for (size_t a = 0; a < n_scales; a++)
            if (H5DSattach_scale(ed->metric[m], scales[a], (unsigned)a) < 0) goto out;
    }
    int32_t *sl = iota32(x->n_slices);
    hid_t ss = make_scale_int(g, "slice", sl, x->n_slices, s->rank);
    free(sl);
    hsize_t ddims[2] = {p->n_pairs, x->n_slices};
    uint8_t zero = 0;
    ed->done = make_dset(g, "done", H5T_NATIVE_UINT8, 2, ddims, &zero);
    if (ss < 0 || ed->done < 0 || H5DSattach_scale(ed->done, scales[0], 0) < 0 ||
        H5DSattach_scale(ed->done, ss, 1) < 0) {
        if (ss >= 0) H5Dclose(ss);
        goto out;
    }
    H5Dclose(ss);
    rc = 0;
out:
    for (size_t i = 0; i < n_scales; i++)
        if (scales[i] >= 0) H5Dclose(scales[i]);
    return rc;
}

/* /activations/<run>/<name>/act with its dimension scales. */
static int create_activations(Store *s)
{
    const Plan *p = s->plan;
    hid_t ag = make_group(s->file, "activations");
    if (ag < 0) return -1;
    int rc = 0;
    const char *runs[2] = {"clean", "corrupted"};
    float nan = NAN;
    for (int run = 0; run < 2 && rc == 0; run++) {
        hid_t rg = make_group(ag, runs[run]);
        if (rg < 0) {
            rc = -1;
            break;
        }
        for (size_t a = 0; a < s->n_acts && rc == 0; a++) {
            const StoreActs *x = &s->acts[a];
            hid_t g = make_group(rg, x->name);
            hid_t scales[5];
            size_t n = 0;
            hsize_t dims[5];
            int32_t *v = iota32(p->n_pairs);
            dims[n] = p->n_pairs;
            scales[n++] = make_scale_int(g, "pair", v, p->n_pairs, s->rank);
            free(v);
            if (x->n_layers) {
                dims[n] = x->n_layers;
                scales[n++] = make_scale_int(g, "layer", x->layers, x->n_layers, s->rank);
            }
            for (size_t d = 0; d < x->ndim; d++) {
                v = iota32(x->dims[d]);
                dims[n] = x->dims[d];
                scales[n++] = make_scale_int(g, x->dim_names[d], v, x->dims[d], s->rank);
                free(v);
            }
            hid_t ds = make_dset(g, "act", H5T_NATIVE_FLOAT, (int)n, dims, &nan);
            s->act_dsets[run * s->n_acts + a] = ds;
            if (g < 0 || ds < 0) rc = -1;
            for (size_t i = 0; i < n; i++) {
                if (scales[i] < 0 || (rc == 0 && H5DSattach_scale(ds, scales[i], (unsigned)i) < 0))
                    rc = -1;
                if (scales[i] >= 0) H5Dclose(scales[i]);
            }
            if (g >= 0) H5Gclose(g);
        }
        H5Gclose(rg);
    }
    H5Gclose(ag);
    return rc;
}

static void iso_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int create_file(Store *s, const char *path, const struct ModelConfig *mc,
                       const StoreMeta *meta, Err *err)
{
    const Plan *p = s->plan;
    const Config *cfg = p->cfg;
    char cfg_sha[65], started[32];
    sha256_text(cfg->text, cfg->text_len, cfg_sha);
    if (s->rank == 0) iso_now(started);
    MPI_Bcast(started, sizeof started, MPI_CHAR, 0, s->comm);

    hid_t r = s->file;
    if (attr_str(r, "format", "patchgrid") || attr_int(r, "format_version", FORMAT_VERSION) ||
        attr_str(r, "config_path", cfg->path) || attr_str(r, "config_sha256", cfg_sha) ||
        attr_str(r, "model_path", cfg->model_dir) || attr_str(r, "model_sha256", meta->model_sha256) ||
        attr_str(r, "tool_version", PATCHGRID_VERSION) || attr_str(r, "engine", meta->engine) ||
        attr_str(r, "semantics", "huggingface: no TransformerLens weight processing") ||
        attr_str(r, "blas_core", meta->blas_core) || attr_int(r, "ranks", meta->ranks) ||
        attr_str(r, "started", started))
        return h5fail(err, path, "cannot write attributes");
    /* The run state changes after creation, so it lives in raw data: after
     * store_open no metadata of the file is ever modified again. */
    hsize_t one[1] = {1};
    hid_t t = str_type(STATE_LEN);
    s->status = make_dset(r, "status", t, 1, one, NULL);
    s->finished = make_dset(r, "finished", t, 1, one, NULL);
    H5Tclose(t);
    if (s->status < 0 || s->finished < 0 || write_state(s, "running", ""))
        return h5fail(err, path, "cannot create /status");
    const char *text[1] = {cfg->text};
    if (write_strings(r, "config_yaml", text, 1, 0, s->rank))
        return h5fail(err, path, "cannot write config_yaml");

    hid_t mg = make_group(r, "model");
    if (mg < 0) return h5fail(err, path, "cannot create /model");
    int bad = attr_str(mg, "family", model_family_name(mc->family)) ||
              attr_int(mg, "n_layers", (long long)mc->n_layers) ||
              attr_int(mg, "n_heads", (long long)mc->n_heads) ||
              attr_int(mg, "d_model", (long long)mc->d_model) ||
              attr_int(mg, "d_head", (long long)mc->d_head) ||
              attr_int(mg, "d_mlp", (long long)mc->d_mlp) ||
              attr_int(mg, "d_vocab", (long long)mc->d_vocab) ||
              attr_int(mg, "n_ctx", (long long)mc->n_ctx) ||
              attr_str(mg, "act_fn", model_act_name(mc->act)) ||
              attr_int(mg, "tied_embeddings", mc->tied);
    H5Gclose(mg);
    if (bad) return h5fail(err, path, "cannot write /model");
    if (create_pairs(s, meta)) return h5fail(err, path, "cannot write /pairs");
    if (create_baseline(s)) return h5fail(err, path, "cannot create /baseline");
    if (s->n_acts && create_activations(s)) return h5fail(err, path, "cannot create /activations");
    hid_t eg = make_group(r, "experiments");
    if (eg < 0) return h5fail(err, path, "cannot create /experiments");
    for (size_t e = 0; e < p->n_exps; e++)
        if (create_experiment(s, &p->exps[e], eg, &s->exps[e])) {
            H5Gclose(eg);
            return h5fail(err, path, "cannot create an experiment's datasets");
        }
    H5Gclose(eg);
    if (H5Fflush(r, H5F_SCOPE_GLOBAL) < 0) return h5fail(err, path, "cannot flush");
    return 0;
}

/* ---- resume ------------------------------------------------------------------ */

static int open_existing(Store *s, const char *path, const StoreMeta *meta, Err *err)
{
    const Plan *p = s->plan;
    char buf[128], cfg_sha[65];
    sha256_text(p->cfg->text, p->cfg->text_len, cfg_sha);
    if (attr_read_str(s->file, "format", buf, sizeof buf) || strcmp(buf, "patchgrid") != 0)
        return err_set(err, "%s: not a patchgrid results file; use --overwrite to replace it",
                       path);
    if (attr_read_str(s->file, "config_sha256", buf, sizeof buf) || strcmp(buf, cfg_sha) != 0)
        return err_set(err, "%s: holds results of a different config (sha256 %.12s…, this config "
                       "%.12s…); use --overwrite to start over or -o for another file",
                       path, buf, cfg_sha);
    if (attr_read_str(s->file, "model_sha256", buf, sizeof buf) ||
        strcmp(buf, meta->model_sha256) != 0)
        return err_set(err, "%s: was computed with different model weights; use --overwrite to "
                       "start over", path);
    if (attr_read_str(s->file, "engine", buf, sizeof buf) || strcmp(buf, meta->engine) != 0)
        return err_set(err, "%s: was computed with the %s engine, this run uses %s; use "
                       "--overwrite to start over", path, buf, meta->engine);
    const char *runs[2] = {"clean", "corrupted"};
    for (int run = 0; run < 2; run++)
        for (size_t a = 0; a < s->n_acts; a++) {
            char name[160];
            snprintf(name, sizeof name, "activations/%s/%s/act", runs[run], s->acts[a].name);
            s->act_dsets[run * s->n_acts + a] = H5Dopen2(s->file, name, H5P_DEFAULT);
            if (s->act_dsets[run * s->n_acts + a] < 0)
                return h5fail(err, path, "cannot open the activations");
        }
    hid_t bg = H5Gopen2(s->file, "baseline", H5P_DEFAULT);
    if (bg < 0) return h5fail(err, path, "cannot open /baseline");
    for (int m = 0; m < METRIC_COUNT; m++) s->baseline[m] = H5Dopen2(bg, cfg_metric_name((Metric)m), H5P_DEFAULT);
    H5Gclose(bg);
    hid_t eg = H5Gopen2(s->file, "experiments", H5P_DEFAULT);
    if (eg < 0) return h5fail(err, path, "cannot open /experiments");
    int rc = 0;
    for (size_t e = 0; e < p->n_exps && rc == 0; e++) {
        const PlanExp *x = &p->exps[e];
        ExpDsets *ed = &s->exps[e];
        ed->group = H5Gopen2(eg, x->cfg->name, H5P_DEFAULT);
        if (ed->group < 0) {
            rc = h5fail(err, path, "cannot open an experiment group");
            break;
        }
        for (int m = 0; m < METRIC_COUNT; m++)
            ed->metric[m] = (x->cfg->metrics & (1u << m))
                                ? H5Dopen2(ed->group, cfg_metric_name((Metric)m), H5P_DEFAULT)
                                : -1;
        ed->done = H5Dopen2(ed->group, "done", H5P_DEFAULT);
        uint8_t *flags = xmalloc(xmul(p->n_pairs, x->n_slices));
        if (ed->done < 0 || H5Dread(ed->done, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                    flags) < 0) {
            free(flags);
            rc = h5fail(err, path, "cannot read the done flags");
            break;
        }
        /* A unit is done when the flags of all its pairs are (they are
         * written together). */
        for (size_t id = 0; id < p->n_units; id++) {
            PlanUnit u = plan_unit(p, id);
            if (u.exp != e) continue;
            int all = 1;
            for (size_t pr = u.pair0; pr < u.pair1; pr++) all &= flags[pr * x->n_slices + u.slice] != 0;
            if (all) {
                s->done[id] = 1;
                s->n_done++;
            }
        }
        free(flags);
    }
    H5Gclose(eg);
    if (rc == 0) {
        s->status = H5Dopen2(s->file, "status", H5P_DEFAULT);
        s->finished = H5Dopen2(s->file, "finished", H5P_DEFAULT);
        if (s->status < 0 || s->finished < 0 || write_state(s, "running", ""))
            rc = h5fail(err, path, "cannot update /status");
    }
    return rc;
}

/* ---- public ------------------------------------------------------------------ */

static void close_handles(Store *s)
{
    for (size_t i = 0; i < 2 * s->n_acts; i++)
        if (s->act_dsets[i] >= 0) H5Dclose(s->act_dsets[i]);
    if (s->status >= 0) H5Dclose(s->status);
    if (s->finished >= 0) H5Dclose(s->finished);
    for (int m = 0; m < METRIC_COUNT; m++)
        if (s->baseline[m] >= 0) H5Dclose(s->baseline[m]);
    for (size_t e = 0; s->exps && e < s->plan->n_exps; e++) {
        ExpDsets *ed = &s->exps[e];
        for (int m = 0; m < METRIC_COUNT; m++)
            if (ed->metric[m] >= 0) H5Dclose(ed->metric[m]);
        if (ed->done >= 0) H5Dclose(ed->done);
        if (ed->group >= 0) H5Gclose(ed->group);
    }
    if (s->file >= 0) H5Fclose(s->file);
}

static void store_free(Store *s)
{
    if (s == NULL) return;
    close_handles(s);
    free(s->act_dsets);
    free(s->exps);
    free(s->done);
    free(s->path);
    free(s);
}

/* All ranks agree on success: the worst status wins, and a rank that failed
 * shares its message with rank 0 so that the user sees it once. */
static int agree(Store *s, int rc, Err *err)
{
    int bad = rc != 0, any;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, s->comm);
    if (!any) return 0;
    int who = bad ? s->rank : -1, first;
    MPI_Allreduce(&who, &first, 1, MPI_INT, MPI_MAX, s->comm);
    MPI_Bcast(err->msg, sizeof err->msg, MPI_CHAR, first, s->comm);
    return -1;
}

static hid_t open_fapl(MPI_Comm comm)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    return fapl;
}

int store_open(Store **out, const char *path, const Plan *plan, const struct ModelConfig *mc,
               const StoreMeta *meta, int overwrite, MPI_Comm comm, Err *err)
{
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    Store *s = xcalloc(1, sizeof *s);
    s->plan = plan;
    s->comm = comm;
    s->file = s->status = s->finished = -1;
    s->path = xstrdup(path);
    MPI_Comm_rank(comm, &s->rank);
    for (int m = 0; m < METRIC_COUNT; m++) s->baseline[m] = -1;
    s->exps = xcalloc(plan->n_exps, sizeof *s->exps);
    for (size_t e = 0; e < plan->n_exps; e++) {
        s->exps[e].group = s->exps[e].done = -1;
        for (int m = 0; m < METRIC_COUNT; m++) s->exps[e].metric[m] = -1;
    }
    s->done = xcalloc(plan->n_units ? plan->n_units : 1, 1);
    s->acts = meta->acts;
    s->n_acts = meta->n_acts;
    s->act_dsets = xcalloc(2 * s->n_acts + 1, sizeof(hid_t));
    for (size_t i = 0; i < 2 * s->n_acts; i++) s->act_dsets[i] = -1;

    int exists = 0;
    if (s->rank == 0) exists = access(path, F_OK) == 0;
    MPI_Bcast(&exists, 1, MPI_INT, 0, comm);
    int rc = 0;
    hid_t fapl = open_fapl(comm);
    if (exists && !overwrite) {
        s->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
        if (s->file < 0)
            rc = h5fail(err, path, "exists but cannot be opened as HDF5 (use --overwrite to "
                        "replace it)");
        else
            rc = open_existing(s, path, meta, err);
        s->resumed = 1;
    } else {
        /* Built under a temporary name and renamed once complete and
         * flushed, so the final name never holds a half-created file. */
        size_t n = strlen(path) + 16;
        char *tmp = xmalloc(n);
        snprintf(tmp, n, "%s.creating", path);
        s->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        if (s->file < 0)
            rc = h5fail(err, path, "cannot create");
        else
            rc = create_file(s, path, mc, meta, err);
        rc = agree(s, rc, err);
        if (rc == 0 && s->rank == 0 && rename(tmp, path) != 0)
            rc = err_set(err, "%s: cannot rename %s into place", path, tmp);
        if (rc != 0 && s->rank == 0) unlink(tmp);
        free(tmp);
    }
    H5Pclose(fapl);
    if (agree(s, rc, err)) {
        store_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

int store_unit_done(const Store *s, size_t unit) { return s->done[unit]; }
size_t store_done_count(const Store *s) { return s->n_done; }
int store_resumed(const Store *s) { return s->resumed; }

int store_write_unit(Store *s, const PlanUnit *u, const float *vals, Err *err)
{
    const PlanExp *x = &s->plan->exps[u->exp];
    const ExpDsets *ed = &s->exps[u->exp];
    /* The unit's results are the hyperslab [pairs, layers of the slice, ...],
     * laid out in memory in the same order. */
    hsize_t start[1 + PLAN_MAX_AXES] = {u->pair0, u->layer0};
    hsize_t count[1 + PLAN_MAX_AXES] = {u->pair1 - u->pair0, u->layer1 - u->layer0};
    for (size_t a = 1; a < x->n_axes; a++) start[1 + a] = 0, count[1 + a] = x->dims[a];
    hsize_t mdims[1] = {u->n_vals};
    hid_t ms = H5Screate_simple(1, mdims, NULL);
    int rc = 0;
    for (int m = 0; m < METRIC_COUNT && rc == 0; m++) {
        if (ed->metric[m] < 0) continue;
        hid_t fs = H5Dget_space(ed->metric[m]);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(ed->metric[m], H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT,
                     vals + (size_t)m * u->n_vals) < 0)
            rc = h5fail(err, s->path, "cannot write results");
        H5Sclose(fs);
    }
    H5Sclose(ms);
    return rc;
}

int store_write_baseline(Store *s, size_t pair, const float *base, Err *err)
{
    hsize_t start[2] = {pair, 0}, count[2] = {1, 2}, mdims[1] = {2};
    hid_t ms = H5Screate_simple(1, mdims, NULL);
    int rc = 0;
    for (int m = 0; m < METRIC_COUNT && rc == 0; m++) {
        float v[2] = {base[m], base[METRIC_COUNT + m]};
        hid_t fs = H5Dget_space(s->baseline[m]);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(s->baseline[m], H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v) < 0)
            rc = h5fail(err, s->path, "cannot write baselines");
        H5Sclose(fs);
    }
    H5Sclose(ms);
    return rc;
}

int store_write_act(Store *s, size_t act, size_t layer_index, size_t pair, int run,
                    const float *data, size_t T, Err *err)
{
    const StoreActs *x = &s->acts[act];
    hsize_t start[5] = {pair}, count[5] = {1};
    size_t n = 1;
    if (x->n_layers) start[n] = layer_index, count[n++] = 1;
    for (size_t d = 0; d < x->ndim; d++, n++) {
        start[n] = 0;
        count[n] = x->is_pos[d] ? T : x->dims[d];
    }
    hid_t ds = s->act_dsets[(size_t)run * s->n_acts + act];
    hid_t fs = H5Dget_space(ds);
    hid_t ms = H5Screate_simple((int)n, count, NULL);
    int rc = 0;
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, data) < 0)
        rc = h5fail(err, s->path, "cannot write activations");
    H5Sclose(ms);
    H5Sclose(fs);
    return rc;
}

int store_sync(Store *s, const size_t *units, size_t n_units, Err *err)
{
    int rc = 0;
    if (H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0) rc = h5fail(err, s->path, "cannot flush");
    /* The data of these units is now in the file: only now mark them. */
    uint8_t *ones = xmalloc(s->plan->pairs_per_unit);
    memset(ones, 1, s->plan->pairs_per_unit);
    for (size_t i = 0; i < n_units && rc == 0; i++) {
        PlanUnit u = plan_unit(s->plan, units[i]);
        hsize_t start[2] = {u.pair0, u.slice}, count[2] = {u.pair1 - u.pair0, 1};
        hsize_t mdims[1] = {u.pair1 - u.pair0};
        hid_t ms = H5Screate_simple(1, mdims, NULL);
        hid_t fs = H5Dget_space(s->exps[u.exp].done);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dwrite(s->exps[u.exp].done, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, ones) < 0)
            rc = h5fail(err, s->path, "cannot write done flags");
        H5Sclose(fs);
        H5Sclose(ms);
        if (!s->done[units[i]]) s->done[units[i]] = 1, s->n_done++;
    }
    free(ones);
    if (H5Fflush(s->file, H5F_SCOPE_GLOBAL) < 0 && rc == 0)
        rc = h5fail(err, s->path, "cannot flush");
    return agree(s, rc, err);
}

int store_close(Store *s, Err *err)
{
    if (s == NULL) return 0;
    /* Done counts differ per rank (each marks its own units): sum the flags. */
    uint8_t *all = xmalloc(s->plan->n_units ? s->plan->n_units : 1);
    MPI_Allreduce(s->done, all, (int)s->plan->n_units, MPI_UINT8_T, MPI_MAX, s->comm);
    size_t done = 0;
    for (size_t i = 0; i < s->plan->n_units; i++) done += all[i];
    free(all);
    char now[32];
    if (s->rank == 0) iso_now(now);
    MPI_Bcast(now, sizeof now, MPI_CHAR, 0, s->comm);
    int rc = 0;
    if (write_state(s, done == s->plan->n_units ? "complete" : "partial", now))
        rc = h5fail(err, s->path, "cannot update /status");
    rc = agree(s, rc, err);
    store_free(s);
    return rc;
}

/* ---- sha256 of the config text -------------------------------------------------- */

#include <openssl/evp.h>

static void sha256_text(const char *text, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(text, len, md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n && i < 32; i++) sprintf(out + 2 * i, "%02x", md[i]);
    out[64] = '\0';
}
