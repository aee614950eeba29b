// make_onednn_kernel: checks what every oneDNN kernel requires, then hands the
// instruction to the builder of its op family.
#include <string_view>
#include <unordered_map>

#include "backends/cpu/onednn_common.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

using onednn::KernelPtr;
using onednn::OpContext;
using Builder = KernelPtr (*)(const OpContext&);

const std::unordered_map<std::string_view, Builder>& builders() {
  static const std::unordered_map<std::string_view, Builder> table = {
      {"Conv", onednn::make_conv},
      {"ConvTranspose", onednn::make_conv_transpose},
      {"shoal.PointwiseDepthwise", onednn::make_pointwise_depthwise},
      {"MaxPool", onednn::make_pool},
      {"AveragePool", onednn::make_pool},
      {"GlobalAveragePool", onednn::make_global_pool},
      {"GlobalMaxPool", onednn::make_global_pool},
      {"Gemm", onednn::make_gemm},
      {"MatMul", onednn::make_matmul},
      {"Relu", onednn::make_eltwise},
      {"LeakyRelu", onednn::make_eltwise},
      {"Sigmoid", onednn::make_eltwise},
      {"Tanh", onednn::make_eltwise},
      {"Elu", onednn::make_eltwise},
      {"HardSigmoid", onednn::make_eltwise},
      {"HardSwish", onednn::make_eltwise},
      {"Clip", onednn::make_eltwise},
      {"BatchNormalization", onednn::make_batchnorm},
      {"Add", onednn::make_binary},
      {"Sub", onednn::make_binary},
      {"Mul", onednn::make_binary},
      {"Div", onednn::make_binary},
      {"Softmax", onednn::make_softmax},
      {"LogSoftmax", onednn::make_softmax},
      {"Concat", onednn::make_concat},
      {"QLinearConv", onednn::make_qlinear_conv},
      {"shoal.QMatMul", onednn::make_qmatmul},
      {"QLinearMatMul", onednn::make_qmatmul},  // the same operands, requantized
  };
  return table;
}

/// Whether input `i` of `op` is a weight the compiler may store packed.
bool takes_packed_weight(const std::string& op, int i) {
  const ops::OpSpec* spec = ops::find_op(op);
  return spec && spec->packed_weight == i;
}

/// The int8 ops check their own operands (8-bit activations, constant int8
/// weights and parameters).
bool own_checks(const std::string& op) {
  return op == "QLinearConv" || op == "shoal.QMatMul" || op == "QLinearMatMul";
}

/// Every operand must be dense f32, plain or channels-last (the builders
/// describe each operand with user_md; Gemm and MatMul take plain only),
/// except Clip's min/max inputs, which the eltwise builder checks itself,
/// and a weight stored packed (prepack_weights), which packed_weight checks.
/// No operand may be empty: oneDNN rejects zero dims, or crashes on them
/// (SIGFPE creating a matmul with K = 0).
bool operands_supported(const OpContext& oc) {
  const bool channels_last_ok = oc.ins.op != "Gemm" && oc.ins.op != "MatMul";
  for (int i = 0; i < oc.num_inputs(); ++i)
    if (const program::TensorDesc* t = oc.in(i); t && shape_numel(t->shape) == 0) return false;
  for (size_t i = 0; i < oc.ins.outputs.size(); ++i)
    if (oc.ins.outputs[i] >= 0 && shape_numel(oc.out(int(i)).shape) == 0) return false;
  // MaxPool also pools uint8/int8 maps (output of the input's type).
  const program::TensorDesc* x0 = oc.num_inputs() > 0 ? oc.in(0) : nullptr;
  const DType type =
      oc.ins.op == "MaxPool" && x0 && (x0->dtype == DType::u8 || x0->dtype == DType::i8)
          ? x0->dtype
          : DType::f32;
  auto ok = [&](const program::TensorDesc& t) {
    return t.dtype == type && (t.layout == program::Layout::plain ||
                               (channels_last_ok && t.layout == program::Layout::channels_last));
  };
  for (int i = 0; i < oc.num_inputs(); ++i) {
    const program::TensorDesc* t = oc.in(i);
    if (t && t->layout == program::Layout::packed && t->dtype == DType::f32 &&
        onednn::is_weight(*t) && takes_packed_weight(oc.ins.op, i))
      continue;
    if (t && !ok(*t) && !(oc.ins.op == "Clip" && i > 0)) return false;
  }
  for (size_t i = 0; i < oc.ins.outputs.size(); ++i)
    if (oc.ins.outputs[i] >= 0 && !ok(oc.out(int(i)))) return false;
  return !oc.ins.outputs.empty();
}

}  // namespace

bool onednn::weight_plan(const OpContext& oc, WeightPlan& wp) {
  const std::string& op = oc.ins.op;
  if (op == "QLinearConv") return qconv_weight_plan(oc, wp);
  if (op == "shoal.QMatMul" || op == "QLinearMatMul") return qmatmul_weight_plan(oc, wp);
  if (!operands_supported(oc)) return false;
  if (op == "Conv") return conv_weight_plan(oc, false, wp);
  if (op == "ConvTranspose") return conv_weight_plan(oc, true, wp);
  if (op == "Gemm") return gemm_weight_plan(oc, wp);
  if (op == "MatMul") return matmul_weight_plan(oc, wp);
  return false;
}

std::unique_ptr<device::Kernel> make_onednn_kernel(const program::Instruction& ins,
                                                   const program::ProgramData& prog,
                                                   OneDnnContext& ctx, int threads) {
  auto it = builders().find(ins.op);
  if (it == builders().end()) return nullptr;
  OpContext oc{ins, prog, ctx, threads};
  const bool own = own_checks(ins.op);
  if (!own && !operands_supported(oc)) return nullptr;
  for (int i = 0; own && i < oc.num_inputs(); ++i)
    if (const program::TensorDesc* t = oc.in(i); t && shape_numel(t->shape) == 0) return nullptr;
  try {
    return it->second(oc);
  } catch (const dnnl::error& e) {
    // Primitive creation failing as unimplemented or with arguments oneDNN
    // rejects means "not for oneDNN": the reference kernel takes over.
    if (e.status == dnnl_unimplemented || e.status == dnnl_invalid_arguments) return nullptr;
    throw Error(e.status == dnnl_out_of_memory ? ErrorKind::out_of_memory : ErrorKind::device,
                oc.what() + ": oneDNN failed: " + e.what());
  }
}

}  // namespace shoal::cpu
