// Window geometry of convolutions and pools (ONNX shape-inference rules) and
// the fused activations.
#include "reference/geometry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "shoal/error.hpp"

namespace shoal::ref {
namespace {

// Largest kernel size, stride, dilation or pad accepted.
constexpr int64_t kMaxWindowValue = int64_t(1) << 31;

[[noreturn]] void invalid(const std::string& op, const std::string& msg) {
  throw Error(ErrorKind::invalid_argument, op + ": " + msg);
}

std::string dims_str(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? "x" : "") + std::to_string(v[i]);
  return s;
}

std::string list_str(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// Checks that x has 1-3 spatial dims ([N,C,spatial...]).
void check_input_rank(const std::string& op, const Shape& x) {
  if (x.size() < 3)
    invalid(op, "input X has shape " + shape_str(x) +
                    "; expected rank >= 3 ([N,C,spatial...])");
  if (x.size() > 5)
    throw Error(ErrorKind::unsupported,
                op + ": input X has shape " + shape_str(x) + " with " +
                    std::to_string(x.size() - 2) +
                    " spatial dims; at most 3 are supported");
  for (int64_t d : x)
    if (d < 0) invalid(op, "input X has a negative dim: " + shape_str(x));
}

// A per-spatial-dim ints attribute: `n` values, each >= min_value.
std::vector<int64_t> spatial_ints(const std::string& op, const Attrs& a,
                                  const std::string& name, size_t n,
                                  int64_t def, int64_t min_value) {
  std::vector<int64_t> v = a.ints(name, std::vector<int64_t>(n, def));
  if (v.size() != n)
    invalid(op, "attribute '" + name + "' has " + std::to_string(v.size()) +
                    " values [" + list_str(v) + "], expected " +
                    std::to_string(n) + " (one per spatial dim)");
  for (int64_t x : v)
    if (x < min_value)
      invalid(op, "attribute '" + name + "' = [" + list_str(v) +
                      "] must be >= " + std::to_string(min_value));
  for (int64_t x : v)  // absurd values would overflow the window arithmetic
    if (x > kMaxWindowValue)
      invalid(op, "attribute '" + name + "' = [" + list_str(v) +
                      "] must be <= 2^31");
  return v;
}

std::vector<int64_t> effective_kernel(const std::vector<int64_t>& k,
                                      const std::vector<int64_t>& d) {
  std::vector<int64_t> e(k.size());
  for (size_t i = 0; i < k.size(); ++i) e[i] = (k[i] - 1) * d[i] + 1;
  return e;
}

// Explicit "pads" attribute [b1..bn, e1..en], all >= 0.
void explicit_pads(const std::string& op, const Attrs& a, size_t n,
                   WindowGeometry& g) {
  std::vector<int64_t> p = a.ints("pads", std::vector<int64_t>(2 * n, 0));
  if (p.size() != 2 * n)
    invalid(op, "attribute 'pads' has " + std::to_string(p.size()) +
                    " values [" + list_str(p) + "], expected " +
                    std::to_string(2 * n) + " (begin and end per spatial dim)");
  for (int64_t x : p)
    if (x < 0)
      invalid(op,
              "attribute 'pads' = [" + list_str(p) + "] has a negative pad");
  for (int64_t x : p)
    if (x > kMaxWindowValue)
      invalid(op, "attribute 'pads' = [" + list_str(p) + "] has a pad beyond 2^31");
  g.pad_begin.assign(p.begin(), p.begin() + long(n));
  g.pad_end.assign(p.begin() + long(n), p.end());
}

// Attribute auto_pad: NOTSET (also when empty or absent), VALID, SAME_UPPER
// or SAME_LOWER.
std::string auto_pad_mode(const std::string& op, const Attrs& a) {
  std::string mode = a.s("auto_pad", "NOTSET");
  if (mode.empty()) mode = "NOTSET";
  if (mode != "NOTSET" && mode != "VALID" && mode != "SAME_UPPER" &&
      mode != "SAME_LOWER")
    invalid(op, "attribute 'auto_pad' = '" + mode +
                    "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
  return mode;
}

// Splits a total SAME padding of spatial dim i: the odd one goes at the end
// (SAME_UPPER) or the beginning (SAME_LOWER).
void split_same_pad(const std::string& mode, int64_t total, size_t i,
                    WindowGeometry& g) {
  int64_t small = total / 2, big = total - small;
  g.pad_begin[i] = mode == "SAME_UPPER" ? small : big;
  g.pad_end[i] = mode == "SAME_UPPER" ? big : small;
}

// Resolves auto_pad / pads for Conv and pools (ONNX convPoolShapeInference).
// Returns true when the pads came from the explicit attribute.
bool resolve_pads(const std::string& op, const Attrs& a, WindowGeometry& g) {
  size_t n = g.in.size();
  std::string mode = auto_pad_mode(op, a);
  if (mode == "NOTSET") {
    explicit_pads(op, a, n, g);
    return true;
  }
  g.pad_begin.assign(n, 0);
  g.pad_end.assign(n, 0);
  if (mode == "VALID") return false;
  std::vector<int64_t> ek = effective_kernel(g.kernel, g.dilation);
  for (size_t i = 0; i < n; ++i) {
    // Output = ceil(in / stride); pad just enough for it.
    int64_t out = (g.in[i] + g.stride[i] - 1) / g.stride[i];
    int64_t total =
        std::max<int64_t>(0, (out - 1) * g.stride[i] + ek[i] - g.in[i]);
    split_same_pad(mode, total, i, g);
  }
  return false;
}

// Output sizes of a sliding window; ceil_mode drops a last window that would
// start in the end padding (as PyTorch and ONNX >= 1.16 do).
void compute_out(const std::string& op, bool ceil_mode, WindowGeometry& g) {
  size_t n = g.in.size();
  std::vector<int64_t> ek = effective_kernel(g.kernel, g.dilation);
  std::vector<int64_t> padded(n);
  bool too_big = false;
  for (size_t i = 0; i < n; ++i) {
    padded[i] = g.in[i] + g.pad_begin[i] + g.pad_end[i];
    too_big |= ek[i] > padded[i];
  }
  if (too_big) {
    std::string k = "kernel " + dims_str(g.kernel);
    bool dilated = false;
    for (int64_t d : g.dilation) dilated |= d != 1;
    if (dilated)
      k += " with dilations " + dims_str(g.dilation) + " (spanning " +
           dims_str(ek) + ")";
    invalid(op, k + " larger than padded input " + dims_str(padded) +
                    " (input " + dims_str(g.in) + ", pads begin [" +
                    list_str(g.pad_begin) + "] end [" + list_str(g.pad_end) +
                    "])");
  }
  g.out.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    int64_t span = padded[i] - ek[i], s = g.stride[i];
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= g.in[i] + g.pad_begin[i]) --o;
    g.out[i] = o;
  }
}

// What Conv and ConvTranspose check first: the ranks of X and W and the
// group; sets group, n and c_in.
WindowGeometry conv_head(const std::string& op, const Attrs& a, const Shape& x,
                         const Shape& w) {
  check_input_rank(op, x);
  if (w.size() != x.size())
    invalid(op, "weight W has shape " + shape_str(w) +
                    " but input X has shape " + shape_str(x) +
                    "; their ranks must match");
  for (const Shape* s : {&x, &w})  // bounds the window arithmetic below
    for (int64_t d : *s)
      if (d > kMaxWindowValue)
        invalid(op,
                (s == &x ? "input X " : "weight W ") + shape_str(*s) + " has a dim beyond 2^31");
  WindowGeometry g;
  g.group = a.i("group", 1);
  if (g.group < 1 || g.group > kMaxWindowValue)
    invalid(op, "attribute 'group' = " + std::to_string(g.group) +
                    " must be in [1, 2^31]");
  g.n = x[0];
  g.c_in = x[1];
  return g;
}

// The window of Conv and ConvTranspose after the channel checks: spatial
// input sizes, kernel (from W, checked against 'kernel_shape'), strides and
// dilations.
void conv_window(const std::string& op, const Attrs& a, const Shape& x,
                 const Shape& w, WindowGeometry& g) {
  size_t n = x.size() - 2;
  g.in.assign(x.begin() + 2, x.end());
  g.kernel.assign(w.begin() + 2, w.end());
  for (int64_t k : g.kernel)
    if (k < 1) invalid(op, "weight W " + shape_str(w) + " has an empty kernel");
  if (a.has("kernel_shape") && a.ints("kernel_shape") != g.kernel)
    invalid(op, "attribute 'kernel_shape' = [" +
                    list_str(a.ints("kernel_shape")) +
                    "] disagrees with weight W " + shape_str(w));
  g.stride = spatial_ints(op, a, "strides", n, 1, 1);
  g.dilation = spatial_ints(op, a, "dilations", n, 1, 1);
}

}  // namespace

