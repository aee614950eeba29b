// Ops that move elements: Transpose, Slice, Concat, Split and Gather, as
// strided copies between operands of any layout.
#include "backends/cpu/native/copy.hpp"

#include <algorithm>
#include <cstring>

#include "reference/plans.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::native {
namespace {

int64_t axis_of(const OpContext& oc, int64_t rank, int64_t fallback) {
  int64_t axis = oc.ins.attrs.i("axis", fallback);
  if (axis < -rank || axis >= rank)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": axis " + std::to_string(axis) +
                                                 " out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

}  // namespace

Copy make_copy(const Shape& space, const std::vector<int64_t>& sy, int64_t yoff,
               const std::vector<int64_t>& sx, int64_t xoff) {
  return Copy{make_nest(space, {sy, sx}), xoff, yoff};
}

void run_copy(const Copy& c, int threads, const float* x, float* y) {
  static const UnaryOp copy{};
  const Loops& L = loops();
  const int64_t sx = c.nest.stride[1][size_t(c.nest.dims - 1)];
  const int64_t sy = c.nest.stride[0][size_t(c.nest.dims - 1)];
  for_rows(c.nest, threads, 0, [&](const int64_t* off, int64_t n) {
    const float* xr = x + c.xoff + off[1];
    float* yr = y + c.yoff + off[0];
    if (sy != 1) {  // rows of a Gather's output between its index dims
      for (int64_t i = 0; i < n; ++i) yr[i * sy] = xr[i * sx];
    } else if (sx == 1) {
      std::memcpy(yr, xr, size_t(n) * sizeof(float));
    } else {
      L.unary(copy, xr, sx, yr, n);
    }
  });
}

void run_copy_bytes(const Copy& c, int threads, const uint8_t* x, uint8_t* y) {
  const int64_t sx = c.nest.stride[1][size_t(c.nest.dims - 1)];
  const int64_t sy = c.nest.stride[0][size_t(c.nest.dims - 1)];
  for_rows(c.nest, threads, 0, [&](const int64_t* off, int64_t n) {
    const uint8_t* xr = x + c.xoff + off[1];
    uint8_t* yr = y + c.yoff + off[0];
    if (sx == 1 && sy == 1)
      std::memcpy(yr, xr, size_t(n));
    else
      for (int64_t i = 0; i < n; ++i) yr[i * sy] = xr[i * sx];
  });
}

KernelPtr copies_kernel(std::vector<Copy> copies, Fan fan, bool bytes) {
  for (const Copy& c : copies)
    if (c.nest.dims == 0) return nullptr;
  auto k = std::make_unique<NativeKernel>(
      [copies = std::move(copies), fan, bytes](int threads, std::span<void* const> in,
                                               std::span<void* const> out) {
        for (size_t i = 0; i < copies.size(); ++i) {
          void* x = in[fan == Fan::inputs ? i : 0];
          void* y = out[fan == Fan::outputs ? i : 0];
          if (bytes)
            run_copy_bytes(copies[i], threads, static_cast<const uint8_t*>(x),
                           static_cast<uint8_t*>(y));
          else
            run_copy(copies[i], threads, cf32(x), f32(y));
        }
      });
  if (bytes) k->set_precision("int8");
  return k;
}

std::vector<int64_t> const_index_values(const OpContext& oc, const program::TensorDesc& t) {
  const uint8_t* raw = static_cast<const uint8_t*>(oc.weight_data(t));
  std::vector<int64_t> v(static_cast<size_t>(shape_numel(t.shape)));
  for (size_t j = 0; j < v.size(); ++j) {
    if (t.dtype == DType::i64) {
      std::memcpy(&v[j], raw + j * 8, 8);
    } else {
      int32_t w;
      std::memcpy(&w, raw + j * 4, 4);
      v[j] = w;
    }
  }
  return v;
}

KernelPtr make_transpose(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!dense_f32(x) || oc.num_inputs() != 1 || oc.ins.outputs.size() != 1) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y)) return nullptr;
  const size_t r = x->shape.size();
  std::vector<int64_t> perm = oc.ins.attrs.ints("perm");
  if (perm.empty())
    for (size_t d = r; d-- > 0;) perm.push_back(int64_t(d));
  if (perm.size() != r || y.shape.size() != r) return nullptr;
  const std::vector<int64_t> xs = layout_strides(*x);
  std::vector<int64_t> sx(r);
  for (size_t d = 0; d < r; ++d) {
    if (perm[d] < 0 || perm[d] >= int64_t(r) || y.shape[d] != x->shape[size_t(perm[d])])
      throw Error(ErrorKind::invalid_argument, oc.what() + ": perm does not map input " +
                                                   shape_str(x->shape) + " to output '" + y.name +
                                                   "' " + shape_str(y.shape));
    sx[d] = xs[size_t(perm[d])];
  }
  return copies_kernel({make_copy(y.shape, layout_strides(y), 0, sx, 0)}, Fan::one);
}

