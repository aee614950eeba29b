// What the oneDNN int8 kernels (QLinearConv, shoal.QMatMul) share: reading
// their constant quantization parameters, and requantizing a float32 result
// with a destination zero point as ONNX rounds.
#pragma once

#include <memory>
#include <vector>

#include "backends/cpu/onednn_common.hpp"

namespace shoal::cpu::onednn {

/// A constant int8 weight, plain or stored packed (prepack_weights).
bool is_int8_weight(const program::TensorDesc& t);

/// The plain (row-major) int8 layout of weights of dims `wd`: how the program
/// stores them, the view of a weight plan.
dnnl::memory::desc int8_plain(const dims& wd);

/// Reads a constant scalar-or-vector operand as floats / ints; false when not
/// a plain constant of the expected type (f32; u8 or i8).
bool read_floats(const OpContext& oc, const program::TensorDesc* t, std::vector<float>& v);
bool read_ints(const OpContext& oc, const program::TensorDesc* t, std::vector<int32_t>& v);

/// Runs `inner`, which writes scaled float32 results into a buffer of this
/// kernel's (n values, in the output's layout), then stores
/// y = saturate(round_half_even(v) + zero_point) of type `type`. oneDNN adds
/// a destination zero point before rounding, ONNX after: a value halfway
/// between two integers would round the other way with an odd zero point.
std::unique_ptr<device::Kernel> requantize_after(std::unique_ptr<DnnlKernel> inner, DType type,
                                                 int32_t zero_point, int64_t n);

}  // namespace shoal::cpu::onednn
