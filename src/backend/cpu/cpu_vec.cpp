// The vectorised inner loops of cpu_vec.h. The bodies are inline templates; the functions
// exported are their instantiations, each compiled for several instruction sets.
#include "backend/cpu/cpu_vec.h"

#include <cmath>
#include <cstring>

#define MOUSSE_INLINE inline __attribute__((always_inline))

namespace mousse {
namespace MOUSSE_CPU_VEC_NAMESPACE {

namespace {

// exp(hi + lo) in f32, lo a correction below hi's last bit (cpu_vec.h's exp_f32 has lo = 0).
// Branch-free, so that a loop over it becomes vector instructions: the argument is clamped to
// the range where the scaling by 2^n is a float (a NaN passes through and makes the result NaN),
// and the results out of range are selected at the end.
MOUSSE_INLINE float exp_inline(float hi, float lo = 0.f) {
  constexpr float kLo = -87.3365478515625f;  // ln(FLT_MIN): below, exp(x) is subnormal or 0
  constexpr float kHi = 88.3762626647949f;   // largest x whose 2^n scaling stays in range
  float x = hi < kLo ? kLo : hi;
  x = x > kHi ? kHi : x;
  // x = n ln2 + r with |r| <= ln2/2; ln2 in two parts so that n·ln2_hi is exact. Adding
  // 1.5·2^23 rounds x/ln2 to the integer n and leaves n in the low bits of the float.
  const float shifted = x * 1.44269504088896341f + 12582912.f;
  const float n = shifted - 12582912.f;
  const float r = ((x - n * 0.693359375f) - n * -2.12194440e-4f) + lo;
  float p = 1.9875691500e-4f;  // Cephes expf: e^r ≈ 1 + r + r² p(r)
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = (p * (r * r) + r) + 1.f;
  uint32_t bits;  // 2^n: the exponent field n + 127, n in [-126, 127]
  std::memcpy(&bits, &shifted, sizeof bits);
  bits = (bits - 0x4B400000u + 127u) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float y = er * scale;
  return hi < kLo ? 0.f : hi > kHi ? INFINITY : y;
}

// exp(x − m) to the accuracy of exp_inline: x − m is rarely a float, and its rounding error
// times |x − m| would show in the result (up to ~87 · 2^-24 relative for the smallest terms of
// a softmax), so the rounding error goes along as the correction (Knuth's TwoSum; where x − m
// overflows, the correction is NaN but the result is selected by x − m alone: 0 or inf).
MOUSSE_INLINE float exp_diff_inline(float x, float m) {
  const float d = x - m;
  const float mm = d - x;  // TwoSum(x, −m): d + err = x − m exactly
  const float err = (x - (d - mm)) + (-m - mm);
  return exp_inline(d, err);
}

MOUSSE_INLINE double add_lanes(const double* lane) {
  double s = 0.0;
  for (int l = 0; l < kLanes; l++) s += lane[l];
  return s;
}

// Σ f(x[j]) in double: lane l sums the elements j ≡ l (mod kLanes) in order, then the lanes
// and the tail are added in order.
template <class T, class F>
MOUSSE_INLINE double lane_reduce(const T* x, int64_t n, F f) {
  double lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; l++) lane[l] += f(x[j + l]);
  double s = add_lanes(lane);
  for (; j < n; j++) s += f(x[j]);
  return s;
}

// Σ exp(x[j] − shift); with Store, x[j] is replaced by its term (x is only written then).
template <bool Store>
MOUSSE_INLINE double exp_sum(float* x, int64_t n, float shift) {
  double lane[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; l++) {
      const float e = exp_diff_inline(x[j + l], shift);
      if (Store) x[j + l] = e;
      lane[l] += double(e);
    }
  double s = add_lanes(lane);
  for (; j < n; j++) {
    const float e = exp_diff_inline(x[j], shift);
    if (Store) x[j] = e;
    s += double(e);
  }
  return s;
}

// ops.h's AdamW and Lion, element by element in double.
// AdamW as PyTorch writes it: step lr / bc1 and denominator sqrt(v) / sqrt(bc2) + eps (the same
// value as ops.h's formula up to double round-off), with one division and one square root per
// element: double division is the slowest vector instruction, and with four the update was
// bound by the divider rather than by memory.
template <class T, class G>
MOUSSE_INLINE void adamw(T* __restrict p, const G* __restrict g, T* __restrict m,
                         T* __restrict v, int64_t n, const AdamWArgs& a) {
  const double b1 = a.beta1, b2 = a.beta2, decay = 1.0 - a.lr * a.weight_decay;
  const double step = a.lr / a.bias_correction1, inv_sqrt_bc2 = 1.0 / std::sqrt(a.bias_correction2);
  const double eps = a.eps, gs = a.grad_scale;
  for (int64_t i = 0; i < n; i++) {
    const double gi = gs * double(g[i]);
    const double mi = b1 * double(m[i]) + (1.0 - b1) * gi;
    const double vi = b2 * double(v[i]) + (1.0 - b2) * gi * gi;
    m[i] = T(mi);
    v[i] = T(vi);
    p[i] = T(double(p[i]) * decay - step * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps));
  }
}

template <class T, class G>
MOUSSE_INLINE void lion(T* __restrict p, const G* __restrict g, T* __restrict m, int64_t n,
                        const LionArgs& a) {
  const double b1 = a.beta1, b2 = a.beta2, lr = a.lr, decay = 1.0 - a.lr * a.weight_decay;
  const double gs = a.grad_scale;
  for (int64_t i = 0; i < n; i++) {
    const double gi = gs * double(g[i]);
    const double c = b1 * double(m[i]) + (1.0 - b1) * gi;
    const double u = double((c > 0.0) - (c < 0.0));  // sign, 0 at 0 (as torch.sign)
    m[i] = T(b2 * double(m[i]) + (1.0 - b2) * gi);
    p[i] = T(double(p[i]) * decay - lr * u);
  }
}

}  // namespace

