// choose_conv_algorithms: which 3x3 stride-1 convolutions use oneDNN's
// Winograd kernel. A fixed rule on the layer's shape, so that compiling a
// model twice gives the same program (timing each layer at compile time
// picked differently from run to run on a noisy machine).
#include <algorithm>

#include "backends/cpu/onednn_common.hpp"
#include "backends/cpu/onednn_kernels.hpp"
#include "reference/geometry.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

/// The layer's output geometry when Winograd can apply at all: 2-D, 3x3,
/// stride 1, dilation 1, one group, a constant weight.
bool candidate(const program::Instruction& ins, const program::ProgramData& p,
               ref::WindowGeometry& g) {
  if (ins.op != "Conv" || ins.inputs.size() < 2 || ins.outputs.size() != 1) return false;
  if (has_channel_scale(ins)) return false;  // scaled weights: direct only
  const int32_t x = ins.inputs[0], w = ins.inputs[1];
  if (x < 0 || w < 0 || size_t(x) >= p.tensors.size() || size_t(w) >= p.tensors.size())
    return false;
  const program::TensorDesc &xd = p.tensors[size_t(x)], &wd = p.tensors[size_t(w)];
  if (xd.shape.size() != 4 || wd.shape.size() != 4 || wd.storage != program::Storage::weight)
    return false;
  if (wd.shape[2] != 3 || wd.shape[3] != 3) return false;
  try {
    g = ref::conv_geometry(ins.attrs, xd.shape, wd.shape);
  } catch (const Error&) {
    return false;
  }
  return g.group == 1 && g.stride[0] == 1 && g.stride[1] == 1 && g.dilation[0] == 1 &&
         g.dilation[1] == 1;
}

/// oneDNN's F(2x2, 3x3) kernel (the 2x3 weight formats) walks the
/// transformed weights of all input channels and oc2_block x oc_block
/// output channels per step. Measured on 13x13 and 14x14 maps (1 core, 2 MiB
/// L2): where that block stays within about 1.25 MiB it wins or ties (1.3x
/// with 64 -> 256 channels, 1.4x with 512 -> 512); past it, it loses to
/// direct convolution (384 -> 256: 0.56x, 256 -> 384: 0.74x, 384 -> 384:
/// 0.58x), the weights no longer staying in L2.
constexpr double kWino2x3BlockBytes = 1.25 * (1 << 20);

/// Whether oneDNN has a Winograd kernel for the instruction on this CPU that
/// pays by its weight blocking (kWino2x3BlockBytes).
bool available(const program::Instruction& ins, const program::ProgramData& p, OneDnnContext& ctx) {
  program::Instruction wino = ins;
  wino.attrs.set(kWinogradAttr, int64_t(1));
  onednn::OpContext oc{wino, p, ctx};
  onednn::WeightPlan wp;
  try {
    // The plan falls back to direct convolution when Winograd is missing:
    // its weight layout says which one it got.
    if (!onednn::weight_plan(oc, wp) || wp.target.data.format_kind != dnnl_format_kind_wino)
      return false;
  } catch (const std::exception&) {
    return false;
  }
  const dnnl_wino_desc_t& w = wp.target.data.format_desc.wino_desc;
  if (w.wino_format == dnnl_wino_wei_OBaaIBOIio) return true;  // F(4x4, 3x3)
  const double block = double(w.ic) * w.oc_block * w.oc2_block * w.alpha * w.alpha * sizeof(float);
  return block <= kWino2x3BlockBytes;
}

}  // namespace

int choose_conv_algorithms(program::ProgramData& p, WinogradPolicy policy,
                           const std::function<void(const std::string&)>& log) {
  if (policy == WinogradPolicy::none) return 0;
  OneDnnContext ctx;
  int marked = 0, candidates = 0;
  for (program::Instruction& ins : p.instructions) {
    ref::WindowGeometry g;
    if (!candidate(ins, p, g)) continue;
    ++candidates;
    // Measured per layer against direct convolution (SHOAL_WINOGRAD=all
    // against the default, docs/PERFORMANCE.md). On an AVX-512 Xeon
    // (Sapphire Rapids class): Winograd saves 20-25% on 56x56 and 28x28
    // maps with 128 input and 32 output channels (DenseNet), 12% on 14x14
    // maps, 22% on 13x13 maps with 48-64 input channels (SqueezeNet),
    // loses 12-30% on 7x7 maps (its weights, 1.8-4x larger, are not worth
    // it there) and 14-24% with 16 input channels; and where the F(2x2,3x3)
    // kernel's weight block outgrows L2 (available()).
    const int64_t area = g.out[0] * g.out[1];
    const bool worth = area >= 13 * 13 && g.c_in >= 32 && g.c_out >= 32;
    if ((policy == WinogradPolicy::all || worth) && available(ins, p, ctx)) {
      ins.attrs.set(kWinogradAttr, int64_t(1));
      ++marked;
    }
  }
  if (log && candidates)
    log("winograd: " + std::to_string(marked) + " of " + std::to_string(candidates) +
        " 3x3 stride-1 convolutions");
  return marked;
}

}  // namespace shoal::cpu
