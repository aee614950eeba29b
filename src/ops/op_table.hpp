// The operator table: the single source of truth for which ONNX operators
// shoal supports, how their output types and shapes follow from their inputs,
// and their reference kernels. Tests and docs enumerate it.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/attrs.hpp"
#include "core/tensor.hpp"

namespace shoal::ops {

/// What shape inference knows about one operand.
struct ValueInfo {
  DType dtype = DType::undefined;
  Shape shape;
  const HostTensor* constant = nullptr;  // set when the value is known
  bool present = true;                   // false for an absent optional input
};

struct TypeShape {
  DType dtype = DType::undefined;
  Shape shape;
};

/// Computes output dtypes and shapes. Throws Error(invalid_argument) naming
/// the problem (e.g. "kernel 7x7 larger than padded input 5x5").
using InferFn =
    std::function<std::vector<TypeShape>(const Attrs&, std::span<const ValueInfo> inputs)>;

/// Reference kernel: reads inputs, writes outputs whose dtype/shape/buffers
/// the caller prepared from InferFn. Plain, obviously correct loops.
using RefKernel = std::function<void(const Attrs&, std::span<const TensorRef> in,
                                     std::span<const TensorRef> out)>;

/// Whether an op computes every sample on its own when its batch-carrying
/// inputs (batched[i]) hold a stack of samples along dim 0 and its constant
/// inputs stay as they are: what lets the runtime run one kernel over
/// several samples at once (src/runtime/batching.cpp, which also checks that
/// every output's dim 0 scales with the stack). `inputs` are the per-sample
/// operands.
using BatchFn = std::function<bool(const Attrs&, std::span<const ValueInfo> inputs,
                                   std::span<const bool> batched)>;

struct OpSpec {
  std::string name;   // ONNX op type, or an internal op ("shoal.*")
  // The earliest model opset the op is imported from. Models below opset 7
  // are converted to 7 by ONNX's version converter first
  // (src/frontend/onnx/opset_upgrade.hpp), so below 7 this is where that
  // conversion works: Pad and Split from 2, Cast from 6 (no adapter before),
  // Gemm and the binary arithmetic ops from 7 (their adapters need shapes
  // the converter is not given).
  int min_opset = 1;
  int min_inputs = 1;
  int max_inputs = 1;
  int num_outputs = 1;  // -1: variadic (Split)
  InferFn infer;
  RefKernel reference;
  std::string summary;                       // one line for docs
  bool runtime = true;                       // false: compile-time only (folded, e.g. Shape)
  std::vector<DType> dtypes = {DType::f32};  // runtime dtypes supported
  BatchFn per_sample;                        // empty: samples are never stacked (one at a time)
  /// A view: output 0 is input 0's bytes reinterpreted (Reshape, Flatten,
  /// Squeeze, Unsqueeze, Identity, Dropout). The memory plan gives it its
  /// input's buffer, so its kernel has nothing to do; kernels and checks
  /// read this fact here, not from lists of their own.
  bool view = false;
  /// Its fast kernels read and write 4-D activations channels-last at full
  /// speed, in any mix with plain operands: the layout pass keeps an
  /// activation channels-last where every op touching it says so
  /// (passes::assign_layouts). Set in src/ops/layout_facts.cpp.
  bool channels_last = false;
  /// The input (1; 3 for the int8 QLinearConv, QLinearMatMul and shoal.QMatMul) that is a
  /// weight the compiler may store in its kernel's own layout (prepacking;
  /// TensorDesc::packing), -1 for none. Set in src/ops/layout_facts.cpp.
  int packed_weight = -1;
};

/// All operators, sorted by name.
const std::vector<OpSpec>& all_ops();
const OpSpec* find_op(std::string_view name);

/// Each family of operators registers itself from its own source file.
void register_elementwise(std::vector<OpSpec>& table);  // src/reference/elementwise.cpp
void register_nn(std::vector<OpSpec>& table);           // src/reference/nn.cpp
void register_tensor(std::vector<OpSpec>& table);       // src/reference/tensor_ops.cpp
void register_quantize(std::vector<OpSpec>& table);     // src/reference/quantize_ops.cpp
/// Sets every op's per_sample rule (src/ops/batch_rules.cpp).
void assign_batch_rules(std::vector<OpSpec>& table);
/// Sets every op's channels_last and packed_weight (src/ops/layout_facts.cpp).
void assign_layout_facts(std::vector<OpSpec>& table);

}  // namespace shoal::ops