WindowGeometry conv_geometry(const Attrs& a, const Shape& x, const Shape& w) {
  const std::string op = "Conv";
  WindowGeometry g = conv_head(op, a, x, w);
  g.c_out = w[0];
  if (g.c_in % g.group != 0)
    invalid(op, "channel mismatch: input channels " + std::to_string(g.c_in) +
                    " not divisible by group " + std::to_string(g.group));
  if (w[1] * g.group != g.c_in)
    invalid(op, "channel mismatch: input X " + shape_str(x) + " has " +
                    std::to_string(g.c_in) + " channels but weight W " +
                    shape_str(w) + " with group " + std::to_string(g.group) +
                    " expects " + std::to_string(w[1] * g.group));
  if (g.c_out % g.group != 0)
    invalid(op, "channel mismatch: output channels " + std::to_string(g.c_out) +
                    " (W " + shape_str(w) + ") not divisible by group " +
                    std::to_string(g.group));
  conv_window(op, a, x, w, g);
  resolve_pads(op, a, g);
  compute_out(op, false, g);
  return g;
}

WindowGeometry conv_transpose_geometry(const Attrs& a, const Shape& x,
                                       const Shape& w) {
  const std::string op = "ConvTranspose";
  WindowGeometry g = conv_head(op, a, x, w);
  size_t n = x.size() - 2;
  if (w[0] != g.c_in)
    invalid(op, "channel mismatch: input X " + shape_str(x) + " has " +
                    std::to_string(g.c_in) + " channels but weight W " +
                    shape_str(w) + " expects " + std::to_string(w[0]));
  if (g.c_in % g.group != 0)
    invalid(op, "channel mismatch: input channels " + std::to_string(g.c_in) +
                    " not divisible by group " + std::to_string(g.group));
  g.c_out = w[1] * g.group;
  conv_window(op, a, x, w, g);
  g.output_padding = spatial_ints(op, a, "output_padding", n, 0, 0);
  std::vector<int64_t> ek = effective_kernel(g.kernel, g.dilation);
  // Full (unpadded) output extent of each spatial dim.
  std::vector<int64_t> full(n);
  for (size_t i = 0; i < n; ++i)
    full[i] = g.stride[i] * (g.in[i] - 1) + g.output_padding[i] + ek[i];

  std::string mode = auto_pad_mode(op, a);

  std::vector<int64_t> target;  // requested output sizes, if any
  if (a.has("output_shape")) {
    std::vector<int64_t> os = a.ints("output_shape");
    if (os.size() == n + 2) os.erase(os.begin(), os.begin() + 2);
    if (os.size() != n)
      invalid(op, "attribute 'output_shape' = [" +
                      list_str(a.ints("output_shape")) +
                      "] must have one value per spatial dim (" +
                      std::to_string(n) + ")");
    for (int64_t v : os)
      if (v < 1 || v > kMaxWindowValue)
        invalid(op, "attribute 'output_shape' = [" + list_str(os) + "] must be in [1, 2^31]");
    target = os;
  } else if (mode == "SAME_UPPER" || mode == "SAME_LOWER") {
    target.resize(n);
    for (size_t i = 0; i < n; ++i) target[i] = g.in[i] * g.stride[i];
  }

  if (!target.empty()) {
    // Pads follow from the requested size (ONNX: pads are then ignored).
    g.pad_begin.assign(n, 0);
    g.pad_end.assign(n, 0);
    for (size_t i = 0; i < n; ++i)
      split_same_pad(mode, std::max<int64_t>(0, full[i] - target[i]), i, g);
    g.out = target;
    return g;
  }
  if (mode == "VALID") {
    g.pad_begin.assign(n, 0);
    g.pad_end.assign(n, 0);
  } else {
    explicit_pads(op, a, n, g);
  }
  g.out.resize(n);
  for (size_t i = 0; i < n; ++i) {
    g.out[i] = full[i] - g.pad_begin[i] - g.pad_end[i];
    if (g.out[i] < 1)
      invalid(op, "pads begin [" + list_str(g.pad_begin) + "] end [" +
                      list_str(g.pad_end) + "] exceed the output extent " +
                      dims_str(full) + " (input " + dims_str(g.in) + ")");
  }
  return g;
}

