// shoal: element types and shapes shared by the public API and the internals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shoal {

/// Element types. The numeric values are ONNX's TensorProto.DataType codes.
enum class DType : uint8_t {
  undefined = 0,
  f32 = 1,
  u8 = 2,
  i8 = 3,
  i32 = 6,
  i64 = 7,
  boolean = 9,
  f64 = 11,
};

size_t dtype_size(DType t) noexcept;
const char* dtype_name(DType t) noexcept;
bool dtype_valid(int code) noexcept;

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s) noexcept;
std::string shape_str(const Shape& s);

/// How the clusters of a device share a batch (the value is stored in
/// program files: keep it).
enum class Mode : uint8_t {
  batch = 0,      ///< one input per cluster (throughput)
  split = 1,      ///< the SDK's nobatch: a device's clusters share each input
  automatic = 2,  ///< per run: batch when the batch fills the clusters, else split
};
const char* mode_name(Mode m) noexcept;  ///< "batch", "split", "auto"
/// The mode mode_name() calls `name`; false when none is.
bool mode_from_name(std::string_view name, Mode& mode) noexcept;

/// The arithmetic the compiler asks the heavy kernels (Conv, Gemm, MatMul)
/// to run in. f32: everything in float32. bf16: their weights and inputs in
/// bfloat16 with float32 accumulation and outputs; needs a CPU with
/// AVX512-BF16 or AMX-BF16 (never emulated). Other ops stay float32.
enum class Precision : uint8_t { f32 = 0, bf16 = 1 };
const char* precision_name(Precision p) noexcept;  ///< "f32", "bf16"
/// The precision precision_name() calls `name`; false when none is.
bool precision_from_name(std::string_view name, Precision& precision) noexcept;

/// Name, element type and shape of one model input or output, for one input
/// sample (the leading dimension is the batch and is 1 here).
struct TensorInfo {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  int64_t numel() const noexcept { return shape_numel(shape); }
};

}  // namespace shoal
