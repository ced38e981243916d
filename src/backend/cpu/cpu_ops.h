#pragma once
// CpuOps: the reference implementation of the Ops interface (backend/ops.h).
//
// Plain loops with OpenMP over independent rows / (batch, head) pairs, OpenBLAS for GEMM and
// LAPACKE for eigh / QR. Every kernel is a template instantiated for float and double and
// dispatched at run time on the tensors' dtype; token ids and indices are i32. bf16 is a CUDA
// activation format only: the CPU backend rejects it with a clear error.
//
// The methods are implemented in one file per area:
//   cpu_ops.cpp          make_cpu_ops(), name(), device()
//   cpu_memory.cpp       alloc / free / to_host / from_host / synchronize
//   cpu_elementwise.cpp  fill, copy, scale, axpby, sum, sum_squares, relu2
//   cpu_gemm.cpp         matmul, matmul_batched, matmul_tf32 (cblas_?gemm; cpu_blas.h)
//   cpu_common.h         argument checks with messages naming the op, dtype dispatch, scratch
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

  void fill(const Tensor& x, double value) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void copy_stochastic(const Tensor& dst, const Tensor& src, uint64_t seed) override;
  void scale(const Tensor& x, double alpha) override;
  void axpby(const Tensor& y, double a, const Tensor& x, double b) override;
  double sum(const Tensor& x) override;
  double sum_squares(const Tensor& x) override;

  void matmul(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
              double alpha, double beta) override;
  void matmul_batched(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                      bool trans_b, double alpha, double beta) override;
  void matmul_tf32(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                   double alpha, double beta) override;

  void embedding_forward(const Tensor& out, const Tensor& wte, const Tensor& tokens) override;
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp) override;
  void add_rmsnorm_forward(const Tensor& res_out, const Tensor& norm_out, const Tensor& rstd,
                           const Tensor& res_in, const Tensor& delta) override;
  void qknorm_rope_forward(const Tensor& qkv_out, const Tensor& rstd, const Tensor& qkv_in,
                           int n_head, float rope_base) override;
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                         int n_head) override;
  void relu2_forward(const Tensor& out, const Tensor& inp) override;
  void classifier(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                  int64_t vocab_size, double grad_scale, bool compute_grad) override;

  void embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) override;
  void rmsnorm_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                        const Tensor& rstd) override;
  void qknorm_rope_backward(const Tensor& dqkv_in, const Tensor& dqkv_out, const Tensor& qkv_in,
                            const Tensor& rstd, int n_head, float rope_base) override;
  void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                          const Tensor& out, const Tensor& lse, int n_head) override;
  void relu2_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) override;

  void adamw_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                    const AdamWArgs& args, const ComputeCopy& copy = {}) override;
  void lion_update(const Tensor& p, const Tensor& g, const Tensor& m, const LionArgs& args,
                   const ComputeCopy& copy = {}) override;

  int eigh(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a) override;
  void qr_orthonormal(const Tensor& q, const Tensor& a) override;
  void scale_rows_cols(const Tensor& out, const Tensor& inp, const Tensor& row_scale,
                       const Tensor& col_scale) override;
  void pow_clamped(const Tensor& out, const Tensor& inp, double exponent, double floor) override;
  void add_to_diagonal(const Tensor& a, double value) override;
  double trace(const Tensor& a) override;
  void transpose(const Tensor& out, const Tensor& inp) override;
  void gather_columns(const Tensor& out, const Tensor& inp, const Tensor& index) override;
  void gather_rows(const Tensor& out, const Tensor& inp, const Tensor& index) override;
  void column_dots(const Tensor& out, const Tensor& a, const Tensor& b) override;
  void ema_square(const Tensor& v, const Tensor& x, double beta) override;
  void adam_direction(const Tensor& out, const Tensor& m, const Tensor& v, double eps,
                      double bias_correction1, double bias_correction2) override;
  void sum_squares_batched(const Tensor& out, const Tensor& x) override;
  void trace_to(const Tensor& out, const Tensor& a) override;
  void scale_by_ratio(const Tensor& x, const Tensor& num, const Tensor& den, double power,
                      double c, double alpha, double eps) override;
  std::vector<int> eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                                const Tensor& a) override;
  std::vector<int> cholesky_batched(const Tensor& a) override;
  void solve_upper_right_batched(const Tensor& x, const Tensor& r) override;

 private:
  // matmul_tf32's rounded copies of its operands (grown on demand, kept between calls)
  std::vector<float> tf32_a_, tf32_b_;
  bool compute_copy_due(const char* op, const Tensor& p, const ComputeCopy& copy);
};

}  // namespace mousse
