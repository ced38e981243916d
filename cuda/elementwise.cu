// fill, copy, copy_stochastic, scale, axpby, sum, sum_squares, relu2 forward/backward.
#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"
#include "vec.cuh"

namespace mousse {
using namespace cuda;

namespace {

template <class T>
__global__ void fill_kernel(T* x, int64_t n, double value) {
  const T v = to_elem_d<T>(value);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = v;
}
template <>
__global__ void fill_kernel<int32_t>(int32_t* x, int64_t n, double value) {
  const int32_t v = static_cast<int32_t>(value);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = v;
}

template <class Td, class Ts>
__global__ void convert_kernel(Td* dst, const Ts* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same<Ts, double>::value) dst[i] = to_elem_d<Td>(src[i]);
    else st(dst, i, ld(src, i));
  }
}

// One thread per VEC floats (16-byte loads, 8-byte stores when VEC = 4; for_each_vector); element
// i rounds with hash_u32(seed, i) whatever VEC is (store_stochastic).
template <int VEC>
__global__ void stochastic_kernel(bf16* dst, const float* src, int64_t n, uint64_t seed) {
  for_each_vector<VEC>(
      n,
      [&](auto i0) {  // generic: instantiated only when VEC > 1
        float x[VEC];
        load_vec<VEC>(x, src + i0);
        store_stochastic<VEC>(dst + i0, x, seed, i0);
      },
      [&](int64_t i) {
        const float x[1] = {src[i]};
        store_stochastic<1>(dst + i, x, seed, i);
      });
}

template <class T>
__global__ void scale_kernel(T* x, int64_t n, double alpha) {
  using A = acc_t<T>;
  const A a = A(alpha);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    st(x, i, a * ld(x, i));
}

template <class Ty, class Tx>
__global__ void axpby_kernel(Ty* y, double a, const Tx* x, double b, int64_t n) {
  using A = acc_t<Ty>;
  const A aa = A(a), bb = A(b);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    // b == 0 ignores y (even NaN garbage), as BLAS beta == 0 does.
    A yv = bb == A(0) ? A(0) : bb * ld(y, i);
    st(y, i, aa * A(ld(x, i)) + yv);
  }
}

// Per-block partial sums (of x or x²) in double; partials[blockIdx.x] (=).
template <class T, bool Square>
__global__ void sum_partials_kernel(double* partials, const T* x, int64_t n) {
  double s = 0.0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    double v = double(ld(x, i));
    s += Square ? v * v : v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// relu2: one thread per VEC-element vector (16-byte accesses when VEC = kVec; for_each_vector).
template <int VEC, class To, class Ti>
__global__ void relu2_fwd_kernel(To* out, const Ti* inp, int64_t n) {
  for_each_vector<VEC>(
      n,
      [&](auto i0) {  // generic: instantiated only when VEC > 1
        float x[VEC];
        load_vec<VEC>(x, inp + i0);
#pragma unroll
        for (int i = 0; i < VEC; i++) {
          const float r = x[i] > 0 ? x[i] : 0.f;
          x[i] = r * r;
        }
        store_vec<VEC>(out + i0, x);
      },
      [&](int64_t i) {
        auto x = ld(inp, i);
        auto r = x > 0 ? x : decltype(x)(0);
        st(out, i, r * r);
      });
}

// dinp = dout * 2 relu(inp) (dinp may alias dout: each element is read before it is written).
template <int VEC, class Td, class Tg, class Ti>
__global__ void relu2_bwd_kernel(Td* dinp, const Tg* dout, const Ti* inp, int64_t n) {
  for_each_vector<VEC>(
      n,
      [&](auto i0) {  // generic: instantiated only when VEC > 1
        float x[VEC], g[VEC];
        load_vec<VEC>(x, inp + i0);
        load_vec<VEC>(g, dout + i0);
#pragma unroll
        for (int i = 0; i < VEC; i++) {
          const float r = x[i] > 0 ? x[i] : 0.f;
          g[i] = g[i] * (r + r);
        }
        store_vec<VEC>(dinp + i0, g);
      },
      [&](int64_t i) {
        auto x = ld(inp, i);
        auto r = x > 0 ? x : decltype(x)(0);
        st(dinp, i, ld(dout, i) * (r + r));
      });
}

constexpr int kSumThreads = 256;
constexpr int kSumMaxBlocks = 1024;

}  // namespace

