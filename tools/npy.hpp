// A small .npy reader/writer (NumPy format v1.0/2.0/3.0, C order only).
//
// Reading converts '<f4' (as is), '<f8', '<i8', '<i4', '|i1', '|u1', '|b1' to
// float32. Fortran order, big-endian data, structured dtypes and truncated
// files are rejected with shoal::Error(invalid_argument / unsupported) naming
// the file and what was wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "shoal/types.hpp"

namespace shoal::npy {

/// A float32 array in C order.
struct Array {
  Shape shape;
  std::vector<float> data;
  int64_t numel() const { return int64_t(data.size()); }
};

/// Parses the bytes of a .npy file. `what` names the source in errors.
Array parse(const void* bytes, size_t size,
            const std::string& what = "npy data");

/// Reads a .npy file.
Array load(const std::string& path);

/// Encodes an array as .npy bytes (v1.0 header, v2.0 when the header needs
/// it). dtype selects the descr written ('<f4', '<f8', '<i8', ...); `data`
/// holds shape_numel(shape) elements of that type.
std::vector<uint8_t> encode(const void* data, DType dtype, const Shape& shape);
inline std::vector<uint8_t> encode(const float* data, const Shape& shape) {
  return encode(data, DType::f32, shape);
}

/// Writes a .npy file (see encode).
void save(const std::string& path, const void* data, DType dtype,
          const Shape& shape);
inline void save(const std::string& path, const float* data,
                 const Shape& shape) {
  save(path, data, DType::f32, shape);
}

}  // namespace shoal::npy