WindowGeometry pool_geometry(const Attrs& a, const Shape& x) {
  const std::string op = "pool";
  check_input_rank(op, x);
  size_t n = x.size() - 2;
  WindowGeometry g;
  g.n = x[0];
  g.c_in = g.c_out = x[1];
  g.group = 1;
  g.in.assign(x.begin() + 2, x.end());
  if (!a.has("kernel_shape"))
    invalid(op, "required attribute 'kernel_shape' is missing");
  g.kernel = spatial_ints(op, a, "kernel_shape", n, 1, 1);
  g.stride = spatial_ints(op, a, "strides", n, 1, 1);
  g.dilation = spatial_ints(op, a, "dilations", n, 1, 1);
  if (resolve_pads(op, a, g)) {
    for (size_t i = 0; i < n; ++i)
      if (g.pad_begin[i] >= g.kernel[i] || g.pad_end[i] >= g.kernel[i])
        invalid(op, "pads begin [" + list_str(g.pad_begin) + "] end [" +
                        list_str(g.pad_end) + "] must be smaller than kernel " +
                        dims_str(g.kernel));
  }
  int64_t ceil_mode = a.i("ceil_mode", 0);
  compute_out(op, ceil_mode != 0, g);
  return g;
}

// --- activations -------------------------------------------------------------

