// Optimizer-side ops: adamw, lion, ema_square, adam_direction, scale_rows_cols, pow_clamped,
// add_to_diagonal, trace, transpose, gather_rows, gather_columns, column_dots, and the
// device-scalar ops sum_squares_batched, trace_to, scale_by_ratio (no host synchronisation).
#include "bf16.cuh"
#include "check.h"
#include "cuda_ops.h"
#include "vec.cuh"

namespace mousse {
using namespace cuda;

namespace {

#define GRID_STRIDE(i, n)                                                            \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += int64_t(gridDim.x) * blockDim.x)

// The bf16 working copy written by a fused update (ComputeCopy on the device): null dst, none.
struct CopyOut {
  bf16* dst;
  uint64_t seed;
  int64_t index;  // flat index of element 0 (the stochastic rounding's counter)
};

// The hyper-parameters in the update's arithmetic type A (float for f32 state, double for f64),
// rounded once on the host: f32 kernels see the float values they always did, and f64 state is
// updated in f64 throughout.
template <class A>
struct AdamWHyper {
  A lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2, grad_scale;
};
template <class A>
struct LionHyper {
  A lr, beta1, beta2, weight_decay, grad_scale;
};
template <class A>
AdamWHyper<A> hyper(const AdamWArgs& a) {
  return {A(a.lr), A(a.beta1), A(a.beta2), A(a.eps), A(a.weight_decay), A(a.bias_correction1),
          A(a.bias_correction2), A(a.grad_scale)};
}
template <class A>
LionHyper<A> hyper(const LionArgs& a) {
  return {A(a.lr), A(a.beta1), A(a.beta2), A(a.weight_decay), A(a.grad_scale)};
}

template <class A>
__device__ __forceinline__ void adamw_elem(A& p, A g, A& m, A& v, const AdamWHyper<A>& a) {
  const A gs = A(a.grad_scale) * g;
  m = A(a.beta1) * m + (A(1) - A(a.beta1)) * gs;
  v = A(a.beta2) * v + (A(1) - A(a.beta2)) * gs * gs;
  const A mhat = m / A(a.bias_correction1);
  const A vhat = v / A(a.bias_correction2);
  p = p * (A(1) - A(a.lr) * A(a.weight_decay)) - A(a.lr) * mhat / (sqrt(vhat) + A(a.eps));
}

template <class A>
__device__ __forceinline__ void lion_elem(A& p, A g, A& m, const LionHyper<A>& a) {
  const A gs = A(a.grad_scale) * g;
  const A c = A(a.beta1) * m + (A(1) - A(a.beta1)) * gs;
  const A u = c > A(0) ? A(1) : (c < A(0) ? A(-1) : A(0));
  m = A(a.beta2) * m + (A(1) - A(a.beta2)) * gs;
  p = p * (A(1) - A(a.lr) * A(a.weight_decay)) - A(a.lr) * u;
}

// The elementwise optimizers: one thread per VEC consecutive elements (16-byte accesses of f32
// when VEC = 4; VEC > 1 only for f32 state, checked on the host), grid-stride, then the n % VEC
// tail one element per thread. `update(p, g, s0, s1)` updates one element's weight and state in
// registers (s1 unused by Lion); with copy.dst the new weight also goes to the bf16 copy.
template <int VEC, int NS, class Tp, class Tg, class F>
__device__ __forceinline__ void elementwise_update(Tp* p, const Tg* g, Tp* s0, Tp* s1, int64_t n,
                                                   const CopyOut& copy, F update) {
  using A = acc_t<Tp>;
  auto scalar = [&](int64_t i) {
    A pi = ld(p, i), a0 = ld(s0, i), a1 = NS == 2 ? ld(s1, i) : A(0);
    update(pi, A(ld(g, i)), a0, a1);
    st(p, i, pi);
    st(s0, i, a0);
    if constexpr (NS == 2) st(s1, i, a1);
    if (copy.dst) {
      const float x[1] = {float(pi)};
      store_stochastic<1>(copy.dst + i, x, copy.seed, copy.index + i);
    }
  };
  if constexpr (VEC > 1) {  // f32 state only (the update works on float registers)
    static_assert(std::is_same<Tp, float>::value, "vectorised updates are f32");
    auto vector = [&](int64_t i0) {
      float pv[VEC], gv[VEC], a0[VEC], a1[VEC];
      load_vec<VEC>(pv, p + i0);
      load_vec<VEC>(gv, g + i0);
      load_vec<VEC>(a0, s0 + i0);
      if constexpr (NS == 2) load_vec<VEC>(a1, s1 + i0);
#pragma unroll
      for (int j = 0; j < VEC; j++) update(pv[j], gv[j], a0[j], a1[j]);
      store_vec<VEC>(p + i0, pv);
      store_vec<VEC>(s0 + i0, a0);
      if constexpr (NS == 2) store_vec<VEC>(s1 + i0, a1);
      if (copy.dst) store_stochastic<VEC>(copy.dst + i0, pv, copy.seed, copy.index + i0);
    };
    for_each_vector<VEC>(n, vector, scalar);
  } else {
    for_each_vector<1>(n, [](auto) {}, scalar);
  }
}

template <int VEC, class Tp, class Tg>
__global__ void adamw_kernel(Tp* p, const Tg* g, Tp* m, Tp* v, int64_t n,
                             AdamWHyper<acc_t<Tp>> a, CopyOut copy) {
  using A = acc_t<Tp>;
  elementwise_update<VEC, 2>(p, g, m, v, n, copy,
                             [&](A& pi, A gi, A& mi, A& vi) { adamw_elem<A>(pi, gi, mi, vi, a); });
}

template <int VEC, class Tp, class Tg>
__global__ void lion_kernel(Tp* p, const Tg* g, Tp* m, int64_t n, LionHyper<acc_t<Tp>> a,
                            CopyOut copy) {
  using A = acc_t<Tp>;
  elementwise_update<VEC, 1>(p, g, m, static_cast<Tp*>(nullptr), n, copy,
                             [&](A& pi, A gi, A& mi, A&) { lion_elem<A>(pi, gi, mi, a); });
}

template <class Tv, class Tx>
__global__ void ema_square_kernel(Tv* v, const Tx* x, int64_t n, double beta) {
  using A = acc_t<Tv>;
  const A b = A(beta);
  GRID_STRIDE(i, n) {
    const A xi = A(ld(x, i));
    st(v, i, b * ld(v, i) + (A(1) - b) * xi * xi);
  }
}

template <class To, class Tm>
__global__ void adam_direction_kernel(To* out, const Tm* m, const Tm* v, int64_t n, double eps,
                                      double bc1, double bc2) {
  using A = acc_t<Tm>;
  GRID_STRIDE(i, n) {
    const A mh = ld(m, i) / A(bc1), vh = ld(v, i) / A(bc2);
    st(out, i, mh / (sqrt(vh) + A(eps)));
  }
}

// Index type I: int32_t when rows·cols fits (two integer divisions per element; 64-bit ones
// cost several times more and would make this memory-bound kernel compute-bound).
template <class T, class Ts, class I>
__global__ void scale_rows_cols_kernel(T* out, const T* inp, const Ts* rs, const Ts* cs,
                                       int64_t rows, int64_t cols_, int64_t rows_per_matrix_) {
  using A = acc_t<T>;
  const I cols = I(cols_), rows_per_matrix = I(rows_per_matrix_);
  GRID_STRIDE(i, rows * cols_) {
    const I r = I(i) / cols, c = I(i) - r * cols;
    A v = ld(inp, i);
    if (rs) v *= A(ld(rs, r));
    if (cs) v *= A(ld(cs, (r / rows_per_matrix) * cols + c));  // matrix r / m's column scales
    st(out, i, v);
  }
}

template <class To, class Ti>
__global__ void pow_clamped_kernel(To* out, const Ti* inp, int64_t n, double exponent, double floor_) {
  GRID_STRIDE(i, n) {
    const double x = double(ld(inp, i));
    st(out, i, pow(x < floor_ ? floor_ : x, exponent));  // NaN input stays NaN (std::max)
  }
}

template <class T>
__global__ void add_diag_kernel(T* a, int64_t n, int64_t cols, double value) {
  GRID_STRIDE(i, n) {
    const int64_t o = i * cols + i;
    if constexpr (std::is_same<T, double>::value) a[o] += value;
    else st(a, o, ld(a, o) + float(value));
  }
}

template <class T>
__global__ void trace_kernel(double* out, const T* a, int64_t n, int64_t cols) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(ld(a, i * cols + i));
  s = block_sum(s);
  if (threadIdx.x == 0) *out = s;
}

// out [cols, rows] = inp [rows, cols]ᵀ, 32x32 tiles through shared memory (padded).
template <class T>
__global__ void transpose_kernel(T* out, const T* inp, int64_t rows, int64_t cols) {
  __shared__ T tile[32][33];
  const int64_t r0 = int64_t(blockIdx.y) * 32, c0 = int64_t(blockIdx.x) * 32;
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    const int64_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = inp[r * cols + c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    const int64_t c = c0 + k, r = r0 + threadIdx.x;  // out row c, col r
    if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][k];
  }
}

