// Causal softmax attention over the fused qkv [B, T, 3C] = (q | k | v), head h at columns
// h*hd .. (h+1)*hd of each C block; scores S = q·k / sqrt(hd) over the causal prefix j <= i.
//
// Forward, per (b, h) and query row i:
//   lse_i = log Σ_{j<=i} exp(S_ij),   out_i = Σ_{j<=i} exp(S_ij − lse_i) v_j
// Backward recomputes P from lse (flash-attention style):
//   P = exp(S − lse), dV = Pᵀ dO, dP = dO Vᵀ, D_i = dO_i · O_i, dS = P ∘ (dP − D),
//   dQ = dS K · scale, dK = dSᵀ Q · scale.
//
// One (b, h) pair per OpenMP iteration, one query row at a time: the scores live in an O(T)
// per-thread buffer, dK/dV in O(T·hd) per-thread accumulators; dot products and sums are in
// double, outputs rounded once to the tensor dtype.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"

namespace mousse {

using namespace cpu;

namespace {

template <class T>
double dot(const T* a, const T* b, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += double(a[i]) * double(b[i]);
  return s;
}

struct AttnDims {
  int64_t B, T, C, H, hd;
};

AttnDims attn_dims(const char* op, const Tensor& qkv, int n_head) {
  if (qkv.shape.ndim != 3)
    fail(op, ": qkv ", qkv.shape.str(), " must be 3-D [B, T, 3C]");
  const int64_t B = qkv.shape[0], T = qkv.shape[1], C3 = qkv.shape[2];
  if (B <= 0 || T <= 0 || C3 <= 0 || C3 % 3 != 0)
    fail(op, ": qkv ", qkv.shape.str(), " must be [B, T, 3C] with B, T, C > 0");
  const int64_t C = C3 / 3;
  if (n_head <= 0 || C % n_head != 0)
    fail(op, ": n_head ", n_head, " does not divide the model width C = ", C);
  return {B, T, C, n_head, C / n_head};
}

// Pointers into the fused layout for one (b, h).
template <class T>
struct HeadView {
  const T* qkv;
  int64_t C, hd, row0, h;  // row0 = b*T
  const T* q(int64_t i) const { return qkv + (row0 + i) * 3 * C + h * hd; }
  const T* k(int64_t j) const { return qkv + (row0 + j) * 3 * C + C + h * hd; }
  const T* v(int64_t j) const { return qkv + (row0 + j) * 3 * C + 2 * C + h * hd; }
};

// s[j] = scale * q_i · k_j for j <= i.
template <class T>
void scores_row(double* s, const HeadView<T>& hv, int64_t i, double scale) {
  const T* q = hv.q(i);
  for (int64_t j = 0; j <= i; j++) s[j] = scale * dot(q, hv.k(j), hv.hd);
}

}  // namespace

void CpuOps::attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                               int n_head) {
  const char* op = "attention_forward";
  check_float(op, "qkv", qkv);
  check_dtype(op, "out", out, "qkv", qkv);
  check_dtype(op, "lse", lse, "qkv", qkv);
  const AttnDims d = attn_dims(op, qkv, n_head);
  check_numel(op, "out", out, d.B * d.T * d.C, "[B, T, C]");
  check_numel(op, "lse", lse, d.B * d.H * d.T, "[B, H, T]");
  const double scale = 1.0 / std::sqrt(double(d.hd));
  const int64_t BH = d.B * d.H, T = d.T, C = d.C, hd = d.hd;
  dispatch_float(op, qkv.dtype, [&](auto tag) {
    using Ty = decltype(tag);
    Ty* o_all = out.ptr<Ty>();
    Ty* lse_all = lse.ptr<Ty>();
#pragma omp parallel for schedule(dynamic, 1) if (BH * T * T * hd >= kParallelMin)
    for (int64_t bh = 0; bh < BH; bh++) {
      thread_local std::vector<double> s_buf, o_buf;
      double* s = grow(s_buf, size_t(T));
      double* acc = grow(o_buf, size_t(hd));
      const int64_t b = bh / d.H, h = bh % d.H;
      const HeadView<Ty> hv{qkv.ptr<Ty>(), C, hd, b * T, h};
      for (int64_t i = 0; i < T; i++) {
        scores_row(s, hv, i, scale);
        const double m = *std::max_element(s, s + i + 1);
        double l = 0.0;
        for (int64_t j = 0; j <= i; j++) l += std::exp(s[j] - m);
        const double lse_i = m + std::log(l);
        std::fill(acc, acc + hd, 0.0);
        for (int64_t j = 0; j <= i; j++) {
          const double p = std::exp(s[j] - lse_i);
          const Ty* v = hv.v(j);
          for (int64_t c = 0; c < hd; c++) acc[c] += p * double(v[c]);
        }
        Ty* o = o_all + (b * T + i) * C + h * hd;
        for (int64_t c = 0; c < hd; c++) o[c] = Ty(acc[c]);
        lse_all[(b * d.H + h) * T + i] = Ty(lse_i);
      }
    }
  });
}

