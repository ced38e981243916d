// matmul / matmul_batched through cuBLASLt.
//
// Row-major out[M,N] = op(a) @ op(b) is computed as the column-major product
// outᵀ[N,M] = op(b)ᵀ @ op(a)ᵀ: a row-major buffer read column-major is its transpose, so cuBLASLt's
// A operand is b's buffer (transposed iff trans_b) and its B operand is a's buffer (iff trans_a).
// Supported dtypes (a and b equal): bf16 -> bf16 or f32 out, f32 -> f32, f64 -> f64; accumulation
// and scaling in f32 (f64 for f64). f32 uses CUBLAS_COMPUTE_32F (no TF32): the fp32 mode is the
// accurate testing mode.
#include <cstdio>
#include <cstring>

#include "check.h"
#include "cuda_ops.h"

namespace mousse {

namespace {

cudaDataType_t lt_type(DType dt, const char* op) {
  switch (dt) {
    case DType::f32: return CUDA_R_32F;
    case DType::f64: return CUDA_R_64F;
    case DType::bf16: return CUDA_R_16BF;
    default: fail("cuda ", op, ": unsupported dtype ", dtype_name(dt));
  }
}

uint32_t pointer_alignment(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a >>= 1;
  return a;
}

struct LtDesc {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t A = nullptr, B = nullptr, C = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDesc() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (C) cublasLtMatrixLayoutDestroy(C);
    if (B) cublasLtMatrixLayoutDestroy(B);
    if (A) cublasLtMatrixLayoutDestroy(A);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void set_batch(cublasLtMatrixLayout_t l, int64_t batch, int64_t stride) {
  if (batch <= 1) return;
  int32_t bc = static_cast<int32_t>(batch);
  CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)));
  CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                &stride, sizeof(stride)));
}

}  // namespace

void CudaOps::gemm(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                   double alpha, double beta, int64_t batch, const char* opname) {
  require_cuda(out, opname, "out");
  require_cuda(a, opname, "a");
  require_cuda(b, opname, "b");
  int64_t ar, ac, br, bc, orr, oc;
  if (batch > 0) {
    if (a.shape.ndim != 3 || b.shape.ndim != 3 || out.shape.ndim != 3)
      fail("cuda ", opname, ": expected 3-D [batch, rows, cols] tensors, got a ", a.shape.str(),
           " b ", b.shape.str(), " out ", out.shape.str());
    if (a.shape[0] != batch || b.shape[0] != batch || out.shape[0] != batch)
      fail("cuda ", opname, ": batch sizes differ: a ", a.shape.str(), " b ", b.shape.str(),
           " out ", out.shape.str());
    ar = a.shape[1]; ac = a.shape[2];
    br = b.shape[1]; bc = b.shape[2];
    orr = out.shape[1]; oc = out.shape[2];
  } else {
    ar = a.rows(); ac = a.cols();
    br = b.rows(); bc = b.cols();
    orr = out.rows(); oc = out.cols();
  }
  const int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
  const int64_t N = trans_b ? br : bc, Kb = trans_b ? bc : br;
  if (K != Kb || orr != M || oc != N)
    fail("cuda ", opname, ": shape mismatch: op(a) is ", M, "x", K, ", op(b) is ", Kb, "x", N,
         ", out is ", orr, "x", oc, " (a ", a.shape.str(), trans_a ? "ᵀ" : "", ", b ",
         b.shape.str(), trans_b ? "ᵀ" : "", ")");
  if (M == 0 || N == 0) return;
  if (a.dtype != b.dtype)
    fail("cuda ", opname, ": a and b must share a dtype, got ", dtype_name(a.dtype), " and ",
         dtype_name(b.dtype));
  const bool ok_types = (a.dtype == DType::bf16 && (out.dtype == DType::bf16 || out.dtype == DType::f32)) ||
                        (a.dtype == DType::f32 && out.dtype == DType::f32) ||
                        (a.dtype == DType::f64 && out.dtype == DType::f64);
  if (!ok_types)
    fail("cuda ", opname, ": unsupported dtypes a/b ", dtype_name(a.dtype), " -> out ",
         dtype_name(out.dtype), " (supported: bf16->bf16, bf16->f32, f32->f32, f64->f64)");
  if (K == 0) {  // out = beta * out
    if (beta == 0.0) fill(out, 0.0);
    else if (beta != 1.0) scale(out, beta);
    return;
  }
  const bool f64 = a.dtype == DType::f64;
  const cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
  const cudaDataType_t scale_type = f64 ? CUDA_R_64F : CUDA_R_32F;
  const cudaDataType_t tin = lt_type(a.dtype, opname), tout = lt_type(out.dtype, opname);
  const cublasOperation_t opA = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opB = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int64_t nb = batch > 0 ? batch : 1;

  LtDesc d;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.op, compute, scale_type));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
  // Column-major views: A = b's buffer (bc rows x br cols), B = a's buffer (ac x ar), C = D (N x M).
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.A, tin, bc, br, bc));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.B, tin, ac, ar, ac));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.C, tout, N, M, N));
  set_batch(d.A, nb, br * bc);
  set_batch(d.B, nb, ar * ac);
  set_batch(d.C, nb, M * N);

  const uint32_t al_a = pointer_alignment(b.data), al_b = pointer_alignment(a.data),
                 al_c = pointer_alignment(out.data);
  char key[256];
  snprintf(key, sizeof(key), "%d%d%d|%d%d|%lld,%lld,%lld,%lld|%u,%u,%u|%d", int(a.dtype),
           int(out.dtype), int(f64), int(trans_a), int(trans_b), (long long)M, (long long)N,
           (long long)K, (long long)nb, al_a, al_b, al_c, beta != 0.0 ? 1 : 0);
  auto it = algo_cache_.find(key);
  if (it == algo_cache_.end()) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d.pref));
    uint64_t ws = lt_workspace_bytes_;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &ws, sizeof(ws)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));
    cublasLtMatmulHeuristicResult_t result;
    std::memset(&result, 0, sizeof(result));
    int returned = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_, d.op, d.A, d.B, d.C, d.C, d.pref, 1, &result,
                                                &returned));
    if (returned == 0)
      fail("cuda ", opname, ": cuBLASLt found no algorithm for ", key,
           " (dtypes/shape/alignment unsupported)");
    it = algo_cache_.emplace(key, result.algo).first;
  }
  if (f64) {
    CUBLAS_CHECK(cublasLtMatmul(lt_, d.op, &alpha, b.data, d.A, a.data, d.B, &beta, out.data, d.C,
                                out.data, d.C, &it->second, lt_workspace_, lt_workspace_bytes_,
                                stream_));
  } else {  // f32 scaling (CUBLAS_COMPUTE_32F)
    const float al = float(alpha), be = float(beta);
    CUBLAS_CHECK(cublasLtMatmul(lt_, d.op, &al, b.data, d.A, a.data, d.B, &be, out.data, d.C,
                                out.data, d.C, &it->second, lt_workspace_, lt_workspace_bytes_,
                                stream_));
  }
}

void CudaOps::matmul(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                     bool trans_b, double alpha, double beta) {
  gemm(out, a, trans_a, b, trans_b, alpha, beta, 0, "matmul");
}

void CudaOps::matmul_batched(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                             bool trans_b, double alpha, double beta) {
  if (a.shape.ndim != 3)
    fail("cuda matmul_batched: expected 3-D [batch, rows, cols] tensors, got a ", a.shape.str());
  if (a.shape[0] == 0) return;
  gemm(out, a, trans_a, b, trans_b, alpha, beta, a.shape[0], "matmul_batched");
}

}  // namespace mousse
