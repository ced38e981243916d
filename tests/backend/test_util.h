#pragma once
// Helpers for the CPU backend tests: host tensors, seeded random fills, finite differences.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "backend/ops.h"

namespace mousse {
namespace test {

// A tensor with its own host storage (the CPU backend's device memory is host memory).
template <class T>
struct Buf {
  std::vector<T> v;
  Tensor t;

  explicit Buf(Shape s) : v(size_t(s.numel())) { point(s); }
  Buf(const Buf& o) : v(o.v) { point(o.t.shape); }
  Buf& operator=(const Buf& o) {
    v = o.v;
    point(o.t.shape);
    return *this;
  }
  T& operator[](size_t i) { return v[i]; }
  const T& operator[](size_t i) const { return v[i]; }
  size_t size() const { return v.size(); }
  operator const Tensor&() const { return t; }

 private:
  void point(Shape s) {
    t.data = v.data();
    t.dtype = DTypeOf<T>::value;
    t.device = Device::cpu;
    t.shape = s;
  }
};

// N(0, sd²) entries from a seeded generator (never zeros).
template <class T = double>
Buf<T> randn(Shape s, std::mt19937_64& rng, double sd = 1.0) {
  Buf<T> b(s);
  std::normal_distribution<double> d(0.0, sd);
  for (auto& x : b.v) x = T(d(rng));
  return b;
}

template <class T = double>
Buf<T> uniform(Shape s, std::mt19937_64& rng, double lo, double hi) {
  Buf<T> b(s);
  std::uniform_real_distribution<double> d(lo, hi);
  for (auto& x : b.v) x = T(d(rng));
  return b;
}

inline Buf<int32_t> random_ids(int64_t n, int32_t bound, std::mt19937_64& rng) {
  Buf<int32_t> b(Shape{n});
  std::uniform_int_distribution<int32_t> d(0, bound - 1);
  for (auto& x : b.v) x = d(rng);
  return b;
}

// Same values, another dtype.
template <class To, class From>
Buf<To> cast(const Buf<From>& b) {
  Buf<To> r(b.t.shape);
  for (size_t i = 0; i < b.size(); i++) r[i] = To(b[i]);
  return r;
}

// ||a - b|| / max(||b||, 1e-300): norm-wise relative error.
template <class A, class B>
double rel_err(const std::vector<A>& a, const std::vector<B>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

template <class A, class B>
double max_abs_diff(const std::vector<A>& a, const std::vector<B>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0.0;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

// sum(out ∘ r): the random projection loss whose gradient w.r.t. out is r.
inline double project(const Buf<double>& out, const Buf<double>& r) {
  double s = 0.0;
  for (size_t i = 0; i < out.size(); i++) s += out[i] * r[i];
  return s;
}

// Central differences of loss() w.r.t. every element of x (perturbed in place, then restored).
inline std::vector<double> numeric_grad(Buf<double>& x, const std::function<double()>& loss,
                                        double h = 1e-5) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

// Tolerance for finite differences in double (central differences, h = 1e-5).
constexpr double kFdTol = 1e-6;
// Tolerance for float vs double agreement of one op.
constexpr double kF32Tol = 1e-5;

inline Tensor bf16_tensor(void* data, Shape s) {
  Tensor t;
  t.data = data;
  t.dtype = DType::bf16;
  t.shape = s;
  return t;
}

}  // namespace test
}  // namespace mousse