void CpuOps::attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                                const Tensor& out, const Tensor& lse, int n_head) {
  const char* op = "attention_backward";
  check_float(op, "qkv", qkv);
  check_dtype(op, "dqkv", dqkv, "qkv", qkv);
  check_dtype(op, "dout", dout, "qkv", qkv);
  check_dtype(op, "out", out, "qkv", qkv);
  check_dtype(op, "lse", lse, "qkv", qkv);
  const AttnDims d = attn_dims(op, qkv, n_head);
  check_same_numel(op, "dqkv", dqkv, "qkv", qkv);
  check_numel(op, "dout", dout, d.B * d.T * d.C, "[B, T, C]");
  check_numel(op, "out", out, d.B * d.T * d.C, "[B, T, C]");
  check_numel(op, "lse", lse, d.B * d.H * d.T, "[B, H, T]");
  const double scale = 1.0 / std::sqrt(double(d.hd));
  const int64_t BH = d.B * d.H, T = d.T, C = d.C, hd = d.hd;
  dispatch_float(op, qkv.dtype, [&](auto tag) {
    using Ty = decltype(tag);
    const Ty* dO_all = dout.ptr<Ty>();
    const Ty* O_all = out.ptr<Ty>();
    const Ty* lse_all = lse.ptr<Ty>();
    Ty* dqkv_all = dqkv.ptr<Ty>();
#pragma omp parallel for schedule(dynamic, 1) if (BH * T * T * hd >= kParallelMin)
    for (int64_t bh = 0; bh < BH; bh++) {
      thread_local std::vector<double> s_buf, dq_buf, dk_buf, dv_buf;
      double* s = grow(s_buf, size_t(T));      // scores, then P, then dS of one query row
      double* dq = grow(dq_buf, size_t(hd));   // dQ of one query row
      double* dk = grow(dk_buf, size_t(T * hd));  // dK of this (b, h), all rows
      double* dv = grow(dv_buf, size_t(T * hd));  // dV of this (b, h), all rows
      std::fill(dk, dk + T * hd, 0.0);
      std::fill(dv, dv + T * hd, 0.0);
      const int64_t b = bh / d.H, h = bh % d.H;
      const HeadView<Ty> hv{qkv.ptr<Ty>(), C, hd, b * T, h};
      for (int64_t i = 0; i < T; i++) {
        const Ty* dO = dO_all + (b * T + i) * C + h * hd;
        const Ty* O = O_all + (b * T + i) * C + h * hd;
        const double lse_i = double(lse_all[(b * d.H + h) * T + i]);
        const double D = dot(dO, O, hd);
        scores_row(s, hv, i, scale);
        for (int64_t j = 0; j <= i; j++) {
          const double p = std::exp(s[j] - lse_i);
          for (int64_t c = 0; c < hd; c++) dv[j * hd + c] += p * double(dO[c]);  // dV = Pᵀ dO
          const double dp = dot(dO, hv.v(j), hd);                                 // dP = dO Vᵀ
          s[j] = p * (dp - D);                                                    // dS
        }
        std::fill(dq, dq + hd, 0.0);
        const Ty* q = hv.q(i);
        for (int64_t j = 0; j <= i; j++) {
          const double ds = s[j] * scale;
          const Ty* k = hv.k(j);
          for (int64_t c = 0; c < hd; c++) {
            dq[c] += ds * double(k[c]);              // dQ = dS K · scale
            dk[j * hd + c] += ds * double(q[c]);     // dK = dSᵀ Q · scale
          }
        }
        Ty* dq_out = dqkv_all + (b * T + i) * 3 * C + h * hd;
        for (int64_t c = 0; c < hd; c++) dq_out[c] = Ty(dq[c]);
      }
      for (int64_t j = 0; j < T; j++) {
        Ty* dk_out = dqkv_all + (b * T + j) * 3 * C + C + h * hd;
        Ty* dv_out = dqkv_all + (b * T + j) * 3 * C + 2 * C + h * hd;
        for (int64_t c = 0; c < hd; c++) {
          dk_out[c] = Ty(dk[j * hd + c]);
          dv_out[c] = Ty(dv[j * hd + c]);
        }
      }
    }
  });
}

}  // namespace mousse
