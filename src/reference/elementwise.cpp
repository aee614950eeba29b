// Unary elementwise operators: activations (through the shared Activation of
// geometry.hpp), math functions, Not and Cast. The binary and variadic ones
// live in elementwise_binary.cpp.
#include <cmath>
#include <map>
#include <variant>

#include "reference/geometry.hpp"
#include "reference/ref_util.hpp"

namespace shoal::ops {
namespace {

using ref::fail;

constexpr std::initializer_list<DType> kFloat = {DType::f32, DType::f64};
constexpr std::initializer_list<DType> kSigned = {DType::f32, DType::f64, DType::i32, DType::i64,
                                                  DType::i8};
constexpr std::initializer_list<DType> kNumeric = {DType::f32, DType::f64, DType::i32,
                                                   DType::i64, DType::i8,  DType::u8};

/// Shape inference of an op whose output has input 0's dtype and shape.
InferFn same_as_input(std::string op, std::vector<DType> allowed) {
  return [op, allowed](const Attrs&, std::span<const ValueInfo> in) {
    const ValueInfo& x = ref::req_input(in, 0, op, "X");
    ref::check_dtype(op, "input", x.dtype, allowed);
    return std::vector<TypeShape>{{x.dtype, x.shape}};
  };
}

template <class T, class F>
void map1(const TensorRef& x, const TensorRef& y, F f) {
  const T* a = x.as<const T>();
  T* b = y.as<T>();
  for (int64_t k = 0, n = y.numel(); k < n; ++k) b[k] = f(a[k]);
}

OpSpec unary_spec(std::string name, int min_opset, std::string summary, std::vector<DType> allowed,
                  RefKernel kernel) {
  return ref::make_spec(name, min_opset, 1, 1, std::move(summary),
                        same_as_input(name, std::move(allowed)), std::move(kernel));
}

// --- activations -------------------------------------------------------------

/// alpha/beta of an activation op: ONNX defaults overridden by attributes.
ref::Activation activation(const std::string& op, const Attrs& a) {
  float alpha = 0, beta = 0;
  ref::activation_defaults(op, alpha, beta);
  alpha = a.f("alpha", alpha);
  beta = a.f("beta", beta);
  if (op == "Gelu") {
    const std::string approx = a.s("approximate", "none");
    if (approx != "none" && approx != "tanh")
      throw Error(ErrorKind::invalid_argument,
                  "Gelu: approximate must be 'none' or 'tanh', got '" + approx + "'");
    alpha = approx == "tanh" ? 1.0f : 0.0f;
  }
  return ref::activation_of(op, alpha, beta);
}

/// An activation defined on float32 only; evaluated by the shared Activation.
void add_activation(std::vector<OpSpec>& t, const std::string& name, int min_opset,
                    const std::string& summary) {
  t.push_back(unary_spec(
      name, min_opset, summary, {DType::f32},
      [name](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        ref::Activation act = activation(name, a);
        map1<float>(in[0], out[0], [&](float x) { return act(x); });
      }));
}

/// Relu: float32 through the shared Activation; other types are max(x, 0).
void add_relu(std::vector<OpSpec>& t) {
  t.push_back(unary_spec(
      "Relu", 1, "y = max(x, 0)", {DType::f32, DType::f64, DType::i32, DType::i64, DType::i8},
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        if (in[0].dtype == DType::f32) {
          ref::Activation act = activation("Relu", a);
          map1<float>(in[0], out[0], [&](float x) { return act(x); });
          return;
        }
        ref::visit_dtype(in[0].dtype, "Relu", [&](auto z) {
          using T = decltype(z);
          map1<T>(in[0], out[0], [](T x) { return x > T(0) ? x : T(0); });
        });
      }));
}

/// Clip bounds: attributes "min"/"max" (opset < 11) when present, else the
/// optional scalar inputs 1 and 2 (opset >= 11), else no bound.
bool clip_bound(const Attrs& a, std::span<const TensorRef> in, const char* name, size_t input,
                double& v) {
  if (a.has(name)) {
    v = a.f(name, 0);
    return true;
  }
  if (auto* b = ref::opt_input(in, input)) {
    v = ref::read_double(*b, 0);
    return true;
  }
  return false;
}

void add_clip(std::vector<OpSpec>& t) {
  OpSpec s;
  s.name = "Clip";
  s.min_opset = 6;
  s.max_inputs = 3;
  s.summary = "y = min(max(x, min), max); bounds from attributes or inputs 1, 2";
  s.dtypes = {DType::f32};
  s.infer = [](const Attrs&, std::span<const ValueInfo> in) {
    const ValueInfo& x = ref::req_input(in, 0, "Clip", "input");
    ref::check_dtype("Clip", "input", x.dtype, kNumeric);
    for (size_t i = 1; i < 3; ++i) {
      const ValueInfo* b = ref::opt_input(in, i);
      if (!b) continue;
      const char* what = i == 1 ? "min" : "max";
      if (b->dtype != x.dtype)
        fail(ErrorKind::invalid_argument, std::string("Clip: input '") + what +
                                              "' has element type " + dtype_name(b->dtype) +
                                              ", the input has " + dtype_name(x.dtype));
      if (shape_numel(b->shape) != 1)
        fail(ErrorKind::invalid_argument, std::string("Clip: input '") + what +
                                              "' must be a scalar, got shape " +
                                              shape_str(b->shape));
    }
    return std::vector<TypeShape>{{x.dtype, x.shape}};
  };
  s.reference = [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
    double lo = 0, hi = 0;
    bool has_lo = clip_bound(a, in, "min", 1, lo);
    bool has_hi = clip_bound(a, in, "max", 2, hi);
    if (in[0].dtype == DType::f32) {
      float alpha = 0, beta = 0;
      ref::activation_defaults("Clip", alpha, beta);
      if (has_lo) alpha = float(lo);
      if (has_hi) beta = float(hi);
      ref::Activation act = ref::activation_of("Clip", alpha, beta);
      map1<float>(in[0], out[0], [&](float x) { return act(x); });
      return;
    }
    ref::visit_dtype(in[0].dtype, "Clip", [&](auto z) {
      using T = decltype(z);
      T l = has_lo ? ref::convert<T>(lo) : std::numeric_limits<T>::lowest();
      T h = has_hi ? ref::convert<T>(hi) : std::numeric_limits<T>::max();
      map1<T>(in[0], out[0], [&](T x) { return std::min(std::max(x, l), h); });
    });
  };
  t.push_back(std::move(s));
}

/// PRelu: y = x < 0 ? slope * x : x, slope broadcast onto x
/// (unidirectionally). Each element is the shared LeakyRelu with its slope.
void add_prelu(std::vector<OpSpec>& t) {
  OpSpec s;
  s.name = "PRelu";
  s.min_opset = 1;
  s.max_inputs = 2;
  s.min_inputs = 2;
  s.summary = "y = x < 0 ? slope * x : x, slope broadcast to x";
  s.infer = [](const Attrs&, std::span<const ValueInfo> in) {
    const ValueInfo& x = ref::req_input(in, 0, "PRelu", "X");
    const ValueInfo& sl = ref::req_input(in, 1, "PRelu", "slope");
    ref::check_dtype("PRelu", "input", x.dtype, {DType::f32});
    if (sl.dtype != x.dtype)
      fail(ErrorKind::invalid_argument, std::string("PRelu: slope has element type ") +
                                            dtype_name(sl.dtype) + ", X has " +
                                            dtype_name(x.dtype));
    if (ref::broadcast_shape("PRelu", x.shape, sl.shape) != x.shape)
      fail(ErrorKind::invalid_argument, "PRelu: slope of shape " + shape_str(sl.shape) +
                                            " does not broadcast to X of shape " +
                                            shape_str(x.shape));
    return std::vector<TypeShape>{{x.dtype, x.shape}};
  };
  s.reference = [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
    std::vector<int64_t> si = ref::broadcast_index(in[1].shape, out[0].shape);
    const float* x = in[0].as<const float>();
    const float* sl = in[1].as<const float>();
    float* y = out[0].as<float>();
    ref::Activation act = ref::activation_of("LeakyRelu", 0, 0);
    for (int64_t k = 0, n = out[0].numel(); k < n; ++k) {
      act.alpha = sl[si[size_t(k)]];  // the element's slope
      y[k] = act(x[k]);
    }
  };
  t.push_back(std::move(s));
}

// --- math ----------------------------------------------------------------------

/// A function of floating-point types: f is called with float or double.
template <class F>
void add_float_unary(std::vector<OpSpec>& t, const std::string& name, int min_opset,
                     const std::string& summary, F f) {
  t.push_back(unary_spec(
      name, min_opset, summary, kFloat,
      [name, f](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        if (in[0].dtype == DType::f32)
          map1<float>(in[0], out[0], [&](float x) { return float(f(x)); });
        else if (in[0].dtype == DType::f64)
          map1<double>(in[0], out[0], [&](double x) { return double(f(x)); });
        else
          fail(ErrorKind::unsupported,
               name + ": unsupported element type " + dtype_name(in[0].dtype));
      }));
}

/// Negation without signed-overflow undefined behaviour (wraps).
template <class T>
T negate(T x) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    return T(U(U(0) - U(x)));
  } else {
    return -x;
  }
}

