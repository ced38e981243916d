// The arena (src/core/arena.h): one allocation, categories laid out region by region, overlay()
// letting categories share a region; the plan report; and, at the training level, that the
// memory the Trainer shares between "activations" and "optimizer_scratch" is dead whenever the
// other category uses it.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/select.h"
#include "core/arena.h"
#include "dist/communicator.h"
#include "train/run_config.h"
#include "train/trainer.h"

using namespace mousse;

#ifndef MOUSSE_SHARED_DATA
#define MOUSSE_SHARED_DATA "../shared/data"
#endif

namespace {

size_t offset_of(const Arena& arena, const std::string& name) {
  for (const Arena::Entry& e : arena.entries())
    if (e.name == name) return e.offset;
  FAIL("no arena entry " << name);
  return 0;
}

// [offset, offset + aligned bytes) of every entry intersect only within the shared categories.
void check_no_other_overlap(const Arena& arena, const std::string& a, const std::string& b) {
  const auto& es = arena.entries();
  auto end = [](const Arena::Entry& e) { return e.offset + (e.bytes + 255) / 256 * 256; };
  for (size_t i = 0; i < es.size(); i++)
    for (size_t j = i + 1; j < es.size(); j++) {
      const bool shared = (es[i].category == a && es[j].category == b) ||
                          (es[i].category == b && es[j].category == a);
      const bool intersect = es[i].offset < end(es[j]) && es[j].offset < end(es[i]);
      INFO(es[i].name << " [" << es[i].offset << ", " << end(es[i]) << ") vs " << es[j].name
                      << " [" << es[j].offset << ", " << end(es[j]) << ")");
      CHECK((!intersect || shared));
    }
}

// A small plan; bytes (aligned to 256): parameters 256, activations 512 + 256, gradients 256,
// optimizer 256, optimizer_scratch 256 + 1280. The categories interleave on purpose.
struct SmallPlan {
  std::unique_ptr<Ops> ops = make_ops("cpu");
  Arena arena{*ops};
  Tensor p, a0, g, a1, o, s0, s1;
  SmallPlan() {
    arena.reserve(p, "parameters", "p", DType::f32, Shape{10});              // 40 B
    arena.reserve(a0, "activations", "a0", DType::f32, Shape{100});          // 400 B
    arena.reserve(g, "gradients", "g", DType::f64, Shape{3});                // 24 B
    arena.reserve(a1, "activations", "a1", DType::i32, Shape{2, 5});         // 40 B
    arena.reserve(o, "optimizer", "o", DType::f32, Shape{64});               // 256 B
    arena.reserve(s0, "optimizer_scratch", "s0", DType::bf16, Shape{3});     // 6 B
    arena.reserve(s1, "optimizer_scratch", "s1", DType::f32, Shape{300});    // 1200 B
  }
};

}  // namespace

TEST_CASE("arena reserve_stack: slices back to back, their own names, one [n, ...] view") {
  // 3 × 5×7 f32 = 140 B each: not a multiple of 256, so plain reservations would be padded
  auto ops = make_ops("cpu");
  Arena arena(*ops);
  Tensor before, a, b, c, after;
  arena.reserve(before, "optimizer", "before", DType::f32, Shape{3});
  arena.reserve_stack({&a, &b, &c}, "optimizer", {"s.a", "s.b", "s.c"}, DType::f32, Shape{5, 7});
  arena.reserve(after, "optimizer", "after", DType::f32, Shape{3});
  CHECK_THROWS_WITH(arena.reserve_stack({&a}, "optimizer", {"x", "y"}, DType::f32, Shape{1}),
                    Catch::Contains("1 tensors but 2 names"));
  // the stack: 420 B, then aligned; each other tensor 256
  CHECK(arena.category_bytes("optimizer") == 256 + 512 + 256);
  arena.allocate();
  CHECK(offset_of(arena, "s.a") % 256 == 0);
  CHECK(offset_of(arena, "s.b") == offset_of(arena, "s.a") + 140);
  CHECK(offset_of(arena, "s.c") == offset_of(arena, "s.a") + 280);
  CHECK(offset_of(arena, "after") == offset_of(arena, "s.a") + 512);
  const Tensor v = stack_view({&a, &b, &c});
  CHECK(v.shape == Shape{3, 5, 7});
  CHECK(v.data == a.data);
  // writing through the view writes the slices
  std::vector<float> x(3 * 35);
  for (size_t i = 0; i < x.size(); i++) x[i] = float(i) + 0.5f;
  ops->from_host(v, x.data());
  float got = 0;
  ops->to_host(&got, c.slice(34, Shape{1}));
  CHECK(got == x[2 * 35 + 34]);
  // tensors that are not one stack in order are refused
  CHECK_THROWS_WITH(stack_view({&a, &c}), Catch::Contains("not the next slice"));
  CHECK_THROWS_WITH(stack_view({&before, &after}), Catch::Contains("reserve_stack"));
}

