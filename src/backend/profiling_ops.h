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

  void fill(const Tensor& x, double value) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void copy_stochastic(const Tensor& dst, const Tensor& src, uint64_t seed) override;
  void scale(const Tensor& x, double alpha) override;
  void axpby(const Tensor& y, double a, const Tensor& x, double b) override;
  double sum(const Tensor& x) override;
  double sum_squares(const Tensor& x) override;
  void matmul(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
              double alpha = 1.0, double beta = 0.0) override;
  void matmul_batched(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b,
                      bool trans_b, double alpha = 1.0, double beta = 0.0) override;
  void matmul_tf32(const Tensor& out, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                   double alpha = 1.0, double beta = 0.0) override;
  void embedding_forward(const Tensor& out, const Tensor& wte, const Tensor& tokens) override;
  void rmsnorm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp) override;
  void add_rmsnorm_forward(const Tensor& res_out, const Tensor& norm_out, const Tensor& rstd,
                           const Tensor& res_in, const Tensor& delta) override;
  void qknorm_rope_forward(const Tensor& qkv_out, const Tensor& rstd, const Tensor& qkv_in,
                           int n_head, float rope_base) override;
  void attention_forward(const Tensor& out, const Tensor& lse, const Tensor& qkv,
                         int n_head) override;
  void relu2_forward(const Tensor& out, const Tensor& inp) override;
  void classifier(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                  int64_t vocab_size, double grad_scale, bool compute_grad) override;
  void embedding_backward(const Tensor& dwte, const Tensor& dout, const Tensor& tokens) override;
  void rmsnorm_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp,
                        const Tensor& rstd) override;
  void qknorm_rope_backward(const Tensor& dqkv_in, const Tensor& dqkv_out, const Tensor& qkv_in,
                            const Tensor& rstd, int n_head, float rope_base) override;
  void attention_backward(const Tensor& dqkv, const Tensor& dout, const Tensor& qkv,
                          const Tensor& out, const Tensor& lse, int n_head) override;
  void relu2_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) override;
  void adamw_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                    const AdamWArgs& args, const ComputeCopy& copy = {}) override;
  void lion_update(const Tensor& p, const Tensor& g, const Tensor& m, const LionArgs& args,
                   const ComputeCopy& copy = {}) override;
  int eigh(const Tensor& eigenvectors, const Tensor& eigenvalues, const Tensor& a) override;
  void qr_orthonormal(const Tensor& q, const Tensor& a) override;
  void scale_rows_cols(const Tensor& out, const Tensor& inp, const Tensor& row_scale,
                       const Tensor& col_scale) override;
  void pow_clamped(const Tensor& out, const Tensor& inp, double exponent, double floor) override;
  void add_to_diagonal(const Tensor& a, double value) override;
  double trace(const Tensor& a) override;
  void transpose(const Tensor& out, const Tensor& inp) override;
  void gather_columns(const Tensor& out, const Tensor& inp, const Tensor& index) override;
  void gather_rows(const Tensor& out, const Tensor& inp, const Tensor& index) override;
  void column_dots(const Tensor& out, const Tensor& a, const Tensor& b) override;
  void ema_square(const Tensor& v, const Tensor& x, double beta) override;
  void adam_direction(const Tensor& out, const Tensor& m, const Tensor& v, double eps,
                      double bias_correction1, double bias_correction2) override;
  void sum_squares_batched(const Tensor& out, const Tensor& x) override;
  void trace_to(const Tensor& out, const Tensor& a) override;
  void scale_by_ratio(const Tensor& x, const Tensor& num, const Tensor& den, double power,
                      double c, double alpha, double eps) override;
  std::vector<int> eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                                const Tensor& a) override;
  void reserve_eigh_batched(const Tensor& eigenvectors, const Tensor& eigenvalues,
                            const Tensor& a) override {
    inner_.reserve_eigh_batched(eigenvectors, eigenvalues, a);
  }
  std::vector<int> cholesky_batched(const Tensor& a) override;
  void solve_upper_right_batched(const Tensor& x, const Tensor& r) override;

 private:
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
