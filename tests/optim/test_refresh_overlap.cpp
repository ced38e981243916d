// Mousse's overlapped refresh (refresh_overlap = N): refreshes after the first run on a worker
// thread with its own backend, from the statistics of their step t, and take effect at step
// t + N. The statistics depend only on the gradients, so a synchronous rig fed the same
// gradients computes the very bases the worker must deliver, N steps earlier: on the CPU the two
// are bit for bit equal (the same LAPACK calls on the same inputs, stack by stack).
#include <algorithm>

#include "optim/mousse.h"
#include "optim_test_util.h"

using namespace mousse;
using namespace mousse::otest;

namespace {

json overlap_cfg(int64_t overlap) {
  json c = {{"type", "mousse"}, {"update_interval", 3}, {"eps", 1e-3}};
  if (overlap > 0) c["refresh_overlap"] = overlap;
  return c;
}

// The optimizer state tensors whose name starts with `prefix` (bases "mousse.QL.", ...).
std::vector<Mat> state_with(Rig& r, const std::string& prefix) {
  std::vector<Mat> out;
  for (auto& [name, v] : r.state(prefix)) out.push_back(v);
  return out;
}

// Two shapes, two matrices of one of them: stacks of 2 and of 1 factors per size.
const Shapes kOverlapShapes = {{6, 10}, {6, 10}, {10, 4}};

std::vector<std::vector<Mat>> gradient_sequence(int steps, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<Mat>> gs;
  for (int t = 0; t < steps; t++) {
    std::vector<Mat> g;
    for (auto& s : kOverlapShapes) g.push_back(randn(s.first * s.second, rng, 0.1));
    gs.push_back(g);
  }
  return gs;
}

}  // namespace

TEST_CASE("Mousse refresh_overlap: the worker's bases are the synchronous refresh's, N steps "
          "later", "[optim][overlap]") {
  const int64_t T = 3, N = GENERATE(1, 2, 3);
  INFO("refresh_overlap " << N);
  const auto grads = gradient_sequence(12, 77);
  Rig sync(overlap_cfg(0), kOverlapShapes, DType::f32), over(overlap_cfg(N), kOverlapShapes, DType::f32);
  std::mt19937_64 rng(5);
  same_random_weights(sync, over, rng);
  // bases after each step (index t: after step t, i.e. with t_ = t + 1)
  std::vector<std::vector<Mat>> sync_ql, sync_qr;
  for (int t = 0; t < 12; t++) {
    sync.step(grads[size_t(t)], 0.02);
    over.step(grads[size_t(t)], 0.02);
    sync_ql.push_back(state_with(sync, "mousse.QL."));
    sync_qr.push_back(state_with(sync, "mousse.QR."));
    if (t < T) {  // the first refresh (t = 0) is synchronous in both
      for (size_t i = 0; i < kOverlapShapes.size(); i++) CHECK(over.w(i) == sync.w(i));
      continue;
    }
    // the bases the overlapped rig uses after step t are the synchronous rig's from N steps
    // before, taken at a refresh: those of the last refresh k·T with k·T + N <= t
    const int64_t refreshed = (t - N) / T * T;  // the step whose statistics they come from
    INFO("after step " << t << ": bases of the refresh at step " << refreshed);
    CHECK(state_with(over, "mousse.QL.") == sync_ql[size_t(refreshed)]);
    CHECK(state_with(over, "mousse.QR.") == sync_qr[size_t(refreshed)]);
  }
  auto* mo = dynamic_cast<Mousse*>(over.opt.get());
  REQUIRE(mo);
  CHECK(mo->eigh_failures() == 0);
  over.step(grads[0], 0.02, /*diagnostics=*/true);
  const json d = over.opt->diagnostics();
  INFO(d.dump());
  CHECK(d.value("refresh_overlapped_seconds_total", -1.0) > 0.0);
}

TEST_CASE("Mousse refresh_overlap: a checkpoint taken while a refresh is pending resumes "
          "exactly", "[optim][overlap][resume]") {
  const int64_t T = 3, N = 2;
  const auto grads = gradient_sequence(10, 78);
  Rig a(overlap_cfg(N), kOverlapShapes, DType::f32);
  std::mt19937_64 rng(6);
  for (size_t i = 0; i < kOverlapShapes.size(); i++)
    a.set(a.params[i].weight, randn(kOverlapShapes[i].first * kOverlapShapes[i].second, rng));
  const int stop = int(T) + 1;  // after step t = T: the refresh of step T is pending until T + N
  for (int t = 0; t < stop; t++) a.step(grads[size_t(t)], 0.02);
  std::vector<Mat> w;
  for (size_t i = 0; i < kOverlapShapes.size(); i++) w.push_back(a.w(i));
  const std::string extra = a.opt->save_extra().dump();  // first: it finishes the pending work
  REQUIRE(json::parse(extra).contains("pending_refresh"));
  const auto state = a.state();
  for (int t = stop; t < 10; t++) a.step(grads[size_t(t)], 0.02);

  Rig b(overlap_cfg(N), kOverlapShapes, DType::f32);
  for (size_t i = 0; i < kOverlapShapes.size(); i++) b.set(b.params[i].weight, w[i]);
  b.load_state(state);
  b.opt->load_extra(json::parse(extra));
  b.steps = stop;
  for (int t = stop; t < 10; t++) b.step(grads[size_t(t)], 0.02);
  for (size_t i = 0; i < kOverlapShapes.size(); i++) CHECK(a.w(i) == b.w(i));
  // a run without the overlap cannot take that checkpoint
  Rig c(overlap_cfg(0), kOverlapShapes, DType::f32);
  CHECK_THROWS_WITH(c.opt->load_extra(json::parse(extra)), Catch::Contains("refresh_overlap"));
}

