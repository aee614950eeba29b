// QuantizeLinear and DequantizeLinear per tensor (a scalar scale and zero
// point), in any layout the input and output share: elementwise loops the
// compiler vectorizes, split over the team. The same arithmetic as the
// reference kernels (reference/quantize_ops.cpp): y = saturate(
// round_half_even(x / scale) + zero_point), NaN -> 0; y = (x - zero_point) *
// scale. Per-axis forms run the reference kernel. QuantizeLinear also
// converts between plain and channels-last (a graph input into int8 layers,
// a channels-last map into an int8 matmul), DequantizeLinear from
// channels-last into plain (a graph output).
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

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

void quantize_run(int threads, const float* x, void* y, bool u8, int64_t n, float scale,
                  int32_t zp) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  auto* yb = static_cast<char*>(y);
  const Loops& l = loops();
  parallel_rows(threads, chunks, kChunk, [&](int64_t c) {
    const int64_t b = c * kChunk, e = std::min(n, b + kChunk);
    l.quantize(x + b, yb + b, u8, e - b, scale, zp);
  });
}

/// Runs f(row, column, buf) for each row of a plain [N, C, spatial...] tensor
/// (one channel of one sample: hw values), over the team: `column` points at
/// that channel's first value in the channels-last tensor `cl` (the next one
/// c values on), `buf` at this thread's buffer of hw T's. The conversions
/// between the layouts below gather or scatter through it, with vectorized
/// (de)quantization on the contiguous side.
template <class T, class C, class F>
void channel_rows(int threads, int64_t n, int64_t c, int64_t hw, C* cl, const F& f) {
  parallel_rows(threads, n * c, hw, [&](int64_t row) {
    thread_local std::vector<T> tls;
    tls.resize(size_t(hw));
    f(row, cl + (row / c) * hw * c + row % c, tls.data());
  });
}

/// Quantizes a plain x into a channels-last y (a graph input read by int8
/// layers): each row quantized into the buffer, then scattered.
void quantize_to_channels_last(int threads, const float* x, void* y, bool u8, int64_t n, int64_t c,
                               int64_t hw, float scale, int32_t zp) {
  const Loops& l = loops();
  channel_rows<uint8_t>(threads, n, c, hw, static_cast<uint8_t*>(y),
                        [&](int64_t row, uint8_t* col, uint8_t* buf) {
                          l.quantize(x + row * hw, buf, u8, hw, scale, zp);
                          for (int64_t k = 0; k < hw; ++k) col[k * c] = buf[k];
                        });
}

/// Quantizes a channels-last x into a plain y (an int8 layer that takes
/// plain operands, such as shoal.QMatMul, reading a channels-last map): each
/// row gathered into the buffer, then quantized.
void quantize_from_channels_last(int threads, const float* x, void* y, bool u8, int64_t n,
                                 int64_t c, int64_t hw, float scale, int32_t zp) {
  const Loops& l = loops();
  auto* yb = static_cast<uint8_t*>(y);
  channel_rows<float>(threads, n, c, hw, x, [&](int64_t row, const float* col, float* buf) {
    for (int64_t k = 0; k < hw; ++k) buf[k] = col[k * c];
    l.quantize(buf, yb + row * hw, u8, hw, scale, zp);
  });
}

void dequantize_run(int threads, const void* x, bool u8, float* y, int64_t n, float scale,
                    int32_t zp) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const auto* xb = static_cast<const char*>(x);
  const Loops& l = loops();
  parallel_rows(threads, chunks, kChunk, [&](int64_t c) {
    const int64_t b = c * kChunk, e = std::min(n, b + kChunk);
    l.dequantize(xb + b, u8, y + b, e - b, scale, zp);
  });
}

/// Dequantizes a channels-last x into a plain y (a graph output): each row
/// gathered into the buffer, then dequantized.
void dequantize_from_channels_last(int threads, const void* x, bool u8, float* y, int64_t n,
                                   int64_t c, int64_t hw, float scale, int32_t zp) {
  const Loops& l = loops();
  channel_rows<uint8_t>(threads, n, c, hw, static_cast<const uint8_t*>(x),
                        [&](int64_t row, const uint8_t* col, uint8_t* buf) {
                          for (int64_t k = 0; k < hw; ++k) buf[k] = col[k * c];
                          l.dequantize(buf, u8, y + row * hw, hw, scale, zp);
                        });
}

