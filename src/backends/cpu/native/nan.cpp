// NaN-faithful steps for kernels whose fast path loses NaN (see
// ExecContext::nonfinite): a fused activation applied on its own, and the
// NaN a max pooling skipped put back.
#include <array>
#include <cmath>

#include "backends/cpu/native/kernel.hpp"
#include "backends/cpu/native/native.hpp"

namespace shoal::cpu::native {

bool has_fused_activation(const Attrs& a) {
  UnaryOp f;
  return fused_unary(a, f) && f.kind != Unary::copy;
}

bool apply_fused_activation(const Attrs& a, float* y, int64_t n) {
  UnaryOp f;
  if (!fused_unary(a, f) || f.kind == Unary::copy) return false;
  loops().unary(f, y, 1, y, n);
  return true;
}

void maxpool_nan_fixup(const ref::WindowGeometry& g, const program::TensorDesc& x,
                       const program::TensorDesc& y, const float* xp, float* yp) {
  constexpr int kSpatial = 3;
  const int sp = g.spatial();
  if (sp > kSpatial || x.shape.size() != size_t(sp + 2)) return;
  const std::vector<int64_t> xs = layout_strides(x), ys = layout_strides(y);
  // Padded to three spatial dims of size 1.
  std::array<int64_t, kSpatial> in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, d{1, 1, 1},
      pb{0, 0, 0}, xst{0, 0, 0}, yst{0, 0, 0};
  for (int i = 0; i < sp; ++i) {
    in[size_t(i)] = g.in[size_t(i)];
    out[size_t(i)] = g.out[size_t(i)];
    k[size_t(i)] = g.kernel[size_t(i)];
    s[size_t(i)] = g.stride[size_t(i)];
    d[size_t(i)] = g.dilation[size_t(i)];
    pb[size_t(i)] = g.pad_begin[size_t(i)];
    xst[size_t(i)] = xs[size_t(i + 2)];
    yst[size_t(i)] = ys[size_t(i + 2)];
  }
  // The outputs along one dim whose window holds input position i.
  auto outputs_of = [&](size_t dim, int64_t i, std::vector<int64_t>& os) {
    os.clear();
    for (int64_t t = 0; t < k[dim]; ++t) {
      const int64_t num = i + pb[dim] - t * d[dim];
      if (num >= 0 && num % s[dim] == 0 && num / s[dim] < out[dim]) os.push_back(num / s[dim]);
    }
  };
  std::array<std::vector<int64_t>, kSpatial> os;
  for (int64_t n = 0; n < x.shape[0]; ++n)
    for (int64_t c = 0; c < x.shape[1]; ++c)
      for (int64_t i0 = 0; i0 < in[0]; ++i0)
        for (int64_t i1 = 0; i1 < in[1]; ++i1)
          for (int64_t i2 = 0; i2 < in[2]; ++i2) {
            const float v = xp[n * xs[0] + c * xs[1] + i0 * xst[0] + i1 * xst[1] + i2 * xst[2]];
            if (!std::isnan(v)) continue;
            outputs_of(0, i0, os[0]);
            outputs_of(1, i1, os[1]);
            outputs_of(2, i2, os[2]);
            for (int64_t o0 : os[0])
              for (int64_t o1 : os[1])
                for (int64_t o2 : os[2])
                  yp[n * ys[0] + c * ys[1] + o0 * yst[0] + o1 * yst[1] + o2 * yst[2]] = v;
          }
}

}  // namespace shoal::cpu::native
