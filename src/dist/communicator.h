#pragma once
// Communicator: the collectives data parallelism needs (docs/distributed.md).
//
// Three implementations behind one interface:
//  - single process (world size 1): every collective is the identity;
//  - MPI (src/dist/mpi_communicator.cpp): host buffers, the CPU backend; MPI_ERRORS_RETURN is
//    set and every failure becomes a mousse::Error (the caller then calls abort());
//  - NCCL (cuda/nccl_communicator.cpp): device buffers, bootstrapped over MPI by broadcasting
//    ncclGetUniqueId; a watchdog polls ncclCommGetAsyncError and aborts on errors/timeouts.
// make_communicator() picks one from how the process was launched (mpirun/srun) and the device.
//
// "Split" collectives work on a contiguous range x divided among the ranks by counts (one per
// rank, summing to x.numel()): rank r's part is the counts[r] elements starting at
// counts[0] + ... + counts[r-1]. A rank with count 0 owns nothing of that range.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/ops.h"
#include "core/tensor.h"

namespace mousse {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Rank within this node (GPU index under one-GPU-per-rank).
  virtual int local_rank() const { return rank(); }
  virtual std::string describe() const = 0;  // "single process", "mpi: 2 ranks on 1 node", ...
  // True for MPI and NCCL, even with one rank (MOUSSE_DISTRIBUTED=1): then the data-parallel
  // path (reduce-scatter, sharded optimizer work, all-gather) runs as it does with several.
  virtual bool distributed() const { return true; }

  // The sum / max of a host scalar over all ranks.
  virtual double all_reduce_sum(double v) = 0;
  virtual double all_reduce_max(double v) = 0;
  // Rank r's part of x (=) the sum over ranks of that part; the rest of x is left unspecified.
  virtual void reduce_scatter_sum(const Tensor& x, const std::vector<int64_t>& counts) = 0;
  // Every rank's part of x (=) the owner's part (in place; an all-gather with varying counts).
  virtual void all_gather(const Tensor& x, const std::vector<int64_t>& counts) = 0;
  // x (=) root's x on every rank.
  virtual void broadcast(const Tensor& x, int root) = 0;
  // Collectives issued after this call see everything queued on `ops` so far. Default: the host
  // waits for the backend. NCCL instead makes its stream wait for an event on the backend's
  // stream, so the host goes on queueing work (the backward pass of the next layer).
  virtual void after_compute(Ops& ops) { ops.synchronize(); }
  // Collectives may run asynchronously (NCCL on its own stream); after wait() their results are
  // visible to the next operations of the backend. Host implementations are synchronous.
  virtual void wait() {}
  virtual void barrier() = 0;
  // Every rank's string, in rank order, on rank 0 (other ranks get an empty vector): small host
  // data such as each rank's optimizer diagnostics.
  virtual std::vector<std::string> gather_to_root(const std::string& s) = 0;
  // Ends the whole job (every rank) with `message` on stderr and a non-zero exit status.
  [[noreturn]] virtual void abort(const std::string& message) = 0;
};

std::unique_ptr<Communicator> make_single_process_communicator();

// A stand-in for rank `rank` of a `world`-rank job inside this one process: it answers rank()
// and world_size() (and distributed() = true), and its collectives are the identity. For
// planning what each rank of a job would hold (mousse config --memory) and for tests of the
// data-parallel plan; never for training.
std::unique_ptr<Communicator> make_rank_stand_in(int rank, int world);

// The communicator for this process: single process unless launched by mpirun/srun with more
// than one rank (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_SIZE or SLURM_NTASKS > 1); then MPI for
// the cpu device, NCCL (bootstrapped over MPI, cudaSetDevice(local_rank), or the one visible GPU
// when the launcher bound GPUs to ranks) for cuda. `device` is the config's "cpu", "cuda" or
// "auto". Errors clearly when the binary lacks MPI or NCCL, and when MPI_Init's world size is not
// the launcher's (an mpirun/srun of another MPI: every process would be a one-rank job).
std::unique_ptr<Communicator> make_communicator(const std::string& device);

// Ranks the launcher says this job has (1 when not launched by mpirun/srun).
int launcher_world_size();

}  // namespace mousse