template <class T>
__global__ void gather_cols_kernel(T* out, const T* inp, const int32_t* index, int64_t rows,
                                   int64_t in_cols, int64_t k) {
  GRID_STRIDE(i, rows * k) {
    const int64_t r = i / k, j = i - r * k;
    out[i] = inp[r * in_cols + index[j]];
  }
}

// One block per 32 columns: the 32 x-threads read 32 adjacent columns of a row (coalesced),
// the 32 y-threads stride over the rows; the partial sums meet in shared memory. Fixed order:
// the result is deterministic.
template <class T>
__global__ void column_dots_kernel(T* out, const T* a, const T* b, int64_t rows, int64_t cols) {
  __shared__ double part[32][33];
  const int64_t j = blockIdx.x * 32 + threadIdx.x;
  double acc = 0.0;
  if (j < cols)
    for (int64_t i = threadIdx.y; i < rows; i += 32)
      acc += double(a[i * cols + j]) * double(b[i * cols + j]);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    double sum = 0.0;
    for (int y = 0; y < 32; y++) sum += part[y][threadIdx.x];
    out[j] = T(sum);
  }
}

template <class T>
__global__ void gather_rows_kernel(T* out, const T* inp, const int32_t* index, int64_t k,
                                   int64_t cols) {
  GRID_STRIDE(i, k * cols) {
    const int64_t r = i / cols, c = i - r * cols;
    out[i] = inp[int64_t(index[r]) * cols + c];
  }
}


