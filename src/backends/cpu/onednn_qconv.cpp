// QLinearConv as a oneDNN int8 convolution: uint8/int8 source, int8 weights
// (symmetric: zero points 0), int32 bias, per-output-channel output scales
// x_scale * w_scale[m] / y_scale, the source and destination zero points, a
// fused activation, and a uint8/int8 destination: requantized in the
// primitive, no float32 round trip between int8 layers (with a destination
// zero point, a float32 pass: see below). The compiler's
// fuse_qdq pass makes such instructions from QDQ models. Matches the
// reference kernel (reference/nn_qlinear.cpp) exactly.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "backends/cpu/onednn_quant.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {

namespace {

/// What the kernel and the compiler's weight prepacking both derive from the
/// instruction, up to the primitive descriptor (so the packed layout is the
/// one the kernel wants).
struct QConvPlan {
  dims xd, yd, wd;
  bool requantize = false;
  int32_t y_zero_point = 0;
  dnnl::convolution_forward::primitive_desc pd;
};

/// Fills `out`; false when oneDNN does not take this convolution.
bool plan_qconv(const OpContext& oc, QConvPlan& out) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc* w = oc.in(3);
  const program::TensorDesc* b = oc.in(8);
  if (!x || !w || !is_int8_weight(*w) || oc.ins.outputs.size() != 1) return false;
  const program::TensorDesc& y = oc.out(0);
  auto is8 = [](const program::TensorDesc& t) {
    return (t.dtype == DType::u8 || t.dtype == DType::i8) &&
           (t.layout == program::Layout::plain || t.layout == program::Layout::channels_last);
  };
  if (!is8(*x) || !is8(y)) return false;
  if (b && (!is_weight(*b) || b->dtype != DType::i32 || b->layout != program::Layout::plain))
    return false;
  const size_t rank = x->shape.size();
  if (rank < 3 || rank > 5 || w->shape.size() != rank) return false;
  std::vector<float> xs, ws, ys;
  std::vector<int32_t> xz, wz, yz;
  if (!read_floats(oc, oc.in(1), xs) || !read_floats(oc, oc.in(4), ws) ||
      !read_floats(oc, oc.in(6), ys) || !read_ints(oc, oc.in(2), xz) ||
      !read_ints(oc, oc.in(5), wz) || !read_ints(oc, oc.in(7), yz))
    return false;
  if (xs.size() != 1 || ys.size() != 1 || xz.size() != 1 || yz.size() != 1) return false;
  // oneDNN adds the destination zero point before rounding, ONNX after (a
  // value halfway between two integers would round the other way with an
  // odd zero point): with one (uint8 outputs that can be negative), the
  // primitive writes its scaled float32 results and a loop requantizes them.
  const bool requantize = yz[0] != 0;
  for (int32_t z : wz)
    if (z != 0) return false;  // asymmetric weights: the reference kernel

  const Attrs& a = oc.ins.attrs;
  ref::WindowGeometry g = ref::conv_geometry(a, x->shape, w->shape);
  if (g.group < 1 || g.c_in % g.group || g.c_out % g.group) return false;
  if (ws.size() != 1 && int64_t(ws.size()) != g.c_out) return false;
  const dims yd = window_out_dims(oc, g);

  // The scales exactly as the reference kernel computes them (float32).
  std::vector<float> scales(size_t(g.c_out));
  for (int64_t m = 0; m < g.c_out; ++m)
    scales[size_t(m)] = xs[0] * ws[ws.size() == 1 ? 0 : size_t(m)] / ys[0];
  dnnl::primitive_attr attr = base_attr();
  attr.set_output_scales(1 << 1, scales);
  if (xz[0] != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {xz[0]});
  dnnl::post_ops po;
  if (!append_activation(po, ref::activation_from_attrs(a))) return false;
  attr.set_post_ops(po);

