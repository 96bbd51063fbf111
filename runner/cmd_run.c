/* cmd_run.c — `patchgrid run CONFIG`: a patching sweep, from one process to
 * many MPI ranks, into one HDF5 file that a rerun resumes.
 *
 * Every rank loads the config and the model itself (they read the same
 * files) and all agree on success before anything is written, so a bad input
 * is reported once, by rank 0, and every rank exits 1. With one rank it
 * computes every unit itself; with more, rank 0 coordinates (coord.c).
 */
#include <fnmatch.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "cfg.h"
#include "cli.h"
#include "coord.h"
#include "err.h"
#include "model.h"
#include "plan.h"
#include "progress.h"
#include "st.h"
#include "store.h"
#include "tok.h"
#include "worker.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: patchgrid run CONFIG.yaml [-o OUT.h5] [--model DIR] [--naive] [--overwrite]\n"
            "                     [--part K/N] [--plan-only] [--null-work]\n"
            "                     [--sync-interval SECONDS]\n"
            "       mpirun -np N patchgrid run CONFIG.yaml ...\n"
            "\n"
            "Runs the activation-patching sweep described by CONFIG (see docs/config.md)\n"
            "and writes every result into one HDF5 file (see docs/store.md). Run the same\n"
            "command again to resume an interrupted sweep: finished units are kept.\n"
            "\n"
            "  -o OUT.h5              output file (default: the config's `output`)\n"
            "  --model DIR            use this model directory instead of the config's\n"
            "  --naive                one full forward pass per cell, TransformerLens's way\n"
            "                         (the reference the fast engine is tested against)\n"
            "  --overwrite            start over even if OUT.h5 holds another sweep\n"
            "  --part K/N             compute only part K (0-based) of N of the units, for job\n"
            "                         arrays: the file has the whole sweep's layout, and\n"
            "                         `patchgrid merge` combines the N part files\n"
            "  --plan-only            print the work units and the work, compute nothing\n"
            "  --null-work            hand out every unit without computing or writing it:\n"
            "                         measures the coordinator's dispatch rate\n"
            "  --sync-interval SECS   seconds between syncs that mark finished units done\n"
            "                         (default 10)\n"
            "\n"
            "SIGTERM, SIGUSR1 or SIGINT: every rank finishes its unit, syncs and exits 0;\n"
            "the next run resumes.\n");
}

typedef struct Args {
    const char *config, *output, *model;
    int naive, overwrite, plan_only, null_work;
    long part, parts;   /* --part K/N; 0/1 = everything */
    double sync_interval;
} Args;

static int parse_args(Args *a, int argc, char **argv, int rank)
{
    memset(a, 0, sizeof *a);
    a->sync_interval = 10.0;
    a->parts = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "-o") == 0 || strcmp(o, "--output") == 0) {
            if (i + 1 >= argc) return rank == 0 ? cli_usage_error("run", "-o needs a file") : 2;
            a->output = argv[++i];
        } else if (strcmp(o, "--model") == 0) {
            if (i + 1 >= argc) return rank == 0 ? cli_usage_error("run", "--model needs a directory") : 2;
            a->model = argv[++i];
        } else if (strcmp(o, "--naive") == 0) {
            a->naive = 1;
        } else if (strcmp(o, "--overwrite") == 0) {
            a->overwrite = 1;
        } else if (strcmp(o, "--plan-only") == 0) {
            a->plan_only = 1;
        } else if (strcmp(o, "--part") == 0) {
            char *end;
            const char *v = i + 1 < argc ? argv[++i] : "";
            a->part = strtol(v, &end, 10);
            if (end == v || *end != '/' ||
                (a->parts = strtol(end + 1, &end, 10), *end != '\0') || a->parts < 1 ||
                a->part < 0 || a->part >= a->parts)
                return rank == 0 ? cli_usage_error("run", "--part needs K/N with 0 <= K < N") : 2;
        } else if (strcmp(o, "--null-work") == 0) {
            a->null_work = 1;
        } else if (strcmp(o, "--sync-interval") == 0) {
            char *end;
            if (i + 1 >= argc || (a->sync_interval = strtod(argv[++i], &end), *end != '\0') ||
                a->sync_interval < 0)
                return rank == 0 ? cli_usage_error("run", "--sync-interval needs seconds") : 2;
        } else if (o[0] == '-') {
            return rank == 0 ? cli_usage_error("run", "unknown option '%s'", o) : 2;
        } else if (a->config == NULL) {
            a->config = o;
        } else {
            return rank == 0 ? cli_usage_error("run", "unexpected argument '%s'", o) : 2;
        }
    }
    if (a->config == NULL) return rank == 0 ? cli_usage_error("run", "expected CONFIG.yaml") : 2;
    return 0;
}

