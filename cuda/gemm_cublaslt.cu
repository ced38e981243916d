// matmul / matmul_batched through cuBLASLt.
//
// Row-major out[M,N] = op(a) @ op(b) is computed as the column-major product
// outᵀ[N,M] = op(b)ᵀ @ op(a)ᵀ: a row-major buffer read column-major is its transpose, so cuBLASLt's
// A operand is b's buffer (transposed iff trans_b) and its B operand is a's buffer (iff trans_a).
// Supported dtypes (a and b equal): bf16 -> bf16 or f32 out, f32 -> f32, f64 -> f64; accumulation
// and scaling in f32 (f64 for f64). f32 uses CUBLAS_COMPUTE_32F (no TF32): the fp32 mode is the
// accurate testing mode; matmul_tf32 asks for CUBLAS_COMPUTE_32F_FAST_TF32 explicitly.
//
// Each distinct problem (dtypes, transposes, sizes, batch, alignments, beta = 0 or not) gets
// one plan, made on its first call and kept: the cuBLASLt descriptors and the heuristic's
// algorithm. A training step repeats the same few dozen problems, and the matrix optimizers
// issue hundreds of small GEMMs per step, so building descriptors on every call would be host
// time spent on every GEMM.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

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

// The largest power of two (up to 256) dividing v: the alignment of an address or a stride.
uint32_t alignment_of(uintptr_t v) {
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a >>= 1;
  return a;
}
uint32_t pointer_alignment(const void* p) { return alignment_of(reinterpret_cast<uintptr_t>(p)); }

