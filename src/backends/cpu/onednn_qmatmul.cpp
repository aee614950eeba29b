// shoal.QMatMul (a quantized Gemm or MatMul of a QDQ model, passes::fuse_qdq),
// and ONNX's QLinearMatMul (the same first eight operands, always requantized)
// with a constant int8 b [K, N], as a oneDNN int8 matmul: a [M, K] uint8/int8 with its zero point,
// the constant int8 weights [K, N] packed once, an int32 bias, per-column output scales, then
// either a float32 result (scale a_scale * b_scale[n]: a classifier's logits) or a requantized
// uint8/int8 one (scale also divided by y_scale; with a destination zero point, a float32 pass as
// in QLinearConv); a float32 result may add a float32 post_bias [N] (a binary post-op). Matches
// the reference kernel (reference/nn_qlinear.cpp) exactly.
#include "backends/cpu/onednn_quant.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {

namespace {

dnnl::memory::desc post_bias_md(int64_t n) {
  return dnnl::memory::desc({1, n}, dt::f32, plain_strides({1, n}));
}

/// What the kernel and the compiler's weight prepacking both derive from the
/// instruction, up to the primitive descriptor.
struct QMatmulPlan {
  dims wd;
  dnnl::memory::desc amd, ymd, bmd;
  bool requantize = false;
  int32_t y_zero_point = 0;
  dnnl::matmul::primitive_desc pd;
};

/// Fills `out`; false when oneDNN does not take this matmul.
bool plan_qmatmul(const OpContext& oc, QMatmulPlan& out) {
  const program::TensorDesc* a = oc.in(0);
  const program::TensorDesc* w = oc.in(3);
  const program::TensorDesc* b = oc.in(8);
  if (!a || !w || !is_int8_weight(*w) || oc.ins.outputs.size() != 1) return false;
  const program::TensorDesc& y = oc.out(0);
  const bool to_float = !oc.in(6);
  auto is8 = [](DType t) { return t == DType::u8 || t == DType::i8; };
  const auto plain = program::Layout::plain;
  if (!is8(a->dtype) || a->layout != plain || w->shape.size() != 2 || y.layout != plain ||
      (to_float ? y.dtype != DType::f32 : !is8(y.dtype)))
    return false;
  if (b && (!is_weight(*b) || b->dtype != DType::i32 || b->layout != plain)) return false;
  const program::TensorDesc* post = oc.in(9);
  if (post &&
      (!to_float || !is_weight(*post) || post->dtype != DType::f32 || post->layout != plain))
    return false;
  const int64_t k = w->shape[0], n = w->shape[1];
  if (a->shape.empty() || a->shape.back() != k || shape_numel(y.shape) % n) return false;
  const int64_t m = shape_numel(a->shape) / k;
  if (shape_numel(y.shape) != m * n) return false;

  std::vector<float> as, ws, ys{1.0f};
  std::vector<int32_t> az, wz, yz{0};
  if (!read_floats(oc, oc.in(1), as) || !read_floats(oc, oc.in(4), ws) ||
      !read_ints(oc, oc.in(2), az) || !read_ints(oc, oc.in(5), wz))
    return false;
  if (!to_float && (!read_floats(oc, oc.in(6), ys) || !read_ints(oc, oc.in(7), yz))) return false;
  if (as.size() != 1 || az.size() != 1 || ys.size() != 1 || yz.size() != 1) return false;
  if (ws.size() != 1 && int64_t(ws.size()) != n) return false;
  for (int32_t z : wz)
    if (z != 0) return false;  // asymmetric weights: the reference kernel
  const bool requantize = yz[0] != 0;

  // The scales as the reference kernel computes them (float32).
  std::vector<float> scales(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const float s = as[0] * ws[ws.size() == 1 ? 0 : size_t(j)];
    scales[size_t(j)] = to_float ? s : s / ys[0];
  }
  dnnl::primitive_attr attr = base_attr();
  attr.set_output_scales(1 << 1, scales);
  if (az[0] != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {az[0]});
  dnnl::post_ops po;
  // The float bias Add that followed (post_bias), then the activation.
  if (post) po.append_binary(dnnl::algorithm::binary_add, post_bias_md(n));
  if (!append_activation(po, ref::activation_from_attrs(oc.ins.attrs))) return false;
  attr.set_post_ops(po);

  const dims ad{m, k}, wd{k, n}, yd{m, n};
  const dt yt = to_float || requantize ? dt::f32 : dnnl_type(y.dtype);
  auto amd = dnnl::memory::desc(ad, dnnl_type(a->dtype), plain_strides(ad));
  auto wmd = dnnl::memory::desc(wd, dt::s8, tag::any);
  auto ymd = dnnl::memory::desc(yd, yt, plain_strides(yd));
  auto bmd = dnnl::memory::desc({1, n}, dt::s32, plain_strides({1, n}));
  auto d = b ? dnnl::matmul::desc(amd, wmd, bmd, ymd) : dnnl::matmul::desc(amd, wmd, ymd);
  out = QMatmulPlan{
      wd, amd, ymd, bmd, requantize, yz[0], dnnl::matmul::primitive_desc(d, attr, oc.ctx.engine)};
  return true;
}

}  // namespace

KernelPtr make_qmatmul(const OpContext& oc) {
  QMatmulPlan p;
  if (!plan_qmatmul(oc, p)) return nullptr;
  auto kern = std::make_unique<DnnlKernel>(oc);
  DnnlKernel::Args args;
  args[DNNL_ARG_SRC] = kern->bind_input(0, p.amd);
  auto packed = packed_weight(oc, *oc.in(3), int8_plain(p.wd), p.pd.weights_desc(), "qmatmul");
  args[DNNL_ARG_WEIGHTS] = *packed;
  kern->keep(packed);
  if (oc.in(8)) args[DNNL_ARG_BIAS] = kern->operand(oc, 8, p.bmd);
  if (oc.in(9))
    args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] =
        kern->operand(oc, 9, post_bias_md(p.wd[1]));
  args[DNNL_ARG_DST] = kern->bind_output(0, p.ymd);
  kern->add(dnnl::matmul(p.pd), p.pd, std::move(args));
  kern->set_impl(p.pd);
  if (!p.requantize) return kern;
  const program::TensorDesc& y = oc.out(0);
  return requantize_after(std::move(kern), y.dtype, p.y_zero_point, shape_numel(y.shape));
}

bool qmatmul_weight_plan(const OpContext& oc, WeightPlan& wp) {
  QMatmulPlan p;
  if (!plan_qmatmul(oc, p)) return false;
  wp = WeightPlan{int8_plain(p.wd), p.pd.weights_desc(), 1.0f};
  return true;
}

}  // namespace shoal::cpu::onednn
