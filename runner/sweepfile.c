/* sweepfile.c — identity and done flags of a results file (see include/sweepfile.h). */
#include "sweepfile.h"

#include <errno.h>
#include <hdf5_hl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5util.h"

static int h5fail(Err *err, const char *path, const char *what)
{
    char why[256];
    return err_set(err, "%s: %s: %s", path, what, h5_reason(why));
}

/* A fixed-length string attribute of loc into buf ("" and -1 if absent). */
static int attr_str(hid_t loc, const char *name, char *buf, size_t n)
{
    buf[0] = '\0';
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    int rc = -1;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
        size_t len = H5Tget_size(t);
        char *tmp = xcalloc(len + 1, 1);
        if (H5Aread(a, t, tmp) >= 0) {
            snprintf(buf, n, "%s", tmp);
            rc = 0;
        }
        free(tmp);
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static int attr_long(hid_t loc, const char *name, long long *v)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    int rc = a >= 0 && H5Aread(a, H5T_NATIVE_LLONG, v) >= 0 ? 0 : -1;
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* The first element of a fixed-length string dataset ("" if unreadable). */
static void dset_str(hid_t loc, const char *name, char *buf, size_t n)
{
    buf[0] = '\0';
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t t = d >= 0 ? H5Dget_type(d) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) &&
        H5Sget_simple_extent_npoints(sp) >= 1) {
        size_t len = H5Tget_size(t);
        hssize_t np = H5Sget_simple_extent_npoints(sp);
        char *tmp = xcalloc((size_t)np * len + 1, 1);
        if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp) >= 0) {
            tmp[len] = '\0';
            snprintf(buf, n, "%s", tmp);
        }
        free(tmp);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
}

/* The names of loc's members, in name order (NULL-terminated, caller frees). */
static char **member_names(hid_t loc, size_t *n)
{
    H5G_info_t info;
    *n = 0;
    if (H5Gget_info(loc, &info) < 0) return NULL;
    char **names = xcalloc(info.nlinks + 1, sizeof *names);
    for (hsize_t i = 0; i < info.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0,
                                         H5P_DEFAULT);
        if (len < 0) break;
        names[*n] = xcalloc((size_t)len + 1, 1);
        H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, i, names[*n], (size_t)len + 1,
                           H5P_DEFAULT);
        (*n)++;
    }
    return names;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

/* Opens dataset `name` of loc into d, with its shape. */
static int open_dset(hid_t loc, const char *name, SfDataset *d)
{
    d->name = xstrdup(name);
    d->id = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d->id < 0) return -1;
    hid_t sp = H5Dget_space(d->id);
    d->ndims = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int ok = d->ndims >= 1 && d->ndims <= SF_MAX_DIMS &&
             H5Sget_simple_extent_dims(sp, d->dims, NULL) >= 0;
    if (sp >= 0) H5Sclose(sp);
    return ok ? 0 : -1;
}

static void close_dsets(SfDataset *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++) {
        if (d[i].id >= 0) H5Dclose(d[i].id);
        free(d[i].name);
    }
    free(d);
}

/* 1 if member `name` of loc is a dataset that is not a dimension scale. */
static int is_data(hid_t loc, const char *name)
{
    hid_t o = H5Oopen(loc, name, H5P_DEFAULT);
    if (o < 0) return 0;
    int yes = H5Iget_type(o) == H5I_DATASET && H5DSis_scale(o) <= 0;
    H5Oclose(o);
    return yes;
}

static int read_experiment(SweepFile *f, hid_t eg, const char *name, SfExp *x, Err *err)
{
    const char *path = f->path;
    x->name = xstrdup(name);
    x->done = -1;
    x->group = H5Gopen2(eg, name, H5P_DEFAULT);
    if (x->group < 0) return h5fail(err, path, "cannot open an experiment group");
    long long lps;
    if (attr_long(x->group, "layers_per_slice", &lps) || lps < 1)
        return err_set(err, "%s: experiment '%s' has no layers_per_slice attribute (made by an "
                       "older patchgrid?)", path, name);
    x->layers_per_slice = (size_t)lps;
    size_t n;
    char **names = member_names(x->group, &n);
    x->results = xcalloc(n + 1, sizeof *x->results);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!is_data(x->group, names[i])) continue;
        if (strcmp(names[i], "done") == 0) {
            SfDataset d = {0};
            if (open_dset(x->group, "done", &d) || d.ndims != 2 || d.dims[0] != f->n_pairs) {
                if (d.id >= 0) H5Dclose(d.id);
                free(d.name);
                rc = err_set(err, "%s: experiment '%s': done is not a [pair, slice] array", path,
                             name);
                break;
            }
            x->done = d.id;
            x->n_slices = (size_t)d.dims[1];
            free(d.name);
            continue;
        }
        SfDataset *d = &x->results[x->n_results++];
        if (open_dset(x->group, names[i], d) || d->ndims < 2 || d->dims[0] != f->n_pairs ||
            (x->n_results > 1 && (d->ndims != x->results[0].ndims ||
                                  memcmp(d->dims, x->results[0].dims,
                                         (size_t)d->ndims * sizeof d->dims[0]) != 0)))
            rc = err_set(err, "%s: experiment '%s': result '%s' is not a [pair, layer, ...] array "
                         "like the others", path, name, names[i]);
    }
    free_names(names, n);
    if (rc) return rc;
    if (x->done < 0) return err_set(err, "%s: experiment '%s' has no done flags", path, name);
    if (x->n_results > 0 && x->n_slices > 0 &&
        (x->n_slices - 1) * x->layers_per_slice >= (size_t)x->results[0].dims[1])
        return err_set(err, "%s: experiment '%s': %zu slices of %zu layers do not fit its %zu "
                       "layers", path, name, x->n_slices, x->layers_per_slice,
                       (size_t)x->results[0].dims[1]);
    x->flags = xcalloc(f->n_pairs * x->n_slices + 1, 1);
    if (f->n_pairs * x->n_slices > 0 &&
        H5Dread(x->done, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, x->flags) < 0)
        return h5fail(err, path, "cannot read the done flags");
    return 0;
}

