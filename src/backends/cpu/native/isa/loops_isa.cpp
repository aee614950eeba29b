// The innermost loops of the native kernels, written as plain C++ loops the
// compiler vectorizes. This file is compiled once per instruction set (see
// CMakeLists.txt: SHOAL_LOOPS_ISA = generic, avx2 or avx512, with that ISA's
// -m flags, -O3 and -fno-math-errno); loops.cpp picks the table at run time.
//
// Transcendentals are branch-free polynomial approximations so that they
// vectorize: exp (Cephes' degree-6 polynomial after range reduction, max
// relative error ~2 ulp), erf (Taylor series below 0.5, Abramowitz-Stegun
// 7.1.26 above: absolute error < 1.5e-7), tanh (odd polynomial below 0.0625,
// 1 - 2 / (exp(2|x|) + 1) above). NaN inputs give NaN outputs.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__AVX512BW__)
// GCC 12 warns of the intrinsics' own _mm512_undefined_* operands.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

#include "backends/cpu/native/loops.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#ifndef SHOAL_LOOPS_ISA
#error "compile with -DSHOAL_LOOPS_ISA=generic|avx2|avx512"
#endif
#define SHOAL_CAT2(a, b) a##b
#define SHOAL_CAT(a, b) SHOAL_CAT2(a, b)
#define SHOAL_STR2(a) #a
#define SHOAL_STR(a) SHOAL_STR2(a)

namespace shoal::cpu::native {
namespace {

// --- scalar functions the loops inline -----------------------------------------

/// e^x, NaN-preserving, saturating: x > 88.72 gives ~FLT_MAX (not inf), x
/// below about -87 gives 0. n = round(x / ln 2) comes from the bits of
/// x / ln 2 + 1.5 * 2^23 (no float-to-int conversion, so NaN is harmless:
/// it flows through p), and 2^n from n's bits. Cheap enough to vectorize well:
/// no selects, one clamp.
inline float exp_sat(float x) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  float xc = x < -87.0f ? -87.0f : x;    // NaN passes both clamps
  xc = xc > 88.72283f ? 88.72283f : xc;
  const float tm = xc * 1.44269504088896341f + kMagic;
  const float n = tm - kMagic;  // round to nearest
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^(n-1) * 2, so that n = 128 stays a normal float; n = -126 gives 0.
  const uint32_t e = (std::bit_cast<uint32_t>(tm) - std::bit_cast<uint32_t>(kMagic) + 126u) << 23;
  return p * std::bit_cast<float>(e) * 2.0f;
}

/// e^x as ONNX's Exp: exp_sat, with +inf past float's range.
inline float exp_f(float x) { return x > 88.72283f ? INFINITY : exp_sat(x); }

// exp_f, not exp_sat: sigmoid(-inf) must be 0 exactly (silu(-inf) = -inf * 0 = NaN).
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

inline float tanh_f(float x) {
  const float ax = std::fabs(x);
  const float big = 1.0f - 2.0f / (exp_sat(2.0f * ax) + 1.0f);
  const float x2 = x * x;
  const float small = x + x * x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f));
  return ax < 0.0625f ? small : std::copysign(big, x);
}

inline float erf_f(float x) {
  const float ax = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * ax);
  const float poly =
      ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t +
       0.254829592f) *
      t;
  const float big = 1.0f - poly * exp_sat(-ax * ax);
  const float x2 = x * x;
  const float small =
      x * (1.1283791671f +
           x2 * (-0.3761263890f +
                 x2 * (0.1128379167f +
                       x2 * (-0.0268661706f + x2 * (0.0052239776f + x2 * -0.0008548327f)))));
  return ax < 0.5f ? small : std::copysign(big, x);
}

inline float clamp01(float v) {  // NaN passes through
  v = v < 0.0f ? 0.0f : v;
  return v > 1.0f ? 1.0f : v;
}

#if defined(__AVX512F__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which it then
// reports as maybe uninitialized (GCC bug 105593).
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
/// Sigmoid (silu: times x) of 16 floats without a division: the divider
/// bounds a vectorized 1 / (1 + e^-x) at about 0.35 ns per element here
/// (oneDNN 2.6's swish post-op too), which made SiLU 29% of EfficientNet-B0.
/// e = e^-|x| (at most 1, so nothing overflows) as 2^n * 2^f with a
/// degree-6 polynomial for 2^f, f in [-1/2, 1/2]; s = 1 / (1 + e) as rcp14
/// and one Newton step; sigmoid(x) is s, or e * s for x < 0. Relative error
/// below 1e-6. -inf gives sigmoid 0 and silu NaN (-inf * 0), as the exact
/// forms do; NaN stays NaN (max returns its second operand for NaN).
template <bool kTimesX>
inline __m512 sigmoid16(__m512 x) {
  const __m512 u =
      _mm512_max_ps(_mm512_set1_ps(-200.0f),
                    _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(-1.44269504088896341f)));
  const __m512 n = _mm512_roundscale_ps(u, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(u, n);
  __m512 p = _mm512_set1_ps(1.5403530393e-4f);  // ln(2)^k / k!, k = 6..0
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108665e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650696e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718056e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  const __m512 e = _mm512_scalef_ps(p, n);
  const __m512 d = _mm512_add_ps(e, _mm512_set1_ps(1.0f));
  __m512 s = _mm512_rcp14_ps(d);
  s = _mm512_mul_ps(s, _mm512_fnmadd_ps(d, s, _mm512_set1_ps(2.0f)));
  s = _mm512_mask_mul_ps(s, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), s, e);
  if constexpr (kTimesX) s = _mm512_mul_ps(s, x);
  return s;
}

