#pragma once
// Helpers for the GPU tests and the op benchmark: device tensors owned by a backend, host
// upload/download with dtype conversion (bf16 rounds to nearest even), seeded random data and
// scale-relative comparisons.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/ops.h"

namespace mousse {
namespace gputest {

inline uint16_t f2bf(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7F800000u) == 0x7F800000u) return uint16_t(b >> 16);  // inf / nan
  b += 0x7FFFu + ((b >> 16) & 1u);
  return uint16_t(b >> 16);
}
inline float bf2f(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline float round_bf16(float f) { return bf2f(f2bf(f)); }
inline void round_bf16(std::vector<float>& v) {
  for (float& x : v) x = round_bf16(x);
}

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.f, float shift = 0.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = shift + scale * d(rng);
  return v;
}
inline std::vector<float> randu(size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// The two backends the GPU tests compare, one of each per test program: the CPU reference and
// the CUDA backend.
inline Ops& cpu() {
  static std::unique_ptr<Ops> o = make_cpu_ops();
  return *o;
}
inline Ops& gpu() {
  static std::unique_ptr<Ops> o = make_cuda_ops();
  return *o;
}

// A tensor allocated on (and freed by) one backend.
class DevTensor {
 public:
  DevTensor() = default;
  DevTensor(Ops& ops, DType dt, Shape s) : ops_(&ops) {
    t_.dtype = dt;
    t_.device = ops.device();
    t_.shape = s;
    t_.data = ops.alloc(t_.bytes() ? t_.bytes() : 16);
  }
  DevTensor(const DevTensor&) = delete;
  DevTensor& operator=(const DevTensor&) = delete;
  DevTensor(DevTensor&& o) noexcept : ops_(o.ops_), t_(o.t_) { o.t_.data = nullptr; }
  ~DevTensor() {
    if (ops_ && t_.data) ops_->free(t_.data);
  }
  const Tensor& operator*() const { return t_; }
  const Tensor* operator->() const { return &t_; }
  operator const Tensor&() const { return t_; }

 private:
  Ops* ops_ = nullptr;
  Tensor t_;
};

inline void upload(Ops& ops, const Tensor& t, const std::vector<float>& v) {
  MOUSSE_CHECK(int64_t(v.size()) == t.numel(), "upload size");
  switch (t.dtype) {
    case DType::f32: ops.from_host(t, v.data()); break;
    case DType::f64: {
      std::vector<double> d(v.begin(), v.end());
      ops.from_host(t, d.data());
      break;
    }
    case DType::bf16: {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); i++) h[i] = f2bf(v[i]);
      ops.from_host(t, h.data());
      break;
    }
    case DType::i32: {
      std::vector<int32_t> h(v.size());
      for (size_t i = 0; i < v.size(); i++) h[i] = int32_t(v[i]);
      ops.from_host(t, h.data());
      break;
    }
  }
  ops.synchronize();
}

inline DevTensor make(Ops& ops, DType dt, Shape s, const std::vector<float>& init) {
  DevTensor t(ops, dt, s);
  upload(ops, *t, init);
  return t;
}
// An output tensor filled with NaN: an op that leaves any element unwritten fails the
// comparison (fresh device memory often still holds the previous case's results).
inline DevTensor make_nan(Ops& ops, DType dt, Shape s) {
  DevTensor t(ops, dt, s);
  ops.fill(*t, std::nan(""));
  return t;
}
inline DevTensor make_zero(Ops& ops, DType dt, Shape s) {
  DevTensor t(ops, dt, s);
  ops.fill(*t, 0.0);
  return t;
}

inline std::vector<double> download(Ops& ops, const Tensor& t) {
  std::vector<double> out(size_t(t.numel()));
  switch (t.dtype) {
    case DType::f32: {
      std::vector<float> h(out.size());
      ops.to_host(h.data(), t);
      for (size_t i = 0; i < h.size(); i++) out[i] = h[i];
      break;
    }
    case DType::f64: ops.to_host(out.data(), t); break;
    case DType::bf16: {
      std::vector<uint16_t> h(out.size());
      ops.to_host(h.data(), t);
      for (size_t i = 0; i < h.size(); i++) out[i] = bf2f(h[i]);
      break;
    }
    case DType::i32: {
      std::vector<int32_t> h(out.size());
      ops.to_host(h.data(), t);
      for (size_t i = 0; i < h.size(); i++) out[i] = h[i];
      break;
    }
  }
  return out;
}

// Worst-case error ratio of got vs want: max_i |g - w| / (atol + rtol |w|), atol = rtol * max|w|
// (errors are relative to the tensor's scale). <= 1 passes. Also reports the worst index.
struct CloseResult {
  double ratio = 0.0;
  size_t worst = 0;
  double got = 0, want = 0, max_abs_want = 0;
  bool nonfinite = false;
};
inline CloseResult closeness(const std::vector<double>& got, const std::vector<double>& want,
                             double rtol) {
  CloseResult r;
  for (double w : want) r.max_abs_want = std::max(r.max_abs_want, std::fabs(w));
  const double atol = rtol * std::max(r.max_abs_want, 1e-30);
  for (size_t i = 0; i < got.size() && i < want.size(); i++) {
    if (!std::isfinite(got[i]) && std::isfinite(want[i])) r.nonfinite = true;
    const double e = std::fabs(got[i] - want[i]) / (atol + rtol * std::fabs(want[i]));
    if (!(e <= r.ratio)) {  // also catches NaN
      r.ratio = std::isnan(e) ? 1e300 : e;
      r.worst = i;
      r.got = got[i];
      r.want = want[i];
    }
  }
  return r;
}

}  // namespace gputest
}  // namespace mousse
