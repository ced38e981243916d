#include "train/memory_plan.h"

#include <memory>

#include "backend/select.h"
#include "core/arena.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "model/gpt.h"
#include "train/param_groups.h"
#include "train/trainer.h"

namespace mousse {

std::vector<RankMemory> plan_run_memory(const RunConfig& cfg, Device device, int world) {
  MOUSSE_CHECK(world >= 1, "world size ", world);
  const Precision prec = cfg.precision_on(device);
  const BatchConfig& b = cfg.batch;
  // DataParallel keeps a backend for the collectives it never runs here.
  std::unique_ptr<Ops> host_ops = world > 1 ? make_ops("cpu") : nullptr;
  std::vector<RankMemory> out;
  for (int r = 0; r < world; r++) {
    Arena arena(device);
    GPT model(cfg.model, prec, b.micro_batch, b.seq_len, arena, Recompute::parse(cfg.recompute));
    OptimizerSetup setup = make_optimizer_setup(cfg.optimizer, cfg.file, model.params());
    std::unique_ptr<Communicator> comm;
    std::unique_ptr<DataParallel> dp;
    if (world > 1) {  // as the Trainer: each group keeps what this rank updates
      comm = make_rank_stand_in(r, world);
      dp = std::make_unique<DataParallel>(*comm, *host_ops, model.params(), setup);
    }
    reserve_optimizer_state(arena, setup);
    out.push_back({r, arena.total_bytes(), arena.category_bytes("optimizer"), arena.plan_report()});
  }
  return out;
}

}  // namespace mousse
