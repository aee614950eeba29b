// Tensor operators that select or combine elements: Gather, Concat, Split,
// Slice, Tile. They move bytes, so every dtype is accepted.
#include <optional>
#include <set>

#include "reference/geometry.hpp"
#include "reference/plans.hpp"
#include "reference/ref_util.hpp"

namespace shoal::ref {
namespace {

constexpr int kMaxVariadic = 1 << 16;

int64_t prod(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= s[i];
  return p;
}

// --- Gather ---------------------------------------------------------------------

/// Resolves a Gather index (negative counts from the end); throws when out of
/// range.
int64_t gather_index(int64_t i, int64_t n) {
  if (i < -n || i >= n)
    fail(ErrorKind::invalid_argument, "Gather: index " + std::to_string(i) +
                                          " out of range for an axis of size " + std::to_string(n));
  return i < 0 ? i + n : i;
}

// --- ScatterND -----------------------------------------------------------------

/// y = data with the slices named by indices [..., k] replaced by updates
/// (reduction none) or combined with them (add, mul). Exporters write it
/// for in-place slice assignments (Swin's attention masks), on constants
/// that fold at compile time.
void add_scatter_nd(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "ScatterND", 11, 3, 3,
      "y = data with the slices at indices [..., k] replaced by updates (reduction none, add "
      "or mul)",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "ScatterND");
        const ValueInfo& ind = req_input(in, 1, "ScatterND", "indices");
        const ValueInfo& up = req_input(in, 2, "ScatterND", "updates");
        check_dtype("ScatterND", "input 'indices'", ind.dtype, {DType::i64});
        const std::string red = a.s("reduction", "none");
        if (red != "none" && red != "add" && red != "mul")
          fail(ErrorKind::unsupported, "ScatterND: reduction '" + red + "' is not supported");
        if (ind.shape.empty() || ind.shape.back() > int64_t(x.shape.size()))
          fail(ErrorKind::invalid_argument, "ScatterND: indices " + shape_str(ind.shape) +
                                                " do not index data " + shape_str(x.shape));
        // updates = indices.shape[:-1] + data.shape[k:]
        Shape want(ind.shape.begin(), ind.shape.end() - 1);
        want.insert(want.end(), x.shape.begin() + long(ind.shape.back()), x.shape.end());
        if (up.shape != want || up.dtype != x.dtype)
          fail(ErrorKind::invalid_argument,
               "ScatterND: updates " + shape_str(up.shape) + ", expected " + shape_str(want));
        return std::vector<TypeShape>{{x.dtype, x.shape}};
      },
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        const Shape& s = in[0].shape;
        const std::vector<int64_t> ind = read_ints(in[1], "ScatterND", "indices");
        const int64_t k = in[1].shape.back();
        const int64_t slice = prod(s, size_t(k), s.size());
        const size_t esize = dtype_size(in[0].dtype);
        std::memcpy(out[0].data, in[0].data, size_t(in[0].numel()) * esize);
        const Shape st = strides_of(s);
        const std::string red = a.s("reduction", "none");
        const int64_t n = k == 0 ? 0 : int64_t(ind.size()) / k;
        for (int64_t j = 0; j < (k == 0 ? 1 : n); ++j) {
          int64_t off = 0;
          for (int64_t d = 0; d < k; ++d) {
            int64_t v = ind[size_t(j * k + d)];
            const int64_t dim = s[size_t(d)];
            if (v < -dim || v >= dim)
              fail(ErrorKind::invalid_argument, "ScatterND: index " + std::to_string(v) +
                                                    " out of range for dim " + std::to_string(dim));
            off += (v < 0 ? v + dim : v) * st[size_t(d)];
          }
          auto* dst = out[0].as<uint8_t>() + size_t(off) * esize;
          const auto* src = in[2].as<const uint8_t>() + size_t(j * slice) * esize;
          if (red == "none") {
            std::memcpy(dst, src, size_t(slice) * esize);
            continue;
          }
          visit_dtype(in[0].dtype, "ScatterND", [&](auto z) {
            using T = decltype(z);
            T* y = reinterpret_cast<T*>(dst);
            const T* u = reinterpret_cast<const T*>(src);
            for (int64_t i = 0; i < slice; ++i)
              y[i] = red == "add" ? T(y[i] + u[i]) : T(y[i] * u[i]);
          });
        }
      },
      kTensorDTypes));
}