KernelPtr make_slice(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!dense_f32(x) || oc.ins.outputs.size() != 1) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y)) return nullptr;
  // starts/ends/axes/steps: int64 or int32 constants, else not for us.
  for (int i = 1; i < oc.num_inputs(); ++i)
    if (const program::TensorDesc* t = oc.in(i))
      if (!onednn::is_weight(*t) || (t->dtype != DType::i64 && t->dtype != DType::i32))
        return nullptr;
  const ref::SliceDims sd = ref::slice_from(oc.ins.attrs, x->shape, [&](size_t i, const char*) {
    std::optional<std::vector<int64_t>> v;
    if (const program::TensorDesc* t = oc.in(int(i))) v = const_index_values(oc, *t);
    return v;
  });
  if (sd.count != y.shape)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", the slice selects " +
                                                 shape_str(sd.count));
  if (shape_numel(y.shape) == 0) return nullptr;
  const std::vector<int64_t> xs = layout_strides(*x);
  std::vector<int64_t> sx(xs.size());
  int64_t xoff = 0;
  for (size_t d = 0; d < xs.size(); ++d) {
    sx[d] = xs[d] * sd.step[d];
    xoff += xs[d] * sd.start[d];
  }
  return copies_kernel({make_copy(y.shape, layout_strides(y), 0, sx, xoff)}, Fan::one);
}

KernelPtr make_concat(const OpContext& oc) {
  if (oc.num_inputs() < 1 || oc.ins.outputs.size() != 1 || !oc.ins.attrs.has("axis"))
    return nullptr;
  const program::TensorDesc& y = oc.out(0);
  // float32, or the uint8/int8 maps of int8 layers (passes::fuse_qdq_lookup)
  const bool bytes =
      (y.dtype == DType::u8 || y.dtype == DType::i8) && !oc.ins.attrs.has("affine_scale");
  auto dense = [&](const program::TensorDesc* t) {
    if (!bytes) return dense_f32(t);
    return t && t->dtype == y.dtype &&
           (t->layout == program::Layout::plain || t->layout == program::Layout::channels_last);
  };
  if (!dense(&y) || y.shape.empty()) return nullptr;
  const int64_t r = int64_t(y.shape.size());
  const size_t axis = size_t(axis_of(oc, r, 0));
  const std::vector<int64_t> ys = layout_strides(y);
  std::vector<Copy> copies;
  int64_t at = 0;
  for (int i = 0; i < oc.num_inputs(); ++i) {
    const program::TensorDesc* t = oc.in(i);
    if (!dense(t)) return nullptr;
    bool fits = int64_t(t->shape.size()) == r;
    for (size_t d = 0; fits && d < size_t(r); ++d) fits = d == axis || t->shape[d] == y.shape[d];
    if (!fits || at + t->shape[axis] > y.shape[axis])
      throw Error(ErrorKind::invalid_argument, oc.what() + ": input '" + t->name + "' has shape " +
                                                   shape_str(t->shape) + ", output " +
                                                   shape_str(y.shape));
    if (shape_numel(t->shape) == 0) return nullptr;  // no empty copies to plan
    copies.push_back(make_copy(t->shape, ys, at * ys[axis], layout_strides(*t), 0));
    at += t->shape[axis];
  }
  if (at != y.shape[axis])
    throw Error(ErrorKind::invalid_argument, oc.what() + ": inputs fill " + std::to_string(at) +
                                                 " of output dim " + std::to_string(y.shape[axis]));
  if (oc.ins.attrs.has("affine_scale")) {
    // A Concat that took the BatchNormalization after it
    // (passes::fuse_concat_batchnorm): act(x * scale + shift) per channel.
    UnaryOp act;
    std::vector<float> sb = oc.ins.attrs.floats("affine_scale");
    const std::vector<float> sh = oc.ins.attrs.floats("affine_shift");
    if (axis != 1 || !fused_unary(oc.ins.attrs, act) || int64_t(sb.size()) != y.shape[1] ||
        sh.size() != sb.size())
      return nullptr;  // the reference kernel names what is wrong
    sb.insert(sb.end(), sh.begin(), sh.end());
    return channel_affine_kernel(oc, oc.num_inputs(), act, std::move(sb));
  }
  return copies_kernel(std::move(copies), Fan::inputs, bytes);
}

