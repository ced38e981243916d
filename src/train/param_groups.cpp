#include "train/param_groups.h"

namespace mousse {

OptimizerSetup make_optimizer_setup(const json& optimizer, const std::string& file,
                                    ParamTable& table) {
  ConfigNode top(optimizer, "optimizer", file);
  OptimizerSetup setup;
  // grad_clip 0 turns clipping off.
  setup.grad_clip = top.number("grad_clip", setup.grad_clip, NumRange::at_least(0));
  const double head_scale = top.number("lm_head_lr_scale", 1.0, NumRange::above(0));

  ConfigNode matrix = top.child("matrix", true);
  ConfigNode embedding = top.child("embedding", true);
  // lm_head: its own object, or the embedding group's settings.
  ConfigNode head = top.has("lm_head") ? top.child("lm_head")
                                       : ConfigNode(embedding.raw(), "optimizer.lm_head", file);
  top.finish();

  struct Spec { const char* name; ConfigNode* node; ParamRole role; double extra_scale; };
  Spec specs[] = {{"matrix", &matrix, ParamRole::matrix, 1.0},
                  {"embedding", &embedding, ParamRole::embedding, 1.0},
                  {"lm_head", &head, ParamRole::lm_head, head_scale}};
  for (Spec& s : specs) {
    ParamGroup g;
    g.name = s.name;
    g.params = table.with_role(s.role);
    g.lr = s.node->number("lr", NumRange::at_least(0));
    g.lr_scale = s.node->number("lr_scale", 1.0, NumRange::above(0)) * s.extra_scale;
    g.optimizer = make_optimizer(*s.node, s.name);
    s.node->finish();
    setup.groups.push_back(std::move(g));
  }
  return setup;
}

bool step_optimizers(Ops& ops, OptimizerSetup& setup, int64_t step, double schedule_factor,
                     double grad_scale, bool diagnostics, bool fuse_compute_copy,
                     uint64_t compute_seed) {
  bool fused = fuse_compute_copy;
  for (const ParamGroup& g : setup.groups) fused = fused && g.optimizer->fuses_compute_copy();
  for (ParamGroup& g : setup.groups) {
    OptimStep s;
    s.step = step + 1;
    s.lr = g.lr_at(schedule_factor);
    s.grad_scale = grad_scale;
    s.diagnostics = diagnostics;
    s.write_compute = fused;
    s.compute_seed = compute_seed;
    g.optimizer->step(ops, g.params, s);
  }
  return fused;
}

}  // namespace mousse
