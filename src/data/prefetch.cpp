#include "data/prefetch.h"

#include <cstdlib>

#include "core/error.h"

namespace mousse {

Prefetcher::Prefetcher(int64_t slot_ints, int depth, Fill fill)
    : slot_ints_(slot_ints), depth_(depth), fill_(std::move(fill)) {
  MOUSSE_CHECK(slot_ints > 0 && depth > 0, "slot_ints ", slot_ints, " depth ", depth);
  constexpr size_t kAlign = 4096;
  const size_t bytes = static_cast<size_t>(slot_ints) * sizeof(int32_t) * depth;
  buffer_bytes_ = (bytes + kAlign - 1) / kAlign * kAlign;
  buffer_ = static_cast<int32_t*>(std::aligned_alloc(kAlign, buffer_bytes_));
  if (!buffer_) fail("prefetch: cannot allocate ", buffer_bytes_, " bytes of host buffers");
}

Prefetcher::~Prefetcher() {
  stop();
  std::free(buffer_);
}

void Prefetcher::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Prefetcher::restart(int64_t start) {
  stop();
  head_ = tail_ = start;
  stop_ = false;
  error_ = nullptr;
  thread_ = std::thread([this] { produce(); });
}

void Prefetcher::produce() {
  for (;;) {
    int64_t index;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || tail_ - head_ < depth_; });
      if (stop_) return;
      index = tail_;
    }
    // The slot of `index` is neither ready nor in use by the consumer: fill it without the lock.
    std::exception_ptr err;
    try {
      fill_(index, slot(index));
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (err)
        error_ = err;
      else
        ++tail_;
    }
    cv_.notify_all();
    if (err) return;
  }
}

int64_t Prefetcher::consume(const std::function<void(const int32_t*)>& use) {
  MOUSSE_CHECK(thread_.joinable(), "Prefetcher::consume before restart()");
  int64_t index;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return tail_ > head_ || error_; });
    if (tail_ == head_) std::rethrow_exception(error_);
    index = head_;
  }
  use(slot(index));  // the producer never touches a ready slot
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++head_;
  }
  cv_.notify_all();
  return index;
}

}  // namespace mousse
