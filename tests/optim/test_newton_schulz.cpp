// Orthogonalizer (src/optim/newton_schulz): NS5 / Polar Express against the SVD prediction
// U p(Σ) Vᵀ (p the composed quintic), orientation and the singular-value band, exact polar.
#include "optim_test_util.h"
#include "optim/newton_schulz.h"

using namespace mousse;
using namespace mousse::otest;

namespace {

struct OrthoRun {
  Mat out;
  std::vector<Mat> inputs;
};

// Orthogonalises `batch` random (rows × cols) matrices (as one 3-D stack when batch > 1).
OrthoRun run_ortho(OrthoKind kind, int steps, int64_t batch, int64_t rows, int64_t cols,
                   uint64_t seed, bool zero = false) {
  auto ops = make_cpu_ops();
  Arena arena(*ops);
  Tensor in, out;
  const Shape sh = batch > 1 ? Shape{batch, rows, cols} : Shape{rows, cols};
  arena.reserve(in, "test", "in", DType::f64, sh);
  arena.reserve(out, "test", "out", DType::f64, sh);
  Orthogonalizer ortho(OrthoOptions{kind, steps});
  ortho.plan(batch, rows, cols);
  ortho.reserve(arena, "t", DType::f64);
  arena.allocate();
  std::mt19937_64 rng(seed);
  OrthoRun r;
  Mat all;
  for (int64_t b = 0; b < batch; b++) {
    Mat x = zero ? Mat(size_t(rows * cols), 0.0) : randn(rows * cols, rng);
    r.inputs.push_back(x);
    all.insert(all.end(), x.begin(), x.end());
  }
  write_vector(*ops, in, all);
  ortho.run(*ops, out, in);
  r.out = read_vector(*ops, out);
  return r;
}

// The scalar map the iteration applies to each singular value.
double predicted_sigma(OrthoKind kind, int steps, double sigma, double fro) {
  double scale, eps;
  ortho_normalisation(kind, &scale, &eps);
  double x = sigma / (scale * fro + eps);
  for (int s = 0; s < steps; s++) {
    QuinticCoeffs q = ortho_coefficients(kind, s);
    x = q.a * x + q.b * x * x * x + q.c * x * x * x * x * x;
  }
  return x;
}

void check_against_svd(OrthoKind kind, int steps, int64_t batch, int64_t rows, int64_t cols,
                       double lo, double hi) {
  OrthoRun r = run_ortho(kind, steps, batch, rows, cols, 1234 + uint64_t(rows * 7 + cols));
  json in = {{"mode", "svd"}, {"matrices", json::array()}};
  for (auto& x : r.inputs) in["matrices"].push_back(to_json_matrix(x, rows, cols));
  json ref = python_ref(in);
  const int64_t k = std::min(rows, cols);
  for (int64_t b = 0; b < batch; b++) {
    const json& s = ref["svd"][size_t(b)];
    Mat U = from_json_matrix(s["u"]), Vt = from_json_matrix(s["vt"]);
    std::vector<double> sig = s["s"].get<std::vector<double>>();
    double fro = 0;
    for (double x : r.inputs[size_t(b)]) fro += x * x;
    fro = std::sqrt(fro);
    Mat got(r.out.begin() + b * rows * cols, r.out.begin() + (b + 1) * rows * cols);
    // prediction U p(Σ) Vᵀ
    Mat pred(size_t(rows * cols), 0.0);
    std::vector<double> p(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; i++) {
      p[size_t(i)] = kind == OrthoKind::exact ? 1.0 : predicted_sigma(kind, steps, sig[size_t(i)], fro);
      for (int64_t r0 = 0; r0 < rows; r0++)
        for (int64_t c = 0; c < cols; c++)
          pred[size_t(r0 * cols + c)] += U[size_t(r0 * k + i)] * p[size_t(i)] * Vt[size_t(i * cols + c)];
    }
    CHECK(rel_err(got, pred) < 1e-9);
    // orientation: Uᵀ X̂ V is diagonal with the predicted, in-band, positive values
    for (int64_t i = 0; i < k; i++)
      for (int64_t j = 0; j < k; j++) {
        double v = 0;
        for (int64_t r0 = 0; r0 < rows; r0++)
          for (int64_t c = 0; c < cols; c++)
            v += U[size_t(r0 * k + i)] * got[size_t(r0 * cols + c)] * Vt[size_t(j * cols + c)];
        if (i == j) {
          CHECK(v > lo);
          CHECK(v < hi);
        } else {
          CHECK(std::fabs(v) < 1e-9);
        }
      }
  }
}

}  // namespace

TEST_CASE("NS5 matches the SVD prediction, orientation and band (wide, tall, batched)", "[optim][ns]") {
  check_against_svd(OrthoKind::ns5, 5, 1, 8, 20, 0.68, 1.2);
  check_against_svd(OrthoKind::ns5, 5, 1, 20, 8, 0.68, 1.2);   // tall: transposed internally
  check_against_svd(OrthoKind::ns5, 5, 3, 6, 10, 0.68, 1.2);   // a 3-D stack (matmul_batched)
}

TEST_CASE("Polar Express matches the SVD prediction and lands closer to 1", "[optim][ns]") {
  check_against_svd(OrthoKind::polar_express, 5, 1, 8, 20, 0.8, 1.15);
  check_against_svd(OrthoKind::polar_express, 5, 2, 12, 7, 0.8, 1.15);
}

TEST_CASE("exact polar equals U Vᵀ", "[optim][ns]") {
  check_against_svd(OrthoKind::exact, 5, 1, 9, 5, 1 - 1e-9, 1 + 1e-9);
  check_against_svd(OrthoKind::exact, 5, 2, 5, 9, 1 - 1e-9, 1 + 1e-9);
}

TEST_CASE("orthogonalising a zero matrix gives zeros, not NaN", "[optim][ns]") {
  for (OrthoKind k : {OrthoKind::ns5, OrthoKind::polar_express, OrthoKind::exact}) {
    OrthoRun r = run_ortho(k, 5, 1, 6, 4, 1, true);
    for (double x : r.out) CHECK(x == 0.0);
  }
}
