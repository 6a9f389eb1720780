/*
 * cblas_sgemm for MLX's Linux CPU wheel, forwarded to OpenBLAS.
 *
 * The mlx[cpu] wheel links an unoptimised reference BLAS. Its matrix products run many times
 * faster through OpenBLAS, which PyPI ships (scipy-openblas32) only with prefixed symbols
 * (scipy_cblas_sgemm). This module defines the unprefixed symbol and forwards it.
 * foldscreen.model.blas loads OpenBLAS and then this file with RTLD_GLOBAL before MLX is
 * imported, so MLX's calls resolve here. scipy_cblas_sgemm is resolved at load time from the
 * already loaded OpenBLAS; nothing is linked at build time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

enum order { row_major = 101, col_major = 102 };
enum transpose { no_trans = 111, trans = 112, conj_trans = 113 };

extern void scipy_cblas_sgemm(enum order, enum transpose, enum transpose, int m, int n, int k,
                              float alpha, const float *a, int lda, const float *b, int ldb,
                              float beta, float *c, int ldc);

void cblas_sgemm(enum order o, enum transpose ta, enum transpose tb, int m, int n, int k,
                 float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                 float *c, int ldc) {
  scipy_cblas_sgemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastblas",
                                    "cblas_sgemm forwarded to OpenBLAS (see blas.py)", -1};

PyMODINIT_FUNC PyInit__fastblas(void) { return PyModule_Create(&module); }
