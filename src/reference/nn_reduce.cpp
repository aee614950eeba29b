// Softmax, LogSoftmax and the Reduce* family (Mean, Max, Min, Sum, Prod,
// L1, L2, SumSquare, LogSum, LogSumExp).
#include "reference/plans.hpp"
#include <cmath>
#include <limits>

#include "reference/nn_internal.hpp"

namespace shoal::ref::nn {
namespace {

// --- Softmax / LogSoftmax ----------------------------------------------------

// The tensor seen as [outer, len, inner], normalized along len. With
// coerce_2d (set by the frontend for opset < 13) the input is flattened to
// 2-D at `axis` (default 1); otherwise only dim `axis` (default -1).
struct SoftmaxSplit {
  int64_t outer = 1, len = 1, inner = 1;
};

SoftmaxSplit softmax_split(const std::string& op, const Attrs& a,
                           const Shape& s) {
  const bool coerce = a.i("coerce_2d", 0) != 0;
  const int64_t r = int64_t(s.size());
  if (r == 0)
    fail(ErrorKind::invalid_argument, op + ": input must have rank >= 1");
  int64_t axis = norm_axis(op, a.i("axis", coerce ? 1 : -1), r);
  SoftmaxSplit p;
  for (int64_t i = 0; i < r; ++i) {
    if (i < axis)
      p.outer *= s[size_t(i)];
    else if (i == axis || coerce)
      p.len *= s[size_t(i)];
    else
      p.inner *= s[size_t(i)];
  }
  return p;
}

ops::InferFn softmax_infer(const std::string& op) {
  return [op](const Attrs& a, Infos in) -> std::vector<TypeShape> {
    const ValueInfo& x = need(in, 0, op, "input");
    require_f32(op, "input", x);
    softmax_split(op, a, x.shape);
    return {{DType::f32, x.shape}};
  };
}

template <bool kLog>
void softmax_ref(const Attrs& a, Refs in, Refs out) {
  const std::string op = kLog ? "LogSoftmax" : "Softmax";
  check_out(op, out[0], in[0].shape);
  SoftmaxSplit p = softmax_split(op, a, in[0].shape);
  const float* x = in[0].as<const float>();
  float* y = out[0].as<float>();
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t i = 0; i < p.inner; ++i) {
      const int64_t base = o * p.len * p.inner + i;
      auto at = [&](int64_t j) { return base + j * p.inner; };
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < p.len; ++j) mx = std::max(mx, double(x[at(j)]));
      double sum = 0;
      for (int64_t j = 0; j < p.len; ++j)
        sum += std::exp(double(x[at(j)]) - mx);
      for (int64_t j = 0; j < p.len; ++j) {
        double z = double(x[at(j)]) - mx;
        y[at(j)] = float(kLog ? z - std::log(sum) : std::exp(z) / sum);
      }
    }
}

// --- The Reduce* family ------------------------------------------------------

// Each reduction is a map of the elements, a fold, and a map of the result.
enum class Reduce { mean, max, min, sum, prod, l1, l2, sum_square, log_sum, log_sum_exp };

struct ReduceOp {
  const char* name;
  Reduce kind;
  const char* doc;
};

constexpr ReduceOp kReduceOps[] = {
    {"ReduceMean", Reduce::mean, "mean"},
    {"ReduceMax", Reduce::max, "max"},
    {"ReduceMin", Reduce::min, "min"},
    {"ReduceSum", Reduce::sum, "sum"},
    {"ReduceProd", Reduce::prod, "product"},
    {"ReduceL1", Reduce::l1, "sum of |x|"},
    {"ReduceL2", Reduce::l2, "sqrt of the sum of x^2"},
    {"ReduceSumSquare", Reduce::sum_square, "sum of x^2"},
    {"ReduceLogSum", Reduce::log_sum, "log of the sum"},
    {"ReduceLogSumExp", Reduce::log_sum_exp, "log of the sum of exp(x), stable"},
};

ops::InferFn reduce_infer(const std::string& op) {
  return [op](const Attrs& a, Infos in) -> std::vector<TypeShape> {
    const ValueInfo& x = need(in, 0, op, "data");
    require_f32(op, "data", x);
    std::vector<int64_t> axes = a.ints("axes");
    if (!a.has("axes"))
      if (const ValueInfo* v = opt_input(in, 1))
        axes = const_ints(*v, op, "axes");
    return {{DType::f32, reduce_plan(op, a, x.shape, axes).out}};
  };
}

/// Folds the elements of one output, in double. NaN propagates through max
/// and min as through the arithmetic ones.
struct Fold {
  Reduce kind;
  double shift = 0;  // log_sum_exp: the group's max, subtracted before exp

  double init() const {
    switch (kind) {
      case Reduce::max: return -std::numeric_limits<double>::infinity();
      case Reduce::min: return std::numeric_limits<double>::infinity();
      case Reduce::prod: return 1.0;
      default: return 0.0;
    }
  }
  double step(double t, double v) const {
    switch (kind) {
      case Reduce::max: return std::isnan(t) || std::isnan(v) ? NAN : std::max(t, v);
      case Reduce::min: return std::isnan(t) || std::isnan(v) ? NAN : std::min(t, v);
      case Reduce::prod: return t * v;
      case Reduce::l1: return t + std::abs(v);
      case Reduce::l2:
      case Reduce::sum_square: return t + v * v;
      case Reduce::log_sum_exp: return t + std::exp(v - shift);
      default: return t + v;
    }
  }
  double finish(double t, double count) const {
    switch (kind) {
      case Reduce::mean: return t / count;
      case Reduce::l2: return std::sqrt(t);
      case Reduce::log_sum: return std::log(t);
      case Reduce::log_sum_exp: return std::log(t) + shift;
      default: return t;
    }
  }
};

