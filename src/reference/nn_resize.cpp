// Resize (opset 10: X, scales; opset 11+: X, roi, scales, sizes) and Upsample
// (opset 7: scales attribute; opset 9: scales input). Modes nearest and
// linear (N-linear over every resized dim). Coordinates are computed in
// float, as onnxruntime does, so rounding ties agree with it.
#include <algorithm>
#include <cmath>

#include "reference/nn_internal.hpp"

namespace shoal::ref::nn {
namespace {

struct ResizePlan {
  bool linear = false;
  std::string coord;          // coordinate_transformation_mode
  std::string nearest;        // nearest_mode, or "simple" (Upsample, Resize-10)
  std::vector<float> scales;  // per dim
  Shape out;
};

// Values of the scales / sizes operands; nullptr when not given.
struct ResizeArgs {
  const std::vector<double>* scales = nullptr;
  const std::vector<int64_t>* sizes = nullptr;
  bool legacy = false;  // Upsample or Resize-10: asymmetric, simple nearest
};

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

/// An output dim computed in floating point, checked before it becomes an
/// integer (a huge scale would otherwise overflow the conversion).
int64_t out_dim(const std::string& op, double v, size_t d) {
  if (!(v >= 0 && v <= double(int64_t(1) << 40)))
    fail(ErrorKind::invalid_argument, op + ": output dim " + std::to_string(d) + " would be " +
                                          std::to_string(v) + ", out of range");
  return int64_t(v);
}

ResizePlan resize_plan(const std::string& op, const Attrs& a, const Shape& x,
                       const ResizeArgs& args) {
  ResizePlan p;
  const size_t r = x.size();
  std::string mode = a.s("mode", "nearest");
  if (mode == "cubic")
    fail(ErrorKind::unsupported, op + ": mode 'cubic' is not supported");
  if (!one_of(mode, {"nearest", "linear"}) &&
      !(args.legacy && mode == "bilinear"))
    fail(ErrorKind::invalid_argument, op + ": unknown mode '" + mode + "'");
  p.linear = mode != "nearest";
  std::vector<int64_t> axes;
  std::string policy = "stretch";
  if (args.legacy) {
    p.coord = "asymmetric";
    p.nearest = "simple";
    for (size_t i = 0; i < r; ++i) axes.push_back(int64_t(i));
  } else {
    p.coord = a.s("coordinate_transformation_mode", "half_pixel");
    if (p.coord == "tf_crop_and_resize")
      fail(ErrorKind::unsupported,
           op + ": coordinate_transformation_mode 'tf_crop_and_resize' is not "
                "supported");
    if (!one_of(p.coord,
                {"half_pixel", "pytorch_half_pixel", "align_corners",
                 "asymmetric", "tf_half_pixel_for_nn", "half_pixel_symmetric"}))
      fail(ErrorKind::invalid_argument,
           op + ": unknown coordinate_transformation_mode '" + p.coord + "'");
    p.nearest = a.s("nearest_mode", "round_prefer_floor");
    if (!one_of(p.nearest,
                {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}))
      fail(ErrorKind::invalid_argument,
           op + ": unknown nearest_mode '" + p.nearest + "'");
    if (a.i("antialias", 0) != 0)
      fail(ErrorKind::unsupported, op + ": antialias=1 is not supported");
    policy = a.s("keep_aspect_ratio_policy", "stretch");
    if (!one_of(policy, {"stretch", "not_larger", "not_smaller"}))
      fail(ErrorKind::invalid_argument,
           op + ": unknown keep_aspect_ratio_policy '" + policy + "'");
    if (a.has("axes")) {
      for (int64_t ax : a.ints("axes")) {
        int64_t k = norm_axis(op, ax, int64_t(r), "axes value");
        if (std::find(axes.begin(), axes.end(), k) != axes.end())
          fail(ErrorKind::invalid_argument,
               op + ": axes name dim " + std::to_string(k) + " twice");
        axes.push_back(k);
      }
    } else {
      for (size_t i = 0; i < r; ++i) axes.push_back(int64_t(i));
    }
  }
  if ((args.scales != nullptr) == (args.sizes != nullptr))
    fail(ErrorKind::invalid_argument,
         op + ": exactly one of 'scales' and 'sizes' must be given");
  const size_t given = args.scales ? args.scales->size() : args.sizes->size();
  if (given != axes.size())
    fail(ErrorKind::invalid_argument,
         op + ": '" + (args.scales ? "scales" : "sizes") + "' has " +
             std::to_string(given) + " values, expected " +
             std::to_string(axes.size()) + " for input " + shape_str(x));
  p.scales.assign(r, 1.0f);
  p.out = x;
  if (args.scales) {
    for (size_t i = 0; i < axes.size(); ++i) {
      size_t d = size_t(axes[i]);
      float s = float((*args.scales)[i]);
      if (!(s > 0))
        fail(ErrorKind::invalid_argument,
             op + ": scales must be positive, got " + std::to_string(s) +
                 " for dim " + std::to_string(d));
      p.scales[d] = s;
      p.out[d] = out_dim(op, std::floor(float(x[d]) * s), d);
    }
  } else {
    const std::vector<int64_t>& sz = *args.sizes;
    for (size_t i = 0; i < axes.size(); ++i)
      if (sz[i] < 0 || x[size_t(axes[i])] == 0)
        fail(ErrorKind::invalid_argument,
             op + ": cannot resize dim " + std::to_string(axes[i]) + " of " +
                 shape_str(x) + " to " + std::to_string(sz[i]));
    if (policy == "stretch") {
      for (size_t i = 0; i < axes.size(); ++i) {
        size_t d = size_t(axes[i]);
        p.out[d] = sz[i];
        p.scales[d] = float(sz[i]) / float(x[d]);
      }
    } else {  // one common scale, the smaller/larger of the ratios
      float s = float(sz[0]) / float(x[size_t(axes[0])]);
      for (size_t i = 1; i < axes.size(); ++i) {
        float q = float(sz[i]) / float(x[size_t(axes[i])]);
        s = policy == "not_larger" ? std::min(s, q) : std::max(s, q);
      }
      for (int64_t d : axes) {
        p.scales[size_t(d)] = s;
        p.out[size_t(d)] = out_dim(op, std::floor(s * float(x[size_t(d)]) + 0.5f), size_t(d));
      }
    }
  }
  for (size_t d = 0; d < r; ++d)
    if (p.out[d] < 0 || (p.out[d] > 0 && x[d] == 0))
      fail(ErrorKind::invalid_argument,
           op + ": cannot resize " + shape_str(x) + " to " + shape_str(p.out));
  return p;
}

// Output coordinate -> input coordinate along one dim.
float original_coord(const std::string& coord, float xo, float scale,
                     int64_t in_len, int64_t out_len) {
  if (coord == "asymmetric") return xo / scale;
  if (coord == "half_pixel") return (xo + 0.5f) / scale - 0.5f;
  if (coord == "pytorch_half_pixel")
    return out_len > 1 ? (xo + 0.5f) / scale - 0.5f : 0.0f;
  // ONNX takes length_resized as in_len * scale, which need not be an
  // integer (it is out_len when the output size was given, not the scales).
  if (coord == "align_corners")
    return out_len == 1 ? 0.0f : xo * float(in_len - 1) / (scale * float(in_len) - 1.0f);
  if (coord == "tf_half_pixel_for_nn") return (xo + 0.5f) / scale;
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

void resize_kernel(const std::string& op, const ResizePlan& p, Refs in,
                   Refs out) {
  const Shape& s = in[0].shape;
  check_out(op, out[0], p.out);
  const size_t r = s.size();
  // Per dim and output index: the two source indices and the weight of the
  // second (nearest: i1 == i0, weight 0).
  std::vector<std::vector<int64_t>> i0(r), i1(r);
  std::vector<std::vector<float>> w1(r);
  std::vector<size_t> interp;  // dims where some weight is nonzero
  for (size_t d = 0; d < r; ++d) {
    bool any = false;
    for (int64_t o = 0; o < p.out[d]; ++o) {
      float c = original_coord(p.coord, float(o), p.scales[d], s[d], p.out[d]);
      int64_t a, b;
      float w = 0;
      if (p.linear) {
        c = std::max(0.0f, std::min(c, float(s[d] - 1)));
        a = std::min(int64_t(c), s[d] - 1);
        b = std::min(a + 1, s[d] - 1);
        w = b == a ? 0.0f : c - float(a);
      } else {
        a = b = std::clamp<int64_t>(nearest_index(p.nearest, c, p.scales[d]), 0,
                                    s[d] - 1);
      }
      i0[d].push_back(a);
      i1[d].push_back(b);
      w1[d].push_back(w);
      any |= w != 0;
    }
    if (any) interp.push_back(d);
  }
  const Shape st = strides_of(s);
  const float* x = in[0].as<const float>();
  float* y = out[0].as<float>();
  const int64_t n = shape_numel(p.out);
  const size_t corners = size_t(1) << interp.size();
  Shape pos(r, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t base = 0;  // index with every dim at its first source
    for (size_t d = 0; d < r; ++d) base += i0[d][size_t(pos[d])] * st[d];
    double acc = 0;
    for (size_t c = 0; c < corners; ++c) {
      double w = 1;
      int64_t xi = base;
      for (size_t k = 0; k < interp.size(); ++k) {
        size_t d = interp[k];
        size_t o = size_t(pos[d]);
        if (c >> k & 1) {
          w *= w1[d][o];
          xi += (i1[d][o] - i0[d][o]) * st[d];
        } else {
          w *= 1.0f - w1[d][o];
        }
      }
      if (w != 0) acc += w * double(x[xi]);
    }
    y[i] = float(acc);
    for (size_t d = r; d-- > 0;) {
      if (++pos[d] < p.out[d]) break;
      pos[d] = 0;
    }
  }
}

// --- operand plumbing --------------------------------------------------------

// Resize-10 has inputs (X, scales); later ones (X, roi, scales, sizes).
bool is_resize10(size_t n_in, bool has2, bool has3) {
  return n_in <= 2 || (!has2 && !has3);
}

std::vector<TypeShape> resize_infer(const Attrs& a, Infos in) {
  const std::string op = "Resize";
  const ValueInfo& x = need(in, 0, op, "X");
  require_f32(op, "X", x);
  const ValueInfo* vs = opt_input(in, 2);
  const ValueInfo* vz = opt_input(in, 3);
  std::vector<double> scales;
  std::vector<int64_t> sizes;
  ResizeArgs args;
  if (is_resize10(in.size(), vs != nullptr, vz != nullptr)) {
    scales = const_floats(need(in, 1, op, "scales"), op, "scales");
    args.scales = &scales;
    args.legacy = true;
  } else {
    if (vs && shape_numel(vs->shape) > 0) {
      scales = const_floats(*vs, op, "scales");
      args.scales = &scales;
    }
    if (vz && shape_numel(vz->shape) > 0) {
      sizes = const_ints(*vz, op, "sizes");
      args.sizes = &sizes;
    }
  }
  return {{DType::f32, resize_plan(op, a, x.shape, args).out}};
}

void resize_ref(const Attrs& a, Refs in, Refs out) {
  const std::string op = "Resize";
  const TensorRef* ts = opt_input(in, 2);
  const TensorRef* tz = opt_input(in, 3);
  std::vector<double> scales;
  std::vector<int64_t> sizes;
  ResizeArgs args;
  if (is_resize10(in.size(), ts != nullptr, tz != nullptr)) {
    const TensorRef* t1 = opt_input(in, 1);
    if (!t1)
      fail(ErrorKind::invalid_argument, op + ": input 'scales' is missing");
    scales = floats_of(*t1, op, "scales");
    args.scales = &scales;
    args.legacy = true;
  } else {
    if (ts && ts->numel() > 0) {
      scales = floats_of(*ts, op, "scales");
      args.scales = &scales;
    }
    if (tz && tz->numel() > 0) {
      sizes = read_ints(*tz, op, "sizes");
      args.sizes = &sizes;
    }
  }
  resize_kernel(op, resize_plan(op, a, in[0].shape, args), in, out);
}

std::vector<TypeShape> upsample_infer(const Attrs& a, Infos in) {
  const std::string op = "Upsample";
  const ValueInfo& x = need(in, 0, op, "X");
  require_f32(op, "X", x);
  std::vector<double> scales;
  if (a.has("scales")) {
    for (float f : a.floats("scales")) scales.push_back(f);
  } else {
    scales = const_floats(need(in, 1, op, "scales"), op, "scales");
  }
  ResizeArgs args;
  args.scales = &scales;
  args.legacy = true;
  return {{DType::f32, resize_plan(op, a, x.shape, args).out}};
}

void upsample_ref(const Attrs& a, Refs in, Refs out) {
  const std::string op = "Upsample";
  std::vector<double> scales;
  if (a.has("scales")) {
    for (float f : a.floats("scales")) scales.push_back(f);
  } else if (const TensorRef* t = opt_input(in, 1)) {
    scales = floats_of(*t, op, "scales");
  } else {
    fail(ErrorKind::invalid_argument, op + ": input 'scales' is missing");
  }
  ResizeArgs args;
  args.scales = &scales;
  args.legacy = true;
  resize_kernel(op, resize_plan(op, a, in[0].shape, args), in, out);
}

}  // namespace

void add_resize_ops(std::vector<OpSpec>& t) {
  t.push_back(
      make_spec("Resize", 10, 2, 4,
                "resize by scales or sizes: nearest (all nearest_modes) "
                "or N-linear; half_pixel, pytorch_half_pixel, "
                "align_corners, asymmetric coordinates",
                resize_infer, resize_ref));
  t.push_back(make_spec("Upsample", 7, 1, 2,
                        "nearest/linear upsampling by scales (attribute or "
                        "input 1), asymmetric coordinates",
                        upsample_infer, upsample_ref));
}

}  // namespace shoal::ref::nn