KernelPtr make_gather(const OpContext& oc) {
  const program::TensorDesc *x = oc.in(0), *ind = oc.in(1);
  if (!dense_f32(x) || !ind || oc.num_inputs() != 2 || oc.ins.outputs.size() != 1) return nullptr;
  if (!onednn::is_weight(*ind) || (ind->dtype != DType::i64 && ind->dtype != DType::i32))
    return nullptr;  // indices known at compile time only
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y) || x->shape.empty()) return nullptr;
  const int64_t r = int64_t(x->shape.size());
  const size_t axis = size_t(axis_of(oc, r, 0));
  const int64_t n = shape_numel(ind->shape), dim = x->shape[axis];
  // y = x[:axis] + indices.shape + x[axis+1:]
  Shape want(x->shape.begin(), x->shape.begin() + long(axis));
  want.insert(want.end(), ind->shape.begin(), ind->shape.end());
  want.insert(want.end(), x->shape.begin() + long(axis) + 1, x->shape.end());
  if (y.shape != want)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", expected " +
                                                 shape_str(want));
  if (n == 0 || shape_numel(y.shape) == 0) return nullptr;
  std::vector<int64_t> index = const_index_values(oc, *ind);
  for (int64_t& v : index) {
    if (v < -dim || v >= dim)
      throw Error(ErrorKind::invalid_argument, oc.what() + ": index " + std::to_string(v) +
                                                   " out of range for dim " + std::to_string(dim));
    if (v < 0) v += dim;
  }
  // The axis innermost in memory for both (a channel permutation of a
  // channels-last tensor): rows of y gathered from rows of x.
  if (ind->shape.size() == 1 && x->layout == y.layout && layout_strides(*x)[axis] == 1 &&
      layout_strides(y)[axis] == 1) {
    const int64_t rows = shape_numel(y.shape) / n;
    std::vector<int32_t> ix(index.begin(), index.end());
    return std::make_unique<NativeKernel>([ix, rows, n, dim]([[maybe_unused]] int threads,
                                                             std::span<void* const> in,
                                                             std::span<void* const> out) {
      const Loops& L = loops();
      const float* xp = cf32(in[0]);
      float* yp = f32(out[0]);
#pragma omp parallel for num_threads(threads) if (threads > 1 && rows * n >= (1 << 15))
      for (int64_t r = 0; r < rows; ++r) L.gather(xp + r * dim, ix.data(), yp + r * n, n);
    });
  }
  // The copy of one index: x's dims without the axis, into y's matching dims.
  Shape space = x->shape;
  space.erase(space.begin() + long(axis));
  std::vector<int64_t> xs = layout_strides(*x), ys = layout_strides(y);
  const int64_t x_axis = xs[axis];
  xs.erase(xs.begin() + long(axis));
  std::vector<int64_t> sy(ys.begin(), ys.begin() + long(axis));
  sy.insert(sy.end(), ys.begin() + long(axis + ind->shape.size()), ys.end());
  const Shape idx_st = [&] {  // y's strides over the indices' dims
    return Shape(ys.begin() + long(axis), ys.begin() + long(axis + ind->shape.size()));
  }();
  std::vector<Copy> copies;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t v = index[size_t(j)];
    int64_t yoff = 0, rest = j;  // j's position among the indices' dims
    for (size_t k = ind->shape.size(); k-- > 0;) {
      yoff += (rest % ind->shape[k]) * idx_st[k];
      rest /= ind->shape[k];
    }
    copies.push_back(make_copy(space, sy, yoff, xs, v * x_axis));
  }
  return copies_kernel(std::move(copies), Fan::one);
}

