#include <cstdio>
#include <cstdlib>
#include <string>

#include "dist/communicator.h"

namespace mousse {

namespace {
// Rank `rank` of `world` in one process, every collective the identity: the single process
// (0 of 1, not distributed), or a stand-in for one rank of a larger job (planning, tests).
class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator(int rank, int world, bool distributed)
      : rank_(rank), world_(world), distributed_(distributed) {
    MOUSSE_CHECK(world >= 1 && rank >= 0 && rank < world, "rank ", rank, " of ", world);
  }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string describe() const override {
    return distributed_ ? "stand-in for rank " + std::to_string(rank_) + " of " +
                              std::to_string(world_)
                        : "single process";
  }
  bool distributed() const override { return distributed_; }
  double all_reduce_sum(double v) override { return v; }
  double all_reduce_max(double v) override { return v; }
  void reduce_scatter_sum(const Tensor&, const std::vector<int64_t>&) override {}
  void all_gather(const Tensor&, const std::vector<int64_t>&) override {}
  void broadcast(const Tensor&, int) override {}
  void barrier() override {}
  std::vector<std::string> gather_to_root(const std::string& s) override { return {s}; }
  [[noreturn]] void abort(const std::string& message) override {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", message.c_str());
    std::exit(1);
  }

 private:
  int rank_, world_;
  bool distributed_;
};

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : 0;
}
}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<LocalCommunicator>(0, 1, false);
}

std::unique_ptr<Communicator> make_rank_stand_in(int rank, int world) {
  return std::make_unique<LocalCommunicator>(rank, world, true);
}

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"}) {
    int n = env_int(name);
    if (n > 0) return n;
  }
  // srun without an MPI launcher variable: SLURM_NTASKS inside a job step (SLURM_STEP_ID set).
  if (std::getenv("SLURM_STEP_ID") && env_int("SLURM_NTASKS") > 0) return env_int("SLURM_NTASKS");
  return 1;
}

#ifndef MOUSSE_HAVE_MPI
std::unique_ptr<Communicator> make_communicator(const std::string&) {
  int n = launcher_world_size();
  if (n > 1)
    fail("this job was launched with ", n, " ranks, but this mousse binary was built without ",
         "MPI; install an MPI (e.g. libopenmpi-dev) and rebuild (cmake -DMOUSSE_MPI=ON)");
  return make_single_process_communicator();
}
#endif

}  // namespace mousse
