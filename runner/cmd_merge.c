/* cmd_merge.c — `patchgrid merge -o OUT.h5 PART.h5...`: the part files of a job
 * array (`patchgrid run --part K/N`) combined into one results file.
 *
 * Every part already has the whole sweep's layout (run --part creates the
 * full file and computes a range of pairs), so the merge is a copy of the
 * first part plus, for every other part, the hyperslabs of the units it has
 * done and OUT has not: the unit's pairs x the layer range of its slice, in
 * every result dataset, then its flags, and the baselines of the pairs it
 * computed. Values are copied in the file's own type, so the merged file is
 * bitwise what a single run gives. Serial HDF5; OUT is built under
 * OUT.h5.tmp and renamed into place at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "h5util.h"
#include "sweepfile.h"

/* Bytes of one hyperslab read: big datasets are copied a block of pairs at a time. */
#define COPY_CHUNK_BYTES ((size_t)64 << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: patchgrid merge -o OUT.h5 [--overwrite] PART.h5...\n"
            "\n"
            "Combines the results files of the parts of one sweep (`patchgrid run --part K/N`,\n"
            "e.g. the tasks of a Slurm job array) into OUT.h5, with the same layout as a\n"
            "single run's file and bitwise the same values. Every part must hold the same\n"
            "sweep (config, model weights, engine). A unit done in any part is taken;\n"
            "parts may overlap. /status of OUT is `complete` when every unit is done in some\n"
            "part, else `partial`, and the missing pairs are named on stderr (exit status 0:\n"
            "`patchgrid status OUT.h5` exits 3 while a file is incomplete).\n"
            "\n"
            "  -o OUT.h5       the merged file (built as OUT.h5.tmp, renamed when complete)\n"
            "  --overwrite     replace OUT.h5 if it exists\n"
            "\n"
            "Merge parts whose runs have ended: a part still being written is read as it is\n"
            "at that moment.\n");
}

static void iso_now(char out[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int copy_file(const char *src, const char *dst, Err *err)
{
    int in = open(src, O_RDONLY);
    if (in < 0) return err_set(err, "%s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        close(in);
        return err_set(err, "%s: cannot create: %s", dst, strerror(errno));
    }
    size_t cap = (size_t)1 << 20;
    char *buf = xmalloc(cap);
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, cap);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = err_set(err, "%s: %s", src, strerror(errno));
            break;
        }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                rc = err_set(err, "%s: cannot write: %s", dst, strerror(errno));
                break;
            }
            off += w;
        }
        if (rc) break;
    }
    free(buf);
    close(in);
    if (close(out) != 0 && rc == 0) rc = err_set(err, "%s: cannot write: %s", dst, strerror(errno));
    return rc;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Copies the hyperslab [pairs p0..p1, entries l0..l1 of axis 1, everything
 * of the other axes] of one dataset from src to dst (same shape and type), a
 * bounded number of pairs at a time. */
