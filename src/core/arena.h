#pragma once
// Arena: every tensor of a run (parameters, gradients, optimizer state, activations) is carved
// out of ONE allocation per device, planned up front. Owners first reserve() their tensors (the
// plan), then allocate() makes the single allocation and points every reserved Tensor into it.
// Nothing is allocated inside the training loop.
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace mousse {

class Ops;

class Arena {
 public:
  struct Entry {
    std::string category;  // "parameters", "gradients", "optimizer", "activations", ...
    std::string name;
    Tensor* target;        // patched by allocate(); must not move before then
    size_t offset;
    size_t bytes;
  };

  explicit Arena(Ops& ops) : ops_(ops) {}
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Plans a tensor of the given dtype and shape. `t` gets its data pointer at allocate().
  void reserve(Tensor& t, const std::string& category, const std::string& name, DType dt, Shape s);
  // Makes the one allocation (zero-filled) and patches every reserved tensor.
  void allocate();
  bool allocated() const { return base_ != nullptr; }
  Device device() const;

  size_t total_bytes() const { return total_; }
  size_t category_bytes(const std::string& category) const;
  // Bytes per category in reserve order, human-readable ("parameters  12.3 MiB").
  std::string plan_report() const;
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  Ops& ops_;
  std::vector<Entry> entries_;
  size_t total_ = 0;
  void* base_ = nullptr;
};

std::string format_bytes(double bytes);  // "1.50 GiB"

}  // namespace mousse
