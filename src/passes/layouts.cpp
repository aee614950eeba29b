#include <set>
#include <string>

#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

/// Ops whose CPU kernels read and write 4-D activations channels-last at
/// full speed. (Any kernel accepts any layout; others convert, slowly.)
bool prefers_channels_last(const ir::Graph& g, const ir::Node& n) {
  static const std::set<std::string> ops = {
      "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
      "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh",
      "HardSigmoid", "HardSwish", "Elu", "Add", "Sub", "Mul", "Div", "Concat"};
  if (!ops.count(n.op)) return false;
  if (n.op == "Concat") {
    const int64_t axis = n.attrs.i("axis", 1);
    if (axis != 1 && axis != -3) return false;
  }
  // Binary ops: both operands of the output's shape, or one a constant
  // that is the same bytes in either layout ([1,C,1,1] or a scalar).
  if (n.op == "Add" || n.op == "Sub" || n.op == "Mul" || n.op == "Div") {
    const Shape& out = g.values[size_t(n.outputs[0])].shape;
    for (int v : n.inputs) {
      const ir::Value& val = g.values[size_t(v)];
      if (val.shape == out) continue;
      if (!val.is_const()) return false;
      const bool per_channel = val.shape.size() == 4 && val.shape[0] == 1 &&
                               val.shape[2] == 1 && val.shape[3] == 1;
      if (!per_channel && shape_numel(val.shape) != 1) return false;
    }
  }
  return true;
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
    if (val.is_const() || val.dtype != DType::f32 || val.shape.size() != 4 ||
        edges.count(int(v)) || prod[v] < 0 || cons[v].empty())
      continue;
    bool ok = prefers_channels_last(g, g.nodes[size_t(prod[v])]);
    for (int c : cons[v]) ok = ok && prefers_channels_last(g, g.nodes[size_t(c)]);
    if (!ok) continue;
    val.channels_last = true;
    ++marked;
  }
  if (log) log("assigned channels-last layout to " + std::to_string(marked) + " activations");
}

}  // namespace shoal::passes
