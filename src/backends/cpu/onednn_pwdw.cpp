// shoal.PointwiseDepthwise: a 1x1 convolution and the depthwise convolution
// that alone reads its output, as one kernel. With one channels-last sample
// it runs in bands of the depthwise's output rows: per band the 1x1 computes
// the expanded rows the band reads (those of the band before it again where
// windows overlap) into one workspace buffer, reused by every band so that it
// stays in L2, and the depthwise reads them there. Otherwise (stacks of
// samples, plain layouts) the pair runs whole through a workspace tensor.
// SiLU runs as the native loop after its primitive (onednn_epilogue.hpp),
// other activations as oneDNN post-ops.
#include <algorithm>

#include "backends/cpu/onednn_common.hpp"
#include "backends/cpu/onednn_epilogue.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {
namespace {

/// Expanded rows of one band: with the band's input rows and the
/// depthwise's output they stay in a core's L2 (2 MiB on the Xeon measured).
constexpr int64_t kBandBytes = 768 << 10;

/// An activation: as oneDNN post-ops, or (SiLU) by the native loop after the
/// primitive.
struct Act {
  dnnl::primitive_attr attr;
  bool native = false;
  native::UnaryOp f;
};

bool make_act(const Attrs& a, Act& out) {
  dnnl::post_ops po;
  out.native = native_activation(a, out.f);
  if (!out.native && !append_activation(po, ref::activation_from_attrs(a))) return false;
  out.attr = base_attr();
  out.attr.set_post_ops(po);
  return true;
}

/// Rows [out0, out1) of the depthwise's output read expanded rows [in0,
/// in1), padded by pad_begin and pad_end rows.
struct Band {
  int64_t out0, out1, in0, in1, pad_begin, pad_end;
};

class Builder {
 public:
  explicit Builder(const OpContext& oc) : oc_(oc), k_(std::make_unique<DnnlKernel>(oc)) {}

  KernelPtr build() {
    const program::TensorDesc *x = oc_.in(0), *w1 = oc_.in(1), *b1 = oc_.in(2), *w2 = oc_.in(3),
                              *b2 = oc_.in(4);
    if (!x || !w1 || !b1 || !w2 || !b2 || oc_.num_inputs() != 5) return nullptr;
    for (const auto* w : {w1, b1, w2, b2})
      if (!is_weight(*w) || w->layout != program::Layout::plain) return nullptr;
    if (x->shape.size() != 4 || oc_.ins.outputs.size() != 1) return nullptr;
    const program::TensorDesc& y = oc_.out(0);
    const Attrs pa = ref::pointwise_attrs(oc_.ins.attrs);
    gp_ = ref::conv_geometry(pa, x->shape, w1->shape);
    t_ = {gp_.n, gp_.c_out, gp_.out[0], gp_.out[1]};
    gd_ = ref::conv_geometry(oc_.ins.attrs, Shape(t_.begin(), t_.end()), w2->shape);
    if (gd_.group != gd_.c_in || gd_.c_out != gd_.c_in || gd_.c_in != gp_.c_out) return nullptr;
    if (window_out_dims(oc_, gd_).size() != 4) return nullptr;
    if (!make_act(pa, act1_) || !make_act(oc_.ins.attrs, act2_)) return nullptr;
    // A team threads each primitive over the whole pair: bands of one
    // sample are too small to share (EfficientNet-B0 on 2 threads ran 3% slower
    // banded).
    const bool banded = gp_.n == 1 && oc_.threads == 1 &&
                        x->layout == program::Layout::channels_last &&
                        y.layout == program::Layout::channels_last;
    std::vector<Band> bands = plan_bands(banded);
    size_t slot_bytes = 0;
    for (const Band& b : bands)
      slot_bytes =
          std::max(slot_bytes, size_t(t_[0] * t_[1] * (b.in1 - b.in0) * t_[3]) * sizeof(float));
    slot_ = k_->reserve_temp(slot_bytes);
    try {
      for (const Band& b : bands) add_band(b, banded);
    } catch (const dnnl::error&) {
      return nullptr;
    }
    k_->add_to_impl(" 1x1+depthwise" + (bands.size() > 1
                                            ? " in " + std::to_string(bands.size()) + " bands"
                                            : std::string()));
    return std::move(k_);
  }

 private:
  /// Bands of about kBandBytes of expanded rows (one band when not banded).
  std::vector<Band> plan_bands(bool banded) const {
    const int64_t height = gd_.out[0], s = gd_.stride[0], k = gd_.kernel[0];
    const int64_t row_bytes = t_[1] * t_[3] * int64_t(sizeof(float));
    int64_t rows = banded ? std::max<int64_t>(1, (kBandBytes / row_bytes - k) / s + 1) : height;
    rows = std::min(rows, height);
    std::vector<Band> out;
    for (int64_t r = 0; r < height; r += rows) {
      Band b;
      b.out0 = r;
      b.out1 = std::min(height, r + rows);
      const int64_t lo = b.out0 * s - gd_.pad_begin[0];
      const int64_t hi = (b.out1 - 1) * s - gd_.pad_begin[0] + (k - 1) * gd_.dilation[0] + 1;
      b.in0 = std::max<int64_t>(0, lo);
      b.in1 = std::min<int64_t>(t_[2], hi);
      b.pad_begin = b.in0 - lo;
      b.pad_end = hi - b.in1;
      out.push_back(b);
    }
    return out;
  }

