// Which ops compute every sample on its own when samples are stacked along
// dim 0 (OpSpec::per_sample). The runtime stacks samples only through
// programs whose every instruction says yes here; src/runtime/batching.cpp
// adds the checks every op shares (each batch-carrying tensor has dim 0 = 1
// per sample, and shape inference on a stack of two gives outputs whose
// dim 0 doubled). An op left out here is simply never stacked.
#include <algorithm>
#include <optional>

#include "ops/op_table.hpp"
#include "reference/einsum.hpp"
#include "shoal/error.hpp"

namespace shoal::ops {
namespace {

size_t max_rank(std::span<const ValueInfo> in) {
  size_t r = 0;
  for (const ValueInfo& v : in)
    if (v.present) r = std::max(r, v.shape.size());
  return r;
}

/// Only input 0 carries the batch; the others are constants.
bool first_only(std::span<const bool> batched) {
  if (batched.empty() || !batched[0]) return false;
  return std::none_of(batched.begin() + 1, batched.end(), [](bool b) { return b; });
}

/// Elementwise with broadcasting: any input may carry the batch, but only
/// with the output's full rank (a lower-rank input's dim 0 would line up
/// with another dim of the output).
bool elementwise(const Attrs&, std::span<const ValueInfo> in, std::span<const bool> batched) {
  const size_t r = max_rank(in);
  bool any = false;
  for (size_t i = 0; i < in.size(); ++i)
    if (batched[i]) {
      if (in[i].shape.size() != r) return false;
      any = true;
    }
  return any;
}

/// Input 0 carries the batch, the weights (inputs 1, 2) do not, and a fused
/// residual (Conv's input 3; Gemm's C or input 3) may, with the output's rank.
bool weighted(std::span<const ValueInfo> in, std::span<const bool> batched, size_t first_residual) {
  if (batched.empty() || !batched[0]) return false;
  for (size_t i = 1; i < batched.size(); ++i)
    if (batched[i] && (i < first_residual || in[i].shape.size() != in[0].shape.size()))
      return false;
  return true;
}

bool first_input(const Attrs&, std::span<const ValueInfo>, std::span<const bool> batched) {
  return first_only(batched);
}

/// `axis` (default `def`) of input 0 is not the batch dim.
bool axis_not_0(const Attrs& a, const std::string& name, int64_t def,
                std::span<const ValueInfo> in) {
  const int64_t r = int64_t(in[0].shape.size());
  int64_t axis = a.i(name, def);
  if (axis < 0) axis += r;
  return axis > 0 && axis < r;
}

/// A constant integer input, when known.
std::optional<std::vector<int64_t>> const_ints(std::span<const ValueInfo> in, size_t i) {
  if (i >= in.size() || !in[i].present || !in[i].constant) return std::nullopt;
  return in[i].constant->to_ints();
}

/// Every axis in `axes` (of a rank-r tensor) is past the batch dim.
bool axes_skip_0(const std::vector<int64_t>& axes, int64_t r) {
  return std::all_of(axes.begin(), axes.end(), [r](int64_t ax) { return ax != 0 && ax != -r; });
}

/// Reductions: axes given (attribute or constant input 1), none of them 0.
bool reduce(const Attrs& a, std::span<const ValueInfo> in, std::span<const bool> batched) {
  if (!first_only(batched)) return false;
  std::optional<std::vector<int64_t>> axes;
  if (a.has("axes"))
    axes = a.ints("axes");
  else if (in.size() > 1 && in[1].present)
    axes = const_ints(in, 1);
  else
    axes = std::vector<int64_t>{};
  if (!axes) return false;
  if (axes->empty()) return a.i("noop_with_empty_axes", 0) != 0;  // else: every axis
  return axes_skip_0(*axes, int64_t(in[0].shape.size()));
}

bool softmax(const Attrs& a, std::span<const ValueInfo> in, std::span<const bool> batched) {
  // opset < 13 (coerce_2d): flattened to [prod(d < axis), rest], axis 1 by
  // default; axis 0 would normalize over the whole stack.
  return first_only(batched) && axis_not_0(a, "axis", a.i("coerce_2d", 0) ? 1 : -1, in);
}

bool slice(const Attrs& a, std::span<const ValueInfo> in, std::span<const bool> batched) {
  if (!first_only(batched)) return false;
  std::optional<std::vector<int64_t>> axes;
  if (a.has("starts") || a.has("ends")) {  // opset < 10
    if (a.has("axes")) axes = a.ints("axes");
  } else {
    axes = const_ints(in, 3);
  }
  return axes && axes_skip_0(*axes, int64_t(in[0].shape.size()));  // absent: 0, 1, ...
}

bool matmul(const Attrs&, std::span<const ValueInfo> in, std::span<const bool> batched) {
  if (first_only(batched)) return true;
  // A stack of matrix products: both operands batched, with equal batch dims.
  return batched.size() == 2 && batched[0] && batched[1] && in[0].shape.size() >= 3 &&
         in[0].shape.size() == in[1].shape.size();
}

/// Einsum: the batch-carrying operands' dim 0 has one letter (or "..." dim),
/// appearing once in each of their terms and in no constant operand's, and
/// it is the output's dim 0: every other label is summed or kept within a
/// sample. Anything else (the sample dim summed away, moved, on a diagonal,
/// or broadcast against a constant) is computed one sample at a time.
bool einsum(const Attrs& a, std::span<const ValueInfo> in, std::span<const bool> batched) {
  ref::EinsumDims d;
  try {
    std::vector<Shape> shapes;
    for (const ValueInfo& v : in) shapes.push_back(v.shape);
    d = ref::resolve_einsum(ref::parse_einsum(a.s("equation", ""), in.size()), shapes);
  } catch (const Error&) {
    return false;
  }
  int sample = -1;
  for (size_t k = 0; k < in.size(); ++k) {
    if (!batched[k]) continue;
    const std::vector<int>& labels = d.inputs[k];
    if (labels.empty() || (sample >= 0 && labels[0] != sample) ||
        std::count(labels.begin(), labels.end(), labels[0]) != 1)
      return false;
    sample = labels[0];
  }
  if (sample < 0 || d.output.empty() || d.output[0] != sample) return false;
  for (size_t k = 0; k < in.size(); ++k)
    if (!batched[k] && std::count(d.inputs[k].begin(), d.inputs[k].end(), sample) != 0)
      return false;
  return true;
}

}  // namespace

void assign_batch_rules(std::vector<OpSpec>& table) {
  auto axis_rule = [](std::string name, int64_t def, bool all_batched) -> BatchFn {
    return [name, def, all_batched](const Attrs& a, std::span<const ValueInfo> in,
                                    std::span<const bool> batched) {
      const bool who = all_batched
                           ? std::all_of(batched.begin(), batched.end(), [](bool b) { return b; })
                           : first_only(batched);
      return who && axis_not_0(a, name, def, in);
    };
  };
  for (OpSpec& s : table) {
    const std::string& n = s.name;
    if (n == "Abs" || n == "Add" || n == "Cast" || n == "Ceil" || n == "Clip" || n == "Div" ||
        n == "Elu" || n == "Equal" || n == "Erf" || n == "Exp" || n == "Floor" || n == "Greater" ||
        n == "HardSigmoid" || n == "HardSwish" || n == "LeakyRelu" || n == "Less" || n == "Log" ||
        n == "Max" || n == "Mean" || n == "Min" || n == "Mul" || n == "Neg" || n == "Not" ||
        n == "PRelu" || n == "Pow" || n == "Reciprocal" || n == "Relu" || n == "Sigmoid" ||
        n == "Sqrt" || n == "Sub" || n == "Sum" || n == "Tanh" || n == "Where" ||
        n == "shoal.Silu" || n == "Gelu" || n == "Mod" || n == "shoal.QLinearAdd" ||
        n == "shoal.QLinearLookup" || n == "shoal.QLinearMul")
      s.per_sample = elementwise;
    else if (n == "Conv" || n == "ConvTranspose")
      s.per_sample = [](const Attrs&, std::span<const ValueInfo> in, std::span<const bool> b) {
        return weighted(in, b, 3);
      };
    else if (n == "BatchNormalization")
      // Training mode normalizes with statistics over dim 0 too: its samples mix.
      s.per_sample = [](const Attrs& a, std::span<const ValueInfo> in, std::span<const bool> b) {
        return a.i("training_mode", 0) == 0 && first_input(a, in, b);
      };
    else if (n == "AveragePool" || n == "Dropout" || n == "Expand" || n == "Flatten" ||
             n == "GlobalAveragePool" || n == "GlobalMaxPool" || n == "Identity" ||
             n == "MaxPool" || n == "Pad" || n == "Reshape" || n == "Resize" || n == "Squeeze" ||
             n == "Unsqueeze" || n == "Upsample")
      // Windows, normalization and views over each sample; what they do to
      // dim 0 (pads, sizes, new shapes) shows in the doubled-stack check.
      s.per_sample = first_input;
    else if (n == "Gemm")
      s.per_sample = [](const Attrs& a, std::span<const ValueInfo> in, std::span<const bool> b) {
        return weighted(in, b, 2) && a.i("transA", 0) == 0;  // rows of A are samples
      };
    else if (n == "MatMul")
      s.per_sample = matmul;
    else if (n == "Einsum")
      s.per_sample = einsum;
    else if (n == "Softmax" || n == "LogSoftmax")
      s.per_sample = softmax;
    else if (n == "Concat")
      s.per_sample = axis_rule("axis", 1, /*all_batched=*/true);
    else if (n == "LayerNormalization")
      s.per_sample = axis_rule("axis", -1, false);
    else if (n == "QLinearConv" || n == "ConvInteger" || n == "shoal.QLinearGlobalAveragePool" ||
             n == "shoal.QLinearAveragePool" || n == "shoal.PointwiseDepthwise" ||
             n == "shoal.QMatMul" || n == "QLinearMatMul")
      s.per_sample = first_input;  // a convolution (rows of a) of each sample; the rest constants
    else if (n == "QuantizeLinear" || n == "DequantizeLinear")
      s.per_sample = axis_rule("axis", 1, false);  // per tensor, or per channel
    else if (n == "Split" || n == "Gather")
      s.per_sample = axis_rule("axis", 0, false);
    else if (n == "shoal.ConcatGather")  // joined inputs, then the constant indices
      s.per_sample = [](const Attrs& a, std::span<const ValueInfo> in, std::span<const bool> b) {
        if (b.empty() || b.back()) return false;
        for (size_t i = 0; i + 1 < b.size(); ++i)
          if (!b[i]) return false;
        return axis_not_0(a, "axis", 1, in);
      };
    else if (n == "Transpose")
      s.per_sample = [](const Attrs& a, std::span<const ValueInfo>, std::span<const bool> b) {
        return first_only(b) && a.has("perm") && !a.ints("perm").empty() && a.ints("perm")[0] == 0;
      };
    else if (n == "Tile")
      s.per_sample = [](const Attrs&, std::span<const ValueInfo> in, std::span<const bool> b) {
        auto reps = const_ints(in, 1);
        return first_only(b) && reps && !reps->empty() && (*reps)[0] == 1;
      };
    else if (n == "Slice")
      s.per_sample = slice;
    else if (n.rfind("Reduce", 0) == 0)  // the Reduce* family
      s.per_sample = reduce;
    // Constant, ConstantOfShape, Range, Shape, Size: no batch-carrying
    // input (folded at compile time, or made from constants).
  }
}

}  // namespace shoal::ops
