// The innermost loops of shoal's own CPU kernels (the "native" kernels), one
// table per instruction set. isa/loops_isa.cpp is compiled once per ISA
// (generic x86-64, AVX2+FMA, AVX-512) and the best table the CPU runs is
// picked at run time; everything around the loops (broadcasting, layouts,
// threading) is ISA-independent and lives in the other files of native/.
//
// Every loop propagates NaN as ONNX (numpy) semantics say: an activation,
// Max/Min or a max-reduction of NaN is NaN.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shoal::cpu::native {

enum class Unary : uint8_t {
  copy,
  relu,
  leaky_relu,
  clip,
  sigmoid,
  tanh,
  hard_sigmoid,
  hard_swish,
  elu,
  silu,
  gelu,
  erf,
  exp,
  log,
  sqrt,
  neg,
  abs,
  reciprocal,
  floor,
  ceil
};
enum class Binary : uint8_t { add, sub, mul, div, max, min, pow, prelu };
enum class Reduce : uint8_t { sum, max, min };

struct UnaryOp {
  Unary kind = Unary::copy;
  float alpha = 0, beta = 0;  // LeakyRelu/Elu alpha; Clip min/max; HardSigmoid/HardSwish
};

/// shoal.QLinearAdd's parameters (per tensor): y = saturate(round_half_even(
/// clamp(float(a - a_zp) * a_scale + float(b - b_zp) * b_scale, lo, hi) /
/// y_scale) + y_zp); lo/hi: the fused Relu/Clip (or +-inf).
struct QAddParams {
  float a_scale, b_scale, y_scale, lo, hi;
  int32_t a_zp, b_zp, y_zp;
  bool a_u8, b_u8, y_u8;  // uint8 (else int8)
};

/// A QuantizeLinear per tensor at the end of a fused int8 op: y =
/// saturate(round_half_even(v / scale) + zp), NaN -> 0; y uint8 (u8) or int8.
struct QOut {
  float scale;
  int32_t zp;
  bool u8;
  bool finite = false;  // the values quantized are never NaN (finite tables)
};

/// A 256-entry float table that is a DequantizeLinear: t[b] == float(v(b) -
/// zp) * scale for every byte b, v(b) the byte as uint8 or (is_signed) int8.
/// The table loops then compute the values (the same floats) instead of
/// looking them up.
struct Affine8 {
  float scale = 0;
  int32_t zp = 0;
  bool is_signed = false;
};

/// One 16-lane block of a permuted row: lane i takes x[lo_a + sel[i]]
/// (sel < 16) or x[lo_b + sel[i] - 16]: two windows of 16 values, one
/// two-source permute. With lo_a < 0, sel holds the indices themselves
/// (gathered). plan_permute (copy.cpp) makes them.
struct Permute16 {
  int32_t lo_a = -1, lo_b = 0;
  int32_t sel[16] = {};
};

