// lower_reductions: the norms and sums of a map that have no fast kernel of
// their own become a fast elementwise op around a ReduceSum, which runs the
// native reduction in any layout:
//
//   ReduceL2(x)        -> Sqrt(ReduceSum(Mul(x, x)))   (F.normalize: Swin V2)
//   ReduceSumSquare(x) -> ReduceSum(Mul(x, x))
//   ReduceL1(x)        -> ReduceSum(Abs(x))
//   ReduceLogSum(x)    -> Log(ReduceSum(x))
//
// The ReduceSum keeps the node's axes (attribute or input 1) and keepdims.
// A node that may reduce nothing (no axes with noop_with_empty_axes: ONNX
// returns the input itself) stays, as do ReduceLogSumExp (its stable form
// needs the group's max), ReduceMin and ReduceProd: those run the reference
// kernel.
#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

struct Lowering {
  const char* pre;   // elementwise op before the sum ("Mul": x * x), or null
  const char* post;  // after it, or null
};

const Lowering* lowering_of(const std::string& op) {
  static const Lowering l2{"Mul", "Sqrt"}, sum_square{"Mul", nullptr}, l1{"Abs", nullptr},
      log_sum{nullptr, "Log"};
  if (op == "ReduceL2") return &l2;
  if (op == "ReduceSumSquare") return &sum_square;
  if (op == "ReduceL1") return &l1;
  if (op == "ReduceLogSum") return &log_sum;
  return nullptr;
}

/// Whether the node may reduce nothing: no axes given, and
/// noop_with_empty_axes set.
bool may_be_noop(const ir::Graph& g, const ir::Node& n) {
  if (n.attrs.i("noop_with_empty_axes", 0) == 0) return false;
  if (n.attrs.has("axes")) return n.attrs.ints("axes").empty();
  if (n.inputs.size() < 2 || n.inputs[1] < 0) return true;
  const ir::Value& axes = g.values[size_t(n.inputs[1])];
  return !axes.is_const() || axes.constant->numel() == 0;
}

}  // namespace

void lower_reductions(ir::Graph& g, const Log& log) {
  int lowered = 0;
  std::vector<ir::Node> added;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Lowering* l = lowering_of(g.nodes[i].op);
    if (!l || g.nodes[i].dead) continue;
    const ir::Node red = g.nodes[i];  // a copy: values are added below
    if (red.inputs.empty() || red.inputs[0] < 0 || red.outputs.size() != 1 ||
        g.values[size_t(red.inputs[0])].dtype != DType::f32 || may_be_noop(g, red))
      continue;
    auto fresh = [&](const std::string& what, const ir::Value& like) {
      return add_f32_value(g, red.name + "/shoal_" + what, like.shape);
    };
    auto node = [&](const std::string& op, std::vector<int> in, int out, Attrs attrs = {}) {
      ir::Node n;
      n.name = red.name + "/shoal_" + op;
      n.op = op;
      n.inputs = std::move(in);
      n.outputs = {out};
      n.attrs = std::move(attrs);
      added.push_back(std::move(n));
    };
    int x = red.inputs[0];
    if (l->pre) {
      const int mapped = fresh(l->pre, g.values[size_t(x)]);
      node(l->pre, std::string(l->pre) == "Mul" ? std::vector<int>{x, x} : std::vector<int>{x},
           mapped);
      x = mapped;
    }
    std::vector<int> sum_in = red.inputs;
    sum_in[0] = x;
    const int y = red.outputs[0];
    const int sum = l->post ? fresh("ReduceSum", g.values[size_t(y)]) : y;
    node("ReduceSum", sum_in, sum, red.attrs);
    if (l->post) node(l->post, {sum}, y);
    g.nodes[i].dead = true;
    ++lowered;
  }
  for (ir::Node& n : added) g.nodes.push_back(std::move(n));
  if (lowered) {
    g.compact();
    g.sort();
  }
  if (log)
    log("lowered " + std::to_string(lowered) +
        " ReduceL1/L2/SumSquare/LogSum to an elementwise op and ReduceSum");
}

}  // namespace shoal::passes
