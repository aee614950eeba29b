// QuantizeLinear and DequantizeLinear (ONNX opsets 10-21): the linear
// quantization of QDQ models, per tensor or per axis (1-D scales along
// `axis`). y = saturate(round_half_even(x / scale) + zero_point) and
// y = (x - zero_point) * scale. int8/uint8 (and int32 for dequantization);
// blocked quantization (opset 21's block_size) and float8 are not supported.
#include <cfenv>

#include "reference/ref_util.hpp"

namespace shoal::ops {
namespace {

using ref::fail;

/// The per-axis geometry of a quantization: element k of x uses scale and
/// zero point ((k / inner) % count), count = 1 per tensor.
struct QuantAxis {
  int64_t inner = 1, count = 1;
};

QuantAxis quant_axis(const std::string& op, const Attrs& a, const Shape& x, const Shape& scale,
                     const Shape* zp) {
  if (a.i("block_size", 0) != 0)
    fail(ErrorKind::unsupported, op + ": blocked quantization (block_size) is not supported");
  if (zp && *zp != scale)
    fail(ErrorKind::invalid_argument, op + ": zero point of shape " + shape_str(*zp) +
                                          " does not match the scale's " + shape_str(scale));
  const int64_t n = shape_numel(scale);
  if (scale.empty() || (scale.size() == 1 && n == 1)) return {};
  if (scale.size() != 1)
    fail(ErrorKind::invalid_argument,
         op + ": scale of shape " + shape_str(scale) + ": expected a scalar or a 1-D tensor");
  const int64_t axis = ref::normalize_axis(op, a.i("axis", 1), int64_t(x.size()), "axis");
  if (x[size_t(axis)] != n)
    fail(ErrorKind::invalid_argument,
         op + ": " + std::to_string(n) + " scales for axis " + std::to_string(axis) + " of size " +
             std::to_string(x[size_t(axis)]) + " (input " + shape_str(x) + ")");
  QuantAxis q;
  q.count = n;
  for (size_t d = size_t(axis) + 1; d < x.size(); ++d) q.inner *= x[d];
  return q;
}

template <class Q>
void quantize(const float* x, const float* scale, const Q* zp, Q* y, int64_t n, QuantAxis g) {
  constexpr float lo = float(std::numeric_limits<Q>::min());
  constexpr float hi = float(std::numeric_limits<Q>::max());
  for (int64_t k = 0; k < n; ++k) {
    const int64_t c = (k / g.inner) % g.count;
    // nearbyint rounds half to even in the default rounding mode, as ONNX says.
    float v = std::nearbyint(x[k] / scale[c]) + (zp ? float(zp[c]) : 0.0f);
    v = std::isnan(v) ? 0.0f : std::min(hi, std::max(lo, v));
    y[k] = Q(v);
  }
}

template <class Q>
void dequantize(const Q* x, const float* scale, const Q* zp, float* y, int64_t n, QuantAxis g) {
  for (int64_t k = 0; k < n; ++k) {
    const int64_t c = (k / g.inner) % g.count;
    y[k] = float(int64_t(x[k]) - (zp ? int64_t(zp[c]) : 0)) * scale[c];
  }
}

void check_scale(const std::string& op, const ValueInfo& s) {
  if (s.dtype != DType::f32)
    fail(ErrorKind::unsupported,
         op + ": scale is " + std::string(dtype_name(s.dtype)) + "; float32 only");
}

OpSpec quantize_linear() {
  auto infer = [](const Attrs& a, std::span<const ValueInfo> in) {
    const std::string op = "QuantizeLinear";
    const ValueInfo& x = ref::req_input(in, 0, op, "x");
    const ValueInfo& s = ref::req_input(in, 1, op, "y_scale");
    const ValueInfo* zp = ref::opt_input(in, 2);
    if (x.dtype != DType::f32)
      fail(ErrorKind::unsupported,
           op + ": x is " + std::string(dtype_name(x.dtype)) + "; float32 only");
    check_scale(op, s);
    DType out = DType::u8;
    if (zp) out = zp->dtype;
    if (a.has("output_dtype") && a.i("output_dtype", 0) != 0) {
      const int64_t code = a.i("output_dtype", 0);
      if (code != int64_t(DType::u8) && code != int64_t(DType::i8))
        fail(ErrorKind::unsupported, op + ": output_dtype " + std::to_string(code) +
                                         " (only uint8 and int8 are supported)");
      if (zp && DType(code) != zp->dtype)
        fail(ErrorKind::invalid_argument, op + ": output_dtype differs from the zero point's");
      out = DType(code);
    }
    if (out != DType::u8 && out != DType::i8)
      fail(ErrorKind::unsupported, op + ": quantizing to " + std::string(dtype_name(out)) +
                                       " (only uint8 and int8 are supported)");
    quant_axis(op, a, x.shape, s.shape, zp ? &zp->shape : nullptr);
    return std::vector<TypeShape>{{out, x.shape}};
  };
  auto kernel = [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
    const TensorRef* zp = ref::opt_input(in, 2);
    const QuantAxis g =
        quant_axis("QuantizeLinear", a, in[0].shape, in[1].shape, zp ? &zp->shape : nullptr);
    const float* x = in[0].as<const float>();
    const float* s = in[1].as<const float>();
    if (out[0].dtype == DType::u8)
      quantize(x, s, zp ? zp->as<const uint8_t>() : nullptr, out[0].as<uint8_t>(), out[0].numel(),
               g);
    else
      quantize(x, s, zp ? zp->as<const int8_t>() : nullptr, out[0].as<int8_t>(), out[0].numel(), g);
  };
  return ref::make_spec("QuantizeLinear", 10, 2, 3,
                        "y = saturate(round(x / y_scale) + y_zero_point), to uint8 or int8; per "
                        "tensor or per axis",
                        infer, kernel, {DType::f32, DType::u8, DType::i8});
}

OpSpec dequantize_linear() {
  auto infer = [](const Attrs& a, std::span<const ValueInfo> in) {
    const std::string op = "DequantizeLinear";
    const ValueInfo& x = ref::req_input(in, 0, op, "x");
    const ValueInfo& s = ref::req_input(in, 1, op, "x_scale");
    const ValueInfo* zp = ref::opt_input(in, 2);
    if (x.dtype != DType::u8 && x.dtype != DType::i8 && x.dtype != DType::i32)
      fail(ErrorKind::unsupported, op + ": x is " + std::string(dtype_name(x.dtype)) +
                                       " (only uint8, int8 and int32 are supported)");
    if (zp && zp->dtype != x.dtype)
      fail(ErrorKind::invalid_argument, op + ": the zero point is " +
                                            std::string(dtype_name(zp->dtype)) + ", x " +
                                            dtype_name(x.dtype));
    check_scale(op, s);
    quant_axis(op, a, x.shape, s.shape, zp ? &zp->shape : nullptr);
    return std::vector<TypeShape>{{DType::f32, x.shape}};
  };
  auto kernel = [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
    const TensorRef* zp = ref::opt_input(in, 2);
    const QuantAxis g =
        quant_axis("DequantizeLinear", a, in[0].shape, in[1].shape, zp ? &zp->shape : nullptr);
    const float* s = in[1].as<const float>();
    float* y = out[0].as<float>();
    const int64_t n = out[0].numel();
    switch (in[0].dtype) {
      case DType::u8:
        dequantize(in[0].as<const uint8_t>(), s, zp ? zp->as<const uint8_t>() : nullptr, y, n, g);
        break;
      case DType::i8:
        dequantize(in[0].as<const int8_t>(), s, zp ? zp->as<const int8_t>() : nullptr, y, n, g);
        break;
      default:
        dequantize(in[0].as<const int32_t>(), s, zp ? zp->as<const int32_t>() : nullptr, y, n, g);
    }
  };
  return ref::make_spec("DequantizeLinear", 10, 2, 3,
                        "y = (x - x_zero_point) * x_scale, from uint8, int8 or int32; per tensor "
                        "or per axis",
                        infer, kernel, {DType::f32, DType::u8, DType::i8, DType::i32});
}

}  // namespace

void register_quantize(std::vector<OpSpec>& t) {
  t.push_back(quantize_linear());
  t.push_back(dequantize_linear());
}

}  // namespace shoal::ops
