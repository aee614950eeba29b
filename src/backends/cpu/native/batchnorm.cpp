// Inference BatchNormalization as a per-channel affine map, y = act(x * s + b)
// with s = scale / sqrt(var + eps) and b = B - mean * s folded when the kernel
// is made, over plain or channels-last operands (they may differ). The
// compiler folds most BatchNormalizations into the Conv before them; this
// runs the rest (pre-activation blocks such as DenseNet's, after a Concat).
#include <cmath>

#include "backends/cpu/native/kernel.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::native {

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
  const double eps = oc.ins.attrs.f("epsilon", 1e-5f);
  // s and b side by side: one buffer, b at offset c.
  auto sb = std::make_shared<std::vector<float>>(size_t(2 * c));
  for (int64_t k = 0; k < c; ++k) {
    const double s = double(p[0][k]) / std::sqrt(double(p[3][k]) + eps);
    (*sb)[size_t(k)] = float(s);
    (*sb)[size_t(c + k)] = float(double(p[1][k]) - double(p[2][k]) * s);
  }
  std::vector<int64_t> ss(y.shape.size(), 0);
  ss[1] = 1;  // the channel dim
  const Nest nest = make_nest(y.shape, {layout_strides(y), layout_strides(*x), ss});
  if (nest.dims == 0) return nullptr;
  return std::make_unique<NativeKernel>(
      [nest, act, sb, c](int threads, std::span<void* const> in, std::span<void* const> out) {
        const Loops& L = loops();
        const float* xp = cf32(in[0]);
        float* yp = f32(out[0]);
        const float* s = sb->data();
        const size_t last = size_t(nest.dims - 1);
        const int64_t sx = nest.stride[1][last], sc = nest.stride[2][last];
        for_rows(nest, threads, 0, [&](const int64_t* off, int64_t n) {
          L.affine(act, xp + off[1], sx, s + off[2], s + c + off[2], sc, yp + off[0], n);
        });
      });
}

}  // namespace shoal::cpu::native
