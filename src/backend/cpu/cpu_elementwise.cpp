// Elementwise ops and reductions: fill, copy, scale, axpby, sum, sum_squares, relu².
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_vec.h"

namespace mousse {

using namespace cpu;

namespace {

template <class Dst, class Src>
void convert(Dst* dst, const Src* src, int64_t n) {
#pragma omp parallel for schedule(dynamic, kElementChunk) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dst[i] = Dst(src[i]);
}

// Σ x[i] (squares: Σ x[i]²) in double in the fixed order of cpu_vec.h's block_sum_squares:
// the blocks summed in parallel, then added in order, so the result does not depend on the
// thread count.
template <class T>
double reduce_sum(const T* x, int64_t n, bool squares) {
  const int64_t nblocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial(size_t(nblocks), 0.0);
  parallel_chunks(n, 16 * kSumBlock, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; b += kSumBlock) {
      const int64_t len = std::min(hi - b, kSumBlock);
      partial[size_t(b / kSumBlock)] = squares ? lane_sum_squares(x + b, len) : lane_sum(x + b, len);
    }
  });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace

void CpuOps::fill_impl(const Tensor& x, double value) {
  check_cpu("fill", "x", x);
  const int64_t n = x.numel();
  if (x.dtype == DType::i32) {
    int32_t* p = x.ptr<int32_t>();
    std::fill(p, p + n, int32_t(value));
    return;
  }
  dispatch_float("fill", x.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = x.ptr<T>();
    const T v = T(value);
#pragma omp parallel for schedule(dynamic, kElementChunk) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; i++) p[i] = v;
  });
}

void CpuOps::copy_impl(const Tensor& dst, const Tensor& src) {
  check_cpu("copy", "dst", dst);
  check_cpu("copy", "src", src);
  const int64_t n = src.numel();
  if (dst.dtype == src.dtype && dst.dtype != DType::bf16) {  // f32, f64, i32: bytes
    if (n && dst.data != src.data) std::memmove(dst.data, src.data, dst.bytes());
    return;
  }
  check_float("copy", "dst", dst);
  check_float("copy", "src", src);
  if (dst.dtype == DType::f32)
    convert(dst.ptr<float>(), src.ptr<double>(), n);
  else
    convert(dst.ptr<double>(), src.ptr<float>(), n);
}

// The CPU has no bf16 working copy: stochastic rounding is only meaningful for bf16 targets.
void CpuOps::copy_stochastic_impl(const Tensor& dst, const Tensor& src, uint64_t) {
  copy_impl(dst, src);
}

void CpuOps::scale_impl(const Tensor& x, double alpha) {
  check_float("scale", "x", x);
  const int64_t n = x.numel();
  dispatch_float("scale", x.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = x.ptr<T>();
    const T a = T(alpha);
#pragma omp parallel for schedule(dynamic, kElementChunk) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; i++) p[i] *= a;
  });
}

namespace {
template <class TY, class TX>
void axpby_kernel(TY* y, double a, const TX* x, double b, int64_t n) {
  const TY ta = TY(a), tb = TY(b);
#pragma omp parallel for schedule(dynamic, kElementChunk) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) y[i] = ta * TY(x[i]) + (b == 0.0 ? TY(0) : tb * y[i]);
}
}  // namespace

void CpuOps::axpby_impl(const Tensor& y, double a, const Tensor& x, double b) {
  check_float("axpby", "y", y);
  check_float("axpby", "x", x);
  const int64_t n = y.numel();
  // ops.h: x is y's dtype or f32 (e.g. an f32 gradient into f64 state).
  if (x.dtype == y.dtype) {
    dispatch_float("axpby", y.dtype, [&](auto tag) {
      using T = decltype(tag);
      axpby_kernel(y.ptr<T>(), a, x.ptr<T>(), b, n);
    });
  } else if (y.dtype == DType::f64 && x.dtype == DType::f32) {
    axpby_kernel(y.ptr<double>(), a, x.ptr<float>(), b, n);
  } else {
    fail("axpby: x is ", dtype_name(x.dtype), " and y is ", dtype_name(y.dtype),
         "; x must be y's dtype or f32");
  }
}

double CpuOps::sum_impl(const Tensor& x) {
  check_float("sum", "x", x);
  double r = 0.0;
  dispatch_float("sum", x.dtype, [&](auto tag) {
    using T = decltype(tag);
    r = reduce_sum(x.ptr<T>(), x.numel(), /*squares=*/false);
  });
  return r;
}

double CpuOps::sum_squares_impl(const Tensor& x) {
  check_float("sum_squares", "x", x);
  double r = 0.0;
  dispatch_float("sum_squares", x.dtype, [&](auto tag) {
    using T = decltype(tag);
    r = reduce_sum(x.ptr<T>(), x.numel(), /*squares=*/true);
  });
  return r;
}

// out = relu(inp)²
void CpuOps::relu2_forward_impl(const Tensor& out, const Tensor& inp) {
  check_float("relu2_forward", "inp", inp);
  check_dtype("relu2_forward", "out", out, "inp", inp);
  const int64_t n = inp.numel();
  dispatch_float("relu2_forward", inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    T* y = out.ptr<T>();
#pragma omp parallel for schedule(dynamic, kElementChunk) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; i++) {
      const T r = x[i] > T(0) ? x[i] : T(0);
      y[i] = r * r;
    }
  });
}

// dinp (=) dout * 2 relu(inp)
void CpuOps::relu2_backward_impl(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  check_float("relu2_backward", "inp", inp);
  check_dtype("relu2_backward", "dinp", dinp, "inp", inp);
  check_dtype("relu2_backward", "dout", dout, "inp", inp);
  const int64_t n = inp.numel();
  dispatch_float("relu2_backward", inp.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = inp.ptr<T>();
    const T* dy = dout.ptr<T>();
    T* dx = dinp.ptr<T>();
#pragma omp parallel for schedule(dynamic, kElementChunk) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; i++) dx[i] = x[i] > T(0) ? T(2) * x[i] * dy[i] : T(0);
  });
}

}  // namespace mousse