static int copy_block(const SfDataset *src, const SfDataset *dst, const char *src_path,
                      const char *dst_path, size_t p0, size_t p1, size_t l0, size_t l1,
                      Err *err)
{
    hid_t type = H5Dget_type(src->id);
    size_t row = H5Tget_size(type) * (l1 - l0);
    for (int a = 2; a < src->ndims; a++) row *= (size_t)src->dims[a];
    size_t rows = row ? COPY_CHUNK_BYTES / row : p1 - p0;
    if (rows == 0) rows = 1;
    if (rows > p1 - p0) rows = p1 - p0;
    void *buf = xmalloc(rows * row + 1);
    hid_t fs_src = H5Dget_space(src->id), fs_dst = H5Dget_space(dst->id);
    int rc = 0;
    char why[256];
    for (size_t p = p0; p < p1 && rc == 0; p += rows) {
        size_t n = p1 - p < rows ? p1 - p : rows;
        hsize_t start[SF_MAX_DIMS] = {p, l0}, count[SF_MAX_DIMS] = {n, l1 - l0};
        for (int a = 2; a < src->ndims; a++) start[a] = 0, count[a] = src->dims[a];
        hsize_t mdims[1] = {(hsize_t)(n * row / H5Tget_size(type))};
        hid_t ms = H5Screate_simple(1, mdims, NULL);
        if (H5Sselect_hyperslab(fs_src, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(src->id, type, ms, fs_src, H5P_DEFAULT, buf) < 0)
            rc = err_set(err, "%s: cannot read %s: %s", src_path, src->name, h5_reason(why));
        else if (H5Sselect_hyperslab(fs_dst, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                 H5Dwrite(dst->id, type, ms, fs_dst, H5P_DEFAULT, buf) < 0)
            rc = err_set(err, "%s: cannot write %s: %s", dst_path, dst->name, h5_reason(why));
        H5Sclose(ms);
    }
    H5Sclose(fs_dst);
    H5Sclose(fs_src);
    H5Tclose(type);
    free(buf);
    return rc;
}

/* has[p] = 1 if pair p has any done flag in f. */
static uint8_t *pairs_with_results(const SweepFile *f)
{
    uint8_t *has = xcalloc(f->n_pairs + 1, 1);
    for (size_t e = 0; e < f->n_exps; e++) {
        const SfExp *x = &f->exps[e];
        for (size_t p = 0; p < f->n_pairs; p++)
            for (size_t s = 0; s < x->n_slices; s++) has[p] |= x->flags[p * x->n_slices + s];
    }
    return has;
}

/* Takes from part every unit it has done and out has not. */
static int merge_part(SweepFile *out, const SweepFile *part, Err *err)
{
    /* Baselines first: they belong to the pairs the part computed and out
     * has nothing of yet (a pair with any flag has its baselines). */
    uint8_t *part_has = pairs_with_results(part), *out_has = pairs_with_results(out);
    int rc = 0;
    for (size_t p = 0; p < out->n_pairs && rc == 0;) {
        if (!part_has[p] || out_has[p]) {
            p++;
            continue;
        }
        size_t q = p + 1;
        while (q < out->n_pairs && part_has[q] && !out_has[q]) q++;
        for (size_t b = 0; b < out->n_baselines && rc == 0; b++)
            rc = copy_block(&part->baselines[b], &out->baselines[b], part->path, out->path, p, q,
                            0, (size_t)out->baselines[b].dims[1], err);
        p = q;
    }
    free(part_has);
    free(out_has);

    for (size_t e = 0; e < out->n_exps && rc == 0; e++) {
        const SfExp *x = &part->exps[e];
        SfExp *y = &out->exps[e];
        size_t S = y->n_slices, taken = 0;
        size_t n_layers = y->n_results ? (size_t)y->results[0].dims[1] : 0;
        for (size_t s = 0; s < S && rc == 0; s++) {
            size_t l0 = s * y->layers_per_slice, l1 = l0 + y->layers_per_slice;
            if (l1 > n_layers) l1 = n_layers;
            for (size_t p = 0; p < out->n_pairs && rc == 0;) {
                if (!x->flags[p * S + s] || y->flags[p * S + s]) {
                    p++;
                    continue;
                }
                size_t q = p + 1;
                while (q < out->n_pairs && x->flags[q * S + s] && !y->flags[q * S + s]) q++;
                for (size_t m = 0; m < y->n_results && rc == 0; m++)
                    rc = copy_block(&x->results[m], &y->results[m], part->path, out->path, p, q,
                                    l0, l1, err);
                for (size_t i = p; i < q; i++) y->flags[i * S + s] = 1;
                taken += q - p;
                p = q;
            }
        }
        /* Flags after the data they vouch for. */
        if (rc == 0 && taken > 0) rc = sf_write_flags(out, e, err);
    }
    return rc;
}

typedef struct Args {
    const char *output;
    int overwrite;
    char **parts;
    int n_parts;
} Args;

static int parse_args(Args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->parts = xcalloc((size_t)argc + 1, sizeof *a->parts);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "-o") == 0 || strcmp(o, "--output") == 0) {
            if (i + 1 >= argc) return cli_usage_error("merge", "-o needs a file");
            a->output = argv[++i];
        } else if (strcmp(o, "--overwrite") == 0) {
            a->overwrite = 1;
        } else if (o[0] == '-' && o[1] != '\0') {
            return cli_usage_error("merge", "unknown option '%s'", o);
        } else {
            a->parts[a->n_parts++] = argv[i];
        }
    }
    if (a->output == NULL) return cli_usage_error("merge", "expected -o OUT.h5");
    if (a->n_parts == 0) return cli_usage_error("merge", "expected one or more PART.h5 files");
    return 0;
}

