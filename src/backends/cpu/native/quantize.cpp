// QuantizeLinear and DequantizeLinear per tensor (a scalar scale and zero
// point), in any layout the input and output share: elementwise loops the
// compiler vectorizes, split over the team. The same arithmetic as the
// reference kernels (reference/quantize_ops.cpp): y = saturate(
// round_half_even(x / scale) + zero_point), NaN -> 0; y = (x - zero_point) *
// scale. Per-axis forms run the reference kernel. QuantizeLinear also
// writes a channels-last result from a plain input (a graph input).
#include <cmath>
#include <cstring>

#include "backends/cpu/native/kernel.hpp"

namespace shoal::cpu::native {
namespace {

bool same_dense(const program::TensorDesc& a, const program::TensorDesc& b) {
  return a.layout == b.layout &&
         (a.layout == program::Layout::plain || a.layout == program::Layout::channels_last);
}

/// The scalar scale and zero point (inputs 1 and 2) as constants.
bool scalar_params(const OpContext& oc, float& scale, int32_t& zp, DType& zp_type) {
  const program::TensorDesc* s = oc.in(1);
  const program::TensorDesc* z = oc.in(2);
  if (!s || !onednn::is_weight(*s) || s->dtype != DType::f32 || shape_numel(s->shape) != 1)
    return false;
  std::memcpy(&scale, oc.weight_data(*s), sizeof scale);
  zp = 0;
  zp_type = DType::u8;
  if (!z) return true;
  if (!onednn::is_weight(*z) || shape_numel(z->shape) != 1) return false;
  zp_type = z->dtype;
  const void* p = oc.weight_data(*z);
  if (z->dtype == DType::u8)
    zp = *static_cast<const uint8_t*>(p);
  else if (z->dtype == DType::i8)
    zp = *static_cast<const int8_t*>(p);
  else
    return false;
  return true;
}

constexpr int64_t kChunk = 1 << 14;

template <class Q>
void quantize_run(int threads, const float* x, Q* y, int64_t n, float scale, int32_t zp) {
  const float lo = float(std::numeric_limits<Q>::min()) - float(zp);
  const float hi = float(std::numeric_limits<Q>::max()) - float(zp);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_rows(threads, chunks, kChunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t k = c * kChunk; k < end; ++k) {
      float v = x[k] / scale;
      // Saturating before rounding gives the same integer (the bounds are
      // integers); then round half to even by the 1.5 * 2^23 addition
      // (exact for |v| <= 2^22, in the default rounding mode).
      v = v != v ? -float(zp) : std::min(hi, std::max(lo, v));
      v = (v + 12582912.0f) - 12582912.0f;
      y[k] = Q(int32_t(v) + zp);
    }
  });
}

/// Quantizes a plain [N, C, spatial...] x into a channels-last y (a graph
/// input read by int8 layers), row by row of x.
template <class Q>
void quantize_to_channels_last(int threads, const float* x, Q* y, int64_t n, int64_t c, int64_t hw,
                               float scale, int32_t zp) {
  const float lo = float(std::numeric_limits<Q>::min()) - float(zp);
  const float hi = float(std::numeric_limits<Q>::max()) - float(zp);
  parallel_rows(threads, n * c, hw, [&](int64_t row) {
    const int64_t b = row / c, ch = row % c;
    const float* xr = x + row * hw;
    Q* yr = y + b * hw * c + ch;
    for (int64_t k = 0; k < hw; ++k) {
      float v = xr[k] / scale;
      v = v != v ? -float(zp) : std::min(hi, std::max(lo, v));
      v = (v + 12582912.0f) - 12582912.0f;
      yr[k * c] = Q(int32_t(v) + zp);
    }
  });
}

template <class Q>
void dequantize_run(int threads, const Q* x, float* y, int64_t n, float scale, int32_t zp) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_rows(threads, chunks, kChunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t k = c * kChunk; k < end; ++k) y[k] = float(int32_t(x[k]) - zp) * scale;
  });
}

}  // namespace

KernelPtr make_quantize(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  float scale;
  int32_t zp;
  DType zt;
  if (!dense_f32(x) || !scalar_params(oc, scale, zp, zt) || zt != y.dtype) return nullptr;
  if (oc.ins.attrs.i("block_size", 0) != 0) return nullptr;
  const int64_t n = shape_numel(y.shape);
  if (!same_dense(*x, y)) {  // plain -> channels-last only
    if (x->layout != program::Layout::plain || y.layout != program::Layout::channels_last ||
        y.shape.size() < 3)
      return nullptr;
    const int64_t b = y.shape[0], c = y.shape[1], hw = n / std::max<int64_t>(1, b * c);
    if (y.dtype == DType::u8)
      return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
        quantize_to_channels_last(t, cf32(in[0]), static_cast<uint8_t*>(out[0]), b, c, hw, scale,
                                  zp);
      });
    if (y.dtype == DType::i8)
      return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
        quantize_to_channels_last(t, cf32(in[0]), static_cast<int8_t*>(out[0]), b, c, hw, scale,
                                  zp);
      });
    return nullptr;
  }
  if (y.dtype == DType::u8)
    return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
      quantize_run(t, cf32(in[0]), static_cast<uint8_t*>(out[0]), n, scale, zp);
    });
  if (y.dtype == DType::i8)
    return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
      quantize_run(t, cf32(in[0]), static_cast<int8_t*>(out[0]), n, scale, zp);
    });
  return nullptr;
}

KernelPtr make_dequantize(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  float scale;
  int32_t zp;
  DType zt;
  if (!x || !dense_f32(&y) || !same_dense(*x, y) || !scalar_params(oc, scale, zp, zt) ||
      (oc.in(2) && zt != x->dtype))
    return nullptr;
  if (oc.ins.attrs.i("block_size", 0) != 0) return nullptr;
  const int64_t n = shape_numel(y.shape);
  if (x->dtype == DType::u8)
    return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
      dequantize_run(t, static_cast<const uint8_t*>(in[0]), f32(out[0]), n, scale, zp);
    });
  if (x->dtype == DType::i8)
    return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
      dequantize_run(t, static_cast<const int8_t*>(in[0]), f32(out[0]), n, scale, zp);
    });
  return nullptr;
}

}  // namespace shoal::cpu::native
