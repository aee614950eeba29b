// MaxPool, AveragePool, GlobalAveragePool and GlobalMaxPool as oneDNN
// pooling_v2 (which has dilations), directly on the plain layout; MaxPool
// also of uint8/int8 maps (int8 QDQ models, passes::fuse_qdq_lookup).
#include "backends/cpu/onednn_common.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {
namespace {

KernelPtr build(const OpContext& oc, dnnl::algorithm alg, const ref::WindowGeometry& g) {
  dims yd = window_out_dims(oc, g);
  dims xd = to_dims(oc.in(0)->shape);
  dims strides(g.stride.begin(), g.stride.end());
  dims kernel(g.kernel.begin(), g.kernel.end());
  dims dil, pl(g.pad_begin.begin(), g.pad_begin.end()), pr;
  for (int64_t d : g.dilation) dil.push_back(d - 1);  // oneDNN: 0 = dense
  for (int i = 0; i < g.spatial(); ++i) {
    int64_t span = (g.kernel[i] - 1) * g.dilation[i] + 1;
    int64_t end = g.pad_end[i];
    // oneDNN's output size is floor((in + pl + pr - span) / s) + 1; ceil_mode
    // needs a larger end padding, which oneDNN ignores like padding.
    if ((g.in[i] + pl[i] + end - span) / g.stride[i] + 1 != g.out[i]) {
      int64_t need = (g.out[i] - 1) * g.stride[i] + span - g.in[i] - pl[i];
      // Averages counting padding would count the extra padding too, where
      // ONNX counts only the explicit pads.
      if (need > end && alg == dnnl::algorithm::pooling_avg_include_padding) return nullptr;
      end = need;
    }
    pr.push_back(end);
  }
  dnnl::memory::desc xu = typed_md(*oc.in(0), xd), yu = typed_md(oc.out(0), yd);
  // An output of spatial size 1 ([N,C,1,1]) is the same bytes in either
  // layout: describe it like the source so oneDNN keeps its fast kernels.
  bool unit = true;
  for (int64_t o : g.out) unit = unit && o == 1;
  if (unit && oc.in(0)->layout == program::Layout::channels_last) {
    program::TensorDesc y = oc.out(0);
    y.layout = program::Layout::channels_last;
    yu = typed_md(y, yd);
  }
  dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_inference, alg, xu, yu, strides, kernel,
                                   dil, pl, pr);
  dnnl::pooling_v2_forward::primitive_desc pd(d, base_attr(), oc.ctx.engine);
  auto k = std::make_unique<DnnlKernel>(oc);
  k->add(dnnl::pooling_v2_forward(pd), pd,
         {{DNNL_ARG_SRC, k->operand(oc, 0, xu)}, {DNNL_ARG_DST, k->bind_output(0, yu)}});
  k->set_impl(pd);
  return k;
}

}  // namespace

KernelPtr make_pool(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!x || oc.num_inputs() != 1 || oc.ins.outputs.size() != 1)
    return nullptr;  // MaxPool's Indices output is not for oneDNN
  if (x->shape.size() < 3 || x->shape.size() > 5) return nullptr;
  const Attrs& a = oc.ins.attrs;
  dnnl::algorithm alg = dnnl::algorithm::pooling_max;
  if (oc.ins.op == "AveragePool") {
    alg = a.i("count_include_pad", 0) ? dnnl::algorithm::pooling_avg_include_padding
                                      : dnnl::algorithm::pooling_avg_exclude_padding;
  } else if (a.i("storage_order", 0) != 0) {
    return nullptr;
  }
  return build(oc, alg, ref::pool_geometry(a, x->shape));
}

KernelPtr make_global_pool(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!x || oc.num_inputs() != 1 || oc.ins.outputs.size() != 1) return nullptr;
  size_t rank = x->shape.size();
  if (rank < 3 || rank > 5) return nullptr;
  ref::WindowGeometry g;
  g.n = x->shape[0];
  g.c_in = g.c_out = x->shape[1];
  for (size_t i = 2; i < rank; ++i) {
    g.in.push_back(x->shape[i]);
    g.out.push_back(1);
    g.kernel.push_back(x->shape[i]);
    g.stride.push_back(1);
    g.dilation.push_back(1);
    g.pad_begin.push_back(0);
    g.pad_end.push_back(0);
  }
  auto alg =
      oc.ins.op == "GlobalMaxPool" ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg;
  return build(oc, alg, g);
}

}  // namespace shoal::cpu::onednn
