#pragma once
// The overlapped refresh's worker (Mousse, refresh_overlap > 0): batched eigendecompositions of
// stacks of symmetric matrices on a thread of their own, with a backend of their own (on CUDA:
// its own stream), while the optimizer's steps go on. The caller owns the tensors (inputs,
// eigenvectors, eigenvalues) and must neither write the inputs nor read the results before
// result() returns.
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <vector>

#include "backend/ops.h"

namespace mousse {

class RefreshWorker {
 public:
  // One stack, as Ops::eigh_batched takes it: eigenvectors [b, d, d], eigenvalues [b, d], the
  // matrices [b, d, d].
  struct Stack {
    Tensor v, w, a;
  };
  struct Result {
    std::vector<int> status;  // per matrix, stack after stack: 0 = decomposed
    double seconds = 0.0;     // the worker's wall time
  };

  RefreshWorker() = default;
  RefreshWorker(const RefreshWorker&) = delete;
  RefreshWorker& operator=(const RefreshWorker&) = delete;
  ~RefreshWorker();  // waits for a decomposition still running (its error, if any, is dropped)

  bool made() const { return worker_ != nullptr; }
  // The worker backend with every workspace the decompositions of `stacks` need, made while
  // nothing runs: growing a workspace later frees the old one, which on CUDA waits for the
  // whole device in the middle of the steps it should overlap, and a lack of memory shows when
  // this is called rather than at the first overlapped refresh. A failed reservation leaves it
  // unmade, to be retried.
  void make(Ops& ops, const std::vector<Stack>& stacks);
  // Decomposes `stacks` in order on the worker, from now on; their inputs must be complete
  // (synchronised) before this is called.
  void start(std::vector<Stack> stacks);
  // The result of the last start() or restore(); waits for the worker the first time. The
  // worker's error is rethrown, to this and every later caller until reset().
  const Result& result() const;
  // Waits for a decomposition still running, then forgets its result and error.
  void reset();
  // reset(), then takes `r` as the result (a pending refresh resumed from a checkpoint).
  void restore(Result r);

 private:
  std::unique_ptr<Ops> worker_;
  mutable std::future<Result> future_;
  mutable std::optional<Result> done_;
  mutable std::exception_ptr error_;
};

}  // namespace mousse
