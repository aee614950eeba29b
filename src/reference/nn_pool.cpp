// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
#include <cmath>
#include <limits>
#include <utility>

#include "reference/nn_internal.hpp"

namespace shoal::ref::nn {
namespace {

// pool_geometry names the op "pool"; put the real op name in its errors.
WindowGeometry geometry(const std::string& op, const Attrs& a, const Shape& x) {
  try {
    return pool_geometry(a, x);
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.rfind("pool: ", 0) == 0) msg = op + ": " + msg.substr(6);
    throw Error(e.kind(), msg);
  }
}

ops::InferFn pool_infer(const std::string& op) {
  return [op](const Attrs& a, Infos in) -> std::vector<TypeShape> {
    const ValueInfo& x = need(in, 0, op, "X");
    const bool is8 = x.dtype == DType::u8 || x.dtype == DType::i8;
    if (op != "MaxPool" || !is8) require_f32(op, "X", x);
    if (op == "AveragePool" && a.i("count_include_pad", 0) > 1)
      fail(ErrorKind::invalid_argument,
           op + ": count_include_pad must be 0 or 1");
    const Shape y = window_out_shape(geometry(op, a, x.shape));
    if (op != "MaxPool") return {{DType::f32, y}};
    const int64_t order = a.i("storage_order", 0);
    if (order != 0 && order != 1)
      fail(ErrorKind::invalid_argument,
           op + ": storage_order must be 0 or 1, got " + std::to_string(order));
    return {{x.dtype, y}, {DType::i64, y}};  // Y, and the optional Indices
  };
}

// Visits each output element of a window op: f(n*C+c plane input pointer,
// window start per dim) -> value.
template <class F>
void for_windows(const std::string& op, const Attrs& a, Refs in, Refs out,
                 F f) {
  WindowGeometry g = geometry(op, a, in[0].shape);
  check_out(op, out[0], window_out_shape(g));
  Win3 v = win3(g);
  const float* xp = in[0].as<const float>();
  float* yp = out[0].as<float>();
  const int64_t plane = v.in[0] * v.in[1] * v.in[2];
  int64_t yi = 0;
  for (int64_t nc = 0; nc < g.n * g.c_in; ++nc)
    for (int64_t o0 = 0; o0 < v.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < v.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < v.out[2]; ++o2, ++yi) {
          const int64_t start[3] = {o0 * v.s[0] - v.pb[0],
                                    o1 * v.s[1] - v.pb[1],
                                    o2 * v.s[2] - v.pb[2]};
          yp[yi] = f(v, xp + nc * plane, start);
        }
}

// The taps [lo, hi) of one window dim whose input index st + k * d lies in
// [0, n): padding taps are never visited, so a huge kernel over a small input
// costs what the input holds, not what the kernel spans.
inline std::pair<int64_t, int64_t> taps_inside(int64_t st, int64_t d, int64_t n, int64_t k) {
  const int64_t lo = st < 0 ? (-st + d - 1) / d : 0;
  const int64_t hi = n - st <= 0 ? 0 : (n - st + d - 1) / d;
  return {lo, std::min(k, hi)};
}

// Calls f(i0, i1, i2) for the input position of each window tap starting at
// st (padding skipped), in row-major order; stops once f returns false.
template <class F>
void for_window_taps(const Win3& v, const int64_t* st, F f) {
  const auto [lo0, hi0] = taps_inside(st[0], v.d[0], v.in[0], v.k[0]);
  const auto [lo1, hi1] = taps_inside(st[1], v.d[1], v.in[1], v.k[1]);
  const auto [lo2, hi2] = taps_inside(st[2], v.d[2], v.in[2], v.k[2]);
  for (int64_t k0 = lo0; k0 < hi0; ++k0)
    for (int64_t k1 = lo1; k1 < hi1; ++k1)
      for (int64_t k2 = lo2; k2 < hi2; ++k2)
        if (!f(st[0] + k0 * v.d[0], st[1] + k1 * v.d[1], st[2] + k2 * v.d[2])) return;
}

// Calls f(e) for each input element e under the window starting at st
// (padding skipped), in row-major order; stops once f returns false.
template <class F>
void for_window_elems(const Win3& v, const float* x, const int64_t* st, F f) {
  for_window_taps(v, st, [&](int64_t i0, int64_t i1, int64_t i2) {
    return f(x[(i0 * v.in[1] + i1) * v.in[2] + i2]);
  });
}

// MaxPool with its Indices output: where each maximum is in the input
// flattened over [N, C, spatial...] as ONNX (and onnxruntime) number it,
// the spatial dims in row-major order (storage_order 0) or column-major (1).
// Padding is never selected; ties go to the first element in window order;
// a NaN wins. A window over padding only (possible with dilations) gives
// -inf and index -1.
void maxpool_indices_ref(const Attrs& a, Refs in, Refs out) {
  WindowGeometry g = geometry("MaxPool", a, in[0].shape);
  const Shape ys = window_out_shape(g);
  check_out("MaxPool", out[0], ys);
  if (out[1].shape != ys || out[1].dtype != DType::i64 ||
      (out[1].data == nullptr && shape_numel(ys) != 0))
    fail(ErrorKind::internal, "MaxPool: reference kernel got Indices " + shape_str(out[1].shape) +
                                  " " + dtype_name(out[1].dtype) + ", expected " + shape_str(ys) +
                                  " int64");
  const bool column = a.i("storage_order", 0) == 1;
  const Win3 v = win3(g);
  const float* xp = in[0].as<const float>();
  float* yp = out[0].as<float>();
  int64_t* ip = out[1].as<int64_t>();
  const int64_t plane = v.in[0] * v.in[1] * v.in[2];
  // Position of spatial element (i0, i1, i2) in its plane; Win3's leading
  // dims that the input lacks have size 1 and index 0.
  auto position = [&](int64_t i0, int64_t i1, int64_t i2) {
    return column ? i0 + (i1 + i2 * v.in[1]) * v.in[0] : (i0 * v.in[1] + i1) * v.in[2] + i2;
  };
  int64_t yi = 0;
  for (int64_t nc = 0; nc < g.n * g.c_in; ++nc) {
    const float* x = xp + nc * plane;
    for (int64_t o0 = 0; o0 < v.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < v.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < v.out[2]; ++o2, ++yi) {
          float m = -std::numeric_limits<float>::infinity();
          int64_t at = -1;
          const int64_t st[3] = {o0 * v.s[0] - v.pb[0], o1 * v.s[1] - v.pb[1],
                                 o2 * v.s[2] - v.pb[2]};
          for_window_taps(v, st, [&](int64_t i0, int64_t i1, int64_t i2) {
            const float e = x[(i0 * v.in[1] + i1) * v.in[2] + i2];
            if (e > m || std::isnan(e) || at < 0) {
              m = e;
              at = position(i0, i1, i2);
            }
            return !std::isnan(m);  // NaN wins: stop
          });
          yp[yi] = m;
          ip[yi] = at < 0 ? -1 : nc * plane + at;
        }
  }
}

void maxpool_ref(const Attrs& a, Refs in, Refs out) {
  if (in[0].dtype == DType::u8 || in[0].dtype == DType::i8) {
    // 8-bit maps (ONNX allows them): the float pool on their values, exact.
    const bool u8 = in[0].dtype == DType::u8;
    const int64_t n = in[0].numel(), m = out[0].numel();
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(m));
    for (int64_t i = 0; i < n; ++i)
      x[size_t(i)] = u8 ? float(in[0].as<const uint8_t>()[i]) : float(in[0].as<const int8_t>()[i]);
    std::vector<TensorRef> fin(in.begin(), in.end()), fout(out.begin(), out.end());
    fin[0] = TensorRef{DType::f32, in[0].shape, x.data()};
    fout[0] = TensorRef{DType::f32, out[0].shape, y.data()};
    maxpool_ref(a, fin, fout);
    for (int64_t i = 0; i < m; ++i) {
      if (u8)
        out[0].as<uint8_t>()[i] = uint8_t(y[size_t(i)]);
      else
        out[0].as<int8_t>()[i] = int8_t(y[size_t(i)]);
    }
    return;
  }
  if (out.size() > 1 && out[1].data != nullptr) return maxpool_indices_ref(a, in, out);
  for_windows("MaxPool", a, in, out,
              [](const Win3& v, const float* x, const int64_t* st) {
                float m = -std::numeric_limits<float>::infinity();
                for_window_elems(v, x, st, [&](float e) {
                  if (e > m || std::isnan(e)) m = e;
                  return !std::isnan(m);  // NaN wins: stop
                });
                return m;
              });
}