bool is8(DType t) { return t == DType::u8 || t == DType::i8; }

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
  if (!is8(y.dtype)) return nullptr;
  const bool u8 = y.dtype == DType::u8;
  if (!same_dense(*x, y)) {  // plain <-> channels-last
    const auto plain = program::Layout::plain, cl = program::Layout::channels_last;
    if (y.shape.size() < 3 ||
        !((x->layout == plain && y.layout == cl) || (x->layout == cl && y.layout == plain)))
      return nullptr;
    const int64_t b = y.shape[0], c = y.shape[1], hw = n / std::max<int64_t>(1, b * c);
    if (x->layout == cl)
      return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
        quantize_from_channels_last(t, cf32(in[0]), out[0], u8, b, c, hw, scale, zp);
      });
    return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
      quantize_to_channels_last(t, cf32(in[0]), out[0], u8, b, c, hw, scale, zp);
    });
  }
  return std::make_unique<NativeKernel>(
      [=](int t, auto in, auto out) { quantize_run(t, cf32(in[0]), out[0], u8, n, scale, zp); });
}

KernelPtr make_dequantize(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  float scale;
  int32_t zp;
  DType zt;
  if (!x || !dense_f32(&y) || !scalar_params(oc, scale, zp, zt) || (oc.in(2) && zt != x->dtype))
    return nullptr;
  if (oc.ins.attrs.i("block_size", 0) != 0) return nullptr;
  const int64_t n = shape_numel(y.shape);
  if (!is8(x->dtype)) return nullptr;
  const bool u8 = x->dtype == DType::u8;
  if (!same_dense(*x, y)) {  // channels-last -> plain only (a graph output)
    if (x->layout != program::Layout::channels_last || y.layout != program::Layout::plain ||
        y.shape.size() < 3)
      return nullptr;
    const int64_t b = y.shape[0], c = y.shape[1], hw = n / std::max<int64_t>(1, b * c);
    return std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
      dequantize_from_channels_last(t, in[0], u8, f32(out[0]), b, c, hw, scale, zp);
    });
  }
  return std::make_unique<NativeKernel>(
      [=](int t, auto in, auto out) { dequantize_run(t, in[0], u8, f32(out[0]), n, scale, zp); });
}

KernelPtr make_qlinear_add(const OpContext& oc) {
  const program::TensorDesc* a = oc.in(0);
  const program::TensorDesc* b = oc.in(3);
  const program::TensorDesc& y = oc.out(0);
  if (!a || !b || !is8(a->dtype) || !is8(b->dtype) || !is8(y.dtype) || !same_dense(*a, y) ||
      !same_dense(*b, y) || a->shape != y.shape || b->shape != y.shape)
    return nullptr;
  // Each scale/zero point pair as QuantizeLinear's inputs 1, 2 would be.
  QAddParams p{};
  auto params = [&](int s, int z, float& scale, int32_t& zp, DType want) {
    const program::TensorDesc* st = oc.in(s);
    const program::TensorDesc* zt = oc.in(z);
    if (!st || !zt || !onednn::is_weight(*st) || !onednn::is_weight(*zt) ||
        st->dtype != DType::f32 || shape_numel(st->shape) != 1 || zt->dtype != want ||
        shape_numel(zt->shape) != 1)
      return false;
    std::memcpy(&scale, oc.weight_data(*st), sizeof scale);
    const void* zv = oc.weight_data(*zt);
    zp = want == DType::u8 ? int32_t(*static_cast<const uint8_t*>(zv))
                           : int32_t(*static_cast<const int8_t*>(zv));
    return true;
  };
  if (!params(1, 2, p.a_scale, p.a_zp, a->dtype) || !params(4, 5, p.b_scale, p.b_zp, b->dtype) ||
      !params(6, 7, p.y_scale, p.y_zp, y.dtype))
    return nullptr;
  p.lo = -std::numeric_limits<float>::infinity();
  p.hi = std::numeric_limits<float>::infinity();
  const ref::Activation act = ref::activation_from_attrs(oc.ins.attrs);
  if (act.kind == ref::Act::relu) {
    p.lo = 0;
  } else if (act.kind == ref::Act::clip) {
    p.lo = act.alpha;
    p.hi = act.beta;
  } else if (act.kind != ref::Act::none) {
    return nullptr;  // the reference kernel
  }
  p.a_u8 = a->dtype == DType::u8;
  p.b_u8 = b->dtype == DType::u8;
  p.y_u8 = y.dtype == DType::u8;
  const int64_t n = shape_numel(y.shape);
  auto k = std::make_unique<NativeKernel>([=](int t, auto in, auto out) {
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    const Loops& l = loops();
    parallel_rows(t, chunks, kChunk, [&](int64_t c) {
      const int64_t s = c * kChunk, e = std::min(n, s + kChunk);
      l.qadd(p, static_cast<const char*>(in[0]) + s, static_cast<const char*>(in[3]) + s,
             static_cast<char*>(out[0]) + s, e - s);
    });
  });
  k->set_precision("int8");
  return k;
}

}  // namespace shoal::cpu::native