template <bool kTimesX>
void sigmoid_loop(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, sigmoid16<kTimesX>(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, sigmoid16<kTimesX>(_mm512_maskz_loadu_ps(m, x + i)));
  }
}
#pragma GCC diagnostic pop
#endif

// --- loops ------------------------------------------------------------------------

template <class F>
inline void map1(F f, const float* __restrict x, int64_t sx, float* y, int64_t n) {
  if (sx == 1) {
    if (x == y) {
      for (int64_t i = 0; i < n; ++i) y[i] = f(y[i]);
    } else {
      float* __restrict yr = y;
      for (int64_t i = 0; i < n; ++i) yr[i] = f(x[i]);
    }
  } else if (sx == 0) {
    const float v = f(x[0]);
    for (int64_t i = 0; i < n; ++i) y[i] = v;
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i * sx]);
  }
}

void unary(const UnaryOp& op, const float* x, int64_t sx, float* y, int64_t n) {
  const float al = op.alpha, be = op.beta;
  switch (op.kind) {
    case Unary::copy:
      return map1([](float v) { return v; }, x, sx, y, n);
    case Unary::relu:
      return map1([](float v) { return v < 0.0f ? 0.0f : v; }, x, sx, y, n);
    case Unary::leaky_relu:
      return map1([al](float v) { return v < 0.0f ? al * v : v; }, x, sx, y, n);
    case Unary::clip:
      return map1(
          [al, be](float v) {
            v = v < al ? al : v;
            return v > be ? be : v;
          },
          x, sx, y, n);
    case Unary::sigmoid:
#if defined(__AVX512F__)
      if (sx == 1) return sigmoid_loop<false>(x, y, n);
#endif
      return map1([](float v) { return sigmoid_f(v); }, x, sx, y, n);
    case Unary::tanh:
      return map1([](float v) { return tanh_f(v); }, x, sx, y, n);
    case Unary::hard_sigmoid:
      return map1([al, be](float v) { return clamp01(al * v + be); }, x, sx, y, n);
    case Unary::hard_swish:
      return map1([al, be](float v) { return v * clamp01(al * v + be); }, x, sx, y, n);
    case Unary::elu:
      return map1([al](float v) { return v < 0.0f ? al * (exp_sat(v) - 1.0f) : v; }, x, sx, y, n);
    case Unary::silu:
#if defined(__AVX512F__)
      if (sx == 1) return sigmoid_loop<true>(x, y, n);
#endif
      return map1([](float v) { return v * sigmoid_f(v); }, x, sx, y, n);
    case Unary::gelu:
      return map1([](float v) { return 0.5f * v * (1.0f + erf_f(v * 0.70710678118654752f)); }, x,
                  sx, y, n);
    case Unary::erf:
      return map1([](float v) { return erf_f(v); }, x, sx, y, n);
    case Unary::exp:
      return map1([](float v) { return exp_f(v); }, x, sx, y, n);
    case Unary::log:
      return map1([](float v) { return std::log(v); }, x, sx, y, n);
    case Unary::sqrt:
      return map1([](float v) { return std::sqrt(v); }, x, sx, y, n);
    case Unary::neg:
      return map1([](float v) { return -v; }, x, sx, y, n);
    case Unary::abs:
      return map1([](float v) { return std::fabs(v); }, x, sx, y, n);
    case Unary::reciprocal:
      return map1([](float v) { return 1.0f / v; }, x, sx, y, n);
    case Unary::floor:
      return map1([](float v) { return std::floor(v); }, x, sx, y, n);
    case Unary::ceil:
      return map1([](float v) { return std::ceil(v); }, x, sx, y, n);
  }
}

template <class F>
inline void map2(F f, const float* __restrict a, int64_t sa, const float* __restrict b, int64_t sb,
                 float* y, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i * sa], b[i * sb]);
  }
}

void binary(Binary op, const UnaryOp& act, const float* a, int64_t sa, const float* b, int64_t sb,
            float* y, int64_t n) {
  switch (op) {
    case Binary::add:
      map2([](float p, float q) { return p + q; }, a, sa, b, sb, y, n);
      break;
    case Binary::sub:
      map2([](float p, float q) { return p - q; }, a, sa, b, sb, y, n);
      break;
    case Binary::mul:
      map2([](float p, float q) { return p * q; }, a, sa, b, sb, y, n);
      break;
    case Binary::div:
      map2([](float p, float q) { return p / q; }, a, sa, b, sb, y, n);
      break;
    case Binary::max:
      map2([](float p, float q) { return p > q || p != p ? p : q; }, a, sa, b, sb, y, n);
      break;
    case Binary::min:
      map2([](float p, float q) { return p < q || p != p ? p : q; }, a, sa, b, sb, y, n);
      break;
    case Binary::prelu:
      map2([](float p, float q) { return p < 0.0f ? p * q : p; }, a, sa, b, sb, y, n);
      break;
    case Binary::pow:
      if (sb == 0 && b[0] == 2.0f)
        map2([](float p, float) { return p * p; }, a, sa, b, sb, y, n);
      else if (sb == 0 && b[0] == 0.5f)
        // pow(-inf, 0.5) = +inf and pow(-0, 0.5) = +0, where sqrt differs.
        map2([](float p, float) { return p == -INFINITY ? INFINITY : std::sqrt(p + 0.0f); }, a, sa,
             b, sb, y, n);
      else if (sb == 0 && b[0] == 1.0f)
        map2([](float p, float) { return p; }, a, sa, b, sb, y, n);
      else
        map2([](float p, float q) { return std::pow(p, q); }, a, sa, b, sb, y, n);
      break;
  }
  if (act.kind != Unary::copy) unary(act, y, 1, y, n);
}

