// Inference BatchNormalization as a per-channel affine map, y = act(x * s + b)
// with s = scale / sqrt(var + eps) and b = B - mean * s folded when the kernel
// is made, over plain or channels-last operands (they may differ). The
// compiler folds most BatchNormalizations into the Conv before them; this
// runs the rest (pre-activation blocks such as DenseNet's, after a Concat).
#include "backends/cpu/native/kernel.hpp"
#include "reference/plans.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::native {

KernelPtr channel_affine_kernel(const OpContext& oc, int parts, const UnaryOp& act,
                                std::vector<float> scale_shift) {
  const program::TensorDesc& y = oc.out(0);
  const int64_t c = y.shape[1];
  auto sb = std::make_shared<const std::vector<float>>(std::move(scale_shift));
  struct Part {
    Nest nest;
    int64_t yoff, soff;  // y's element offset and first channel
  };
  std::vector<Part> ps;
  const std::vector<int64_t> ys = layout_strides(y);
  std::vector<int64_t> ss(y.shape.size(), 0);
  ss[1] = 1;  // scale and shift follow the channel dim
  int64_t at = 0;
  for (int i = 0; i < parts; ++i) {
    const program::TensorDesc* t = oc.in(i);
    Part p{make_nest(t->shape, {ys, layout_strides(*t), ss}), at * ys[1], at};
    if (p.nest.dims == 0 || p.nest.stride[0][size_t(p.nest.dims - 1)] != 1) return nullptr;
    ps.push_back(p);
    at += t->shape[1];
  }
  return std::make_unique<NativeKernel>(
      [ps, act, sb, c](int threads, std::span<void* const> in, std::span<void* const> out) {
        const Loops& L = loops();
        float* yp = f32(out[0]);
        const float* s = sb->data();
        for (size_t i = 0; i < ps.size(); ++i) {
          const Part& p = ps[i];
          const float* xp = cf32(in[i]);
          const size_t last = size_t(p.nest.dims - 1);
          const int64_t sx = p.nest.stride[1][last], sc = p.nest.stride[2][last];
          for_rows(p.nest, threads, 0, [&](const int64_t* off, int64_t n) {
            const float* sr = s + p.soff + off[2];
            L.affine(act, xp + off[1], sx, sr, sr + c, sc, yp + p.yoff + off[0], n);
          });
        }
      });
}

KernelPtr make_batchnorm(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  if (oc.num_inputs() != 5 || oc.ins.outputs.size() != 1 || !dense_f32(x) || !dense_f32(&y))
    return nullptr;
  if (oc.ins.attrs.i("training_mode", 0) != 0 || x->shape.size() < 2) return nullptr;
  UnaryOp act;
  if (!fused_unary(oc.ins.attrs, act)) return nullptr;
  const int64_t c = x->shape[1];
  const float* p[4];  // scale, B, mean, var: constants of C values
  for (int i = 0; i < 4; ++i) {
    const program::TensorDesc* t = oc.in(i + 1);
    if (!t || !onednn::is_weight(*t) || t->dtype != DType::f32) return nullptr;
    if (t->shape != Shape{c})
      throw Error(ErrorKind::invalid_argument, oc.what() + ": '" + t->name + "' has shape " +
                                                   shape_str(t->shape) + ", expected [" +
                                                   std::to_string(c) + "]");
    p[i] = static_cast<const float*>(oc.weight_data(*t));
  }
  if (y.shape != x->shape)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", input " +
                                                 shape_str(x->shape));
  if (shape_numel(y.shape) == 0) return nullptr;
  std::vector<float> sb(size_t(2 * c));  // c scales, then c shifts
  ref::batchnorm_affine(p[0], p[1], p[2], p[3], oc.ins.attrs.f("epsilon", 1e-5f), c, sb.data(),
                        sb.data() + c);
  return channel_affine_kernel(oc, 1, act, std::move(sb));
}

}  // namespace shoal::cpu::native