/* Everything a rank needs, loaded from the same files on every rank. */
typedef struct Setup {
    Config *cfg;
    Model *model;
    Tok *tok;
    Plan *plan;
} Setup;

static void setup_free(Setup *s)
{
    plan_free(s->plan);
    tok_close(s->tok);
    model_close(s->model);
    cfg_free(s->cfg);
}

static int file_exists(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int setup_load(Setup *s, const Args *a, Err *err)
{
    if (cfg_load_model(&s->cfg, a->config, a->model, err)) return -1;
    Config *cfg = s->cfg;
    if (a->output != NULL) {
        free(cfg->output);
        cfg->output = xstrdup(a->output);
    }
    if (model_open(&s->model, cfg->model_dir, err)) return -1;
    /* The tokenizer is optional (pairs may be token ids), but a broken one
     * is an error. */
    if ((file_exists(cfg->model_dir, "vocab.json") || file_exists(cfg->model_dir, "tokenizer.json")) &&
        tok_open_dir(&s->tok, cfg->model_dir, err))
        return -1;
    if (cfg_resolve(cfg, model_config(s->model), s->tok, err)) return -1;
    for (size_t e = 0; e < cfg->n_exps; e++) {
        if (cfg->exps[e].source != SRC_RESAMPLE) continue;
        for (size_t i = 0; i < cfg->n_pairs; i++)
            if (worker_resample_partner(cfg, i) < 0)
                return err_set(err, "%s:%d:%d: source: resample needs, for every pair, another "
                               "pair of the same length; pair %zu (%zu tokens) has none",
                               cfg->exps[e].source_mark.file, cfg->exps[e].source_mark.line,
                               cfg->exps[e].source_mark.col, i + 1, cfg->pairs[i].n_tokens);
        break;
    }
    return plan_build(&s->plan, cfg, model_config(s->model), 0, err);
}

/* All ranks agree: 0 if every rank succeeded; else the message of the lowest
 * failing rank is printed by rank 0. */
static int agree(int rc, const Err *err, int rank)
{
    int bad = rc != 0 ? rank : INT32_MAX, first;
    MPI_Allreduce(&bad, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == INT32_MAX) return 0;
    char msg[sizeof err->msg];
    if (rank == first) memcpy(msg, err->msg, sizeof msg);
    MPI_Bcast(msg, sizeof msg, MPI_CHAR, first, MPI_COMM_WORLD);
    if (rank == 0) fprintf(stderr, "%s\n", msg);
    return -1;
}

/* A printable label of one token: its bytes, with control and invalid UTF-8
 * bytes escaped as \xNN. */
static char *token_label(const Tok *tok, int32_t id)
{
    char *bytes = NULL;
    size_t len = 0;
    Err err;
    if (tok_decode(tok, &id, 1, &bytes, &len, &err)) {
        free(bytes);
        bytes = xmalloc(16);
        snprintf(bytes, 16, "<%d>", (int)id);
        return bytes;
    }
    char *out = xmalloc(4 * len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)bytes[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        int ok = n > 0 && i + n <= len && (n == 1 ? c >= 0x20 && c != 0x7f : 1);
        for (size_t k = 1; ok && k < n; k++) ok = ((unsigned char)bytes[i + k] >> 6) == 2;
        if (ok) {
            memcpy(out + o, bytes + i, n);
            o += n, i += n;
        } else {
            o += (size_t)sprintf(out + o, "\\x%02x", c);
            i++;
        }
    }
    out[o] = '\0';
    free(bytes);
    return out;
}

/* tok_str[run][pair][pos] labels, or all NULL without a tokenizer. */
static void make_labels(const Setup *s, char ***labels[2])
{
    labels[0] = labels[1] = NULL;
    if (s->tok == NULL) return;
    const Config *cfg = s->cfg;
    for (int run = 0; run < 2; run++) {
        labels[run] = xcalloc(cfg->n_pairs, sizeof *labels[run]);
        for (size_t i = 0; i < cfg->n_pairs; i++) {
            const CfgPair *p = &cfg->pairs[i];
            labels[run][i] = xcalloc(p->n_tokens, sizeof(char *));
            for (size_t t = 0; t < p->n_tokens; t++)
                labels[run][i][t] = token_label(s->tok, run == 0 ? p->clean[t] : p->corrupted[t]);
        }
    }
}

static void free_labels(const Config *cfg, char ***labels[2])
{
    for (int run = 0; run < 2; run++) {
        if (labels[run] == NULL) continue;
        for (size_t i = 0; i < cfg->n_pairs; i++) {
            for (size_t t = 0; t < cfg->pairs[i].n_tokens; t++) free(labels[run][i][t]);
            free(labels[run][i]);
        }
        free(labels[run]);
    }
}

/* The activations the config asks to store: every hook kind with at least
 * one (kind, layer) matching a glob, with exactly the matching layers. */
static StoreActs *build_acts(const Config *cfg, const ModelConfig *mc, size_t max_tokens,
                             size_t *n_out)
{
    StoreActs *acts = xcalloc(HOOK_KIND_COUNT, sizeof *acts);
    size_t n = 0;
    for (int k = 0; k < HOOK_KIND_COUNT && cfg->n_activations; k++) {
        HookKind kind = (HookKind)k;
        size_t layers = hook_per_layer(kind) ? mc->n_layers : 1;
        StoreActs *a = &acts[n];
        a->layers = xcalloc(layers, sizeof *a->layers);
        size_t matched = 0;
        for (size_t l = 0; l < layers; l++) {
            char name[128];
            hook_name(kind, l, name, sizeof name);
            for (size_t g = 0; g < cfg->n_activations; g++)
                if (fnmatch(cfg->activations[g], name, 0) == 0) {
                    a->layers[matched++] = (int32_t)l;
                    break;
                }
        }
        if (matched == 0) {
            free(a->layers);
            a->layers = NULL;
            continue;
        }
        char name[128];
        hook_name(kind, 0, name, sizeof name);
        const char *suffix = hook_per_layer(kind) ? strchr(name + strlen("blocks."), '.') + 1 : name;
        snprintf(a->name, sizeof a->name, "%.47s", suffix);
        a->kind = k;
        a->n_layers = hook_per_layer(kind) ? matched : 0;
        size_t shape[4];
        a->ndim = hook_shape(mc, kind, max_tokens, shape);
        memcpy(a->dims, shape, a->ndim * sizeof *shape);
        if (hook_is_attn(kind)) {
            a->dim_names[0] = "head", a->dim_names[1] = "query_pos", a->dim_names[2] = "key_pos";
            a->is_pos[1] = a->is_pos[2] = 1;
        } else {
            a->dim_names[0] = "pos";
            a->is_pos[0] = 1;
            if (a->ndim == 3) {
                a->dim_names[1] = "head", a->dim_names[2] = "d_head";
            } else {
                size_t w = a->dims[1];
                a->dim_names[1] = w == 1 ? "one" : w == mc->d_model ? "d_model" : "d_mlp";
            }
        }
        n++;
    }
    *n_out = n;
    return acts;
}

static void free_acts(StoreActs *acts, size_t n)
{
    for (size_t i = 0; acts && i < n; i++) free(acts[i].layers);
    free(acts);
}

static void print_plan(const Setup *s, int ranks)
{
    const Plan *p = s->plan;
    const Config *cfg = s->cfg;
    printf("config      %s\nmodel       %s\noutput      %s\npairs       %zu (longest %zu "
           "tokens)\n",
           cfg->path, cfg->model_dir, cfg->output, p->n_pairs, p->max_tokens);
    printf("\n%-24s %-10s %-26s %-10s %-8s %s\n", "experiment", "patch", "axes", "cells/pair",
           "units", "direction, source");
    size_t total = 0;
    for (size_t e = 0; e < p->n_exps; e++) {
        const PlanExp *x = &p->exps[e];
        char axes[64] = "";
        for (size_t a = 0; a < x->n_axes; a++)
            snprintf(axes + strlen(axes), sizeof axes - strlen(axes), "%s%s=%zu", a ? "," : "",
                     plan_axis_name(x->axes[a]), x->dims[a]);
        printf("%-24s %-10s %-26s %-10zu %-8zu %s, %s\n", x->cfg->name,
               cfg_patch_name(x->cfg->kind), axes, x->cells, x->n_slices * p->n_blocks,
               cfg_dir_name(x->cfg->dir), cfg_source_name(x->cfg->source));
        total += x->cells * p->n_pairs;
    }
    printf("\nunits       %zu (%zu pairs x %zu experiment slices each)\ncells       %zu\n",
           p->n_units, p->pairs_per_unit, p->units_per_block, total);
    /* One full forward of the longest pair, as a TransformerLens loop runs per cell:
     * the projections and MLP of every layer, attention, the full unembedding. */
    const ModelConfig *mc = model_config(s->model);
    double T = (double)p->max_tokens, C = (double)mc->d_model, F = (double)mc->d_mlp;
    double per_fwd = 2.0 * T * ((double)mc->n_layers * (4 * C * C + 2 * C * F + 2 * T * C) +
                                (double)mc->d_vocab * C);
    printf("forward passes a TransformerLens loop would run: %zu (+ 2 per pair for baselines),\n"
           "            about %.3g TFLOP; the fast engine skips exact no-ops and recomputes only\n"
           "            the layers and positions a patch can change\n",
           total, per_fwd * (double)total / 1e12);
    printf("ranks       %d (%s)\n", ranks, ranks > 1 ? "rank 0 coordinates" : "one process");
}

/* ---- signals ---------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

int run_stop_requested(void) { return stop_signal != 0; }

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* Open MPI allocates in MPI_Init (and its plugins, loaded and unloaded
 * there) what it never frees; under LeakSanitizer those allocations are not
 * patchgrid's leaks, so they are left out of its report. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define NOT_OUR_LEAKS(call) (__lsan_disable(), (call), __lsan_enable())
#else
#define NOT_OUR_LEAKS(call) (call)
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- one rank: every unit in order ------------------------------------------- */

static int run_alone(const Setup *s, Store *store, Worker *w, size_t first, size_t end,
                     double sync_interval, Err *err)
{
    const Plan *p = s->plan;
    size_t total = 0, done = 0;
    for (size_t u = first; u < end; u++) {
        size_t b = plan_unit(p, u).n_vals;
        total += b;
        if (store_unit_done(store, u)) done += b;
    }
    Progress *pr = progress_new(total, done, 10.0);
    size_t *pending = xcalloc(p->n_units ? p->n_units : 1, sizeof *pending), n_pending = 0;
    double last_sync = now();
    int rc = 0;
    for (size_t u = first; u < end && rc == 0 && !run_stop_requested(); u++) {
        if (store_unit_done(store, u)) continue;
        rc = worker_run_unit(w, store, u, err);
        if (rc) break;
        pending[n_pending++] = u;
        done += plan_unit(p, u).n_vals;
        if (now() - last_sync >= sync_interval) {
            rc = store_sync(store, pending, n_pending, err);
            n_pending = 0;
            last_sync = now();
        }
        progress_update(pr, done, 1);
    }
    /* Units finished before an error or a signal are kept. */
    Err serr;
    if (store_sync(store, pending, n_pending, &serr) && rc == 0) {
        *err = serr;
        rc = -1;
    }
    progress_end(pr, done);
    free(pending);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    int provided;
    NOT_OUR_LEAKS(MPI_Init_thread(&argc, &argv, MPI_THREAD_SINGLE, &provided));
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    Args a;
    int rc = parse_args(&a, argc, argv, rank);
    if (rc != 0) {
        NOT_OUR_LEAKS(MPI_Finalize());
        return rc;
    }
    install_signals();
    int threads = blas_init_threads();
    Err err = {{0}};
    Setup s = {0};
    Store *store = NULL;
    Worker *w = NULL;
    char ***labels[2] = {NULL, NULL};
    int32_t *partner = NULL;
    StoreActs *acts = NULL;
    size_t n_acts = 0;
    rc = 1;
    if (agree(setup_load(&s, &a, &err), &err, rank)) goto out;
    /* A part of a job array: a contiguous range of pair blocks. */
    size_t nb = s.plan->n_blocks, upb = s.plan->units_per_block;
    size_t first = (size_t)a.part * nb / (size_t)a.parts * upb;
    size_t end = ((size_t)a.part + 1) * nb / (size_t)a.parts * upb;
    if (a.plan_only || a.null_work) {
        if (rank == 0 && a.plan_only) print_plan(&s, size);
        if (rank == 0 && a.plan_only && a.parts > 1)
            printf("part        %ld/%ld: units %zu..%zu (pairs %zu..%zu)\n", a.part, a.parts,
                   first, end ? end - 1 : 0, first / upb * s.plan->pairs_per_unit,
                   end / upb * s.plan->pairs_per_unit < s.plan->n_pairs
                       ? end / upb * s.plan->pairs_per_unit - 1
                       : s.plan->n_pairs - 1);
        /* Null work measures dispatch alone: no store, no computation. */
        rc = a.null_work
                 ? (agree(coord_run(s.plan, NULL, NULL, first, end, 0, &err), &err, rank) ? 1 : 0)
                 : 0;
        goto out;
    }
    if (rank == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        if (threads > 1 && (long)size * threads > cores)
            fprintf(stderr, "patchgrid: warning: %d ranks x %d BLAS threads exceed the %ld cores "
                    "of this node; set OPENBLAS_NUM_THREADS=1\n", size, threads, cores);
        else if (size > cores + 1)
            fprintf(stderr, "patchgrid: warning: %d ranks on %ld cores: workers share cores\n",
                    size, cores);
    }
    char model_sha[65] = "";
    if (rank == 0) st_sha256_hex(model_weights(s.model), model_sha);
    MPI_Bcast(model_sha, sizeof model_sha, MPI_CHAR, 0, MPI_COMM_WORLD);
    make_labels(&s, labels);
    for (size_t e = 0; e < s.cfg->n_exps && partner == NULL; e++)
        if (s.cfg->exps[e].source == SRC_RESAMPLE) {
            partner = xcalloc(s.cfg->n_pairs, sizeof *partner);
            for (size_t i = 0; i < s.cfg->n_pairs; i++)
                partner[i] = (int32_t)worker_resample_partner(s.cfg, i);
        }
    acts = build_acts(s.cfg, model_config(s.model), s.plan->max_tokens, &n_acts);
    StoreMeta meta = {.engine = a.naive ? "naive" : "fast", .model_sha256 = model_sha,
                      .blas_core = blas_core_name(), .ranks = size,
                      .tok_str = {labels[0], labels[1]}, .resample_partner = partner,
                      .acts = acts, .n_acts = n_acts};
    if (store_open(&store, s.cfg->output, s.plan, model_config(s.model), &meta, a.overwrite,
                   MPI_COMM_WORLD, &err)) {
        if (rank == 0) fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    free_labels(s.cfg, labels);
    labels[0] = labels[1] = NULL;
    free(partner);
    partner = NULL;
    if (rank == 0 && store_resumed(store))
        fprintf(stderr, "patchgrid: resuming %s: %zu of %zu units already done\n", s.cfg->output,
                store_done_count(store), s.plan->n_units);

    double t0 = now();
    w = worker_new(s.model, s.plan, a.naive, acts, n_acts);
    int work_rc = size == 1 ? run_alone(&s, store, w, first, end, a.sync_interval, &err)
                            : coord_run(s.plan, store, w, first, end, a.sync_interval, &err);
    /* Gather the work counters for the summary. */
    PatchStats st = worker_stats(w);
    double mine[3] = {(double)st.cells, (double)st.noop_cells, st.flops}, sum[3];
    MPI_Reduce(mine, sum, 3, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    int bad = work_rc != 0;
    Err cerr;
    if (store_close(store, &cerr) && !bad) {
        err = cerr;
        bad = 1;
    }
    store = NULL;
    if (agree(bad ? -1 : 0, &err, rank)) goto out;
    if (rank == 0) {
        double el = now() - t0;
        if (run_stop_requested())
            fprintf(stderr, "patchgrid: stopped by signal %d; run the same command again to "
                    "resume\n", (int)stop_signal);
        fprintf(stderr, "patchgrid: %s: %.0f cells computed, %.0f exact no-ops skipped, %.2f s, "
                "%.1f GFLOP/s\n", s.cfg->output, sum[0], sum[1], el,
                el > 0 ? sum[2] / el / 1e9 : 0.0);
    }
    rc = 0;
out:
    if (store) {
        Err ignore;
        store_close(store, &ignore);
    }
    free_labels(s.cfg, labels);
    free(partner);
    worker_free(w);
    free_acts(acts, n_acts);
    setup_free(&s);
    NOT_OUR_LEAKS(MPI_Finalize());
    return rc;
}
