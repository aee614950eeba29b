// Ops that move elements: Transpose, Slice, Concat and Split, as strided
// copies between operands of any layout.
#include <cstring>

#include "backends/cpu/native/kernel.hpp"
#include "reference/plans.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::native {
namespace {

/// A copy of `space` elements from x (strides sx, from element xoff) to y
/// (strides sy, from element yoff).
struct Copy {
  Nest nest;
  int64_t xoff = 0, yoff = 0;
};

Copy make_copy(const Shape& space, const std::vector<int64_t>& sy, int64_t yoff,
               const std::vector<int64_t>& sx, int64_t xoff) {
  return Copy{make_nest(space, {sy, sx}), xoff, yoff};
}

void run_copy(const Copy& c, int threads, const float* x, float* y) {
  static const UnaryOp copy{};
  const Loops& L = loops();
  const int64_t sx = c.nest.stride[1][size_t(c.nest.dims - 1)];
  for_rows(c.nest, threads, 0, [&](const int64_t* off, int64_t n) {
    if (sx == 1)
      std::memcpy(y + c.yoff + off[0], x + c.xoff + off[1], size_t(n) * sizeof(float));
    else
      L.unary(copy, x + c.xoff + off[1], sx, y + c.yoff + off[0], n);
  });
}

/// Copies between input `xi` and output `yi` (one each, or parts of one).
KernelPtr copies_kernel(std::vector<Copy> copies, bool many_inputs) {
  for (const Copy& c : copies)
    if (c.nest.dims == 0) return nullptr;
  return std::make_unique<NativeKernel>([copies = std::move(copies), many_inputs](
                                            int threads, std::span<void* const> in,
                                            std::span<void* const> out) {
    for (size_t i = 0; i < copies.size(); ++i)
      run_copy(copies[i], threads, cf32(in[many_inputs ? i : 0]), f32(out[many_inputs ? 0 : i]));
  });
}

int64_t axis_of(const OpContext& oc, int64_t rank, int64_t fallback) {
  int64_t axis = oc.ins.attrs.i("axis", fallback);
  if (axis < -rank || axis >= rank)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": axis " + std::to_string(axis) +
                                                 " out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

}  // namespace

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
  return copies_kernel({make_copy(y.shape, layout_strides(y), 0, sx, 0)}, false);
}

KernelPtr make_slice(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!dense_f32(x) || oc.ins.outputs.size() != 1) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y)) return nullptr;
  bool constant = true;
  const ref::SliceDims sd = ref::slice_from(oc.ins.attrs, x->shape, [&](size_t i, const char*) {
    std::optional<std::vector<int64_t>> v;
    const program::TensorDesc* t = oc.in(int(i));
    if (!t) return v;
    if (!onednn::is_weight(*t) || t->dtype != DType::i64) {
      constant = false;
      return v;
    }
    std::vector<int64_t> vals(size_t(shape_numel(t->shape)));
    if (!vals.empty()) std::memcpy(vals.data(), oc.weight_data(*t), vals.size() * sizeof(int64_t));
    v = std::move(vals);
    return v;
  });
  if (!constant) return nullptr;
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
  return copies_kernel({make_copy(y.shape, layout_strides(y), 0, sx, xoff)}, false);
}

KernelPtr make_concat(const OpContext& oc) {
  if (oc.num_inputs() < 1 || oc.ins.outputs.size() != 1 || !oc.ins.attrs.has("axis"))
    return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y) || y.shape.empty()) return nullptr;
  const int64_t r = int64_t(y.shape.size());
  const size_t axis = size_t(axis_of(oc, r, 0));
  const std::vector<int64_t> ys = layout_strides(y);
  std::vector<Copy> copies;
  int64_t at = 0;
  for (int i = 0; i < oc.num_inputs(); ++i) {
    const program::TensorDesc* t = oc.in(i);
    if (!dense_f32(t)) return nullptr;
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
  return copies_kernel(std::move(copies), true);
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
  return copies_kernel(std::move(copies), false);
}

}  // namespace shoal::cpu::native
