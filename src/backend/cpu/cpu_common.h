#pragma once
// The CPU backend's own argument checks and dtype dispatch, shared by its kernels (internal to
// backend/cpu). The shapes are checked before a kernel runs, by the Ops fronts (backend/ops.cpp,
// with the helpers of backend/op_checks.h, which the kernels use for their dimensions too); what
// is checked here is the CPU's: cpu tensors, f32 or f64 (one dtype per op), i32 indices, no empty
// operands where BLAS/LAPACK or the reference's loops need one. Every failure names the op and
// the offending tensor ("scale: x is bf16; ...").
#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/op_checks.h"
#include "core/error.h"
#include "core/tensor.h"

namespace mousse {
namespace cpu {

constexpr double kRmsNormEps = 1e-6;  // rmsnorm(x) = x / sqrt(mean(x²) + 1e-6) everywhere
constexpr int64_t kParallelMin = 1 << 14;  // below this many elements, OpenMP costs more than it saves
// Loops whose iterations are independent take them in chunks, dynamically: on a busy machine a
// thread that gets a core late takes fewer chunks instead of holding the others at the barrier
// with a fixed half (the results do not depend on which thread computes a chunk).
constexpr int kRowChunk = 16;        // rows per chunk
constexpr int kElementChunk = 4096;  // elements per chunk of an elementwise loop

// Defined (or empty) and on the CPU.
inline void check_cpu(const char* op, const char* what, const Tensor& t) {
  if (t.device != Device::cpu)
    fail(op, ": ", what, " is a ", device_name(t.device), " tensor; the CPU backend needs cpu tensors");
  if (!t.defined() && t.numel() != 0)
    fail(op, ": ", what, " ", t.shape.str(), " has no memory (not allocated?)");
}

// f32 or f64 (the CPU backend computes in nothing else).
inline void check_float(const char* op, const char* what, const Tensor& t) {
  check_cpu(op, what, t);
  if (t.dtype != DType::f32 && t.dtype != DType::f64)
    fail(op, ": ", what, " is ", dtype_name(t.dtype),
         "; the CPU backend computes in f32 or f64 only (bf16 is a CUDA activation format)");
}

// Same dtype as the op's reference tensor (on the CPU every float tensor of an op agrees).
inline void check_dtype(const char* op, const char* what, const Tensor& t, const char* ref_what,
                        const Tensor& ref) {
  check_float(op, what, t);
  if (t.dtype != ref.dtype)
    fail(op, ": ", what, " is ", dtype_name(t.dtype), " but ", ref_what, " is ",
         dtype_name(ref.dtype), "; on the CPU every float tensor of an op has the same dtype");
}

inline void check_i32(const char* op, const char* what, const Tensor& t) {
  check_cpu(op, what, t);
  if (t.dtype != DType::i32)
    fail(op, ": ", what, " is ", dtype_name(t.dtype), "; expected i32 indices");
}

// Not empty (the CPU computes no empty products, norms or decompositions).
inline void check_not_empty(const char* op, const char* what, const Tensor& t) {
  if (t.numel() == 0) fail(op, ": ", what, " ", t.shape.str(), " is empty");
}

// Runs f(T{}) with T = float or double according to dt; anything else is an error naming op.
template <class F>
void dispatch_float(const char* op, DType dt, F&& f) {
  switch (dt) {
    case DType::f32: f(float{}); return;
    case DType::f64: f(double{}); return;
    default:
      fail(op, ": dtype ", dtype_name(dt),
           " is not supported by the CPU backend (f32 or f64 only; bf16 is CUDA-only)");
  }
}

// f(lo, hi) for the chunks [lo, hi) of [0, n), `chunk` elements each, spread over the OpenMP
// threads; a tensor of one chunk stays on the calling thread (no fork). Dynamic scheduling: on a
// busy machine, a thread that gets a core late takes fewer chunks instead of holding up the rest.
// Only for work whose result does not depend on which thread does which chunk.
template <class F>
void parallel_chunks(int64_t n, int64_t chunk, F&& f) {
  const int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1) if (chunks > 1)
  for (int64_t c = 0; c < chunks; c++) f(c * chunk, std::min(n, (c + 1) * chunk));
}

// Scratch memory that grows once and is then reused (no malloc per call): pass a
// `thread_local std::vector<T>` declared at the use site, one per buffer.
template <class T>
T* grow(std::vector<T>& buf, size_t n) {
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace cpu
}  // namespace mousse
