// make_native_kernel: the op -> builder table of the native kernels.
#include <string_view>
#include <unordered_map>

#include "backends/cpu/native/kernel.hpp"
#include "backends/cpu/native/native.hpp"

namespace shoal::cpu::native {
namespace {

using Builder = KernelPtr (*)(const OpContext&);

struct Entry {
  Builder build;
  bool first;  // tried before oneDNN
};

const std::unordered_map<std::string_view, Entry>& builders() {
  static const std::unordered_map<std::string_view, Entry> table = {
      // Elementwise: native first (oneDNN's binary broadcasts only src1 and
      // falls to its reference code for channels-last per-channel operands).
      {"Relu", {make_unary, true}},
      {"LeakyRelu", {make_unary, true}},
      {"Clip", {make_unary, true}},
      {"Sigmoid", {make_unary, true}},
      {"Tanh", {make_unary, true}},
      {"HardSigmoid", {make_unary, true}},
      {"HardSwish", {make_unary, true}},
      {"Elu", {make_unary, true}},
      {"shoal.Silu", {make_unary, true}},
      {"Gelu", {make_unary, true}},
      {"Erf", {make_unary, true}},
      {"Exp", {make_unary, true}},
      {"Log", {make_unary, true}},
      {"Sqrt", {make_unary, true}},
      {"Neg", {make_unary, true}},
      {"Abs", {make_unary, true}},
      {"Reciprocal", {make_unary, true}},
      {"Floor", {make_unary, true}},
      {"Ceil", {make_unary, true}},
      {"Add", {make_binary, true}},
      {"Sub", {make_binary, true}},
      {"Mul", {make_binary, true}},
      {"Div", {make_binary, true}},
      {"Pow", {make_binary, true}},
      {"Max", {make_binary, true}},
      {"Min", {make_binary, true}},
      {"PRelu", {make_binary, true}},
      // Reductions and global pools: native first.
      {"ReduceMean", {make_reduce, true}},
      {"ReduceSum", {make_reduce, true}},
      {"ReduceMax", {make_reduce, true}},
      {"GlobalAveragePool", {make_reduce, true}},
      {"GlobalMaxPool", {make_reduce, true}},
      {"LayerNormalization", {make_layernorm, true}},
      // BatchNormalization not folded into a Conv: a per-channel affine map.
      {"BatchNormalization", {make_batchnorm, true}},
      // Softmax: oneDNN's jit kernel first, native where it has none.
      {"Softmax", {make_softmax, false}},
      {"LogSoftmax", {make_softmax, false}},
      // MaxPool over channels-last float32 tensors: native first (oneDNN
      // 2.6's pooling is tuned for blocked layouts).
      {"MaxPool", {make_maxpool, true}},
      // Copies.
      {"Transpose", {make_transpose, true}},
      {"Slice", {make_slice, true}},
      {"Concat", {make_concat, true}},
      {"Split", {make_split, true}},
      {"Gather", {make_gather, true}},
      {"shoal.ConcatGather", {make_concat_gather, true}},
      {"Pad", {make_pad, true}},
      {"Expand", {make_expand, true}},
      // Resize / Upsample of the spatial dims (oneDNN 2.6's resampling has
      // no nearest modes or coordinate modes beyond half_pixel).
      {"Resize", {make_resize, true}},
      {"Upsample", {make_resize, true}},
      // QDQ models' (de)quantization of activations, per tensor.
      {"QuantizeLinear", {make_quantize, true}},
      {"DequantizeLinear", {make_dequantize, true}},
      {"shoal.QLinearAdd", {make_qlinear_add, true}},
      {"shoal.QLinearLookup", {make_qlinear_lookup, true}},
      {"shoal.QLinearGlobalAveragePool", {make_qlinear_gap, true}},
      {"shoal.QLinearAveragePool", {make_qlinear_avgpool, true}},
      {"shoal.QLinearMul", {make_qlinear_mul, true}},
  };
  return table;
}

}  // namespace

std::unique_ptr<device::Kernel> make_native_kernel(const onednn::OpContext& oc) {
  auto it = builders().find(oc.ins.op);
  if (it == builders().end()) return nullptr;
  return it->second.build(oc);
}

bool native_first(std::string_view op) {
  auto it = builders().find(op);
  return it != builders().end() && it->second.first;
}

bool has_native_kernel(std::string_view op) { return builders().count(op) != 0; }

}  // namespace shoal::cpu::native