// count_include_pad: the divisor counts window positions inside the padded
// input (not those past the end padding that ceil_mode adds), as PyTorch
// and onnxruntime do; otherwise only real input elements.
void avgpool_ref(const Attrs& a, Refs in, Refs out) {
  const bool include_pad = a.i("count_include_pad", 0) != 0;
  WindowGeometry g = geometry("AveragePool", a, in[0].shape);
  int64_t pe[3] = {0, 0, 0};  // end pads, padded to 3 dims like Win3
  for (int i = 0, off = 3 - g.spatial(); i < g.spatial(); ++i)
    pe[off + i] = g.pad_end[size_t(i)];
  for_windows("AveragePool", a, in, out,
              [&](const Win3& v, const float* x, const int64_t* st) {
                double sum = 0;
                // window positions inside the input / the padded input
                int64_t real = 1, padded = 1;
                for (int d = 0; d < 3; ++d) {
                  auto [lo, hi] = taps_inside(st[d], v.d[d], v.in[d], v.k[d]);
                  auto [plo, phi] =
                      taps_inside(st[d] + v.pb[d], v.d[d], v.in[d] + v.pb[d] + pe[d], v.k[d]);
                  real *= std::max<int64_t>(0, hi - lo);
                  padded *= std::max<int64_t>(0, phi - plo);
                }
                for_window_elems(v, x, st, [&](float e) {
                  sum += e;
                  return true;
                });
                int64_t count = include_pad ? padded : real;
                return count > 0 ? float(sum / double(count)) : 0.0f;
              });
}

