// Causal softmax attention over the fused qkv [B, T, 3C] = (q | k | v), head h at columns
// h*hd .. (h+1)*hd of each C block; scores S = q·k / sqrt(hd) over the causal prefix j <= i.
//
// One (b, h) at a time, as T×T blocks (the head's Q, K, V, O are strided sub-matrices used in
// place by BLAS, leading dimension 3C or C):
//   forward:   S = scale Q Kᵀ;  lse_i = log Σ_{j<=i} exp(S_ij);  P = exp(S − lse) (0 for j > i);
//              O = P V
//   backward (recomputes P from lse, flash-attention style):
//              dV = Pᵀ dO;  dP = dO Vᵀ;  D_i = dO_i · O_i;  dS = P ∘ (dP − D);
//              dQ = scale dS K;  dK = scale dSᵀ Q
// OpenMP over the B·H heads, each thread with its own T×T scratch (grown once, reused) and
// serial BLAS calls; softmax sums in double (f32: exponentials in f32, cpu_vec.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_blas.h"
#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_vec.h"

namespace mousse {

using namespace cpu;

namespace {

// P (=) exp(S − lse_i) on the causal prefix of each row, 0 above the diagonal (in place on S).
// f32 takes cpu_vec.h's vectorised exp (f32 round-off); f64 libm's.
template <class T>
void probabilities(T* S, const T* lse, int64_t Tn) {
  for (int64_t i = 0; i < Tn; i++) {
    T* row = S + i * Tn;
    const double l = double(lse[i]);
    for (int64_t j = 0; j <= i; j++) row[j] = T(std::exp(double(row[j]) - l));
    std::fill(row + i + 1, row + Tn, T(0));
  }
}
void probabilities(float* S, const float* lse, int64_t Tn) {
  for (int64_t i = 0; i < Tn; i++) {
    float* row = S + i * Tn;
    exp_inplace_f32(row, i + 1, lse[i]);
    std::fill(row + i + 1, row + Tn, 0.f);
  }
}

// The forward's softmax in place on S: lse_i (=) log Σ_{j<=i} exp(S_ij) over each row's causal
// prefix (max-subtracted, summed in double) and S (=) P as probabilities() leaves it.
template <class T>
void causal_softmax(T* S, T* L, int64_t Tn) {
  for (int64_t i = 0; i < Tn; i++) {
    const T* row = S + i * Tn;
    const double m = double(*std::max_element(row, row + i + 1));
    double sum = 0.0;
    for (int64_t j = 0; j <= i; j++) sum += std::exp(double(row[j]) - m);
    L[i] = T(m + std::log(sum));
  }
  probabilities(S, L, Tn);
}
// f32: each exponential computed once, P = e / Σe (the backward recomputes P as exp(S − lse),
// equal to f32 round-off).
void causal_softmax(float* S, float* L, int64_t Tn) {
  for (int64_t i = 0; i < Tn; i++) {
    float* row = S + i * Tn;
    const float m = max_f32(row, i + 1);
    const double sum = exp_sum_inplace_f32(row, i + 1, m);
    L[i] = float(double(m) + std::log(sum));
    scale_f32(row, i + 1, float(1.0 / sum));
    std::fill(row + i + 1, row + Tn, 0.f);
  }
}

}  // namespace

void CpuOps::attention_forward_impl(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                                    int n_head) {
  const char* op = "attention_forward";
  check_float(op, "qkv", qkv);
  check_dtype(op, "out", out, "qkv", qkv);
  check_dtype(op, "lse", lse, "qkv", qkv);
  check_not_empty(op, "qkv", qkv);
  const QkvDims d = qkv_dims(op, qkv, n_head);
  const double scale = 1.0 / std::sqrt(double(d.hd));
  const int64_t Tn = d.T, C = d.C, hd = d.hd;
  dispatch_float(op, qkv.dtype, [&](auto tag) {
    using T = decltype(tag);
#pragma omp parallel for schedule(dynamic)
    for (int64_t bh = 0; bh < d.B * d.H; bh++) {
        const int64_t b = bh / d.H, h = bh % d.H;
        thread_local std::vector<T> s_buf;
        T* S = grow(s_buf, size_t(Tn * Tn));
        const T* Q = qkv.ptr<T>() + b * Tn * 3 * C + h * hd;  // [T, hd], leading dim 3C
        const T* K = Q + C;
        const T* V = Q + 2 * C;
        T* O = out.ptr<T>() + b * Tn * C + h * hd;  // [T, hd], leading dim C
        T* L = lse.ptr<T>() + (b * d.H + h) * Tn;   // [T]
        gemm(false, true, Tn, Tn, hd, scale, Q, 3 * C, K, 3 * C, 0.0, S, Tn);  // S = scale Q Kᵀ
        causal_softmax(S, L, Tn);
        gemm(false, false, Tn, hd, Tn, 1.0, S, Tn, V, 3 * C, 0.0, O, C);  // O = P V
      }
  });
}

void CpuOps::attention_backward_impl(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                     const Tensor& out, const Tensor& lse, int n_head) {
  const char* op = "attention_backward";
  check_float(op, "qkv", qkv);
  check_dtype(op, "dqkv", dqkv, "qkv", qkv);
  check_dtype(op, "dout", dout, "qkv", qkv);
  check_dtype(op, "out", out, "qkv", qkv);
  check_dtype(op, "lse", lse, "qkv", qkv);
  check_not_empty(op, "qkv", qkv);
  const QkvDims d = qkv_dims(op, qkv, n_head);
  const double scale = 1.0 / std::sqrt(double(d.hd));
  const int64_t Tn = d.T, C = d.C, hd = d.hd;
  dispatch_float(op, qkv.dtype, [&](auto tag) {
    using T = decltype(tag);
#pragma omp parallel for schedule(dynamic)
    for (int64_t bh = 0; bh < d.B * d.H; bh++) {
        const int64_t b = bh / d.H, h = bh % d.H;
        thread_local std::vector<T> p_buf, dp_buf;
        T* P = grow(p_buf, size_t(Tn * Tn));
        T* dS = grow(dp_buf, size_t(Tn * Tn));
        const T* Q = qkv.ptr<T>() + b * Tn * 3 * C + h * hd;  // leading dim 3C
        const T* K = Q + C;
        const T* V = Q + 2 * C;
        T* dQ = dqkv.ptr<T>() + b * Tn * 3 * C + h * hd;  // leading dim 3C
        T* dK = dQ + C;
        T* dV = dQ + 2 * C;
        const T* O = out.ptr<T>() + b * Tn * C + h * hd;  // leading dim C
        const T* dO = dout.ptr<T>() + b * Tn * C + h * hd;
        const T* L = lse.ptr<T>() + (b * d.H + h) * Tn;
        gemm(false, true, Tn, Tn, hd, scale, Q, 3 * C, K, 3 * C, 0.0, P, Tn);  // S = scale Q Kᵀ
        probabilities(P, L, Tn);                                                // P = exp(S − lse)
        gemm(true, false, Tn, hd, Tn, 1.0, P, Tn, dO, C, 0.0, dV, 3 * C);       // dV = Pᵀ dO
        gemm(false, true, Tn, Tn, hd, 1.0, dO, C, V, 3 * C, 0.0, dS, Tn);       // dP = dO Vᵀ
        for (int64_t i = 0; i < Tn; i++) {  // dS = P ∘ (dP − D), D_i = dO_i · O_i
          double D = 0.0;
          for (int64_t c = 0; c < hd; c++) D += double(dO[i * C + c]) * double(O[i * C + c]);
          T* ds = dS + i * Tn;
          const T* p = P + i * Tn;
          for (int64_t j = 0; j <= i; j++) ds[j] = T(double(p[j]) * (double(ds[j]) - D));
          std::fill(ds + i + 1, ds + Tn, T(0));
        }
        gemm(false, false, Tn, hd, Tn, scale, dS, Tn, K, 3 * C, 0.0, dQ, 3 * C);  // dQ = scale dS K
        gemm(true, false, Tn, hd, Tn, scale, dS, Tn, Q, 3 * C, 0.0, dK, 3 * C);   // dK = scale dSᵀ Q
      }
  });
}

}  // namespace mousse
