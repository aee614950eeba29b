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

#include "backends/cpu/omp_team.hpp"
#include "backends/cpu/onednn_common.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {
namespace {

/// Reads a constant scalar-or-vector operand as floats / ints; false when not
/// a constant of the expected type.
bool read_floats(const OpContext& oc, const program::TensorDesc* t, std::vector<float>& v) {
  if (!t || !is_weight(*t) || t->dtype != DType::f32 || t->layout != program::Layout::plain)
    return false;
  v.resize(size_t(shape_numel(t->shape)));
  std::memcpy(v.data(), oc.weight_data(*t), v.size() * sizeof(float));
  return !v.empty();
}
bool read_ints(const OpContext& oc, const program::TensorDesc* t, std::vector<int32_t>& v) {
  if (!t || !is_weight(*t) || t->layout != program::Layout::plain) return false;
  const int64_t n = shape_numel(t->shape);
  const void* p = oc.weight_data(*t);
  v.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (t->dtype) {
      case DType::u8:
        v[size_t(i)] = static_cast<const uint8_t*>(p)[i];
        break;
      case DType::i8:
        v[size_t(i)] = static_cast<const int8_t*>(p)[i];
        break;
      default:
        return false;
    }
  }
  return !v.empty();
}

/// A oneDNN kernel writing scaled float32 results into a buffer of its own,
/// then y = saturate(round_half_even(v) + zero_point) into the output (in
/// the same layout), as the reference kernel rounds.
class RequantizeKernel final : public device::Kernel {
 public:
  RequantizeKernel(std::unique_ptr<DnnlKernel> conv, DType type, int32_t zp, int64_t n)
      : conv_(std::move(conv)), type_(type), zp_(zp), buf_(size_t(n)) {}
  void execute(device::ExecContext& ctx, std::span<void* const> in,
               std::span<void* const> out) override {
    void* tmp[1] = {buf_.data()};
    conv_->execute(ctx, in, tmp);
    const int threads = team_threads(ctx.threads);
    if (type_ == DType::u8)
      store(static_cast<uint8_t*>(out[0]), threads);
    else
      store(static_cast<int8_t*>(out[0]), threads);
  }
  std::string impl() const override { return conv_->impl(); }
  std::string precision() const override { return conv_->precision(); }

 private:
  template <class Q>
  void store(Q* y, int threads) const {
    const float lo = float(std::numeric_limits<Q>::min()) - float(zp_);
    const float hi = float(std::numeric_limits<Q>::max()) - float(zp_);
    const float* v = buf_.data();
    const int64_t n = int64_t(buf_.size());
    const int32_t zp = zp_;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      float t = std::min(hi, std::max(lo, v[i]));
      t = (t + 12582912.0f) - 12582912.0f;  // round half to even (|t| <= 2^22)
      y[i] = Q(int32_t(t) + zp);
    }
  }
  std::unique_ptr<DnnlKernel> conv_;
  DType type_;
  int32_t zp_;
  std::vector<float> buf_;
};

}  // namespace

KernelPtr make_qlinear_conv(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc* w = oc.in(3);
  const program::TensorDesc* b = oc.in(8);
  if (!x || !w || !is_weight(*w) || oc.ins.outputs.size() != 1) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  auto is8 = [](const program::TensorDesc& t) {
    return (t.dtype == DType::u8 || t.dtype == DType::i8) &&
           (t.layout == program::Layout::plain || t.layout == program::Layout::channels_last);
  };
  if (!is8(*x) || !is8(y) || w->dtype != DType::i8 || w->layout != program::Layout::plain)
    return nullptr;
  if (b && (!is_weight(*b) || b->dtype != DType::i32 || b->layout != program::Layout::plain))
    return nullptr;
  const size_t rank = x->shape.size();
  if (rank < 3 || rank > 5 || w->shape.size() != rank) return nullptr;
  std::vector<float> xs, ws, ys;
  std::vector<int32_t> xz, wz, yz;
  if (!read_floats(oc, oc.in(1), xs) || !read_floats(oc, oc.in(4), ws) ||
      !read_floats(oc, oc.in(6), ys) || !read_ints(oc, oc.in(2), xz) ||
      !read_ints(oc, oc.in(5), wz) || !read_ints(oc, oc.in(7), yz))
    return nullptr;
  if (xs.size() != 1 || ys.size() != 1 || xz.size() != 1 || yz.size() != 1) return nullptr;
  // oneDNN adds the destination zero point before rounding, ONNX after (a
  // value halfway between two integers would round the other way with an
  // odd zero point): with one (uint8 outputs that can be negative), the
  // primitive writes its scaled float32 results and a loop requantizes them.
  const bool requantize = yz[0] != 0;
  for (int32_t z : wz)
    if (z != 0) return nullptr;  // asymmetric weights: the reference kernel

  const Attrs& a = oc.ins.attrs;
  ref::WindowGeometry g = ref::conv_geometry(a, x->shape, w->shape);
  if (g.group < 1 || g.c_in % g.group || g.c_out % g.group) return nullptr;
  if (ws.size() != 1 && int64_t(ws.size()) != g.c_out) return nullptr;
  const dims yd = window_out_dims(oc, g);

  // The scales exactly as the reference kernel computes them (float32).
  std::vector<float> scales(size_t(g.c_out));
  for (int64_t m = 0; m < g.c_out; ++m)
    scales[size_t(m)] = xs[0] * ws[ws.size() == 1 ? 0 : size_t(m)] / ys[0];
  dnnl::primitive_attr attr = base_attr();
  attr.set_output_scales(1 << 1, scales);
  if (xz[0] != 0) attr.set_zero_points(DNNL_ARG_SRC, 0, {xz[0]});
  dnnl::post_ops po;
  if (!append_activation(po, ref::activation_from_attrs(a))) return nullptr;
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

  auto k = std::make_unique<DnnlKernel>(oc);
  DnnlKernel::Args args;
  const dnnl::memory::desc xu = typed_md(*x, xd);
  if (pd.src_desc() == xu) {
    args[DNNL_ARG_SRC] = k->bind_input(0, xu);
  } else {
    args[DNNL_ARG_SRC] = k->temp(pd.src_desc());
    k->add_reorder(k->bind_input(0, xu), args[DNNL_ARG_SRC]);
  }
  const dnnl::memory::desc wplain(wd, dt::s8, plain_strides(wd));
  auto packed = packed_weight(oc, *w, wplain, pd.weights_desc(), "qconv");
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
  return std::make_unique<RequantizeKernel>(std::move(k), y.dtype, yz[0], shape_numel(y.shape));
}

}  // namespace shoal::cpu::onednn
