#include "model/params.h"

#include <algorithm>
#include <cmath>

namespace mousse {

const char* role_name(ParamRole r) {
  switch (r) {
    case ParamRole::matrix: return "matrix";
    case ParamRole::embedding: return "embedding";
    case ParamRole::lm_head: return "lm_head";
  }
  return "?";
}

double Param::init_std() const {
  if (role == ParamRole::embedding) return 1.0;
  double fan_in = double(cols), fan_out = double(rows);
  return 1.0 / std::sqrt(fan_in) * std::min(1.0, std::sqrt(fan_out / fan_in));
}

std::vector<ParamSpec> param_specs(const ModelConfig& cfg) {
  const int64_t C = cfg.d_model, Vp = cfg.padded_vocab;
  std::vector<ParamSpec> specs;
  specs.push_back({"wte", ParamRole::embedding, Vp, C});
  for (int l = 0; l < cfg.n_layer; l++) {
    std::string b = "blocks." + std::to_string(l) + ".";
    // q, k, v adjacent: one [3C, C] GEMM computes all three projections.
    specs.push_back({b + "attn.q", ParamRole::matrix, C, C});
    specs.push_back({b + "attn.k", ParamRole::matrix, C, C});
    specs.push_back({b + "attn.v", ParamRole::matrix, C, C});
    specs.push_back({b + "attn.o", ParamRole::matrix, C, C});
    specs.push_back({b + "mlp.fc", ParamRole::matrix, 4 * C, C});
    specs.push_back({b + "mlp.proj", ParamRole::matrix, C, 4 * C});
  }
  // lm_head is last so that its [Vp, C] GEMM operand is one aligned block.
  specs.push_back({"lm_head", ParamRole::lm_head, Vp, C});
  return specs;
}

ParamTable::ParamTable(const ModelConfig& cfg, Precision prec, Arena& arena) {
  for (const ParamSpec& s : param_specs(cfg)) add(s);

  arena.reserve(weights_, "parameters", "flat_weights", prec.param, Shape{numel_});
  arena.reserve(grads_, "gradients", "flat_grads", prec.param, Shape{numel_});
  separate_compute_ = prec.activation != prec.param;
  if (separate_compute_)
    arena.reserve(compute_, "parameters", "flat_compute", prec.activation, Shape{numel_});
  // Dtypes and shapes are known now (optimizers plan their state from them); data pointers
  // come with bind() after the arena is allocated.
  for (auto& p : params_) {
    Shape s{p.rows, p.cols};
    p.weight = Tensor{nullptr, prec.param, arena.device(), s};
    p.grad = p.weight;
    p.compute = Tensor{nullptr, prec.activation, p.weight.device, s};
  }
}

void ParamTable::add(const ParamSpec& spec) {
  Param p;
  p.name = spec.name;
  p.role = spec.role;
  p.rows = spec.rows;
  p.cols = spec.cols;
  p.offset = numel_;
  numel_ += spec.rows * spec.cols;
  params_.push_back(p);
}

void ParamTable::bind() {
  if (!separate_compute_) compute_ = weights_;
  for (auto& p : params_) {
    Shape s{p.rows, p.cols};
    p.weight = weights_.slice(p.offset, s);
    p.grad = grads_.slice(p.offset, s);
    p.compute = compute_.slice(p.offset, s);
  }
}

Param& ParamTable::get(const std::string& name) {
  for (auto& p : params_)
    if (p.name == name) return p;
  fail("unknown parameter '", name, "' (names are wte, lm_head, blocks.{i}.attn.{q,k,v,o}, ",
       "blocks.{i}.mlp.{fc,proj})");
}

const Param* ParamTable::find(const std::string& name) const {
  for (auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

std::vector<Param*> ParamTable::with_role(ParamRole role) {
  std::vector<Param*> out;
  for (auto& p : params_)
    if (p.role == role) out.push_back(&p);
  return out;
}

}  // namespace mousse
