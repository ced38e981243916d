#pragma once
// Causal attention through cuDNN's fused SDPA (flash attention on the tensor cores), for bf16.
//
// Why cuDNN and not our own kernel for bf16: on Hopper the fast path for attention is wgmma +
// TMA with warp specialisation (FlashAttention-3); cuDNN ships such kernels, maintained by
// NVIDIA, and PyTorch's SDPA uses the same library. Our own flash kernels (attention_forward.cu,
// attention_backward.cu) run on the CUDA cores in f32 arithmetic: they stay for f32 (the mode
// the tests compare against the CPU), for head dims or shapes cuDNN has no engine for, and for
// machines without cuDNN. Measured on an H100 (162m, B=16, T=1024, bf16): our kernels 6.6 and
// 6.9 TFLOP/s forward and backward, about 90% of the training step.
//
// cuDNN is opened at run time (dlopen of libcudnn.so.9 through the frontend's dynamic loading),
// so the binary runs without it. MOUSSE_ATTENTION selects: auto (default: cuDNN for bf16 when
// it loads and supports the shape, else ours), native (always ours), cudnn (cuDNN or an error).
//
// Layouts are ours (attention_common.cuh): qkv [B, T, 3C], out / dout [B, T, C], lse [B, H, T]
// f32 natural-log log-sum-exp of the scaled scores, which is exactly cuDNN's "Stats" tensor, so
// a forward of one path and a backward of the other agree. Graphs are built once per shape
// (B, T, H, hd) on first use and cached; their workspace is one device buffer that grows only
// when a new shape needs more (one cudaMalloc outside the steady state).
#include <cuda_runtime.h>

#include <memory>
#include <string>

namespace mousse {
namespace cuda {

class CudnnAttention {
 public:
  enum class Mode { automatic, native, cudnn };

  CudnnAttention();
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  Mode mode() const { return mode_; }
  // Runs cuDNN's fused attention on `stream`; false when cuDNN is not to be used for this call
  // (mode native, library missing, or no engine for this shape: the caller runs its own kernel).
  // Errors in mode cudnn, and failures after a graph was built, are fatal with a message.
  bool forward(void* out, float* lse, const void* qkv, int B, int T, int H, int hd,
               cudaStream_t stream);
  bool backward(void* dqkv, const void* dout, const void* qkv, const void* out, const float* lse,
                int B, int T, int H, int hd, cudaStream_t stream);

 private:
  struct Impl;
  bool ready();  // library loaded and handle created (tried once)
  Mode mode_ = Mode::automatic;
  bool tried_ = false;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cuda
}  // namespace mousse
