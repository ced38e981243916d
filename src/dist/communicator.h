#pragma once
// Communicator: the collectives data parallelism needs. One process: every call is the identity.
// MPI (host buffers, CPU backend) and NCCL (device buffers) implementations plug in here.
#include <memory>

#include "core/tensor.h"

namespace mousse {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const { return rank(); }
  // x (=) the sum of x over all ranks, in place.
  virtual void all_reduce_sum(const Tensor& x) = 0;
  virtual double all_reduce_sum(double v) = 0;
  virtual void barrier() = 0;
};

std::unique_ptr<Communicator> make_single_process_communicator();

}  // namespace mousse