void accumulate(Reduce op, const float* __restrict x, int64_t sx, float* __restrict acc,
                int64_t n) {
  switch (op) {
    case Reduce::sum:
      if (sx == 1)
        for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
      else
        for (int64_t i = 0; i < n; ++i) acc[i] += x[i * sx];
      return;
    case Reduce::max:
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i * sx];
        acc[i] = v > acc[i] || v != v ? v : acc[i];
      }
      return;
    case Reduce::min:
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i * sx];
        acc[i] = v < acc[i] || v != v ? v : acc[i];
      }
      return;
  }
}

/// acc op= rows of x, 64 columns at a time held in a local block across all
/// rows (in registers where the compiler can), each column folded in row
/// order as accumulate does.
template <class F>
inline void accumulate_rows_t(F f, const float* __restrict x, int64_t sr, int64_t rows,
                              float* __restrict acc, int64_t n) {
  constexpr int64_t kW = 64;
  for (int64_t i0 = 0; i0 < n; i0 += kW) {
    const int64_t w = std::min(kW, n - i0);
    float a[kW];
    for (int64_t i = 0; i < w; ++i) a[i] = acc[i0 + i];
    if (w == kW) {
      for (int64_t r = 0; r < rows; ++r) {
        const float* __restrict xr = x + r * sr + i0;
        for (int64_t i = 0; i < kW; ++i) a[i] = f(a[i], xr[i]);
      }
    } else {
      for (int64_t r = 0; r < rows; ++r) {
        const float* __restrict xr = x + r * sr + i0;
        for (int64_t i = 0; i < w; ++i) a[i] = f(a[i], xr[i]);
      }
    }
    for (int64_t i = 0; i < w; ++i) acc[i0 + i] = a[i];
  }
}

/// Folds a contiguous run with 16 independent lanes (vectorizable without
/// reassociating one accumulator), then the lanes and the tail.
template <class F>
inline float fold_lanes(F f, const float* __restrict x, int64_t n, float init) {
  constexpr int L = 16;
  float lane[L];
  for (int j = 0; j < L; ++j) lane[j] = init;
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) lane[j] = f(lane[j], x[i + j]);
  float r = init;
  for (int j = 0; j < L; ++j) r = f(r, lane[j]);
  for (; i < n; ++i) r = f(r, x[i]);
  return r;
}

inline float add_f(float a, float b) { return a + b; }
inline float max_f(float a, float b) { return b > a || b != b ? b : a; }
inline float min_f(float a, float b) { return b < a || b != b ? b : a; }

void accumulate_rows(Reduce op, const float* x, int64_t sr, int64_t rows, float* acc, int64_t n) {
  switch (op) {
    case Reduce::sum:
      return accumulate_rows_t(add_f, x, sr, rows, acc, n);
    case Reduce::max:
      return accumulate_rows_t(max_f, x, sr, rows, acc, n);
    case Reduce::min:
      return accumulate_rows_t(min_f, x, sr, rows, acc, n);
  }
}

float fold(Reduce op, const float* x, int64_t sx, int64_t n, float init) {
  if (sx == 1) {
    switch (op) {
      case Reduce::sum:
        return init + fold_lanes(add_f, x, n, 0.0f);
      case Reduce::max:
        return max_f(init, fold_lanes(max_f, x, n, init));
      case Reduce::min:
        return min_f(init, fold_lanes(min_f, x, n, init));
    }
  }
  float r = init;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i * sx];
    r = op == Reduce::sum ? r + v : op == Reduce::max ? max_f(r, v) : min_f(r, v);
  }
  return r;
}

void scale(float* y, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

void layernorm(const float* __restrict x, float* __restrict y, int64_t n, const float* __restrict g,
               const float* __restrict b, float eps) {
  const float mean = fold_lanes(add_f, x, n, 0.0f) / float(n);
  constexpr int L = 16;
  float lane[L] = {};
  int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) {
      const float d = x[i + j] - mean;
      lane[j] += d * d;
    }
  float ss = 0;
  for (int j = 0; j < L; ++j) ss += lane[j];
  for (; i < n; ++i) ss += (x[i] - mean) * (x[i] - mean);
  const float rstd = 1.0f / std::sqrt(ss / float(n) + eps);
  if (g && b)
    for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - mean) * rstd * g[k] + b[k];
  else if (g)
    for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - mean) * rstd * g[k];
  else
    for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - mean) * rstd;
}

