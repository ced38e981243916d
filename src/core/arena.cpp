#include "core/arena.h"

#include <cstdio>
#include <sstream>

#include "backend/ops.h"

namespace mousse {

namespace {
constexpr size_t kAlign = 256;  // cuBLASLt and vectorised kernels want aligned operands
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

Device Arena::device() const { return ops_.device(); }

Arena::~Arena() {
  if (base_) ops_.free(base_);
}

void Arena::reserve(Tensor& t, const std::string& category, const std::string& name, DType dt,
                    Shape s) {
  MOUSSE_CHECK(!base_, "reserve('", name, "') after allocate()");
  t.data = nullptr;
  t.dtype = dt;
  t.device = ops_.device();
  t.shape = s;
  size_t bytes = size_t(s.numel()) * dtype_size(dt);
  entries_.push_back({category, name, &t, total_, bytes});
  total_ += align_up(bytes);
}

void Arena::allocate() {
  MOUSSE_CHECK(!base_, "allocate() twice");
  base_ = ops_.alloc(total_ ? total_ : kAlign);
  char* base = static_cast<char*>(base_);
  for (auto& e : entries_) e.target->data = base + e.offset;
  Tensor all;
  all.data = base_;
  all.dtype = DType::f32;
  all.device = ops_.device();
  all.shape = Shape{int64_t((total_ ? total_ : kAlign) / 4)};
  ops_.fill(all, 0.0);
}

size_t Arena::category_bytes(const std::string& category) const {
  size_t n = 0;
  for (auto& e : entries_)
    if (e.category == category) n += align_up(e.bytes);
  return n;
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
  std::vector<std::string> order;
  for (auto& e : entries_) {
    bool seen = false;
    for (auto& c : order) seen |= (c == e.category);
    if (!seen) order.push_back(e.category);
  }
  std::ostringstream os;
  os << "memory plan (" << device_name(ops_.device()) << ", one allocation):\n";
  char line[128];
  for (auto& c : order) {
    size_t n = 0;
    for (auto& e : entries_) n += (e.category == c);
    std::snprintf(line, sizeof line, "  %-14s %12s  (%zu tensors)\n", c.c_str(),
                  format_bytes(double(category_bytes(c))).c_str(), n);
    os << line;
  }
  std::snprintf(line, sizeof line, "  %-14s %12s\n", "total", format_bytes(double(total_)).c_str());
  os << line;
  return os.str();
}

}  // namespace mousse