struct Preference {
  cublasLtMatmulPreference_t p = nullptr;
  ~Preference() {
    if (p) cublasLtMatmulPreferenceDestroy(p);
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

struct GemmPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t A = nullptr, B = nullptr, C = nullptr;
  cublasLtMatmulAlgo_t algo;
  GemmPlan() = default;
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;
  ~GemmPlan() {
    if (C) cublasLtMatrixLayoutDestroy(C);
    if (B) cublasLtMatrixLayoutDestroy(B);
    if (A) cublasLtMatrixLayoutDestroy(A);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void CudaOps::gemm(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                   double alpha, double beta, int64_t batch, bool tf32, const char* opname) {
  require_cuda(out, opname, "out");
  require_cuda(a, opname, "a");
  require_cuda(b, opname, "b");
  // The shapes multiply (checked by the Ops front; batched: all 3-D with one batch size).
  int64_t ar, ac, br, bc;
  if (batch > 0) {
    ar = a.shape[1]; ac = a.shape[2];
    br = b.shape[1]; bc = b.shape[2];
  } else {
    ar = a.rows(); ac = a.cols();
    br = b.rows(); bc = b.cols();
  }
  const int64_t M = trans_a ? ac : ar, K = trans_a ? ar : ac;
  const int64_t N = trans_b ? br : bc;
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
  if (tf32 && a.dtype != DType::f32)
    fail("cuda ", opname, ": f32 tensors only (TF32 is a way to multiply f32), got ",
         dtype_name(a.dtype));
  if (K == 0) {  // out = beta * out
    if (beta == 0.0) fill_impl(out, 0.0);
    else if (beta != 1.0) scale_impl(out, beta);
    return;
  }
  const bool f64 = a.dtype == DType::f64;
  const int64_t nb = batch > 0 ? batch : 1;
  // A batched operand is as aligned as its first matrix and its stride allow.
  const size_t esz_in = dtype_size(a.dtype), esz_out = dtype_size(out.dtype);
  auto aligned = [&](const void* p, int64_t stride_elems, size_t esz) {
    const uint32_t al = pointer_alignment(p);
    return nb > 1 ? std::min(al, alignment_of(uintptr_t(stride_elems) * esz)) : al;
  };
  const uint32_t al_a = aligned(b.data, br * bc, esz_in), al_b = aligned(a.data, ar * ac, esz_in),
                 al_c = aligned(out.data, M * N, esz_out);
  char key[256];
  snprintf(key, sizeof(key), "%d%d%d%d|%d%d|%lld,%lld,%lld,%lld|%u,%u,%u|%d", int(a.dtype),
           int(out.dtype), int(f64), int(tf32), int(trans_a), int(trans_b), (long long)M,
           (long long)N, (long long)K, (long long)nb, al_a, al_b, al_c, beta != 0.0 ? 1 : 0);
  auto it = gemm_plans_.find(key);
  if (it == gemm_plans_.end()) {
    auto plan = std::make_shared<GemmPlan>();
    const cublasComputeType_t compute = f64  ? CUBLAS_COMPUTE_64F
                                        : tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                               : CUBLAS_COMPUTE_32F;
    const cudaDataType_t scale_type = f64 ? CUDA_R_64F : CUDA_R_32F;
    const cudaDataType_t tin = lt_type(a.dtype, opname), tout = lt_type(out.dtype, opname);
    const cublasOperation_t opA = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t opB = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->op, compute, scale_type));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
    // Column-major views: A = b's buffer (bc rows x br cols), B = a's buffer (ac x ar), C = D (N x M).
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->A, tin, bc, br, bc));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->B, tin, ac, ar, ac));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->C, tout, N, M, N));
    set_batch(plan->A, nb, br * bc);
    set_batch(plan->B, nb, ar * ac);
    set_batch(plan->C, nb, M * N);

    Preference pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.p));
    uint64_t ws = lt_workspace_bytes_;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &ws, sizeof(ws)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c)));
    cublasLtMatmulHeuristicResult_t result;
    std::memset(&result, 0, sizeof(result));
    int returned = 0;
    // No algorithm for the problem is reported as NOT_SUPPORTED (or as none returned): name the
    // problem rather than the bare status.
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
        lt_, plan->op, plan->A, plan->B, plan->C, plan->C, pref.p, 1, &result, &returned);
    // (a returned algorithm carries its own state, which must be SUCCESS too)
    if (st == CUBLAS_STATUS_NOT_SUPPORTED ||
        (st == CUBLAS_STATUS_SUCCESS && (returned == 0 || result.state != CUBLAS_STATUS_SUCCESS)))
      fail("cuda ", opname, ": cuBLASLt found no algorithm for out ", out.shape.str(), " ",
           dtype_name(out.dtype), " = a ", a.shape.str(), trans_a ? "ᵀ" : "", " x b ",
           b.shape.str(), trans_b ? "ᵀ" : "", " ", dtype_name(a.dtype), tf32 ? " (TF32)" : "",
           ", alignments ", al_a, "/", al_b, "/", al_c, " bytes, workspace ",
           lt_workspace_bytes_, " bytes: unsupported dtypes, shape or alignment");
    CUBLAS_CHECK(st);
    plan->algo = result.algo;
    it = gemm_plans_.emplace(key, std::move(plan)).first;
  }
  const GemmPlan& plan = *it->second;
  if (f64) {
    CUBLAS_CHECK(cublasLtMatmul(lt_, plan.op, &alpha, b.data, plan.A, a.data, plan.B, &beta,
                                out.data, plan.C, out.data, plan.C, &plan.algo, lt_workspace_,
                                lt_workspace_bytes_, stream_));
  } else {  // f32 scaling (CUBLAS_COMPUTE_32F, or its TF32 variant)
    const float al = float(alpha), be = float(beta);
    CUBLAS_CHECK(cublasLtMatmul(lt_, plan.op, &al, b.data, plan.A, a.data, plan.B, &be, out.data,
                                plan.C, out.data, plan.C, &plan.algo, lt_workspace_,
                                lt_workspace_bytes_, stream_));
  }
}

void CudaOps::matmul_impl(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                          bool trans_b, double alpha, double beta) {
  gemm(out, a, trans_a, b, trans_b, alpha, beta, 0, false, "matmul");
}

void CudaOps::matmul_batched_impl(const Tensor& out, const Tensor& a, bool trans_a,
                                  const Tensor& b, bool trans_b, double alpha, double beta) {
  if (a.shape[0] == 0) return;  // (a is 3-D: checked by the Ops front)
  gemm(out, a, trans_a, b, trans_b, alpha, beta, a.shape[0], false, "matmul_batched");
}

void CudaOps::matmul_tf32_impl(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                               bool trans_b, double alpha, double beta) {
  gemm(out, a, trans_a, b, trans_b, alpha, beta, 0, true, "matmul_tf32");
}

}  // namespace mousse