void softmax(const float* __restrict x, float* __restrict y, int64_t n, bool log) {
  const float m = fold_lanes(max_f, x, n, -INFINITY);
  for (int64_t i = 0; i < n; ++i) y[i] = exp_sat(x[i] - m);
  const float s = fold_lanes(add_f, y, n, 0.0f);
  if (log) {
    const float ls = m + std::log(s);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - ls;
  } else {
    const float inv = 1.0f / s;
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

template <class Act>
inline void affine_rows(Act act, const float* __restrict x, int64_t sx, const float* __restrict s,
                        const float* __restrict b, int64_t ss, float* __restrict y, int64_t n) {
  if (ss == 0) {
    const float sv = s[0], bv = b[0];
    if (sx == 1)
      for (int64_t i = 0; i < n; ++i) y[i] = act(x[i] * sv + bv);
    else
      for (int64_t i = 0; i < n; ++i) y[i] = act(x[i * sx] * sv + bv);
  } else if (sx == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = act(x[i] * s[i * ss] + b[i * ss]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = act(x[i * sx] * s[i * ss] + b[i * ss]);
  }
}

void affine(const UnaryOp& f, const float* x, int64_t sx, const float* s, const float* b,
            int64_t ss, float* y, int64_t n) {
  if (f.kind == Unary::relu)  // the common case, in one pass
    return affine_rows([](float v) { return v < 0.0f ? 0.0f : v; }, x, sx, s, b, ss, y, n);
  affine_rows([](float v) { return v; }, x, sx, s, b, ss, y, n);
  if (f.kind != Unary::copy) unary(f, y, 1, y, n);
}

void mix(const float* const* x, const float* w, int k, float* __restrict y, int64_t n) {
  const float* __restrict x0 = x[0];
  const float w0 = w[0];
  if (k == 1 && w0 == 1.0f) {
    for (int64_t i = 0; i < n; ++i) y[i] = x0[i];
    return;
  }
  if (k == 2) {  // linear along one dim, or the common pair of taps
    const float* __restrict x1 = x[1];
    const float w1 = w[1];
    for (int64_t i = 0; i < n; ++i) y[i] = w0 * x0[i] + w1 * x1[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) y[i] = w0 * x0[i];
  for (int j = 1; j < k; ++j) {
    const float* __restrict xj = x[j];
    const float wj = w[j];
    for (int64_t i = 0; i < n; ++i) y[i] += wj * xj[i];
  }
}

void gather_mix(const float* __restrict x, const int64_t* __restrict idx, const float* __restrict w,
                int k, float* __restrict y, int64_t n) {
  if (k == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = w[i] * x[idx[i]];
  } else if (k == 2) {
    for (int64_t i = 0; i < n; ++i)
      y[i] = w[2 * i] * x[idx[2 * i]] + w[2 * i + 1] * x[idx[2 * i + 1]];
  } else {
    for (int64_t i = 0; i < n; ++i) {
      float v = 0;
      for (int j = 0; j < k; ++j) v += w[i * k + j] * x[idx[i * k + j]];
      y[i] = v;
    }
  }
}

void max_taps(const float* __restrict x, const int64_t* __restrict off, int taps,
              float* __restrict y, int64_t n) {
#if defined(__AVX512F__)
  // 16 columns a vector, up to four held across the taps; a NaN tap wins
  // (max_ps alone would keep the other operand).
  auto tap = [](__m512 acc, __m512 v) {
    return _mm512_mask_mov_ps(_mm512_max_ps(v, acc), _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
  };
  for (int64_t i0 = 0; i0 < n; i0 += 64) {
    const int64_t w = std::min<int64_t>(64, n - i0);
    const int vecs = int((w + 15) / 16);
    __mmask16 k[4];
    __m512 a[4];
    for (int v = 0; v < 4; ++v) {
      const int64_t left = w - 16 * v;
      k[v] = left >= 16 ? __mmask16(0xffff) : left > 0 ? __mmask16((1u << left) - 1) : 0;
      a[v] = _mm512_set1_ps(-INFINITY);
    }
    for (int t = 0; t < taps; ++t) {
      const float* xt = x + off[t] + i0;
      for (int v = 0; v < vecs; ++v) a[v] = tap(a[v], _mm512_maskz_loadu_ps(k[v], xt + 16 * v));
    }
    for (int v = 0; v < vecs; ++v) _mm512_mask_storeu_ps(y + i0 + 16 * v, k[v], a[v]);
  }
  return;
#endif
  constexpr int64_t kW = 64;  // columns held across the taps
  for (int64_t i0 = 0; i0 < n; i0 += kW) {
    const int64_t w = std::min(kW, n - i0);
    float a[kW];
    for (int64_t i = 0; i < kW; ++i) a[i] = -INFINITY;
    for (int t = 0; t < taps; ++t) {
      const float* __restrict xt = x + off[t] + i0;
      if (w == kW) {
        for (int64_t i = 0; i < kW; ++i) a[i] = max_f(a[i], xt[i]);
      } else {
        for (int64_t i = 0; i < w; ++i) a[i] = max_f(a[i], xt[i]);
      }
    }
    for (int64_t i = 0; i < w; ++i) y[i0 + i] = a[i];
  }
}

void gather(const float* __restrict x, const int32_t* __restrict idx, float* __restrict y,
            int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_i32gather_ps(_mm512_loadu_si512(idx + i), x, 4));
  if (i < n) {
    const __mmask16 m = __mmask16((1u << (n - i)) - 1);
    const __m512i v = _mm512_maskz_loadu_epi32(m, idx + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, v, x, 4));
    return;
  }
#endif
  for (; i < n; ++i) y[i] = x[idx[i]];
}

void permute16(const float* __restrict x, const Permute16* __restrict blocks, float* __restrict y,
               int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const Permute16& b = blocks[i / 16];
    const int64_t m = std::min<int64_t>(16, n - i);
#if defined(__AVX512F__)
    const __m512i sel = _mm512_loadu_si512(b.sel);
    const __m512 v = b.lo_a < 0 ? _mm512_i32gather_ps(sel, x, 4)
                                : _mm512_permutex2var_ps(_mm512_loadu_ps(x + b.lo_a), sel,
                                                         _mm512_loadu_ps(x + b.lo_b));
    if (m == 16)
      _mm512_storeu_ps(y + i, v);
    else
      _mm512_mask_storeu_ps(y + i, __mmask16((1u << m) - 1), v);
#else
    for (int64_t l = 0; l < m; ++l) {
      const int32_t s = b.sel[l];
      y[i + l] = b.lo_a < 0 ? x[s] : s < 16 ? x[b.lo_a + s] : x[b.lo_b + s - 16];
    }
#endif
  }
}

void scale_blocks(const float* __restrict w, const float* __restrict s,
                  const int64_t* __restrict idx, int64_t block, int64_t blocks,
                  float* __restrict y) {
  if (block == 16 || block == 32 || block == 64) {  // oneDNN's weight blocks: whole vectors
    for (int64_t j = 0; j < blocks; ++j) {
      const float sj = s[idx[j]];
      const float* __restrict wj = w + j * block;
      float* __restrict yj = y + j * block;
      for (int64_t i = 0; i < 16; ++i) yj[i] = wj[i] * sj;
      if (block > 16)
        for (int64_t i = 16; i < block; ++i) yj[i] = wj[i] * sj;
    }
    return;
  }
  for (int64_t j = 0; j < blocks; ++j) {
    const float sj = s[idx[j]];
    for (int64_t i = j * block; i < (j + 1) * block; ++i) y[i] = w[i] * sj;
  }
}

// --- int8: (de)quantization and the fused QDQ Add ------------------------------
// Rounding half to even by adding and subtracting 1.5 * 2^23 (exact for
// |v| <= 2^22; values are clamped to the 8-bit range first), in the
// default rounding mode: the same integers as std::nearbyint, vectorized.
// No multiply-add contraction here: qadd's float(a) * sa + float(b) * sb
// must round as the unfused DequantizeLinear and Add ops do.
#if defined(__clang__)
#pragma clang fp contract(off)
#else
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

template <class Q>
void quantize_t(const float* __restrict x, Q* __restrict y, int64_t n, float scale, int32_t zp) {
  const float lo = float(std::numeric_limits<Q>::min()) - float(zp);
  const float hi = float(std::numeric_limits<Q>::max()) - float(zp);
  const float z = float(zp);
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i] / scale;
    v = v == v ? v : -z;  // NaN -> 0
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    v = (v + 12582912.0f) - 12582912.0f;
    y[i] = Q(int32_t(v + z));
  }
}

