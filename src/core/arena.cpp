#include "core/arena.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "backend/ops.h"

namespace mousse {

namespace {
constexpr size_t kAlign = 256;  // cuBLASLt and vectorised kernels want aligned operands
// No plan is larger than this (1 EiB): sizes beyond it come from a config whose every value is
// in range but whose product is far beyond any machine, and must fail, not wrap around size_t.
constexpr size_t kMaxPlanBytes = size_t(1) << 60;
size_t checked_sum(size_t a, size_t b) {
  if (a > kMaxPlanBytes || b > kMaxPlanBytes - a)
    fail("the memory plan exceeds 2^60 bytes (1 EiB): the model or the batch is far too large");
  return a + b;
}
size_t align_up(size_t n) { return checked_sum(n, kAlign - 1) / kAlign * kAlign; }
// Where the entry after `e` (laid out at `offset`) starts: right after it within a stack
// (reserve_stack), else at the next aligned offset.
size_t offset_after(size_t offset, const Arena::Entry& e) {
  return e.packed ? checked_sum(offset, e.bytes) : align_up(checked_sum(offset, e.bytes));
}
}  // namespace

Arena::Arena(Ops& ops) : ops_(&ops), device_(ops.device()) {}

Device Arena::device() const { return device_; }

Arena::~Arena() {
  if (base_) ops_->free(base_);
}

void Arena::reserve(Tensor& t, const std::string& category, const std::string& name, DType dt,
                    Shape s) {
  MOUSSE_CHECK(!base_, "reserve('", name, "') after allocate()");
  t.data = nullptr;
  t.dtype = dt;
  t.device = device_;
  t.shape = s;
  // The size with overflow checks (Shape::numel would wrap for absurd shapes).
  size_t bytes = dtype_size(dt);
  for (int i = 0; i < s.ndim; i++) {
    const int64_t d = s.dims[size_t(i)];
    if (d < 0 || __builtin_mul_overflow(bytes, size_t(d), &bytes) || bytes > kMaxPlanBytes)
      fail("the memory plan of '", name, "' ", s.str(), " exceeds 2^60 bytes (1 EiB): the model ",
           "or the batch is far too large");
  }
  entries_.push_back({category, name, &t, 0, bytes});
}

void Arena::reserve_stack(const std::vector<Tensor*>& ts, const std::string& category,
                          const std::vector<std::string>& names, DType dt, Shape s) {
  MOUSSE_CHECK(ts.size() == names.size(), "reserve_stack: ", ts.size(), " tensors but ",
               names.size(), " names");
  for (size_t i = 0; i < ts.size(); i++) {
    reserve(*ts[i], category, names[i], dt, s);
    entries_.back().packed = i + 1 < ts.size();
  }
}

std::string Arena::root(const std::string& category) const {
  std::string c = category;
  for (auto it = host_.find(c); it != host_.end(); it = host_.find(c)) c = it->second;
  return c;
}

void Arena::overlay(const std::string& category, const std::string& host) {
  MOUSSE_CHECK(!base_, "overlay('", category, "', '", host, "') after allocate()");
  MOUSSE_CHECK(category != host, "overlay: '", category, "' onto itself");
  auto it = host_.find(category);
  MOUSSE_CHECK(it == host_.end(), "overlay: '", category, "' already shares the memory of '",
               it == host_.end() ? "" : it->second, "'");
  MOUSSE_CHECK(root(host) != category, "overlay: '", host, "' already shares the memory of '",
               category, "'");
  host_[category] = host;
}

std::vector<Arena::Region> Arena::regions() const {
  std::vector<Region> out;
  std::vector<std::string> roots;  // out[i] is the region of roots[i]
  for (const Entry& e : entries_) {
    const std::string r = root(e.category);
    const size_t i = size_t(std::find(roots.begin(), roots.end(), r) - roots.begin());
    if (i == roots.size()) {
      roots.push_back(r);
      out.emplace_back();
    }
    std::vector<std::string>& cs = out[i].categories;
    if (std::find(cs.begin(), cs.end(), e.category) == cs.end()) cs.push_back(e.category);
  }
  size_t offset = 0;
  for (Region& r : out) {
    r.offset = offset;
    for (const std::string& c : r.categories) r.bytes = std::max(r.bytes, category_bytes(c));
    offset = checked_sum(offset, r.bytes);
  }
  return out;
}

size_t Arena::total_bytes() const {
  if (base_) return total_;
  size_t n = 0;
  for (const Region& r : regions()) n = checked_sum(n, r.bytes);
  return n;
}

void Arena::allocate() {
  MOUSSE_CHECK(!base_, "allocate() twice");
  MOUSSE_CHECK(ops_, "allocate() on an arena that only plans (no backend)");
  // Each category from the start of its region, its tensors one after another.
  const std::vector<Region> rs = regions();
  total_ = 0;
  for (const Region& r : rs) {
    for (const std::string& c : r.categories) {
      size_t offset = r.offset;
      for (Entry& e : entries_)
        if (e.category == c) {
          e.offset = offset;
          offset = offset_after(offset, e);
        }
    }
    total_ += r.bytes;
  }
  const size_t n = total_ ? total_ : kAlign;
  base_ = ops_->alloc(n);
  char* base = static_cast<char*>(base_);
  for (auto& e : entries_) e.target->data = base + e.offset;
  Tensor all;
  all.data = base_;
  all.dtype = DType::f32;
  all.device = device_;
  all.shape = Shape{int64_t(n / 4)};
  ops_->fill(all, 0.0);
}

size_t Arena::category_bytes(const std::string& category) const {
  size_t n = 0;
  for (auto& e : entries_)
    if (e.category == category) n = offset_after(n, e);
  return n;
}

Tensor stack_view(const std::vector<const Tensor*>& ts) {
  MOUSSE_CHECK(!ts.empty(), "stack_view: no tensors");
  const Tensor& first = *ts[0];
  MOUSSE_CHECK(first.shape.ndim < 4, "stack_view: ", first.shape.str(), " has no room for a batch");
  for (size_t k = 0; k < ts.size(); k++) {
    const Tensor& t = *ts[k];
    MOUSSE_CHECK(t.dtype == first.dtype && t.shape == first.shape && t.device == first.device &&
                     t.data == static_cast<const char*>(first.data) + k * first.bytes(),
                 "stack_view: tensor ", k, " ", t.shape.str(), " is not the next slice after ",
                 first.shape.str(), " (plan them with one Arena::reserve_stack)");
  }
  Tensor v = first;
  v.shape.ndim = first.shape.ndim + 1;
  v.shape.dims[0] = int64_t(ts.size());
  for (int i = 0; i < first.shape.ndim; i++) v.shape.dims[size_t(i + 1)] = first.shape.dims[size_t(i)];
  return v;
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) { b /= 1024; u++; }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string Arena::plan_report() const {
  std::vector<std::string> order;  // categories in reserve order
  for (auto& e : entries_)
    if (std::find(order.begin(), order.end(), e.category) == order.end())
      order.push_back(e.category);
  const std::vector<Region> rs = regions();
  int width = 5;  // "total"
  for (auto& c : order) width = std::max(width, int(c.size()));
  std::ostringstream os;
  os << "memory plan (" << device_name(device_) << ", one allocation):\n";
  char line[256];
  size_t sum = 0;
  for (auto& c : order) {
    size_t n = 0;
    for (auto& e : entries_) n += (e.category == c);
    sum += category_bytes(c);
    std::string shares;  // the other categories of its region
    for (const Region& r : rs)
      if (std::find(r.categories.begin(), r.categories.end(), c) != r.categories.end())
        for (const std::string& o : r.categories)
          if (o != c) shares += (shares.empty() ? "" : ", ") + o;
    std::snprintf(line, sizeof line, "  %-*s %12s  (%zu tensor%s%s%s)\n", width, c.c_str(),
                  format_bytes(double(category_bytes(c))).c_str(), n, n == 1 ? "" : "s",
                  shares.empty() ? "" : "; shares memory with ", shares.c_str());
    os << line;
  }
  const size_t total = total_bytes();
  if (total == sum) {
    std::snprintf(line, sizeof line, "  %-*s %12s  allocated\n", width, "total",
                  format_bytes(double(total)).c_str());
  } else {
    std::snprintf(line, sizeof line,
                  "  %-*s %12s  allocated (the categories add up to %s; shared memory saves %s)\n",
                  width, "total", format_bytes(double(total)).c_str(),
                  format_bytes(double(sum)).c_str(), format_bytes(double(sum - total)).c_str());
  }
  os << line;
  return os.str();
}

}  // namespace mousse