int sf_open(SweepFile **out, const char *path, int writable, Err *err)
{
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct stat sb;
    if (stat(path, &sb) != 0) return err_set(err, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return err_set(err, "%s: is a directory, not a results file", path);
    if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return err_set(err, "%s: not an HDF5 file (expected a results file of 'patchgrid run')",
                       path);
    }
    SweepFile *f = xcalloc(1, sizeof *f);
    f->path = xstrdup(path);
    f->file = H5Fopen(path, writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
    int rc = -1;
    hid_t g = -1;
    char **names = NULL;
    size_t n = 0;
    if (f->file < 0) {
        h5fail(err, path, "cannot open");
        goto out;
    }
    char format[32];
    if (attr_str(f->file, "format", format, sizeof format) || strcmp(format, "patchgrid") != 0) {
        err_set(err, "%s: not a patchgrid results file (no attribute format = \"patchgrid\")",
                path);
        goto out;
    }
    attr_str(f->file, "config_sha256", f->config_sha256, sizeof f->config_sha256);
    attr_str(f->file, "model_sha256", f->model_sha256, sizeof f->model_sha256);
    attr_str(f->file, "engine", f->engine, sizeof f->engine);
    dset_str(f->file, "status", f->status, sizeof f->status);

    SfDataset len = {0};
    int ok = open_dset(f->file, "pairs/length", &len) == 0 && len.ndims == 1;
    f->n_pairs = (size_t)len.dims[0];
    if (len.id >= 0) H5Dclose(len.id);
    free(len.name);
    if (!ok) {
        h5fail(err, path, "cannot read /pairs/length (not a complete results file?)");
        goto out;
    }

    g = H5Gopen2(f->file, "baseline", H5P_DEFAULT);
    if (g < 0) {
        h5fail(err, path, "cannot open /baseline");
        goto out;
    }
    names = member_names(g, &n);
    f->baselines = xcalloc(n + 1, sizeof *f->baselines);
    for (size_t i = 0; i < n; i++) {
        if (!is_data(g, names[i])) continue;
        SfDataset *d = &f->baselines[f->n_baselines++];
        if (open_dset(g, names[i], d) || d->ndims != 2 || d->dims[0] != f->n_pairs) {
            err_set(err, "%s: /baseline/%s is not a [pair, run] array", path, names[i]);
            goto out;
        }
    }
    free_names(names, n);
    names = NULL;
    H5Gclose(g);

    g = H5Gopen2(f->file, "experiments", H5P_DEFAULT);
    if (g < 0) {
        h5fail(err, path, "cannot open /experiments");
        goto out;
    }
    names = member_names(g, &n);
    f->exps = xcalloc(n + 1, sizeof *f->exps);
    for (size_t i = 0; i < n; i++) {
        SfExp *x = &f->exps[f->n_exps++];
        x->group = x->done = -1;
        if (read_experiment(f, g, names[i], x, err)) goto out;
    }
    rc = 0;
out:
    free_names(names, n);
    if (g >= 0) H5Gclose(g);
    if (rc) {
        sf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

void sf_close(SweepFile *f)
{
    if (f == NULL) return;
    for (size_t e = 0; e < f->n_exps; e++) {
        SfExp *x = &f->exps[e];
        close_dsets(x->results, x->n_results);
        if (x->done >= 0) H5Dclose(x->done);
        if (x->group >= 0) H5Gclose(x->group);
        free(x->flags);
        free(x->name);
    }
    free(f->exps);
    close_dsets(f->baselines, f->n_baselines);
    if (f->file >= 0) H5Fclose(f->file);
    free(f->path);
    free(f);
}

void sf_count(const SweepFile *f, size_t *done, size_t *total)
{
    *done = *total = 0;
    for (size_t e = 0; e < f->n_exps; e++) {
        const SfExp *x = &f->exps[e];
        for (size_t i = 0; i < f->n_pairs * x->n_slices; i++) *done += x->flags[i] != 0;
        *total += f->n_pairs * x->n_slices;
    }
}

static int same_shape(const SfDataset *a, const SfDataset *b)
{
    return strcmp(a->name, b->name) == 0 && a->ndims == b->ndims &&
           memcmp(a->dims, b->dims, (size_t)a->ndims * sizeof a->dims[0]) == 0;
}

int sf_same_sweep(const SweepFile *a, const SweepFile *b, Err *err)
{
    const char *why = NULL;
    if (strcmp(a->config_sha256, b->config_sha256) != 0)
        why = "a different config (config_sha256)";
    else if (strcmp(a->model_sha256, b->model_sha256) != 0)
        why = "different model weights (model_sha256)";
    else if (strcmp(a->engine, b->engine) != 0)
        why = "another engine";
    else if (a->n_pairs != b->n_pairs || a->n_exps != b->n_exps ||
             a->n_baselines != b->n_baselines)
        why = "a different number of pairs, experiments or baselines";
    for (size_t i = 0; why == NULL && i < a->n_baselines; i++)
        if (!same_shape(&a->baselines[i], &b->baselines[i])) why = "different baselines";
    for (size_t e = 0; why == NULL && e < a->n_exps; e++) {
        const SfExp *x = &a->exps[e], *y = &b->exps[e];
        if (strcmp(x->name, y->name) != 0 || x->n_slices != y->n_slices ||
            x->layers_per_slice != y->layers_per_slice || x->n_results != y->n_results)
            why = "different experiments";
        for (size_t m = 0; why == NULL && m < x->n_results; m++)
            if (!same_shape(&x->results[m], &y->results[m])) why = "different result shapes";
    }
    if (why == NULL) return 0;
    return err_set(err, "%s: not from the same sweep as %s: %s", b->path, a->path, why);
}

void sf_missing(const SweepFile *f, char *buf, size_t n)
{
    size_t o = 0;
    buf[0] = '\0';
#define PUT(...)                                                                 \
    do {                                                                         \
        if (o < n) o += (size_t)snprintf(buf + o, n - o, __VA_ARGS__);           \
    } while (0)
    for (size_t e = 0; e < f->n_exps; e++) {
        const SfExp *x = &f->exps[e];
        int any = 0;
        for (size_t p = 0; p < f->n_pairs;) {
            int miss = 0;
            for (size_t s = 0; s < x->n_slices; s++) miss |= !x->flags[p * x->n_slices + s];
            if (!miss) {
                p++;
                continue;
            }
            size_t q = p + 1;
            for (; q < f->n_pairs; q++) {
                int m2 = 0;
                for (size_t s = 0; s < x->n_slices; s++) m2 |= !x->flags[q * x->n_slices + s];
                if (!m2) break;
            }
            PUT("%s", any ? ", " : o ? "; " : "");
            if (!any) PUT("%s: pairs ", x->name);
            if (q - p == 1)
                PUT("%zu", p);
            else
                PUT("%zu-%zu", p, q - 1);
            any = 1;
            p = q;
        }
    }
#undef PUT
    if (o >= n && n > 4) memcpy(buf + n - 4, "...", 4);
}

int sf_write_flags(SweepFile *f, size_t e, Err *err)
{
    SfExp *x = &f->exps[e];
    if (f->n_pairs * x->n_slices == 0) return 0;
    if (H5Dwrite(x->done, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, x->flags) < 0)
        return h5fail(err, f->path, "cannot write done flags");
    return 0;
}

static int write_str(hid_t file, const char *name, const char *value)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t t = H5Dget_type(d);
    int rc = -1;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
        size_t len = H5Tget_size(t);
        char *buf = xcalloc(len + 1, 1);
        memcpy(buf, value, strlen(value) < len ? strlen(value) : len);
        hid_t fs = H5Dget_space(d);
        hsize_t start[1] = {0}, count[1] = {1};
        hid_t ms = H5Screate_simple(1, count, NULL);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
            H5Dwrite(d, t, ms, fs, H5P_DEFAULT, buf) >= 0)
            rc = 0;
        H5Sclose(ms);
        H5Sclose(fs);
        free(buf);
    }
    if (t >= 0) H5Tclose(t);
    H5Dclose(d);
    return rc;
}

int sf_write_state(SweepFile *f, const char *status, const char *finished, Err *err)
{
    if (write_str(f->file, "status", status) || write_str(f->file, "finished", finished))
        return h5fail(err, f->path, "cannot write /status and /finished");
    snprintf(f->status, sizeof f->status, "%s", status);
    return 0;
}
