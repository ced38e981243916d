#pragma once
// CudaOps: the CUDA implementation of the Ops interface (backend/ops.h).
//
// One stream owned by the backend; every op is asynchronous on it except to_host, sum,
// sum_squares, trace and eigh (which return host values). Library handles and workspaces
// (cuBLASLt 64 MiB, cuSOLVER, a scratch buffer for small temporaries) are created once; the
// scratch buffer only ever grows (a one-time cudaMalloc on first use of a larger size, outside
// the steady state of the training loop).
//
// Each op of MOUSSE_OPS (backend/ops.h) is implemented as `name_impl`, declared below by
// expanding that list: the Ops front has checked the arguments' shapes before it is called, and
// the body checks what is CUDA's own (dtype combinations, device residency, launch limits).
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

  void reserve_eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                            const Tensor& a) override;

  cudaStream_t stream() const { return stream_; }
  // cuDNN's fused attention for bf16 (attention_cudnn.h), created on first use.
  cuda::CudnnAttention& cudnn_attention();

 private:
  MOUSSE_OPS(MOUSSE_OP_OVERRIDE, MOUSSE_OP_OVERRIDE)

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
  // eigh in one working precision (f32, or f64 when use_f64): the eigh op tries f32 first.
  int eigh_in(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a,
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

// Device residency, checked by the op implementations (host side).
void require_cuda(const Tensor& t, const char* op, const char* what);

}  // namespace mousse
