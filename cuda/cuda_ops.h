#pragma once
// CudaOps: the CUDA implementation of the Ops interface (backend/ops.h).
//
// One stream owned by the backend; every op is asynchronous on it except to_host, sum,
// sum_squares, trace and eigh (which return host values). Library handles and workspaces
// (cuBLASLt 64 MiB, cuSOLVER, a scratch buffer for small temporaries) are created once; the
// scratch buffer only ever grows (a one-time cudaMalloc on first use of a larger size, outside
// the steady state of the training loop).
//
// Methods are implemented in one file per area:
//   cuda_ops.cu            construction, memory, make_cuda_ops(), cuda_available()
//   elementwise.cu         fill, copy, copy_stochastic, scale, axpby, sum, sum_squares, relu2
//   gemm_cublaslt.cu       matmul, matmul_batched, matmul_tf32
//   norms.cu               rmsnorm (fwd/bwd), add_rmsnorm, qknorm_rope (fwd/bwd)
//   attention_forward.cu   flash-style causal attention forward
//   attention_backward.cu  flash-style causal attention backward
//   attention_cudnn.cpp    cuDNN fused attention (bf16; tensor cores), used first when present
//   classifier.cu          fused softmax cross-entropy (+ gradient in place)
//   embedding.cu           embedding forward / deterministic backward
//   optim_kernels.cu       adamw, lion, ema_square, adam_direction, scale_rows_cols,
//                          pow_clamped, add_to_diagonal, trace, transpose, gather_rows/columns,
//                          column_dots, sum_squares_batched, trace_to, scale_by_ratio (device scalars)
//   linalg_cusolver.cu     eigh (cusolverDnXsyevd), qr_orthonormal (geqrf + orgqr),
//                          cholesky_batched (Xpotrf), solve_upper_right_batched (trsm)
//   optim_eigh_batched.cu  eigh_batched (cusolverDnXsyevBatched when the library has it)
#include <cuda_runtime.h>
#include <cublasLt.h>
#include <cusolverDn.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "backend/ops.h"

namespace mousse {
namespace cuda {
class CudnnAttention;
}
struct GemmPlan;  // one GEMM problem's cuBLASLt descriptors and algorithm (gemm_cublaslt.cu)

class CudaOps final : public Ops {
 public:
  // lt_workspace_bytes: cuBLASLt's workspace (64 MiB for the training stream; a worker that
  // only decomposes gets a small one); scratch_bytes: the initial scratch (grows on demand).
  explicit CudaOps(size_t lt_workspace_bytes = 64ull << 20, size_t scratch_bytes = 16ull << 20);
  ~CudaOps() override;
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  Device device() const override { return Device::cuda; }
  std::string name() const override { return name_; }
  std::unique_ptr<Ops> make_worker() const override;
  void bind_thread() override;

  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void to_host(void* dst, const Tensor& src) override;
  void from_host(const Tensor& dst, const void* src) override;
  void synchronize() override;
  void register_host_memory(void* p, size_t bytes) override;
  void unregister_host_memory(void* p) override;
  void wait_host_buffer(const void* p) override;
  double peak_flops_bf16() const override { return peak_flops_bf16_; }
  size_t device_memory_used() const override;
  size_t device_memory_total() const override;

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
  void reserve_eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                            const Tensor& a) override;
  std::vector<int> cholesky_batched(const Tensor& a) override;
  void solve_upper_right_batched(const Tensor& x, const Tensor& r) override;

  cudaStream_t stream() const { return stream_; }
  // cuDNN's fused attention for bf16 (attention_cudnn.h), created on first use.
  cuda::CudnnAttention& cudnn_attention();

 private:
  // Device scratch of at least `bytes` (256-byte aligned). Grows (one cudaMalloc, after a
  // device synchronisation) only when a larger size is requested than ever before; contents are
  // not preserved across calls. Valid until the next scratch() call.
  void* scratch(size_t bytes);
  // Pinned host staging buffer of at least `bytes` (grows like scratch()).
  void* host_staging(size_t bytes);
  // Sums `n` per-block double partials sitting in device memory: copies them to the host in one
  // transfer, synchronises, adds them in order (deterministic).
  double finish_partials(const double* d_partials, int n);
  // The one GEMM behind matmul, matmul_batched (batch > 0) and matmul_tf32 (tf32).
  void gemm(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
            double alpha, double beta, int64_t batch, bool tf32, const char* op);
  // Returns a device [T, hd/2] float2 table of (cos, sin) for RoPE, recomputed (in double) only
  // when (T, hd, base) change.
  const void* rope_table(int64_t T, int hd, float base);
  int eigh_impl(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a,
                bool use_f64);

  int device_ = 0;
  std::string name_;
  double peak_flops_bf16_ = 0.0;
  // Page-locked host regions (register_host_memory): uploads from them are asynchronous; the
  // event marks the last queued copy that reads the region.
  struct HostRegion {
    char* p;
    size_t bytes;
    cudaEvent_t last_read;
  };
  std::vector<HostRegion> host_regions_;
  HostRegion* find_host_region(const void* p);
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;  // classic cuBLAS, for trsm (solve_upper_right_batched)
  cusolverDnHandle_t solver_ = nullptr;
  cusolverDnParams_t solver_params_ = nullptr;
  void* lt_workspace_ = nullptr;
  size_t lt_workspace_bytes_ = 0;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  void* host_ = nullptr;
  size_t host_bytes_ = 0;
  // cuSOLVER workspaces (device and host), grown on first use.
  // cuSOLVER's device workspace of at least dev_bytes, and its host workspace
  // (solver_host_ws_) of at least host_bytes: both grow, never shrink.
  void* solver_ws(size_t dev_bytes, size_t host_bytes = 0);
  void* solver_ws_ = nullptr;
  size_t solver_ws_bytes_ = 0;
  std::vector<char> solver_host_ws_;
  void* rope_ = nullptr;
  size_t rope_bytes_ = 0;
  std::tuple<int64_t, int, float> rope_key_{-1, 0, 0.f};
  // A key describing a GEMM problem -> its cuBLASLt descriptors and algorithm (gemm_cublaslt.cu).
  std::map<std::string, std::shared_ptr<GemmPlan>> gemm_plans_;
  std::unique_ptr<cuda::CudnnAttention> cudnn_attention_;
};

// Checks shared by the op implementations (host side).
void require_cuda(const Tensor& t, const char* op, const char* what);
void require_same_numel(const Tensor& a, const Tensor& b, const char* op);

}  // namespace mousse