void quantize(const float* x, void* y, bool u8, int64_t n, float scale, int32_t zp) {
  if (u8)
    quantize_t(x, static_cast<uint8_t*>(y), n, scale, zp);
  else
    quantize_t(x, static_cast<int8_t*>(y), n, scale, zp);
}

template <class Q>
void dequantize_t(const Q* __restrict x, float* __restrict y, int64_t n, float scale, int32_t zp) {
  for (int64_t i = 0; i < n; ++i) y[i] = float(int32_t(x[i]) - zp) * scale;
}

void dequantize(const void* x, bool u8, float* y, int64_t n, float scale, int32_t zp) {
  if (u8)
    dequantize_t(static_cast<const uint8_t*>(x), y, n, scale, zp);
  else
    dequantize_t(static_cast<const int8_t*>(x), y, n, scale, zp);
}

template <class A, class B, class Y>
void qadd_t(const QAddParams& p, const A* __restrict a, const B* __restrict b, Y* __restrict y,
            int64_t n) {
  const float as = p.a_scale, bs = p.b_scale, ys = p.y_scale, alo = p.lo, ahi = p.hi;
  const int32_t az = p.a_zp, bz = p.b_zp;
  const float z = float(p.y_zp);
  const float lo = float(std::numeric_limits<Y>::min()) - z;
  const float hi = float(std::numeric_limits<Y>::max()) - z;
  for (int64_t i = 0; i < n; ++i) {
    float v = float(int32_t(a[i]) - az) * as + float(int32_t(b[i]) - bz) * bs;
    v = v < alo ? alo : v;
    v = v > ahi ? ahi : v;
    v = v / ys;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    v = (v + 12582912.0f) - 12582912.0f;
    y[i] = Y(int32_t(v + z));
  }
}

