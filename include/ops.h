/* ops.h — the numerical kernels of the forward pass.
 *
 * Outputs first, then const inputs, then weights, then sizes (llm.c's order).
 * Kernels never allocate. Matrices are row-major; R rows, C/IN/OUT columns.
 * Matrix products go through OpenBLAS (cblas_sgemm, cblas_sgemv for one row),
 * except that on AVX-512 builds 10..64 rows take ops.c's own kernels, which
 * read the weights in place instead of packing them (faster there, measured
 * by `make bench`). Either way the result is deterministic for a given binary
 * and row count.
 */
#ifndef PATCHGRID_OPS_H
#define PATCHGRID_OPS_H

#include <stddef.h>

/* TransformerLens's LayerNorm: x - mean, scale = sqrt(mean(x^2) + eps),
 * out = x / scale * w + b. scale may be NULL. */
void layernorm_forward(float *out,        /* (R, C) */
                       float *scale,      /* (R) or NULL */
                       const float *inp,  /* (R, C) */
                       const float *w, const float *b, /* (C) */
                       size_t R, size_t C, float eps);

/* out = inp @ w + bias, w stored (IN, OUT) as HF's Conv1D with row stride
 * ldw >= OUT (so a column block of a wider matrix can be used); bias may be
 * NULL. Returns the FLOPs done. */
double matmul_forward(float *out,           /* (R, OUT) */
                      const float *inp,     /* (R, IN) */
                      const float *w,       /* (IN, ldw) */
                      const float *bias,    /* (OUT) or NULL */
                      size_t R, size_t IN, size_t OUT, size_t ldw);

/* out = inp @ w^T with w stored (OUT, IN) (the unembedding). Returns FLOPs. */
double matmul_forward_t(float *out,        /* (R, OUT) */
                        const float *inp,  /* (R, IN) */
                        const float *w,    /* (OUT, IN) */
                        size_t R, size_t IN, size_t OUT);

/* gelu_new (tanh approximation) or exact erf gelu, element-wise. */
void gelu_new_forward(float *out, const float *inp, size_t n);
void gelu_erf_forward(float *out, const float *inp, size_t n);

/* out = a + b element-wise (out may alias a). */
void residual_forward(float *out, const float *a, const float *b, size_t n);

/* Causal attention of one prompt in three steps (scores, softmax, values) so
 * that hooks can act between them and a run can enter after any of them. Positions [0, start) have keys/values in kpre/vpre, positions
 * [start, T) in k/v (all rows of width ld, head h at columns [h*HD, h*HD+HD)).
 * Queries are positions [qpos, qpos + nq) with qpos >= start, qpos + nq <= T.
 * Score/pattern blocks hold head h, query i at [h * hs + i * T], so a caller
 * can address one query row of a larger (NH, rows, T) block (hs = rows * T).
 *
 * attn_scores_forward: scores = q.k / sqrt(HD) for keys <= the query's
 * position, -inf above (TL's causal mask). Returns FLOPs. */
double attn_scores_forward(float *scores,       /* (NH, nq, T), head stride hs */
                           const float *q,      /* (nq, ld) */
                           const float *kpre,   /* (start, ld) */
                           const float *k,      /* (T - start, ld) */
                           size_t qpos, size_t nq, size_t start, size_t T,
                           size_t NH, size_t HD, size_t ld, size_t hs);

/* pattern = softmax(scores) over each row's visible keys, 0 above. */
void attn_softmax_forward(float *pattern,      /* (NH, nq, T), head stride hs */
                          const float *scores, /* (NH, nq, T), head stride hs */
                          size_t qpos, size_t nq, size_t T, size_t NH, size_t hs);

/* z = pattern @ v per head. Returns FLOPs. */
double attn_values_forward(float *z,             /* (nq, ld) */
                           const float *pattern, /* (NH, nq, T), head stride hs */
                           const float *vpre,    /* (start, ld) */
                           const float *v,       /* (T - start, ld) */
                           size_t qpos, size_t nq, size_t start, size_t T,
                           size_t NH, size_t HD, size_t ld, size_t hs);

#endif
