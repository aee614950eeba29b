// The integer convolutions and matrix products of ONNX's QOperator form:
// ConvInteger and MatMulInteger (int32 results), QLinearConv and
// QLinearMatMul (requantized uint8/int8 results). The QDQ fusion of the
// compiler (passes::fuse_qdq) also produces QLinearConv, with a fused
// activation.
//
// Requantization, in float32 arithmetic as oneDNN's int8 kernels do it (so
// that they match exactly): v = (float(acc) + float(B[m])) * s[m], with
// s[m] = float(x_scale * w_scale[m] / y_scale); then the fused activation;
// y = saturate(round_half_even(v) + y_zero_point).
#include <cmath>

#include "reference/nn_internal.hpp"

namespace shoal::ref::nn {
namespace {

bool is_8bit(DType t) { return t == DType::u8 || t == DType::i8; }

/// check_out for integer results: the shape inference's shape and dtype.
void check_int_out(const std::string& op, const TensorRef& out, const Shape& want, DType type) {
  if (out.shape != want || out.dtype != type || (out.data == nullptr && shape_numel(want) != 0))
    fail(ErrorKind::internal, op + ": reference kernel got output " + shape_str(out.shape) + " " +
                                  dtype_name(out.dtype) + ", expected " + shape_str(want) + " " +
                                  dtype_name(type));
}

void need_8bit(const std::string& op, const std::string& what, const ValueInfo& v) {
  if (!is_8bit(v.dtype))
    fail(ErrorKind::unsupported, op + ": input '" + what + "' is " + dtype_name(v.dtype) +
                                     " (only uint8 and int8 are supported)");
}

/// A zero point or scale: a scalar, or (per channel, `per` > 0) [per].
void check_param(const std::string& op, const std::string& what, const ValueInfo* v, DType want,
                 int64_t per) {
  if (!v) return;
  if (v->dtype != want)
    fail(ErrorKind::invalid_argument,
         op + ": " + what + " is " + dtype_name(v->dtype) + ", expected " + dtype_name(want));
  const int64_t n = shape_numel(v->shape);
  if (v->shape.size() > 1 || (n != 1 && (per == 0 || n != per)))
    fail(
        ErrorKind::invalid_argument,
        op + ": " + what + " has shape " + shape_str(v->shape) +
            (per ? ", expected a scalar or [" + std::to_string(per) + "]" : ", expected a scalar"));
}

/// Element i of a scalar-or-vector parameter, as int64 / float.
int64_t int_param(const TensorRef* t, int64_t i) {
  if (!t) return 0;
  const int64_t k = t->numel() == 1 ? 0 : i;
  switch (t->dtype) {
    case DType::u8:
      return t->as<const uint8_t>()[k];
    case DType::i8:
      return t->as<const int8_t>()[k];
    default:
      return t->as<const int32_t>()[k];
  }
}
float float_param(const TensorRef& t, int64_t i) {
  return t.as<const float>()[t.numel() == 1 ? 0 : i];
}
int64_t at(const TensorRef& t, int64_t i) {
  return t.dtype == DType::u8 ? int64_t(t.as<const uint8_t>()[i])
                              : int64_t(t.as<const int8_t>()[i]);
}

/// acc[n, m, out...] = sum (x - xz) * (w - wz[m]) over the window (int32,
/// as ONNX's integer ops compute it).
std::vector<int32_t> conv_acc(const Attrs& a, const TensorRef& x, const TensorRef* xz,
                              const TensorRef& w, const TensorRef* wz, WindowGeometry& g) {
  g = conv_geometry(a, x.shape, w.shape);
  Win3 v = win3(g);
  const int64_t cg = g.c_in / g.group, mg = g.c_out / g.group;
  const int64_t in_sz = v.in[0] * v.in[1] * v.in[2];
  const int64_t k_sz = v.k[0] * v.k[1] * v.k[2];
  const int64_t x0 = int_param(xz, 0);
  std::vector<int32_t> acc(size_t(g.n * g.c_out * v.out[0] * v.out[1] * v.out[2]));
  size_t yi = 0;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t m = 0; m < g.c_out; ++m) {
      const int64_t c0 = (m / mg) * cg, w0 = int_param(wz, m);
      for (int64_t o0 = 0; o0 < v.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < v.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < v.out[2]; ++o2, ++yi) {
            int64_t s = 0;
            for (int64_t c = 0; c < cg; ++c) {
              const int64_t xc = (n * g.c_in + c0 + c) * in_sz, wc = (m * cg + c) * k_sz;
              for (int64_t k0 = 0; k0 < v.k[0]; ++k0) {
                const int64_t i0 = o0 * v.s[0] - v.pb[0] + k0 * v.d[0];
                if (i0 < 0 || i0 >= v.in[0]) continue;
                for (int64_t k1 = 0; k1 < v.k[1]; ++k1) {
                  const int64_t i1 = o1 * v.s[1] - v.pb[1] + k1 * v.d[1];
                  if (i1 < 0 || i1 >= v.in[1]) continue;
                  for (int64_t k2 = 0; k2 < v.k[2]; ++k2) {
                    const int64_t i2 = o2 * v.s[2] - v.pb[2] + k2 * v.d[2];
                    if (i2 < 0 || i2 >= v.in[2]) continue;
                    s += (at(x, xc + (i0 * v.in[1] + i1) * v.in[2] + i2) - x0) *
                         (at(w, wc + (k0 * v.k[1] + k1) * v.k[2] + k2) - w0);
                  }
                }
              }
            }
            acc[yi] = int32_t(s);
          }
    }
  return acc;
}

/// y = saturate(round(act((acc + bias[m]) * s[m])) + yz), m = (i / inner) % channels.
void requantize(const Attrs& a, const std::vector<int32_t>& acc, const TensorRef* bias,
                const TensorRef& xs, const TensorRef& ws, const TensorRef& ys, const TensorRef* yz,
                int64_t channels, int64_t inner, const TensorRef& y) {
  Activation act = activation_from_attrs(a);
  const bool u8 = y.dtype == DType::u8;
  const float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
  const float zp = float(int_param(yz, 0));
  std::vector<float> s(static_cast<size_t>(channels));
  for (int64_t m = 0; m < channels; ++m)
    s[size_t(m)] = float_param(xs, 0) * float_param(ws, m) / float_param(ys, 0);
  for (size_t i = 0; i < acc.size(); ++i) {
    const int64_t m = int64_t(i) / inner % channels;
    float v = float(acc[i]);
    if (bias) v += float(bias->as<const int32_t>()[m]);
    v = act(v * s[size_t(m)]);
    v = std::min(hi, std::max(lo, std::nearbyint(v) + zp));
    if (u8)
      y.as<uint8_t>()[i] = uint8_t(v);
    else
      y.as<int8_t>()[i] = int8_t(v);
  }
}

// --- ConvInteger, QLinearConv ------------------------------------------------

std::vector<TypeShape> conv_integer_infer(const Attrs& a, Infos in) {
  const std::string op = "ConvInteger";
  const ValueInfo& x = need(in, 0, op, "x");
  const ValueInfo& w = need(in, 1, op, "w");
  need_8bit(op, "x", x);
  need_8bit(op, "w", w);
  WindowGeometry g = conv_geometry(a, x.shape, w.shape);
  check_param(op, "x_zero_point", opt_input(in, 2), x.dtype, 0);
  check_param(op, "w_zero_point", opt_input(in, 3), w.dtype, g.c_out);
  return {{DType::i32, window_out_shape(g)}};
}

void conv_integer_ref(const Attrs& a, Refs in, Refs out) {
  WindowGeometry g;
  std::vector<int32_t> acc = conv_acc(a, in[0], opt_input(in, 2), in[1], opt_input(in, 3), g);
  check_int_out("ConvInteger", out[0], window_out_shape(g), DType::i32);
  std::copy(acc.begin(), acc.end(), out[0].as<int32_t>());
}

std::vector<TypeShape> qlinear_conv_infer(const Attrs& a, Infos in) {
  const std::string op = "QLinearConv";
  const ValueInfo& x = need(in, 0, op, "x");
  const ValueInfo& w = need(in, 3, op, "w");
  need_8bit(op, "x", x);
  need_8bit(op, "w", w);
  WindowGeometry g = conv_geometry(a, x.shape, w.shape);
  check_param(op, "x_scale", &need(in, 1, op, "x_scale"), DType::f32, 0);
  check_param(op, "x_zero_point", &need(in, 2, op, "x_zero_point"), x.dtype, 0);
  check_param(op, "w_scale", &need(in, 4, op, "w_scale"), DType::f32, g.c_out);
  check_param(op, "w_zero_point", &need(in, 5, op, "w_zero_point"), w.dtype, g.c_out);
  check_param(op, "y_scale", &need(in, 6, op, "y_scale"), DType::f32, 0);
  const ValueInfo& yz = need(in, 7, op, "y_zero_point");
  need_8bit(op, "y_zero_point", yz);
  check_param(op, "y_zero_point", &yz, yz.dtype, 0);
  if (const ValueInfo* b = opt_input(in, 8))
    if (b->dtype != DType::i32 || b->shape != Shape{g.c_out})
      fail(ErrorKind::invalid_argument, op + ": bias B is " + dtype_name(b->dtype) +
                                            shape_str(b->shape) + ", expected int32[" +
                                            std::to_string(g.c_out) + "]");
  activation_from_attrs(a);
  return {{yz.dtype, window_out_shape(g)}};
}

void qlinear_conv_ref(const Attrs& a, Refs in, Refs out) {
  WindowGeometry g;
  std::vector<int32_t> acc = conv_acc(a, in[0], &in[2], in[3], &in[5], g);
  check_int_out("QLinearConv", out[0], window_out_shape(g), in[7].dtype);
  int64_t inner = 1;
  for (int64_t o : g.out) inner *= o;
  requantize(a, acc, opt_input(in, 8), in[1], in[4], in[6], &in[7], g.c_out, inner, out[0]);
}

// --- shoal.QLinearAdd ----------------------------------------------------------
// The QDQ form DequantizeLinear(a), DequantizeLinear(b) -> Add [-> act] ->
// QuantizeLinear, fused (passes::fuse_qdq): inputs a, a_scale, a_zp, b,
// b_scale, b_zp, y_scale, y_zp (per tensor; a and b of one shape), in the
// float32 arithmetic of the unfused ops, so the result is the same bits:
// y = saturate(round_half_even(act(float(a - a_zp) * a_scale +
// float(b - b_zp) * b_scale) / y_scale) + y_zp).

std::vector<TypeShape> qlinear_add_infer(const Attrs& a, Infos in) {
  const std::string op = "shoal.QLinearAdd";
  const ValueInfo& x = need(in, 0, op, "a");
  const ValueInfo& y = need(in, 3, op, "b");
  need_8bit(op, "a", x);
  need_8bit(op, "b", y);
  if (x.shape != y.shape)
    fail(ErrorKind::invalid_argument, op + ": a is " + shape_str(x.shape) + " and b " +
                                          shape_str(y.shape) + " (they must have one shape)");
  check_param(op, "a_scale", &need(in, 1, op, "a_scale"), DType::f32, 0);
  check_param(op, "a_zero_point", &need(in, 2, op, "a_zero_point"), x.dtype, 0);
  check_param(op, "b_scale", &need(in, 4, op, "b_scale"), DType::f32, 0);
  check_param(op, "b_zero_point", &need(in, 5, op, "b_zero_point"), y.dtype, 0);
  check_param(op, "y_scale", &need(in, 6, op, "y_scale"), DType::f32, 0);
  const ValueInfo& yz = need(in, 7, op, "y_zero_point");
  need_8bit(op, "y_zero_point", yz);
  check_param(op, "y_zero_point", &yz, yz.dtype, 0);
  activation_from_attrs(a);
  return {{yz.dtype, x.shape}};
}

void qlinear_add_ref(const Attrs& attrs, Refs in, Refs out) {
  check_int_out("shoal.QLinearAdd", out[0], in[0].shape, in[7].dtype);
  const Activation act = activation_from_attrs(attrs);
  const float as = float_param(in[1], 0), bs = float_param(in[4], 0), ys = float_param(in[6], 0);
  const int64_t az = int_param(&in[2], 0), bz = int_param(&in[5], 0);
  const float yz = float(int_param(&in[7], 0));
  const bool u8 = out[0].dtype == DType::u8;
  const float lo = u8 ? 0.0f : -128.0f, hi = u8 ? 255.0f : 127.0f;
  for (int64_t i = 0; i < in[0].numel(); ++i) {
    float v = float(at(in[0], i) - az) * as + float(at(in[3], i) - bz) * bs;
    v = std::min(hi, std::max(lo, std::nearbyint(act(v) / ys) + yz));
    if (u8)
      out[0].as<uint8_t>()[i] = uint8_t(v);
    else
      out[0].as<int8_t>()[i] = int8_t(v);
  }
}

// --- MatMulInteger, QLinearMatMul --------------------------------------------

/// acc = (A - az) x (B - bz[n]) with numpy matmul broadcasting.
std::vector<int32_t> matmul_acc(const std::string& op, const TensorRef& a, const TensorRef* az,
                                const TensorRef& b, const TensorRef* bz, MatMulDims& d) {
  d = matmul_dims(a.shape, b.shape, op);
  std::vector<int32_t> acc(size_t(shape_numel(d.out)));
  const int64_t a0 = int_param(az, 0), nb = shape_numel(d.batch);
  Shape pos(d.batch.size(), 0);
  for (int64_t bi = 0; bi < nb; ++bi) {
    const int64_t ao = batch_offset(d.a_batch, pos) * d.m * d.k;
    const int64_t bo = batch_offset(d.b_batch, pos) * d.k * d.n;
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t j = 0; j < d.n; ++j) {
        int64_t s = 0;
        const int64_t b0 = int_param(bz, j);
        for (int64_t k = 0; k < d.k; ++k)
          s += (at(a, ao + i * d.k + k) - a0) * (at(b, bo + k * d.n + j) - b0);
        acc[size_t((bi * d.m + i) * d.n + j)] = int32_t(s);
      }
    for (size_t r = pos.size(); r-- > 0;) {
      if (++pos[r] < d.batch[r]) break;
      pos[r] = 0;
    }
  }
  return acc;
}

