// Pad: modes constant, reflect, edge, wrap. Pads come from the attribute
// (opset < 11: "pads", opset 1: "paddings") or from input 1; the constant
// from attribute "value" or input 2; optional axes (opset 18) from input 3.
// Negative pads crop; the other modes then pad the cropped tensor (as
// onnxruntime does).
#include <algorithm>

#include "reference/nn_internal.hpp"
#include "reference/plans.hpp"

namespace shoal::ref::nn {
namespace {

const std::string kOp = "Pad";

std::vector<int64_t> attr_pads(const Attrs& a) {
  return a.has("pads") ? a.ints("pads") : a.ints("paddings");
}

std::vector<TypeShape> pad_infer(const Attrs& a, Infos in) {
  const ValueInfo& x = need(in, 0, kOp, "data");
  require_f32(kOp, "data", x);
  std::vector<int64_t> pads;
  if (a.has("pads") || a.has("paddings")) {
    pads = attr_pads(a);
  } else {
    pads = const_ints(need(in, 1, kOp, "pads"), kOp, "pads");
  }
  if (const ValueInfo* v = opt_input(in, 2)) {
    require_f32(kOp, "constant_value", *v);
    if (v->shape.size() > 1 || shape_numel(v->shape) > 1)
      fail(ErrorKind::invalid_argument,
           kOp + ": constant_value has shape " + shape_str(v->shape) + ", expected a scalar");
  }
  std::vector<int64_t> axes;
  const ValueInfo* va = opt_input(in, 3);
  if (va) axes = const_ints(*va, kOp, "axes");
  return {{DType::f32, pad_plan(a, x.shape, pads, va ? &axes : nullptr).out}};
}

void pad_ref(const Attrs& a, Refs in, Refs out) {
  const Shape& s = in[0].shape;
  std::vector<int64_t> pads;
  if (a.has("pads") || a.has("paddings")) {
    pads = attr_pads(a);
  } else if (const TensorRef* tp = opt_input(in, 1)) {
    pads = read_ints(*tp, kOp, "pads");
  } else {
    fail(ErrorKind::invalid_argument, kOp + ": required input 1 (pads) is missing");
  }
  std::vector<int64_t> axes;
  const TensorRef* ta = opt_input(in, 3);
  if (ta) axes = read_ints(*ta, kOp, "axes");
  PadPlan p = pad_plan(a, s, pads, ta ? &axes : nullptr);
  check_out(kOp, out[0], p.out);
  float value = a.f("value", 0.0f);
  if (const TensorRef* v = opt_input(in, 2); v && v->numel() > 0) value = v->as<const float>()[0];
  const int64_t n = shape_numel(p.out);  // > 0: the op table skips empty outputs
  const size_t r = s.size();
  std::vector<std::vector<int64_t>> src(r);
  for (size_t d = 0; d < r; ++d)
    for (int64_t o = 0; o < p.out[d]; ++o)
      src[d].push_back(pad_source_index(p.mode, o, s[d], p.begin[d], p.end[d]));
  const Shape st = strides_of(s);
  const float* x = in[0].as<const float>();
  float* y = out[0].as<float>();
  Shape pos(r, 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t xi = 0;
    bool inside = true;
    for (size_t d = 0; d < r && inside; ++d) {
      int64_t k = src[d][size_t(pos[d])];
      inside = k >= 0;
      xi += k * st[d];
    }
    y[i] = inside ? x[xi] : value;
    for (size_t d = r; d-- > 0;) {
      if (++pos[d] < p.out[d]) break;
      pos[d] = 0;
    }
  }
}

}  // namespace

void add_pad_ops(std::vector<OpSpec>& t) {
  t.push_back(make_spec("Pad", 2, 1, 4,
                        "pad (negative pads crop): constant, reflect, edge, wrap; "
                        "pads/value as attributes or inputs",
                        pad_infer, pad_ref));
}

}  // namespace shoal::ref::nn

namespace shoal::ref {

PadPlan pad_plan(const Attrs& a, const Shape& s, std::vector<int64_t> pads,
                 const std::vector<int64_t>* axes) {
  const std::string kPad = "Pad";
  PadPlan p;
  p.mode = a.s("mode", "constant");
  if (p.mode != "constant" && p.mode != "reflect" && p.mode != "edge" && p.mode != "wrap")
    fail(ErrorKind::unsupported, kPad + ": mode '" + p.mode +
                                         "' is not supported (constant, reflect, "
                                         "edge, wrap)");
  const size_t r = s.size();
  std::vector<int64_t> dims;  // the dims the pads apply to
  if (axes) {
    for (int64_t ax : *axes) dims.push_back(nn::norm_axis(kPad, ax, int64_t(r), "axes value"));
  } else {
    for (size_t i = 0; i < r; ++i) dims.push_back(int64_t(i));
  }
  if (pads.size() != 2 * dims.size())
    fail(ErrorKind::invalid_argument, kPad + ": pads " + nn::ints_str(pads) + " has " +
                                              std::to_string(pads.size()) + " values, expected " +
                                              std::to_string(2 * dims.size()) +
                                              " for input of shape " + shape_str(s));
  for (int64_t v : pads)
    if (v > (int64_t(1) << 40) || v < -(int64_t(1) << 40))
      fail(ErrorKind::invalid_argument,
               kPad + ": pads " + nn::ints_str(pads) + " has a value beyond +-2^40");
  p.begin.assign(r, 0);
  p.end.assign(r, 0);
  for (size_t i = 0; i < dims.size(); ++i) {
    p.begin[size_t(dims[i])] = pads[i];
    p.end[size_t(dims[i])] = pads[i + dims.size()];
  }
  p.out.resize(r);
  for (size_t i = 0; i < r; ++i) {
    p.out[i] = s[i] + p.begin[i] + p.end[i];
    int64_t kept = s[i] - std::max<int64_t>(0, -p.begin[i]) - std::max<int64_t>(0, -p.end[i]);
    if (p.out[i] < 0 || kept < 0)
      fail(ErrorKind::invalid_argument, kPad + ": pads " + nn::ints_str(pads) +
                                                " crop more than dim " + std::to_string(i) +
                                                " of input " + shape_str(s) + " holds");
    if (p.mode != "constant" && kept == 0 && p.out[i] > 0)
      fail(ErrorKind::invalid_argument, kPad + ": mode '" + p.mode + "' cannot pad dim " +
                                                std::to_string(i) + " of input " +
                                                shape_str(s) + ", which is empty");
  }
  return p;
}

int64_t pad_source_index(const std::string& mode, int64_t o, int64_t in, int64_t begin,
                         int64_t end) {
  const int64_t lo = std::max<int64_t>(0, -begin);     // first kept index
  const int64_t hi = in - std::max<int64_t>(0, -end);  // one past the last
  const int64_t j = o - begin;                         // input coordinate
  if (j >= lo && j < hi) return j;
  if (mode == "constant") return -1;
  const int64_t c = hi - lo;
  int64_t t = j - lo;
  if (mode == "edge") return t < 0 ? lo : hi - 1;
  if (mode == "wrap") return lo + ((t % c) + c) % c;
  if (c == 1) return lo;  // reflect
  const int64_t period = 2 * (c - 1);
  t = ((t % period) + period) % period;
  return lo + (t < c ? t : period - t);
}

}  // namespace shoal::ref
