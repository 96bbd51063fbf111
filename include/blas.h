/* blas.h — OpenBLAS set-up shared by every command that computes. */
#ifndef PATCHGRID_BLAS_H
#define PATCHGRID_BLAS_H

/* One BLAS thread per process unless OPENBLAS_NUM_THREADS (or
 * OMP_NUM_THREADS) says otherwise: patchgrid parallelises with ranks, and
 * ranks x threads beyond the cores collapses throughput. Returns the number
 * of BLAS threads in use. */
int blas_init_threads(void);

/* OpenBLAS's name for the CPU kernel it selected, e.g. "Zen". */
const char *blas_core_name(void);

#endif