void add_gather(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Gather", 1, 2, 2, "y = data indexed by 'indices' along axis (negative indices wrap)",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Gather");
        const ValueInfo& ind = req_input(in, 1, "Gather", "indices");
        check_dtype("Gather", "input 'indices'", ind.dtype, {DType::i64, DType::i32});
        int64_t r = int64_t(x.shape.size());
        if (r == 0) fail(ErrorKind::invalid_argument, "Gather: data must have rank >= 1");
        size_t axis = size_t(normalize_axis("Gather", a.i("axis", 0), r));
        if (ind.constant)
          for (int64_t i : ind.constant->to_ints()) gather_index(i, x.shape[axis]);
        Shape out(x.shape.begin(), x.shape.begin() + long(axis));
        out.insert(out.end(), ind.shape.begin(), ind.shape.end());
        out.insert(out.end(), x.shape.begin() + long(axis) + 1, x.shape.end());
        return std::vector<TypeShape>{{x.dtype, out}};
      },
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        const Shape& s = in[0].shape;
        size_t axis = size_t(normalize_axis("Gather", a.i("axis", 0), int64_t(s.size())));
        std::vector<int64_t> ind = read_ints(in[1], "Gather", "indices");
        int64_t outer = prod(s, 0, axis), n = s[axis], inner = prod(s, axis + 1, s.size());
        size_t chunk = size_t(inner) * dtype_size(in[0].dtype);
        const auto* src = in[0].as<const uint8_t>();
        auto* dst = out[0].as<uint8_t>();
        for (int64_t o = 0; o < outer; ++o)
          for (size_t j = 0; j < ind.size(); ++j) {
            int64_t i = gather_index(ind[j], n);
            std::memcpy(dst + (size_t(o) * ind.size() + j) * chunk, src + size_t(o * n + i) * chunk,
                        chunk);
          }
      },
      kTensorDTypes));
}

// --- Concat ---------------------------------------------------------------------

/// A Concat that took the BatchNormalization after it (the compiler's
/// fuse_concat_batchnorm): attributes affine_scale and affine_shift hold one
/// value per output channel (axis 1), applied with the fused activation:
/// y = act(concat * scale + shift).
bool concat_affine(const Attrs& a) { return a.has("affine_scale"); }

void check_concat_affine(const Attrs& a, const Shape& out, size_t axis, DType dt) {
  const size_t c = out.size() > 1 ? size_t(out[1]) : 0;
  if (axis != 1 || dt != DType::f32 || a.floats("affine_scale").size() != c ||
      a.floats("affine_shift").size() != c)
    fail(ErrorKind::invalid_argument,
         "Concat: affine_scale/affine_shift need float32 inputs joined along axis 1 and one "
         "value per output channel (" +
             std::to_string(c) + ")");
  activation_from_attrs(a);  // a fused activation must be one shoal knows
}

void apply_concat_affine(const Attrs& a, const TensorRef& y) {
  const std::vector<float> sc = a.floats("affine_scale"), sh = a.floats("affine_shift");
  const Activation act = activation_from_attrs(a);
  const int64_t c = y.shape[1], inner = prod(y.shape, 2, y.shape.size());
  float* p = y.as<float>();
  for (int64_t o = 0; o < y.shape[0]; ++o)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < inner; ++i, ++p) *p = act(*p * sc[size_t(ch)] + sh[size_t(ch)]);
}

