// Causal attention through cuDNN's fused SDPA (see attention_cudnn.h for why and when).
#include "attention_cudnn.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <unordered_map>

#include <cudnn_frontend.h>

#include "check.h"

// The frontend's dynamic loading resolves every cuDNN call through this handle (it is declared
// extern by the frontend and defined by its user).
namespace cudnn_frontend {
void* cudnn_dlhandle = nullptr;
}

namespace mousse {
namespace cuda {

namespace fe = cudnn_frontend;

namespace {

// Tensor uids of the variant packs.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV };

CudnnAttention::Mode mode_from_env() {
  const char* s = std::getenv("MOUSSE_ATTENTION");
  if (!s || !*s || !std::strcmp(s, "auto")) return CudnnAttention::Mode::automatic;
  if (!std::strcmp(s, "native")) return CudnnAttention::Mode::native;
  if (!std::strcmp(s, "cudnn")) return CudnnAttention::Mode::cudnn;
  fail("MOUSSE_ATTENTION='", s, "': expected auto, native or cudnn");
}

// q, k, v (or dq, dk, dv) of head h inside qkv [B, T, 3C]: dims [B, H, T, hd].
std::vector<int64_t> qkv_strides(int T, int H, int hd) {
  const int64_t C3 = 3 * int64_t(H) * hd;
  return {int64_t(T) * C3, hd, C3, 1};
}
// out / dout [B, T, C] as [B, H, T, hd].
std::vector<int64_t> out_strides(int T, int H, int hd) {
  const int64_t C = int64_t(H) * hd;
  return {int64_t(T) * C, hd, C, 1};
}

std::shared_ptr<fe::graph::Tensor_attributes> input(fe::graph::Graph& g, const char* name,
                                                    int64_t uid, std::vector<int64_t> dims,
                                                    std::vector<int64_t> strides) {
  return g.tensor(fe::graph::Tensor_attributes()
                      .set_name(name)
                      .set_uid(uid)
                      .set_dim(std::move(dims))
                      .set_stride(std::move(strides)));
}

}  // namespace

struct CudnnAttention::Impl {
  cudnnHandle_t handle = nullptr;
  // (B, T, H, hd, backward?) -> built graph, or nullptr where cuDNN had no engine.
  std::map<std::tuple<int, int, int, int, bool>, std::shared_ptr<fe::graph::Graph>> graphs;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;

  ~Impl() {
    if (workspace) cudaFree(workspace);
    if (handle) fe::detail::destroy_handle(handle);
  }

  // The graph for one shape and direction: built on first use; nullptr when unsupported. The
  // frontend reports some failures by exception (e.g. it cannot load a CUDA runtime of its own):
  // in the automatic mode those also fall back to Mousse's kernels for this shape.
  fe::graph::Graph* graph(int B, int T, int H, int hd, bool backward, Mode mode) {
    const auto key = std::make_tuple(B, T, H, hd, backward);
    auto it = graphs.find(key);
    if (it != graphs.end()) return it->second.get();
    const char* dir = backward ? "backward" : "forward";
    try {
      return build(key, B, T, H, hd, backward, mode, dir);
    } catch (const Error&) {
      throw;  // our own messages (fail) say what to do already
    } catch (const std::exception& e) {
      if (mode == Mode::cudnn)
        fail("cuDNN attention ", dir, " (B ", B, ", T ", T, ", H ", H, ", head dim ", hd,
             "): ", e.what(), ". Unset MOUSSE_ATTENTION (or set it to native) to use Mousse's "
             "own kernels.");
      std::printf("attention: cuDNN failed to build the %s graph for B %d, T %d, H %d, head dim "
                  "%d (%s); using Mousse's own kernel for this shape\n",
                  dir, B, T, H, hd, e.what());
      graphs[key] = nullptr;
      return nullptr;
    }
  }

