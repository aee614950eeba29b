// Reductions (ReduceMean/Sum/Max, GlobalAveragePool/GlobalMaxPool) in any
// layout, and the row-wise LayerNormalization and Softmax.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/native/kernel.hpp"
#include "reference/plans.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::native {

KernelPtr make_reduce(const OpContext& oc) {
  const std::string& op = oc.ins.op;
  Reduce kind;
  bool mean = false;
  if (op == "ReduceMean" || op == "GlobalAveragePool") {
    kind = Reduce::sum;
    mean = true;
  } else if (op == "ReduceSum") {
    kind = Reduce::sum;
  } else if (op == "ReduceMax" || op == "GlobalMaxPool") {
    kind = Reduce::max;
  } else {
    return nullptr;
  }
  const program::TensorDesc* x = oc.in(0);
  if (oc.ins.outputs.size() != 1 || !dense_f32(x)) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y) || shape_numel(x->shape) == 0) return nullptr;
  const Shape& s = x->shape;
  std::vector<bool> reduced(s.size(), false);
  if (op.rfind("Global", 0) == 0) {
    if (oc.num_inputs() != 1 || s.size() < 3) return nullptr;
    for (size_t d = 2; d < s.size(); ++d) reduced[d] = true;
  } else {
    std::vector<int64_t> axes = oc.ins.attrs.ints("axes");
    if (!oc.ins.attrs.has("axes") && oc.in(1)) {
      const program::TensorDesc* t = oc.in(1);
      if (!onednn::is_weight(*t) || t->dtype != DType::i64) return nullptr;
      axes = const_index_values(oc, *t);
    }
    const ref::ReducePlan p = ref::reduce_plan(op, oc.ins.attrs, s, axes);
    if (p.noop) return nullptr;
    reduced = p.reduced;
  }
  // The output's strides per input dim (0 along reduced dims): its own
  // layout's strides over its shape with the reduced dims kept as 1s.
  Shape kept(s.size());
  for (size_t d = 0; d < s.size(); ++d) kept[d] = reduced[d] ? 1 : s[d];
  if (shape_numel(y.shape) != shape_numel(kept))
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", expected " +
                                                 shape_str(kept) + " (or without the 1s)");
  program::TensorDesc yk = y;
  if (y.shape.size() != s.size()) {  // keepdims = 0: a plain output of fewer dims
    if (y.layout != program::Layout::plain) return nullptr;
    yk.shape = kept;
  } else if (y.shape != kept) {
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", expected " +
                                                 shape_str(kept));
  }
  std::vector<int64_t> ys;
  broadcast_strides(yk, s, ys);
  // Rows along x's innermost dim; where the output is not contiguous along
  // it (x channels-last, y plain), along the output's instead.
  const std::vector<int64_t> xs = layout_strides(*x);
  Nest nest = make_nest(s, {ys, xs}, 1);
  if (nest.dims == 0) return nullptr;
  if (const int64_t yi = nest.stride[0][size_t(nest.dims - 1)]; yi != 0 && yi != 1)
    nest = make_nest(s, {ys, xs}, 0);
  const size_t last = size_t(nest.dims - 1);
  const int64_t y_inner = nest.stride[0][last], sx = nest.stride[1][last];
  if (y_inner != 0 && y_inner != 1) return nullptr;
  const int64_t ny = shape_numel(y.shape);
  const float scale = mean ? float(double(ny) / double(shape_numel(s))) : 1.0f;
  const float init = kind == Reduce::max ? -std::numeric_limits<float>::infinity() : 0.0f;
  // Contiguous rows reduced into one (a channels-last tensor's spatial
  // dims): one call folds all of them, the row dim dropped from the nest.
  const bool stacked = nest.dims >= 2 && y_inner == 1 && sx == 1 && nest.stride[0][last - 1] == 0;
  const int64_t rows = stacked ? nest.extent[last - 1] : 1;
  const int64_t sr = stacked ? nest.stride[1][last - 1] : 0;
  if (stacked) {
    for (int o = 0; o < nest.operands; ++o) nest.stride[size_t(o)][last - 1] = 0;
    nest.extent[last - 1] = 1;
  }
  return std::make_unique<NativeKernel>(
      [=](int threads, std::span<void* const> in, std::span<void* const> out) {
        const Loops& L = loops();
        const float* xp = cf32(in[0]);
        float* yp = f32(out[0]);
        for (int64_t i = 0; i < ny; ++i) yp[i] = init;
        for_rows(
            nest, threads, 0,
            [&](const int64_t* off, int64_t n) {
              if (stacked)
                L.accumulate_rows(kind, xp + off[1], sr, rows, yp + off[0], n);
              else if (y_inner == 0)
                yp[off[0]] = L.fold(kind, xp + off[1], sx, n, yp[off[0]]);
              else
                L.accumulate(kind, xp + off[1], sx, yp + off[0], n);
            },
            rows);
        if (mean) L.scale(yp, ny, scale);
      });
}

