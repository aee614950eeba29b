// int8 ops made of tables (passes::fuse_qdq_lookup): in a QDQ graph a float
// tensor that is an elementwise function f of one 8-bit tensor x (through
// its per-tensor DequantizeLinear: SiLU, Sigmoid, HardSwish, ...) takes at
// most 256 values, so the compiler evaluates f on all of them once (with
// these reference kernels) into a table indexed by x's byte. Four internal
// ops read such tables:
//
//   shoal.QLinearLookup(x, table) -> y: y = table[x]; the table is uint8 or
//     int8 (f's values already quantized by the QuantizeLinear that read
//     them). DequantizeLinear -> f -> QuantizeLinear, one int8 pass.
//   shoal.QLinearGlobalAveragePool(x, x_table, y_scale, y_zero_point) -> y:
//     y = quantize(GlobalAveragePool(x_table[x])), the mean as the reference
//     GlobalAveragePool computes it (a double sum over the spatial dims in
//     order, divided, rounded to float).
//   shoal.QLinearAveragePool(x, x_table, y_scale, y_zero_point) -> y, with
//     AveragePool's attributes: y = quantize(AveragePool(x_table[x])), the
//     reference AveragePool's means (double sums over each window in order).
//   shoal.QLinearMul(a, a_table, b, b_table, y_scale, y_zero_point) -> y:
//     y = quantize(a_table[a] * b_table[b]) with numpy broadcasting (the
//     squeeze-excitation's channel scale: b is [N, C, 1, 1]).
//
// x_table, a_table, b_table: float32[256]. quantize(v) = saturate(
// round_half_even(v / y_scale) + y_zero_point), NaN -> 0, as QuantizeLinear.
// Each equals the unfused graph on the reference kernels bit for bit.
#include <cmath>

#include "ops/op_table.hpp"
#include "reference/nn_internal.hpp"

