// MPI communicator on host buffers (the CPU backend), and make_communicator() for MPI builds.
#include "dist/mpi_communicator.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/ops.h"

namespace mousse {

MpiWorld::MpiWorld() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // The data loader's prefetch threads never call MPI; only the main thread does.
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      fail("MPI_Init_thread failed");
  }
  // Errors come back as return codes: we turn them into a clear message and MPI_Abort, so a
  // failing rank ends the job instead of leaving the others waiting in a collective.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  check(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  MPI_Comm node;
  check(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
  check(MPI_Comm_rank(node, &local_rank), "MPI_Comm_rank(node)");
  check(MPI_Comm_size(node, &local_size), "MPI_Comm_size(node)");
  int leader = local_rank == 0 ? 1 : 0;
  check(MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, comm), "MPI_Allreduce(nodes)");
  MPI_Comm_free(&node);
}

MpiWorld::~MpiWorld() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

double MpiWorld::all_reduce(double v, MPI_Op op) const {
  double out = 0;
  check(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, op, comm), "MPI_Allreduce");
  return out;
}

void MpiWorld::barrier() const { check(MPI_Barrier(comm), "MPI_Barrier"); }

std::vector<std::string> MpiWorld::gather_to_root(const std::string& s) const {
  const int len = int(s.size());
  std::vector<int> lens(rank == 0 ? size_t(size) : 0), offsets(lens.size(), 0);
  check(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, comm), "MPI_Gather");
  std::string all;
  if (rank == 0) {
    for (int r = 1; r < size; r++) offsets[size_t(r)] = offsets[size_t(r - 1)] + lens[size_t(r - 1)];
    all.resize(size_t(offsets.back() + lens.back()));
  }
  check(MPI_Gatherv(s.data(), len, MPI_CHAR, all.data(), lens.data(), offsets.data(), MPI_CHAR, 0,
                    comm),
        "MPI_Gatherv");
  std::vector<std::string> out;
  for (size_t r = 0; r < lens.size(); r++) out.push_back(all.substr(size_t(offsets[r]), size_t(lens[r])));
  return out;
}

void MpiWorld::check(int rc, const char* what) const {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail(what, " failed on rank ", rank, " of ", size, ": ", std::string(msg, size_t(len)),
       " (another rank may have died; see the messages above)");
}

void MpiWorld::abort(const std::string& message) const {
  std::fflush(stdout);
  std::fprintf(stderr, "error (rank %d of %d): %s\nmousse: aborting all %d ranks\n", rank, size,
               message.c_str(), size);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

namespace {

MPI_Datatype mpi_type(DType dt) {
  switch (dt) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT;
    default: fail("MPI communicator: ", dtype_name(dt), " tensors are not supported on the host");
  }
}

int to_int(int64_t n, const char* what) {
  if (n < 0 || n > int64_t(INT32_MAX))
    fail("MPI communicator: ", what, " of ", n, " elements exceeds MPI's int counts");
  return int(n);
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(std::shared_ptr<MpiWorld> w) : w_(std::move(w)) {}
  int rank() const override { return w_->rank; }
  int world_size() const override { return w_->size; }
  int local_rank() const override { return w_->local_rank; }
  std::string describe() const override {
    return "mpi (host buffers): " + std::to_string(w_->size) + " ranks on " +
           std::to_string(w_->nodes) + (w_->nodes == 1 ? " node" : " nodes");
  }

  double all_reduce_sum(double v) override { return w_->all_reduce(v, MPI_SUM); }
  double all_reduce_max(double v) override { return w_->all_reduce(v, MPI_MAX); }
  void reduce_scatter_sum(const Tensor& x, const std::vector<int64_t>& counts) override {
    host_only(x);
    std::vector<int> c, displ;
    split(x, counts, c, displ);
    const size_t es = dtype_size(x.dtype);
    const int mine = c[size_t(rank())];
    scratch_.resize(std::max<size_t>(1, size_t(mine) * es));
    w_->check(MPI_Reduce_scatter(x.data, scratch_.data(), c.data(), mpi_type(x.dtype), MPI_SUM,
                                 w_->comm),
              "MPI_Reduce_scatter");
    if (mine > 0)
      std::memcpy(static_cast<char*>(x.data) + size_t(displ[size_t(rank())]) * es,
                  scratch_.data(), size_t(mine) * es);
  }
  void all_gather(const Tensor& x, const std::vector<int64_t>& counts) override {
    host_only(x);
    std::vector<int> c, displ;
    split(x, counts, c, displ);
    w_->check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x.data, c.data(), displ.data(),
                             mpi_type(x.dtype), w_->comm),
              "MPI_Allgatherv");
  }
  void broadcast(const Tensor& x, int root) override {
    host_only(x);
    w_->check(MPI_Bcast(x.data, to_int(x.numel(), "broadcast"), mpi_type(x.dtype), root,
                        w_->comm),
              "MPI_Bcast");
  }
  void barrier() override { w_->barrier(); }
  std::vector<std::string> gather_to_root(const std::string& s) override {
    return w_->gather_to_root(s);
  }
  [[noreturn]] void abort(const std::string& message) override { w_->abort(message); }

 private:
  static void host_only(const Tensor& x) {
    if (x.device != Device::cpu)
      fail("the MPI communicator works on host buffers; a cuda tensor needs the NCCL one");
  }
  void split(const Tensor& x, const std::vector<int64_t>& counts, std::vector<int>& c,
             std::vector<int>& displ) const {
    MOUSSE_CHECK(int(counts.size()) == w_->size, "counts: one per rank");
    int64_t total = 0;
    for (int64_t n : counts) {
      displ.push_back(to_int(total, "offset"));
      c.push_back(to_int(n, "part"));
      total += n;
    }
    MOUSSE_CHECK(total == x.numel(), "counts sum to ", total, ", tensor has ", x.numel());
  }

  std::shared_ptr<MpiWorld> w_;
  std::vector<char> scratch_;
};

}  // namespace

std::unique_ptr<Communicator> make_communicator(const std::string& device) {
  // One rank is a plain single process, unless MOUSSE_DISTRIBUTED=1 asks for the distributed
  // path anyway (mpirun -np 1: MPI, and NCCL on a GPU), to check that path on one GPU.
  const char* force = std::getenv("MOUSSE_DISTRIBUTED");
  const bool forced = force && std::string(force) == "1";
  const int launched = launcher_world_size();
  if (launched <= 1 && !forced) return make_single_process_communicator();
  auto world = std::make_shared<MpiWorld>();
  // A launcher from another MPI than the one this binary links (or srun without the right
  // --mpi plugin) starts N processes that each initialise as a singleton: N independent
  // one-rank runs writing the same logs and checkpoints. Refuse that.
  if (launched > 1 && world->size != launched)
    world->abort("launched as one of " + std::to_string(launched) + " ranks, but MPI_Init made a " +
                 "world of " + std::to_string(world->size) + ": the mpirun/srun does not match " +
                 "the MPI mousse was built with (under SLURM try srun --mpi=pmix, or mpirun " +
                 "from the same MPI installation)");
  const bool cuda = device == "cuda" || (device == "auto" && cuda_available());
  if (cuda) {
#ifdef MOUSSE_HAVE_NCCL
    return make_nccl_communicator(world);
#else
    world->abort("device 'cuda' with " + std::to_string(world->size) +
                 " ranks needs NCCL, and this binary was built without it (install NCCL and "
                 "rebuild; or use device 'cpu')");
#endif
  }
  return std::make_unique<MpiCommunicator>(world);
}

}  // namespace mousse