namespace {

/// The blocks of 16 values of y[i] = x[idx[i]] (see Permute16): a block
/// whose sources fit two 16-value windows is permuted from them (a channel
/// shuffle's interleave: each output block draws 8 values from each half),
/// else gathered.
std::vector<Permute16> plan_permute(const std::vector<int32_t>& idx) {
  std::vector<Permute16> blocks;
  for (size_t i = 0; i < idx.size(); i += 16) {
    const size_t m = std::min<size_t>(16, idx.size() - i);
    Permute16 b;
    b.lo_a = *std::min_element(idx.begin() + long(i), idx.begin() + long(i + m));
    b.lo_b = b.lo_a;
    bool first = true, fits = true;
    for (size_t l = 0; l < m; ++l) {  // the lowest source outside window A
      const int32_t v = idx[i + l];
      if (v >= b.lo_a + 16 && (first || v < b.lo_b)) b.lo_b = v, first = false;
    }
    for (size_t l = 0; l < m && fits; ++l) {
      const int32_t v = idx[i + l];
      if (v < b.lo_a + 16)
        b.sel[l] = v - b.lo_a;
      else if (v >= b.lo_b && v < b.lo_b + 16)
        b.sel[l] = v - b.lo_b + 16;
      else
        fits = false;
    }
    if (!fits) {
      b.lo_a = -1;
      for (size_t l = 0; l < m; ++l) b.sel[l] = idx[i + l];
    }
    blocks.push_back(b);
  }
  return blocks;
}

}  // namespace