float Activation::operator()(float x) const {
  if (std::isnan(x)) return x;  // every activation of NaN is NaN (ONNX, numpy)
  switch (kind) {
    case Act::none:
      return x;
    case Act::relu:
      return x > 0 ? x : 0.0f;
    case Act::leaky_relu:
      return x >= 0 ? x : alpha * x;
    case Act::clip:
      return std::min(std::max(x, alpha), beta);
    case Act::sigmoid:
      return float(1.0 / (1.0 + std::exp(-double(x))));
    case Act::tanh:
      return std::tanh(x);
    case Act::hard_sigmoid:
      return std::max(0.0f, std::min(1.0f, alpha * x + beta));
    case Act::hard_swish:
      return x * std::max(0.0f, std::min(1.0f, alpha * x + beta));
    case Act::elu:
      return x >= 0 ? x : alpha * (std::exp(x) - 1.0f);
    case Act::silu:
      return float(double(x) / (1.0 + std::exp(-double(x))));
    case Act::gelu: {
      const double v = x;
      if (alpha != 0)  // approximate = "tanh"
        return float(0.5 * v *
                     (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
      return float(0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))));
    }
  }
  return x;
}

namespace {

struct ActInfo {
  const char* name;
  Act kind;
  float alpha, beta;
};

const ActInfo* find_act(const std::string& op) {
  static const ActInfo table[] = {
      {"Relu", Act::relu, 0, 0},
      {"LeakyRelu", Act::leaky_relu, 0.01f, 0},
      {"Clip", Act::clip, std::numeric_limits<float>::lowest(),
       std::numeric_limits<float>::max()},
      {"Sigmoid", Act::sigmoid, 0, 0},
      {"Tanh", Act::tanh, 0, 0},
      {"HardSigmoid", Act::hard_sigmoid, 0.2f, 0.5f},
      {"HardSwish", Act::hard_swish, 1.0f / 6.0f, 0.5f},
      {"Elu", Act::elu, 1.0f, 0},
      {"shoal.Silu", Act::silu, 0, 0},
      {"Gelu", Act::gelu, 0, 0},
  };
  for (const ActInfo& i : table)
    if (op == i.name) return &i;
  return nullptr;
}

const ActInfo& require_act(const std::string& op) {
  if (const ActInfo* i = find_act(op)) return *i;
  throw Error(ErrorKind::unsupported,
              "fused activation '" + op +
                  "' is not supported (supported: Relu, LeakyRelu, Clip, "
                  "Sigmoid, Tanh, HardSigmoid, HardSwish, Elu, shoal.Silu, Gelu)");
}

}  // namespace

Attrs pointwise_attrs(const Attrs& a) {
  Attrs p;
  if (a.has("pw_activation")) {
    p.set("activation", a.s("pw_activation", ""));
    p.set("activation_alpha", a.f("pw_activation_alpha", 0.0f));
    p.set("activation_beta", a.f("pw_activation_beta", 0.0f));
  }
  return p;
}

Activation activation_from_attrs(const Attrs& a) {
  std::string op = a.s("activation", "");
  if (op.empty()) return Activation{};
  float alpha = 0, beta = 0;
  activation_defaults(op, alpha, beta);
  if (a.has("activation_alpha")) alpha = a.f("activation_alpha", alpha);
  if (a.has("activation_beta")) beta = a.f("activation_beta", beta);
  return activation_of(op, alpha, beta);
}

Activation activation_of(const std::string& op, float alpha, float beta) {
  Activation act;
  act.kind = require_act(op).kind;
  act.alpha = alpha;
  act.beta = beta;
  if (act.kind == Act::hard_swish) {  // ONNX fixes HardSwish's parameters
    act.alpha = 1.0f / 6.0f;
    act.beta = 0.5f;
  }
  return act;
}

void activation_defaults(const std::string& op, float& alpha, float& beta) {
  const ActInfo& i = require_act(op);
  alpha = i.alpha;
  beta = i.beta;
}

bool is_fusable_activation(const std::string& op) {
  return find_act(op) != nullptr;
}

}  // namespace shoal::ref