MOUSSE_CPU_CLONES float exp_f32(float x) { return exp_inline(x); }

MOUSSE_CPU_CLONES float max_f32(const float* x, int64_t n) {
  float m = x[0];
#pragma omp simd reduction(max : m)  // any order gives the same maximum
  for (int64_t j = 1; j < n; j++) m = x[j] > m ? x[j] : m;
  return m;
}

MOUSSE_CPU_CLONES double exp_sum_f32(const float* x, int64_t n, float shift) {
  return exp_sum<false>(const_cast<float*>(x), n, shift);
}

MOUSSE_CPU_CLONES double exp_sum_inplace_f32(float* x, int64_t n, float shift) {
  return exp_sum<true>(x, n, shift);
}

MOUSSE_CPU_CLONES void exp_inplace_f32(float* x, int64_t n, float shift) {
  for (int64_t j = 0; j < n; j++) x[j] = exp_diff_inline(x[j], shift);
}

MOUSSE_CPU_CLONES void scale_f32(float* x, int64_t n, float c) {
  for (int64_t j = 0; j < n; j++) x[j] *= c;
}

MOUSSE_CPU_CLONES double lane_sum(const float* x, int64_t n) {
  return lane_reduce(x, n, [](float v) { return double(v); });
}
MOUSSE_CPU_CLONES double lane_sum(const double* x, int64_t n) {
  return lane_reduce(x, n, [](double v) { return v; });
}
MOUSSE_CPU_CLONES double lane_sum_squares(const float* x, int64_t n) {
  return lane_reduce(x, n, [](float v) { return double(v) * double(v); });
}
MOUSSE_CPU_CLONES double lane_sum_squares(const double* x, int64_t n) {
  return lane_reduce(x, n, [](double v) { return v * v; });
}

MOUSSE_CPU_CLONES void adamw_range(float* p, const float* g, float* m, float* v, int64_t n,
                                   const AdamWArgs& a) {
  adamw(p, g, m, v, n, a);
}
MOUSSE_CPU_CLONES void adamw_range(double* p, const double* g, double* m, double* v, int64_t n,
                                   const AdamWArgs& a) {
  adamw(p, g, m, v, n, a);
}
MOUSSE_CPU_CLONES void adamw_range(double* p, const float* g, double* m, double* v, int64_t n,
                                   const AdamWArgs& a) {
  adamw(p, g, m, v, n, a);
}
MOUSSE_CPU_CLONES void lion_range(float* p, const float* g, float* m, int64_t n,
                                  const LionArgs& a) {
  lion(p, g, m, n, a);
}
MOUSSE_CPU_CLONES void lion_range(double* p, const double* g, double* m, int64_t n,
                                  const LionArgs& a) {
  lion(p, g, m, n, a);
}
MOUSSE_CPU_CLONES void lion_range(double* p, const float* g, double* m, int64_t n,
                                  const LionArgs& a) {
  lion(p, g, m, n, a);
}

}  // namespace MOUSSE_CPU_VEC_NAMESPACE
}  // namespace mousse