TEST_CASE("arena overlay: the shared categories start at one offset, the region is the larger") {
  SmallPlan plan;
  Arena& arena = plan.arena;
  const size_t sum = 256 + 768 + 256 + 256 + 1536;
  CHECK(arena.total_bytes() == sum);  // no sharing yet: one region per category
  arena.overlay("optimizer_scratch", "activations");
  CHECK(arena.category_bytes("activations") == 768);  // per category: unchanged
  CHECK(arena.category_bytes("optimizer_scratch") == 1536);
  CHECK(arena.total_bytes() == sum - 768);  // max(768, 1536) instead of the sum

  // Regions in order of first reservation; a shared region is as large as its largest member.
  const std::vector<Arena::Region> rs = arena.regions();
  REQUIRE(rs.size() == 4);
  CHECK(rs[0].categories == std::vector<std::string>{"parameters"});
  CHECK(rs[1].categories == std::vector<std::string>{"activations", "optimizer_scratch"});
  CHECK(rs[2].categories == std::vector<std::string>{"gradients"});
  CHECK(rs[3].categories == std::vector<std::string>{"optimizer"});
  CHECK(rs[1].offset == 256);
  CHECK(rs[1].bytes == 1536);
  CHECK(rs[2].offset == 256 + 1536);
  CHECK(rs[3].offset == 256 + 1536 + 256);

  arena.allocate();
  CHECK(arena.total_bytes() == sum - 768);
  // Both categories from the region's start, each tensor after the previous one of its category.
  CHECK(offset_of(arena, "a0") == 256);
  CHECK(offset_of(arena, "a1") == 256 + 512);
  CHECK(offset_of(arena, "s0") == 256);
  CHECK(offset_of(arena, "s1") == 256 + 256);
  CHECK(plan.s0.data == plan.a0.data);
  CHECK(static_cast<char*>(plan.s1.data) == static_cast<char*>(plan.a0.data) + 256);
  CHECK(offset_of(arena, "p") == 0);
  CHECK(offset_of(arena, "g") == 256 + 1536);
  CHECK(offset_of(arena, "o") == 256 + 1536 + 256);
  const char* base = static_cast<char*>(plan.p.data);
  for (const Arena::Entry& e : arena.entries()) {
    INFO(e.name);
    CHECK(e.offset % 256 == 0);
    CHECK(static_cast<char*>(e.target->data) == base + e.offset);
  }
  check_no_other_overlap(arena, "activations", "optimizer_scratch");
  // One allocation, zero-filled.
  std::vector<char> zero(arena.total_bytes(), 0);
  CHECK(std::memcmp(base, zero.data(), zero.size()) == 0);
}