// ---- device scalars
// Stage 1: partials[b * parts + j] = sum of squares of part j of slice b (grid parts x k).
template <class T>
__global__ void slice_ssq_partials_kernel(double* partials, const T* x, int64_t len, int parts) {
  const int64_t b = blockIdx.y;
  const T* xs = x + b * len;
  const int64_t chunk = (len + parts - 1) / parts;
  const int64_t lo = int64_t(blockIdx.x) * chunk;
  const int64_t hi = lo + chunk < len ? lo + chunk : len;
  double s = 0.0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    const double v = double(ld(xs, i));
    s += v * v;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partials[b * parts + blockIdx.x] = s;
}

// Stage 2: out[b] = sum of the slice's partials in order (deterministic).
template <class To>
__global__ void slice_ssq_finish_kernel(To* out, const double* partials, int64_t k, int parts) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < k;
       b += int64_t(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (int j = 0; j < parts; j++) s += partials[b * parts + j];
    out[b] = To(s);
  }
}

template <class To, class T>
__global__ void trace_to_kernel(To* out, const T* a, int64_t n, int64_t cols) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(ld(a, i * cols + i));
  s = block_sum(s);
  if (threadIdx.x == 0) *out = To(s);
}

__device__ __forceinline__ double pow_p(double v, double p) {
  return p == 1.0 ? v : (p == 0.5 ? sqrt(v) : pow(v, p));
}

