#include "optim/newton_schulz.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "optim/matrix_common.h"

namespace mousse {

namespace {
// Polar Express (Amsel, Persson, Musco, Gower 2025), 5 steps, safety factor 2e-2, cushion 2,
// as used by modded-nanogpt; pairs with the 1.02 pre-normalisation below.
const QuinticCoeffs kPolarExpress[5] = {
    {8.156554524902461, -22.48329292557795, 15.878769915207462},
    {4.042929935166739, -2.808917465908714, 0.5000178451051316},
    {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
    {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
    {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
};
const QuinticCoeffs kNs5 = {3.4445, -4.7750, 2.0315};
}  // namespace

std::string OrthoOptions::describe() const {
  const std::string d = dtype == OrthoDtype::bf16 ? ", bf16" : dtype == OrthoDtype::param ? ", param dtype" : "";
  switch (kind) {
    case OrthoKind::ns5: return "ns5 (" + std::to_string(steps) + " steps" + d + ")";
    case OrthoKind::polar_express:
      return "polar_express (" + std::to_string(steps) + " steps" + d + ")";
    case OrthoKind::exact: return "exact polar (eigh)";
  }
  return "?";
}

OrthoOptions parse_ortho_options(const ConfigNode& node) {
  OrthoOptions o;
  static const Named<OrthoKind> kinds[] = {{"ns5", OrthoKind::ns5},
                                           {"polar_express", OrthoKind::polar_express},
                                           {"exact", OrthoKind::exact}};
  o.kind = node.choice("orthogonalizer", OrthoKind::ns5, kinds);
  o.steps = int(node.integer("ns_steps", 5, {1, 100}));
  o.dtype = node.choice("ns_dtype", OrthoDtype::automatic, kOrthoDtypes);
  return o;
}

QuinticCoeffs ortho_coefficients(OrthoKind kind, int step) {
  if (kind == OrthoKind::polar_express) return kPolarExpress[std::min(step, 4)];
  return kNs5;
}

void ortho_normalisation(OrthoKind kind, double* scale, double* eps) {
  if (kind == OrthoKind::polar_express) {
    *scale = 1.02;
    *eps = 1e-6;
  } else {
    *scale = 1.0;
    *eps = 1e-7;
  }
}

void Orthogonalizer::plan(int64_t batch, int64_t rows, int64_t cols) {
  const int64_t k = std::min(rows, cols), K = std::max(rows, cols);
  need_x_ = std::max(need_x_, batch * k * K);
  need_a_ = std::max(need_a_, batch * k * k);
  need_k_ = std::max(need_k_, k);
  need_batch_ = std::max(need_batch_, batch);
}

void Orthogonalizer::reserve(Arena& arena, const std::string& prefix, DType dt) {
  if (need_x_ == 0) return;
  const bool bf16 = opt_.kind != OrthoKind::exact &&
                    (opt_.dtype == OrthoDtype::bf16 ||
                     (opt_.dtype == OrthoDtype::automatic && arena.device() == Device::cuda));
  MOUSSE_CHECK(!bf16 || arena.device() == Device::cuda,
               "ns_dtype 'bf16' needs the CUDA backend (the CPU computes in f32/f64)");
  work_dt_ = bf16 ? DType::bf16 : dt;
  const DType wdt = work_dt_;
  const std::string c = "optimizer_scratch";
  arena.reserve(x_, c, prefix + ".ns.x", wdt, Shape{need_x_});
  arena.reserve(xn_, c, prefix + ".ns.x_next", wdt, Shape{need_x_});
  arena.reserve(a_, c, prefix + ".ns.a", wdt, Shape{need_a_});
  arena.reserve(b_, c, prefix + ".ns.b", wdt, Shape{need_a_});
  // squared norms: f32 next to bf16 work, else the parameter dtype
  arena.reserve(ssq_, c, prefix + ".ns.sum_squares", bf16 ? DType::f32 : dt, Shape{need_batch_});
  if (opt_.kind == OrthoKind::exact) {
    arena.reserve(evals_, c, prefix + ".ns.evals", dt, Shape{need_k_});
    arena.reserve(inv_sqrt_, c, prefix + ".ns.inv_sqrt", dt, Shape{need_k_});
  }
}

void Orthogonalizer::run(Ops& ops, const Tensor& out, const Tensor& in) {
  MOUSSE_CHECK(in.shape.ndim == 2 || in.shape.ndim == 3, "orthogonalize: 2-D or 3-D input, got ",
               in.shape.str());
  MOUSSE_CHECK(out.numel() == in.numel() && out.cols() == in.cols(), "orthogonalize: out ",
               out.shape.str(), " vs in ", in.shape.str());
  if (opt_.kind == OrthoKind::exact) return run_exact(ops, out, in);
  const int64_t batch = in.shape.ndim == 3 ? in.shape[0] : 1;
  const int64_t rows = in.shape[-2], cols = in.shape[-1];
  const bool tall = rows > cols;
  const int64_t k = tall ? cols : rows;  // the Gram side
  MOUSSE_CHECK(batch * rows * cols <= need_x_ && batch * k * k <= need_a_ && batch <= need_batch_,
               "orthogonalize: workspace planned too small for ", in.shape.str());

  Tensor X = x_.slice(0, Shape{batch, rows, cols});
  Tensor Xn = xn_.slice(0, Shape{batch, rows, cols});
  Tensor A = a_.slice(0, Shape{batch, k, k});
  Tensor B = b_.slice(0, Shape{batch, k, k});
  Tensor ssq = ssq_.slice(0, Shape{batch});

  // X ← in / (scale·‖in‖_F + eps), per matrix, without leaving the device.
  double nscale, neps;
  ortho_normalisation(opt_.kind, &nscale, &neps);
  ops.sum_squares_batched(ssq, in);
  ops.copy(X, in);
  ops.scale_by_ratio(X, Tensor{}, ssq, 0.5, 1.0, nscale, neps);

  for (int s = 0; s < opt_.steps; s++) {
    const QuinticCoeffs q = ortho_coefficients(opt_.kind, s);
    // wide: A = XXᵀ, X ← aX + BX;  tall: A = XᵀX, X ← aX + XB
    if (batch == 1) {
      Tensor x = X.view(Shape{rows, cols}), xn = Xn.view(Shape{rows, cols});
      Tensor a = A.view(Shape{k, k}), b = B.view(Shape{k, k});
      ops.matmul(a, x, tall, x, !tall);
      ops.matmul(b, a, false, a, false);  // A²
      ops.axpby(b, q.b, a, q.c);          // B = bA + cA²
      if (tall) ops.matmul(xn, x, false, b, false);
      else ops.matmul(xn, b, false, x, false);
    } else {
      ops.matmul_batched(A, X, tall, X, !tall);
      ops.matmul_batched(B, A, false, A, false);
      ops.axpby(B, q.b, A, q.c);
      if (tall) ops.matmul_batched(Xn, X, false, B, false);
      else ops.matmul_batched(Xn, B, false, X, false);
    }
    ops.axpby(Xn, q.a, X, 1.0);  // X ← aX + BX
    std::swap(X, Xn);
  }
  ops.copy(out, X);
}

void Orthogonalizer::run_exact(Ops& ops, const Tensor& out, const Tensor& in) {
  const int64_t batch = in.shape.ndim == 3 ? in.shape[0] : 1;
  const int64_t rows = in.shape[-2], cols = in.shape[-1];
  const bool tall = rows > cols;
  const int64_t k = tall ? cols : rows, K = tall ? rows : cols;
  MOUSSE_CHECK(batch * k * K <= need_x_ && k <= need_k_,
               "orthogonalize: workspace planned too small for ", in.shape.str());

  Tensor X = x_.slice(0, Shape{batch, k, K});
  Tensor Xn = xn_.slice(0, Shape{batch, k, K});
  Tensor A = a_.slice(0, Shape{batch, k, k});
  Tensor B = b_.slice(0, Shape{batch, k, k});
  auto mat = [](const Tensor& t, int64_t i, int64_t r, int64_t c) {
    return t.slice(i * r * c, Shape{r, c});
  };

  // Load in wide orientation (rows ≤ cols).
  for (int64_t i = 0; i < batch; i++) {
    if (tall) ops.transpose(mat(X, i, k, K), mat(in, i, rows, cols));
    else ops.copy(mat(X, i, k, K), mat(in, i, rows, cols));
  }

  // polar(X) = (XXᵀ)^(-1/2) X = V diag(d) Vᵀ X, d_i = λ_i^(-1/2) (0 on the numerical null space).
  const double rel = X.dtype == DType::f64 ? 1e-13 : 1e-6;
  Tensor lam = evals_.slice(0, Shape{k}), d = inv_sqrt_.slice(0, Shape{k});
  for (int64_t i = 0; i < batch; i++) {
    Tensor x = mat(X, i, k, K), xn = mat(Xn, i, k, K), a = mat(A, i, k, k), v = mat(B, i, k, k);
    ops.matmul(a, x, false, x, true);
    if (ops.eigh(v, lam, a) != 0)
      fail("orthogonalizer 'exact': the eigendecomposition of XXᵀ failed (non-finite input?)");
    std::vector<double> l = read_vector(ops, lam);
    double lmax = 0;
    for (double e : l) lmax = std::max(lmax, std::fabs(e));
    const double tol = lmax * rel * double(k);
    for (double& e : l) e = (e > tol && e > 0) ? 1.0 / std::sqrt(e) : 0.0;
    write_vector(ops, d, l);
    ops.matmul(xn, v, true, x, false);  // Vᵀ X
    ops.scale_rows_cols(xn, xn, d, Tensor{});
    ops.matmul(x, v, false, xn, false);  // V diag(d) Vᵀ X
  }

  for (int64_t i = 0; i < batch; i++) {
    if (tall) ops.transpose(mat(out, i, rows, cols), mat(X, i, k, K));
    else ops.copy(mat(out, i, rows, cols), mat(X, i, k, K));
  }
}

}  // namespace mousse