template <class A, class B>
void qadd_ab(const QAddParams& p, const A* a, const B* b, void* y, int64_t n) {
  if (p.y_u8)
    qadd_t(p, a, b, static_cast<uint8_t*>(y), n);
  else
    qadd_t(p, a, b, static_cast<int8_t*>(y), n);
}

template <class A>
void qadd_a(const QAddParams& p, const A* a, const void* b, void* y, int64_t n) {
  if (p.b_u8)
    qadd_ab(p, a, static_cast<const uint8_t*>(b), y, n);
  else
    qadd_ab(p, a, static_cast<const int8_t*>(b), y, n);
}

void qadd(const QAddParams& p, const void* a, const void* b, void* y, int64_t n) {
  if (p.a_u8)
    qadd_a(p, static_cast<const uint8_t*>(a), b, y, n);
  else
    qadd_a(p, static_cast<const int8_t*>(a), b, y, n);
}

// --- int8 tables (shoal.QLinearLookup, QLinearGlobalAveragePool, QLinearMul) --

void lookup8_plain(const uint8_t* __restrict t, const uint8_t* __restrict x, uint8_t* __restrict y,
                   int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = t[x[i]];
}

#if defined(__AVX512BW__)
/// 64 bytes at a time: two 128-entry permutes (VBMI), picked by the top bit.
__attribute__((target("avx512vbmi"))) void lookup8_vbmi(const uint8_t* t, const uint8_t* x,
                                                        uint8_t* y, int64_t n) {
  const __m512i t0 = _mm512_loadu_si512(t), t1 = _mm512_loadu_si512(t + 64);
  const __m512i t2 = _mm512_loadu_si512(t + 128), t3 = _mm512_loadu_si512(t + 192);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i idx = _mm512_loadu_si512(x + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, idx, t3);
    _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi));
  }
  if (i < n) {
    const __mmask64 k = (uint64_t(1) << (n - i)) - 1;
    const __m512i idx = _mm512_maskz_loadu_epi8(k, x + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, idx, t3);
    _mm512_mask_storeu_epi8(y + i, k, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi));
  }
}
#endif

void lookup8(const uint8_t* t, const uint8_t* x, uint8_t* y, int64_t n) {
#if defined(__AVX512BW__)
  static const bool vbmi = __builtin_cpu_supports("avx512vbmi");
  if (vbmi) return lookup8_vbmi(t, x, y, n);
#endif
  lookup8_plain(t, x, y, n);
}

#if defined(__AVX512BW__)
/// A 256-entry float table in 16 registers; lookup(idx) gives t[idx] for 16
/// indices (0..255) with 8 two-register permutes and a blend tree on the
/// index's bits 5-7 (no gather: gathers are slow, and GCC emulates them).
struct Table16 {
  __m512 r[16];
  explicit Table16(const float* t) {
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(t + 16 * i);
  }
  __m512 lookup(__m512i idx) const {
    __m512 p[8];
    for (int i = 0; i < 8; ++i) p[i] = _mm512_permutex2var_ps(r[2 * i], idx, r[2 * i + 1]);
    const __mmask16 b5 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(32));
    const __mmask16 b6 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(64));
    const __mmask16 b7 = _mm512_test_epi32_mask(idx, _mm512_set1_epi32(128));
    for (int i = 0; i < 4; ++i) p[i] = _mm512_mask_blend_ps(b5, p[2 * i], p[2 * i + 1]);
    for (int i = 0; i < 2; ++i) p[i] = _mm512_mask_blend_ps(b6, p[2 * i], p[2 * i + 1]);
    return _mm512_mask_blend_ps(b7, p[0], p[1]);
  }
};

inline __mmask16 tail16(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}

inline __m512i bytes16(const uint8_t* x, __mmask16 k) {
  return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, x));
}

/// t[x[i]] for 16 bytes: computed when t is affine (4 instructions, the
/// same floats), else looked up (8 permutes and a blend tree).
inline __m512 values16(const Table16& tab, const Affine8* a, const uint8_t* x, __mmask16 k) {
  if (!a) return tab.lookup(bytes16(x, k));
  const __m128i b = _mm_maskz_loadu_epi8(k, x);
  const __m512i v = a->is_signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, _mm512_set1_epi32(a->zp))),
                       _mm512_set1_ps(a->scale));
}

