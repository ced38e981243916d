#include "optim/refresh_worker.h"

#include <algorithm>
#include <chrono>

namespace mousse {

RefreshWorker::~RefreshWorker() {
  if (future_.valid()) future_.wait();
}

void RefreshWorker::make(Ops& ops, const std::vector<Stack>& stacks) {
  std::unique_ptr<Ops> worker = ops.make_worker();
  for (const Stack& s : stacks) worker->reserve_eigh_batched(s.v, s.w, s.a);
  worker_ = std::move(worker);  // only once reserved: a failed reservation is retried next time
}

void RefreshWorker::start(std::vector<Stack> stacks) {
  MOUSSE_CHECK(worker_, "refresh worker: start() before make()");
  done_.reset();
  future_ = std::async(std::launch::async, [this, stacks = std::move(stacks)] {
    worker_->bind_thread();
    const auto t0 = std::chrono::steady_clock::now();
    Result r;
    try {
      for (const Stack& s : stacks) {
        const std::vector<int> status = worker_->eigh_batched(s.v, s.w, s.a);
        r.status.insert(r.status.end(), status.begin(), status.end());
      }
      worker_->synchronize();  // its results are complete before the caller's stream reads them
    } catch (...) {  // nothing of it may still run when the caller sees the error
      try {
        worker_->synchronize();
      } catch (...) {
      }
      throw;
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  });
}

const RefreshWorker::Result& RefreshWorker::result() const {
  if (error_) std::rethrow_exception(error_);  // every later caller sees it too
  if (!done_) {
    MOUSSE_CHECK(future_.valid(), "mousse: no overlapped refresh to wait for");
    try {
      done_ = future_.get();  // rethrows the worker's error
    } catch (...) {
      error_ = std::current_exception();
      throw;
    }
  }
  return *done_;
}

void RefreshWorker::reset() {
  if (future_.valid()) future_.wait();
  future_ = {};
  done_.reset();
  error_ = nullptr;
}

void RefreshWorker::restore(Result r) {
  reset();
  done_ = std::move(r);
}

}  // namespace mousse
