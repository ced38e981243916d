// CudaOps construction, memory, scratch, and the factory functions.
#include "cuda_ops.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <vector>

#include "attention_cudnn.h"
#include "check.h"

namespace mousse {

namespace {
__global__ void probe_kernel(int* p) {
  if (p) *p = 1;
}

// Dense (no sparsity) bf16 tensor-core peak by product name, in FLOP/s; 0 = unknown (MFU is then
// n/a rather than wrong). Names are matched as whole words ("A100" is not "RTX A1000"), the
// specific variants (PCIe, NVL) before the family.
double known_bf16_peak(const std::string& name) {
  auto has = [&](const char* s) {  // s as a word: no letter or digit right before or after it
    const size_t n = std::strlen(s);
    for (size_t at = name.find(s); at != std::string::npos; at = name.find(s, at + 1)) {
      const bool start = at == 0 || !std::isalnum(static_cast<unsigned char>(name[at - 1]));
      const bool end = at + n == name.size() || !std::isalnum(static_cast<unsigned char>(name[at + n]));
      if (start && end) return true;
    }
    return false;
  };
  if (has("H100") || has("H800")) {
    if (has("PCIe")) return 756e12;
    if (has("NVL")) return 835e12;
    return 989e12;  // SXM5
  }
  if (has("H200")) return has("NVL") ? 835e12 : 989e12;
  if (has("GH200")) return 989e12;
  if (has("A100") || has("A800")) return 312e12;
  if (has("L40S")) return 362e12;
  if (has("A10G") || has("A10")) return 125e12;
  if (has("B200")) return 2250e12;
  return 0.0;
}
}  // namespace

void require_cuda(const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) fail("cuda ", op, ": tensor '", what, "' is undefined");
  if (t.device != Device::cuda)
    fail("cuda ", op, ": tensor '", what, "' lives on ", device_name(t.device),
         ", expected cuda");
}

CudaOps::CudaOps(size_t lt_workspace_bytes, size_t scratch_bytes) {
  CUDA_CHECK(cudaGetDevice(&device_));
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  name_ = std::string("cuda (") + prop.name + ", sm_" + std::to_string(prop.major) +
          std::to_string(prop.minor) + ", " + std::to_string(prop.multiProcessorCount) +
          " SMs, " + std::to_string(prop.totalGlobalMem >> 30) + " GiB)";
  peak_flops_bf16_ = known_bf16_peak(prop.name);
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  CUBLAS_CHECK(cublasCreate(&blas_));
  CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  CUSOLVER_CHECK(cusolverDnCreate(&solver_));
  CUSOLVER_CHECK(cusolverDnSetStream(solver_, stream_));
  CUSOLVER_CHECK(cusolverDnCreateParams(&solver_params_));
  lt_workspace_bytes_ = lt_workspace_bytes;
  if (lt_workspace_bytes_ > 0) CUDA_CHECK(cudaMalloc(&lt_workspace_, lt_workspace_bytes_));
  // Initial scratch / staging sized so that most ops never grow them.
  scratch(scratch_bytes);
  host_staging(1ull << 20);
}

cuda::CudnnAttention& CudaOps::cudnn_attention() {
  if (!cudnn_attention_) cudnn_attention_ = std::make_unique<cuda::CudnnAttention>();
  return *cudnn_attention_;
}

CudaOps::~CudaOps() {
  // Destructors must not throw: best effort.
  if (stream_) cudaStreamSynchronize(stream_);
  cudnn_attention_.reset();
  gemm_plans_.clear();
  for (HostRegion& r : host_regions_) {
    cudaEventDestroy(r.last_read);
    cudaHostUnregister(r.p);
  }
  if (lt_workspace_) cudaFree(lt_workspace_);
  if (scratch_) cudaFree(scratch_);
  if (rope_) cudaFree(rope_);
  if (solver_ws_) cudaFree(solver_ws_);
  if (host_) cudaFreeHost(host_);
  if (solver_params_) cusolverDnDestroyParams(solver_params_);
  if (solver_) cusolverDnDestroy(solver_);
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
  if (stream_) cudaStreamDestroy(stream_);
}

void* CudaOps::alloc(size_t bytes) {
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("cuda alloc: cudaMalloc of ", bytes, " bytes failed (", cudaGetErrorString(e), "); ",
         free_b, " of ", total_b, " bytes free on the device: reduce the batch size or the model");
  }
  return p;
}

void CudaOps::free(void* p) {
  if (!p) return;
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  CUDA_CHECK(cudaFree(p));
}

