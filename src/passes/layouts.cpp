#include <set>
#include <string>

#include "ops/op_table.hpp"
#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

/// The op's fast kernels take channels-last 4-D activations at full speed
/// (OpSpec::channels_last, the operator table's fact).
bool prefers_channels_last(const ir::Node& n) {
  const ops::OpSpec* spec = ops::find_op(n.op);
  return spec && spec->channels_last;
}

/// Ops whose kernels run faster on channels-last maps than on plain ones
/// (convolutions, pools, batch norm, resizing), as against the ones that
/// merely take either layout at the same speed (elementwise ops, copies,
/// (de)quantization): a channels-last map pays only where it reaches one.
bool layout_anchor(const ir::Node& n) {
  static const std::set<std::string> anchors = {"Conv",
                                                "MaxPool",
                                                "AveragePool",
                                                "GlobalAveragePool",
                                                "GlobalMaxPool",
                                                "BatchNormalization",
                                                "Resize",
                                                "Upsample",
                                                "QLinearConv",
                                                "shoal.PointwiseDepthwise",
                                                "shoal.QLinearGlobalAveragePool",
                                                "shoal.QLinearAveragePool"};
  return anchors.count(n.op) != 0;
}

/// Unmarks each group of channels-last values (joined through the nodes
/// that read or write them) that no layout anchor touches: such a group
/// lies between plain-only ops, so it would only add a conversion at each
/// end (an int8 matmul's float result, its bias Add and GELU, quantized for
/// the next matmul: ConvNeXt's and Swin's MLPs). Returns how many it unmarked.
int unmark_unanchored(ir::Graph& g, const std::vector<int>& prod,
                      const std::vector<std::vector<int>>& cons) {
  const size_t nv = g.values.size();
  std::vector<int> group(nv, -1);
  int unmarked = 0;
  for (size_t start = 0; start < nv; ++start) {
    if (!g.values[start].channels_last || group[start] >= 0) continue;
    std::vector<int> members, stack = {int(start)};
    group[start] = int(start);
    bool anchored = false;
    while (!stack.empty()) {
      const int v = stack.back();
      stack.pop_back();
      members.push_back(v);
      std::vector<int> nodes = cons[size_t(v)];
      if (prod[size_t(v)] >= 0) nodes.push_back(prod[size_t(v)]);
      for (int ni : nodes) {
        const ir::Node& n = g.nodes[size_t(ni)];
        anchored = anchored || layout_anchor(n);
        for (const std::vector<int>* side : {&n.inputs, &n.outputs})
          for (int w : *side)
            if (w >= 0 && g.values[size_t(w)].channels_last && group[size_t(w)] < 0) {
              group[size_t(w)] = int(start);
              stack.push_back(w);
            }
      }
    }
    if (anchored) continue;
    for (int v : members) g.values[size_t(v)].channels_last = false;
    unmarked += int(members.size());
  }
  return unmarked;
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
  marked -= unmark_unanchored(g, prod, cons);
  if (log) log("assigned channels-last layout to " + std::to_string(marked) + " activations");
}

}  // namespace shoal::passes
