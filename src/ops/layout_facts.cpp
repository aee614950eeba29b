// The operator table's layout facts, listed once: which ops' fast kernels
// take 4-D activations channels-last at full speed (OpSpec::channels_last)
// and which take a weight stored in their own layout (OpSpec::packed_weight:
// which input).
// The layout pass, the kernel factories and the prepacking read them here.
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::ops {

void assign_layout_facts(std::vector<OpSpec>& table) {
  // oneDNN's convolutions, pools and batch norm, and the native kernels
  // (elementwise with any broadcasting, reductions, copies, Resize, Pad);
  // the 8-bit QDQ tensors of QLinearConv are marked like float ones. (Any
  // kernel accepts any layout; the reference kernels convert, slowly.)
  static const std::unordered_set<std::string_view> channels_last = {
      "Conv",
      "MaxPool",
      "AveragePool",
      "GlobalAveragePool",
      "GlobalMaxPool",
      "BatchNormalization",
      "Relu",
      "LeakyRelu",
      "Clip",
      "Sigmoid",
      "Tanh",
      "HardSigmoid",
      "HardSwish",
      "Elu",
      "shoal.Silu",
      "Gelu",
      "Erf",
      "Exp",
      "Sqrt",
      "Neg",
      "Abs",
      "Reciprocal",
      "Add",
      "Sub",
      "Mul",
      "Div",
      "Pow",
      "Max",
      "Min",
      "PRelu",
      "ReduceMean",
      "ReduceSum",
      "ReduceMax",
      "Transpose",
      "Slice",
      "Concat",
      "Split",
      "Gather",
      "shoal.ConcatGather",
      "Resize",
      "Upsample",
      "Pad",
      "QuantizeLinear",
      "DequantizeLinear",
      "QLinearConv",
      "shoal.QLinearAdd",
      "shoal.QLinearLookup",
      "shoal.QLinearGlobalAveragePool",
      "shoal.QLinearAveragePool",
      "shoal.QLinearMul",
      "shoal.PointwiseDepthwise"};
  static const std::unordered_map<std::string_view, int> packed_weight = {
      {"Conv", 1},        {"ConvTranspose", 1}, {"Gemm", 1},         {"MatMul", 1},
      {"QLinearConv", 3}, {"shoal.QMatMul", 3}, {"QLinearMatMul", 3}};
  size_t found = 0;
  for (OpSpec& s : table) {
    s.channels_last = channels_last.count(s.name) != 0;
    const auto w = packed_weight.find(s.name);
    s.packed_weight = w == packed_weight.end() ? -1 : w->second;
    found += s.channels_last + (w != packed_weight.end());
  }
  if (found != channels_last.size() + packed_weight.size())  // a name the table lacks
    throw Error(ErrorKind::internal, "layout facts name an operator the table does not have");
}

}  // namespace shoal::ops