// f[b] = c * num_b^p / (alpha * den_b^p + eps), or 1 where that denominator is not > 0 / finite.
template <class Ts>
__global__ void ratio_factor_kernel(double* f, const Ts* num, const Ts* den, int64_t k, double p,
                                    double c, double alpha, double eps) {
  for (int64_t b = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; b < k;
       b += int64_t(gridDim.x) * blockDim.x) {
    const double d = alpha * pow_p(double(den[b]), p) + eps;
    double r = 1.0;
    if (d > 0.0 && isfinite(d)) r = c * (num ? pow_p(double(num[b]), p) : 1.0) / d;
    f[b] = r;
  }
}

template <class T>
__global__ void scale_slices_kernel(T* x, const double* f, int64_t n, int64_t len) {
  using A = acc_t<T>;
  GRID_STRIDE(i, n) {
    if constexpr (std::is_same<T, double>::value) x[i] *= f[i / len];
    else st(x, i, A(double(ld(x, i)) * f[i / len]));
  }
}

template <class F> void dispatch_all(DType dt, const char* op, F&& f) {
  if (dt == DType::i32) f(int32_t{});
  else dispatch_fdb(dt, op, f);
}

// The device side of a ComputeCopy for the update of p: a bf16 dst of p's numel (p f32; the
// numel checked by the Ops front) is written by the kernel; a dst of p's own dtype is copied
// after it (`after`); none: nothing.
CopyOut device_copy(const ComputeCopy& c, const Tensor& p, const char* op, bool& after) {
  after = false;
  if (!c.dst.defined() || c.dst.data == p.data) return CopyOut{nullptr, 0, 0};
  require_cuda(c.dst, op, "copy.dst");
  if (c.dst.dtype == p.dtype) {
    after = true;
    return CopyOut{nullptr, 0, 0};
  }
  if (c.dst.dtype != DType::bf16 || p.dtype != DType::f32)
    fail("cuda ", op, ": the compute copy must be bf16 for f32 weights (or the weights' dtype), got ",
         dtype_name(c.dst.dtype), " for ", dtype_name(p.dtype));
  return CopyOut{static_cast<bf16*>(c.dst.data), c.seed, c.index};
}

// 16-byte vectors for f32 weights and state with 16-byte-aligned pointers (and an 8-byte-aligned
// bf16 copy); the gradient may be f32 or bf16.
bool update_vec_ok(std::initializer_list<const Tensor*> ts, const CopyOut& copy) {
  for (const Tensor* t : ts)
    if (t->dtype == DType::f64 || reinterpret_cast<uintptr_t>(t->data) % 16 != 0) return false;
  return reinterpret_cast<uintptr_t>(copy.dst) % 8 == 0;
}

constexpr int kUpdateVec = 4;

}  // namespace