/// A function of signed types (floats and signed integers).
template <class F>
void add_signed_unary(std::vector<OpSpec>& t, const std::string& name, const std::string& summary,
                      F f) {
  t.push_back(unary_spec(
      name, 1, summary, kSigned,
      [name, f](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        ref::visit_dtype(in[0].dtype, name, [&](auto z) {
          using T = decltype(z);
          if constexpr (std::is_signed_v<T>)
            map1<T>(in[0], out[0], [&](T x) { return f(x); });
          else
            fail(ErrorKind::unsupported,
                 name + ": unsupported element type " + dtype_name(in[0].dtype));
        });
      }));
}

// --- Not, Cast -------------------------------------------------------------------

void add_not(std::vector<OpSpec>& t) {
  OpSpec s =
      unary_spec("Not", 1, "logical negation of a bool tensor", {DType::boolean},
                 [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
                   map1<uint8_t>(in[0], out[0], [](uint8_t x) { return uint8_t(x ? 0 : 1); });
                 });
  s.dtypes = {DType::boolean};
  t.push_back(std::move(s));
}

/// Cast's target type: an int (TensorProto.DataType) or, in opset 1, a name.
DType cast_target(const Attrs& a) {
  if (!a.has("to")) fail(ErrorKind::invalid_argument, "Cast: missing attribute 'to'");
  int64_t code = 0;
  if (std::holds_alternative<std::string>(a.items().at("to"))) {
    static const std::map<std::string, int64_t> names = {{"FLOAT", 1},  {"UINT8", 2}, {"INT8", 3},
                                                         {"INT32", 6},  {"INT64", 7}, {"BOOL", 9},
                                                         {"DOUBLE", 11}};
    std::string n = a.s("to", "");
    auto it = names.find(n);
    if (it == names.end())
      fail(ErrorKind::unsupported, "Cast: unsupported target type '" + n + "'");
    code = it->second;
  } else {
    code = a.i("to", 0);
  }
  if (code < 0 || code > 255 || !dtype_valid(int(code)))
    fail(ErrorKind::unsupported,
         "Cast: unsupported target type " + std::to_string(code) + " (ONNX TensorProto.DataType)");
  return DType(code);
}

