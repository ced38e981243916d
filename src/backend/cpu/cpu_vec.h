#pragma once
// The CPU backend's vectorised inner loops (internal to backend/cpu): exp in f32, row maxima,
// sums in a fixed order, and the elementwise optimizer updates.
//
// Each function works on one contiguous range and is compiled several times, for AVX-512, for
// AVX2 and for the x86-64 baseline; the dynamic loader picks the variant for the CPU it runs on
// (GCC's target_clones, MOUSSE_CPU_CLONES below). One binary thus runs on any x86-64 machine and
// uses the vector units of the one it runs on, wherever it was built.
//
// Every variant computes the same bits: these files are compiled without floating-point
// contraction (no FMA fusing, see src/CMakeLists.txt), and no loop reorders a sum — each
// "lane" accumulates the elements j ≡ lane (mod kLanes) in order, and the lanes are then added in
// a fixed order, so only the instructions differ between variants, not the arithmetic.
//
// The OpenMP loops stay in the callers (the outlined parallel bodies would not be cloned): each
// thread calls these on its own rows or chunk.
#include <cstdint>

#include "backend/ops.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(MOUSSE_NO_CPU_CLONES)
#define MOUSSE_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MOUSSE_CPU_CLONES
#endif

// The namespace of these functions: `cpu`, except where a test compiles cpu_vec.cpp once more
// for a single instruction set, into a namespace of its own, to check that the variants agree
// bit for bit (tests/backend/test_cpu_vec.cpp).
#ifndef MOUSSE_CPU_VEC_NAMESPACE
#define MOUSSE_CPU_VEC_NAMESPACE cpu
#endif

namespace mousse {
namespace MOUSSE_CPU_VEC_NAMESPACE {

// Lanes of the fixed-order sums (a multiple of every vector width in floats or doubles).
constexpr int kLanes = 16;

// exp(x) in f32, written so that it vectorises: Cephes' range reduction and degree-6 polynomial,
// within 2 ulp of the exact value on [-87.33, 88.37]. Below -87.33 (where exp(x) < FLT_MIN) the
// result is 0, above 88.37 it is +inf, NaN stays NaN. For the max-subtracted arguments of a
// softmax (x <= 0) this is exp up to f32 round-off; the smallest terms it flushes are < 1.2e-38.
float exp_f32(float x);

// Largest element of x[0, n), n >= 1 (a NaN element may or may not be returned: a softmax over
// such a row is NaN either way).
float max_f32(const float* x, int64_t n);

// Σ exp(x[j] − shift) over j < n, each term in f32 and summed in double. Each term is within
// 2 ulp of the exact exp(x[j] − shift) (not just of exp of x[j] − shift rounded to f32, whose
// rounding error |x[j] − shift| · 2^-24 would show in the result).
double exp_sum_f32(const float* x, int64_t n, float shift);
// The same, replacing x[j] by its term.
double exp_sum_inplace_f32(float* x, int64_t n, float shift);
// x[j] = exp(x[j] − shift), as the terms above
void exp_inplace_f32(float* x, int64_t n, float shift);
// x[j] *= c
void scale_f32(float* x, int64_t n, float c);

// Σ x[j] and Σ x[j]² in double, in the fixed lane order above (not the serial order: a serial
// double sum is a chain of dependent additions and runs at a fraction of the memory's speed).
double lane_sum(const float* x, int64_t n);
double lane_sum(const double* x, int64_t n);
double lane_sum_squares(const float* x, int64_t n);
double lane_sum_squares(const double* x, int64_t n);

// Σ x[j] (Σ x[j]²) over x[0, n) in the backend's one summation order: blocks of kSumBlock
// elements, each summed by lanes, the block sums added in order. ops.sum / sum_squares sum the
// blocks in parallel and add them in the same order, so the value does not depend on the thread
// count, and one slice of sum_squares_batched equals sum_squares of that slice.
constexpr int64_t kSumBlock = 4096;
template <class T>
double block_sum_squares(const T* x, int64_t n) {
  double total = 0.0;
  for (int64_t lo = 0; lo < n; lo += kSumBlock)
    total += lane_sum_squares(x + lo, n - lo < kSumBlock ? n - lo : kSumBlock);
  return total;
}

// The elementwise optimizer updates of ops.h over [0, n), in double arithmetic, each result
// rounded once to the state's dtype: p, m, v f32 with an f32 gradient, f64 with f64, or f64
// state with an f32 gradient.
void adamw_range(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a);
void adamw_range(double* p, const double* g, double* m, double* v, int64_t n, const AdamWArgs& a);
void adamw_range(double* p, const float* g, double* m, double* v, int64_t n, const AdamWArgs& a);
void lion_range(float* p, const float* g, float* m, int64_t n, const LionArgs& a);
void lion_range(double* p, const double* g, double* m, int64_t n, const LionArgs& a);
void lion_range(double* p, const float* g, double* m, int64_t n, const LionArgs& a);

}  // namespace MOUSSE_CPU_VEC_NAMESPACE
}  // namespace mousse
