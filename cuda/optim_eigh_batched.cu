// eigh_batched: a batch of symmetric eigendecompositions with one host synchronisation.
//
// With cusolverDnXsyevBatched (cuSOLVER of CUDA 12.6+; looked up at run time with dlsym, so the
// binary still loads against an older libcusolver; a size it refuses falls back to the loop
// below) the whole batch is one call, in place on `a`
// (a row-major lower triangle is the column-major upper triangle; the column-major eigenvectors
// left in `a` are transposed into the row-major output). Without it, or with
// MOUSSE_EIGH_BATCHED=0 in the environment, each matrix goes through Xsyevd in turn, still
// without a synchronisation in between: the infos and the finiteness flags of all matrices are
// read back once at the end.
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend/op_checks.h"
#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"

namespace mousse {
using namespace cuda;

namespace {

using XsyevBatchedFn = cusolverStatus_t (*)(cusolverDnHandle_t, cusolverDnParams_t,
                                            cusolverEigMode_t, cublasFillMode_t, int64_t,
                                            cudaDataType, void*, int64_t, cudaDataType, void*,
                                            cudaDataType, void*, size_t, void*, size_t, int*,
                                            int64_t);
using XsyevBatchedSizeFn = cusolverStatus_t (*)(cusolverDnHandle_t, cusolverDnParams_t,
                                                cusolverEigMode_t, cublasFillMode_t, int64_t,
                                                cudaDataType, const void*, int64_t, cudaDataType,
                                                const void*, cudaDataType, size_t*, size_t*,
                                                int64_t);

struct BatchedApi {
  XsyevBatchedFn run = nullptr;
  XsyevBatchedSizeFn size = nullptr;
};

const BatchedApi& batched_api() {
  static const BatchedApi api = [] {
    BatchedApi a;
    const char* env = std::getenv("MOUSSE_EIGH_BATCHED");
    if (env && std::strcmp(env, "0") == 0) return a;
    a.run = reinterpret_cast<XsyevBatchedFn>(dlsym(RTLD_DEFAULT, "cusolverDnXsyevBatched"));
    a.size = reinterpret_cast<XsyevBatchedSizeFn>(
        dlsym(RTLD_DEFAULT, "cusolverDnXsyevBatched_bufferSize"));
    if (!a.run || !a.size) a = BatchedApi{};
    return a;
  }();
  return api;
}

// flags[i] = 1 where slice i of x ([b, len]) or of w ([b, wlen]) holds a non-finite value.
template <class T>
__global__ void finite_flags_kernel(int* flags, const T* x, int64_t len, const T* w, int64_t wlen,
                                    int64_t b) {
  const int64_t n = b * (len + wlen);
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < n;
       k += int64_t(gridDim.x) * blockDim.x) {
    T v;
    int64_t slice;
    if (k < b * len) {
      v = x[k];
      slice = k / len;
    } else {
      v = w[k - b * len];
      slice = (k - b * len) / wlen;
    }
    if (!isfinite(v)) flags[slice] = 1;
  }
}

// out[s][i][j] = in[s][j][i] for b slices of [n, n].
template <class T>
__global__ void batched_transpose_kernel(T* out, const T* in, int64_t n, int64_t b) {
  const int64_t total = b * n * n;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < total;
       k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t s = k / (n * n), r = k - s * n * n, i = r / n, j = r - i * n;
    out[k] = in[s * n * n + j * n + i];
  }
}

// The arguments of eigh_batched: b matrices of n x n in dt.
struct EighProblem {
  int64_t b = 0, n = 0;
  cudaDataType_t dt = CUDA_R_32F;
  size_t esz = sizeof(float);
};

// The CUDA side of the arguments (devices, dtypes); their shapes are checked by the Ops front
// (check_eigh_batched in backend/op_checks.h; reserve_eigh_batched calls it itself).
EighProblem cuda_eigh_batched(const char* op, const Tensor& eigenvectors,
                              const Tensor& eigenvalues, const Tensor& a) {
  require_cuda(eigenvectors, op, "eigenvectors");
  require_cuda(eigenvalues, op, "eigenvalues");
  require_cuda(a, op, "a");
  EighProblem p;
  p.b = a.shape[0];
  p.n = a.shape[1];
  if (eigenvectors.dtype != a.dtype || eigenvalues.dtype != a.dtype ||
      (a.dtype != DType::f32 && a.dtype != DType::f64))
    fail("cuda ", op, ": a, eigenvectors, eigenvalues must all be f32 or all f64");
  const bool f64 = a.dtype == DType::f64;
  p.dt = f64 ? CUDA_R_64F : CUDA_R_32F;
  p.esz = f64 ? sizeof(double) : sizeof(float);
  return p;
}

struct WorkspaceBytes {
  size_t dev = 0, host = 0;
};

// The batched driver's workspace for the whole batch; false without the driver or when it
// refuses the problem.
bool batched_workspace(cusolverDnHandle_t h, cusolverDnParams_t prm, const EighProblem& p,
                       const void* a, const void* w, WorkspaceBytes& ws) {
  const BatchedApi& api = batched_api();
  return api.size && api.size(h, prm, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, p.n, p.dt,
                              a, p.n, p.dt, w, p.dt, &ws.dev, &ws.host,
                              p.b) == CUSOLVER_STATUS_SUCCESS;
}