void CudaOps::adamw_update_impl(const Tensor& p, const Tensor& g, const Tensor& m,
                                const Tensor& v, const AdamWArgs& args, const ComputeCopy& copy) {
  const char* op = "adamw_update";
  require_cuda(p, op, "p"); require_cuda(g, op, "g"); require_cuda(m, op, "m"); require_cuda(v, op, "v");
  if (m.dtype != p.dtype || v.dtype != p.dtype) fail("cuda ", op, ": p, m, v must share a dtype");
  const int64_t n = p.numel();
  if (n == 0) return;
  bool copy_after = false;
  const CopyOut c = device_copy(copy, p, op, copy_after);
  const bool vec = update_vec_ok({&p, &g, &m, &v}, c);
  dispatch_fd(p.dtype, op, [&](auto tp) {
    using Tp = decltype(tp);
    dispatch_fdb(g.dtype, op, [&](auto tg) {
      using Tg = decltype(tg);
      auto* P = static_cast<Tp*>(p.data);
      auto* G = static_cast<const Tg*>(g.data);
      auto* M = static_cast<Tp*>(m.data);
      auto* V = static_cast<Tp*>(v.data);
      const AdamWHyper<acc_t<Tp>> h = hyper<acc_t<Tp>>(args);
      if constexpr (std::is_same<Tp, float>::value) {
        if (vec) {
          adamw_kernel<kUpdateVec, Tp, Tg><<<grid_for(n / kUpdateVec + 1), 256, 0, stream_>>>(
              P, G, M, V, n, h, c);
          CUDA_CHECK_LAUNCH();
          return;
        }
      }
      adamw_kernel<1, Tp, Tg><<<grid_for(n), 256, 0, stream_>>>(P, G, M, V, n, h, c);
      CUDA_CHECK_LAUNCH();
    });
  });
  if (copy_after) copy_impl(copy.dst, p);
}

void CudaOps::lion_update_impl(const Tensor& p, const Tensor& g, const Tensor& m,
                               const LionArgs& args, const ComputeCopy& copy) {
  const char* op = "lion_update";
  require_cuda(p, op, "p"); require_cuda(g, op, "g"); require_cuda(m, op, "m");
  if (m.dtype != p.dtype) fail("cuda ", op, ": p and m must share a dtype");
  const int64_t n = p.numel();
  if (n == 0) return;
  bool copy_after = false;
  const CopyOut c = device_copy(copy, p, op, copy_after);
  const bool vec = update_vec_ok({&p, &g, &m}, c);
  dispatch_fd(p.dtype, op, [&](auto tp) {
    using Tp = decltype(tp);
    dispatch_fdb(g.dtype, op, [&](auto tg) {
      using Tg = decltype(tg);
      auto* P = static_cast<Tp*>(p.data);
      auto* G = static_cast<const Tg*>(g.data);
      auto* M = static_cast<Tp*>(m.data);
      const LionHyper<acc_t<Tp>> h = hyper<acc_t<Tp>>(args);
      if constexpr (std::is_same<Tp, float>::value) {
        if (vec) {
          lion_kernel<kUpdateVec, Tp, Tg><<<grid_for(n / kUpdateVec + 1), 256, 0, stream_>>>(
              P, G, M, n, h, c);
          CUDA_CHECK_LAUNCH();
          return;
        }
      }
      lion_kernel<1, Tp, Tg><<<grid_for(n), 256, 0, stream_>>>(P, G, M, n, h, c);
      CUDA_CHECK_LAUNCH();
    });
  });
  if (copy_after) copy_impl(copy.dst, p);
}