TEST_CASE("arena overlay: a smaller guest, declared before any reservation, takes no memory") {
  auto ops = make_ops("cpu");
  Arena arena(*ops);
  arena.overlay("optimizer_scratch", "activations");  // before: the layout is made at allocate()
  Tensor a, s, w;
  arena.reserve(a, "activations", "a", DType::f64, Shape{1000});  // 8000 -> 8192
  arena.reserve(w, "parameters", "w", DType::f32, Shape{1});       // 4 -> 256
  arena.reserve(s, "optimizer_scratch", "s", DType::f32, Shape{1000});  // 4000 -> 4096
  CHECK(arena.total_bytes() == 8192 + 256);
  arena.allocate();
  CHECK(s.data == a.data);
  CHECK(static_cast<char*>(w.data) == static_cast<char*>(a.data) + 8192);
  check_no_other_overlap(arena, "activations", "optimizer_scratch");
  // Sharing is transitive: a category joining a guest joins its region.
  Arena b(*ops);
  Tensor x, y, z;
  b.overlay("y", "x");
  b.overlay("z", "y");
  b.reserve(x, "x", "x", DType::f32, Shape{64});
  b.reserve(y, "y", "y", DType::f32, Shape{128});
  b.reserve(z, "z", "z", DType::f32, Shape{32});
  CHECK(b.regions().size() == 1);
  CHECK(b.total_bytes() == 512);
  b.allocate();
  CHECK(x.data == y.data);
  CHECK(y.data == z.data);
}

TEST_CASE("arena overlay: misuse is refused") {
  auto ops = make_ops("cpu");
  Arena arena(*ops);
  CHECK_THROWS_WITH(arena.overlay("a", "a"), Catch::Contains("onto itself"));
  arena.overlay("a", "b");
  CHECK_THROWS_WITH(arena.overlay("a", "c"), Catch::Contains("already shares the memory of 'b'"));
  CHECK_THROWS_WITH(arena.overlay("b", "a"), Catch::Contains("'a' already shares"));
  arena.overlay("c", "a");
  CHECK_THROWS_WITH(arena.overlay("b", "c"), Catch::Contains("already shares"));  // a cycle
  Tensor t;
  arena.reserve(t, "a", "t", DType::f32, Shape{4});
  arena.allocate();
  CHECK_THROWS_WITH(arena.overlay("d", "a"), Catch::Contains("after allocate()"));
}

TEST_CASE("arena plan report: bytes per category, what shares memory, the total allocated") {
  SmallPlan plan;
  const std::string alone =
      "memory plan (cpu, one allocation):\n"
      "  parameters               256 B  (1 tensor)\n"
      "  activations              768 B  (2 tensors)\n"
      "  gradients                256 B  (1 tensor)\n"
      "  optimizer                256 B  (1 tensor)\n"
      "  optimizer_scratch     1.50 KiB  (2 tensors)\n"
      "  total                 3.00 KiB  allocated\n";
  CHECK(plan.arena.plan_report() == alone);
  plan.arena.overlay("optimizer_scratch", "activations");
  const std::string shared =
      "memory plan (cpu, one allocation):\n"
      "  parameters               256 B  (1 tensor)\n"
      "  activations              768 B  (2 tensors; shares memory with optimizer_scratch)\n"
      "  gradients                256 B  (1 tensor)\n"
      "  optimizer                256 B  (1 tensor)\n"
      "  optimizer_scratch     1.50 KiB  (2 tensors; shares memory with activations)\n"
      "  total                 2.25 KiB  allocated (the categories add up to 3.00 KiB; shared "
      "memory saves 768 B)\n";
  CHECK(plan.arena.plan_report() == shared);
  plan.arena.allocate();
  CHECK(plan.arena.plan_report() == shared);
}

