#include "dist/data_parallel.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <sstream>

#include "optim/mousse.h"
#include "optim/soap.h"
#include "train/param_groups.h"

namespace mousse {

bool needs_whole_matrices(const std::string& t) {
  return t == "muon" || t == "soap" || t == "mousse";
}

namespace {
// Newton–Schulz (quintic, 5 iterations) on an a × b matrix, a = min side, b = max side:
// per iteration A = X Xᵀ (2a²b), A² (2a³), (bA + cA²) X (2a²b).
double ns5_flops(double a, double b) { return 5.0 * (4.0 * a * a * b + 2.0 * a * a * a); }
}  // namespace

double matrix_update_cost(const Optimizer& opt, int64_t rows, int64_t cols) {
  const double m = double(rows), n = double(cols);
  const double a = std::min(m, n), b = std::max(m, n);
  if (auto* mo = dynamic_cast<const Mousse*>(&opt)) {
    bool out = mo->whiten == Mousse::Side::both || mo->whiten == Mousse::Side::output ||
               (mo->whiten == Mousse::Side::smaller && m <= n);
    bool in = mo->whiten == Mousse::Side::both || mo->whiten == Mousse::Side::input ||
              (mo->whiten == Mousse::Side::smaller && n < m);
    const double T = double(std::max<int64_t>(1, mo->update_interval));
    // a refresh per d³: eigh ~9; "power_qr" one GEMM + QR (~2 + 4/3, Householder's flops; the
    // Cholesky QR used on GPUs does more flops in less time, and the proxy is left as it is so
    // that ownership plans saved in checkpoints stay valid) between exact eighs every
    // eigh_every-th refresh (0: only the first, amortised away over a run)
    double r = 9.0;
    if (mo->refresh_method == Mousse::Refresh::power_qr) {
      const double k = double(mo->eigh_every);
      r = k > 0 ? (9.0 + (k - 1) * 10.0 / 3.0) / k : 10.0 / 3.0;
    }
    double c = ns5_flops(a, b);
    // per side: factor EMA (G Gᵀ), whiten + un-whiten rotations, a refresh every T steps
    if (out) c += 2 * m * m * n + 4 * m * m * n + r * m * m * m / T;
    if (in) c += 2 * m * n * n + 4 * m * n * n + r * n * n * n / T;
    return c;
  }
  if (auto* so = dynamic_cast<const Soap*>(&opt)) {
    const double T = double(std::max<int64_t>(1, so->update_interval));
    double c = 10 * m * n;  // Adam in the rotated frame
    // per side: factor EMA, rotations of G and of the update (and of m at refresh), and a
    // power-iteration + QR refresh (~2d³ + 4/3·2d³) every T steps
    if (m <= double(so->max_precond_dim)) c += 2 * m * m * n + 4 * m * m * n + 5 * m * m * m / T;
    if (n <= double(so->max_precond_dim)) c += 2 * m * n * n + 4 * m * n * n + 5 * n * n * n / T;
    return c;
  }
  return ns5_flops(a, b);  // muon
}

std::vector<int> assign_owners(const std::vector<double>& cost, int world) {
  MOUSSE_CHECK(world >= 1, "world size must be >= 1");
  std::vector<size_t> order(cost.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return cost[x] > cost[y]; });
  std::vector<double> load(size_t(world), 0.0);
  std::vector<int> owner(cost.size(), 0);
  for (size_t i : order) {
    int best = 0;
    for (int r = 1; r < world; r++)
      if (load[size_t(r)] < load[size_t(best)]) best = r;
    owner[i] = best;
    load[size_t(best)] += cost[i];
  }
  return owner;
}

std::vector<int64_t> even_split(int64_t n, int world) {
  std::vector<int64_t> c(size_t(world), n / world);
  for (int r = 0; r < int(n % world); r++) c[size_t(r)]++;
  return c;
}

std::string DataParallel::stage_of(const std::string& name) {
  if (name.rfind("blocks.", 0) == 0) return name.substr(0, name.find('.', 7));
  return name;  // "wte", "lm_head"
}

DataParallel::DataParallel(Communicator& comm, Ops& ops, ParamTable& table,
                           OptimizerSetup& setup)
    : comm_(comm), ops_(ops), table_(table) {
  const int W = comm.world_size(), me = comm.rank();
  load_.assign(size_t(W), 0.0);
  slices_.reserve(table.params().size());
  for (ParamGroup& g : setup.groups) {
    std::vector<Param*> all = g.params, mine;
    if (needs_whole_matrices(g.optimizer->type())) {
      std::vector<double> cost;
      for (Param* p : all) cost.push_back(matrix_update_cost(*g.optimizer, p->rows, p->cols));
      std::vector<int> owner = assign_owners(cost, W);
      for (size_t i = 0; i < all.size(); i++) {
        Bucket b{all[i], stage_of(all[i]->name), std::vector<int64_t>(size_t(W), 0), owner[i]};
        b.counts[size_t(owner[i])] = all[i]->weight.numel();
        buckets_.push_back(b);
        load_[size_t(owner[i])] += cost[i];
        if (owner[i] == me) mine.push_back(all[i]);
      }
    } else {
      for (Param* p : all) {
        Bucket b{p, stage_of(p->name), even_split(p->weight.numel(), W), -1};
        int64_t start = 0;
        for (int r = 0; r < me; r++) start += b.counts[size_t(r)];
        const int64_t n = b.counts[size_t(me)];
        buckets_.push_back(b);
        if (n == 0) continue;
        Param s = *p;  // same name (state tensors are named after it), a flat slice
        s.rows = 1;
        s.cols = n;
        s.offset = p->offset + start;
        s.weight = Tensor{nullptr, p->weight.dtype, p->weight.device, Shape{n}};
        s.grad = s.weight;
        s.compute = Tensor{nullptr, p->compute.dtype, p->compute.device, Shape{n}};
        slices_.push_back(s);
        mine.push_back(&slices_.back());
      }
    }
    g.params = mine;
  }
  // Reduce in the order gradients become final: lm_head, the last block, ..., the first, wte.
  std::stable_sort(buckets_.begin(), buckets_.end(), [](const Bucket& x, const Bucket& y) {
    return x.param->offset > y.param->offset;
  });
}