void CudaOps::ema_square_impl(const Tensor& v, const Tensor& x, double beta) {
  const char* op = "ema_square";
  require_cuda(v, op, "v"); require_cuda(x, op, "x");
  const int64_t n = v.numel();
  if (n == 0) return;
  dispatch_fdb(v.dtype, op, [&](auto tv) {
    using Tv = decltype(tv);
    dispatch_fdb(x.dtype, op, [&](auto tx) {
      using Tx = decltype(tx);
      ema_square_kernel<Tv, Tx><<<grid_for(n), 256, 0, stream_>>>(
          static_cast<Tv*>(v.data), static_cast<const Tx*>(x.data), n, beta);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::adam_direction_impl(const Tensor& out, const Tensor& m, const Tensor& v, double eps,
                                  double bias_correction1, double bias_correction2) {
  const char* op = "adam_direction";
  require_cuda(out, op, "out"); require_cuda(m, op, "m"); require_cuda(v, op, "v");
  if (m.dtype != v.dtype) fail("cuda ", op, ": m and v must share a dtype");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_fdb(out.dtype, op, [&](auto to) {
    using To = decltype(to);
    dispatch_fdb(m.dtype, op, [&](auto tm) {
      using Tm = decltype(tm);
      adam_direction_kernel<To, Tm><<<grid_for(n), 256, 0, stream_>>>(
          static_cast<To*>(out.data), static_cast<const Tm*>(m.data),
          static_cast<const Tm*>(v.data), n, eps, bias_correction1, bias_correction2);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::scale_rows_cols_impl(const Tensor& out, const Tensor& inp, const Tensor& row_scale,
                                   const Tensor& col_scale) {
  const char* op = "scale_rows_cols";
  require_cuda(out, op, "out"); require_cuda(inp, op, "inp");
  if (out.dtype != inp.dtype) fail("cuda ", op, ": out and inp must share a dtype");
  const int64_t rows = inp.rows(), cols = inp.cols();
  // a 3-D inp: a stack of matrices of m rows, each with its own column scales (the scales'
  // element counts checked by the Ops front)
  const int64_t m = inp.shape.ndim == 3 ? inp.shape[1] : rows;
  if (row_scale.defined()) require_cuda(row_scale, op, "row_scale");
  if (col_scale.defined()) require_cuda(col_scale, op, "col_scale");
  if (row_scale.defined() && col_scale.defined() && row_scale.dtype != col_scale.dtype)
    fail("cuda ", op, ": row_scale and col_scale must share a dtype");
  const DType sdt = row_scale.defined() ? row_scale.dtype : (col_scale.defined() ? col_scale.dtype : inp.dtype);
  if (rows * cols == 0) return;
  dispatch_fdb(out.dtype, op, [&](auto t) {
    using T = decltype(t);
    dispatch_fdb(sdt, op, [&](auto ts) {
      using Ts = decltype(ts);
      T* o = static_cast<T*>(out.data);
      const T* x = static_cast<const T*>(inp.data);
      const Ts* rs = static_cast<const Ts*>(row_scale.data);
      const Ts* cs = static_cast<const Ts*>(col_scale.data);
      if (rows * cols <= INT32_MAX)
        scale_rows_cols_kernel<T, Ts, int32_t><<<grid_for(rows * cols), 256, 0, stream_>>>(
            o, x, rs, cs, rows, cols, m);
      else
        scale_rows_cols_kernel<T, Ts, int64_t><<<grid_for(rows * cols), 256, 0, stream_>>>(
            o, x, rs, cs, rows, cols, m);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::pow_clamped_impl(const Tensor& out, const Tensor& inp, double exponent,
                               double floor) {
  const char* op = "pow_clamped";
  require_cuda(out, op, "out"); require_cuda(inp, op, "inp");
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_fdb(out.dtype, op, [&](auto to) {
    using To = decltype(to);
    dispatch_fdb(inp.dtype, op, [&](auto ti) {
      using Ti = decltype(ti);
      pow_clamped_kernel<To, Ti><<<grid_for(n), 256, 0, stream_>>>(
          static_cast<To*>(out.data), static_cast<const Ti*>(inp.data), n, exponent, floor);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::add_to_diagonal_impl(const Tensor& a, double value) {
  const char* op = "add_to_diagonal";
  require_cuda(a, op, "a");
  const int64_t rows = a.rows(), cols = a.cols();
  const int64_t n = rows < cols ? rows : cols;
  if (n == 0) return;
  dispatch_fdb(a.dtype, op, [&](auto t) {
    using T = decltype(t);
    add_diag_kernel<T><<<grid_for(n), 256, 0, stream_>>>(static_cast<T*>(a.data), n, cols, value);
    CUDA_CHECK_LAUNCH();
  });
}

double CudaOps::trace_impl(const Tensor& a) {
  const char* op = "trace";
  require_cuda(a, op, "a");
  const int64_t rows = a.rows(), cols = a.cols();
  const int64_t n = rows < cols ? rows : cols;
  if (n == 0) return 0.0;
  double* d = static_cast<double*>(scratch(sizeof(double)));
  dispatch_fdb(a.dtype, op, [&](auto t) {
    using T = decltype(t);
    trace_kernel<T><<<1, 1024, 0, stream_>>>(d, static_cast<const T*>(a.data), n, cols);
    CUDA_CHECK_LAUNCH();
  });
  return finish_partials(d, 1);
}

void CudaOps::transpose_impl(const Tensor& out, const Tensor& inp) {
  const char* op = "transpose";
  require_cuda(out, op, "out"); require_cuda(inp, op, "inp");
  if (out.dtype != inp.dtype) fail("cuda ", op, ": out and inp must share a dtype");
  const int64_t rows = inp.rows(), cols = inp.cols();
  if (rows * cols == 0) return;
  const int64_t gx = (cols + 31) / 32, gy = (rows + 31) / 32;
  if (gy > 65535) fail("cuda ", op, ": too many rows (", rows, ")");
  dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
  dispatch_all(inp.dtype, op, [&](auto t) {
    using T = decltype(t);
    transpose_kernel<T><<<grid, dim3(32, 8), 0, stream_>>>(static_cast<T*>(out.data),
                                                          static_cast<const T*>(inp.data), rows, cols);
    CUDA_CHECK_LAUNCH();
  });
}

void CudaOps::gather_columns_impl(const Tensor& out, const Tensor& inp, const Tensor& index) {
  const char* op = "gather_columns";
  require_cuda(out, op, "out"); require_cuda(inp, op, "inp"); require_cuda(index, op, "index");
  if (index.dtype != DType::i32) fail("cuda ", op, ": index must be i32");
  if (out.dtype != inp.dtype) fail("cuda ", op, ": out and inp must share a dtype");
  const int64_t rows = inp.rows(), k = index.numel();
  if (rows * k == 0) return;
  dispatch_all(inp.dtype, op, [&](auto t) {
    using T = decltype(t);
    gather_cols_kernel<T><<<grid_for(rows * k), 256, 0, stream_>>>(
        static_cast<T*>(out.data), static_cast<const T*>(inp.data),
        static_cast<const int32_t*>(index.data), rows, inp.cols(), k);
    CUDA_CHECK_LAUNCH();
  });
}

void CudaOps::gather_rows_impl(const Tensor& out, const Tensor& inp, const Tensor& index) {
  const char* op = "gather_rows";
  require_cuda(out, op, "out"); require_cuda(inp, op, "inp"); require_cuda(index, op, "index");
  if (index.dtype != DType::i32) fail("cuda ", op, ": index must be i32");
  if (out.dtype != inp.dtype) fail("cuda ", op, ": out and inp must share a dtype");
  const int64_t k = index.numel(), cols = inp.cols();
  if (k * cols == 0) return;
  dispatch_all(inp.dtype, op, [&](auto t) {
    using T = decltype(t);
    gather_rows_kernel<T><<<grid_for(k * cols), 256, 0, stream_>>>(
        static_cast<T*>(out.data), static_cast<const T*>(inp.data),
        static_cast<const int32_t*>(index.data), k, cols);
    CUDA_CHECK_LAUNCH();
  });
}

void CudaOps::column_dots_impl(const Tensor& out, const Tensor& a, const Tensor& b) {
  const char* op = "column_dots";
  require_cuda(out, op, "out"); require_cuda(a, op, "a"); require_cuda(b, op, "b");
  if (b.dtype != a.dtype || out.dtype != a.dtype)
    fail("cuda ", op, ": out, a and b must share a dtype (a is ", dtype_name(a.dtype), ")");
  const int64_t rows = a.rows(), cols = a.cols();
  if (cols == 0) return;
  dispatch_fd(a.dtype, op, [&](auto t) {
    using T = decltype(t);
    column_dots_kernel<T><<<unsigned((cols + 31) / 32), dim3(32, 32), 0, stream_>>>(
        static_cast<T*>(out.data), static_cast<const T*>(a.data), static_cast<const T*>(b.data),
        rows, cols);
    CUDA_CHECK_LAUNCH();
  });
}

void CudaOps::sum_squares_batched_impl(const Tensor& out, const Tensor& x) {
  const char* op = "sum_squares_batched";
  require_cuda(out, op, "out"); require_cuda(x, op, "x");
  const int64_t k = out.numel();
  const int64_t len = x.numel() / k;  // k > 0 and divides x.numel(): checked by the Ops front
  if (k > 65535) fail("cuda ", op, ": at most 65535 slices, got ", k);
  // Enough blocks per slice to fill the GPU for one big matrix; a fixed split (deterministic).
  int64_t parts = len / (256 * 16);
  parts = parts < 1 ? 1 : (parts > 128 ? 128 : parts);
  const int pi = static_cast<int>(parts);
  double* partials = static_cast<double*>(scratch(sizeof(double) * size_t(k * parts)));
  dispatch_fdb(x.dtype, op, [&](auto t) {
    using T = decltype(t);
    slice_ssq_partials_kernel<T><<<dim3(unsigned(pi), unsigned(k)), 256, 0, stream_>>>(
        partials, static_cast<const T*>(x.data), len, pi);
    CUDA_CHECK_LAUNCH();
  });
  dispatch_fd(out.dtype, op, [&](auto to) {
    using To = decltype(to);
    slice_ssq_finish_kernel<To><<<grid_for(k), 256, 0, stream_>>>(static_cast<To*>(out.data),
                                                                 partials, k, pi);
    CUDA_CHECK_LAUNCH();
  });
}

void CudaOps::trace_to_impl(const Tensor& out, const Tensor& a) {
  const char* op = "trace_to";
  require_cuda(out, op, "out"); require_cuda(a, op, "a");
  const int64_t rows = a.rows(), cols = a.cols();  // out [1], a [n, n]: checked by the Ops front
  dispatch_fd(out.dtype, op, [&](auto to) {
    using To = decltype(to);
    dispatch_fdb(a.dtype, op, [&](auto t) {
      using T = decltype(t);
      trace_to_kernel<To, T><<<1, 1024, 0, stream_>>>(static_cast<To*>(out.data),
                                                      static_cast<const T*>(a.data), rows, cols);
      CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaOps::scale_by_ratio_impl(const Tensor& x, const Tensor& num, const Tensor& den,
                                  double power, double c, double alpha, double eps) {
  const char* op = "scale_by_ratio";
  require_cuda(x, op, "x"); require_cuda(den, op, "den");
  const int64_t k = den.numel();
  const int64_t len = x.numel() / k;  // k > 0 and divides x.numel(): checked by the Ops front
  if (num.defined()) {
    require_cuda(num, op, "num");
    if (num.dtype != den.dtype) fail("cuda ", op, ": num and den must share a dtype");
  }
  const int64_t n = x.numel();
  double* f = static_cast<double*>(scratch(sizeof(double) * size_t(k)));
  dispatch_fd(den.dtype, op, [&](auto ts) {
    using Ts = decltype(ts);
    ratio_factor_kernel<Ts><<<grid_for(k), 256, 0, stream_>>>(
        f, num.defined() ? static_cast<const Ts*>(num.data) : nullptr,
        static_cast<const Ts*>(den.data), k, power, c, alpha, eps);
    CUDA_CHECK_LAUNCH();
  });
  dispatch_fdb(x.dtype, op, [&](auto t) {
    using T = decltype(t);
    scale_slices_kernel<T><<<grid_for(n), 256, 0, stream_>>>(static_cast<T*>(x.data), f, n, len);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace mousse
