#pragma once
// CpuOps: the reference implementation of the Ops interface (backend/ops.h).
//
// Plain loops with OpenMP over independent rows / (batch, head) pairs, OpenBLAS for GEMM and
// LAPACKE for eigh / QR. Every kernel is a template instantiated for float and double and
// dispatched at run time on the tensors' dtype; token ids and indices are i32. bf16 is a CUDA
// activation format only: the CPU backend rejects it with a clear error.
//
// Each op of MOUSSE_OPS (backend/ops.h) is implemented as `name_impl`, declared below by
// expanding that list: the Ops front has checked the arguments' shapes before it is called, and
// the body checks what is the CPU's own (dtypes, devices, token ids in range). The bodies are in
// one file per area:
//   cpu_ops.cpp          make_cpu_ops(), name(), device()
//   cpu_memory.cpp       alloc / free / to_host / from_host / synchronize
//   cpu_elementwise.cpp  fill, copy, copy_stochastic, scale, axpby, sum, sum_squares, relu2
//   cpu_gemm.cpp         matmul, matmul_batched, matmul_tf32 (cblas_?gemm; cpu_blas.h)
//   cpu_common.h         the CPU's own argument checks (dtypes, devices), dtype dispatch, scratch
//   cpu_norms.cpp        rmsnorm, add_rmsnorm, qknorm_rope
//   cpu_attention.cpp    causal softmax attention per (b, h) as T×T blocks (forward saves lse,
//                        backward recomputes P)
//   cpu_classifier.cpp   fused softmax cross-entropy
//   cpu_embedding.cpp    token embedding
//   cpu_optim.cpp        adamw, lion, ema_square, adam_direction, sum_squares_batched,
//                        trace_to, scale_by_ratio (device scalars), eigh_batched
//   cpu_linalg.cpp       eigh, qr_orthonormal, scale_rows_cols, pow_clamped, diagonal, trace,
//                        transpose, gather_rows / gather_columns, column_dots,
//                        cholesky_batched, solve_upper_right_batched
#include <vector>

#include "backend/ops.h"

namespace mousse {

class CpuOps final : public Ops {
 public:
  Device device() const override { return Device::cpu; }
  std::string name() const override;
  std::unique_ptr<Ops> make_worker() const override;

  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void to_host(void* dst, const Tensor& src) override;
  void from_host(const Tensor& dst, const void* src) override;
  void synchronize() override {}

 private:
  MOUSSE_OPS(MOUSSE_OP_OVERRIDE, MOUSSE_OP_OVERRIDE)

  // matmul_tf32's rounded copies of its operands (grown on demand, kept between calls)
  std::vector<float> tf32_a_, tf32_b_;
  bool compute_copy_due(const char* op, const Tensor& p, const ComputeCopy& copy);
};

}  // namespace mousse
