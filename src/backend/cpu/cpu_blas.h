#pragma once
// Typed row-major GEMM wrappers over CBLAS (internal to backend/cpu):
//   c[M, N] = alpha * op(a) @ op(b) + beta * c, with explicit leading dimensions so that
// strided sub-matrices (e.g. one head's columns of the fused qkv) are used in place.
// OpenBLAS runs single-threaded (see make_cpu_ops): all CPU parallelism is OpenMP, so the two
// thread pools never fight over the cores. gemm() is one serial call (safe inside OpenMP
// regions, e.g. one attention head per thread); parallel_gemm() splits the output across the
// OpenMP threads.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <string>

namespace mousse {
namespace cpu {

// The widest vector instructions of this CPU, as OpenBLAS's kernels use them: 0 SSE only,
// 1 AVX, 2 AVX2 + FMA, 3 AVX-512 (F, BW, VL, DQ, as OpenBLAS's SkylakeX kernels need).
int cpu_vector_level();
// The vector level a kernel ("core") of OpenBLAS is written for, -1 when the name is unknown.
int blas_core_level(const std::string& core);
// "" when OpenBLAS's core suits the CPU; otherwise what to tell the user: the core is a generic
// one (SSE or AVX without FMA) on a CPU with AVX2 or AVX-512, and OPENBLAS_CORETYPE can select the
// right one. Mousse never sets it itself: some OpenBLAS builds crash with a forced core type on
// a CPU they do not fully support.
std::string blas_core_advice(const std::string& core, int cpu_level);
// "OpenBLAS 0.3.21, SkylakeX kernel" for the library loaded at run time.
std::string blas_description();

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

// out = alpha op(a) op(b) + beta out, the rows (or, for short wide outputs, the columns) of out
// split into one block per OpenMP thread. Each element's arithmetic is the same serial BLAS
// call's, so the result does not depend on the split for a given thread count.
template <class T>
void parallel_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const T* a,
                   int64_t lda, const T* b, int64_t ldb, double beta, T* c, int64_t ldc) {
  const int threads = omp_get_max_threads();
  if (threads <= 1 || double(M) * double(N) * double(K) < 1 << 18) {
    gemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const bool by_rows = M >= N || M >= 64 * threads;
  const int64_t extent = by_rows ? M : N;
  const int64_t block = (extent + threads - 1) / threads;
  // One block per thread, handed out dynamically: where a thread starts late (a busy machine),
  // the other computes both blocks instead of waiting for it.
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < threads; t++) {
    const int64_t lo = std::min<int64_t>(extent, t * block), hi = std::min(extent, lo + block);
    if (lo >= hi) continue;
    if (by_rows)  // rows lo..hi of op(a): row offset in a, or column offset when transposed
      gemm(ta, tb, hi - lo, N, K, alpha, a + (ta ? lo : lo * lda), lda, b, ldb, beta,
           c + lo * ldc, ldc);
    else  // columns lo..hi of op(b): column offset in b, or row offset when transposed
      gemm(ta, tb, M, hi - lo, K, alpha, a, lda, b + (tb ? lo * ldb : lo), ldb, beta, c + lo,
           ldc);
  }
}

}  // namespace cpu
}  // namespace mousse
