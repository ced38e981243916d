#pragma once
// Arena: every tensor of a run (parameters, gradients, optimizer state, activations) is carved
// out of ONE allocation per device, planned up front. Owners first reserve() their tensors (the
// plan), then allocate() makes the single allocation and points every reserved Tensor into it.
// Nothing is allocated inside the training loop.
//
// Layout: the allocation is a sequence of regions. A category has a region of its own, unless
// overlay() puts it into another category's region: categories of one region share memory
// (each is laid out from the region's start, its tensors in reserve order), so the region is as
// large as its largest category, not their sum. Only for data that is never alive at the same
// time (the caller says why, at the overlay() call). Every tensor starts 256-byte aligned.
#include <map>
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
    size_t offset;         // from the allocation's start; set by allocate()
    size_t bytes;
    bool packed = false;   // the next entry follows with no padding (reserve_stack)
  };
  // Categories that share memory: one region of the allocation (see overlay()).
  struct Region {
    std::vector<std::string> categories;  // in order of their first reservation
    size_t offset = 0;                    // from the allocation's start
    size_t bytes = 0;                     // the largest of its categories' bytes
  };

  explicit Arena(Ops& ops);
  // A plan only, for `device`, with no backend behind it: everything but allocate() (which
  // fails) works, so a run's memory can be planned for a device this machine does not have.
  explicit Arena(Device planned) : device_(planned) {}
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // Plans a tensor of the given dtype and shape. `t` gets its data pointer at allocate().
  void reserve(Tensor& t, const std::string& category, const std::string& name, DType dt, Shape s);
  // Plans tensors of one dtype and shape back to back, with no padding between them (the first
  // 256-byte aligned): after allocate() they are the slices of one contiguous stack
  // [ts.size(), s...] (stack_view), for batched ops, while each keeps its own name.
  void reserve_stack(const std::vector<Tensor*>& ts, const std::string& category,
                     const std::vector<std::string>& names, DType dt, Shape s);
  // `category` shares the memory of `host`'s region: its tensors are laid out from the start of
  // that region too, overwriting each other. Before allocate(), before or after the reservations.
  // A category joins one host; joining a category that itself joined another joins that region.
  void overlay(const std::string& category, const std::string& host);
  // Makes the one allocation (zero-filled) and patches every reserved tensor.
  void allocate();
  bool allocated() const { return base_ != nullptr; }
  Device device() const;

  // Bytes of the one allocation (regions added up; shared memory counted once).
  size_t total_bytes() const;
  // Bytes planned in one category (aligned), whether or not it shares memory.
  size_t category_bytes(const std::string& category) const;
  // The layout: regions in order of their first reservation.
  std::vector<Region> regions() const;
  // Bytes per category in reserve order, which ones share memory, and the total allocated
  // (human-readable: "parameters  12.3 MiB  (3 tensors)").
  std::string plan_report() const;
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::string root(const std::string& category) const;  // the category whose region it uses

  Ops* ops_ = nullptr;  // null: a plan only
  Device device_;
  std::vector<Entry> entries_;
  std::map<std::string, std::string> host_;  // overlay(): category -> host
  size_t total_ = 0;                         // set by allocate()
  void* base_ = nullptr;
};

// The [ts.size(), shape...] view of tensors planned by one Arena::reserve_stack, in order (fails
// unless they share dtype and shape and lie back to back).
Tensor stack_view(const std::vector<const Tensor*>& ts);

std::string format_bytes(double bytes);  // "1.50 GiB"

}  // namespace mousse