void add_concat(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Concat", 1, 1, kMaxVariadic, "joins the inputs along axis",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Concat");
        int64_t r = int64_t(x.shape.size());
        if (r == 0) fail(ErrorKind::invalid_argument, "Concat: inputs must have rank >= 1");
        size_t axis = size_t(normalize_axis("Concat", a.i("axis", 1), r));
        Shape out = x.shape;
        for (size_t i = 1; i < in.size(); ++i) {
          const ValueInfo& y = req_input(in, i, "Concat", "input " + std::to_string(i));
          if (y.dtype != x.dtype)
            fail(ErrorKind::invalid_argument, "Concat: input " + std::to_string(i) +
                                                  " has element type " + dtype_name(y.dtype) +
                                                  " but input 0 has " + dtype_name(x.dtype));
          bool ok = y.shape.size() == x.shape.size();
          for (size_t d = 0; ok && d < x.shape.size(); ++d)
            ok = d == axis || y.shape[d] == x.shape[d];
          if (!ok)
            fail(ErrorKind::invalid_argument,
                 "Concat: input " + std::to_string(i) + " of shape " + shape_str(y.shape) +
                     " does not match input 0 of shape " + shape_str(x.shape) + " outside axis " +
                     std::to_string(axis));
          if (__builtin_add_overflow(out[axis], y.shape[axis], &out[axis]))
            fail(ErrorKind::invalid_argument,
                 "Concat: the inputs' sizes along axis " + std::to_string(axis) + " sum past 2^63");
        }
        if (concat_affine(a)) check_concat_affine(a, out, axis, x.dtype);
        return std::vector<TypeShape>{{x.dtype, out}};
      },
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        const Shape& s = out[0].shape;
        size_t axis = size_t(normalize_axis("Concat", a.i("axis", 1), int64_t(s.size())));
        int64_t outer = prod(s, 0, axis);
        size_t inner = size_t(prod(s, axis + 1, s.size())) * dtype_size(out[0].dtype);
        auto* dst = out[0].as<uint8_t>();
        for (int64_t o = 0; o < outer; ++o)
          for (const TensorRef& x : in) {
            size_t chunk = size_t(x.shape[axis]) * inner;
            if (chunk == 0) continue;
            std::memcpy(dst, x.as<const uint8_t>() + size_t(o) * chunk, chunk);
            dst += chunk;
          }
        if (concat_affine(a)) apply_concat_affine(a, out[0]);
      },
      std::vector<DType>{DType::f32, DType::i64, DType::u8, DType::i8}));  // int8 layers too
}

// --- Split ----------------------------------------------------------------------

/// Split sizes: attribute 'split' (opset < 13), else input 1, else equal
/// parts, their number from attribute 'num_outputs' (opset 18; for earlier
/// opsets the frontend sets it from the node's output count). Uneven: the
/// last part is smaller.
std::vector<int64_t> split_sizes(const Attrs& a, std::span<const ValueInfo> in, int64_t dim) {
  std::vector<int64_t> sizes;
  if (a.has("split")) {
    sizes = a.ints("split");
  } else if (const ValueInfo* s = opt_input(in, 1)) {
    sizes = const_ints(*s, "Split", "split");
  } else if (a.has("num_outputs")) {
    int64_t n = a.i("num_outputs", 0);
    if (n < 1 || n > kMaxVariadic)
      fail(ErrorKind::invalid_argument, "Split: num_outputs must be in [1, " +
                                            std::to_string(kMaxVariadic) + "], got " +
                                            std::to_string(n));
    int64_t part = (dim + n - 1) / n;
    if (dim % n == 0) part = dim / n;
    for (int64_t i = 0; i < n; ++i)
      sizes.push_back(std::max<int64_t>(0, std::min(part, dim - i * part)));
  } else {
    fail(ErrorKind::invalid_argument,
         "Split: needs 'split' sizes or attribute 'num_outputs' (the number of outputs)");
  }
  int64_t sum = 0;
  bool overflow = false;
  for (int64_t v : sizes) {
    if (v < 0)
      fail(ErrorKind::invalid_argument, "Split: negative size in split " + shape_str(sizes));
    overflow = overflow || __builtin_add_overflow(sum, v, &sum);
  }
  if (overflow || sum != dim)
    fail(ErrorKind::invalid_argument,
         "Split: sizes " + shape_str(sizes) + " sum to " +
             (overflow ? std::string("more than 2^63") : std::to_string(sum)) + ", the axis has " +
             std::to_string(dim));
  return sizes;
}