void reduce_ref(const std::string& op, Reduce kind, const Attrs& a, Refs in, Refs out) {
  const Shape& s = in[0].shape;
  std::vector<int64_t> axes = a.ints("axes");
  if (!a.has("axes"))
    if (const TensorRef* v = opt_input(in, 1)) axes = read_ints(*v, op, "axes");
  ReducePlan p = reduce_plan(op, a, s, axes);
  check_out(op, out[0], p.out);
  const float* x = in[0].as<const float>();
  float* y = out[0].as<float>();
  const int64_t n = in[0].numel();
  // Output strides per input dim, 0 along reduced dims.
  Shape kept(s.size());
  for (size_t i = 0; i < s.size(); ++i) kept[i] = p.reduced[i] ? 1 : s[i];
  Shape st = strides_of(kept);
  for (size_t i = 0; i < s.size(); ++i)
    if (p.reduced[i]) st[i] = 0;
  const int64_t on = shape_numel(p.out);
  // Visits every element with its output's index.
  auto each = [&](auto&& f) {
    Shape pos(s.size(), 0);
    int64_t oi = 0;
    for (int64_t i = 0; i < n; ++i) {
      f(oi, double(x[i]));
      for (size_t d = s.size(); d-- > 0;) {  // odometer increment
        ++pos[d];
        oi += st[d];
        if (pos[d] < s[d]) break;
        oi -= st[d] * pos[d];
        pos[d] = 0;
      }
    }
  };
  if (p.noop) {  // no axes, noop_with_empty_axes: the input itself (ONNX)
    for (int64_t i = 0; i < n; ++i) y[i] = x[i];
    return;
  }
  std::vector<Fold> folds(size_t(on), Fold{kind});
  if (kind == Reduce::log_sum_exp) {  // each group's max first
    std::vector<double> mx(size_t(on), -std::numeric_limits<double>::infinity());
    each([&](int64_t oi, double v) { mx[size_t(oi)] = std::max(mx[size_t(oi)], v); });
    for (int64_t i = 0; i < on; ++i)
      folds[size_t(i)].shift = std::isfinite(mx[size_t(i)]) ? mx[size_t(i)] : 0.0;
  }
  std::vector<double> acc(static_cast<size_t>(on));
  for (int64_t i = 0; i < on; ++i) acc[size_t(i)] = folds[size_t(i)].init();
  each([&](int64_t oi, double v) { acc[size_t(oi)] = folds[size_t(oi)].step(acc[size_t(oi)], v); });
  const double count = on > 0 ? double(n) / double(on) : 0.0;
  for (int64_t i = 0; i < on; ++i) y[i] = float(folds[size_t(i)].finish(acc[size_t(i)], count));
}

}  // namespace

void add_reduce_ops(std::vector<OpSpec>& t) {
  t.push_back(
      make_spec("Softmax", 1, 1, 1,
                "softmax along axis (opset < 13: flattened to 2-D at axis)",
                softmax_infer("Softmax"), softmax_ref<false>));
  t.push_back(
      make_spec("LogSoftmax", 1, 1, 1,
                "log of softmax along axis (opset < 13: flattened to 2-D)",
                softmax_infer("LogSoftmax"), softmax_ref<true>));
  const char* axes_doc =
      ": axes (attribute or input 1), keepdims, noop_with_empty_axes";
  for (const ReduceOp& r : kReduceOps) {
    const std::string name = r.name;
    const Reduce kind = r.kind;
    t.push_back(make_spec(name, 1, 1, 2, std::string(r.doc) + axes_doc, reduce_infer(name),
                          [name, kind](const Attrs& a, Refs in, Refs out) {
                            reduce_ref(name, kind, a, in, out);
                          }));
  }
}

}  // namespace shoal::ref::nn

namespace shoal::ref {

// axes come from the attribute (older opsets) or from input 1.
ReducePlan reduce_plan(const std::string& op, const Attrs& a, const Shape& s,
                       const std::vector<int64_t>& axes_in) {
  const int64_t r = int64_t(s.size());
  ReducePlan p;
  p.reduced.assign(s.size(), false);
  std::vector<int64_t> axes = axes_in;
  if (axes.empty()) {
    if (a.i("noop_with_empty_axes", 0) != 0) {
      p.noop = true;
      p.out = s;
      return p;
    }
    p.reduced.assign(s.size(), true);
  }
  for (int64_t ax : axes) {
    int64_t k = nn::norm_axis(op, ax, r, "axes value");
    if (p.reduced[size_t(k)])
      fail(ErrorKind::invalid_argument, op + ": axes " + nn::ints_str(axes) +
                                            " name dim " + std::to_string(k) +
                                            " twice");
    p.reduced[size_t(k)] = true;
  }
  const bool keep = a.i("keepdims", 1) != 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!p.reduced[i])
      p.out.push_back(s[i]);
    else if (keep)
      p.out.push_back(1);
  }
  return p;
}

}  // namespace shoal::ref