void CudaOps::to_host(void* dst, const Tensor& src) {
  require_cuda(src, "to_host", "src");
  CUDA_CHECK(cudaMemcpyAsync(dst, src.data, src.bytes(), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaOps::from_host(const Tensor& dst, const void* src) {
  require_cuda(dst, "from_host", "dst");
  // From pageable memory the call returns once src has been staged, so src may be reused.
  // From a registered (page-locked) region it is true DMA: the event lets the owner wait
  // (wait_host_buffer) before overwriting the source.
  HostRegion* r = find_host_region(src);
  MOUSSE_CHECK(!r || static_cast<const char*>(src) + dst.bytes() <= r->p + r->bytes,
               "cuda from_host: the copy runs past the end of a registered host region");
  CUDA_CHECK(cudaMemcpyAsync(dst.data, src, dst.bytes(), cudaMemcpyHostToDevice, stream_));
  if (r) CUDA_CHECK(cudaEventRecord(r->last_read, stream_));
}

void CudaOps::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

std::unique_ptr<Ops> CudaOps::make_worker() const {
  CUDA_CHECK(cudaSetDevice(device_));  // the worker's stream and handles on this device
  // The worker decomposes (cuSOLVER, its own workspace, grown by reserve_eigh_batched): it
  // needs little cuBLASLt workspace or scratch. Still a complete backend if given GEMMs.
  return std::make_unique<CudaOps>(size_t(4) << 20, size_t(1) << 20);
}

void CudaOps::bind_thread() { CUDA_CHECK(cudaSetDevice(device_)); }

CudaOps::HostRegion* CudaOps::find_host_region(const void* p) {
  const char* c = static_cast<const char*>(p);
  for (HostRegion& r : host_regions_)
    if (c >= r.p && c < r.p + r.bytes) return &r;
  return nullptr;
}

void CudaOps::register_host_memory(void* p, size_t bytes) {
  if (!p || bytes == 0) return;
  if (find_host_region(p)) fail("cuda register_host_memory: region at ", p, " already registered");
  HostRegion r{static_cast<char*>(p), bytes, nullptr};
  // Page-locking is an optimisation: if it is refused (e.g. the range shares a page with another
  // registered buffer: cudaErrorHostMemoryAlreadyRegistered), the region stays pageable and
  // from_host keeps the plain contract for it.
  const cudaError_t err = cudaHostRegister(p, bytes, cudaHostRegisterDefault);
  if (err != cudaSuccess) {
    cudaGetLastError();
    std::fprintf(stderr, "cuda: could not page-lock %zu bytes of host memory (%s); uploads from "
                 "it stay synchronous\n", bytes, cudaGetErrorString(err));
    return;
  }
  CUDA_CHECK(cudaEventCreateWithFlags(&r.last_read, cudaEventDisableTiming));
  host_regions_.push_back(r);
}

void CudaOps::unregister_host_memory(void* p) {
  for (size_t i = 0; i < host_regions_.size(); i++) {
    if (host_regions_[i].p != p) continue;
    CUDA_CHECK(cudaEventSynchronize(host_regions_[i].last_read));
    CUDA_CHECK(cudaEventDestroy(host_regions_[i].last_read));
    CUDA_CHECK(cudaHostUnregister(p));
    host_regions_.erase(host_regions_.begin() + long(i));
    return;
  }
}

void CudaOps::wait_host_buffer(const void* p) {
  if (HostRegion* r = find_host_region(p)) CUDA_CHECK(cudaEventSynchronize(r->last_read));
}

size_t CudaOps::device_memory_used() const {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return total_b - free_b;
}

size_t CudaOps::device_memory_total() const {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return total_b;
}

void* CudaOps::scratch(size_t bytes) {
  if (bytes <= scratch_bytes_) return scratch_;
  size_t want = scratch_bytes_ ? scratch_bytes_ : 1;
  while (want < bytes) want *= 2;
  if (scratch_) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  CUDA_CHECK(cudaMalloc(&scratch_, want));
  scratch_bytes_ = want;
  return scratch_;
}

void* CudaOps::solver_ws(size_t dev_bytes, size_t host_bytes) {
  dev_bytes = std::max<size_t>(dev_bytes, 1);
  const bool grow_dev = dev_bytes > solver_ws_bytes_;
  const bool grow_host = host_bytes > solver_host_ws_.size();
  // cuSOLVER work still queued on the stream may use the old workspaces: let it finish first.
  if ((grow_dev && solver_ws_) || (grow_host && !solver_host_ws_.empty()))
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (grow_host) solver_host_ws_.resize(host_bytes);
  if (grow_dev) {
    if (solver_ws_) CUDA_CHECK(cudaFree(solver_ws_));
    solver_ws_ = nullptr;
    solver_ws_bytes_ = 0;
    CUDA_CHECK(cudaMalloc(&solver_ws_, dev_bytes));
    solver_ws_bytes_ = dev_bytes;
  }
  return solver_ws_;
}

void* CudaOps::host_staging(size_t bytes) {
  if (bytes <= host_bytes_) return host_;
  size_t want = host_bytes_ ? host_bytes_ : 1;
  while (want < bytes) want *= 2;
  if (host_) {
    CUDA_CHECK(cudaStreamSynchronize(stream_));
    CUDA_CHECK(cudaFreeHost(host_));
    host_ = nullptr;
    host_bytes_ = 0;
  }
  CUDA_CHECK(cudaMallocHost(&host_, want));
  host_bytes_ = want;
  return host_;
}

double CudaOps::finish_partials(const double* d_partials, int n) {
  double* h = static_cast<double*>(host_staging(sizeof(double) * n));
  CUDA_CHECK(cudaMemcpyAsync(h, d_partials, sizeof(double) * n, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  double s = 0.0;
  for (int i = 0; i < n; i++) s += h[i];
  return s;
}

std::unique_ptr<Ops> make_cuda_ops() {
  if (!cuda_available())
    fail("device 'cuda' requested, but no usable GPU was found (no device, a driver problem, "
         "or this binary was not compiled for the GPU's architecture: rebuild with "
         "-DMOUSSE_CUDA_ARCH=<sm>); set device to 'cpu' to run on the CPU");
  return std::make_unique<CudaOps>();
}

bool cuda_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0) {
    cudaGetLastError();
    return false;
  }
  // A kernel image for this GPU must exist (MOUSSE_CUDA_ARCH matches the device).
  cudaFuncAttributes attr;
  if (cudaFuncGetAttributes(&attr, probe_kernel) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return true;
}

}  // namespace mousse
