#pragma once
// Prefetcher: a background thread that fills a ring of host buffers with items start, start+1, ...
// ahead of the consumer, so the training step never waits on disk.
//
// - Bounded memory: `depth` slots of `slot_ints` int32 each, in one page-aligned allocation
//   (host_buffer(), so a GPU backend may page-lock it once, e.g. with cudaHostRegister).
// - The fill function runs on the producer thread only. If it throws, production stops and the
//   exception is rethrown by consume() when the consumer reaches that item (and again on every
//   later consume() until restart()); items before it are still delivered.
// - One consumer thread; not thread-safe otherwise. The destructor stops and joins the thread.
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace mousse {

class Prefetcher {
 public:
  using Fill = std::function<void(int64_t index, int32_t* slot)>;

  Prefetcher(int64_t slot_ints, int depth, Fill fill);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Stops any running producer, then starts producing at item `start`.
  void restart(int64_t start);
  // Stops and joins the producer (items already produced are dropped).
  void stop();
  bool running() const { return thread_.joinable(); }

  // Waits for the next item, calls use(slot) on it (on the caller's thread, outside the lock),
  // then frees the slot. Rethrows the producer's error for this item. Returns the item's index.
  int64_t consume(const std::function<void(const int32_t* slot)>& use);

  void* host_buffer() const { return buffer_; }
  size_t host_buffer_bytes() const { return buffer_bytes_; }

 private:
  void produce();
  int32_t* slot(int64_t index) const { return buffer_ + (index % depth_) * slot_ints_; }

  int64_t slot_ints_;
  int depth_;
  Fill fill_;
  int32_t* buffer_ = nullptr;
  size_t buffer_bytes_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  int64_t head_ = 0;  // next item the consumer takes
  int64_t tail_ = 0;  // next item the producer fills; items [head_, tail_) are ready
  bool stop_ = false;
  std::exception_ptr error_;  // error while filling item tail_; producer has exited
  std::thread thread_;
};

}  // namespace mousse