int64_t b_columns(const Shape& b) { return b.size() == 1 ? 1 : b.back(); }

std::vector<TypeShape> matmul_integer_infer(const Attrs&, Infos in) {
  const std::string op = "MatMulInteger";
  const ValueInfo& a = need(in, 0, op, "A");
  const ValueInfo& b = need(in, 1, op, "B");
  need_8bit(op, "A", a);
  need_8bit(op, "B", b);
  MatMulDims d = matmul_dims(a.shape, b.shape, op);
  check_param(op, "a_zero_point", opt_input(in, 2), a.dtype, 0);
  check_param(op, "b_zero_point", opt_input(in, 3), b.dtype, b_columns(b.shape));
  return {{DType::i32, d.out}};
}

void matmul_integer_ref(const Attrs&, Refs in, Refs out) {
  MatMulDims d;
  std::vector<int32_t> acc =
      matmul_acc("MatMulInteger", in[0], opt_input(in, 2), in[1], opt_input(in, 3), d);
  check_int_out("MatMulInteger", out[0], d.out, DType::i32);
  std::copy(acc.begin(), acc.end(), out[0].as<int32_t>());
}

std::vector<TypeShape> qlinear_matmul_infer(const Attrs&, Infos in) {
  const std::string op = "QLinearMatMul";
  const ValueInfo& a = need(in, 0, op, "a");
  const ValueInfo& b = need(in, 3, op, "b");
  need_8bit(op, "a", a);
  need_8bit(op, "b", b);
  MatMulDims d = matmul_dims(a.shape, b.shape, op);
  check_param(op, "a_scale", &need(in, 1, op, "a_scale"), DType::f32, 0);
  check_param(op, "a_zero_point", &need(in, 2, op, "a_zero_point"), a.dtype, 0);
  check_param(op, "b_scale", &need(in, 4, op, "b_scale"), DType::f32, b_columns(b.shape));
  check_param(op, "b_zero_point", &need(in, 5, op, "b_zero_point"), b.dtype, b_columns(b.shape));
  check_param(op, "y_scale", &need(in, 6, op, "y_scale"), DType::f32, 0);
  const ValueInfo& yz = need(in, 7, op, "y_zero_point");
  need_8bit(op, "y_zero_point", yz);
  check_param(op, "y_zero_point", &yz, yz.dtype, 0);
  return {{yz.dtype, d.out}};
}