  fe::graph::Graph* build(const std::tuple<int, int, int, int, bool>& key, int B, int T, int H,
                          int hd, bool backward, Mode mode, const char* dir) {
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    const std::vector<int64_t> dims = {B, H, T, hd};
    const float scale = 1.0f / std::sqrt(float(hd));
    auto q = input(*g, "q", kQ, dims, qkv_strides(T, H, hd));
    auto k = input(*g, "k", kK, dims, qkv_strides(T, H, hd));
    auto v = input(*g, "v", kV, dims, qkv_strides(T, H, hd));
    if (!backward) {
      auto attrs = fe::graph::SDPA_attributes()
                       .set_name("attention_forward")
                       .set_generate_stats(true)
                       .set_causal_mask(true)
                       .set_attn_scale(scale);
      auto [o, stats] = g->sdpa(q, k, v, attrs);
      o->set_output(true).set_uid(kO).set_dim(dims).set_stride(out_strides(T, H, hd));
      stats->set_output(true)
          .set_uid(kStats)
          .set_data_type(fe::DataType_t::FLOAT)
          .set_dim({B, H, T, 1})
          .set_stride({int64_t(H) * T, T, 1, 1});
    } else {
      auto o = input(*g, "o", kO, dims, out_strides(T, H, hd));
      auto dout = input(*g, "dout", kDO, dims, out_strides(T, H, hd));
      auto stats = g->tensor(fe::graph::Tensor_attributes()
                                 .set_name("stats")
                                 .set_uid(kStats)
                                 .set_dim({B, H, T, 1})
                                 .set_stride({int64_t(H) * T, T, 1, 1})
                                 .set_data_type(fe::DataType_t::FLOAT));
      // Deterministic: the same inputs give the same gradients, run after run.
      auto attrs = fe::graph::SDPA_backward_attributes()
                       .set_name("attention_backward")
                       .set_causal_mask(true)
                       .set_attn_scale(scale)
                       .set_deterministic_algorithm(true);
      auto [dq, dk, dv] = g->sdpa_backward(q, k, v, o, dout, stats, attrs);
      dq->set_output(true).set_uid(kDQ).set_dim(dims).set_stride(qkv_strides(T, H, hd));
      dk->set_output(true).set_uid(kDK).set_dim(dims).set_stride(qkv_strides(T, H, hd));
      dv->set_output(true).set_uid(kDV).set_dim(dims).set_stride(qkv_strides(T, H, hd));
    }
    auto status = g->build(handle, {fe::HeurMode_t::A});
    if (!status.is_good()) {
      if (mode == Mode::cudnn)
        fail("cuDNN attention ", dir, " (B ", B, ", T ", T, ", H ", H, ", head dim ", hd,
             "): no engine: ", status.get_message(),
             ". Unset MOUSSE_ATTENTION (or set it to native) to use Mousse's own kernels.");
      std::printf("attention: cuDNN has no %s engine for B %d, T %d, H %d, head dim %d (%s); "
                  "using Mousse's own kernel for this shape\n",
                  dir, B, T, H, hd, status.get_message().c_str());
      graphs[key] = nullptr;
      return nullptr;
    }
    int64_t ws = 0;
    auto ws_status = g->get_workspace_size(ws);
    if (!ws_status.is_good()) fail("cuDNN attention: get_workspace_size: ", ws_status.get_message());
    if (size_t(ws) > workspace_bytes) {
      CUDA_CHECK(cudaDeviceSynchronize());  // the old workspace may still be in use
      if (workspace) CUDA_CHECK(cudaFree(workspace));
      workspace = nullptr;
      CUDA_CHECK(cudaMalloc(&workspace, size_t(ws)));
      workspace_bytes = size_t(ws);
    }
    graphs[key] = g;
    return g.get();
  }

