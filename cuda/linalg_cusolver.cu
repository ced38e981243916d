// eigh (cusolverDnXsyevd), qr_orthonormal (geqrf + orgqr), cholesky_batched (Xpotrf) and
// solve_upper_right_batched (trsm) on row-major tensors.
//
// Layouts: cuSOLVER is column-major. A symmetric row-major [n, n] buffer is the same matrix read
// column-major, and its row-major lower triangle is the column-major UPPER triangle. syevd
// returns eigenvectors in the columns of its column-major output, i.e. in the ROWS of the
// row-major view, so the result is transposed into the output (eigenvector j in column j).
// For QR the row-major [m, n] input is transposed into a column-major m x n work matrix, and the
// column-major Q is transposed back, with column j negated where R[j, j] < 0 (diag(R) >= 0).
// Cholesky: the row-major upper triangle is the column-major LOWER one, so potrf(LOWER) gives
// column-major L with A = L Lᵀ, whose row-major view is R = Lᵀ (upper): A = Rᵀ R. And
// x ← x R⁻¹ on row-major x [m, n] is, column-major (xᵀ, n × m), xᵀ ← L⁻¹ xᵀ: trsm from the left
// with the lower triangle, no transpose.
#include <cmath>
#include <vector>

#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"

namespace mousse {
using namespace cuda;

namespace {

size_t align256(size_t b) { return (b + 255) & ~size_t(255); }

template <class Td, class Ts>
__global__ void convert_copy_kernel(Td* dst, const Ts* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = static_cast<Td>(src[i]);
}

// dst[r, c] (row-major [cols, rows]) = src[c, r] (row-major [rows, cols]) * (scale ? scale[r] : 1)
// where the scale indexes the destination column r... see call sites.
template <class Td, class Ts>
__global__ void transpose_scale_kernel(Td* dst, const Ts* src, const Ts* col_sign, int64_t rows,
                                       int64_t cols) {
  // src is row-major [rows, cols]; dst is row-major [cols, rows]; dst[j, i] = src[i, j] * sign[i]
  const int64_t n = rows * cols;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = k / rows, i = k - j * rows;  // dst index k = j * rows + i (coalesced writes)
    Ts v = src[i * cols + j];
    if (col_sign) v *= col_sign[i];
    dst[k] = static_cast<Td>(v);
  }
}

template <class T>
__global__ void finite_check_kernel(int* flag, const T* a, int64_t n, const T* b, int64_t nb) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n + nb;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T v = i < n ? a[i] : b[i - n];
    if (!isfinite(v)) *flag = 1;
  }
}

// flag (=) 1 if the row-major upper triangle (j >= i) of the n x n matrix a holds a non-finite
// value: the part cholesky_batched reads (a NaN in the ignored lower triangle is no failure).
template <class T>
__global__ void upper_finite_check_kernel(int* flag, const T* a, int64_t n) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * n;
       e += int64_t(gridDim.x) * blockDim.x)
    if (e % n >= e / n && !isfinite(a[e])) *flag = 1;
}

template <class T>
__global__ void diag_sign_kernel(T* sign, const T* work, int64_t m, int64_t n) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n;
       j += int64_t(gridDim.x) * blockDim.x)
    sign[j] = work[j * m + j] < T(0) ? T(-1) : T(1);
}

template <class F> void dispatch_fd2(DType dt, const char* op, F&& f) { dispatch_fd(dt, op, f); }

template <class T> struct SolverQr;
template <> struct SolverQr<float> {
  static cusolverStatus_t geqrf_size(cusolverDnHandle_t h, int m, int n, float* A, int lda, int* lw) {
    return cusolverDnSgeqrf_bufferSize(h, m, n, A, lda, lw);
  }
  static cusolverStatus_t orgqr_size(cusolverDnHandle_t h, int m, int n, int k, const float* A,
                                     int lda, const float* tau, int* lw) {
    return cusolverDnSorgqr_bufferSize(h, m, n, k, A, lda, tau, lw);
  }
  static cusolverStatus_t geqrf(cusolverDnHandle_t h, int m, int n, float* A, int lda, float* tau,
                                float* ws, int lw, int* info) {
    return cusolverDnSgeqrf(h, m, n, A, lda, tau, ws, lw, info);
  }
  static cusolverStatus_t orgqr(cusolverDnHandle_t h, int m, int n, int k, float* A, int lda,
                                const float* tau, float* ws, int lw, int* info) {
    return cusolverDnSorgqr(h, m, n, k, A, lda, tau, ws, lw, info);
  }
};
template <> struct SolverQr<double> {
  static cusolverStatus_t geqrf_size(cusolverDnHandle_t h, int m, int n, double* A, int lda, int* lw) {
    return cusolverDnDgeqrf_bufferSize(h, m, n, A, lda, lw);
  }
  static cusolverStatus_t orgqr_size(cusolverDnHandle_t h, int m, int n, int k, const double* A,
                                     int lda, const double* tau, int* lw) {
    return cusolverDnDorgqr_bufferSize(h, m, n, k, A, lda, tau, lw);
  }
  static cusolverStatus_t geqrf(cusolverDnHandle_t h, int m, int n, double* A, int lda,
                                double* tau, double* ws, int lw, int* info) {
    return cusolverDnDgeqrf(h, m, n, A, lda, tau, ws, lw, info);
  }
  static cusolverStatus_t orgqr(cusolverDnHandle_t h, int m, int n, int k, double* A, int lda,
                                const double* tau, double* ws, int lw, int* info) {
    return cusolverDnDorgqr(h, m, n, k, A, lda, tau, ws, lw, info);
  }
};

}  // namespace