void qlinear_matmul_ref(const Attrs& attrs, Refs in, Refs out) {
  MatMulDims d;
  std::vector<int32_t> acc = matmul_acc("QLinearMatMul", in[0], &in[2], in[3], &in[5], d);
  check_int_out("QLinearMatMul", out[0], d.out, in[7].dtype);
  requantize(attrs, acc, nullptr, in[1], in[4], in[6], &in[7], d.n, 1, out[0]);
}

// --- shoal.QMatMul -----------------------------------------------------------
// The QDQ form of a quantized Gemm or MatMul, fused (passes::fuse_qdq):
// DequantizeLinear(a) x DequantizeLinear(b) [+ DequantizeLinear(bias)]
// [-> act -> QuantizeLinear]. Inputs a, a_scale, a_zp, b, b_scale, b_zp,
// y_scale, y_zp, bias: a [..., K] 8-bit, b a constant [K, N] int8 (per
// tensor or per column scales), bias int32 [N] in the units a_scale *
// b_scale. With y_scale and y_zp (both present) the result is requantized
// like QLinearConv's; without them it is float32:
// y = act((float(acc) + float(bias[n])) * (a_scale * b_scale[n]) + post_bias[n]),
// post_bias (input 9, float32 [N]: a float bias Add that followed, fused by
// passes::fuse_matmul_bias) added after the scale as the Add did.