namespace shoal::ref::nn {
namespace {

bool is_8bit(DType t) { return t == DType::u8 || t == DType::i8; }

void need_8bit(const std::string& op, const std::string& what, const ValueInfo& v) {
  if (!is_8bit(v.dtype))
    fail(ErrorKind::invalid_argument, op + ": input '" + what + "' is " + dtype_name(v.dtype) +
                                          " (only uint8 and int8 are supported)");
}

void need_table(const std::string& op, const std::string& what, const ValueInfo& v,
                bool float_table) {
  const bool ok = float_table ? v.dtype == DType::f32 : is_8bit(v.dtype);
  if (!ok || shape_numel(v.shape) != 256)
    fail(ErrorKind::invalid_argument,
         op + ": " + what + " is " + dtype_name(v.dtype) + shape_str(v.shape) + ", expected " +
             (float_table ? "float32" : "uint8 or int8") + " with 256 entries");
}

void need_scalar(const std::string& op, const std::string& what, const ValueInfo& v, bool f32) {
  if (shape_numel(v.shape) != 1 || (f32 ? v.dtype != DType::f32 : !is_8bit(v.dtype)))
    fail(ErrorKind::invalid_argument, op + ": " + what + " is " + dtype_name(v.dtype) +
                                          shape_str(v.shape) + ", expected a " +
                                          (f32 ? "float32" : "uint8 or int8") + " scalar");
}

/// The byte of element i of an 8-bit tensor: the table index.
uint8_t byte_at(const TensorRef& t, int64_t i) { return t.as<const uint8_t>()[i]; }

/// QuantizeLinear's arithmetic (reference/quantize_ops.cpp).
struct Quantizer {
  float scale, zp, lo, hi;
  bool u8;
  Quantizer(const TensorRef& s, const TensorRef& z) {
    scale = s.as<const float>()[0];
    u8 = z.dtype == DType::u8;
    zp = u8 ? float(z.as<const uint8_t>()[0]) : float(z.as<const int8_t>()[0]);
    lo = u8 ? 0.0f : -128.0f;
    hi = u8 ? 255.0f : 127.0f;
  }
  void store(float x, const TensorRef& y, int64_t i) const {
    float v = std::nearbyint(x / scale) + zp;
    v = std::isnan(v) ? 0.0f : std::min(hi, std::max(lo, v));
    if (u8)
      y.as<uint8_t>()[i] = uint8_t(v);
    else
      y.as<int8_t>()[i] = int8_t(v);
  }
};

void check_8bit_out(const std::string& op, const TensorRef& out, const Shape& want, DType type) {
  if (out.shape != want || out.dtype != type || (out.data == nullptr && shape_numel(want) != 0))
    fail(ErrorKind::internal, op + ": reference kernel got output " + shape_str(out.shape) + " " +
                                  dtype_name(out.dtype) + ", expected " + shape_str(want) + " " +
                                  dtype_name(type));
}

// --- shoal.QLinearLookup --------------------------------------------------------

std::vector<TypeShape> lookup_infer(const Attrs&, Infos in) {
  const std::string op = "shoal.QLinearLookup";
  const ValueInfo& x = need(in, 0, op, "x");
  need_8bit(op, "x", x);
  const ValueInfo& t = need(in, 1, op, "table");
  need_table(op, "table", t, false);
  return {{t.dtype, x.shape}};
}

void lookup_ref(const Attrs&, Refs in, Refs out) {
  check_8bit_out("shoal.QLinearLookup", out[0], in[0].shape, in[1].dtype);
  const uint8_t* t = in[1].as<const uint8_t>();
  uint8_t* y = out[0].as<uint8_t>();
  for (int64_t i = 0; i < in[0].numel(); ++i) y[i] = t[byte_at(in[0], i)];
}

// --- shoal.QLinearGlobalAveragePool ---------------------------------------------

std::vector<TypeShape> gap_infer(const Attrs&, Infos in) {
  const std::string op = "shoal.QLinearGlobalAveragePool";
  const ValueInfo& x = need(in, 0, op, "x");
  need_8bit(op, "x", x);
  if (x.shape.size() < 3)
    fail(ErrorKind::invalid_argument,
         op + ": input x has shape " + shape_str(x.shape) + "; expected rank >= 3");
  need_table(op, "x_table", need(in, 1, op, "x_table"), true);
  need_scalar(op, "y_scale", need(in, 2, op, "y_scale"), true);
  const ValueInfo& yz = need(in, 3, op, "y_zero_point");
  need_scalar(op, "y_zero_point", yz, false);
  Shape y = x.shape;
  for (size_t i = 2; i < y.size(); ++i) y[i] = 1;
  return {{yz.dtype, y}};
}

void gap_ref(const Attrs&, Refs in, Refs out) {
  const Shape& xs = in[0].shape;
  Shape ys = xs;
  for (size_t i = 2; i < ys.size(); ++i) ys[i] = 1;
  check_8bit_out("shoal.QLinearGlobalAveragePool", out[0], ys, in[3].dtype);
  const float* t = in[1].as<const float>();
  const Quantizer q(in[2], in[3]);
  const int64_t planes = xs[0] * xs[1];
  const int64_t sz = planes ? in[0].numel() / planes : 0;
  for (int64_t p = 0; p < planes; ++p) {
    double s = 0;
    for (int64_t i = 0; i < sz; ++i) s += t[byte_at(in[0], p * sz + i)];
    q.store(float(s / double(sz)), out[0], p);
  }
}

// --- shoal.QLinearAveragePool -----------------------------------------------------
// AveragePool itself (its shape inference and reference kernel, from the op
// table) on the float values x_table[x], then quantized.

const OpSpec& average_pool() {
  static const OpSpec* spec = ops::find_op("AveragePool");
  if (!spec) fail(ErrorKind::internal, "the op table lacks AveragePool");
  return *spec;
}

std::vector<TypeShape> avgpool_infer(const Attrs& a, Infos in) {
  const std::string op = "shoal.QLinearAveragePool";
  const ValueInfo& x = need(in, 0, op, "x");
  need_8bit(op, "x", x);
  need_table(op, "x_table", need(in, 1, op, "x_table"), true);
  need_scalar(op, "y_scale", need(in, 2, op, "y_scale"), true);
  const ValueInfo& yz = need(in, 3, op, "y_zero_point");
  need_scalar(op, "y_zero_point", yz, false);
  ValueInfo xf = x;
  xf.dtype = DType::f32;
  xf.constant = nullptr;
  std::vector<TypeShape> ts = average_pool().infer(a, std::span<const ValueInfo>(&xf, 1));
  return {{yz.dtype, ts.at(0).shape}};
}

void avgpool_ref(const Attrs& a, Refs in, Refs out) {
  const float* t = in[1].as<const float>();
  std::vector<float> x(size_t(in[0].numel())), y(size_t(out[0].numel()));
  for (size_t i = 0; i < x.size(); ++i) x[i] = t[byte_at(in[0], int64_t(i))];
  const TensorRef xf{DType::f32, in[0].shape, x.data()}, yf{DType::f32, out[0].shape, y.data()};
  average_pool().reference(a, std::span<const TensorRef>(&xf, 1),
                           std::span<const TensorRef>(&yf, 1));
  const Quantizer q(in[2], in[3]);
  for (size_t i = 0; i < y.size(); ++i) q.store(y[i], out[0], int64_t(i));
}

// --- shoal.QLinearMul -------------------------------------------------------------

std::vector<TypeShape> mul_infer(const Attrs&, Infos in) {
  const std::string op = "shoal.QLinearMul";
  const ValueInfo& a = need(in, 0, op, "a");
  const ValueInfo& b = need(in, 2, op, "b");
  need_8bit(op, "a", a);
  need_8bit(op, "b", b);
  need_table(op, "a_table", need(in, 1, op, "a_table"), true);
  need_table(op, "b_table", need(in, 3, op, "b_table"), true);
  need_scalar(op, "y_scale", need(in, 4, op, "y_scale"), true);
  const ValueInfo& yz = need(in, 5, op, "y_zero_point");
  need_scalar(op, "y_zero_point", yz, false);
  return {{yz.dtype, broadcast_shape(op, a.shape, b.shape)}};
}

void mul_ref(const Attrs&, Refs in, Refs out) {
  const Shape ys = broadcast_shape("shoal.QLinearMul", in[0].shape, in[2].shape);
  check_8bit_out("shoal.QLinearMul", out[0], ys, in[5].dtype);
  const float* ta = in[1].as<const float>();
  const float* tb = in[3].as<const float>();
  const Quantizer q(in[4], in[5]);
  const std::vector<int64_t> ia = broadcast_index(in[0].shape, ys);
  const std::vector<int64_t> ib = broadcast_index(in[2].shape, ys);
  for (size_t i = 0; i < ia.size(); ++i)
    q.store(ta[byte_at(in[0], ia[i])] * tb[byte_at(in[2], ib[i])], out[0], int64_t(i));
}

}  // namespace

void add_qlookup_ops(std::vector<OpSpec>& t) {
  const std::vector<DType> q = {DType::u8, DType::i8, DType::f32};
  t.push_back(make_spec("shoal.QLinearLookup", 1, 2, 2,
                        "fused QDQ elementwise function (internal): y = table[x], a 256-entry "
                        "uint8/int8 table of quantize(f(dequantize(x)))",
                        lookup_infer, lookup_ref, q));
  t.push_back(make_spec("shoal.QLinearGlobalAveragePool", 1, 4, 4,
                        "fused QDQ GlobalAveragePool (internal): y = quantize(mean over the "
                        "spatial dims of x_table[x]), uint8/int8 x and y",
                        gap_infer, gap_ref, q));
  t.push_back(make_spec("shoal.QLinearAveragePool", 1, 4, 4,
                        "fused QDQ AveragePool (internal): y = quantize(AveragePool(x_table[x])), "
                        "uint8/int8 x and y, AveragePool's attributes",
                        avgpool_infer, avgpool_ref, q));
  t.push_back(make_spec("shoal.QLinearMul", 1, 6, 6,
                        "fused QDQ Mul (internal): y = quantize(a_table[a] * b_table[b]), "
                        "uint8/int8 operands with numpy broadcasting",
                        mul_infer, mul_ref, q));
}

}  // namespace shoal::ref::nn
