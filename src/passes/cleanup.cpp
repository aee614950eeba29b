#include "passes/passes.hpp"

namespace shoal::passes {

bool is_graph_output(const ir::Graph& g, int value) {
  for (int o : g.outputs)
    if (o == value) return true;
  return false;
}

void replace_uses(ir::Graph& g, int from, int to) {
  for (auto& n : g.nodes)
    for (int& v : n.inputs)
      if (v == from) v = to;
  for (int& o : g.outputs)
    if (o == from) o = to;
}

int add_constant(ir::Graph& g, std::string name, HostTensor data) {
  ir::Value v;
  v.name = std::move(name);
  v.dtype = data.dtype();
  v.shape = data.shape();
  v.shape_known = true;
  v.constant = std::move(data);
  return g.add_value(std::move(v));
}

int add_f32_value(ir::Graph& g, std::string name, Shape shape) {
  ir::Value v;
  v.name = std::move(name);
  v.dtype = DType::f32;
  v.shape = std::move(shape);
  v.shape_known = true;
  return g.add_value(std::move(v));
}

namespace {

/// A Pad that adds nothing (every pad 0, constants known) is an Identity;
/// exporters write them before pools (torchvision's DenseNet).
bool is_zero_pad(const ir::Graph& g, const ir::Node& n) {
  if (n.op != "Pad" || n.outputs.size() != 1) return false;
  std::vector<int64_t> pads;
  if (n.attrs.has("pads")) {
    pads = n.attrs.ints("pads");
  } else {
    if (n.inputs.size() < 2 || n.inputs[1] < 0) return false;
    const ir::Value& v = g.values[size_t(n.inputs[1])];
    if (!v.is_const()) return false;
    pads = v.constant->to_ints();
  }
  if (pads.empty()) return false;
  for (int64_t p : pads)
    if (p != 0) return false;
  const ir::Value &x = g.values[size_t(n.inputs[0])], &y = g.values[size_t(n.outputs[0])];
  return x.shape == y.shape && x.dtype == y.dtype;
}

/// Marks dead the nodes no graph output depends on (walking backwards), drops
/// MaxPool Indices nobody reads and absent trailing outputs; the count marked.
int mark_unused(ir::Graph& g) {
  int removed = 0;
  std::vector<char> needed(g.values.size(), 0);
  for (int o : g.outputs) needed[size_t(o)] = 1;
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    if (it->dead) continue;
    bool any = false;
    for (int v : it->outputs) any |= (v >= 0 && needed[size_t(v)]);
    if (!any) {
      it->dead = true;
      ++removed;
      continue;
    }
    // MaxPool's Indices nobody reads are not computed (the fast kernels
    // pool without them); absent trailing outputs are dropped.
    if (it->op == "MaxPool" && it->outputs.size() > 1 && it->outputs[1] >= 0 &&
        !needed[size_t(it->outputs[1])])
      it->outputs[1] = -1;
    while (it->outputs.size() > 1 && it->outputs.back() < 0) it->outputs.pop_back();
    for (int v : it->inputs)
      if (v >= 0) needed[size_t(v)] = 1;
  }
  return removed;
}

}  // namespace

void remove_unused(ir::Graph& g, const Log& log) {
  const int removed = mark_unused(g);
  g.compact();
  if (log) log("removed " + std::to_string(removed) + " nodes no output depends on");
}

void batch_generic_reshapes(ir::Graph& g, const Log& log) {
  int rewritten = 0;
  for (auto& n : g.nodes) {
    if (n.dead || n.op != "Reshape" || n.inputs.size() < 2 || n.attrs.i("allowzero", 0) != 0)
      continue;
    const ir::Value &x = g.values[size_t(n.inputs[0])], &s = g.values[size_t(n.inputs[1])];
    if (x.is_const() || x.shape.empty() || x.shape[0] != 1 || !s.is_const() ||
        s.constant->numel() < 1 || s.constant->int_at(0) != 1)
      continue;
    HostTensor shape = *s.constant;
    if (shape.dtype() != DType::i64) continue;
    shape.as<int64_t>()[0] = 0;  // 0: dim 0 copied from the input
    n.inputs[1] = add_constant(g, n.name + "/shoal_batch_shape", std::move(shape));
    ++rewritten;
  }
  g.compact();
  if (log) log("made " + std::to_string(rewritten) + " Reshape nodes keep the batch dim (1 -> 0)");
}

void remove_dead_and_identity(ir::Graph& g, const Log& log) {
  int removed = 0;
  for (auto& n : g.nodes)
    if (!n.dead && is_zero_pad(g, n)) {
      n.op = "Identity";
      n.inputs.resize(1);
      n.attrs = Attrs{};
    }
  // Identity and inference Dropout forward their input, unless the output is
  // a graph output fed by a graph input or a constant (then a copy stays).
  for (auto& n : g.nodes) {
    if (n.dead || (n.op != "Identity" && n.op != "Dropout")) continue;
    if (n.outputs.size() > 1 && n.outputs[1] >= 0) continue;  // mask in use
    int in = n.inputs[0], out = n.outputs[0];
    if (is_graph_output(g, out)) {
      bool in_is_source = g.values[size_t(in)].is_const();
      for (int i : g.inputs) in_is_source |= (i == in);
      if (in_is_source || is_graph_output(g, in)) continue;
      // Rename: the producer of `in` now writes the output value directly.
      for (auto& p : g.nodes)
        for (int& v : p.outputs)
          if (v == in) v = out;
      replace_uses(g, in, out);
    } else {
      replace_uses(g, out, in);
    }
    n.dead = true;
    ++removed;
  }
  removed += mark_unused(g);
  g.compact();
  if (log) log("removed " + std::to_string(removed) + " dead or identity nodes");
}

}  // namespace shoal::passes