int CudaOps::eigh_impl(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a) {
  const char* op = "eigh";
  require_cuda(eigenvectors, op, "eigenvectors");
  require_cuda(eigenvalues, op, "eigenvalues");
  require_cuda(a, op, "a");
  const int64_t n = a.cols();  // a [n, n], eigenvectors [n, n], eigenvalues [n]: the Ops front's
  for (const Tensor* t : {&eigenvectors, &eigenvalues, &a})
    if (t->dtype != DType::f32 && t->dtype != DType::f64)
      fail("cuda ", op, ": tensors must be f32 or f64, got ", dtype_name(t->dtype));
  if (n == 0) return 0;
  const bool any_f64 = a.dtype == DType::f64 || eigenvectors.dtype == DType::f64 ||
                       eigenvalues.dtype == DType::f64;
  if (!any_f64) {
    const int rc = eigh_in(eigenvectors, eigenvalues, a, false);
    if (rc == 0) return 0;
  }
  return eigh_in(eigenvectors, eigenvalues, a, true);
}

int CudaOps::eigh_in(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a,
                     bool use_f64) {
  const int64_t n = a.cols();
  const size_t esz = use_f64 ? sizeof(double) : sizeof(float);
  const cudaDataType_t dt = use_f64 ? CUDA_R_64F : CUDA_R_32F;
  const size_t b_work = align256(esz * n * n), b_w = align256(esz * n);
  char* base = static_cast<char*>(scratch(b_work + b_w + 256));
  void* work = base;
  void* w = base + b_work;
  int* flags = reinterpret_cast<int*>(base + b_work + b_w);  // [0] info, [1] non-finite
  CUDA_CHECK(cudaMemsetAsync(flags, 0, 2 * sizeof(int), stream_));
  // work (=) a, converted to the working precision (the buffer is the column-major matrix too).
  auto to_work = [&](auto tw) {
    using W = decltype(tw);
    dispatch_fd(a.dtype, "eigh", [&](auto ta) {
      using A = decltype(ta);
      convert_copy_kernel<W, A><<<grid_for(n * n), 256, 0, stream_>>>(
          static_cast<W*>(work), static_cast<const A*>(a.data), n * n);
      CUDA_CHECK_LAUNCH();
    });
  };
  if (use_f64) to_work(double{});
  else to_work(float{});

  size_t dev_bytes = 0, host_bytes = 0;
  CUSOLVER_CHECK(cusolverDnXsyevd_bufferSize(solver_, solver_params_, CUSOLVER_EIG_MODE_VECTOR,
                                             CUBLAS_FILL_MODE_UPPER, n, dt, work, n, dt, w, dt,
                                             &dev_bytes, &host_bytes));
  void* dws = solver_ws(dev_bytes, host_bytes);
  CUSOLVER_CHECK(cusolverDnXsyevd(solver_, solver_params_, CUSOLVER_EIG_MODE_VECTOR,
                                  CUBLAS_FILL_MODE_UPPER, n, dt, work, n, dt, w, dt, dws, dev_bytes,
                                  host_bytes ? solver_host_ws_.data() : nullptr, host_bytes,
                                  flags));
  if (use_f64)
    finite_check_kernel<double><<<grid_for(n * n + n), 256, 0, stream_>>>(
        flags + 1, static_cast<const double*>(work), n * n, static_cast<const double*>(w), n);
  else
    finite_check_kernel<float><<<grid_for(n * n + n), 256, 0, stream_>>>(
        flags + 1, static_cast<const float*>(work), n * n, static_cast<const float*>(w), n);
  CUDA_CHECK_LAUNCH();
  int* h = static_cast<int*>(host_staging(2 * sizeof(int)));
  CUDA_CHECK(cudaMemcpyAsync(h, flags, 2 * sizeof(int), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  const int info = h[0], nonfinite = h[1];
  if (info != 0) return info;
  if (nonfinite) return -1000;

  // eigenvectors[i, j] (=) work_cm(i, j) = work[j * n + i]: the row-major transpose of work.
  auto from_work = [&](auto tw) {
    using W = decltype(tw);
    dispatch_fd(eigenvectors.dtype, "eigh", [&](auto to) {
      using O = decltype(to);
      transpose_scale_kernel<O, W><<<grid_for(n * n), 256, 0, stream_>>>(
          static_cast<O*>(eigenvectors.data), static_cast<const W*>(work), nullptr, n, n);
      CUDA_CHECK_LAUNCH();
    });
    dispatch_fd(eigenvalues.dtype, "eigh", [&](auto to) {
      using O = decltype(to);
      convert_copy_kernel<O, W><<<grid_for(n), 256, 0, stream_>>>(
          static_cast<O*>(eigenvalues.data), static_cast<const W*>(w), n);
      CUDA_CHECK_LAUNCH();
    });
  };
  if (use_f64) from_work(double{});
  else from_work(float{});
  return 0;
}

void CudaOps::qr_orthonormal_impl(const Tensor& q, const Tensor& a) {
  const char* op = "qr_orthonormal";
  require_cuda(q, op, "q");
  require_cuda(a, op, "a");
  const int64_t m = a.rows(), n = a.cols();  // m >= n, q like a: checked by the Ops front
  if (q.dtype != a.dtype) fail("cuda ", op, ": q and a must share a dtype");
  if (m > INT32_MAX || n > INT32_MAX) fail("cuda ", op, ": too large");
  if (m * n == 0) return;
  dispatch_fd(a.dtype, op, [&](auto t) {
    using T = decltype(t);
    const size_t b_work = align256(sizeof(T) * m * n), b_vec = align256(sizeof(T) * n);
    char* base = static_cast<char*>(scratch(b_work + 2 * b_vec + 256));
    T* work = reinterpret_cast<T*>(base);
    T* tau = reinterpret_cast<T*>(base + b_work);
    T* sign = reinterpret_cast<T*>(base + b_work + b_vec);
    int* info = reinterpret_cast<int*>(base + b_work + 2 * b_vec);
    // Column-major m x n work (work[j * m + i] = a[i, j]) = row-major transpose of a.
    transpose_scale_kernel<T, T><<<grid_for(m * n), 256, 0, stream_>>>(
        work, static_cast<const T*>(a.data), nullptr, m, n);
    CUDA_CHECK_LAUNCH();
    const int mi = static_cast<int>(m), ni = static_cast<int>(n);
    int lw1 = 0, lw2 = 0;
    CUSOLVER_CHECK(SolverQr<T>::geqrf_size(solver_, mi, ni, work, mi, &lw1));
    CUSOLVER_CHECK(SolverQr<T>::orgqr_size(solver_, mi, ni, ni, work, mi, tau, &lw2));
    const int lw = lw1 > lw2 ? lw1 : lw2;
    T* ws = static_cast<T*>(solver_ws(sizeof(T) * size_t(lw > 0 ? lw : 1)));
    CUSOLVER_CHECK(SolverQr<T>::geqrf(solver_, mi, ni, work, mi, tau, ws, lw, info));
    diag_sign_kernel<T><<<grid_for(n), 256, 0, stream_>>>(sign, work, m, n);
    CUDA_CHECK_LAUNCH();
    CUSOLVER_CHECK(SolverQr<T>::orgqr(solver_, mi, ni, ni, work, mi, tau, ws, lw, info));
    // q[i, j] (=) work[j * m + i] * sign[j]: work read as row-major [n, m], transposed, with its
    // row j (= column j of Q) scaled by sign[j].
    transpose_scale_kernel<T, T><<<grid_for(m * n), 256, 0, stream_>>>(
        static_cast<T*>(q.data), work, sign, n, m);
    CUDA_CHECK_LAUNCH();
  });
}

namespace {

// Row-major strict lower triangle (i > j) of every [n, n] slice (=) 0.
template <class T>
__global__ void zero_strict_lower_kernel(T* a, int64_t batch, int64_t n) {
  const int64_t total = batch * n * n;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = k % (n * n), i = e / n, j = e - i * n;
    if (i > j) a[k] = T(0);
  }
}

template <class T> struct Trsm;
template <> struct Trsm<float> {
  static cublasStatus_t left_lower(cublasHandle_t h, int m, int n, const float* a, float* b) {
    const float one = 1.0f;
    return cublasStrsm(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                       CUBLAS_DIAG_NON_UNIT, m, n, &one, a, m, b, m);
  }
};
template <> struct Trsm<double> {
  static cublasStatus_t left_lower(cublasHandle_t h, int m, int n, const double* a, double* b) {
    const double one = 1.0;
    return cublasDtrsm(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                       CUBLAS_DIAG_NON_UNIT, m, n, &one, a, m, b, m);
  }
};

}  // namespace

std::vector<int> CudaOps::cholesky_batched_impl(const Tensor& a) {
  const char* op = "cholesky_batched";
  require_cuda(a, op, "a");
  // a [b, n, n] or [n, n]: checked by the Ops front
  const int64_t b = a.shape.ndim == 3 ? a.shape[0] : 1, n = a.shape[a.shape.ndim - 1];
  if (a.dtype != DType::f32 && a.dtype != DType::f64)
    fail("cuda ", op, ": a must be f32 or f64, got ", dtype_name(a.dtype));
  std::vector<int> status(size_t(b), 0);
  if (b * n == 0) return status;
  const cudaDataType_t dt = a.dtype == DType::f64 ? CUDA_R_64F : CUDA_R_32F;
  // flags[k]: potrf's info for slice k; flags[b + k]: 1 if slice k held a non-finite value.
  int* flags = static_cast<int*>(scratch(2 * size_t(b) * sizeof(int)));
  CUDA_CHECK(cudaMemsetAsync(flags, 0, 2 * size_t(b) * sizeof(int), stream_));
  size_t dev_bytes = 0, host_bytes = 0;
  CUSOLVER_CHECK(cusolverDnXpotrf_bufferSize(solver_, solver_params_, CUBLAS_FILL_MODE_LOWER, n,
                                             dt, a.data, n, dt, &dev_bytes, &host_bytes));
  void* dws = solver_ws(dev_bytes, host_bytes);
  dispatch_fd(a.dtype, op, [&](auto t) {
    using T = decltype(t);
    T* base = static_cast<T*>(a.data);
    for (int64_t k = 0; k < b; k++) {
      T* slice = base + k * n * n;
      upper_finite_check_kernel<T><<<grid_for(n * n), 256, 0, stream_>>>(flags + b + k, slice, n);
      CUDA_CHECK_LAUNCH();
      CUSOLVER_CHECK(cusolverDnXpotrf(solver_, solver_params_, CUBLAS_FILL_MODE_LOWER, n, dt,
                                      slice, n, dt, dws, dev_bytes,
                                      host_bytes ? solver_host_ws_.data() : nullptr, host_bytes,
                                      flags + k));
    }
    zero_strict_lower_kernel<T><<<grid_for(b * n * n), 256, 0, stream_>>>(base, b, n);
    CUDA_CHECK_LAUNCH();
  });
  int* h = static_cast<int*>(host_staging(2 * size_t(b) * sizeof(int)));
  CUDA_CHECK(cudaMemcpyAsync(h, flags, 2 * size_t(b) * sizeof(int), cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  // -1 for a non-finite input (potrf's info on it means nothing), as the CPU twin reports
  for (int64_t k = 0; k < b; k++) status[size_t(k)] = h[b + k] ? -1 : h[k];
  return status;
}

void CudaOps::solve_upper_right_batched_impl(const Tensor& x, const Tensor& r) {
  const char* op = "solve_upper_right_batched";
  require_cuda(x, op, "x");
  require_cuda(r, op, "r");
  // r [b, n, n] or [n, n], x [b, m, n] (or [m, n]), apart: checked by the Ops front
  const int64_t b = r.shape.ndim == 3 ? r.shape[0] : 1, n = r.shape[r.shape.ndim - 1];
  if (x.dtype != r.dtype || (x.dtype != DType::f32 && x.dtype != DType::f64))
    fail("cuda ", op, ": x and r must both be f32 or both f64, got ", dtype_name(x.dtype),
         " and ", dtype_name(r.dtype));
  const int64_t m = b > 0 && n > 0 ? x.numel() / (b * n) : 0;
  if (m * n == 0) return;
  if (m > INT32_MAX || n > INT32_MAX) fail("cuda ", op, ": too large");
  dispatch_fd(x.dtype, op, [&](auto t) {
    using T = decltype(t);
    const T* rs = static_cast<const T*>(r.data);
    T* xs = static_cast<T*>(x.data);
    for (int64_t k = 0; k < b; k++)
      CUBLAS_CHECK(Trsm<T>::left_lower(blas_, int(n), int(m), rs + k * n * n, xs + k * m * n));
  });
}

}  // namespace mousse
