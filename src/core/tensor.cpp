#include "core/tensor.h"

#include <sstream>

namespace mousse {

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i32: return 4;
  }
  return 0;
}

const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  if (n == "f32" || n == "float32" || n == "fp32") return DType::f32;
  if (n == "f64" || n == "float64" || n == "fp64") return DType::f64;
  if (n == "bf16" || n == "bfloat16") return DType::bf16;
  fail("unknown dtype '", n, "': expected one of f32, f64, bf16");
}

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

Shape::Shape(std::initializer_list<int64_t> d) {
  MOUSSE_CHECK(d.size() <= 4, "at most 4 dims");
  for (int64_t v : d) dims[ndim++] = v;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= dims[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (ndim != o.ndim) return false;
  for (int i = 0; i < ndim; i++)
    if (dims[i] != o.dims[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < ndim; i++) os << (i ? ", " : "") << dims[i];
  os << "]";
  return os.str();
}

Tensor Tensor::view(Shape s) const {
  MOUSSE_CHECK(s.numel() == numel(), "view ", s.str(), " of ", shape.str());
  Tensor t = *this;
  t.shape = s;
  return t;
}

Tensor Tensor::slice(int64_t offset, Shape s) const {
  MOUSSE_CHECK(offset >= 0 && offset + s.numel() <= numel(), "slice out of range");
  Tensor t = *this;
  t.data = static_cast<char*>(data) + offset * int64_t(dtype_size(dtype));
  t.shape = s;
  return t;
}

}  // namespace mousse
