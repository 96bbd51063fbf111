/* test_ops.c — the matrix products of include/ops.h against a plain
 * double-precision triple loop, over row counts that take every path
 * (sgemv at one row, the few-row kernels, OpenBLAS sgemm) and sizes that are
 * not multiples of the kernels' tiles: remainder rows, columns past the last
 * full panel, IN not a multiple of the vector width, a row stride wider than
 * the output (a column block of a larger matrix), with and without bias.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops.h"

static const size_t ROWS[] = {1, 2, 4, 5, 9, 10, 11, 14, 15, 16, 20, 23, 37, 63, 64, 65, 100};
static const size_t INS[] = {1, 7, 16, 64, 65, 130};
static const size_t OUTS[] = {1, 3, 63, 64, 65, 200};

#define N_OF(a) (sizeof(a) / sizeof *(a))

static float *random_floats(size_t n, unsigned *seed)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand_r(seed) / (float)RAND_MAX * 2.0f - 1.0f;
    return p;
}

/* |got - want| <= 1e-5 * sum_k |a_k w_k| + 1e-6: float rounding of the sum. */
static void check(const float *got, const double *want, const double *scale, size_t n,
                  const char *what, size_t R, size_t IN, size_t OUT)
{
    for (size_t i = 0; i < n; i++) {
        double tol = 1e-5 * scale[i] + 1e-6;
        if (!(fabs((double)got[i] - want[i]) <= tol))
            fail_msg("%s R=%zu IN=%zu OUT=%zu: element %zu (row %zu) is %.9g, want %.9g", what, R,
                     IN, OUT, i, i / OUT, (double)got[i], want[i]);
    }
}

static void test_matmul_forward(void **state)
{
    (void)state;
    unsigned seed = 1;
    for (size_t a = 0; a < N_OF(ROWS); a++)
        for (size_t b = 0; b < N_OF(INS); b++)
            for (size_t c = 0; c < N_OF(OUTS); c++)
                for (int variant = 0; variant < 2; variant++) {
                    size_t R = ROWS[a], IN = INS[b], OUT = OUTS[c];
                    size_t ldw = variant ? OUT + 5 : OUT; /* variant 1: wider rows, and a bias */
                    float *inp = random_floats(R * IN, &seed);
                    float *w = random_floats(IN * ldw, &seed);
                    float *bias = variant ? random_floats(OUT, &seed) : NULL;
                    float *out = random_floats(R * OUT, &seed); /* garbage to overwrite */
                    double *want = malloc(R * OUT * sizeof *want);
                    double *scale = malloc(R * OUT * sizeof *scale);
                    for (size_t r = 0; r < R; r++)
                        for (size_t o = 0; o < OUT; o++) {
                            double s = bias ? bias[o] : 0.0, m = bias ? fabs(bias[o]) : 0.0;
                            for (size_t k = 0; k < IN; k++) {
                                s += (double)inp[r * IN + k] * w[k * ldw + o];
                                m += fabs((double)inp[r * IN + k] * w[k * ldw + o]);
                            }
                            want[r * OUT + o] = s;
                            scale[r * OUT + o] = m;
                        }
                    double flops = matmul_forward(out, inp, w, bias, R, IN, OUT, ldw);
                    assert_true(flops == 2.0 * (double)R * (double)IN * (double)OUT);
                    check(out, want, scale, R * OUT, variant ? "matmul_forward+bias,ldw" :
                          "matmul_forward", R, IN, OUT);
                    free(inp), free(w), free(bias), free(out), free(want), free(scale);
                }
}

static void test_matmul_forward_t(void **state)
{
    (void)state;
    unsigned seed = 2;
    for (size_t a = 0; a < N_OF(ROWS); a++)
        for (size_t b = 0; b < N_OF(INS); b++)
            for (size_t c = 0; c < N_OF(OUTS); c++) {
                size_t R = ROWS[a], IN = INS[b], OUT = OUTS[c];
                float *inp = random_floats(R * IN, &seed);
                float *w = random_floats(OUT * IN, &seed);
                float *out = random_floats(R * OUT, &seed);
                double *want = malloc(R * OUT * sizeof *want);
                double *scale = malloc(R * OUT * sizeof *scale);
                for (size_t r = 0; r < R; r++)
                    for (size_t o = 0; o < OUT; o++) {
                        double s = 0.0, m = 0.0;
                        for (size_t k = 0; k < IN; k++) {
                            s += (double)inp[r * IN + k] * w[o * IN + k];
                            m += fabs((double)inp[r * IN + k] * w[o * IN + k]);
                        }
                        want[r * OUT + o] = s;
                        scale[r * OUT + o] = m;
                    }
                double flops = matmul_forward_t(out, inp, w, R, IN, OUT);
                assert_true(flops == 2.0 * (double)R * (double)IN * (double)OUT);
                check(out, want, scale, R * OUT, "matmul_forward_t", R, IN, OUT);
                free(inp), free(w), free(out), free(want), free(scale);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_forward),
        cmocka_unit_test(test_matmul_forward_t),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL) != 0;
}