struct Loops {
  const char* isa;
  /// y[i] = f(x[i * sx]), i < n.
  void (*unary)(const UnaryOp& f, const float* x, int64_t sx, float* y, int64_t n);
  /// y[i] = f(a[i * sa] op b[i * sb]), i < n; f applied after op (a fused
  /// activation; Unary::copy for none). Strides 0 and 1 are the fast cases.
  void (*binary)(Binary op, const UnaryOp& f, const float* a, int64_t sa, const float* b,
                 int64_t sb, float* y, int64_t n);
  /// acc[i] = acc[i] op x[i * sx], i < n.
  void (*accumulate)(Reduce op, const float* x, int64_t sx, float* acc, int64_t n);
  /// acc[i] = acc[i] op x[r * sr + i] for r < rows in turn, i < n: contiguous
  /// rows folded into one (a channels-last tensor's spatial dims reduced),
  /// the same values as accumulate called row by row.
  void (*accumulate_rows)(Reduce op, const float* x, int64_t sr, int64_t rows, float* acc,
                          int64_t n);
  /// init op x[0] op x[sx] op ... op x[(n-1) sx].
  float (*fold)(Reduce op, const float* x, int64_t sx, int64_t n, float init);
  /// y[i] = x[i] * s, i < n (a mean's scale).
  void (*scale)(float* y, int64_t n, float s);
  /// One row of LayerNormalization: y = (x - mean) / sqrt(var + eps) * g + b
  /// (g, b may be null: 1 and 0).
  void (*layernorm)(const float* x, float* y, int64_t n, const float* g, const float* b, float eps);
  /// One row of Softmax (or LogSoftmax).
  void (*softmax)(const float* x, float* y, int64_t n, bool log);
  /// y[i] = f(x[i * sx] * s[i * ss] + b[i * ss]), i < n: a per-channel affine
  /// map (inference BatchNormalization) with a fused activation; ss is 1
  /// (channels along the row) or 0 (one channel per row).
  void (*affine)(const UnaryOp& f, const float* x, int64_t sx, const float* s, const float* b,
                 int64_t ss, float* y, int64_t n);
  /// y[i] = sum over j < k of w[j] * x[j][i], i < n: contiguous rows mixed
  /// with weights (Resize's interpolation taps).
  void (*mix)(const float* const* x, const float* w, int k, float* y, int64_t n);
  /// y[i] = sum over j < k of w[i * k + j] * x[idx[i * k + j]], i < n: a row
  /// interpolated from taps (Resize along the row).
  void (*gather_mix)(const float* x, const int64_t* idx, const float* w, int k, float* y,
                     int64_t n);
  /// y[i] = max over t < taps of x[off[t] + i], i < n, from -inf, NaN
  /// propagating (a MaxPool window over channels-last pixels).
  void (*max_taps)(const float* x, const int64_t* off, int taps, float* y, int64_t n);
  /// y[i] = x[idx[i]], i < n (a row permuted or selected: Gather along a
  /// tensor's innermost dim).
  void (*gather)(const float* x, const int32_t* idx, float* y, int64_t n);
  /// y[i] = x[index i of block i / 16], i < n (see Permute16); x must be
  /// readable 16 values past every window's start.
  void (*permute16)(const float* x, const Permute16* blocks, float* y, int64_t n);
  /// y[j * block + i] = w[j * block + i] * s[idx[j]], i < block, j < blocks:
  /// runs of values sharing a scale (packed weights scaled per input
  /// channel; blocks of 16, 32 or 64 are whole vectors).
  void (*scale_blocks)(const float* w, const float* s, const int64_t* idx, int64_t block,
                       int64_t blocks, float* y);
  /// QuantizeLinear per tensor: y[i] = saturate(round_half_even(x[i] / scale)
  /// + zp) (NaN -> 0), y uint8 (u8) or int8, i < n.
  void (*quantize)(const float* x, void* y, bool u8, int64_t n, float scale, int32_t zp);
  /// DequantizeLinear per tensor: y[i] = float(x[i] - zp) * scale.
  void (*dequantize)(const void* x, bool u8, float* y, int64_t n, float scale, int32_t zp);
  /// shoal.QLinearAdd over n elements of a, b and y (see QAddParams).
  void (*qadd)(const QAddParams& p, const void* a, const void* b, void* y, int64_t n);
  /// y[i] = t[x[i]], i < n: a 256-entry byte table indexed by bytes
  /// (shoal.QLinearLookup).
  void (*lookup8)(const uint8_t* t, const uint8_t* x, uint8_t* y, int64_t n);
  /// acc[i] += double(t[x[r * n + i]]) for r < rows in turn, i < n: t a
  /// 256-entry float table (column sums, in row order); `a` (or null) says
  /// t is affine.
  void (*accumulate_table)(const float* t, const Affine8* a, const uint8_t* x, int64_t rows,
                           int64_t n, double* acc);
  /// y[r * n + i] = quantize(s[i] * t[x[r * n + i]]) (QOut), r < rows, i < n:
  /// t a 256-entry float table; `a` (or null) says t is affine.
  void (*scale_table)(const QOut& q, const float* s, const float* t, const Affine8* a,
                      const uint8_t* x, void* y, int64_t rows, int64_t n);
};

/// The tables compiled in (isa/loops_isa.cpp).
const Loops& loops_generic();
const Loops& loops_avx2();
const Loops& loops_avx512();

/// The table in use: the fastest this CPU runs, unless use_isa named
/// another.
const Loops& loops();
/// Makes `isa` (SHOAL_ISA: generic, avx2 or avx512, one this CPU runs; ""
/// for the fastest) the table loops() returns, process-wide: the CPU backend
/// calls it as it makes a device. Throws Error(invalid_argument) for another.
void use_isa(const std::string& isa);
/// The table named `isa`, or nullptr when unknown or not runnable here.
const Loops* loops_named(std::string_view isa);

}  // namespace shoal::cpu::native
