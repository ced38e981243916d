// GEMM through OpenBLAS: out[M, N] = alpha * op(a) @ op(b) + beta * out (row-major).
#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_blas.h"
#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"

namespace mousse {

using namespace cpu;

namespace {

// The BLAS arguments of one product whose shapes the front has checked (op_checks.h gemm_dims):
// op(a) is [M, K], op(b) is [K, N], out is [M, N], leading dimensions lda, ldb. BLAS takes
// 32-bit dimensions.
struct GemmShape {
  int64_t M, N, K, lda, ldb;
};

GemmShape gemm_shape(const char* op, const GemmDims& d) {
  const int64_t kIntMax = 2147483647;
  if (d.a_rows > kIntMax || d.a_cols > kIntMax || d.b_rows > kIntMax || d.b_cols > kIntMax)
    fail(op, ": matrix dimension beyond BLAS's 32-bit range");
  return {d.M, d.N, d.K, d.a_cols, d.b_cols};
}

void check_gemm_dtypes(const char* op, const Tensor& out, const Tensor& a, const Tensor& b) {
  check_float(op, "out", out);
  check_dtype(op, "a", a, "out", out);
  check_dtype(op, "b", b, "out", out);
  // no empty operand: BLAS wants leading dimensions >= 1 (the CUDA backend accepts empty ones)
  if (out.numel() == 0 || a.numel() == 0 || b.numel() == 0)
    fail(op, ": empty matrix product: out ", out.shape.str(), ", a ", a.shape.str(), ", b ",
         b.shape.str());
}

}  // namespace

void CpuOps::matmul_impl(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                         bool trans_b, double alpha, double beta) {
  const char* op = "matmul";
  check_gemm_dtypes(op, out, a, b);
  const GemmShape s = gemm_shape(op, gemm_dims(op, out, a, trans_a, b, trans_b, /*batched=*/false));
  dispatch_float(op, out.dtype, [&](auto tag) {
    using T = decltype(tag);
    parallel_gemm(trans_a, trans_b, s.M, s.N, s.K, double(alpha), a.ptr<T>(), s.lda, b.ptr<T>(),
                  s.ldb, double(beta), out.ptr<T>(), s.N);
  });
}

namespace {
// f32 -> the nearest TF32 value (10 mantissa bits, ties to even), kept in an f32. Inf and NaN
// pass unchanged; a value that rounds past the f32 range becomes inf, as rounding should.
float round_to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u += 0x0fffu + ((u >> 13) & 1u);
  u &= ~0x1fffu;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
}  // namespace

void CpuOps::matmul_tf32_impl(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                              bool trans_b, double alpha, double beta) {
  const char* op = "matmul_tf32";
  check_gemm_dtypes(op, out, a, b);
  if (out.dtype != DType::f32)
    fail(op, ": f32 tensors only (TF32 is a way to multiply f32), got ", dtype_name(out.dtype));
  const GemmShape s = gemm_shape(op, gemm_dims(op, out, a, trans_a, b, trans_b, /*batched=*/false));
  auto rounded = [](std::vector<float>& buf, const Tensor& t) {
    buf.resize(size_t(t.numel()));
    const float* src = t.ptr<float>();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < t.numel(); i++) buf[size_t(i)] = round_to_tf32(src[i]);
    return buf.data();
  };
  const float* ra = rounded(tf32_a_, a);
  const float* rb = a.data == b.data ? ra : rounded(tf32_b_, b);
  parallel_gemm(trans_a, trans_b, s.M, s.N, s.K, alpha, ra, s.lda, rb, s.ldb, beta,
                out.ptr<float>(), s.N);
}

void CpuOps::matmul_batched_impl(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                                 bool trans_b, double alpha, double beta) {
  const char* op = "matmul_batched";
  check_gemm_dtypes(op, out, a, b);
  const GemmDims d = gemm_dims(op, out, a, trans_a, b, trans_b, /*batched=*/true);
  const int64_t batch = d.batch;
  const GemmShape s = gemm_shape(op, d);
  const int64_t sa = a.shape[1] * a.shape[2], sb = b.shape[1] * b.shape[2], so = s.M * s.N;
  dispatch_float(op, out.dtype, [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < batch; i++)
      parallel_gemm(trans_a, trans_b, s.M, s.N, s.K, alpha, a.ptr<T>() + i * sa, s.lda,
           b.ptr<T>() + i * sb, s.ldb, double(beta), out.ptr<T>() + i * so, s.N);
  });
}

}  // namespace mousse
