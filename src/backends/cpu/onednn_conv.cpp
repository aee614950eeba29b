// Conv and ConvTranspose as oneDNN (de)convolutions. The primitive picks its
// blocked layouts (format any); the kernel reorders the plain input into a
// workspace buffer and the blocked result back to the plain output, skipping
// a reorder when the chosen layout is already plain. Weights are packed once
// per device, or stored packed by the compiler (see conv_weight_plan). Fused
// forms: y = act(conv(x) + bias + residual), with the residual (input 3) as a
// sum post-op over a destination pre-filled with it.
#include "backends/cpu/onednn_common.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {
namespace {

/// Weights of an ONNX Conv, [M, C/g, k...], as oneDNN (g,)o,i,k... dims.
void conv_weights(const ref::WindowGeometry& g, dims& wd, dims& ws) {
  int64_t oc = g.c_out / g.group, ic = g.c_in / g.group;
  wd = g.group > 1 ? dims{g.group, oc, ic} : dims{g.c_out, ic};
  wd.insert(wd.end(), g.kernel.begin(), g.kernel.end());
  ws = plain_strides(wd);  // ONNX's layout is the plain (g)oi... one
}

/// Weights of an ONNX ConvTranspose, [C, M/g, k...] = (g, i, o, k...), as
/// oneDNN (g,)o,i,k... dims with the strides of the ONNX layout.
void deconv_weights(const ref::WindowGeometry& g, dims& wd, dims& ws) {
  int64_t oc = g.c_out / g.group, ic = g.c_in / g.group, ks = 1;
  for (int64_t k : g.kernel) ks *= k;
  dims kd(g.kernel.begin(), g.kernel.end());
  dims kst = plain_strides(kd);
  if (g.group > 1) {
    wd = {g.group, oc, ic};
    ws = {ic * oc * ks, ks, oc * ks};
  } else {
    wd = {oc, ic};
    ws = {ks, oc * ks};
  }
  wd.insert(wd.end(), kd.begin(), kd.end());
  ws.insert(ws.end(), kst.begin(), kst.end());
}

/// What a (de)convolution kernel derives from its instruction, up to the
/// primitive descriptor. The kernel and the compiler's weight prepacking both
/// get it from plan_conv, so the packed layout is the one the kernel wants.
struct ConvPlan {
  const program::TensorDesc *x = nullptr, *w = nullptr, *b = nullptr,
                            *r = nullptr;
  dims xd, yd, wd, ws;  // source, destination, weights (dims, ONNX strides)
  dnnl::memory::desc bmd;
  dnnl::primitive_desc pd;
};

/// Fills `out`; false when oneDNN does not take this (de)convolution.
bool plan_conv(const OpContext& oc, bool transpose, ConvPlan& out) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc* w = oc.in(1);
  const program::TensorDesc* b = oc.in(2);
  const program::TensorDesc* r = oc.in(3);
  if (!x || !w || !is_weight(*w) || oc.num_inputs() > 4) return false;
  if (oc.ins.outputs.size() != 1) return false;
  size_t rank = x->shape.size();
  if (rank < 3 || rank > 5 || w->shape.size() != rank) return false;
  const Attrs& a = oc.ins.attrs;
  ref::WindowGeometry g =
      transpose ? ref::conv_transpose_geometry(a, x->shape, w->shape)
                : ref::conv_geometry(a, x->shape, w->shape);
  if (g.group < 1 || g.c_in % g.group || g.c_out % g.group) return false;

