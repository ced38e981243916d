#pragma once
// The Ops interface: every numerical operation the model and the optimizers perform.
// The model (src/model) and the optimizers (src/optim) are written ONCE against this interface;
// each backend implements it: backend/cpu (the reference: plain loops, OpenMP, BLAS/LAPACK,
// float and double) and cuda/ (kernels, cuBLASLt, cuSOLVER; float and bf16 activations).
//
// Conventions, shared by every backend (each CUDA op is tested against its CPU twin):
// - Tensors are row-major and contiguous. "[N, C]" means a tensor whose leading dims fold into
//   N rows of C columns (Tensor::rows()/cols()).
// - Ops are asynchronous on devices; anything returning a host value synchronises.
// - "(=)" means the op overwrites its output; "(+=)" means it accumulates into it.
// - Mixed dtypes: activations may be bf16 while parameters, gradients and optimizer state are
//   f32 (CUDA mixed precision). On the CPU every tensor of an op has the same dtype, f32 or f64,
//   except token ids (i32). Statistics saved for backward (rstd, lse) and losses are f32, or f64
//   when the activations are f64.
// - Model dims in the comments: B batch, T sequence, C model width, H heads, hd = C/H head dim,
//   V real vocabulary (50257), Vp padded vocabulary (50304).
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace mousse {

// Hyper-parameters of the elementwise optimizer updates, in double so that f64 state is updated
// in f64 throughout (`precision: f64`); a backend whose kernels compute in f32 rounds them there.
struct AdamWArgs {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1;  // 1 - beta1^t
  double bias_correction2;  // 1 - beta2^t
  double grad_scale;        // multiplies the gradient first (clipping, 1/accumulation)
};

struct LionArgs {
  double lr, beta1, beta2, weight_decay;
  double grad_scale;
};

// The working copy of the weights (bf16 under mixed precision) that an elementwise optimizer
// update may write in the same pass, instead of a separate copy_stochastic over all weights
// afterwards (which reads every new weight back). dst undefined: no copy. The update of element
// i is rounded as copy_stochastic(flat_dst, flat_weights, seed) rounds element index + i, so a
// fused update gives the separate flat copy bit for bit; index is the parameter's offset in the
// flat weights. Where dst has p's dtype (no separate copy) it is a plain copy.
struct ComputeCopy {
  Tensor dst;
  uint64_t seed = 0;
  int64_t index = 0;
};

// Every op of the backends, once: MOUSSE_OPS(X, XK) applies X or XK to each op's
// (result type, name, parameters, argument names), in the order of the fronts in class Ops below.
// From this list come the backends' virtual `name_impl` methods (declared pure in Ops, overridden
// in CpuOps and CudaOps with MOUSSE_OP_OVERRIDE) and ProfilingOps' timed forwarders; XK marks the
// ops whose profile row is not just the op's name but a key computed from the arguments (GEMM
// shapes and flops, dtypes, matrix shapes: ProfilingOps' key_<name> functions). The parameters are
// those of the op's front, without default arguments (a static_assert below keeps them equal).
#define MOUSSE_OPS(X, XK)                                                                         \
  X(void, fill, (const Tensor& x, double value), (x, value))                                      \
  XK(void, copy, (const Tensor& dst, const Tensor& src), (dst, src))                              \
  X(void, copy_stochastic, (const Tensor& dst, const Tensor& src, uint64_t seed),                 \
    (dst, src, seed))                                                                             \
  X(void, scale, (const Tensor& x, double alpha), (x, alpha))                                     \
  X(void, axpby, (const Tensor& y, double a, const Tensor& x, double b), (y, a, x, b))            \
  X(double, sum, (const Tensor& x), (x))                                                          \
  X(double, sum_squares, (const Tensor& x), (x))                                                  \
  XK(void, matmul,                                                                                \
     (const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,            \
      double alpha, double beta),                                                                 \
     (out, a, trans_a, b, trans_b, alpha, beta))                                                  \
  XK(void, matmul_batched,                                                                        \
     (const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,            \
      double alpha, double beta),                                                                 \
     (out, a, trans_a, b, trans_b, alpha, beta))                                                  \
  XK(void, matmul_tf32,                                                                           \
     (const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,            \
      double alpha, double beta),                                                                 \
     (out, a, trans_a, b, trans_b, alpha, beta))                                                  \
  X(void, embedding_forward, (const Tensor& out, const Tensor& wte, const Tensor& tokens),        \
    (out, wte, tokens))                                                                           \
  X(void, rmsnorm_forward, (const Tensor& out, const Tensor& rstd, const Tensor& inp),            \
    (out, rstd, inp))                                                                             \
  X(void, add_rmsnorm_forward,                                                                    \
    (const Tensor& res_out, const Tensor& norm_out, const Tensor& rstd, const Tensor& res_in,     \
     const Tensor& delta),                                                                        \
    (res_out, norm_out, rstd, res_in, delta))                                                     \
  X(void, qknorm_rope_forward,                                                                    \
    (const Tensor& qkv_out, const Tensor& rstd, const Tensor& qkv_in, int n_head,                 \
     float rope_base),                                                                            \
    (qkv_out, rstd, qkv_in, n_head, rope_base))                                                   \
  X(void, attention_forward,                                                                      \
    (const Tensor& out, const Tensor& lse, const Tensor& qkv, int n_head),                        \
    (out, lse, qkv, n_head))                                                                      \
  X(void, relu2_forward, (const Tensor& out, const Tensor& inp), (out, inp))                      \
  X(void, classifier,                                                                             \
    (const Tensor& losses, const Tensor& logits, const Tensor& targets, int64_t vocab_size,       \
     double grad_scale, bool compute_grad),                                                       \
    (losses, logits, targets, vocab_size, grad_scale, compute_grad))                              \
  X(void, embedding_backward, (const Tensor& dwte, const Tensor& dout, const Tensor& tokens),     \
    (dwte, dout, tokens))                                                                         \
  X(void, rmsnorm_backward,                                                                       \
    (const Tensor& dinp, const Tensor& dout, const Tensor& inp, const Tensor& rstd),              \
    (dinp, dout, inp, rstd))                                                                      \
  X(void, qknorm_rope_backward,                                                                   \
    (const Tensor& dqkv_in, const Tensor& dqkv_out, const Tensor& qkv_in, const Tensor& rstd,     \
     int n_head, float rope_base),                                                                \
    (dqkv_in, dqkv_out, qkv_in, rstd, n_head, rope_base))                                         \
  X(void, attention_backward,                                                                     \
    (const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& out,                \
     const Tensor& lse, int n_head),                                                              \
    (dqkv, dout, qkv, out, lse, n_head))                                                          \
  X(void, relu2_backward, (const Tensor& dinp, const Tensor& dout, const Tensor& inp),            \
    (dinp, dout, inp))                                                                            \
  XK(void, adamw_update,                                                                          \
     (const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamWArgs& args,  \
      const ComputeCopy& copy),                                                                   \
     (p, g, m, v, args, copy))                                                                    \
  XK(void, lion_update,                                                                           \
     (const Tensor& p, const Tensor& g, const Tensor& m, const LionArgs& args,                    \
      const ComputeCopy& copy),                                                                   \
     (p, g, m, args, copy))                                                                       \
  XK(int, eigh, (const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a),         \
     (eigenvectors, eigenvalues, a))                                                              \
  XK(void, qr_orthonormal, (const Tensor& q, const Tensor& a), (q, a))                            \
  X(void, scale_rows_cols,                                                                        \
    (const Tensor& out, const Tensor& inp, const Tensor& row_scale, const Tensor& col_scale),     \
    (out, inp, row_scale, col_scale))                                                             \
  X(void, pow_clamped, (const Tensor& out, const Tensor& inp, double exponent, double floor),     \
    (out, inp, exponent, floor))                                                                  \
  X(void, add_to_diagonal, (const Tensor& a, double value), (a, value))                           \
  X(double, trace, (const Tensor& a), (a))                                                        \
  X(void, transpose, (const Tensor& out, const Tensor& inp), (out, inp))                          \
  X(void, gather_columns, (const Tensor& out, const Tensor& inp, const Tensor& index),            \
    (out, inp, index))                                                                            \
  X(void, gather_rows, (const Tensor& out, const Tensor& inp, const Tensor& index),               \
    (out, inp, index))                                                                            \
  X(void, column_dots, (const Tensor& out, const Tensor& a, const Tensor& b), (out, a, b))        \
  X(void, ema_square, (const Tensor& v, const Tensor& x, double beta), (v, x, beta))              \
  X(void, adam_direction,                                                                         \
    (const Tensor& out, const Tensor& m, const Tensor& v, double eps, double bias_correction1,    \
     double bias_correction2),                                                                    \
    (out, m, v, eps, bias_correction1, bias_correction2))                                         \
  X(void, sum_squares_batched, (const Tensor& out, const Tensor& x), (out, x))                    \
  X(void, trace_to, (const Tensor& out, const Tensor& a), (out, a))                               \
  X(void, scale_by_ratio,                                                                         \
    (const Tensor& x, const Tensor& num, const Tensor& den, double power, double c,               \
     double alpha, double eps),                                                                   \
    (x, num, den, power, c, alpha, eps))                                                          \
  XK(std::vector<int>, eigh_batched,                                                              \
     (const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a),                    \
     (eigenvectors, eigenvalues, a))                                                              \
  XK(std::vector<int>, cholesky_batched, (const Tensor& a), (a))                                  \
  XK(void, solve_upper_right_batched, (const Tensor& x, const Tensor& r), (x, r))

// A backend's declaration of its implementation of one op: in the backend's class,
// MOUSSE_OPS(MOUSSE_OP_OVERRIDE, MOUSSE_OP_OVERRIDE) declares them all.
#define MOUSSE_OP_OVERRIDE(R, name, P, A) R name##_impl P override;

// The interface the model and the optimizers call. Each op is a non-virtual front that checks
// the arguments its contract fixes (shapes, element counts, slice splits, aliasing: ops.cpp; a
// violation is an error naming the op and the argument) and then calls the backend's
// `name_impl`. A backend checks only what is its own: the dtypes and devices it supports, and
// what needs the data (token ids in range).
class Ops {
 public:
  virtual ~Ops() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;  // "cpu (OpenBLAS, 2 threads)", "cuda (NVIDIA H100 ...)"
  // A second, independent backend on the same device, for work on another host thread (Mousse's
  // overlapped refresh): on CUDA its own stream, cuBLAS/cuSOLVER handles and workspaces (made
  // here, on the calling thread, on the current device). It may read and write tensors of this
  // backend's arena; ordering between the two is the caller's (finish one side's work, with
  // synchronize(), before the other uses it). Call bind_thread() on the thread that uses it.
  virtual std::unique_ptr<Ops> make_worker() const = 0;
  virtual void bind_thread() {}  // CUDA: makes this backend's device current on the caller

  // ---------------------------------------------------------------- memory
  virtual void* alloc(size_t bytes) = 0;  // used once, by the Arena
  virtual void free(void* p) = 0;
  virtual void to_host(void* dst, const Tensor& src) = 0;    // src.bytes() bytes; synchronises
  virtual void from_host(const Tensor& dst, const void* src) = 0;  // dst.bytes() bytes
  virtual void synchronize() = 0;
  // Page-locks host memory [p, p + bytes) so uploads from it are asynchronous DMA (cudaHostRegister
  // on CUDA; a no-op elsewhere). from_host() from a registered region may return before the copy
  // has read the source: call wait_host_buffer(p) before overwriting it. Unregistered sources
  // keep the plain contract (the source may be reused as soon as from_host returns).
  virtual void register_host_memory(void* p, size_t bytes) { (void)p; (void)bytes; }
  virtual void unregister_host_memory(void* p) { (void)p; }
  // Blocks until no queued from_host() reads the registered region containing p (no-op if none).
  virtual void wait_host_buffer(const void* p) { (void)p; }

  // ---------------------------------------------------------------- device facts (benchmarks)
  // Dense bf16 tensor-core peak of the device in FLOP/s; 0 when unknown (MFU is then n/a).
  virtual double peak_flops_bf16() const { return 0.0; }
  // Device memory in use now on the whole device (this process's arena, library workspaces,
  // scratch and CUDA context, and any other process's), and the device's total, in bytes; 0 when
  // the backend cannot tell (the CPU).
  virtual size_t device_memory_used() const { return 0; }
  virtual size_t device_memory_total() const { return 0; }

  // ---------------------------------------------------------------- elementwise and reductions
  void fill(const Tensor& x, double value);
  // dst = src, converting dtype (f32/f64 -> bf16 rounds to nearest even). Same numel.
  void copy(const Tensor& dst, const Tensor& src);
  // dst (bf16) = src (f32) with stochastic rounding driven by (seed); used for the bf16 working
  // copy of the weights. Where dst is not bf16 this is copy(). Same numel.
  void copy_stochastic(const Tensor& dst, const Tensor& src, uint64_t seed);
  void scale(const Tensor& x, double alpha);  // x *= alpha
  // y = a*x + b*y (elementwise, same numel; x may be y's dtype or f32); b = 0 ignores y, even
  // NaN or inf in it, as BLAS's beta = 0 does
  void axpby(const Tensor& y, double a, const Tensor& x, double b);
  double sum(const Tensor& x);          // host value, accumulated in double
  double sum_squares(const Tensor& x);  // host value, accumulated in double

  // ---------------------------------------------------------------- GEMM
  // out[M, N] (=) alpha * op(a) @ op(b) + beta * out, op(X) = trans ? Xᵀ : X.
  // Each operand is viewed as a matrix (rows(), cols()). Accumulation is at least f32.
  void matmul(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
              double alpha = 1.0, double beta = 0.0);
  // The same for a batch of equally shaped matrices: a, b, out are 3-D [batch, rows, cols].
  void matmul_batched(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                      bool trans_b, double alpha = 1.0, double beta = 0.0);
  // matmul of f32 operands read at TF32 precision (mantissas cut to 10 bits; f32 range), f32
  // accumulation and output: CUDA's TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32), several
  // times the f32 GEMM rate. The CPU rounds copies of a and b to nearest TF32, then multiplies in
  // f32; tensor cores may truncate instead, so the two differ by up to one TF32 unit (2^-10
  // relative) per operand. For the optimizers' curvature statistics (stats_dtype "tf32").
  void matmul_tf32(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                   double alpha = 1.0, double beta = 0.0);

  // ---------------------------------------------------------------- model: forward
  // out[N, C] (=) wte[tokens[n], :]; tokens i32 [N] (ids < wte rows, checked by the data loader)
  void embedding_forward(const Tensor& out, const Tensor& wte, const Tensor& tokens);
  // out[N, C] (=) inp / sqrt(mean(inp²) + 1e-6) per row; rstd[N] (=) the per-row 1/sqrt(...).
  // out has inp's shape; C > 0.
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp);
  // Fused residual add + RMSNorm: res_out (=) res_in + delta; norm_out, rstd as rmsnorm(res_out).
  // res_out may alias res_in.
  void add_rmsnorm_forward(const Tensor& res_out, const Tensor& norm_out, const Tensor& rstd,
                           const Tensor& res_in, const Tensor& delta);
  // QK-Norm then RoPE on a fused qkv activation [B, T, 3C] laid out (q | k | v), each C = H*hd:
  // q and k of every head are RMS-normalised over hd (no gain), then rotated by +angle with
  // inv_freq[i] = rope_base^(-2i/hd) on the pairs (i, i + hd/2) at position t; v is copied.
  // rstd [B*T, 2H] (=) the q then k per-head 1/rms. hd even, rope_base > 0.
  void qknorm_rope_forward(const Tensor& qkv_out, const Tensor& rstd, const Tensor& qkv_in,
                           int n_head, float rope_base);
  // Causal softmax attention over qkv [B, T, 3C] (after QK-Norm/RoPE), scores q·k/sqrt(hd):
  // out [B, T, C] (=) heads concatenated; lse [B, H, T] (=) log-sum-exp of each score row.
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv, int n_head);
  void relu2_forward(const Tensor& out, const Tensor& inp);  // out = relu(inp)²
  // Fused classifier over logits [N, Vp]: losses[n] (=) logsumexp(logits[n, :V]) -
  // logits[n, targets[n]]. If compute_grad, logits (=) grad_scale * (softmax - onehot) on the
  // first V columns and 0 on the padding: the gradient of grad_scale * sum(losses).
  // 1 <= V = vocab_size <= Vp; losses and targets [N].
  void classifier(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                  int64_t vocab_size, double grad_scale, bool compute_grad);

  // ---------------------------------------------------------------- model: backward
  // dwte (+=), deterministic; dout [N, C], tokens [N]
  void embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens);
  // dinp (+=) gradient of rmsnorm through (inp, rstd) given dout.
  void rmsnorm_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                        const Tensor& rstd);
  // dqkv_in (=) gradient through QK-Norm + RoPE (v passes through).
  void qknorm_rope_backward(const Tensor& dqkv_in, const Tensor& dqkv_out, const Tensor& qkv_in,
                            const Tensor& rstd, int n_head, float rope_base);
  // dqkv (=) gradient of attention given dout, the forward's qkv, out and lse. dqkv must not
  // alias qkv or dout.
  void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                          const Tensor& out, const Tensor& lse, int n_head);
  void relu2_backward(const Tensor& dinp, const Tensor& dout,
                      const Tensor& inp);  // dinp (=) dout * 2 relu(inp)

  // ---------------------------------------------------------------- optimizers: elementwise
  // p, g, m, v flat, same numel; p/m/v f32 (or f64), g f32 (or f64).
  // g' = grad_scale*g; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'²;
  // p = p (1 - lr wd) - lr (m/bc1) / (sqrt(v/bc2) + eps); then copy.dst (=) p (see ComputeCopy).
  // bc1, bc2 > 0 (1 - beta^t with t >= 1).
  void adamw_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                    const AdamWArgs& args, const ComputeCopy& copy = {});
  // g' = grad_scale*g; u = sign(b1 m + (1-b1) g'); m = b2 m + (1-b2) g'; p = p(1-lr wd) - lr u;
  // then copy.dst (=) p
  void lion_update(const Tensor& p, const Tensor& g, const Tensor& m, const LionArgs& args,
                   const ComputeCopy& copy = {});

  // ---------------------------------------------------------------- optimizers: linear algebra
  // Symmetric eigendecomposition of a [n, n] (lower triangle read; a unchanged):
  // eigenvalues (=) ascending [n], eigenvectors (=) [n, n] with eigenvector j in COLUMN j.
  // Returns 0 on success, nonzero if it did not converge or the input was not finite
  // (outputs then unspecified). Computed in at least the tensors' precision.
  int eigh(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a);
  // q (=) the orthonormal factor of a thin QR of a [m, n] (m >= n), Householder, with the
  // signs fixed so diag(R) >= 0 (as LAPACK's/torch's do up to that convention). A non-finite a
  // gives a non-finite q, not an error (the callers check their results).
  void qr_orthonormal(const Tensor& q, const Tensor& a);
  // out[i, j] (=) inp[i, j] * row_scale[i] * col_scale[j]; an undefined scale tensor means 1.
  // A 3-D inp [b, m, n] is a stack of matrices, each with its own scales: row_scale [b·m] and
  // col_scale [b·n] (the scalings of b matrices stacked). out may alias inp.
  void scale_rows_cols(const Tensor& out, const Tensor& inp, const Tensor& row_scale,
                       const Tensor& col_scale);
  // out[i] (=) max(inp[i], floor)^exponent
  void pow_clamped(const Tensor& out, const Tensor& inp, double exponent, double floor);
  void add_to_diagonal(const Tensor& a, double value);  // a [n, n]: a[i, i] += value
  double trace(const Tensor& a);                         // a [n, n]; host value
  // out [n, m] (=) inpᵀ for inp [m, n]; out must not alias inp
  void transpose(const Tensor& out, const Tensor& inp);
  // out[:, j] (=) inp[:, index[j]] (index i32 [n], a permutation or selection of columns);
  // out must not alias inp
  void gather_columns(const Tensor& out, const Tensor& inp, const Tensor& index);
  // out[i, :] (=) inp[index[i], :]; out must not alias inp
  void gather_rows(const Tensor& out, const Tensor& inp, const Tensor& index);
  // out[j] (=) Σ_i a[i, j]·b[i, j] for a, b [m, n] and out [n], one dtype (f32 or f64),
  // accumulated in double. diag(Qᵀ A Q) = column_dots(Q, A Q): Rayleigh quotients of a basis
  // without a second GEMM.
  void column_dots(const Tensor& out, const Tensor& a, const Tensor& b);
  // v (=) beta v + (1 - beta) x², elementwise (second-moment EMA, e.g. SOAP in the eigenbasis)
  void ema_square(const Tensor& v, const Tensor& x, double beta);
  // out (=) (m / bc1) / (sqrt(v / bc2) + eps), elementwise (Adam's direction); bc1, bc2 > 0
  void adam_direction(const Tensor& out, const Tensor& m, const Tensor& v, double eps,
                      double bias_correction1, double bias_correction2);

  // ---------------------------------------------------------------- optimizers: device scalars
  // Norms and traces that feed the next kernel without a host round trip (no synchronisation).
  // out[b] (=) sum of squares of slice b of x, x viewed as [out.numel(), x.numel()/out.numel()]
  // (one squared Frobenius norm per matrix of a [batch, m, n] stack); accumulated in double,
  // stored in out's dtype (f32 or f64); x f32/f64 (or bf16 on CUDA).
  void sum_squares_batched(const Tensor& out, const Tensor& x);
  // out[0] (=) trace of the square matrix a [n, n], on the device (out f32 or f64, 1 element).
  void trace_to(const Tensor& out, const Tensor& a);
  // Slice-wise scaling by device scalars: x viewed as [k, x.numel()/k], k = den.numel():
  //   x_b *= c · (num defined ? num_b^power : 1) / (alpha · den_b^power + eps)
  // power 0.5 turns sums of squares into norms; 1 uses them as they are. Where that denominator
  // is not > 0 or not finite, x_b is left unchanged. num, den f32 or f64 (the same dtype); the
  // factor is computed in double; x f32/f64 (or bf16 on CUDA).
  void scale_by_ratio(const Tensor& x, const Tensor& num, const Tensor& den, double power,
                      double c, double alpha, double eps);
  // A batch of symmetric eigendecompositions with ONE synchronisation: a [b, n, n] (lower
  // triangles read; DESTROYED: used as the workspace), eigenvectors [b, n, n] (eigenvector j of
  // matrix i in column j of slice i; not aliasing a), eigenvalues [b, n] ascending, all one
  // dtype (f32 or f64). Returns b statuses: 0 where matrix i succeeded (finite input,
  // converged), nonzero otherwise (that slice's outputs then unspecified; no f64 retry here:
  // redo it with eigh()).
  std::vector<int> eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                                const Tensor& a);
  // Grows now whatever workspace eigh_batched on these tensors needs, so that the call itself
  // allocates nothing (on CUDA, freeing a smaller workspace waits for the whole device, which
  // an overlapped refresh on a worker must not do). The same arguments; nothing is computed.
  virtual void reserve_eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                                    const Tensor& a) {
    (void)eigenvectors, (void)eigenvalues, (void)a;  // the CPU allocates per call
  }
  // Cholesky factorisations of a batch of symmetric positive definite matrices with ONE
  // synchronisation: a [b, n, n] (or [n, n]; upper triangles read) is overwritten with R, upper
  // triangular with a positive diagonal and zeros below it, such that a = Rᵀ R. Returns b
  // statuses: 0 where slice i succeeded, nonzero where it is not numerically positive definite
  // or not finite (that slice then unspecified). f32 or f64.
  std::vector<int> cholesky_batched(const Tensor& a);
  // x_i (=) x_i · R_i⁻¹ for every slice: x [b, m, n], r [b, n, n] upper triangular (only its
  // upper triangle read), one dtype (f32 or f64); x must not alias r. A triangular solve, not an
  // explicit inverse.
  void solve_upper_right_batched(const Tensor& x, const Tensor& r);

 protected:
  // The backend's implementations, one per line of MOUSSE_OPS, called by the fronts above once
  // the arguments passed their checks.
#define MOUSSE_OP_PURE(R, name, P, A) virtual R name##_impl P = 0;
  MOUSSE_OPS(MOUSSE_OP_PURE, MOUSSE_OP_PURE)
#undef MOUSSE_OP_PURE
};

// Each front has exactly the parameters of its line in MOUSSE_OPS (what the backends implement).
#define MOUSSE_OP_FRONT_MATCHES(R, name, P, A)                               \
  static_assert(std::is_same<decltype(&Ops::name), R(Ops::*) P>::value,     \
                "Ops::" #name " and its MOUSSE_OPS line differ in signature");
MOUSSE_OPS(MOUSSE_OP_FRONT_MATCHES, MOUSSE_OP_FRONT_MATCHES)
#undef MOUSSE_OP_FRONT_MATCHES

// The CPU reference backend (always available).
std::unique_ptr<Ops> make_cpu_ops();
// The CUDA backend, on the current device; throws mousse::Error if built without CUDA or if
// no usable GPU is present.
std::unique_ptr<Ops> make_cuda_ops();
// True when this binary has the CUDA backend and a GPU it can use.
bool cuda_available();

}  // namespace mousse