std::vector<TypeShape> qmatmul_infer(const Attrs& a, Infos in) {
  const std::string op = "shoal.QMatMul";
  const ValueInfo& x = need(in, 0, op, "a");
  const ValueInfo& w = need(in, 3, op, "b");
  need_8bit(op, "a", x);
  need_8bit(op, "b", w);
  if (w.shape.size() != 2)
    fail(ErrorKind::invalid_argument, op + ": b is " + shape_str(w.shape) + ", expected [K, N]");
  MatMulDims d = matmul_dims(x.shape, w.shape, op);
  const int64_t n = w.shape[1];
  check_param(op, "a_scale", &need(in, 1, op, "a_scale"), DType::f32, 0);
  check_param(op, "a_zero_point", &need(in, 2, op, "a_zero_point"), x.dtype, 0);
  check_param(op, "b_scale", &need(in, 4, op, "b_scale"), DType::f32, n);
  check_param(op, "b_zero_point", &need(in, 5, op, "b_zero_point"), w.dtype, n);
  const ValueInfo* ys = opt_input(in, 6);
  const ValueInfo* yz = opt_input(in, 7);
  if (!ys != !yz)
    fail(ErrorKind::invalid_argument,
         op + ": y_scale and y_zero_point must both be present (8-bit y) or both absent");
  check_param(op, "y_scale", ys, DType::f32, 0);
  if (yz) {
    need_8bit(op, "y_zero_point", *yz);
    check_param(op, "y_zero_point", yz, yz->dtype, 0);
  }
  if (const ValueInfo* b = opt_input(in, 8))
    if (b->dtype != DType::i32 || b->shape != Shape{n})
      fail(ErrorKind::invalid_argument, op + ": bias is " + dtype_name(b->dtype) +
                                            shape_str(b->shape) + ", expected int32[" +
                                            std::to_string(n) + "]");
  if (const ValueInfo* pb = opt_input(in, 9))
    if (yz || pb->dtype != DType::f32 || pb->shape != Shape{n})
      fail(ErrorKind::invalid_argument, op + ": post_bias is " + dtype_name(pb->dtype) +
                                            shape_str(pb->shape) + ", expected float32[" +
                                            std::to_string(n) + "] and a float32 result");
  activation_from_attrs(a);
  return {{yz ? yz->dtype : DType::f32, d.out}};
}