void DataParallel::bind() {
  for (Param& s : slices_) {
    s.weight = table_.flat_weights().slice(s.offset, Shape{s.cols});
    s.grad = table_.flat_grads().slice(s.offset, Shape{s.cols});
    s.compute = table_.flat_compute().slice(s.offset, Shape{s.cols});
  }
}

void DataParallel::reduce(Bucket& b) {
  comm_.reduce_scatter_sum(b.param->grad.view(Shape{b.param->grad.numel()}), b.counts);
  b.reduced = true;
}

void DataParallel::grads_ready(const std::string& stage) {
  bool any = false;
  for (Bucket& b : buckets_) {
    if (b.reduced || b.stage != stage) continue;
    if (!any) comm_.after_compute(ops_);  // after the work that produced these gradients
    any = true;
    reduce(b);
  }
}

void DataParallel::reduce_gradients() {
  comm_.after_compute(ops_);
  for (Bucket& b : buckets_)
    if (!b.reduced) reduce(b);
  comm_.wait();
  for (Bucket& b : buckets_) b.reduced = false;
}

double DataParallel::grad_sum_squares() {
  const int me = comm_.rank();
  double local = 0;
  for (const Bucket& b : buckets_) {
    const int64_t n = b.counts[size_t(me)];
    if (n == 0) continue;
    int64_t start = 0;
    for (int r = 0; r < me; r++) start += b.counts[size_t(r)];
    local += ops_.sum_squares(table_.flat_grads().slice(b.param->offset + start, Shape{n}));
  }
  return comm_.all_reduce_sum(local);
}

void DataParallel::gather_weights() {
  comm_.after_compute(ops_);
  for (Bucket& b : buckets_)
    comm_.all_gather(b.param->weight.view(Shape{b.param->weight.numel()}), b.counts);
  comm_.wait();
}

json DataParallel::plan() const {
  json owners = json::object();
  for (const Bucket& b : buckets_)
    if (b.owner >= 0) owners[b.param->name] = b.owner;
  return json{{"world_size", comm_.world_size()}, {"owners", owners}};
}

bool DataParallel::zero1_range(const std::string& param, int64_t* start, int64_t* count,
                               int64_t* total) const {
  const int me = comm_.rank();
  for (const Bucket& b : buckets_) {
    if (b.owner >= 0 || b.param->name != param) continue;
    *start = 0;
    for (int r = 0; r < me; r++) *start += b.counts[size_t(r)];
    *count = b.counts[size_t(me)];
    *total = b.param->weight.numel();
    return true;
  }
  return false;
}

std::string DataParallel::describe() const {
  std::ostringstream s;
  const int W = comm_.world_size();
  std::vector<int> owned(size_t(W), 0);
  int64_t sliced = 0;
  for (const Bucket& b : buckets_) {
    if (b.owner >= 0) owned[size_t(b.owner)]++;
    else sliced += b.param->weight.numel();
  }
  s << "data parallel: " << comm_.describe() << "\n";
  if (sliced > 0)
    s << "  ZeRO-1: " << sliced << " elementwise-optimized parameters split evenly, "
      << "~" << (sliced + W - 1) / W << " per rank\n";
  double total = 0, peak = 0;
  for (double l : load_) total += l, peak = std::max(peak, l);
  if (total > 0) {
    s << "  matrix ownership (optimizer GFLOP/step):";
    for (int r = 0; r < W; r++) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " r%d %d mats %.3g", r, owned[size_t(r)], load_[size_t(r)] / 1e9);
      s << buf;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, " | imbalance %.3f\n", peak / (total / W));
    s << buf;
  }
  return s.str();
}

int64_t DataParallel::elements_per_step() const {
  int64_t n = 0;
  for (const Bucket& b : buckets_) n += b.param->weight.numel();
  return 2 * n;  // one reduce-scatter of the gradients + one all-gather of the weights
}

void maybe_inject_failure(int rank, int64_t step) {
  const char* spec = std::getenv("MOUSSE_TEST_FAIL");
  if (!spec || !*spec) return;
  int r = -1;
  long long s = -1;
  char mode[16] = {0};
  if (std::sscanf(spec, "%d:%lld:%15s", &r, &s, mode) != 3) return;
  if (r != rank || s != step) return;
  std::fprintf(stderr, "MOUSSE_TEST_FAIL: rank %d fails at step %lld (%s)\n", rank, s, mode);
  std::fflush(stderr);
  std::string m = mode;
  if (m == "kill") std::raise(SIGKILL);
  if (m == "term") {  // a stop signal that reaches this rank only (or first): not a failure
    std::raise(SIGTERM);
    return;
  }
  if (m == "throw") fail("injected failure on rank ", rank, " at step ", s, " (MOUSSE_TEST_FAIL)");
  std::_Exit(3);
}

}  // namespace mousse