void add_cast(std::vector<OpSpec>& t) {
  OpSpec s;
  s.name = "Cast";
  s.min_opset = 6;  // Cast-1 names 'to' by a string; ONNX's converter has no adapter
  s.summary = "converts elements to the type of attribute 'to' (C conversion, saturating)";
  s.dtypes = {DType::f32, DType::i64, DType::i32, DType::boolean};
  s.infer = [](const Attrs& a, std::span<const ValueInfo> in) {
    const ValueInfo& x = ref::req_input(in, 0, "Cast", "input");
    ref::check_defined("Cast", x.dtype);
    return std::vector<TypeShape>{{cast_target(a), x.shape}};
  };
  s.reference = [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
    bool to_bool = out[0].dtype == DType::boolean;
    ref::visit_dtype(in[0].dtype, "Cast", [&](auto zs) {
      using S = decltype(zs);
      ref::visit_dtype(out[0].dtype, "Cast", [&](auto zd) {
        using D = decltype(zd);
        const S* x = in[0].as<const S>();
        D* y = out[0].as<D>();
        for (int64_t k = 0, n = out[0].numel(); k < n; ++k) y[k] = ref::convert<D>(x[k], to_bool);
      });
    });
  };
  t.push_back(std::move(s));
}

}  // namespace

void register_elementwise(std::vector<OpSpec>& t) {
  add_relu(t);
  add_clip(t);
  add_prelu(t);
  add_activation(t, "LeakyRelu", 1, "y = x < 0 ? alpha * x : x (alpha = 0.01)");
  add_activation(t, "Sigmoid", 1, "y = 1 / (1 + exp(-x))");
  add_activation(t, "Tanh", 1, "y = tanh(x)");
  add_activation(t, "HardSigmoid", 1,
                 "y = max(0, min(1, alpha * x + beta)) (alpha = 0.2, beta = 0.5)");
  add_activation(t, "HardSwish", 14, "y = x * max(0, min(1, x / 6 + 1 / 2))");
  add_activation(t, "Elu", 1, "y = x < 0 ? alpha * (exp(x) - 1) : x (alpha = 1)");
  add_activation(t, "shoal.Silu", 1,
                 "y = x * sigmoid(x) (SiLU; the compiler forms it from Sigmoid and Mul)");
  add_activation(t, "Gelu", 20,
                 "y = x * (1 + erf(x / sqrt(2))) / 2, or the tanh form with approximate='tanh' "
                 "(the compiler also forms it from Erf's decomposition)");

  add_float_unary(t, "Exp", 1, "y = exp(x)", [](auto x) { return std::exp(x); });
  add_float_unary(t, "Log", 1, "y = ln(x)", [](auto x) { return std::log(x); });
  add_float_unary(t, "Sqrt", 1, "y = sqrt(x)", [](auto x) { return std::sqrt(x); });
  add_float_unary(t, "Reciprocal", 1, "y = 1 / x", [](auto x) { return decltype(x)(1) / x; });
  add_float_unary(t, "Floor", 1, "y = floor(x)", [](auto x) { return std::floor(x); });
  add_float_unary(t, "Ceil", 1, "y = ceil(x)", [](auto x) { return std::ceil(x); });
  add_float_unary(t, "Erf", 9, "y = erf(x)", [](auto x) { return std::erf(x); });
  add_signed_unary(t, "Neg", "y = -x", [](auto x) { return negate(x); });
  add_signed_unary(t, "Abs", "y = |x|", [](auto x) { return x < decltype(x)(0) ? negate(x) : x; });
  add_not(t);
  add_cast(t);
  ref::register_elementwise_binary(t);
}

}  // namespace shoal::ops
