#pragma once
// Shared between the MPI communicator (src/dist) and the NCCL one (cuda/), which bootstraps
// over MPI: an MPI world that was initialised by us and is finalised when the last user goes.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1  // the C API only (no deprecated C++ bindings)
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace mousse {

struct MpiWorld {
  MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1, local_rank = 0, local_size = 1, nodes = 1;
  MpiWorld();   // MPI_Init (if needed), MPI_ERRORS_RETURN, node-local rank via split_type
  ~MpiWorld();  // MPI_Finalize (if we initialised)
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;
  // Throws a mousse::Error naming the call, the rank and MPI's message if rc != MPI_SUCCESS.
  void check(int rc, const char* what) const;
  // Host scalars: both communicators (MPI, and NCCL for its non-device values) reduce through
  // these.
  double all_reduce(double v, MPI_Op op) const;
  void barrier() const;
  std::vector<std::string> gather_to_root(const std::string& s) const;
  [[noreturn]] void abort(const std::string& message) const;
};

// Defined in cuda/nccl_communicator.cpp (only when built with NCCL): selects GPU local_rank,
// creates the NCCL communicator from an ncclUniqueId broadcast over MPI.
std::unique_ptr<Communicator> make_nccl_communicator(std::shared_ptr<MpiWorld> world);

}  // namespace mousse