/// A 256-entry float table as four byte planes (byte j of every entry, four
/// registers each): lookup64 gives t[x] for 64 indices with 8 byte permutes
/// (two per plane, 128 entries each, picked by the index's top bit) and 8
/// unpacks, a third of the instructions of four Table16 lookups. The unpacks
/// interleave within 128-bit lanes, so the indices are permuted first and
/// the floats come out in order. Needs AVX512-VBMI.
struct Table64 {
  __m512i p[4][4];  // plane j, entries 64q..64q+63
  explicit Table64(const float* t) {
    alignas(64) uint8_t b[4][256];
    for (int i = 0; i < 256; ++i) {
      const uint32_t u = std::bit_cast<uint32_t>(t[i]);
      for (int j = 0; j < 4; ++j) b[j][i] = uint8_t(u >> (8 * j));
    }
    for (int j = 0; j < 4; ++j)
      for (int q = 0; q < 4; ++q) p[j][q] = _mm512_load_si512(b[j] + 64 * q);
  }
  /// out[m] holds t[x[16m .. 16m + 15]].
  __attribute__((target("avx512vbmi"))) void lookup(__m512i x, __m512 out[4]) const {
    alignas(64) static const uint8_t order[64] = {
        0,  1,  2,  3,  16, 17, 18, 19, 32, 33, 34, 35, 48, 49, 50, 51,  // lane 0
        4,  5,  6,  7,  20, 21, 22, 23, 36, 37, 38, 39, 52, 53, 54, 55,  // lane 1
        8,  9,  10, 11, 24, 25, 26, 27, 40, 41, 42, 43, 56, 57, 58, 59,  // lane 2
        12, 13, 14, 15, 28, 29, 30, 31, 44, 45, 46, 47, 60, 61, 62, 63};
    const __m512i idx = _mm512_permutexvar_epi8(_mm512_load_si512(order), x);
    const __mmask64 top = _mm512_movepi8_mask(idx);
    __m512i b[4];
    for (int j = 0; j < 4; ++j)
      b[j] = _mm512_mask_blend_epi8(top, _mm512_permutex2var_epi8(p[j][0], idx, p[j][1]),
                                    _mm512_permutex2var_epi8(p[j][2], idx, p[j][3]));
    const __m512i w0 = _mm512_unpacklo_epi8(b[0], b[1]), w1 = _mm512_unpackhi_epi8(b[0], b[1]);
    const __m512i w2 = _mm512_unpacklo_epi8(b[2], b[3]), w3 = _mm512_unpackhi_epi8(b[2], b[3]);
    out[0] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(w0, w2));
    out[1] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(w0, w2));
    out[2] = _mm512_castsi512_ps(_mm512_unpacklo_epi16(w1, w3));
    out[3] = _mm512_castsi512_ps(_mm512_unpackhi_epi16(w1, w3));
  }
};

inline bool has_vbmi() {
  static const bool vbmi = __builtin_cpu_supports("avx512vbmi");
  return vbmi;
}

/// acc[i..i+15] += double(v[0..15]) as two halves.
inline void add16(__m512d& lo, __m512d& hi, __m512 v) {
  lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
  hi = _mm512_add_pd(
      hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

/// accumulate_table's columns [0, n64) (a multiple of 64), 64 at a time.
__attribute__((target("avx512vbmi"))) void accumulate_table64(const float* t, const uint8_t* x,
                                                              int64_t rows, int64_t n, int64_t n64,
                                                              double* acc) {
  const Table64 tab(t);
  for (int64_t i = 0; i < n64; i += 64) {
    __m512d a[8];
    for (int j = 0; j < 8; ++j) a[j] = _mm512_loadu_pd(acc + i + 8 * j);
    for (int64_t r = 0; r < rows; ++r) {
      __m512 v[4];
      tab.lookup(_mm512_loadu_si512(x + r * n + i), v);
      for (int m = 0; m < 4; ++m) add16(a[2 * m], a[2 * m + 1], v[m]);
    }
    for (int j = 0; j < 8; ++j) _mm512_storeu_pd(acc + i + 8 * j, a[j]);
  }
}
#else
struct Table16 {  // the plain loops index the table itself
  explicit Table16(const float*) {}
};
#endif

void accumulate_table(const float* __restrict t, [[maybe_unused]] const Affine8* a,
                      const uint8_t* __restrict x, int64_t rows, int64_t n,
                      double* __restrict acc) {
#if defined(__AVX512BW__)
  int64_t i = 0;
  if (!a && has_vbmi()) {
    i = n / 64 * 64;
    accumulate_table64(t, x, rows, n, i, acc);
  }
  const Table16 tab(t);
  for (; i < n; i += 16) {  // 16 columns at a time, down all rows
    const __mmask16 k = tail16(n - i);
    const __mmask8 k0 = __mmask8(k), k1 = __mmask8(k >> 8);
    __m512d lo = _mm512_maskz_loadu_pd(k0, acc + i), hi = _mm512_maskz_loadu_pd(k1, acc + i + 8);
    for (int64_t r = 0; r < rows; ++r) {
      add16(lo, hi, values16(tab, a, x + r * n + i, k));
    }
    _mm512_mask_storeu_pd(acc + i, k0, lo);
    _mm512_mask_storeu_pd(acc + i + 8, k1, hi);
  }
#else
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) acc[i] += double(t[x[r * n + i]]);
#endif
}

#if defined(__AVX512BW__)
/// quantize(s * tv) (QOut) of 16 values into y under mask k.
template <class Q>
inline void quant16(const QOut& q, const float* s, __m512 tv, Q* y, __mmask16 k) {
  const float z = float(q.zp);
  const float lo = float(std::numeric_limits<Q>::min()) - z;
  const float hi = float(std::numeric_limits<Q>::max()) - z;
  __m512 v = _mm512_div_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, s), tv), _mm512_set1_ps(q.scale));
  v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), _mm512_set1_ps(-z),
                           v);  // NaN -> 0
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi));
  v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i iv = _mm512_cvtps_epi32(_mm512_add_ps(v, _mm512_set1_ps(z)));
  _mm_mask_storeu_epi8(y, k, _mm512_cvtepi32_epi8(iv));
}

