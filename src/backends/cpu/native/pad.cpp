// Pad (every mode, crops included) and Expand, as fills and strided copies
// between operands of any layout.
//
// Pad copies the kept part of x into the output's interior once, then fills
// the border: with the constant, slab by slab (two fills per padded dim), or,
// in the edge, reflect and wrap modes, by copying, for each border index
// along a dim, the slab of the output that index repeats. Dims are done in
// order, each border slab spanning the whole output along the dims done
// before it and the interior along those after, so every element is written
// once and a border slab reads only elements already written.
#include <algorithm>
#include <optional>

#include "backends/cpu/native/copy.hpp"
#include "reference/plans.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::native {
namespace {

/// `value` into `space` elements of y (strides sy, from element yoff).
struct Fill {
  Nest nest;
  int64_t yoff = 0;
};

void run_fill(const Fill& f, int threads, float value, float* y) {
  const int64_t sy = f.nest.stride[0][size_t(f.nest.dims - 1)];
  for_rows(f.nest, threads, 0, [&](const int64_t* off, int64_t n) {
    float* yr = y + f.yoff + off[0];
    if (sy == 1)
      std::fill_n(yr, n, value);
    else
      for (int64_t i = 0; i < n; ++i) yr[i * sy] = value;
  });
}

/// Border slabs beyond this many copies (huge edge/reflect pads) are left
/// to the reference kernel.
constexpr int64_t kMaxBorderCopies = 4096;

/// A constant int64/int32 operand's values, or nullopt when it is not a
/// weight of those dtypes.
std::optional<std::vector<int64_t>> const_ints(const OpContext& oc, const program::TensorDesc* t) {
  if (!t || !onednn::is_weight(*t) || (t->dtype != DType::i64 && t->dtype != DType::i32))
    return std::nullopt;
  return const_index_values(oc, *t);
}

}  // namespace

KernelPtr make_pad(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!dense_f32(x) || oc.ins.outputs.size() != 1) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y)) return nullptr;
  const Attrs& a = oc.ins.attrs;
  std::vector<int64_t> pads;
  if (a.has("pads") || a.has("paddings")) {
    pads = a.ints(a.has("pads") ? "pads" : "paddings");
  } else if (auto v = const_ints(oc, oc.in(1))) {
    pads = *v;
  } else {
    return nullptr;
  }
  std::optional<std::vector<int64_t>> axes;
  if (oc.in(3) && !(axes = const_ints(oc, oc.in(3)))) return nullptr;
  float value = a.f("value", 0.0f);
  if (const program::TensorDesc* v = oc.in(2)) {
    if (!onednn::is_weight(*v) || v->dtype != DType::f32) return nullptr;
    if (shape_numel(v->shape) > 0) value = *static_cast<const float*>(oc.weight_data(*v));
  }
  const ref::PadPlan p = ref::pad_plan(a, x->shape, pads, axes ? &*axes : nullptr);
  if (p.out != y.shape)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", the pads give " +
                                                 shape_str(p.out));
  const size_t r = y.shape.size();
  const std::vector<int64_t> xs = layout_strides(*x), ys = layout_strides(y);
  // The interior: the kept part of x (crops removed) at its place in y.
  Shape kept(r);
  std::vector<int64_t> at(r);  // the interior's first index in y, per dim
  int64_t xoff = 0, yoff = 0;
  for (size_t d = 0; d < r; ++d) {
    const int64_t lo = std::max<int64_t>(0, -p.begin[d]);
    kept[d] = x->shape[d] - lo - std::max<int64_t>(0, -p.end[d]);
    at[d] = std::max<int64_t>(0, p.begin[d]);
    xoff += lo * xs[d];
    yoff += at[d] * ys[d];
  }
  if (r == 0 || shape_numel(y.shape) == 0 || shape_numel(kept) == 0) return nullptr;
  const Copy interior = make_copy(kept, ys, yoff, xs, xoff);
  std::vector<Fill> fills;
  std::vector<Copy> borders;  // y to y
  for (size_t d = 0; d < r; ++d) {
    if (kept[d] == y.shape[d]) continue;
    // The slab of one border index along d: whole along the dims before d,
    // the interior along those after.
    Shape space(r);
    int64_t base = 0;
    for (size_t k = 0; k < r; ++k) {
      space[k] = k < d ? y.shape[k] : kept[k];
      if (k > d) base += at[k] * ys[k];
    }
    if (p.mode == "constant") {
      for (auto [from, n] : {std::pair{int64_t(0), at[d]},
                             std::pair{at[d] + kept[d], y.shape[d] - at[d] - kept[d]}}) {
        if (n == 0) continue;
        space[d] = n;
        fills.push_back(Fill{make_nest(space, {ys}), base + from * ys[d]});
      }
      continue;
    }
    space[d] = 1;
    for (int64_t o = 0; o < y.shape[d]; ++o) {
      if (o >= at[d] && o < at[d] + kept[d]) continue;
      if (int64_t(borders.size()) >= kMaxBorderCopies) return nullptr;
      // The input index o repeats, at its place in y.
      const int64_t src =
          ref::pad_source_index(p.mode, o, x->shape[d], p.begin[d], p.end[d]) + p.begin[d];
      borders.push_back(make_copy(space, ys, base + o * ys[d], ys, base + src * ys[d]));
    }
  }
  if (interior.nest.dims == 0) return nullptr;
  for (const Fill& f : fills)
    if (f.nest.dims == 0) return nullptr;
  for (const Copy& c : borders)
    if (c.nest.dims == 0) return nullptr;
  return std::make_unique<NativeKernel>(
      [=](int threads, std::span<void* const> in, std::span<void* const> out) {
        float* yp = f32(out[0]);
        run_copy(interior, threads, cf32(in[0]), yp);
        for (const Fill& f : fills) run_fill(f, threads, value, yp);
        for (const Copy& c : borders) run_copy(c, threads, yp, yp);
      });
}

KernelPtr make_expand(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!dense_f32(x) || oc.ins.outputs.size() != 1) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y) || shape_numel(y.shape) == 0) return nullptr;
  std::vector<int64_t> sx;
  if (!broadcast_strides(*x, y.shape, sx))
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": input '" + x->name + "' of shape " + shape_str(x->shape) +
                    " does not broadcast to output '" + y.name + "' " + shape_str(y.shape));
  return copies_kernel({make_copy(y.shape, layout_strides(y), 0, sx, 0)}, Fan::one);
}

}  // namespace shoal::cpu::native