void qmatmul_ref(const Attrs& attrs, Refs in, Refs out) {
  MatMulDims d;
  std::vector<int32_t> acc = matmul_acc("shoal.QMatMul", in[0], &in[2], in[3], &in[5], d);
  const TensorRef* bias = opt_input(in, 8);
  if (const TensorRef* yz = opt_input(in, 7)) {
    check_int_out("shoal.QMatMul", out[0], d.out, yz->dtype);
    requantize(attrs, acc, bias, in[1], in[4], in[6], yz, d.n, 1, out[0]);
    return;
  }
  check_int_out("shoal.QMatMul", out[0], d.out, DType::f32);
  const Activation act = activation_from_attrs(attrs);
  std::vector<float> s(size_t(d.n));
  for (int64_t j = 0; j < d.n; ++j) s[size_t(j)] = float_param(in[1], 0) * float_param(in[4], j);
  const TensorRef* post = opt_input(in, 9);
  float* y = out[0].as<float>();
  for (size_t i = 0; i < acc.size(); ++i) {
    const int64_t j = int64_t(i) % d.n;
    float v = float(acc[i]);
    if (bias) v += float(bias->as<const int32_t>()[j]);
    v *= s[size_t(j)];
    if (post) v += post->as<const float>()[j];
    y[i] = act(v);
  }
}

}  // namespace

