// Token embedding: out[n, :] = wte[tokens[n], :]; backward scatters dout rows into dwte.
#include <algorithm>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_ops.h"

namespace mousse {

using namespace cpu;

namespace {

// The dtypes, and every token id a row of the table (the shapes are the front's).
void check_embedding(const char* op, const char* out_name, const Tensor& out,
                     const char* wte_name, const Tensor& wte, const Tensor& tokens) {
  check_float(op, wte_name, wte);
  check_dtype(op, out_name, out, wte_name, wte);
  check_i32(op, "tokens", tokens);
  if (wte.numel() == 0) fail(op, ": empty embedding table ", wte.shape.str());
  const int32_t* tok = tokens.ptr<int32_t>();
  const int64_t V = wte.rows();
  for (int64_t n = 0; n < tokens.numel(); n++)
    if (tok[n] < 0 || tok[n] >= V)
      fail(op, ": token ", tok[n], " at position ", n, " is outside the embedding table (", V,
           " rows)");
}

}  // namespace

void CpuOps::embedding_forward_impl(const Tensor& out, const Tensor& wte,
                                    const Tensor& tokens) {
  const char* op = "embedding_forward";
  check_embedding(op, "out", out, "wte", wte, tokens);
  const int64_t N = out.rows(), C = out.cols();
  const int32_t* tok = tokens.ptr<int32_t>();
  dispatch_float(op, wte.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* w = wte.ptr<T>();
    T* o = out.ptr<T>();
#pragma omp parallel for schedule(dynamic, kRowChunk) if (N * C >= kParallelMin)
    for (int64_t n = 0; n < N; n++) std::copy(w + tok[n] * C, w + (tok[n] + 1) * C, o + n * C);
  });
}

// dwte[tokens[n], :] += dout[n, :]. Deterministic: each thread owns a range of channels and
// visits the positions n in order, so every element sums its contributions in the same order
// whatever the thread count, and no two threads touch the same element.
void CpuOps::embedding_backward_impl(const Tensor& dwte, const Tensor& dout,
                                     const Tensor& tokens) {
  const char* op = "embedding_backward";
  check_embedding(op, "dout", dout, "dwte", dwte, tokens);
  const int64_t N = dout.rows(), C = dout.cols();
  const int32_t* tok = tokens.ptr<int32_t>();
  dispatch_float(op, dwte.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* dw = dwte.ptr<T>();
    const T* dy = dout.ptr<T>();
    constexpr int64_t kChunk = 64;  // channels per task
    const int64_t nchunks = (C + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic, 1) if (N * C >= kParallelMin)
    for (int64_t chunk = 0; chunk < nchunks; chunk++) {
      const int64_t c0 = chunk * kChunk, c1 = std::min(C, c0 + kChunk);
      for (int64_t n = 0; n < N; n++) {
        T* row = dw + tok[n] * C;
        const T* g = dy + n * C;
        for (int64_t c = c0; c < c1; c++) row[c] += g[c];
      }
    }
  });
}

}  // namespace mousse