// The Trainer overlays the optimizers' scratch on the activations (reserve_optimizer_state;
// the reasons are written there). Here both categories are overwritten with NaN (i32 tensors
// with 1) right after train_step (the activations must be dead for the optimizer step) and
// right after optimizer_step and evaluate (the scratch must be dead for the next forward and
// backward). Losses and weights must come out bit-identical to the run that is left alone. So
// no step reads either category before writing it, whatever it holds; which is what makes the
// overlaid run equal to one with separate memory (that only changes what the stale bytes are).
TEST_CASE("the overlaid memory is dead at the optimizer step: poisoning it changes nothing") {
  const std::string data = std::string(MOUSSE_SHARED_DATA) + "/tinyshakespeare/";
  const std::string train = data + "tiny_shakespeare_train.bin", val = data + "tiny_shakespeare_val.bin";
  if (!std::filesystem::exists(train) || !std::filesystem::exists(val)) {
    WARN("skipped: no " << train << " / " << val);
    return;
  }
  const std::vector<std::pair<json, json>> optimizers = {
      {{{"type", "muon"}, {"lr", 0.02}, {"nesterov", true}}, {{"type", "lion"}, {"lr", 1e-3}}},
      {{{"type", "mousse"}, {"lr", 0.02}, {"update_interval", 2}},
       {{"type", "adamw"}, {"lr", 1e-3}}},
      {{{"type", "soap"}, {"lr", 3e-3}, {"update_interval", 2}}, {{"type", "lion"}, {"lr", 1e-3}}},
  };
  const int steps = 4;  // mousse refreshes at steps 0 and 2, SOAP its basis at 2
  for (const auto& [matrix, embedding] : optimizers) {
    INFO("matrix optimizer " << matrix.dump());
    char tmpl[] = "/tmp/mousse_arena_test_XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    json cfg = {
        {"model", {{"preset", "custom"}, {"n_layer", 2}, {"n_head", 2}, {"d_model", 64},
                   {"max_seq_len", 64}}},
        {"data", {{"train", {train}}, {"val", {val}}}},
        {"batch", {{"global_tokens", 256}, {"micro_batch", 2}, {"seq_len", 64}}},  // 2 micro-steps
        {"optimizer", {{"grad_clip", 1.0}, {"matrix", matrix}, {"embedding", embedding}}},
        {"steps", steps},
        {"eval", {{"every", 0}, {"tokens", 256}}},
        {"log", {{"dir", std::string(tmpl)}}},
        {"seed", 3},
        {"device", "cpu"},
        {"precision", "f32"},
    };
    auto train_run = [&](bool poison, std::vector<float>& weights) {
      RunConfig rc = parse_run_config(cfg, "arena-test");
      auto comm = make_single_process_communicator();
      TrainOptions opt;
      opt.quiet = true;
      opt.overwrite = true;  // the second run replaces the first one's files in the folder
      Trainer t(rc, opt, *comm);
      Arena& arena = t.arena();
      // The Trainer's plan shares: the total is the sum less the smaller of the two.
      size_t sum = 0;
      for (const Arena::Entry& e : arena.entries()) sum += (e.bytes + 255) / 256 * 256;
      CHECK(arena.category_bytes("optimizer_scratch") > 0);
      CHECK(arena.total_bytes() == sum - std::min(arena.category_bytes("activations"),
                                                  arena.category_bytes("optimizer_scratch")));
      auto kill = [&] {
        if (!poison) return;
        for (const Arena::Entry& e : arena.entries())
          if (e.category == "activations" || e.category == "optimizer_scratch")
            t.ops().fill(*e.target, e.target->dtype == DType::i32 ? 1.0 : double(NAN));
      };
      std::vector<double> out;
      for (int s = 0; s < steps; s++) {
        out.push_back(t.train_step(s));
        kill();
        t.optimizer_step(s, /*diagnostics=*/s % 2 == 1);
        kill();
        if (s == 1) {
          out.push_back(t.evaluate());
          kill();
        }
      }
      const Tensor& w = t.model().params().flat_weights();
      weights.resize(size_t(w.numel()));
      t.ops().to_host(weights.data(), w);
      return out;
    };
    std::vector<float> w_plain, w_poisoned;
    const std::vector<double> plain = train_run(false, w_plain);
    const std::vector<double> poisoned = train_run(true, w_poisoned);
    std::filesystem::remove_all(tmpl);
    REQUIRE(plain.size() == size_t(steps + 1));
    for (double l : plain) CHECK(std::isfinite(l));
    CHECK(plain == poisoned);  // bit for bit
    REQUIRE(w_plain.size() == w_poisoned.size());
    CHECK(std::memcmp(w_plain.data(), w_poisoned.data(), w_plain.size() * sizeof(float)) == 0);
  }
}