// --- global pools ------------------------------------------------------------

ops::InferFn global_infer(const std::string& op) {
  return [op](const Attrs&, Infos in) -> std::vector<TypeShape> {
    const ValueInfo& x = need(in, 0, op, "X");
    const bool is8 = x.dtype == DType::u8 || x.dtype == DType::i8;
    if (op != "MaxPool" || !is8) require_f32(op, "X", x);
    if (x.shape.size() < 3)
      fail(ErrorKind::invalid_argument,
           op + ": input X has shape " + shape_str(x.shape) +
               "; expected rank >= 3 ([N,C,spatial...])");
    Shape y = x.shape;
    for (size_t i = 2; i < y.size(); ++i) y[i] = 1;
    return {{DType::f32, y}};
  };
}

template <bool kMax>
void global_ref(const Attrs&, Refs in, Refs out) {
  const Shape& xs = in[0].shape;
  Shape ys = xs;
  for (size_t i = 2; i < ys.size(); ++i) ys[i] = 1;
  check_out(kMax ? "GlobalMaxPool" : "GlobalAveragePool", out[0], ys);
  const int64_t planes = xs[0] * xs[1];
  const int64_t sz = planes ? in[0].numel() / planes : 0;
  const float* x = in[0].as<const float>();
  float* y = out[0].as<float>();
  for (int64_t p = 0; p < planes; ++p) {
    const float* xp = x + p * sz;
    if (kMax) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < sz; ++i)
        if (xp[i] > m || std::isnan(xp[i])) m = xp[i];
      y[p] = m;
    } else {
      double s = 0;
      for (int64_t i = 0; i < sz; ++i) s += xp[i];
      y[p] = float(s / double(sz));
    }
  }
}

}  // namespace

void add_pool_ops(std::vector<OpSpec>& t) {
  OpSpec maxpool = make_spec(
      "MaxPool", 1, 1, 1,
      "max pooling (float32, or uint8/int8 maps): kernel_shape, strides, pads/auto_pad, dilations, "
      "ceil_mode; optional Indices output (int64, storage_order 0/1; "
      "reference kernel, counted within each sample)",
      pool_infer("MaxPool"), maxpool_ref, {DType::f32, DType::i64, DType::u8, DType::i8});
  maxpool.num_outputs = 2;  // Y, Indices
  t.push_back(std::move(maxpool));
  t.push_back(
      make_spec("AveragePool", 1, 1, 1,
                "average pooling: kernel_shape, strides, pads/auto_pad, "
                "dilations, ceil_mode, count_include_pad",
                pool_infer("AveragePool"), avgpool_ref));
  t.push_back(make_spec("GlobalAveragePool", 1, 1, 1,
                        "mean over all spatial dims",
                        global_infer("GlobalAveragePool"), global_ref<false>));
  t.push_back(make_spec("GlobalMaxPool", 1, 1, 1, "max over all spatial dims",
                        global_infer("GlobalMaxPool"), global_ref<true>));
}

}  // namespace shoal::ref::nn