void add_split(std::vector<OpSpec>& t) {
  OpSpec s = make_spec(
      "Split", 2, 1, 2, "splits along axis into parts given by 'split' or equal parts",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Split");
        int64_t r = int64_t(x.shape.size());
        if (r == 0) fail(ErrorKind::invalid_argument, "Split: input must have rank >= 1");
        size_t axis = size_t(normalize_axis("Split", a.i("axis", 0), r));
        std::vector<TypeShape> outs;
        for (int64_t n : split_sizes(a, in, x.shape[axis])) {
          outs.push_back({x.dtype, x.shape});
          outs.back().shape[axis] = n;
        }
        return outs;
      },
      // Each output's extent along axis comes from its (inferred) shape.
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        const Shape& s = in[0].shape;
        size_t axis = size_t(normalize_axis("Split", a.i("axis", 0), int64_t(s.size())));
        int64_t outer = prod(s, 0, axis);
        size_t inner = size_t(prod(s, axis + 1, s.size())) * dtype_size(in[0].dtype);
        const auto* src = in[0].as<const uint8_t>();
        for (int64_t o = 0; o < outer; ++o)
          for (const TensorRef& y : out) {
            size_t chunk = size_t(y.shape[axis]) * inner;
            if (y.present() && chunk > 0)
              std::memcpy(y.as<uint8_t>() + size_t(o) * chunk, src, chunk);
            src += chunk;
          }
      },
      kTensorDTypes);
  s.num_outputs = -1;
  t.push_back(std::move(s));
}

// --- Slice ----------------------------------------------------------------------

void add_slice(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Slice", 1, 1, 5, "y = x[starts:ends:steps] along axes (ONNX clamping)",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Slice");
        SliceDims sd = slice_from(a, x.shape, [&](size_t i, const char* name) {
          std::optional<std::vector<int64_t>> v;
          if (const ValueInfo* p = opt_input(in, i)) v = const_ints(*p, "Slice", name);
          return v;
        });
        return std::vector<TypeShape>{{x.dtype, sd.count}};
      },
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        SliceDims sd = slice_from(a, in[0].shape, [&](size_t i, const char* name) {
          std::optional<std::vector<int64_t>> v;
          if (const TensorRef* p = opt_input(in, i)) v = read_ints(*p, "Slice", name);
          return v;
        });
        Shape st = strides_of(in[0].shape);
        gather_per_dim(in[0], out[0],
                       [&](size_t d, int64_t p) { return (sd.start[d] + p * sd.step[d]) * st[d]; });
      },
      kTensorDTypes));
}

// --- Tile -----------------------------------------------------------------------

void add_tile(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Tile", 6, 2, 2, "repeats x 'repeats[d]' times along each dim d",
      [](const Attrs&, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Tile");
        std::vector<int64_t> rep =
            const_ints(req_input(in, 1, "Tile", "repeats"), "Tile", "repeats");
        if (rep.size() != x.shape.size())
          fail(ErrorKind::invalid_argument, "Tile: repeats " + shape_str(rep) +
                                                " must have one entry per dim of shape " +
                                                shape_str(x.shape));
        Shape out = x.shape;
        for (size_t d = 0; d < rep.size(); ++d) {
          if (rep[d] < 0)
            fail(ErrorKind::invalid_argument, "Tile: negative repeat in " + shape_str(rep));
          if (__builtin_mul_overflow(out[d], rep[d], &out[d]))
            fail(ErrorKind::invalid_argument, "Tile: repeats " + shape_str(rep) +
                                                  " overflow the dims of shape " +
                                                  shape_str(x.shape));
        }
        return std::vector<TypeShape>{{x.dtype, out}};
      },
      [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        const Shape& s = in[0].shape;
        Shape st = strides_of(s);
        gather_per_dim(in[0], out[0], [&](size_t d, int64_t p) { return (p % s[d]) * st[d]; });
      },
      kTensorDTypes));
}

