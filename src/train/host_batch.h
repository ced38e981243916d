#pragma once
// The host side of one micro-batch: its input and target tokens in ONE page-locked buffer, so
// the upload to the model is asynchronous DMA and the host can prepare the next micro-batch
// while the device still computes. One buffer, registered once: two separately allocated vectors
// of 64 KiB sit next to each other on the heap and share a page, and page-locking the second one
// then fails (it would stay pageable, and a copy from it could be partly DMA with nothing to
// wait on).
#include <cstdint>
#include <vector>

#include "backend/ops.h"

namespace mousse {

class HostBatch {
 public:
  HostBatch(Ops& ops, int64_t tokens);
  ~HostBatch();
  HostBatch(const HostBatch&) = delete;
  HostBatch& operator=(const HostBatch&) = delete;

  // Waits until the previous upload has read the buffer (it was queued before the previous
  // micro-batch's forward, so the host stays a micro-batch ahead), lets fill(inputs, targets)
  // write the next micro-batch into it, and queues its upload into the two device tensors.
  template <class Fill>
  void upload(Fill&& fill, const Tensor& inputs, const Tensor& targets) {
    ops_.wait_host_buffer(buf_.data());
    fill(buf_.data(), buf_.data() + n_);
    ops_.from_host(inputs, buf_.data());
    ops_.from_host(targets, buf_.data() + n_);
  }

 private:
  Ops& ops_;
  int64_t n_;
  std::vector<int32_t> buf_;  // inputs [0, n), targets [n, 2n)
};

}  // namespace mousse
