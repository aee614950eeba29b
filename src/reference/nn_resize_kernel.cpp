// The Resize / Upsample kernel: each output coordinate is mapped to the input
// (coordinate_transformation_mode), then interpolated from its taps along
// each dim: 1 (nearest), 2 (linear) or 4 (cubic) input indices with weights,
// the N-D value being the sum over the tensor product of the dims' taps.
// Coordinates are computed in float, as onnxruntime does, so nearest
// rounding ties agree with it; cubic follows ONNX's reference (coefficients
// of Keys' kernel with cubic_coeff_a, edge padding, exclude_outside
// renormalizing).
#include <algorithm>
#include <cmath>

#include "reference/nn_resize.hpp"

namespace shoal::ref::nn {
namespace {

// Output coordinate -> input coordinate along one dim. ONNX takes the
// resized length as in_len * scale, which need not be an integer (it is
// out_len when the output size was given, not the scales).
float original_coord(const ResizePlan& p, size_t d, float xo, int64_t in_len, int64_t out_len) {
  const std::string& coord = p.coord;
  const float scale = p.scales[d];
  if (coord == "asymmetric") return xo / scale;
  if (coord == "half_pixel") return (xo + 0.5f) / scale - 0.5f;
  if (coord == "pytorch_half_pixel") return out_len > 1 ? (xo + 0.5f) / scale - 0.5f : 0.0f;
  if (coord == "align_corners")
    return out_len == 1 ? 0.0f : xo * float(in_len - 1) / (scale * float(in_len) - 1.0f);
  if (coord == "tf_half_pixel_for_nn") return (xo + 0.5f) / scale;
  if (coord == "tf_crop_and_resize") {
    const float start = p.roi_start[d], end = p.roi_end[d], span = float(in_len - 1);
    const float resized = scale * float(in_len);
    return resized > 1.0f ? start * span + xo * (end - start) * span / (resized - 1.0f)
                          : 0.5f * (start + end) * span;
  }
  // half_pixel_symmetric
  float adjustment = float(out_len) / (scale * float(in_len));
  float center = float(in_len) / 2.0f;
  float offset = center * (1.0f - adjustment);
  return offset + (xo + 0.5f) / scale - 0.5f;
}

int64_t nearest_index(const std::string& mode, float v, float scale) {
  if (mode == "simple")  // onnxruntime's rule for Upsample and Resize-10
    return int64_t(scale < 1.0f ? std::ceil(v) : std::floor(v));
  if (mode == "floor") return int64_t(std::floor(v));
  if (mode == "ceil") return int64_t(std::ceil(v));
  if (mode == "round_prefer_ceil") return int64_t(std::round(v));
  // round_prefer_floor: halves go down
  if (v == float(int64_t(v)) + 0.5f) return int64_t(std::floor(v));
  return int64_t(std::round(v));
}

// Keys' cubic convolution kernel at distance t >= 0 (0 from 2 on).
double cubic_weight(double t, double a) {
  if (t <= 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
  return 0;
}

}  // namespace

DimTaps dim_taps(const ResizePlan& p, size_t d, int64_t in_len, int64_t out_len) {
  DimTaps t;
  t.n = p.mode == ResizeMode::nearest ? 1 : p.mode == ResizeMode::linear ? 2 : 4;
  t.index.resize(size_t(out_len * t.n));
  t.weight.resize(t.index.size());
  t.outside.assign(size_t(out_len), 0);
  const int64_t last = in_len - 1;
  for (int64_t o = 0; o < out_len; ++o) {
    float c = original_coord(p, d, float(o), in_len, out_len);
    int64_t* idx = &t.index[size_t(o * t.n)];
    float* w = &t.weight[size_t(o * t.n)];
    if (p.coord == "tf_crop_and_resize" && !(c >= 0.0f && c <= float(last))) {
      t.outside[size_t(o)] = 1;
      c = 0;  // any valid taps; the value is not read
    }
    if (p.mode == ResizeMode::nearest) {
      idx[0] = std::clamp<int64_t>(nearest_index(p.nearest, c, p.scales[d]), 0, last);
      w[0] = 1;
    } else if (p.mode == ResizeMode::linear) {
      c = std::max(0.0f, std::min(c, float(last)));
      idx[0] = std::min(int64_t(c), last);
      idx[1] = std::min(idx[0] + 1, last);
      const float f = idx[1] == idx[0] ? 0.0f : c - float(idx[0]);
      w[0] = 1.0f - f;
      w[1] = f;
    } else {
      const double fl = std::floor(double(c)), r = double(c) - fl;
      double cw[4], sum = 0;
      for (int k = 0; k < 4; ++k) {
        const int64_t i = int64_t(fl) - 1 + k;
        cw[k] = cubic_weight(std::fabs(double(k - 1) - r), double(p.cubic_a));
        if (p.exclude_outside && (i < 0 || i > last)) cw[k] = 0;
        sum += cw[k];
        idx[k] = std::clamp<int64_t>(i, 0, last);  // edge padding
      }
      for (int k = 0; k < 4; ++k) w[k] = float(p.exclude_outside && sum != 0 ? cw[k] / sum : cw[k]);
    }
    t.direct = t.direct && w[0] == 1.0f && !t.outside[size_t(o)];
    for (int k = 1; k < t.n; ++k) t.direct = t.direct && w[k] == 0.0f;
  }
  return t;
}

void resize_kernel(const std::string& op, const ResizePlan& p, Refs in, Refs out) {
  const Shape& s = in[0].shape;
  check_out(op, out[0], p.out);
  const size_t r = s.size();
  std::vector<DimTaps> taps(r);
  std::vector<size_t> interp;  // dims with more than one tap to add up
  bool crop = false;
  for (size_t d = 0; d < r; ++d) {
    taps[d] = dim_taps(p, d, s[d], p.out[d]);
    if (!taps[d].direct) interp.push_back(d);
    for (char o : taps[d].outside) crop = crop || o;
  }
  size_t combos = 1;  // tap combinations over the interpolating dims
  for (size_t d : interp) combos *= size_t(taps[d].n);
  const Shape st = strides_of(s);
  const float* x = in[0].as<const float>();
  float* y = out[0].as<float>();
  const int64_t n = shape_numel(p.out);
  Shape pos(r, 0);
  for (int64_t i = 0; i < n; ++i) {
    bool outside = false;
    int64_t base = 0;  // index with every dim at its first tap
    for (size_t d = 0; d < r; ++d) {
      base += taps[d].index[size_t(pos[d] * taps[d].n)] * st[d];
      if (crop) outside = outside || taps[d].outside[size_t(pos[d])];
    }
    double acc = 0;
    if (!outside) {
      for (size_t c = 0; c < combos; ++c) {
        double w = 1;
        int64_t xi = base;
        size_t rest = c;
        for (size_t d : interp) {
          const DimTaps& t = taps[d];
          const size_t k = rest % size_t(t.n), first = size_t(pos[d] * t.n);
          rest /= size_t(t.n);
          w *= t.weight[first + k];
          xi += (t.index[first + k] - t.index[first]) * st[d];
        }
        if (w != 0) acc += w * double(x[xi]);
      }
    }
    y[i] = outside ? p.extrapolation : float(acc);
    for (size_t d = r; d-- > 0;) {
      if (++pos[d] < p.out[d]) break;
      pos[d] = 0;
    }
  }
}

}  // namespace shoal::ref::nn