TEST_CASE("Mousse refresh_overlap: a pending refresh moves with its matrices to other ranks "
          "and back", "[optim][overlap][resume][reshard]") {
  // One rank's checkpoint, taken while a refresh is in flight, resumed by two ranks that own
  // the matrices in other stacks (rank 0: a, c, d; rank 1: b); they take one step and save, the
  // refresh still pending; one rank resumes that and runs on. Each matrix's state, pending
  // eigenvectors included, goes by name; the host state through merge_extra. The result is the
  // uninterrupted run's.
  const int64_t T = 3, N = 2;
  const Shapes shapes = {{6, 10}, {6, 10}, {10, 4}, {10, 4}};
  const std::vector<std::string> names = {"a", "b", "c", "d"};
  const std::vector<std::vector<size_t>> owned = {{0, 2, 3}, {1}};
  std::mt19937_64 rng(79);
  std::vector<std::vector<Mat>> grads;
  for (int t = 0; t < 10; t++) {
    std::vector<Mat> g;
    for (auto& sh : shapes) g.push_back(randn(sh.first * sh.second, rng, 0.1));
    grads.push_back(g);
  }
  using State = std::vector<std::pair<std::string, Mat>>;
  auto matrix_of = [](const std::string& state) {  // "<optimizer>.<state>.<matrix>"
    return state.substr(state.find('.', state.find('.') + 1) + 1);
  };
  auto subset = [&](const State& st, const std::vector<std::string>& mats) {
    State out;
    for (auto& kv : st)
      if (std::find(mats.begin(), mats.end(), matrix_of(kv.first)) != mats.end()) out.push_back(kv);
    return out;
  };
  Rig full(overlap_cfg(N), shapes, DType::f64, "matrix", names);
  for (size_t i = 0; i < shapes.size(); i++)
    full.set(full.params[i].weight, randn(shapes[i].first * shapes[i].second, rng));
  const int stop = int(T) + 1;  // the refresh of step T is pending until T + N
  for (int t = 0; t < stop; t++) full.step(grads[size_t(t)], 0.02);
  std::vector<Mat> w;
  for (size_t i = 0; i < shapes.size(); i++) w.push_back(full.w(i));
  const json extra = full.opt->save_extra();
  REQUIRE(extra.contains("pending_refresh"));
  const State state = full.state();
  for (int t = stop; t < 10; t++) full.step(grads[size_t(t)], 0.02);

  // two ranks: one step each, then a checkpoint (the refresh takes effect at step T + N)
  State saved_state;
  std::vector<json> saved_extra;
  std::vector<Mat> w2(shapes.size());
  for (int rank = 0; rank < 2; rank++) {
    Shapes sh;
    std::vector<std::string> nm;
    for (size_t i : owned[size_t(rank)]) sh.push_back(shapes[i]), nm.push_back(names[i]);
    Rig r(overlap_cfg(N), sh, DType::f64, "matrix", nm);
    for (size_t j = 0; j < sh.size(); j++) r.set(r.params[j].weight, w[owned[size_t(rank)][j]]);
    r.load_state(subset(state, nm));
    r.opt->load_extra(r.opt->merge_extra({extra}, rank));
    r.steps = stop;
    std::vector<Mat> g;
    for (size_t i : owned[size_t(rank)]) g.push_back(grads[size_t(stop)][i]);
    r.step(g, 0.02);
    for (size_t j = 0; j < sh.size(); j++) w2[owned[size_t(rank)][j]] = r.w(j);
    saved_extra.push_back(r.opt->save_extra());
    REQUIRE(saved_extra.back().contains("pending_refresh"));
    for (auto& kv : r.state()) saved_state.push_back(kv);
  }
  // one rank again
  Rig one(overlap_cfg(N), shapes, DType::f64, "matrix", names);
  for (size_t i = 0; i < shapes.size(); i++) one.set(one.params[i].weight, w2[i]);
  one.load_state(saved_state);
  one.opt->load_extra(one.opt->merge_extra(saved_extra, 0));
  one.steps = stop + 1;
  for (int t = stop + 1; t < 10; t++) one.step(grads[size_t(t)], 0.02);
  for (size_t i = 0; i < shapes.size(); i++) {
    INFO(names[i]);
    CHECK(rel_err(one.w(i), full.w(i)) < 1e-13);
  }
  // a rank missing a matrix's pending result (another optimizer configuration) is refused
  json broken = extra;
  broken["pending_refresh"]["status"].erase("c");
  Rig r(overlap_cfg(N), shapes, DType::f64, "matrix", names);
  CHECK_THROWS_WITH(r.opt->load_extra(r.opt->merge_extra({broken}, 0)),
                    Catch::Contains("no result for side") && Catch::Contains(" c"));
}

TEST_CASE("Mousse refresh_overlap: configuration errors", "[optim][overlap][config]") {
  json c = overlap_cfg(4);  // > update_interval 3
  CHECK_THROWS_WITH(Rig(c, kOverlapShapes), Catch::Contains("refresh_overlap"));
  c = overlap_cfg(1);
  c["refresh"] = "power_qr";
  CHECK_THROWS_WITH(Rig(c, kOverlapShapes), Catch::Contains("refresh_overlap") &&
                                                Catch::Contains("eigh"));
  c = overlap_cfg(0);
  c["refresh_overlap"] = -1;
  CHECK_THROWS_WITH(Rig(c, kOverlapShapes), Catch::Contains("refresh_overlap"));
}