void CudaOps::fill_impl(const Tensor& x, double value) {
  require_cuda(x, "fill", "x");
  const int64_t n = x.numel();
  if (n == 0) return;
  if (value == 0.0) {  // all-zero bits for every dtype
    CUDA_CHECK(cudaMemsetAsync(x.data, 0, x.bytes(), stream_));
    return;
  }
  if (x.dtype == DType::i32) {
    fill_kernel<int32_t><<<grid_for(n), 256, 0, stream_>>>(static_cast<int32_t*>(x.data), n, value);
    CUDA_CHECK_LAUNCH();
    return;
  }
  dispatch_fdb(x.dtype, "fill", [&](auto t) {
    using T = decltype(t);
    fill_kernel<T><<<grid_for(n), 256, 0, stream_>>>(static_cast<T*>(x.data), n, value);
    CUDA_CHECK_LAUNCH();
  });
}

void CudaOps::copy_impl(const Tensor& dst, const Tensor& src) {
  require_cuda(dst, "copy", "dst");
  require_cuda(src, "copy", "src");
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.dtype == src.dtype) {
    if (dst.data != src.data)
      CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, dst.bytes(), cudaMemcpyDeviceToDevice, stream_));
    return;
  }
  dispatch_fdb(dst.dtype, "copy", [&](auto td) {
    using Td = decltype(td);
    dispatch_fdb(src.dtype, "copy", [&](auto ts) {
      using Ts = decltype(ts);
      convert_kernel<Td, Ts><<<grid_for(n), 256, 0, stream_>>>(static_cast<Td*>(dst.data),
                                                               static_cast<const Ts*>(src.data), n);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::copy_stochastic_impl(const Tensor& dst, const Tensor& src, uint64_t seed) {
  if (dst.dtype != DType::bf16 || src.dtype != DType::f32) return copy_impl(dst, src);
  require_cuda(dst, "copy_stochastic", "dst");
  require_cuda(src, "copy_stochastic", "src");
  const int64_t n = dst.numel();
  if (n == 0) return;
  auto* d = static_cast<bf16*>(dst.data);
  auto* x = static_cast<const float*>(src.data);
  if (reinterpret_cast<uintptr_t>(d) % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0)
    stochastic_kernel<4><<<grid_for(n / 4 + 1), 256, 0, stream_>>>(d, x, n, seed);
  else
    stochastic_kernel<1><<<grid_for(n), 256, 0, stream_>>>(d, x, n, seed);
  CUDA_CHECK_LAUNCH();
}

void CudaOps::scale_impl(const Tensor& x, double alpha) {
  require_cuda(x, "scale", "x");
  const int64_t n = x.numel();
  if (n == 0) return;
  dispatch_fdb(x.dtype, "scale", [&](auto t) {
    using T = decltype(t);
    scale_kernel<T><<<grid_for(n), 256, 0, stream_>>>(static_cast<T*>(x.data), n, alpha);
    CUDA_CHECK_LAUNCH();
  });
}

void CudaOps::axpby_impl(const Tensor& y, double a, const Tensor& x, double b) {
  require_cuda(y, "axpby", "y");
  require_cuda(x, "axpby", "x");
  const int64_t n = y.numel();
  if (n == 0) return;
  dispatch_fdb(y.dtype, "axpby", [&](auto ty) {
    using Ty = decltype(ty);
    dispatch_fdb(x.dtype, "axpby", [&](auto tx) {
      using Tx = decltype(tx);
      axpby_kernel<Ty, Tx><<<grid_for(n), 256, 0, stream_>>>(
          static_cast<Ty*>(y.data), a, static_cast<const Tx*>(x.data), b, n);
      CUDA_CHECK_LAUNCH();
    });
  });
}

namespace {
template <bool Square>
double sum_partials(CudaOps& ops, const Tensor& x, double* partials, int blocks, cudaStream_t s) {
  dispatch_fdb(x.dtype, Square ? "sum_squares" : "sum", [&](auto t) {
    using T = decltype(t);
    sum_partials_kernel<T, Square><<<blocks, kSumThreads, 0, s>>>(
        partials, static_cast<const T*>(x.data), x.numel());
    CUDA_CHECK_LAUNCH();
  });
  (void)ops;
  return 0.0;
}
}  // namespace

double CudaOps::sum_impl(const Tensor& x) {
  require_cuda(x, "sum", "x");
  if (x.numel() == 0) return 0.0;
  const int blocks = static_cast<int>(grid_for(x.numel(), kSumThreads, kSumMaxBlocks));
  double* partials = static_cast<double*>(scratch(sizeof(double) * kSumMaxBlocks));
  sum_partials<false>(*this, x, partials, blocks, stream_);
  return finish_partials(partials, blocks);
}

double CudaOps::sum_squares_impl(const Tensor& x) {
  require_cuda(x, "sum_squares", "x");
  if (x.numel() == 0) return 0.0;
  const int blocks = static_cast<int>(grid_for(x.numel(), kSumThreads, kSumMaxBlocks));
  double* partials = static_cast<double*>(scratch(sizeof(double) * kSumMaxBlocks));
  sum_partials<true>(*this, x, partials, blocks, stream_);
  return finish_partials(partials, blocks);
}

void CudaOps::relu2_forward_impl(const Tensor& out, const Tensor& inp) {
  require_cuda(out, "relu2_forward", "out");
  require_cuda(inp, "relu2_forward", "inp");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_fdb(out.dtype, "relu2_forward", [&](auto to) {
    using To = decltype(to);
    dispatch_fdb(inp.dtype, "relu2_forward", [&](auto ti) {
      using Ti = decltype(ti);
      auto* o = static_cast<To*>(out.data);
      auto* x = static_cast<const Ti*>(inp.data);
      // 16-byte vectors for f32/bf16 with 16-byte-aligned pointers (the n % 8 tail is scalar).
      constexpr bool kFloatish = !std::is_same<To, double>::value && !std::is_same<Ti, double>::value;
      if (kFloatish && vec_ok(o, kVec, sizeof(To)) && vec_ok(x, kVec, sizeof(Ti)))
        relu2_fwd_kernel<kFloatish ? kVec : 1, To, Ti><<<grid_for(n / kVec + 1), 256, 0, stream_>>>(o, x, n);
      else
        relu2_fwd_kernel<1, To, Ti><<<grid_for(n), 256, 0, stream_>>>(o, x, n);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::relu2_backward_impl(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  require_cuda(dinp, "relu2_backward", "dinp");
  require_cuda(dout, "relu2_backward", "dout");
  require_cuda(inp, "relu2_backward", "inp");
  const int64_t n = dinp.numel();
  if (n == 0) return;
  dispatch_fb(dinp.dtype, "relu2_backward", [&](auto td) {
    using Td = decltype(td);
    dispatch_fb(dout.dtype, "relu2_backward", [&](auto tg) {
      using Tg = decltype(tg);
      dispatch_fb(inp.dtype, "relu2_backward", [&](auto ti) {
        using Ti = decltype(ti);
        auto* dx = static_cast<Td*>(dinp.data);
        auto* g = static_cast<const Tg*>(dout.data);
        auto* x = static_cast<const Ti*>(inp.data);
        if (vec_ok(dx, kVec, sizeof(Td)) && vec_ok(g, kVec, sizeof(Tg)) && vec_ok(x, kVec, sizeof(Ti)))
          relu2_bwd_kernel<kVec, Td, Tg, Ti><<<grid_for(n / kVec + 1), 256, 0, stream_>>>(dx, g, x, n);
        else
          relu2_bwd_kernel<1, Td, Tg, Ti><<<grid_for(n), 256, 0, stream_>>>(dx, g, x, n);
        CUDA_CHECK_LAUNCH();
      });
    });
  });
}

}  // namespace mousse