  int64_t oc_g = g.c_out / g.group, ic_g = g.c_in / g.group;
  dims wd = g.group > 1 ? dims{g.group, oc_g, ic_g} : dims{g.c_out, ic_g};
  wd.insert(wd.end(), g.kernel.begin(), g.kernel.end());
  const dims xd = to_dims(x->shape);
  dims strides(g.stride.begin(), g.stride.end()), dil, pl(g.pad_begin.begin(), g.pad_begin.end()),
      pr(g.pad_end.begin(), g.pad_end.end());
  for (int64_t d : g.dilation) dil.push_back(d - 1);
  const dt xt = dnnl_type(x->dtype), yt = requantize ? dt::f32 : dnnl_type(y.dtype);
  auto xmd = dnnl::memory::desc(xd, xt, tag::any);
  auto wmd = dnnl::memory::desc(wd, dt::s8, tag::any);
  auto ymd = dnnl::memory::desc(yd, yt, tag::any);
  auto bmd = dnnl::memory::desc({g.c_out}, dt::s32, tag::a);
  const auto fwd = dnnl::prop_kind::forward_inference;
  const auto alg = dnnl::algorithm::convolution_direct;
  auto d = b ? dnnl::convolution_forward::desc(fwd, alg, xmd, wmd, bmd, ymd, strides, dil, pl, pr)
             : dnnl::convolution_forward::desc(fwd, alg, xmd, wmd, ymd, strides, dil, pl, pr);
  dnnl::convolution_forward::primitive_desc pd(d, attr, oc.ctx.engine);
  // AMX's int8 1x1 kernels are slow with few input channels: MobileNetV2's
  // 16 -> 96 expansion on 112x112 took 0.245 ms there and 0.199 ms on the
  // VNNI kernel. Such layers take oneDNN's next implementation without AMX.
  bool pointwise = g.group == 1 && ic_g <= 16;
  for (int64_t k : g.kernel) pointwise = pointwise && k == 1;
  if (pointwise && std::string(pd.impl_info_str()).find("amx") != std::string::npos) {
    dnnl::convolution_forward::primitive_desc other = pd;  // walks while `d` lives
    while (other.next_impl())
      if (std::string(other.impl_info_str()).find("amx") == std::string::npos) {
        pd = other;
        break;
      }
  }
  out = QConvPlan{xd, yd, wd, requantize, yz[0], pd};
  return true;
}

}  // namespace

KernelPtr make_qlinear_conv(const OpContext& oc) {
  QConvPlan p;
  if (!plan_qconv(oc, p)) return nullptr;
  const program::TensorDesc *x = oc.in(0), *w = oc.in(3), *b = oc.in(8);
  const program::TensorDesc& y = oc.out(0);
  const dims &xd = p.xd, &yd = p.yd, &wd = p.wd;
  const bool requantize = p.requantize;
  const auto& pd = p.pd;
  auto bmd = dnnl::memory::desc({yd[1]}, dt::s32, tag::a);

  auto k = std::make_unique<DnnlKernel>(oc);
  DnnlKernel::Args args;
  const dnnl::memory::desc xu = typed_md(*x, xd);
  if (pd.src_desc() == xu) {
    args[DNNL_ARG_SRC] = k->bind_input(0, xu);
  } else {
    args[DNNL_ARG_SRC] = k->temp(pd.src_desc());
    k->add_reorder(k->bind_input(0, xu), args[DNNL_ARG_SRC]);
  }
  auto packed = packed_weight(oc, *w, int8_plain(wd), pd.weights_desc(), "qconv");
  args[DNNL_ARG_WEIGHTS] = *packed;
  k->keep(packed);
  if (b) args[DNNL_ARG_BIAS] = k->operand(oc, 8, bmd);
  const dnnl::memory::desc yu = requantize ? user_md(y, yd) : typed_md(y, yd);
  const bool dst_user = pd.dst_desc() == yu;
  dnnl::memory dst = dst_user ? k->bind_output(0, yu) : k->temp(pd.dst_desc());
  args[DNNL_ARG_DST] = dst;
  k->add(dnnl::convolution_forward(pd), pd, std::move(args));
  if (!dst_user) k->add_reorder(dst, k->bind_output(0, yu));
  k->set_impl(pd);
  if (!requantize) return k;
  return requantize_after(std::move(k), y.dtype, p.y_zero_point, shape_numel(y.shape));
}

bool qconv_weight_plan(const OpContext& oc, WeightPlan& wp) {
  QConvPlan p;
  if (!plan_qconv(oc, p)) return false;
  wp = WeightPlan{int8_plain(p.wd), p.pd.weights_desc(), 1.0f};
  return true;
}

}  // namespace shoal::cpu::onednn
