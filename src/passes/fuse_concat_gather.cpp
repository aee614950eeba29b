// fuse_concat_gather: a Gather with constant 1-D indices (a channel shuffle,
// as recognize_composites writes it) whose input only a Concat along the
// same axis makes becomes one shoal.ConcatGather over the Concat's inputs;
// then every Slice along that axis alone that reads such a node becomes its
// own shoal.ConcatGather of the selected indices. ShuffleNet's Concat ->
// shuffle -> two Slices (three copies of the block's tensor) becomes two
// copies that together write it once.
#include "passes/passes.hpp"
#include "reference/plans.hpp"
#include "shoal/error.hpp"

namespace shoal::passes {
namespace {

int64_t axis_of(const ir::Node& n, const ir::Graph& g, int64_t fallback) {
  const int64_t r = int64_t(g.values[size_t(n.inputs[0])].shape.size());
  const int64_t a = n.attrs.i("axis", fallback);
  return a < 0 ? a + r : a;
}

/// The constant 1-D integer indices of input `v`, or nullopt.
std::optional<std::vector<int64_t>> const_indices(const ir::Graph& g, int v) {
  if (v < 0) return std::nullopt;
  const ir::Value& val = g.values[size_t(v)];
  if (!val.is_const() || val.shape.size() != 1 ||
      (val.dtype != DType::i64 && val.dtype != DType::i32))
    return std::nullopt;
  return val.constant->to_ints();
}

/// Whether value v is read by nodes `readers` only and is no graph output.
bool read_only_by(const ir::Graph& g, const std::vector<std::vector<int>>& cons, int v,
                  size_t readers) {
  return cons[size_t(v)].size() == readers && !is_graph_output(g, v);
}

/// Gather(Concat(...)) -> shoal.ConcatGather; returns how many.
int join_gathers(ir::Graph& g) {
  const auto prod = g.producers();
  const auto cons = g.consumers();
  int n = 0;
  for (ir::Node& ga : g.nodes) {
    if (ga.dead || ga.op != "Gather" || ga.inputs.size() != 2 || ga.outputs.size() != 1) continue;
    const int x = ga.inputs[0];
    if (x < 0 || prod[size_t(x)] < 0 || !read_only_by(g, cons, x, 1)) continue;
    ir::Node& cat = g.nodes[size_t(prod[size_t(x)])];
    if (cat.dead || cat.op != "Concat" || cat.attrs.has("affine_scale") || cat.outputs.size() != 1)
      continue;
    const ir::Value& xv = g.values[size_t(x)];
    auto idx = const_indices(g, ga.inputs[1]);
    const int64_t axis = axis_of(ga, g, 0);
    if (!idx || !xv.shape_known || axis < 0 || axis >= int64_t(xv.shape.size()) ||
        axis != axis_of(cat, g, 1))
      continue;
    const int64_t dim = xv.shape[size_t(axis)];
    bool in_range = true;
    for (int64_t i : *idx) in_range = in_range && i >= -dim && i < dim;
    if (!in_range) continue;  // the reference Gather names the bad index
    std::vector<int> inputs = cat.inputs;
    inputs.push_back(ga.inputs[1]);
    ga.op = "shoal.ConcatGather";
    ga.domain.clear();
    ga.name = cat.name + "+" + ga.name;
    ga.inputs = std::move(inputs);
    ga.attrs = Attrs{};
    ga.attrs.set("axis", axis);
    cat.dead = true;
    ++n;
  }
  g.compact();
  return n;
}

/// The indices along `axis` that Slice `s` of a tensor of shape `shape`
/// selects, when it slices along that axis alone with constant parameters.
std::optional<std::vector<int64_t>> sliced_along(const ir::Graph& g, const ir::Node& s,
                                                 const Shape& shape, size_t axis) {
  for (size_t i = 1; i < s.inputs.size(); ++i)
    if (s.inputs[i] >= 0 && !g.values[size_t(s.inputs[i])].is_const()) return std::nullopt;
  ref::SliceDims sd;
  try {
    sd = ref::slice_from(s.attrs, shape, [&](size_t i, const char*) {
      std::optional<std::vector<int64_t>> v;
      if (i < s.inputs.size() && s.inputs[i] >= 0)
        v = g.values[size_t(s.inputs[i])].constant->to_ints();
      return v;
    });
  } catch (const Error&) {
    return std::nullopt;
  }
  for (size_t d = 0; d < shape.size(); ++d)
    if (d != axis && (sd.start[d] != 0 || sd.step[d] != 1 || sd.count[d] != shape[d]))
      return std::nullopt;
  std::vector<int64_t> at;
  for (int64_t k = 0; k < sd.count[axis]; ++k) at.push_back(sd.start[axis] + k * sd.step[axis]);
  return at;
}

/// Slices of a shoal.ConcatGather -> shoal.ConcatGathers; returns how many.
int split_slices(ir::Graph& g) {
  const auto prod = g.producers();
  const auto cons = g.consumers();
  int n = 0;
  for (ir::Node& cg : g.nodes) {
    if (cg.dead || cg.op != "shoal.ConcatGather" || cg.outputs.size() != 1) continue;
    const int y = cg.outputs[0];
    if (is_graph_output(g, y) || cons[size_t(y)].empty()) continue;
    const Shape& ys = g.values[size_t(y)].shape;
    const size_t axis = size_t(cg.attrs.i("axis", 1));
    auto idx = const_indices(g, cg.inputs.back());
    if (!idx) continue;
    // Every reader must be such a Slice (reading y as its data only).
    std::vector<std::pair<int, std::vector<int64_t>>> slices;
    for (int r : cons[size_t(y)]) {
      const ir::Node& s = g.nodes[size_t(r)];
      if (s.op != "Slice" || s.outputs.size() != 1 || s.inputs.empty() || s.inputs[0] != y) break;
      bool once = true;
      for (size_t i = 1; i < s.inputs.size(); ++i) once = once && s.inputs[i] != y;
      auto at = once ? sliced_along(g, s, ys, axis) : std::nullopt;
      if (!at || at->empty()) break;
      slices.emplace_back(r, std::move(*at));
    }
    if (slices.size() != cons[size_t(y)].size()) continue;
    for (auto& [r, at] : slices) {
      ir::Node& s = g.nodes[size_t(r)];
      HostTensor sub(DType::i64, {int64_t(at.size())});
      for (size_t k = 0; k < at.size(); ++k) sub.as<int64_t>()[k] = (*idx)[size_t(at[k])];
      std::vector<int> inputs(cg.inputs.begin(), cg.inputs.end() - 1);
      inputs.push_back(add_constant(g, s.name + "/shoal_indices", std::move(sub)));
      s.op = "shoal.ConcatGather";
      s.domain.clear();
      s.name = cg.name + "+" + s.name;
      s.inputs = std::move(inputs);
      s.attrs = Attrs{};
      s.attrs.set("axis", int64_t(axis));
    }
    cg.dead = true;
    n += int(slices.size());
  }
  g.compact();
  return n;
}

}  // namespace

void fuse_concat_gather(ir::Graph& g, const Log& log) {
  const int joined = join_gathers(g);
  const int sliced = split_slices(g);
  g.sort();
  if (log)
    log("fused " + std::to_string(joined) + " Concat -> Gather pairs (channel shuffles) and " +
        std::to_string(sliced) + " Slices of them into shoal.ConcatGather copies");
}

}  // namespace shoal::passes
