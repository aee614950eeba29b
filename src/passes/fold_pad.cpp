// fold_pad_into_pool: a Pad adding zeros around the spatial dims, read only
// by an AveragePool that counts padding (count_include_pad=1, or no pads of
// its own) without ceil_mode, becomes that pool's pads with
// count_include_pad=1. The averages are the same (the zeros count toward
// every window either way), computed by one kernel that runs on oneDNN's
// fast pooling, channels-last, instead of a reference Pad copying the map
// and a pool on the plain layout. PyTorch exports AvgPool2d(3, 2,
// padding=1) so (torchvision's MaxViT: a third of its time).
#include <optional>

#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

/// The pads of a constant-mode Pad adding zeros (all dims, begins then
/// ends), or nullopt.
std::optional<std::vector<int64_t>> zero_pads(const ir::Graph& g, const ir::Node& n) {
  if (n.dead || n.op != "Pad" || n.outputs.size() != 1 || n.inputs.empty() ||
      n.attrs.s("mode", "constant") != "constant")
    return std::nullopt;
  if (n.inputs.size() > 3 && n.inputs[3] >= 0) return std::nullopt;  // axes (opset 18)
  std::vector<int64_t> pads;
  if (n.attrs.has("pads") || n.attrs.has("paddings")) {  // opset < 11
    pads = n.attrs.ints(n.attrs.has("pads") ? "pads" : "paddings");
  } else {
    if (n.inputs.size() < 2 || n.inputs[1] < 0) return std::nullopt;
    const ir::Value& v = g.values[size_t(n.inputs[1])];
    if (!v.is_const()) return std::nullopt;
    pads = v.constant->to_ints();
  }
  double value = n.attrs.f("value", 0.0f);
  if (n.inputs.size() > 2 && n.inputs[2] >= 0) {
    const ir::Value& v = g.values[size_t(n.inputs[2])];
    if (!v.is_const() || v.constant->numel() != 1) return std::nullopt;
    value = v.constant->float_at(0);
  }
  if (value != 0) return std::nullopt;
  return pads;
}

}  // namespace

void fold_pad_into_pool(ir::Graph& g, const Log& log) {
  const auto prod = g.producers();
  const auto cons = g.consumers();
  int folded = 0;
  for (auto& pool : g.nodes) {
    if (pool.dead || pool.op != "AveragePool" || pool.inputs.size() != 1 ||
        pool.outputs.size() != 1)
      continue;
    const int x = pool.inputs[0];
    if (x < 0 || prod[size_t(x)] < 0 || cons[size_t(x)].size() != 1 || is_graph_output(g, x))
      continue;
    ir::Node& pad = g.nodes[size_t(prod[size_t(x)])];
    const std::optional<std::vector<int64_t>> pads = zero_pads(g, pad);
    const size_t r = g.values[size_t(pad.inputs[0])].shape.size();
    if (!pads || r < 3 || pads->size() != 2 * r || g.values[size_t(x)].dtype != DType::f32)
      continue;
    const size_t s = r - 2;  // spatial dims
    bool ok = (*pads)[0] == 0 && (*pads)[1] == 0 && (*pads)[r] == 0 && (*pads)[r + 1] == 0;
    for (int64_t p : *pads) ok = ok && p >= 0;
    const Attrs& a = pool.attrs;
    const std::vector<int64_t> kernel = a.ints("kernel_shape");
    std::vector<int64_t> own = a.ints("pads", std::vector<int64_t>(2 * s, 0));
    ok = ok && a.s("auto_pad", "NOTSET") == "NOTSET" && a.i("ceil_mode", 0) == 0 &&
         kernel.size() == s && own.size() == 2 * s;
    for (int64_t d : a.ints("dilations", std::vector<int64_t>(s, 1))) ok = ok && d == 1;
    if (!ok) continue;
    bool own_zero = true;
    for (int64_t p : own) own_zero = own_zero && p == 0;
    if (!own_zero && a.i("count_include_pad", 0) == 0) continue;  // its own pads do not count
    for (size_t i = 0; i < s; ++i) {
      own[i] += (*pads)[2 + i];
      own[s + i] += (*pads)[r + 2 + i];
      ok = ok && own[i] < kernel[i] && own[s + i] < kernel[i];  // ONNX: pads < kernel
    }
    if (!ok) continue;
    pool.attrs.set("pads", own);
    pool.attrs.set("count_include_pad", int64_t(1));
    pool.inputs[0] = pad.inputs[0];
    pad.dead = true;
    ++folded;
  }
  g.compact();
  if (log) log("folded " + std::to_string(folded) + " zero Pad nodes into AveragePool");
}

}  // namespace shoal::passes