// --- shoal.ConcatGather -----------------------------------------------------------
// Gather(Concat(x_1..x_k, axis), indices, axis) in one copy: the inputs are
// x_1..x_k then the 1-D indices (into the concatenation). passes::
// fuse_concat_gather forms it from a channel shuffle (ShuffleNet's Concat,
// Reshape-Transpose-Reshape and Slices), so the joined and the permuted
// tensors are never written.

const std::string kConcatGather = "shoal.ConcatGather";

void add_concat_gather(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      kConcatGather, 1, 2, kMaxVariadic,
      "Gather(Concat(inputs 0..k-1, axis), indices = input k (1-D), axis): a channel shuffle's "
      "joined, permuted and sliced tensor in one copy (internal)",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, kConcatGather);
        const ValueInfo& ind = in.back();
        check_dtype(kConcatGather, "input 'indices'", ind.dtype, {DType::i64, DType::i32});
        if (ind.shape.size() != 1)
          fail(ErrorKind::invalid_argument,
               kConcatGather + ": indices must be 1-D, got " + shape_str(ind.shape));
        const int64_t r = int64_t(x.shape.size());
        if (r == 0)
          fail(ErrorKind::invalid_argument, kConcatGather + ": inputs must have rank >= 1");
        const size_t axis = size_t(normalize_axis(kConcatGather, a.i("axis", 1), r));
        int64_t joined = 0;
        for (size_t i = 0; i + 1 < in.size(); ++i) {
          const ValueInfo& y = req_input(in, i, kConcatGather, "input " + std::to_string(i));
          bool ok = y.dtype == x.dtype && y.shape.size() == x.shape.size();
          for (size_t d = 0; ok && d < x.shape.size(); ++d)
            ok = d == axis || y.shape[d] == x.shape[d];
          if (!ok)
            fail(ErrorKind::invalid_argument,
                 kConcatGather + ": input " + std::to_string(i) + " " + dtype_name(y.dtype) +
                     shape_str(y.shape) + " does not join input 0 " + dtype_name(x.dtype) +
                     shape_str(x.shape) + " along axis " + std::to_string(axis));
          if (__builtin_add_overflow(joined, y.shape[axis], &joined))
            fail(ErrorKind::invalid_argument, kConcatGather + ": the inputs' sizes along axis " +
                                                  std::to_string(axis) + " sum past 2^63");
        }
        if (ind.constant)
          for (int64_t i : ind.constant->to_ints()) gather_index(i, joined);
        Shape out = x.shape;
        out[axis] = ind.shape[0];
        return std::vector<TypeShape>{{x.dtype, out}};
      },
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        const Shape& s = out[0].shape;
        const size_t axis =
            size_t(normalize_axis(kConcatGather, a.i("axis", 1), int64_t(s.size())));
        const std::vector<int64_t> ind = read_ints(in.back(), kConcatGather, "indices");
        // Each joined position: its input and its index there.
        std::vector<std::pair<size_t, int64_t>> at;
        for (size_t i = 0; i + 1 < in.size(); ++i)
          for (int64_t j = 0; j < in[i].shape[axis]; ++j) at.emplace_back(i, j);
        const int64_t outer = prod(s, 0, axis);
        const size_t chunk = size_t(prod(s, axis + 1, s.size())) * dtype_size(out[0].dtype);
        auto* dst = out[0].as<uint8_t>();
        for (int64_t o = 0; o < outer; ++o)
          for (size_t j = 0; j < ind.size(); ++j) {
            const auto [i, k] = at[size_t(gather_index(ind[j], int64_t(at.size())))];
            const int64_t n = in[i].shape[axis];
            std::memcpy(dst + (size_t(o) * ind.size() + j) * chunk,
                        in[i].as<const uint8_t>() + size_t(o * n + k) * chunk, chunk);
          }
      },
      kTensorDTypes));
}

}  // namespace