  /// A channels-last operand as it is stored (bands read and write it in
  /// place); a plain one in the layout the primitive picks.
  static dnnl::memory::desc layout_md(const program::TensorDesc& t, const dims& d) {
    return t.layout == program::Layout::channels_last ? user_md(t, d) : any_md(d);
  }

  void add_band(const Band& b, bool banded) {
    const program::TensorDesc &x = *oc_.in(0), &y = oc_.out(0);
    const int64_t rows = b.in1 - b.in0, n = t_[0], m = t_[1], w = t_[3];
    const auto fwd = dnnl::prop_kind::forward_inference;
    const auto direct = dnnl::algorithm::convolution_direct;
    const dnnl::engine& eng = oc_.ctx.engine;
    // The 1x1 over input rows [in0, in1) into the expanded buffer (nhwc).
    const dims xd = {n, gp_.c_in, rows, w}, td = {n, m, rows, w};
    const dims yd = {n, m, b.out1 - b.out0, gd_.out[1]};
    const dnnl::memory::desc tmd(td, dt::f32, dnnl::memory::format_tag::acdb);
    const dnnl::memory::desc xu = user_md(x, xd), yu = user_md(y, yd);
    dnnl::convolution_forward::primitive_desc p1(
        dnnl::convolution_forward::desc(fwd, direct, layout_md(x, xd), any_md({m, gp_.c_in, 1, 1}),
                                        plain_md({m}), tmd, {1, 1}, {0, 0}, {0, 0}),
        act1_.attr, eng);
    const dims pl = {b.pad_begin, gd_.pad_begin[1]}, pr = {b.pad_end, gd_.pad_end[1]};
    const dims wd2 = {m, 1, 1, gd_.kernel[0], gd_.kernel[1]};
    dims dil;
    for (int64_t d : gd_.dilation) dil.push_back(d - 1);
    dnnl::convolution_forward::primitive_desc p2(
        dnnl::convolution_forward::desc(fwd, direct, tmd, any_md(wd2), plain_md({m}),
                                        layout_md(y, yd), {gd_.stride[0], gd_.stride[1]}, dil, pl,
                                        pr),
        act2_.attr, eng);
    const size_t x_off = banded ? size_t(b.in0 * w * gp_.c_in) * sizeof(float) : 0;
    const size_t y_off = banded ? size_t(b.out0 * gd_.out[1] * m) * sizeof(float) : 0;
    dnnl::memory t = k_->temp_at(tmd, slot_);
    // 1x1
    DnnlKernel::Args a1;
    dnnl::memory xm = k_->bind_input(0, xu, x_off);
    if (p1.src_desc() == xu) {
      a1[DNNL_ARG_SRC] = xm;
    } else {
      a1[DNNL_ARG_SRC] = k_->temp(p1.src_desc());
      k_->add_reorder(xm, a1[DNNL_ARG_SRC]);
    }
    auto pw1 = packed_weight(oc_, *oc_.in(1), plain_md({m, gp_.c_in, 1, 1}), p1.weights_desc(),
                             "pwdw.1x1");
    k_->keep(pw1);
    a1[DNNL_ARG_WEIGHTS] = *pw1;
    a1[DNNL_ARG_BIAS] = k_->operand(oc_, 2, plain_md({m}));
    a1[DNNL_ARG_DST] = t;
    k_->add(dnnl::primitive(p1), p1, std::move(a1));
    if (act1_.native) {
      Epilogue e(act1_.f);
      e.add_run(0, n * m * rows * w);
      k_->add_host(
          [t, e = std::move(e)](int threads, std::span<void* const>, std::span<void* const>) {
            e.apply(static_cast<float*>(t.get_data_handle()), threads);
          });
    }
    // depthwise
    DnnlKernel::Args a2;
    a2[DNNL_ARG_SRC] = t;
    auto pw2 = packed_weight(oc_, *oc_.in(3), plain_md(wd2), p2.weights_desc(), "pwdw.dw");
    k_->keep(pw2);
    a2[DNNL_ARG_WEIGHTS] = *pw2;
    a2[DNNL_ARG_BIAS] = k_->operand(oc_, 4, plain_md({m}));
    dnnl::memory ym = k_->bind_output(0, yu, y_off);
    const bool direct_out = p2.dst_desc() == yu;
    dnnl::memory dst = direct_out ? ym : k_->temp(p2.dst_desc());
    a2[DNNL_ARG_DST] = dst;
    k_->add(dnnl::primitive(p2), p2, std::move(a2));
    if (!direct_out) k_->add_reorder(dst, ym);
    k_->set_impl(p2);
    if (act2_.native) {
      Epilogue e(act2_.f);
      e.add_run(int64_t(y_off / sizeof(float)), shape_numel(Shape(yd.begin(), yd.end())));
      k_->add_host(
          [e = std::move(e)](int threads, std::span<void* const>, std::span<void* const> out) {
            e.apply(static_cast<float*>(out[0]), threads);
          });
    }
  }

  const OpContext& oc_;
  std::unique_ptr<DnnlKernel> k_;
  ref::WindowGeometry gp_, gd_;
  dims t_;  // the expanded tensor, N, M, H, W
  Act act1_, act2_;
  size_t slot_ = 0;
};

}  // namespace

KernelPtr make_pointwise_depthwise(const OpContext& oc) { return Builder(oc).build(); }

}  // namespace shoal::cpu::onednn