void add_qlinear_ops(std::vector<OpSpec>& t) {
  const std::vector<DType> q = {DType::u8, DType::i8, DType::i32, DType::f32};
  t.push_back(make_spec("ConvInteger", 10, 2, 4,
                        "int32 y = conv(x - x_zero_point, w - w_zero_point) (uint8/int8 "
                        "operands, per-channel weight zero points)",
                        conv_integer_infer, conv_integer_ref, q));
  t.push_back(make_spec("QLinearConv", 10, 8, 9,
                        "quantized Conv: uint8/int8 x and w (per-channel weight scales), "
                        "int32 bias, requantized uint8/int8 y",
                        qlinear_conv_infer, qlinear_conv_ref, q));
  t.push_back(make_spec("shoal.QLinearAdd", 1, 8, 8,
                        "fused QDQ Add (internal): y = quantize(act(dequantize(a) + "
                        "dequantize(b))), per-tensor uint8/int8 operands of one shape",
                        qlinear_add_infer, qlinear_add_ref, q));
  t.push_back(make_spec("MatMulInteger", 10, 2, 4,
                        "int32 y = (A - a_zero_point) x (B - b_zero_point) (uint8/int8, "
                        "numpy broadcasting)",
                        matmul_integer_infer, matmul_integer_ref, q));
  t.push_back(make_spec("QLinearMatMul", 10, 8, 8,
                        "quantized MatMul: uint8/int8 a and b (per-column b scales), "
                        "requantized uint8/int8 y",
                        qlinear_matmul_infer, qlinear_matmul_ref, q));
  t.push_back(make_spec("shoal.QMatMul", 1, 6, 10,
                        "fused QDQ Gemm/MatMul (internal): uint8/int8 a [..., K] x constant "
                        "int8 b [K, N] (per-column scales) + int32 bias; float32 y (plus a "
                        "float32 post_bias), or requantized uint8/int8 y with y_scale and "
                        "y_zero_point",
                        qmatmul_infer, qmatmul_ref, q));
}

}  // namespace shoal::ref::nn
