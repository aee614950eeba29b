// The int8 table ops of passes::fuse_qdq_lookup (reference/nn_qlookup.cpp
// says what they compute): shoal.QLinearLookup (a byte table, 64 bytes per
// step with AVX512-VBMI), shoal.QLinearGlobalAveragePool (the mean of a
// float table's values, summed in double in the reference kernel's order:
// channels-last maps sum a row of channels per pixel, vectorized across the
// channels) and shoal.QLinearMul of a tensor by a per-channel (or
// same-shape) operand. Same bits as the reference kernels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <optional>
#include <vector>

#include "backends/cpu/native/kernel.hpp"

namespace shoal::cpu::native {
namespace {

bool is8(DType t) { return t == DType::u8 || t == DType::i8; }

bool dense(const program::TensorDesc* t) {
  return t && (t->layout == program::Layout::plain || t->layout == program::Layout::channels_last);
}

/// A constant table of 256 entries of `type` (float32 or 8-bit).
template <class T>
bool table_of(const OpContext& oc, int i, bool want_float, std::vector<T>& out) {
  const program::TensorDesc* t = oc.in(i);
  if (!t || !onednn::is_weight(*t) || shape_numel(t->shape) != 256 ||
      (want_float ? t->dtype != DType::f32 : !is8(t->dtype)))
    return false;
  out.resize(256);
  std::memcpy(out.data(), oc.weight_data(*t), 256 * sizeof(T));
  return true;
}

/// The QuantizeLinear parameters at inputs s, z (constants).
bool qout_of(const OpContext& oc, int s, int z, DType y, QOut& q) {
  const program::TensorDesc* st = oc.in(s);
  const program::TensorDesc* zt = oc.in(z);
  if (!st || !zt || !onednn::is_weight(*st) || !onednn::is_weight(*zt) || st->dtype != DType::f32 ||
      shape_numel(st->shape) != 1 || zt->dtype != y || shape_numel(zt->shape) != 1)
    return false;
  std::memcpy(&q.scale, oc.weight_data(*st), sizeof q.scale);
  const void* zv = oc.weight_data(*zt);
  q.u8 = y == DType::u8;
  q.zp =
      q.u8 ? int32_t(*static_cast<const uint8_t*>(zv)) : int32_t(*static_cast<const int8_t*>(zv));
  return true;
}

/// Whether float table t is a DequantizeLinear of its byte (Affine8): the
/// table ops then compute its values instead of looking them up (the
/// tensors fuse_qdq_lookup scales and pools are mostly plain dequantized
/// ones). Checked exactly, entry by entry.
std::optional<Affine8> affine_of(const std::vector<float>& t) {
  for (bool is_signed : {false, true}) {
    auto value = [&](int b) { return is_signed ? int32_t(int8_t(uint8_t(b))) : int32_t(b); };
    auto byte = [&](int32_t v) { return uint8_t(v); };
    for (int b = 0; b < 256; ++b) {
      if (t[size_t(b)] != 0.0f) continue;
      Affine8 a{0.0f, value(b), is_signed};
      const int32_t up = a.zp + 1, hi = is_signed ? 127 : 255;
      a.scale = up <= hi ? t[byte(up)] : -t[byte(a.zp - 1)];  // 1 or -1 step from zp
      if (a.scale == 0.0f) break;
      bool all = true;
      for (int c = 0; c < 256 && all; ++c) all = float(value(c) - a.zp) * a.scale == t[size_t(c)];
      if (all) return a;
      break;
    }
  }
  return std::nullopt;
}

constexpr int64_t kChunk = 1 << 14;

const uint8_t* bytes(void* p) { return static_cast<const uint8_t*>(p); }

/// [N, C, spatial...]: N, C and the spatial size.
struct Ncs {
  int64_t n = 1, c = 1, hw = 1;
};
Ncs ncs(const Shape& s) {
  Ncs r;
  r.n = s.empty() ? 1 : s[0];
  r.c = s.size() < 2 ? 1 : s[1];
  for (size_t i = 2; i < s.size(); ++i) r.hw *= s[i];
  return r;
}

}  // namespace

KernelPtr make_qlinear_lookup(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  std::vector<uint8_t> t;
  if (!dense(x) || !is8(x->dtype) || !is8(y.dtype) || x->layout != y.layout ||
      !table_of(oc, 1, false, t))
    return nullptr;
  const int64_t n = shape_numel(y.shape);
  auto k = std::make_unique<NativeKernel>([=](int threads, auto in, auto out) {
    const Loops& l = loops();
    parallel_rows(threads, (n + kChunk - 1) / kChunk, kChunk, [&](int64_t c) {
      const int64_t b = c * kChunk, e = std::min(n, b + kChunk);
      l.lookup8(t.data(), bytes(in[0]) + b, static_cast<uint8_t*>(out[0]) + b, e - b);
    });
  });
  k->set_precision("int8");
  return k;
}

KernelPtr make_qlinear_gap(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  std::vector<float> t;
  QOut q{};
  if (!dense(x) || !is8(x->dtype) || x->shape.size() < 3 || !table_of(oc, 1, true, t) ||
      !qout_of(oc, 2, 3, y.dtype, q))
    return nullptr;
  const Ncs d = ncs(x->shape);
  const bool cl = x->layout == program::Layout::channels_last;
  const std::optional<Affine8> aff = affine_of(t);
  auto k = std::make_unique<NativeKernel>([=](int threads, auto in, auto out) {
    const Loops& l = loops();
    // One sample per row: its C means, then quantized.
    parallel_rows(threads, d.n, d.c * d.hw, [&](int64_t s) {
      std::vector<double> acc(size_t(d.c), 0.0);
      std::vector<float> mean(size_t(d.c));
      const uint8_t* xs = bytes(in[0]) + s * d.c * d.hw;
      if (cl) {
        l.accumulate_table(t.data(), aff ? &*aff : nullptr, xs, d.hw, d.c, acc.data());
      } else {
        for (int64_t c = 0; c < d.c; ++c) {
          double sum = 0;
          for (int64_t p = 0; p < d.hw; ++p) sum += t[xs[c * d.hw + p]];
          acc[size_t(c)] = sum;
        }
      }
      for (int64_t c = 0; c < d.c; ++c) mean[size_t(c)] = float(acc[size_t(c)] / double(d.hw));
      l.quantize(mean.data(), static_cast<uint8_t*>(out[0]) + s * d.c, q.u8, d.c, q.scale, q.zp);
    });
  });
  k->set_precision("int8");
  return k;
}

KernelPtr make_qlinear_avgpool(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  std::vector<float> t;
  QOut q{};
  if (!dense(x) || !is8(x->dtype) || x->shape.size() != 4 ||
      x->layout != program::Layout::channels_last || y.layout != x->layout ||
      !table_of(oc, 1, true, t) || !qout_of(oc, 2, 3, y.dtype, q))
    return nullptr;
  const ref::WindowGeometry g = ref::pool_geometry(oc.ins.attrs, x->shape);
  if (y.shape != Shape{g.n, g.c_in, g.out[0], g.out[1]} || g.n == 0 || g.c_in == 0)
    return nullptr;  // the reference kernel names it
  // Each output pixel's divisor, as the reference AveragePool counts it:
  // its window's positions inside the input, or (count_include_pad) inside
  // the padded input, not past the end pads ceil_mode adds.
  const bool include_pad = oc.ins.attrs.i("count_include_pad", 0) != 0;
  const int64_t oh = g.out[0], ow = g.out[1], c = g.c_in;
  std::vector<double> count(size_t(oh * ow));
  auto inside = [&](int d, int64_t o) {
    int64_t real = 0, padded = 0;
    for (int64_t k = 0; k < g.kernel[size_t(d)]; ++k) {
      const int64_t i =
          o * g.stride[size_t(d)] - g.pad_begin[size_t(d)] + k * g.dilation[size_t(d)];
      real += i >= 0 && i < g.in[size_t(d)];
      padded += i >= -g.pad_begin[size_t(d)] && i < g.in[size_t(d)] + g.pad_end[size_t(d)];
    }
    return include_pad ? padded : real;
  };
  for (int64_t p = 0; p < oh; ++p)
    for (int64_t r = 0; r < ow; ++r)
      count[size_t(p * ow + r)] = double(inside(0, p) * inside(1, r));
  WindowTaps taps = window_taps(g);
  const int64_t pixels = oh * ow, in_sample = g.in[0] * g.in[1] * c;
  const std::optional<Affine8> aff = affine_of(t);
  auto k =
      std::make_unique<NativeKernel>([=, taps = std::move(taps)](int threads, auto in, auto out) {
        const Loops& l = loops();
        // One output pixel a row: the table's values of its window's taps summed
        // in double, tap by tap (each channel in the reference's order), divided,
        // quantized.
        parallel_rows(threads, g.n * pixels, c * 4, [&](int64_t row) {
          const int64_t s = row / pixels, p = row % pixels;
          thread_local std::vector<double> acc;
          thread_local std::vector<float> mean;
          acc.assign(size_t(c), 0.0);
          mean.resize(size_t(c));
          const uint8_t* xs = bytes(in[0]) + s * in_sample;
          for (int64_t i = taps.first[size_t(p)]; i < taps.first[size_t(p) + 1]; ++i)
            l.accumulate_table(t.data(), aff ? &*aff : nullptr, xs + taps.offsets[size_t(i)], 1, c,
                               acc.data());
          const double d = count[size_t(p)];
          for (int64_t j = 0; j < c; ++j)
            mean[size_t(j)] = d > 0 ? float(acc[size_t(j)] / d) : 0.0f;
          l.quantize(mean.data(), static_cast<uint8_t*>(out[0]) + row * c, q.u8, c, q.scale, q.zp);
        });
      });
  k->set_precision("int8");
  return k;
}

KernelPtr make_qlinear_mul(const OpContext& oc) {
  const program::TensorDesc* a = oc.in(0);
  const program::TensorDesc* b = oc.in(2);
  const program::TensorDesc& y = oc.out(0);
  std::vector<float> ta, tb;
  QOut q{};
  if (!dense(a) || !dense(b) || !is8(a->dtype) || !is8(b->dtype) || !table_of(oc, 1, true, ta) ||
      !table_of(oc, 3, true, tb) || !qout_of(oc, 4, 5, y.dtype, q))
    return nullptr;
  // The big operand (y's shape) and the small one: the same shape, or one
  // value per channel ([N, C, 1...]) of the same N and C.
  int big = 0;
  if (b->shape == y.shape && a->shape != y.shape) big = 2;
  const program::TensorDesc* xb = big == 0 ? a : b;
  const program::TensorDesc* xs = big == 0 ? b : a;
  if (xb->shape != y.shape || xb->layout != y.layout) return nullptr;
  const std::vector<float> tbig = big == 0 ? ta : tb, tsmall = big == 0 ? tb : ta;
  const int small = 2 - big;
  const int64_t n = shape_numel(y.shape);
  auto finite = [](const std::vector<float>& t) {
    return std::all_of(t.begin(), t.end(), [](float v) { return std::isfinite(v); });
  };
  q.finite = finite(ta) && finite(tb);  // finite products: never NaN
  const std::optional<Affine8> aff = affine_of(tbig);
  std::unique_ptr<NativeKernel> k;
  if (xs->shape == y.shape && xs->layout == y.layout) {
    k = std::make_unique<NativeKernel>([=](int threads, auto in, auto out) {
      const Loops& l = loops();
      parallel_rows(threads, (n + kChunk - 1) / kChunk, kChunk, [&](int64_t c) {
        const int64_t s = c * kChunk, e = std::min(n, s + kChunk);
        std::vector<float> sv(size_t(e - s));
        const uint8_t* xsm = bytes(in[size_t(small)]) + s;
        for (int64_t i = 0; i < e - s; ++i) sv[size_t(i)] = tsmall[xsm[i]];
        l.scale_table(q, sv.data(), tbig.data(), aff ? &*aff : nullptr, bytes(in[size_t(big)]) + s,
                      static_cast<uint8_t*>(out[0]) + s, 1, e - s);
      });
    });
  } else {
    const Ncs d = ncs(y.shape);
    if (y.shape.size() < 3 || xs->shape.size() != y.shape.size() || xs->shape[0] != d.n ||
        xs->shape[1] != d.c || shape_numel(xs->shape) != d.n * d.c)
      return nullptr;
    const bool cl = y.layout == program::Layout::channels_last;
    // Channels-last: blocks of pixels of one sample, as rows of `wide`
    // pixels (a multiple of 64 values: the loops' widest path; the scales
    // repeated `wide` times) and single pixels for the rest; plain: one
    // channel's plane per block.
    const int64_t wide = 64 / std::gcd<int64_t>(d.c, 64);
    const int64_t per = cl ? std::max<int64_t>(1, kChunk / d.c) / wide * wide + wide : 1;
    const int64_t blocks_per_n = cl ? (d.hw + per - 1) / per : d.c;
    k = std::make_unique<NativeKernel>([=](int threads, auto in, auto out) {
      const Loops& l = loops();
      const int64_t row = cl ? wide * d.c : d.c;
      std::vector<float> scales(size_t(d.n * row));
      const uint8_t* xsm = bytes(in[size_t(small)]);
      for (int64_t s = 0; s < d.n; ++s)
        for (int64_t i = 0; i < row; ++i)
          scales[size_t(s * row + i)] = tsmall[xsm[s * d.c + i % d.c]];
      const uint8_t* xb = bytes(in[size_t(big)]);
      auto* yb = static_cast<uint8_t*>(out[0]);
      parallel_rows(threads, d.n * blocks_per_n, cl ? per * d.c : d.hw, [&](int64_t blk) {
        const int64_t s = blk / blocks_per_n, j = blk % blocks_per_n;
        if (cl) {
          const int64_t p0 = j * per, p1 = std::min(d.hw, p0 + per);
          const int64_t off = (s * d.hw + p0) * d.c, rows = (p1 - p0) / wide;
          const float* sc = scales.data() + s * row;
          const Affine8* a = aff ? &*aff : nullptr;
          l.scale_table(q, sc, tbig.data(), a, xb + off, yb + off, rows, row);
          const int64_t done = off + rows * row;
          l.scale_table(q, sc, tbig.data(), a, xb + done, yb + done, p1 - p0 - rows * wide, d.c);
        } else {
          thread_local std::vector<float> plane;
          plane.assign(size_t(d.hw), scales[size_t(blk)]);
          l.scale_table(q, plane.data(), tbig.data(), aff ? &*aff : nullptr, xb + blk * d.hw,
                        yb + blk * d.hw, 1, d.hw);
        }
      });
    });
  }
  k->set_precision("int8");
  return k;
}

}  // namespace shoal::cpu::native