  void execute(fe::graph::Graph* g, std::unordered_map<int64_t, void*>& pack, cudaStream_t stream,
               const char* what) {
    const cudnnStatus_t s = fe::detail::set_stream(handle, stream);
    if (s != CUDNN_STATUS_SUCCESS) fail("cuDNN attention: cudnnSetStream failed (status ", int(s), ")");
    fe::error_object status;
    try {
      status = g->execute(handle, pack, workspace);
    } catch (const std::exception& e) {
      fail("cuDNN attention ", what, ": execute threw: ", e.what());
    }
    if (!status.is_good()) fail("cuDNN attention ", what, ": execute failed: ", status.get_message());
    CUDA_CHECK_LAUNCH();
  }
};

CudnnAttention::CudnnAttention() : mode_(mode_from_env()) {}
CudnnAttention::~CudnnAttention() = default;

bool CudnnAttention::ready() {
  if (tried_) return impl_ != nullptr;
  tried_ = true;
  if (mode_ == Mode::native) return false;
  // libcudnn.so.9 from the loader's search path (LD_LIBRARY_PATH, e.g. a pip nvidia-cudnn wheel's
  // lib folder, or the CUDA toolkit's lib folder).
  const char* lib = "libcudnn.so.9";
  void* h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
  std::string why;
  if (!h) {
    const char* e = dlerror();
    why = std::string("cannot open ") + lib + ": " + (e ? e : "unknown error");
  } else {
    fe::cudnn_dlhandle = h;
    auto impl = std::make_unique<Impl>();
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    try {
      s = fe::detail::create_handle(&impl->handle);
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (why.empty() && s != CUDNN_STATUS_SUCCESS)
      why = "cudnnCreate failed (status " + std::to_string(int(s)) + ")";
    if (why.empty()) {
      impl_ = std::move(impl);
      const size_t v = fe::detail::get_backend_version();
      std::printf("attention: cuDNN %zu.%zu.%zu fused SDPA for bf16 (MOUSSE_ATTENTION=native "
                  "for Mousse's own kernels)\n",
                  v / 10000, (v / 100) % 100, v % 100);
      return true;
    }
  }
  if (mode_ == Mode::cudnn)
    fail("MOUSSE_ATTENTION=cudnn but cuDNN is not usable: ", why,
         ". Put libcudnn.so.9 on LD_LIBRARY_PATH (pip install nvidia-cudnn-cu13 provides it), or "
         "unset MOUSSE_ATTENTION.");
  std::printf("attention: cuDNN not available (%s); using Mousse's own kernels\n", why.c_str());
  return false;
}

bool CudnnAttention::forward(void* out, float* lse, const void* qkv, int B, int T, int H, int hd,
                             cudaStream_t stream) {
  if (!ready()) return false;
  fe::graph::Graph* g = impl_->graph(B, T, H, hd, false, mode_);
  if (!g) return false;
  const int64_t C = int64_t(H) * hd;
  auto* base = static_cast<char*>(const_cast<void*>(qkv));
  std::unordered_map<int64_t, void*> pack = {
      {kQ, base}, {kK, base + 2 * C}, {kV, base + 4 * C}, {kO, out}, {kStats, lse}};
  impl_->execute(g, pack, stream, "forward");
  return true;
}

bool CudnnAttention::backward(void* dqkv, const void* dout, const void* qkv, const void* out,
                              const float* lse, int B, int T, int H, int hd, cudaStream_t stream) {
  if (!ready()) return false;
  fe::graph::Graph* g = impl_->graph(B, T, H, hd, true, mode_);
  if (!g) return false;
  const int64_t C = int64_t(H) * hd;  // bf16: 2 bytes per element
  auto* base = static_cast<char*>(const_cast<void*>(qkv));
  auto* dbase = static_cast<char*>(dqkv);
  std::unordered_map<int64_t, void*> pack = {
      {kQ, base},
      {kK, base + 2 * C},
      {kV, base + 4 * C},
      {kO, const_cast<void*>(out)},
      {kDO, const_cast<void*>(dout)},
      {kStats, const_cast<float*>(lse)},
      {kDQ, dbase},
      {kDK, dbase + 2 * C},
      {kDV, dbase + 4 * C}};
  impl_->execute(g, pack, stream, "backward");
  return true;
}

}  // namespace cuda
}  // namespace mousse