/// quant16 of 64 values (s[0..63] * tv[m]) with NaN handled only when the
/// values can be NaN, rounded in the conversion and packed with two
/// saturating packs (the values are in range already) and one permute:
/// fewer instructions than four quant16.
template <class Q, bool kNaN>
inline void quant64(const QOut& q, const float* s, const __m512 tv[4], Q* y) {
  const float z = float(q.zp);
  const __m512 lo = _mm512_set1_ps(float(std::numeric_limits<Q>::min()) - z);
  const __m512 hi = _mm512_set1_ps(float(std::numeric_limits<Q>::max()) - z);
  const __m512 scale = _mm512_set1_ps(q.scale);
  const __m512i zp = _mm512_set1_epi32(q.zp);
  __m512i iv[4];
  for (int m = 0; m < 4; ++m) {
    __m512 v = _mm512_div_ps(_mm512_mul_ps(_mm512_loadu_ps(s + 16 * m), tv[m]), scale);
    if constexpr (kNaN)
      v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), _mm512_set1_ps(-z), v);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    iv[m] = _mm512_add_epi32(
        _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zp);
  }
  // packs interleave 128-bit lanes: dword 4 * lane + m holds iv[m]'s four
  // values of that lane.
  const __m512i w01 = _mm512_packs_epi32(iv[0], iv[1]), w23 = _mm512_packs_epi32(iv[2], iv[3]);
  const __m512i b =
      std::is_same_v<Q, uint8_t> ? _mm512_packus_epi16(w01, w23) : _mm512_packs_epi16(w01, w23);
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_si512(y, _mm512_permutexvar_epi32(order, b));
}

/// scale_row's elements [0, n64) (a multiple of 64), 64 at a time.
template <class Q>
__attribute__((target("avx512vbmi"))) void scale_row64(const QOut& q, const float* s,
                                                       const Table64& tab, const uint8_t* x, Q* y,
                                                       int64_t n64) {
  for (int64_t i = 0; i < n64; i += 64) {
    __m512 v[4];
    tab.lookup(_mm512_loadu_si512(x + i), v);
    if (q.finite)
      quant64<Q, false>(q, s + i, v, y + i);
    else
      quant64<Q, true>(q, s + i, v, y + i);
  }
}
#else
struct Table64 {
  explicit Table64(const float*) {}
};
#endif

template <class Q>
void scale_row(const QOut& q, const float* __restrict s, const float* __restrict t,
               [[maybe_unused]] const Affine8* a, const uint8_t* __restrict x, Q* __restrict y,
               int64_t n, [[maybe_unused]] const Table16& tab,
               [[maybe_unused]] const Table64& tab64) {
  const float scale = q.scale, z = float(q.zp);
  const float lo = float(std::numeric_limits<Q>::min()) - z;
  const float hi = float(std::numeric_limits<Q>::max()) - z;
  int64_t i = 0;
#if defined(__AVX512BW__)
  if (!a && has_vbmi()) {
    i = n / 64 * 64;
    scale_row64(q, s, tab64, x, y, i);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = tail16(n - i);
    quant16(q, s + i, values16(tab, a, x + i, k), y + i, k);
  }
#endif
  for (; i < n; ++i) {
    float v = (s[i] * t[x[i]]) / scale;
    v = v == v ? v : -z;  // NaN -> 0
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    v = (v + 12582912.0f) - 12582912.0f;
    y[i] = Q(int32_t(v + z));
  }
}

template <class Q>
void scale_table_t(const QOut& q, const float* s, const float* t, const Affine8* a,
                   const uint8_t* x, Q* y, int64_t rows, int64_t n) {
  const Table16 tab(t);
  const Table64 tab64(t);
  for (int64_t r = 0; r < rows; ++r) scale_row(q, s, t, a, x + r * n, y + r * n, n, tab, tab64);
}

void scale_table(const QOut& q, const float* s, const float* t, const Affine8* a, const uint8_t* x,
                 void* y, int64_t rows, int64_t n) {
  if (q.u8)
    scale_table_t(q, s, t, a, x, static_cast<uint8_t*>(y), rows, n);
  else
    scale_table_t(q, s, t, a, x, static_cast<int8_t*>(y), rows, n);
}
#if defined(__clang__)
#pragma clang fp contract(on)  // clang's default
#else
#pragma GCC pop_options
#endif

}  // namespace

const Loops& SHOAL_CAT(loops_, SHOAL_LOOPS_ISA)() {
  static const Loops table{SHOAL_STR(SHOAL_LOOPS_ISA),
                           unary,
                           binary,
                           accumulate,
                           accumulate_rows,
                           fold,
                           scale,
                           layernorm,
                           softmax,
                           affine,
                           mix,
                           gather_mix,
                           max_taps,
                           gather,
                           permute16,
                           scale_blocks,
                           quantize,
                           dequantize,
                           qadd,
                           lookup8,
                           accumulate_table,
                           scale_table};
  return table;
}

}  // namespace shoal::cpu::native
