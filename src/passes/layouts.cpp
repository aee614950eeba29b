#include <set>
#include <string>

#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

/// Ops whose CPU kernels read and write 4-D activations channels-last at
/// full speed: oneDNN's convolutions, pools and batch norm, and the native
/// kernels (elementwise with any broadcasting, reductions, copies, Resize), which
/// take any mix of layouts. (Any kernel accepts any layout; the reference
/// kernels convert, slowly.)
bool prefers_channels_last(const ir::Node& n) {
  static const std::set<std::string> ops = {"Conv",          "MaxPool",
                                            "AveragePool",   "GlobalAveragePool",
                                            "GlobalMaxPool", "BatchNormalization",
                                            "Relu",          "LeakyRelu",
                                            "Clip",          "Sigmoid",
                                            "Tanh",          "HardSigmoid",
                                            "HardSwish",     "Elu",
                                            "shoal.Silu",    "Gelu",
                                            "Erf",           "Exp",
                                            "Sqrt",          "Neg",
                                            "Abs",           "Reciprocal",
                                            "Add",           "Sub",
                                            "Mul",           "Div",
                                            "Pow",           "Max",
                                            "Min",           "PRelu",
                                            "ReduceMean",    "ReduceSum",
                                            "ReduceMax",     "Transpose",
                                            "Slice",         "Concat",
                                            "Split",         "Gather",
                                            "Resize",        "Upsample",
                                            "Pad",           "QuantizeLinear",
                                            "DequantizeLinear", "QLinearConv",
                                            "shoal.QLinearAdd"};
  return ops.count(n.op) != 0;
}

}  // namespace

void assign_layouts(ir::Graph& g, const Log& log) {
  auto prod = g.producers();
  auto cons = g.consumers();
  std::set<int> edges;
  for (int v : g.inputs) edges.insert(v);
  for (int v : g.outputs) edges.insert(v);
  int marked = 0;
  for (size_t v = 0; v < g.values.size(); ++v) {
    ir::Value& val = g.values[v];
    const bool int8 = val.dtype == DType::u8 || val.dtype == DType::i8;  // QDQ models
    if (val.is_const() || (val.dtype != DType::f32 && !int8) || val.shape.size() != 4 ||
        edges.count(int(v)) ||
        prod[v] < 0 || cons[v].empty())
      continue;
    bool ok = prefers_channels_last(g.nodes[size_t(prod[v])]);
    for (int c : cons[v]) ok = ok && prefers_channels_last(g.nodes[size_t(c)]);
    if (!ok) continue;
    val.channels_last = true;
    ++marked;
  }
  // oneDNN pools only one layout into the same one at full speed (plain
  // into channels-last takes its reference kernel): a pool reading a plain
  // map writes a plain one (MaxViT's pools after its window departition).
  for (const ir::Node& n : g.nodes) {
    if (n.dead || (n.op != "MaxPool" && n.op != "AveragePool") || n.inputs.empty() ||
        n.outputs.empty() || n.inputs[0] < 0 || n.outputs[0] < 0)
      continue;
    ir::Value& y = g.values[size_t(n.outputs[0])];
    if (y.channels_last && !g.values[size_t(n.inputs[0])].channels_last) {
      y.channels_last = false;
      --marked;
    }
  }
  if (log) log("assigned channels-last layout to " + std::to_string(marked) + " activations");
}

}  // namespace shoal::passes
