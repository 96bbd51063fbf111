/* sweepfile.h — a results file seen as one sweep's identity and done flags.
 *
 * For the commands that look at results files from outside a run, with serial
 * HDF5: `patchgrid status` (how far is this file?) and `patchgrid merge`
 * (combine the part files of a job array). sf_open() reads what tells sweeps
 * apart (config and model hashes, engine, experiments and their shapes) and
 * every experiment's done flags; nothing is changed unless the file was opened
 * writable and the caller writes (sf_write_flags, sf_write_state).
 * docs/store.md describes the layout.
 */
#ifndef PATCHGRID_SWEEPFILE_H
#define PATCHGRID_SWEEPFILE_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum { SF_MAX_DIMS = 8 };

typedef struct SfDataset {
    char *name;
    hid_t id;
    int ndims;
    hsize_t dims[SF_MAX_DIMS];   /* dims[0] is the pair axis */
} SfDataset;

typedef struct SfExp {
    char *name;
    hid_t group;
    SfDataset *results;          /* (n_results) one per metric, by name; same shape */
    size_t n_results;
    hid_t done;                  /* uint8 [pair, slice] */
    size_t n_slices;
    size_t layers_per_slice;     /* slice s: layer-axis entries [s * lps, (s + 1) * lps) */
    uint8_t *flags;              /* (n_pairs, n_slices) as read (or as set since) */
} SfExp;

typedef struct SweepFile {
    char *path;
    hid_t file;
    char config_sha256[72], model_sha256[72], engine[32];
    char status[40];             /* /status: "running", "partial", "complete" ("" if unreadable) */
    size_t n_pairs;
    SfDataset *baselines;        /* (n_baselines) /baseline/<metric> [pair, run], by name */
    size_t n_baselines;
    SfExp *exps;                 /* (n_exps) by name */
    size_t n_exps;
} SweepFile;

/* Opens a patchgrid results file (read-only unless writable). On error returns
 * -1 with a one-line message naming the file, and *out is NULL. */
int sf_open(SweepFile **out, const char *path, int writable, Err *err);
void sf_close(SweepFile *f); /* accepts NULL */

/* Flags set and flags in total, over every experiment. */
void sf_count(const SweepFile *f, size_t *done, size_t *total);

/* 0 if b holds results of the same sweep as a (same config, model, engine,
 * experiments, metrics and shapes); else -1 with a message naming b. */
int sf_same_sweep(const SweepFile *a, const SweepFile *b, Err *err);

/* Which pairs of each experiment miss a flag, as text such as
 * "resid: pairs 8-15, 20; heads: pairs 8-15", cut to n bytes. */
void sf_missing(const SweepFile *f, char *buf, size_t n);

/* Writes experiment e's flags (f->exps[e].flags) to the file. */
int sf_write_flags(SweepFile *f, size_t e, Err *err);
/* Writes /status and /finished (raw data, as a run does). */
int sf_write_state(SweepFile *f, const char *status, const char *finished, Err *err);

#endif
