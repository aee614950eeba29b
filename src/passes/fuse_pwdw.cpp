// fuse_pointwise_depthwise: a 1x1 convolution whose large output only a
// depthwise convolution reads (the expansion and depthwise layers of
// MobileNet, MnasNet and EfficientNet blocks) becomes one
// shoal.PointwiseDepthwise node, which a kernel can run in bands of rows so
// that the expanded tensor never leaves the cache.
#include "passes/passes.hpp"
#include "reference/geometry.hpp"
#include "shoal/error.hpp"

namespace shoal::passes {
namespace {

/// The expanded tensor (one sample) must outgrow a core's L2 for bands to
/// pay. Measured one thread, Xeon with 2 MiB L2 (oneDNN primitives, expand
/// then depthwise, whole against 4-16-row bands): 112x112x96 (4.6 MiB) ran
/// 28% faster banded, 56x56x144 (1.7 MiB) 3% (stride 1) and 12% (stride 2),
/// 28x28x192 (0.6 MiB) 6-20% slower.
constexpr int64_t kMinExpandedBytes = 1536 << 10;

bool const_f32(const ir::Graph& g, int v) {
  return v >= 0 && g.values[size_t(v)].is_const() && g.values[size_t(v)].dtype == DType::f32;
}

/// A 4-D float32 Conv with a constant weight and bias and no residual;
/// fills its geometry.
bool plain_conv(const ir::Graph& g, const ir::Node& n, ref::WindowGeometry& geo) {
  if (n.dead || n.op != "Conv" || n.inputs.size() != 3 || n.outputs.size() != 1) return false;
  if (!const_f32(g, n.inputs[1]) || !const_f32(g, n.inputs[2]) || n.inputs[0] < 0) return false;
  const ir::Value& x = g.values[size_t(n.inputs[0])];
  if (x.dtype != DType::f32 || !x.shape_known || x.shape.size() != 4 || x.is_const()) return false;
  try {
    geo = ref::conv_geometry(n.attrs, x.shape, g.values[size_t(n.inputs[1])].shape);
  } catch (const Error&) {
    return false;
  }
  return true;
}

bool pointwise(const ref::WindowGeometry& g) {
  for (int i = 0; i < 2; ++i)
    if (g.kernel[size_t(i)] != 1 || g.stride[size_t(i)] != 1 || g.pad_begin[size_t(i)] != 0 ||
        g.pad_end[size_t(i)] != 0)
      return false;
  return g.group == 1;
}

bool depthwise(const ref::WindowGeometry& g) {
  return g.group == g.c_in && g.c_out == g.c_in && g.dilation[0] == 1 && g.dilation[1] == 1;
}

}  // namespace

void fuse_pointwise_depthwise(ir::Graph& g, const Log& log) {
  const auto prod = g.producers();
  const auto cons = g.consumers();
  int fused = 0;
  for (ir::Node& dw : g.nodes) {
    ref::WindowGeometry gd, gp;
    if (!plain_conv(g, dw, gd) || !depthwise(gd)) continue;
    const int t = dw.inputs[0];
    if (prod[size_t(t)] < 0 || cons[size_t(t)].size() != 1 || is_graph_output(g, t)) continue;
    ir::Node& pw = g.nodes[size_t(prod[size_t(t)])];
    if (!plain_conv(g, pw, gp) || !pointwise(gp)) continue;
    if (gp.c_out * gp.in[0] * gp.in[1] * int64_t(sizeof(float)) < kMinExpandedBytes) continue;
    Attrs a = dw.attrs;
    if (pw.attrs.has("activation")) {
      a.set("pw_activation", pw.attrs.s("activation", ""));
      a.set("pw_activation_alpha", pw.attrs.f("activation_alpha", 0.0f));
      a.set("pw_activation_beta", pw.attrs.f("activation_beta", 0.0f));
    }
    dw.op = "shoal.PointwiseDepthwise";
    dw.name = pw.name + "+" + dw.name;
    dw.inputs = {pw.inputs[0], pw.inputs[1], pw.inputs[2], dw.inputs[1], dw.inputs[2]};
    dw.attrs = std::move(a);
    pw.dead = true;
    ++fused;
  }
  g.compact();
  if (log)
    log("fused " + std::to_string(fused) +
        " 1x1 convolutions with the depthwise convolutions reading them");
}

}  // namespace shoal::passes