KernelPtr make_layernorm(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!x || x->layout != program::Layout::plain || x->dtype != DType::f32) return nullptr;
  for (size_t i = 1; i < oc.ins.outputs.size(); ++i)
    if (oc.ins.outputs[i] >= 0) return nullptr;  // Mean / InvStdDev outputs
  const program::TensorDesc& y = oc.out(0);
  if (y.layout != program::Layout::plain || y.dtype != DType::f32) return nullptr;
  if (y.shape != x->shape)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", input " +
                                                 shape_str(x->shape));
  const int64_t r = int64_t(x->shape.size());
  int64_t axis = oc.ins.attrs.i("axis", -1);
  if (axis < -r || axis >= r) return nullptr;  // the reference kernel names the error
  if (axis < 0) axis += r;
  int64_t n = 1;
  for (int64_t d = axis; d < r; ++d) n *= x->shape[size_t(d)];
  if (n == 0) return nullptr;
  // Scale and bias: weights of the normalized block's size.
  auto affine = [&](int i, const float*& p) {
    const program::TensorDesc* t = oc.in(i);
    if (!t) return true;
    if (!onednn::is_weight(*t) || t->dtype != DType::f32 || t->layout != program::Layout::plain ||
        shape_numel(t->shape) != n)
      return false;
    p = static_cast<const float*>(oc.weight_data(*t));
    return true;
  };
  const float *g = nullptr, *b = nullptr;
  if (!affine(1, g) || !affine(2, b) || !g) return nullptr;
  const float eps = oc.ins.attrs.f("epsilon", 1e-5f);
  const int64_t rows = shape_numel(x->shape) / n;
  return std::make_unique<NativeKernel>(
      [=](int threads, std::span<void* const> in, std::span<void* const> out) {
        const Loops& L = loops();
        const float* xp = cf32(in[0]);
        float* yp = f32(out[0]);
        parallel_rows(threads, rows, n,
                      [&](int64_t i) { L.layernorm(xp + i * n, yp + i * n, n, g, b, eps); });
      });
}

KernelPtr make_softmax(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!x || oc.num_inputs() != 1 || oc.ins.outputs.size() != 1) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  if (x->layout != program::Layout::plain || y.layout != program::Layout::plain ||
      x->dtype != DType::f32 || y.dtype != DType::f32 || y.shape != x->shape)
    return nullptr;
  const int64_t r = int64_t(x->shape.size());
  const bool coerce = oc.ins.attrs.i("coerce_2d", 0) != 0;
  int64_t axis = oc.ins.attrs.i("axis", coerce ? 1 : -1);
  if (r == 0 || axis < -r || axis >= r) return nullptr;
  if (axis < 0) axis += r;
  // Rows: the last dim (opset >= 13 at the last axis), or the flattened
  // trailing block (opset < 13).
  if (!coerce && axis != r - 1) return nullptr;
  int64_t n = 1;
  for (int64_t d = axis; d < r; ++d) n *= x->shape[size_t(d)];
  if (n == 0) return nullptr;
  const int64_t rows = shape_numel(x->shape) / n;
  const bool log = oc.ins.op == "LogSoftmax";
  return std::make_unique<NativeKernel>([=](int threads, std::span<void* const> in,
                                            std::span<void* const> out) {
    const Loops& L = loops();
    const float* xp = cf32(in[0]);
    float* yp = f32(out[0]);
    parallel_rows(threads, rows, n, [&](int64_t i) { L.softmax(xp + i * n, yp + i * n, n, log); });
  });
}

}  // namespace shoal::cpu::native
