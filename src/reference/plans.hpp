// Operand plans the reference kernels and the fast CPU kernels share, so
// both read an op's attributes the same way: which dims a reduction
// reduces, which elements a Slice selects.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/attrs.hpp"
#include "core/tensor.hpp"

namespace shoal::ref {

struct ReducePlan {
  std::vector<bool> reduced;  // per input dim
  Shape out;                  // output shape (keepdims honoured)
  bool noop = false;          // empty axes with noop_with_empty_axes
};
/// ReduceMean/Max/Sum over `s`: axes from the attribute (older opsets) or
/// input 1 (`axes_in`), keepdims, noop_with_empty_axes. Throws
/// invalid_argument naming `op` for a bad axis.
ReducePlan reduce_plan(const std::string& op, const Attrs& a, const Shape& s,
                       const std::vector<int64_t>& axes_in);

/// Per-dim start, step and count of a slice of a shape.
struct SliceDims {
  Shape start, step, count;
};
/// ONNX Slice semantics: negative starts/ends count from the end, then
/// clamp to [0, dim] (step > 0) or [0, dim-1] / [-1, dim-1] (step < 0).
SliceDims slice_dims(const Shape& shape, const std::vector<int64_t>& starts,
                     const std::vector<int64_t>& ends, std::optional<std::vector<int64_t>> axes,
                     std::optional<std::vector<int64_t>> steps);
/// Reads Slice input i ("starts", "ends", "axes", "steps"), or nullopt when
/// absent.
using SliceInputs = std::function<std::optional<std::vector<int64_t>>(size_t, const char*)>;
/// Slice parameters: attributes starts/ends/axes (opset < 10) when present,
/// else inputs 1-4.
SliceDims slice_from(const Attrs& a, const Shape& shape, const SliceInputs& get);

/// A Pad's per-dim begin and end pads (negative: a crop) and output shape.
struct PadPlan {
  std::string mode;                 // constant, reflect, edge or wrap
  std::vector<int64_t> begin, end;  // per dim, may be negative
  Shape out;
};
/// Pad over `s`: `pads` (begins, then ends) for every dim, or for `axes`
/// (opset 18) when given; mode from the attribute. Throws naming the Pad for
/// an unsupported mode, a wrong pads count, or a crop of more than a dim.
PadPlan pad_plan(const Attrs& a, const Shape& s, std::vector<int64_t> pads,
                 const std::vector<int64_t>* axes);
/// The input index along one dim (of `in` elements, padded by begin/end)
/// that output index o copies in `mode`, or -1 for the constant.
int64_t pad_source_index(const std::string& mode, int64_t o, int64_t in, int64_t begin,
                         int64_t end);

/// Inference BatchNormalization as a per-channel affine map y = x * s + shift:
/// s = scale / sqrt(var + eps), shift = bias - mean * s, computed in double,
/// for c channels (the native kernel and the compiler's Concat fusion).
void batchnorm_affine(const float* scale, const float* bias, const float* mean, const float* var,
                      double eps, int64_t c, float* s, float* shift);

}  // namespace shoal::ref
