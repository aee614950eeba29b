// Resize (opset 10: X, scales; opset 11+: X, roi, scales, sizes) and Upsample
// (opset 7: scales attribute; opset 9: scales input): their attributes and
// operands, planned into a ResizePlan; the kernel is in nn_resize_kernel.cpp.
#include "reference/nn_resize.hpp"

#include <algorithm>
#include <cmath>

namespace shoal::ref::nn {
namespace {

// Values of the scales / sizes operands; nullptr when not given.
struct ResizeArgs {
  const std::vector<double>* scales = nullptr;
  const std::vector<int64_t>* sizes = nullptr;
  const std::vector<double>* roi = nullptr;  // tf_crop_and_resize only
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
  if (!one_of(mode, {"nearest", "linear"}) && !(args.legacy && mode == "bilinear") &&
      !(!args.legacy && mode == "cubic"))
    fail(ErrorKind::invalid_argument, op + ": unknown mode '" + mode + "'");
  p.mode = mode == "nearest" ? ResizeMode::nearest
           : mode == "cubic" ? ResizeMode::cubic
                             : ResizeMode::linear;
  std::vector<int64_t> axes;
  std::string policy = "stretch";
  if (args.legacy) {
    p.coord = "asymmetric";
    p.nearest = "simple";
    for (size_t i = 0; i < r; ++i) axes.push_back(int64_t(i));
  } else {
    p.coord = a.s("coordinate_transformation_mode", "half_pixel");
    if (!one_of(p.coord, {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                          "tf_half_pixel_for_nn", "half_pixel_symmetric", "tf_crop_and_resize"}))
      fail(ErrorKind::invalid_argument,
           op + ": unknown coordinate_transformation_mode '" + p.coord + "'");
    p.nearest = a.s("nearest_mode", "round_prefer_floor");
    if (!one_of(p.nearest,
                {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}))
      fail(ErrorKind::invalid_argument,
           op + ": unknown nearest_mode '" + p.nearest + "'");
    if (a.i("antialias", 0) != 0)
      fail(ErrorKind::unsupported, op + ": antialias=1 is not supported");
    p.cubic_a = a.f("cubic_coeff_a", -0.75f);
    const int64_t exclude = a.i("exclude_outside", 0);
    if (exclude != 0 && exclude != 1)
      fail(ErrorKind::invalid_argument,
           op + ": exclude_outside must be 0 or 1, got " + std::to_string(exclude));
    p.exclude_outside = exclude == 1;
    p.extrapolation = a.f("extrapolation_value", 0.0f);
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
  if (p.coord == "tf_crop_and_resize") {
    // roi: starts then ends, one per resized axis, as fractions of (size - 1)
    if (!args.roi || args.roi->size() != 2 * axes.size())
      fail(ErrorKind::invalid_argument,
           op + ": coordinate_transformation_mode 'tf_crop_and_resize' needs 'roi' with " +
               std::to_string(2 * axes.size()) + " values (starts and ends of " +
               std::to_string(axes.size()) + " axes), got " +
               (args.roi ? std::to_string(args.roi->size()) : std::string("none")));
    p.roi_start.assign(r, 0.0f);
    p.roi_end.assign(r, 1.0f);
    for (size_t i = 0; i < axes.size(); ++i) {
      p.roi_start[size_t(axes[i])] = float((*args.roi)[i]);
      p.roi_end[size_t(axes[i])] = float((*args.roi)[axes.size() + i]);
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

// --- operand plumbing --------------------------------------------------------

// Resize-10 has inputs (X, scales); later ones (X, roi, scales, sizes).
bool is_resize10(size_t n_in, bool has2, bool has3) {
  return n_in <= 2 || (!has2 && !has3);
}

bool crops(const Attrs& a) {
  return a.s("coordinate_transformation_mode", "") == "tf_crop_and_resize";
}

std::vector<TypeShape> resize_infer(const Attrs& a, Infos in) {
  const std::string op = "Resize";
  const ValueInfo& x = need(in, 0, op, "X");
  require_f32(op, "X", x);
  const ValueInfo* vs = opt_input(in, 2);
  const ValueInfo* vz = opt_input(in, 3);
  std::vector<double> scales, roi;
  std::vector<int64_t> sizes;
  ResizeArgs args;
  if (const ValueInfo* vr = opt_input(in, 1); vr && crops(a) && in.size() > 2) {
    if (!vr->constant && shape_numel(vr->shape) != 0)
      fail(ErrorKind::unsupported,
           op + ": input 'roi' of tf_crop_and_resize must be a compile-time constant");
    if (vr->constant) roi = const_floats(*vr, op, "roi");
    args.roi = &roi;
  }
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

ResizePlan resize_refs_plan(const Attrs& a, Refs in) {
  const std::string op = "Resize";
  const TensorRef* ts = opt_input(in, 2);
  const TensorRef* tz = opt_input(in, 3);
  std::vector<double> scales, roi;
  std::vector<int64_t> sizes;
  ResizeArgs args;
  if (const TensorRef* tr = opt_input(in, 1); tr && crops(a) && in.size() > 2) {
    roi = floats_of(*tr, op, "roi");
    args.roi = &roi;
  }
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
  return resize_plan(op, a, in[0].shape, args);
}

void resize_ref(const Attrs& a, Refs in, Refs out) {
  resize_kernel("Resize", resize_refs_plan(a, in), in, out);
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

ResizePlan upsample_refs_plan(const Attrs& a, Refs in) {
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
  return resize_plan(op, a, in[0].shape, args);
}

void upsample_ref(const Attrs& a, Refs in, Refs out) {
  resize_kernel("Upsample", upsample_refs_plan(a, in), in, out);
}

}  // namespace

ResizePlan resize_plan_of(const std::string& op, const Attrs& a, Refs in) {
  return op == "Upsample" ? upsample_refs_plan(a, in) : resize_refs_plan(a, in);
}

void add_resize_ops(std::vector<OpSpec>& t) {
  t.push_back(make_spec("Resize", 10, 2, 4,
                        "resize by scales or sizes: nearest (all nearest_modes), N-linear or "
                        "cubic (cubic_coeff_a, exclude_outside); all coordinate modes, "
                        "tf_crop_and_resize with a constant roi and extrapolation_value",
                        resize_infer, resize_ref));
  t.push_back(make_spec("Upsample", 7, 1, 2,
                        "nearest/linear upsampling by scales (attribute or "
                        "input 1), asymmetric coordinates",
                        upsample_infer, upsample_ref));
}

}  // namespace shoal::ref::nn