void register_tensor_index(std::vector<OpSpec>& t) {
  add_gather(t);
  add_concat_gather(t);
  add_scatter_nd(t);
  add_concat(t);
  add_split(t);
  add_slice(t);
  add_tile(t);
}

/// ONNX Slice semantics: negative starts/ends count from the end, then
/// clamp to [0, dim] (step > 0) or [0, dim-1] / [-1, dim-1] (step < 0).
SliceDims slice_dims(const Shape& shape, const std::vector<int64_t>& starts,
                     const std::vector<int64_t>& ends, std::optional<std::vector<int64_t>> axes,
                     std::optional<std::vector<int64_t>> steps) {
  size_t n = starts.size();
  int64_t r = int64_t(shape.size());
  if (ends.size() != n || (axes && axes->size() != n) || (steps && steps->size() != n))
    fail(ErrorKind::invalid_argument,
         "Slice: starts " + shape_str(starts) + ", ends " + shape_str(ends) +
             (axes ? ", axes " + shape_str(*axes) : "") +
             (steps ? ", steps " + shape_str(*steps) : "") + " differ in length");
  SliceDims sd{Shape(size_t(r), 0), Shape(size_t(r), 1), shape};
  std::set<int64_t> seen;
  for (size_t i = 0; i < n; ++i) {
    int64_t ax = axes ? (*axes)[i] : int64_t(i);
    int64_t d = normalize_axis("Slice", ax, r, "axes entry");
    if (!seen.insert(d).second)
      fail(ErrorKind::invalid_argument, "Slice: axis " + std::to_string(ax) + " given twice");
    int64_t step = steps ? (*steps)[i] : 1;
    if (step == 0) fail(ErrorKind::invalid_argument, "Slice: step must not be 0");
    int64_t dim = shape[size_t(d)], s = starts[i], e = ends[i];
    if (s < 0) s += dim;  // no overflow: dim >= 0
    if (e < 0) e += dim;
    if (dim == 0) {
      s = e = 0;  // empty dim: nothing to select
    } else if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
    }
    // ceil((e - s) / step) as 1 + (|e - s| - 1) / |step|, written so that no
    // step (INT64_MIN and INT64_MAX included) overflows; |e - s| <= dim + 1.
    int64_t diff = e - s, cnt = 0;
    if (step > 0 && diff > 0) cnt = 1 + (diff - 1) / step;
    if (step < 0 && diff < 0) cnt = 1 + (diff + 1) / step;
    sd.start[size_t(d)] = s;
    sd.step[size_t(d)] = step;
    sd.count[size_t(d)] = cnt;
  }
  return sd;
}

SliceDims slice_from(const Attrs& a, const Shape& shape, const SliceInputs& get) {
  if (a.has("starts") || a.has("ends")) {
    std::optional<std::vector<int64_t>> axes;
    if (a.has("axes")) axes = a.ints("axes");
    return slice_dims(shape, a.ints("starts"), a.ints("ends"), axes, std::nullopt);
  }
  auto starts = get(1, "starts"), ends = get(2, "ends");
  if (!starts || !ends) fail(ErrorKind::invalid_argument, "Slice: missing starts or ends");
  return slice_dims(shape, *starts, *ends, get(3, "axes"), get(4, "steps"));
}

}  // namespace shoal::ref