int cmd_merge(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    Args a;
    int rc = parse_args(&a, argc, argv);
    if (rc) {
        free(a.parts);
        return rc;
    }
    Err err;
    SweepFile *first = NULL, *out = NULL, *part = NULL;
    size_t n = strlen(a.output) + 8;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s.tmp", a.output);
    int made_tmp = 0;
    rc = 1;
    if (!a.overwrite && access(a.output, F_OK) == 0) {
        err_set(&err, "%s: exists; use --overwrite to replace it", a.output);
        goto out;
    }
    /* Every part is checked before anything is written. */
    if (sf_open(&first, a.parts[0], 0, &err)) goto out;
    for (int k = 0; k < a.n_parts; k++) {
        if (k > 0 && (sf_open(&part, a.parts[k], 0, &err) || sf_same_sweep(first, part, &err)))
            goto out;
        const SweepFile *f = k > 0 ? part : first;
        if (strcmp(f->status, "running") == 0)
            fprintf(stderr, "patchgrid merge: note: %s says it is running (still being written, or "
                    "its run was killed): only the units it has marked done are taken\n", f->path);
        sf_close(part);
        part = NULL;
    }
    sf_close(first);
    first = NULL;

    made_tmp = 1;
    if (copy_file(a.parts[0], tmp, &err) || sf_open(&out, tmp, 1, &err)) goto out;
    for (int k = 1; k < a.n_parts; k++) {
        if (sf_open(&part, a.parts[k], 0, &err) || merge_part(out, part, &err)) goto out;
        sf_close(part);
        part = NULL;
    }
    size_t done, total;
    sf_count(out, &done, &total);
    char now[32];
    iso_now(now);
    const char *status = done == total ? "complete" : "partial";
    if (sf_write_state(out, status, now, &err)) goto out;
    char missing[600] = "";
    if (done < total) sf_missing(out, missing, sizeof missing);
    if (H5Fflush(out->file, H5F_SCOPE_LOCAL) < 0) {
        char why[256];
        err_set(&err, "%s: cannot write: %s", tmp, h5_reason(why));
        goto out;
    }
    sf_close(out);
    out = NULL;
    if (fsync_path(tmp) != 0) {
        err_set(&err, "%s: cannot sync: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, a.output) != 0) {
        err_set(&err, "%s: cannot rename %s into place: %s", a.output, tmp, strerror(errno));
        goto out;
    }
    made_tmp = 0;
    if (done == total) {
        fprintf(stderr, "patchgrid merge: %s: complete (all %zu done flags set), from %d parts\n",
                a.output, total, a.n_parts);
    } else {
        fprintf(stderr, "patchgrid merge: %s: partial, %zu of %zu done flags not set (%s); merge "
                "the missing parts too, or rerun them\n", a.output, total - done, total, missing);
    }
    rc = 0;
out:
    if (rc) fprintf(stderr, "%s\n", err.msg);
    sf_close(part);
    sf_close(first);
    sf_close(out);
    if (made_tmp) unlink(tmp);
    free(tmp);
    free(a.parts);
    return rc;
}
