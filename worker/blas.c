/* blas.c — OpenBLAS thread set-up (see include/blas.h). */
#include "blas.h"

#include <cblas.h>
#include <stdlib.h>

int blas_init_threads(void)
{
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    if (env == NULL || *env == '\0') env = getenv("OMP_NUM_THREADS");
    int n = env && *env ? atoi(env) : 1;
    if (n < 1) n = 1;
    openblas_set_num_threads(n);
    return openblas_get_num_threads();
}

const char *blas_core_name(void) { return openblas_get_corename(); }