// Xsyevd's workspace for one matrix (the loop reuses it).
WorkspaceBytes syevd_workspace(cusolverDnHandle_t h, cusolverDnParams_t prm, const EighProblem& p,
                               const void* a, const void* w) {
  WorkspaceBytes ws;
  CUSOLVER_CHECK(cusolverDnXsyevd_bufferSize(h, prm, CUSOLVER_EIG_MODE_VECTOR,
                                             CUBLAS_FILL_MODE_UPPER, p.n, p.dt, a, p.n, p.dt, w,
                                             p.dt, &ws.dev, &ws.host));
  return ws;
}

}  // namespace

void CudaOps::reserve_eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                                   const Tensor& a) {
  const char* op = "reserve_eigh_batched";
  check_eigh_batched(op, eigenvectors, eigenvalues, a);  // (not an op with a front)
  const EighProblem p = cuda_eigh_batched(op, eigenvectors, eigenvalues, a);
  if (p.b == 0 || p.n == 0) return;
  // Enough for either path (the batched driver may still refuse the problem at the call).
  WorkspaceBytes ws = syevd_workspace(solver_, solver_params_, p, a.data, eigenvalues.data);
  WorkspaceBytes bw;
  if (batched_workspace(solver_, solver_params_, p, a.data, eigenvalues.data, bw)) {
    ws.dev = std::max(ws.dev, bw.dev);
    ws.host = std::max(ws.host, bw.host);
  }
  solver_ws(ws.dev, ws.host);
  scratch(sizeof(int) * size_t(2 * p.b));
  host_staging(sizeof(int) * size_t(2 * p.b));
}

std::vector<int> CudaOps::eigh_batched_impl(const Tensor& eigenvectors,
                                            const Tensor& eigenvalues, const Tensor& a) {
  const char* op = "eigh_batched";
  const EighProblem p = cuda_eigh_batched(op, eigenvectors, eigenvalues, a);
  const int64_t b = p.b, n = p.n;
  std::vector<int> status(size_t(b), 0);
  if (b == 0 || n == 0) return status;
  const cudaDataType_t dt = p.dt;
  const size_t esz = p.esz;

  // infos [b] then finiteness flags [b], read back together at the end
  int* flags = static_cast<int*>(scratch(sizeof(int) * size_t(2 * b)));
  CUDA_CHECK(cudaMemsetAsync(flags, 0, sizeof(int) * size_t(2 * b), stream_));
  int* infos = flags;
  int* nonfinite = flags + b;

  // The batched driver when the library has it and accepts this problem (it may refuse a size:
  // then, like without it, one Xsyevd per matrix on the same stream).
  const BatchedApi& api = batched_api();
  bool done = false;
  WorkspaceBytes bw;
  if (api.run && batched_workspace(solver_, solver_params_, p, a.data, eigenvalues.data, bw)) {
    void* dws = solver_ws(bw.dev, bw.host);
    const cusolverStatus_t st =
        api.run(solver_, solver_params_, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, n, dt,
                a.data, n, dt, eigenvalues.data, dt, dws, bw.dev,
                bw.host ? solver_host_ws_.data() : nullptr, bw.host, infos, b);
    // A refusal (checked before any work) falls back to Xsyevd below; any other error may
    // come after `a` was overwritten, so the fallback would decompose damaged input: fail.
    if (st != CUSOLVER_STATUS_INVALID_VALUE && st != CUSOLVER_STATUS_NOT_SUPPORTED)
      CUSOLVER_CHECK(st);
    done = st == CUSOLVER_STATUS_SUCCESS;
  }
  if (!done) {
    const WorkspaceBytes ws = syevd_workspace(solver_, solver_params_, p, a.data, eigenvalues.data);
    void* dws = solver_ws(ws.dev, ws.host);
    for (int64_t i = 0; i < b; i++) {
      char* ai = static_cast<char*>(a.data) + size_t(i * n * n) * esz;
      char* wi = static_cast<char*>(eigenvalues.data) + size_t(i * n) * esz;
      CUSOLVER_CHECK(cusolverDnXsyevd(solver_, solver_params_, CUSOLVER_EIG_MODE_VECTOR,
                                      CUBLAS_FILL_MODE_UPPER, n, dt, ai, n, dt, wi, dt, dws,
                                      ws.dev, ws.host ? solver_host_ws_.data() : nullptr,
                                      ws.host, infos + i));
    }
  }
  dispatch_fd(a.dtype, op, [&](auto t) {
    using T = decltype(t);
    finite_flags_kernel<T><<<grid_for(b * (n * n + n)), 256, 0, stream_>>>(
        nonfinite, static_cast<const T*>(a.data), n * n, static_cast<const T*>(eigenvalues.data),
        n, b);
    CUDA_CHECK_LAUNCH();
    batched_transpose_kernel<T><<<grid_for(b * n * n), 256, 0, stream_>>>(
        static_cast<T*>(eigenvectors.data), static_cast<const T*>(a.data), n, b);
    CUDA_CHECK_LAUNCH();
  });
  int* h = static_cast<int*>(host_staging(sizeof(int) * size_t(2 * b)));
  CUDA_CHECK(cudaMemcpyAsync(h, flags, sizeof(int) * size_t(2 * b), cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (int64_t i = 0; i < b; i++)
    status[size_t(i)] = h[i] != 0 ? h[i] : (h[b + i] ? -1000 : 0);
  return status;
}

}  // namespace mousse
