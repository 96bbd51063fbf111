/* sgemm_peak.c — the machine's cblas_sgemm speed at one shape, one BLAS thread.
 *
 *   sgemm_peak M N K [seconds]
 *
 * Times row-major C[M,N] = A[M,K] . B[K,N] (the shape of a forward pass's projection: M rows
 * of activations times a weight matrix) and prints one line
 *   sgemm M=.. N=.. K=.. GFLOP/s=..
 * The figure is the best of several repetitions after a warm-up, each repetition long enough
 * (about 50 ms) for the clock to be exact; `seconds` (default 1) bounds the whole measurement.
 * It is the ceiling the forward pass's GEMMs are compared against in `make bench`.
 */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Parses a positive integer argument; returns 0 when it is not one. */
static size_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 1000000) return 0;
    return (size_t)v;
}

static float *alloc_matrix(size_t rows, size_t cols)
{
    size_t bytes = rows * cols * sizeof(float);
    bytes = (bytes + 63) / 64 * 64; /* aligned_alloc wants a multiple of the alignment */
    float *m = aligned_alloc(64, bytes);
    if (!m) return NULL;
    for (size_t i = 0; i < rows * cols; i++) m[i] = (float)((i * 7919u) % 1000u) * 1e-3f - 0.5f;
    return m;
}

static void gemm(float *c, const float *a, const float *b, size_t M, size_t N, size_t K)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)M, (blasint)N, (blasint)K,
                1.0f, a, (blasint)K, b, (blasint)N, 0.0f, c, (blasint)N);
}

int main(int argc, char **argv)
{
    int status = 1;
    float *a = NULL, *b = NULL, *c = NULL;
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: sgemm_peak M N K [seconds]\n");
        return 2;
    }
    size_t M = parse_size(argv[1]), N = parse_size(argv[2]), K = parse_size(argv[3]);
    double budget = argc == 5 ? strtod(argv[4], NULL) : 1.0;
    if (!M || !N || !K || !(budget > 0 && budget < 3600)) {
        fprintf(stderr, "sgemm_peak: M, N, K must be integers in 1..1000000, seconds in (0, 3600)\n");
        return 2;
    }
    openblas_set_num_threads(1);

    a = alloc_matrix(M, K); /* (M, K) */
    b = alloc_matrix(K, N); /* (K, N) */
    c = alloc_matrix(M, N); /* (M, N) */
    if (!a || !b || !c) {
        fprintf(stderr, "sgemm_peak: out of memory for M=%zu N=%zu K=%zu\n", M, N, K);
        goto out;
    }

    /* Warm-up (caches, OpenBLAS buffers), and calls per repetition for ~50 ms each. */
    double start = now();
    size_t calls = 0;
    do {
        gemm(c, a, b, M, N, K);
        calls++;
    } while (now() - start < 0.05);
    size_t per_rep = calls;

    double flops = 2.0 * (double)M * (double)N * (double)K * (double)per_rep;
    double best = 0.0, end = now() + budget;
    for (int rep = 0; rep < 3 || now() < end; rep++) {
        double t0 = now();
        for (size_t i = 0; i < per_rep; i++) gemm(c, a, b, M, N, K);
        double gflops = flops / (now() - t0) * 1e-9;
        if (gflops > best) best = gflops;
    }
    printf("sgemm M=%zu N=%zu K=%zu GFLOP/s=%.1f\n", M, N, K, best);
    status = 0;
out:
    free(a);
    free(b);
    free(c);
    return status;
}
