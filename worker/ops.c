/* ops.c — numerical kernels (see include/ops.h).
 *
 * Reductions use `omp simd reduction` (built with -fopenmp-simd) so they
 * vectorise without -ffast-math; tanhf/erff/expf are declared SIMD-callable
 * so the loops call glibc's libmvec vector variants. Results are
 * deterministic for a given binary: no threading inside the kernels.
 */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* glibc's libmvec provides vector variants of these (glibc >= 2.35). */
float tanhf(float) __attribute__((simd("notinbranch")));
float erff(float) __attribute__((simd("notinbranch")));
float expf(float) __attribute__((simd("notinbranch")));

void layernorm_forward(float *out, float *scale, const float *inp, const float *w,
                       const float *b, size_t R, size_t C, float eps)
{
    for (size_t r = 0; r < R; r++) {
        const float *x = inp + r * C;
        float *o = out + r * C;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < C; i++) sum += x[i];
        float mean = sum / (float)C;
        float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
        for (size_t i = 0; i < C; i++) {
            float d = x[i] - mean;
            sq += d * d;
        }
        float s = sqrtf(sq / (float)C + eps);
        if (scale) scale[r] = s;
#pragma omp simd
        for (size_t i = 0; i < C; i++) o[i] = (x[i] - mean) / s * w[i] + b[i];
    }
}

double matmul_forward(float *out, const float *inp, const float *w, const float *bias,
                      size_t R, size_t IN, size_t OUT, size_t ldw)
{
    if (R == 0) return 0.0;
    float beta = 0.0f;
    if (bias) {
        for (size_t r = 0; r < R; r++) memcpy(out + r * OUT, bias, OUT * sizeof *out);
        beta = 1.0f;
    }
    if (R == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)IN, (int)OUT, 1.0f, w, (int)ldw, inp, 1,
                    beta, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)OUT, (int)IN, 1.0f,
                    inp, (int)IN, w, (int)ldw, beta, out, (int)OUT);
    return 2.0 * (double)R * (double)IN * (double)OUT;
}

double matmul_forward_t(float *out, const float *inp, const float *w, size_t R, size_t IN,
                        size_t OUT)
{
    if (R == 0) return 0.0;
    if (R == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)OUT, (int)IN, 1.0f, w, (int)IN, inp, 1,
                    0.0f, out, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)R, (int)OUT, (int)IN, 1.0f,
                    inp, (int)IN, w, (int)IN, 0.0f, out, (int)OUT);
    return 2.0 * (double)R * (double)IN * (double)OUT;
}

void gelu_new_forward(float *out, const float *inp, size_t n)
{
    const float s = 0.7978845608028654f; /* sqrt(2/pi) */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(s * (x + 0.044715f * x * x * x)));
    }
}

void gelu_erf_forward(float *out, const float *inp, size_t n)
{
    const float r = 0.7071067811865476f; /* 1/sqrt(2) */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * r));
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* Row j of the keys/values of a prompt whose positions [0, start) live in
 * `pre` and [start, T) in `cur`. */
static inline const float *kv_row(const float *pre, const float *cur, size_t j, size_t start,
                                  size_t ld)
{
    return j < start ? pre + j * ld : cur + (j - start) * ld;
}

double attn_scores_forward(float *scores, const float *q, const float *kpre, const float *k,
                           size_t qpos, size_t nq, size_t start, size_t T, size_t NH, size_t HD,
                           size_t ld, size_t hs)
{
    const float scale = sqrtf((float)HD);
    double flops = 0.0;
    for (size_t h = 0; h < NH; h++) {
        for (size_t i = 0; i < nq; i++) {
            size_t t = qpos + i; /* this query's position: keys [0, t] are visible */
            const float *qh = q + i * ld + h * HD;
            float *srow = scores + h * hs + i * T;
            for (size_t j = 0; j <= t; j++) {
                const float *kh = kv_row(kpre, k, j, start, ld) + h * HD;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (size_t d = 0; d < HD; d++) dot += qh[d] * kh[d];
                srow[j] = dot / scale;
            }
            for (size_t j = t + 1; j < T; j++) srow[j] = -INFINITY;
            flops += 2.0 * (double)(t + 1) * (double)HD;
        }
    }
    return flops;
}

void attn_softmax_forward(float *pattern, const float *scores, size_t qpos, size_t nq, size_t T,
                          size_t NH, size_t hs)
{
    for (size_t h = 0; h < NH; h++) {
        for (size_t i = 0; i < nq; i++) {
            size_t t = qpos + i;
            const float *srow = scores + h * hs + i * T;
            float *prow = pattern + h * hs + i * T;
            float mx = -INFINITY;
            for (size_t j = 0; j <= t; j++)
                if (srow[j] > mx) mx = srow[j];
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (size_t j = 0; j <= t; j++) {
                float e = expf(srow[j] - mx);
                prow[j] = e;
                sum += e;
            }
#pragma omp simd
            for (size_t j = 0; j <= t; j++) prow[j] /= sum;
            for (size_t j = t + 1; j < T; j++) prow[j] = 0.0f;
        }
    }
}

double attn_values_forward(float *z, const float *pattern, const float *vpre, const float *v,
                           size_t qpos, size_t nq, size_t start, size_t T, size_t NH, size_t HD,
                           size_t ld, size_t hs)
{
    double flops = 0.0;
    for (size_t i = 0; i < nq; i++) {
        size_t t = qpos + i;
        for (size_t h = 0; h < NH; h++) {
            const float *prow = pattern + h * hs + i * T;
            float *zh = z + i * ld + h * HD;
            for (size_t d = 0; d < HD; d++) zh[d] = 0.0f;
            for (size_t j = 0; j <= t; j++) {
                const float p = prow[j];
                const float *vh = kv_row(vpre, v, j, start, ld) + h * HD;
#pragma omp simd
                for (size_t d = 0; d < HD; d++) zh[d] += p * vh[d];
            }
            flops += 2.0 * (double)(t + 1) * (double)HD;
        }
    }
    return flops;
}
