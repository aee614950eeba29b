// LayerNormalization (opset 17): normalizes over the dims from 'axis' on.
#include <cmath>

#include "reference/nn_internal.hpp"

namespace shoal::ref::nn {
namespace {

/// Shape of the Mean / InvStdDev outputs: x's dims before the axis, 1 after.
Shape stat_shape(const Shape& x, int64_t axis) {
  Shape s = x;
  for (size_t d = size_t(axis); d < s.size(); ++d) s[d] = 1;
  return s;
}

void check_affine(const std::string& what, const Shape& t, const Shape& x, int64_t axis) {
  // Unidirectionally broadcastable to the normalized block x[axis:].
  const Shape block(x.begin() + axis, x.end());
  bool ok = t.size() <= block.size();
  for (size_t i = 0; ok && i < t.size(); ++i) {
    const int64_t b = block[block.size() - t.size() + i];
    ok = t[i] == b || t[i] == 1;
  }
  if (!ok)
    fail(ErrorKind::invalid_argument, "LayerNormalization: " + what + " has shape " + shape_str(t) +
                                          ", not broadcastable to the normalized " + "dims " +
                                          shape_str(block));
}

}  // namespace

void add_layernorm_ops(std::vector<OpSpec>& t) {
  OpSpec s = make_spec(
      "LayerNormalization", 17, 2, 3,
      "y = (x - mean) / sqrt(var + epsilon) * scale + bias over the dims from axis (-1); "
      "optional Mean and InvStdDev outputs",
      [](const Attrs& a, Infos in) -> std::vector<TypeShape> {
        const ValueInfo& x = need(in, 0, "LayerNormalization", "X");
        require_f32("LayerNormalization", "X", x);
        const ValueInfo& sc = need(in, 1, "LayerNormalization", "Scale");
        const int64_t axis =
            norm_axis("LayerNormalization", a.i("axis", -1), int64_t(x.shape.size()));
        check_affine("Scale", sc.shape, x.shape, axis);
        if (const ValueInfo* b = opt_input(in, 2)) check_affine("B", b->shape, x.shape, axis);
        const Shape st = stat_shape(x.shape, axis);
        return {{DType::f32, x.shape}, {DType::f32, st}, {DType::f32, st}};
      },
      [](const Attrs& a, Refs in, Refs out) {
        const Shape& s = in[0].shape;
        const int64_t axis = norm_axis("LayerNormalization", a.i("axis", -1), int64_t(s.size()));
        int64_t n = 1;
        for (size_t d = size_t(axis); d < s.size(); ++d) n *= s[d];
        const int64_t rows = n == 0 ? 0 : in[0].numel() / n;
        const double eps = a.f("epsilon", 1e-5f);
        // Scale and bias broadcast over the block (right-aligned).
        auto expand = [&](const TensorRef* t, double fill) {
          std::vector<double> v(size_t(n), fill);
          if (!t) return v;
          const Shape block(s.begin() + axis, s.end());
          const Shape ts = t->shape;
          const Shape bst = strides_of(block);
          Shape tst = strides_of(ts);
          const float* p = t->as<const float>();
          for (int64_t i = 0; i < n; ++i) {
            int64_t off = 0;
            for (size_t d = 0; d < ts.size(); ++d) {
              const size_t bd = block.size() - ts.size() + d;
              const int64_t idx = (i / bst[bd]) % block[bd];
              off += ts[d] == 1 ? 0 : idx * tst[d];
            }
            v[size_t(i)] = p[off];
          }
          return v;
        };
        const std::vector<double> g = expand(&in[1], 1.0), b = expand(opt_input(in, 2), 0.0);
        const float* x = in[0].as<const float>();
        float* y = out[0].as<float>();
        float* mean_out = out.size() > 1 && out[1].present() ? out[1].as<float>() : nullptr;
        float* inv_out = out.size() > 2 && out[2].present() ? out[2].as<float>() : nullptr;
        for (int64_t r = 0; r < rows; ++r) {
          const float* xr = x + r * n;
          double mean = 0, var = 0;
          for (int64_t i = 0; i < n; ++i) mean += xr[i];
          mean /= double(n);
          for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
          var /= double(n);
          const double inv = 1.0 / std::sqrt(var + eps);
          for (int64_t i = 0; i < n; ++i)
            y[r * n + i] = float((xr[i] - mean) * inv * g[size_t(i)] + b[size_t(i)]);
          if (mean_out) mean_out[r] = float(mean);
          if (inv_out) inv_out[r] = float(inv);
        }
      });
  s.num_outputs = -1;  // Y, and optionally Mean and InvStdDev
  t.push_back(std::move(s));
}

}  // namespace shoal::ref::nn
