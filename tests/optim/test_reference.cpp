// Optimizers against Python references (optim_ref.py, float64): SOAP against a PyTorch
// implementation of the reference algorithm (several steps, basis refreshes included),
// AdamW against torch.optim.AdamW, Lion against a Python Lion, Muon (exact polar) against the
// closed form with α = 0.
#include "optim_test_util.h"

using namespace mousse;
using namespace mousse::otest;

namespace {

// Runs `steps` steps on one (m × n) matrix in C++; the job compares W after every step.
RefJob run_job(const json& cfg, const std::string& mode, int64_t m, int64_t n, int steps,
               const std::vector<double>& lrs, double tol, uint64_t seed) {
  Rig r(cfg, {{m, n}});
  std::mt19937_64 rng(seed);
  Mat w0 = randn(m * n, rng);
  r.set(r.params[0].weight, w0);
  RefJob job;
  job.in = {{"mode", mode}, {"w0", to_json_matrix(w0, m, n)}, {"grads", json::array()},
            {"lrs", lrs},   {"config", cfg}};
  for (int t = 0; t < steps; t++) {
    Mat g = randn(m * n, rng, 0.5 + 0.25 * t);
    job.in["grads"].push_back(to_json_matrix(g, m, n));
    r.step({g}, lrs[size_t(t)]);
    job.got.push_back(r.w());
  }
  job.label = mode + " " + cfg.dump() + " shape " + std::to_string(m) + "x" + std::to_string(n);
  job.tol = tol;
  return job;
}

}  // namespace

TEST_CASE("SOAP matches the PyTorch reference, basis refreshes included", "[optim][soap]") {
  json cfg = {{"type", "soap"},        {"betas", {0.9, 0.95}},   {"eps", 1e-8},
              {"weight_decay", 0.01},  {"update_interval", 2},   {"beta_pc", 0.9},
              {"max_precond_dim", 10000}, {"normalize_grads", false}, {"correct_bias", true}};
  const std::vector<double> lrs = {0.01, 0.02, 0.03, 0.03, 0.02, 0.02, 0.01, 0.01};
  // square: both factors full rank from the first step, so the first eigenbasis is unique
  std::vector<RefJob> jobs;
  jobs.push_back(run_job(cfg, "soap", 6, 6, 8, lrs, 1e-9, 1));
  // only the smaller side preconditioned (the larger exceeds max_precond_dim): L only, R only
  cfg["max_precond_dim"] = 6;
  jobs.push_back(run_job(cfg, "soap", 5, 9, 8, lrs, 1e-9, 2));
  cfg["normalize_grads"] = true;
  cfg["update_interval"] = 3;
  cfg["weight_decay"] = 0.1;
  jobs.push_back(run_job(cfg, "soap", 9, 4, 8, lrs, 1e-9, 3));
  // nothing preconditioned: Adam (after the skipped first step)
  cfg["max_precond_dim"] = 2;
  cfg["normalize_grads"] = false;
  cfg["correct_bias"] = false;
  jobs.push_back(run_job(cfg, "soap", 3, 4, 5, lrs, 1e-9, 4));
  check_jobs(jobs);
}

TEST_CASE("AdamW matches torch.optim.AdamW over several steps", "[optim][adamw]") {
  // the Ops adamw_update takes f32 scalars, hence the tolerance (coefficients chosen exact)
  json cfg = {{"type", "adamw"}, {"betas", {0.875, 0.9375}}, {"eps", 1e-8},
              {"weight_decay", 0.03125}};
  check_jobs({run_job(cfg, "adamw", 5, 7, 6, {0.0625, 0.125, 0.125, 0.0625, 0.03125, 0.015625},
                      1e-6, 5)});
}

TEST_CASE("Lion matches a Python Lion over several steps", "[optim][lion]") {
  json cfg = {{"type", "lion"}, {"betas", {0.875, 0.984375}}, {"weight_decay", 0.0625}};
  check_jobs({run_job(cfg, "lion", 6, 5, 6, {0.0625, 0.125, 0.125, 0.0625, 0.03125, 0.015625},
                      1e-12, 6)});
}

TEST_CASE("Muon with an exact polar factor matches the closed form", "[optim][muon]") {
  std::vector<RefJob> jobs;
  for (bool nesterov : {false, true})
    for (const char* scale : {"sqrt_out_in", "keller", "moonlight"}) {
      json cfg = {{"type", "muon"}, {"momentum", 0.9}, {"nesterov", nesterov},
                  {"orthogonalizer", "exact"}, {"ns_steps", 5}, {"update_scale", scale},
                  {"weight_decay", 0.02}};
      // the closed-form reference with α = 0 is Muon (no whitening), grafting a no-op
      json ref_cfg = cfg;
      ref_cfg["beta_pc"] = 0.9;
      ref_cfg["eps"] = 1e-5;
      ref_cfg["alpha"] = 0.0;
      ref_cfg["update_interval"] = 1;
      ref_cfg["whiten"] = "both";
      ref_cfg["trace_normalize"] = true;
      ref_cfg["grafting"] = true;
      for (auto shape : std::vector<std::pair<int64_t, int64_t>>{{4, 7}, {7, 4}}) {
        RefJob job = run_job(cfg, "mousse_closed", shape.first, shape.second, 4,
                             {0.1, 0.05, 0.02, 0.1}, 1e-10, 31);
        job.in["config"] = ref_cfg;
        jobs.push_back(job);
      }
    }
  check_jobs(jobs);
}
