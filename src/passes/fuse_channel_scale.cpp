// fuse_channel_scale: a per-channel scale computed at run time, multiplied
// into the input of a convolution and read by nothing else (the channel
// scale of a squeeze-excitation block: x * s, s = sigmoid(fc(pool(x))) of
// shape [N, C, 1, 1], then the block's projection), becomes the Conv's
// input 4. A kernel then scales the layer's weights, W'[m, c] = W[m, c] *
// s[c], instead of writing and reading back the scaled activation: a few
// thousand weights against hundreds of thousands of activations in the
// early blocks of EfficientNet and MobileNetV3.
#include "passes/passes.hpp"
#include "reference/geometry.hpp"
#include "shoal/error.hpp"

namespace shoal::passes {
namespace {

/// Scaling the weights pays where they are at most half as many as the
/// input elements of one sample. A kernel scales whole vectors of packed
/// weights (oneDNN keeps 16-64 output channels of an input channel
/// together) but reads and writes them all, and the Conv then reads the
/// copy. Measured on EfficientNet-B0 (one thread): 28x28 and larger maps
/// gain the whole Mul (60-110 us per layer at 56x56), 14x14 maps with 2.4
/// input elements per weight gain a little, those with 1.75 lose.
constexpr int64_t kInputPerWeight = 2;

/// Whether `s` is a per-channel scale of `x`: [N or 1, C, 1, ...] against
/// x's [N, C, spatial...], run-time float32 values both.
bool channel_scale_of(const ir::Value& x, const ir::Value& s) {
  if (x.dtype != DType::f32 || s.dtype != DType::f32 || x.is_const() || s.is_const()) return false;
  if (!x.shape_known || !s.shape_known || x.shape.size() < 3 || s.shape.size() != x.shape.size())
    return false;
  if (s.shape[0] != x.shape[0] && s.shape[0] != 1) return false;
  if (s.shape[1] != x.shape[1]) return false;
  for (size_t i = 2; i < s.shape.size(); ++i)
    if (s.shape[i] != 1 || x.shape[i] <= 1) return false;
  return true;
}

/// Whether Conv `n` (reading x) takes a channel scale and gains by it: no
/// groups, constant float32 weights, few of them against x.
bool scalable_conv(const ir::Graph& g, const ir::Node& n, const ir::Value& x) {
  if (n.dead || n.op != "Conv" || n.inputs.size() < 2 || n.inputs.size() > 4) return false;
  const int w = n.inputs[1];
  if (w < 0 || !g.values[size_t(w)].is_const() || g.values[size_t(w)].dtype != DType::f32)
    return false;
  for (size_t i = 1; i < n.inputs.size(); ++i)
    if (n.inputs[i] == n.inputs[0]) return false;  // x read twice
  ref::WindowGeometry geo;
  try {
    geo = ref::conv_geometry(n.attrs, x.shape, g.values[size_t(w)].shape);
  } catch (const Error&) {
    return false;
  }
  if (geo.group != 1) return false;
  int64_t weights = geo.c_out * geo.c_in, input = geo.c_in;
  for (int i = 0; i < geo.spatial(); ++i) {
    weights *= geo.kernel[size_t(i)];
    input *= geo.in[size_t(i)];
  }
  return weights * kInputPerWeight <= input;
}

}  // namespace

void fuse_channel_scale(ir::Graph& g, const Log& log) {
  const auto cons = g.consumers();
  int fused = 0;
  for (ir::Node& mul : g.nodes) {
    if (mul.dead || mul.op != "Mul" || mul.inputs.size() != 2 || mul.outputs.size() != 1) continue;
    const int y = mul.outputs[0];
    if (cons[size_t(y)].size() != 1 || is_graph_output(g, y)) continue;
    ir::Node& conv = g.nodes[size_t(cons[size_t(y)][0])];
    for (int side = 0; side < 2; ++side) {
      const int x = mul.inputs[size_t(side)], s = mul.inputs[size_t(1 - side)];
      if (x < 0 || s < 0 || x == s) continue;
      const ir::Value &xv = g.values[size_t(x)], &sv = g.values[size_t(s)];
      if (!channel_scale_of(xv, sv) || g.values[size_t(y)].shape != xv.shape) continue;
      if (conv.inputs.empty() || conv.inputs[0] != y || !scalable_conv(g, conv, xv)) continue;
      conv.inputs.resize(5, -1);
      conv.inputs[0] = x;
      conv.inputs[4] = s;
      conv.name = mul.name + "+" + conv.name;
      mul.dead = true;
      ++fused;
      break;
    }
  }
  g.compact();
  if (log)
    log("fused " + std::to_string(fused) +
        " channel-scale Mul nodes into the convolutions reading them");
}

}  // namespace shoal::passes
