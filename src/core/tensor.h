#pragma once
// Tensor: a typed, shaped view of memory owned by an Arena (never owning).
// Row-major, contiguous; up to 4 dimensions. Weights are stored (out, in) like nn.Linear.
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace mousse {

enum class DType : uint8_t { f32, f64, bf16, i32 };
enum class Device : uint8_t { cpu, cuda };

size_t dtype_size(DType dt);
const char* dtype_name(DType dt);
DType dtype_from_name(const std::string& name);  // "f32"/"float32", "f64", "bf16"; throws otherwise
const char* device_name(Device d);

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };

struct Shape {
  std::array<int64_t, 4> dims{0, 0, 0, 0};
  int ndim = 0;
  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  int64_t operator[](int i) const { return dims[i < 0 ? ndim + i : i]; }
  int64_t numel() const;
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[768, 3072]"
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  Device device = Device::cpu;
  Shape shape;

  int64_t numel() const { return shape.numel(); }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype); }
  // A matrix view: all leading dims folded into rows; cols is the last dim.
  int64_t rows() const {
    int64_t r = 1;
    for (int i = 0; i + 1 < shape.ndim; i++) r *= shape[i];
    return r;
  }
  int64_t cols() const { return shape.ndim == 0 ? 1 : shape[-1]; }
  bool defined() const { return data != nullptr; }

  template <class T>
  T* ptr() const {
    MOUSSE_CHECK(DTypeOf<T>::value == dtype, "tensor is ", dtype_name(dtype));
    return static_cast<T*>(data);
  }
  // Same memory, new shape (numel must match).
  Tensor view(Shape s) const;
  // Elements [offset, offset + s.numel()) of this tensor, as shape s.
  Tensor slice(int64_t offset, Shape s) const;
};

}  // namespace mousse