  dims yd = window_out_dims(oc, g);
  if (b && (b->shape.size() != 1 || b->shape[0] != g.c_out))
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": bias '" + b->name + "' has shape " +
                    shape_str(b->shape) + ", expected [" +
                    std::to_string(g.c_out) + "]");
  dnnl::primitive_attr attr;
  if (!fused_attr(oc, r, attr)) return false;

  dims wd, ws;
  (transpose ? deconv_weights : conv_weights)(g, wd, ws);
  dims xd = to_dims(x->shape);
  dims strides(g.stride.begin(), g.stride.end());
  dims dil, pl(g.pad_begin.begin(), g.pad_begin.end()), pr;
  for (int64_t d : g.dilation) dil.push_back(d - 1);  // oneDNN: 0 = dense
  for (int i = 0; i < g.spatial(); ++i) {
    if (!transpose) {
      pr.push_back(g.pad_end[i]);
    } else {
      // oneDNN: out = (in-1)*s + (k-1)*d + 1 - pl - pr; output_padding and
      // output_shape end up in pr (possibly negative).
      int64_t full =
          (g.in[i] - 1) * g.stride[i] + (g.kernel[i] - 1) * g.dilation[i] + 1;
      pr.push_back(full - g.pad_begin[i] - g.out[i]);
    }
  }

  dnnl::memory::desc xmd = any_md(xd), wmd = any_md(wd), ymd = any_md(yd);
  dnnl::memory::desc bmd = plain_md({g.c_out});
  const auto fwd = dnnl::prop_kind::forward_inference;
  const dnnl::engine& eng = oc.ctx.engine;
  dnnl::primitive_desc pd;
  if (transpose) {
    const auto alg = dnnl::algorithm::deconvolution_direct;
    auto d = b ? dnnl::deconvolution_forward::desc(fwd, alg, xmd, wmd, bmd, ymd,
                                                   strides, dil, pl, pr)
               : dnnl::deconvolution_forward::desc(fwd, alg, xmd, wmd, ymd,
                                                   strides, dil, pl, pr);
    dnnl::deconvolution_forward::primitive_desc p(d, attr, eng);
    pd = p;
  } else {
    auto make = [&](dnnl::algorithm alg) {
      auto d = b ? dnnl::convolution_forward::desc(fwd, alg, xmd, wmd, bmd, ymd,
                                                   strides, dil, pl, pr)
                 : dnnl::convolution_forward::desc(fwd, alg, xmd, wmd, ymd,
                                                   strides, dil, pl, pr);
      return dnnl::convolution_forward::primitive_desc(d, attr, eng);
    };
    // The compiler marks the layers where Winograd measured faster
    // (choose_conv_algorithms); a CPU without it runs them directly.
    bool done = false;
    if (a.i(kWinogradAttr, 0) != 0) {
      try {
        pd = make(dnnl::algorithm::convolution_winograd);
        done = true;
      } catch (const dnnl::error&) {
      }
    }
    if (!done) pd = make(dnnl::algorithm::convolution_direct);
  }
  out = ConvPlan{x, w, b, r, xd, yd, wd, ws, bmd, pd};
  return true;
}

KernelPtr build(const OpContext& oc, bool transpose) {
  ConvPlan p;
  if (!plan_conv(oc, transpose, p)) return nullptr;
  const program::TensorDesc *w = p.w, *b = p.b, *r = p.r;
  const dims &xd = p.xd, &yd = p.yd, &wd = p.wd, &ws = p.ws;
  const dnnl::memory::desc& bmd = p.bmd;
  const dnnl::primitive_desc& pd = p.pd;
  dnnl::primitive prim(pd);

  auto k = std::make_unique<DnnlKernel>(oc);
  DnnlKernel::Args args;
  // Source: plain user tensor, reordered when the primitive wants a blocked
  // layout.
  dnnl::memory::desc xu = user_md(*oc.in(0), xd);
  dnnl::memory::desc src_md = pd.query_md(dnnl::query::src_md);
  if (src_md == xu) {
    args[DNNL_ARG_SRC] = k->operand(oc, 0, xu);
  } else {
    dnnl::memory user = k->operand(oc, 0, xu);
    args[DNNL_ARG_SRC] = k->temp(src_md);
    k->add_reorder(user, args[DNNL_ARG_SRC]);
  }
  auto packed = packed_weight(oc, *w, strided_md(wd, ws),
                              pd.query_md(dnnl::query::weights_md),
                              transpose ? "deconv" : "conv");
  args[DNNL_ARG_WEIGHTS] = *packed;
  k->keep(packed);
  if (b) args[DNNL_ARG_BIAS] = k->operand(oc, 2, bmd);
  // Destination: blocked in the workspace, or the plain output itself. The
  // sum post-op adds what the destination holds: the residual.
  dnnl::memory::desc yu = user_md(oc.out(0), yd);
  dnnl::memory::desc dst_md = pd.query_md(dnnl::query::dst_md);
  bool dst_plain = dst_md == yu;
  dnnl::memory dst = dst_plain ? k->bind_output(0, yu) : k->temp(dst_md);
  args[DNNL_ARG_DST] = dst;
  if (r)
    k->add_reorder(k->operand(oc, 3, user_md(*oc.in(3), yd)), dst,
                   /*skip_if_same=*/true);
  k->add(prim, pd, std::move(args));
  if (!dst_plain) k->add_reorder(dst, k->bind_output(0, yu));
  k->set_impl(pd);
  return k;
}

}  // namespace

KernelPtr make_conv(const OpContext& oc) { return build(oc, false); }
KernelPtr make_conv_transpose(const OpContext& oc) { return build(oc, true); }

bool conv_weight_plan(const OpContext& oc, bool transpose, WeightPlan& wp) {
  ConvPlan p;
  if (!plan_conv(oc, transpose, p)) return false;
  wp.plain = strided_md(p.wd, p.ws);
  wp.target = p.pd.query_md(dnnl::query::weights_md);
  wp.scale = 1.0f;
  return true;
}

}  // namespace shoal::cpu::onednn