KernelPtr make_concat_gather(const OpContext& oc) {
  const int k = oc.num_inputs() - 1;  // joined inputs; the last is the indices
  const program::TensorDesc* ind = oc.in(k);
  if (k < 1 || !ind || oc.ins.outputs.size() != 1 || !onednn::is_weight(*ind) ||
      (ind->dtype != DType::i64 && ind->dtype != DType::i32) || ind->shape.size() != 1)
    return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y) || y.shape.empty() || shape_numel(y.shape) == 0) return nullptr;
  const int64_t r = int64_t(y.shape.size());
  const size_t axis = size_t(axis_of(oc, r, 1));
  // Each joined position: its input and its index there.
  std::vector<std::pair<int, int64_t>> at;
  for (int i = 0; i < k; ++i) {
    const program::TensorDesc* t = oc.in(i);
    if (!dense_f32(t) || t->layout != y.layout || int64_t(t->shape.size()) != r ||
        shape_numel(t->shape) == 0)
      return nullptr;
    for (int64_t j = 0; j < t->shape[axis]; ++j) at.emplace_back(i, j);
  }
  const int64_t joined = int64_t(at.size()), n = shape_numel(ind->shape);
  std::vector<int64_t> index = const_index_values(oc, *ind);
  for (int64_t& v : index) {
    if (v < -joined || v >= joined)
      throw Error(ErrorKind::invalid_argument, oc.what() + ": index " + std::to_string(v) +
                                                   " out of range for " + std::to_string(joined) +
                                                   " joined positions");
    if (v < 0) v += joined;
  }
  if (n != y.shape[axis]) return nullptr;  // the reference kernel names the mismatch
  const std::vector<int64_t> ys = layout_strides(y);
  if (ys[axis] == 1) {
    // The axis innermost in memory (channels along a channels-last row):
    // per row, the inputs' values the indices use (from the first used to
    // the last, at their joined positions) into a buffer, then permuted.
    struct Span {
      int input;
      int64_t width, from, count, at;  // row q's [from, from + count) -> buffer[at...]
    };
    std::vector<Span> spans;
    int64_t base = 0;
    for (int i = 0; i < k; ++i) {
      const int64_t w = oc.in(i)->shape[axis];
      int64_t lo = w, hi = -1;
      for (int64_t v : index)
        if (v >= base && v < base + w) {
          lo = std::min(lo, v - base);
          hi = std::max(hi, v - base);
        }
      if (hi >= lo) spans.push_back({i, w, lo, hi - lo + 1, base + lo});
      base += w;
    }
    const std::vector<Permute16> blocks =
        plan_permute(std::vector<int32_t>(index.begin(), index.end()));
    const int64_t rows = shape_numel(y.shape) / n;
    return std::make_unique<NativeKernel>(
        [spans, blocks, rows, n, joined]([[maybe_unused]] int threads, std::span<void* const> in,
                                         std::span<void* const> out) {
          const Loops& L = loops();
          float* yp = f32(out[0]);
#pragma omp parallel num_threads(threads) if (threads > 1 && rows * n >= (1 << 15))
          {
            // Windows read up to 16 values past their start; the values
            // no index uses are never picked (the buffer's are zeros).
            std::vector<float> row(size_t(joined) + 16);
#pragma omp for
            for (int64_t q = 0; q < rows; ++q) {
              for (const Span& sp : spans)
                std::memcpy(row.data() + sp.at, cf32(in[size_t(sp.input)]) + q * sp.width + sp.from,
                            size_t(sp.count) * sizeof(float));
              L.permute16(row.data(), blocks.data(), yp + q * n, n);
            }
          }
        });
  }
  // Otherwise one copy per index: its input's slab, x's dims without the
  // axis, into y's.
  Shape space = y.shape;
  space.erase(space.begin() + long(axis));
  std::vector<int64_t> sy = ys;
  sy.erase(sy.begin() + long(axis));
  std::vector<std::pair<int, Copy>> copies;
  for (int64_t j = 0; j < n; ++j) {
    const auto [i, pos] = at[size_t(index[size_t(j)])];
    std::vector<int64_t> xs = layout_strides(*oc.in(i));
    const int64_t x_axis = xs[axis];
    xs.erase(xs.begin() + long(axis));
    copies.emplace_back(i, make_copy(space, sy, j * ys[axis], xs, pos * x_axis));
    if (copies.back().second.nest.dims == 0) return nullptr;
  }
  return std::make_unique<NativeKernel>([copies = std::move(copies)](int threads,
                                                                     std::span<void* const> in,
                                                                     std::span<void* const> out) {
    for (const auto& [i, c] : copies) run_copy(c, threads, cf32(in[size_t(i)]), f32(out[0]));
  });
}

KernelPtr make_split(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!dense_f32(x) || x->shape.empty() || oc.ins.outputs.empty()) return nullptr;
  const int64_t r = int64_t(x->shape.size());
  const size_t axis = size_t(axis_of(oc, r, 0));
  const std::vector<int64_t> xs = layout_strides(*x);
  std::vector<Copy> copies;
  int64_t at = 0;
  for (size_t i = 0; i < oc.ins.outputs.size(); ++i) {
    if (oc.ins.outputs[i] < 0) return nullptr;
    const program::TensorDesc& t = oc.out(int(i));
    if (!dense_f32(&t)) return nullptr;
    bool fits = int64_t(t.shape.size()) == r;
    for (size_t d = 0; fits && d < size_t(r); ++d) fits = d == axis || t.shape[d] == x->shape[d];
    if (!fits || at + t.shape[axis] > x->shape[axis])
      throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + t.name + "' has shape " +
                                                   shape_str(t.shape) + ", input " +
                                                   shape_str(x->shape));
    if (shape_numel(t.shape) == 0) return nullptr;
    copies.push_back(make_copy(t.shape, layout_strides(t), 0, xs, at * xs[axis]));
    at += t.shape[axis];
  }
  return copies_kernel(std::move(copies), Fan::outputs);
}

}  // namespace shoal::cpu::native
