/* bench_forward MODEL_DIR BATCH TOKENS [REPS] — time patchgrid's forward pass.
 *
 * The plain forward (no hooks kept, full logits at every position, as
 * TransformerLens computes them) of BATCH random prompts of TOKENS tokens,
 * one BLAS thread unless OPENBLAS_NUM_THREADS says otherwise. Prints
 * `patchgrid B=.. T=.. seconds=.. tokens/s=.. GFLOP/s=..` with the median of
 * REPS runs after one warm-up. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "blas.h"
#include "model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: bench_forward MODEL_DIR BATCH TOKENS [REPS]\n");
        return 2;
    }
    size_t B = strtoul(argv[2], NULL, 10), T = strtoul(argv[3], NULL, 10);
    int reps = argc == 5 ? atoi(argv[4]) : 5;
    if (B == 0 || T == 0 || reps < 1) {
        fprintf(stderr, "bench_forward: BATCH, TOKENS and REPS must be positive\n");
        return 2;
    }
    blas_init_threads();
    Err err;
    Model *m;
    if (model_open(&m, argv[1], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const ModelConfig *c = model_config(m);
    int32_t *tokens = xmalloc(B * T * sizeof *tokens);
    srand(0);
    for (size_t i = 0; i < B * T; i++) tokens[i] = (int32_t)((size_t)rand() % c->d_vocab);
    ModelSeg *segs = xcalloc(B, sizeof *segs);
    for (size_t b = 0; b < B; b++) segs[b] = (ModelSeg){.tokens = tokens + b * T, .n_tokens = T};
    ModelRun run = {.segs = segs, .n_segs = B, .entry = MODEL_ENTRY_EMBED};
    Fwd *f = fwd_new(m, NULL);
    double *times = xcalloc((size_t)reps, sizeof *times);
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        if (model_forward(m, f, &run, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (r >= 0) times[r] = now() - t0;
    }
    qsort(times, (size_t)reps, sizeof *times, cmp_double);
    double s = times[reps / 2];
    printf("patchgrid B=%zu T=%zu seconds=%.4f tokens/s=%.1f GFLOP/s=%.1f\n", B, T, s,
           (double)(B * T) / s, fwd_flops(f) / s / 1e9);
    fwd_free(f);
    free(times);
    free(segs);
    free(tokens);
    model_close(m);
    return 0;
}
