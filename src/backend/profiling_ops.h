#pragma once
// ProfilingOps: an Ops that forwards every call to another backend and times it, for
// `mousse bench --profile`: where the milliseconds of a training step go, per phase, per op and
// per GEMM shape. The device is synchronised before and after each op, so each op's time is its
// own (its kernels plus the launch), at the price of the overlap a normal step has between the
// host queueing work and the device running it: the profiled step is slower than a real one,
// and its rows say which ops to make faster, not the step time.
#include <chrono>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "backend/ops.h"

namespace mousse {

class ProfilingOps : public Ops {
 public:
  explicit ProfilingOps(Ops& inner) : inner_(inner) {}

  // Later ops are booked under this phase ("forward", "backward", "optimizer").
  void set_phase(const std::string& phase) { phase_ = phase; }
  void reset() { rows_.clear(); }
  // The table, per step over `steps` profiled steps, largest first; `step_ms` (if > 0) is the
  // unprofiled step time it is compared with.
  std::string report(int64_t steps, double step_ms) const;

  Device device() const override { return inner_.device(); }
  std::string name() const override { return inner_.name() + " (profiled)"; }
  // (a worker's ops are not profiled: they run beside the profiled thread)
  std::unique_ptr<Ops> make_worker() const override { return inner_.make_worker(); }
  void* alloc(size_t bytes) override { return inner_.alloc(bytes); }
  void free(void* p) override { inner_.free(p); }
  void to_host(void* dst, const Tensor& src) override;
  void from_host(const Tensor& dst, const void* src) override;
  void synchronize() override { inner_.synchronize(); }
  void register_host_memory(void* p, size_t bytes) override { inner_.register_host_memory(p, bytes); }
  void unregister_host_memory(void* p) override { inner_.unregister_host_memory(p); }
  void wait_host_buffer(const void* p) override { inner_.wait_host_buffer(p); }
  double peak_flops_bf16() const override { return inner_.peak_flops_bf16(); }
  size_t device_memory_used() const override { return inner_.device_memory_used(); }
  size_t device_memory_total() const override { return inner_.device_memory_total(); }

  void reserve_eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                            const Tensor& a) override {
    inner_.reserve_eigh_batched(eigenvectors, eigenvalues, a);
  }

 private:
  // Every op forwards to the inner backend's front, timed: booked under its name, or (XK in
  // MOUSSE_OPS) under the label its key_<name> function computes from the arguments.
  struct Key {
    std::string label;
    double flops = 0;  // GEMMs: 2·M·N·K per call (0 elsewhere)
  };
#define MOUSSE_PROFILED_OP(R, name, P, A) \
  R name##_impl P override { return timed(#name, [&] { return inner_.name A; }); }
#define MOUSSE_PROFILED_OP_KEYED(R, name, P, A)                         \
  R name##_impl P override {                                            \
    const Key key = key_##name A;                                       \
    return timed(key.label, [&] { return inner_.name A; }, key.flops); \
  }                                                                     \
  static Key key_##name P;
  MOUSSE_OPS(MOUSSE_PROFILED_OP, MOUSSE_PROFILED_OP_KEYED)
#undef MOUSSE_PROFILED_OP
#undef MOUSSE_PROFILED_OP_KEYED

  struct Row {
    int64_t calls = 0;
    double seconds = 0;
    double flops = 0;  // GEMMs: 2·M·N·K per call (0 elsewhere)
  };
  // Runs f between two synchronisations and books its time under (phase, what).
  template <class F>
  auto timed(const std::string& what, F&& f, double flops = 0) -> decltype(f()) {
    inner_.synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      book(what, t0, flops);
    } else {
      auto result = f();
      book(what, t0, flops);
      return result;
    }
  }
  void book(const std::string& what, std::chrono::steady_clock::time_point t0, double flops);

  Ops& inner_;
  std::string phase_ = "other";
  std::map<std::pair<std::string, std::string>, Row> rows_;
};

}  // namespace mousse
