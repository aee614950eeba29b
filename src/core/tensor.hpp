// Host tensors: an owning buffer (HostTensor) and a non-owning view
// (TensorRef). Both are dense, row-major ("plain") layouts.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "shoal/types.hpp"

namespace shoal {

/// Whether a tensor of this shape and dtype has fewer than 2^62 bytes (the
/// program format's limit) with every zero dim counted as one: then neither
/// the element count nor any partial product of the dims, in whatever order
/// code multiplies them, can overflow an int64, even for an empty tensor.
bool shape_fits(const Shape& shape, DType dtype) noexcept;

/// A non-owning view of a dense row-major tensor. data == nullptr marks an
/// absent optional operand.
struct TensorRef {
  DType dtype = DType::undefined;
  Shape shape;
  void* data = nullptr;

  bool present() const { return data != nullptr; }
  int64_t numel() const { return shape_numel(shape); }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype); }
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

/// An owning dense tensor (constants, weights, folded values).
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t bytes() const { return buf_.size(); }
  void* data() { return buf_.data(); }
  const void* data() const { return buf_.data(); }
  template <class T>
  T* as() {
    return reinterpret_cast<T*>(buf_.data());
  }
  template <class T>
  const T* as() const {
    return reinterpret_cast<const T*>(buf_.data());
  }
  TensorRef ref() const {
    return TensorRef{dtype_, shape_, const_cast<uint8_t*>(buf_.data())};
  }
  /// Reads element k converted to int64 / double, whatever the dtype
  /// (floats to int64 saturate, NaN reads as 0).
  int64_t int_at(int64_t k) const;
  double float_at(int64_t k) const;
  std::vector<int64_t> to_ints() const;
  void reshape(Shape s);  // same numel

  bool operator==(const HostTensor& o) const {
    return dtype_ == o.dtype_ && shape_ == o.shape_ && buf_ == o.buf_;
  }

 private:
  DType dtype_ = DType::undefined;
  Shape shape_;
  std::vector<uint8_t> buf_;
};

}  // namespace shoal
