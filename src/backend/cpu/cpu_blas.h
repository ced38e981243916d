#pragma once
// Typed row-major GEMM wrappers over CBLAS (internal to backend/cpu):
//   c[M, N] = alpha * op(a) @ op(b) + beta * c, with explicit leading dimensions so that
// strided sub-matrices (e.g. one head's columns of the fused qkv) are used in place.
// Call from outside OpenMP parallel regions: OpenBLAS parallelises each call itself.
#include <cblas.h>

#include <cstdint>

namespace mousse {
namespace cpu {

inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, double beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              int(M), int(N), int(K), float(alpha), a, int(lda), b, int(ldb), float(beta), c,
              int(ldc));
}

inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                 const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                 double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              int(M), int(N), int(K), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

}  // namespace cpu
}  // namespace mousse
