// BatchNormalization (inference), Add/Sub/Mul/Div (binary with src1
// broadcast), Softmax/LogSoftmax and Concat, all on plain layouts.
#include <algorithm>

#include "backends/cpu/onednn_common.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {
namespace {

void check_shape(const OpContext& oc, const program::TensorDesc& t,
                 const Shape& expected) {
  if (t.shape != expected)
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": '" + t.name + "' has shape " +
                    shape_str(t.shape) + ", expected " + shape_str(expected));
}

/// `s` left-padded with 1s to `rank` dims.
dims padded(const Shape& s, size_t rank) {
  dims d(rank - s.size(), 1);
  d.insert(d.end(), s.begin(), s.end());
  return d;
}

/// Every dim of `b` is 1 or equal to that of `a` (same rank).
bool broadcasts_to(const dims& b, const dims& a) {
  for (size_t i = 0; i < a.size(); ++i)
    if (b[i] != 1 && b[i] != a[i]) return false;
  return true;
}

}  // namespace

KernelPtr make_batchnorm(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!x || oc.num_inputs() != 5 || oc.ins.outputs.size() != 1) return nullptr;
  for (int i = 1; i < 5; ++i)
    if (!oc.in(i)) return nullptr;
  const Attrs& a = oc.ins.attrs;
  if (a.i("training_mode", 0) != 0) return nullptr;
  size_t rank = x->shape.size();
  if (rank < 2 || rank > 5) return nullptr;
  int64_t c = x->shape[1];
  for (int i = 1; i < 5; ++i) check_shape(oc, *oc.in(i), {c});
  check_shape(oc, oc.out(0), x->shape);

  if (!same_layout(*x, oc.out(0))) return nullptr;
  dnnl::memory::desc xmd = user_md(*x, to_dims(x->shape));
  dnnl::memory::desc cmd = plain_md({c});
  auto flags = dnnl::normalization_flags::use_global_stats |
               dnnl::normalization_flags::use_scale |
               dnnl::normalization_flags::use_shift;
  const ref::Activation act = ref::activation_from_attrs(a);
  if (act.kind == ref::Act::relu)
    flags |= dnnl::normalization_flags::fuse_norm_relu;  // fuse_activations
  else if (act.kind != ref::Act::none)
    return nullptr;
  dnnl::batch_normalization_forward::desc d(dnnl::prop_kind::forward_inference,
                                            xmd, a.f("epsilon", 1e-5f), flags);
  dnnl::batch_normalization_forward::primitive_desc pd(d, base_attr(),
                                                       oc.ctx.engine);
  auto k = std::make_unique<DnnlKernel>(oc);
  k->add(dnnl::batch_normalization_forward(pd), pd,
         {{DNNL_ARG_SRC, k->operand(oc, 0, xmd)},
          {DNNL_ARG_SCALE, k->operand(oc, 1, cmd)},
          {DNNL_ARG_SHIFT, k->operand(oc, 2, cmd)},
          {DNNL_ARG_MEAN, k->operand(oc, 3, cmd)},
          {DNNL_ARG_VARIANCE, k->operand(oc, 4, cmd)},
          {DNNL_ARG_DST, k->bind_output(0, xmd)}});
  k->set_impl(pd);
  return k;
}

KernelPtr make_binary(const OpContext& oc) {
  const program::TensorDesc* a = oc.in(0);
  const program::TensorDesc* b = oc.in(1);
  if (!a || !b || oc.num_inputs() != 2 || oc.ins.outputs.size() != 1)
    return nullptr;
  const std::string& op = oc.ins.op;
  const program::TensorDesc& y = oc.out(0);
  size_t rank = std::max({a->shape.size(), b->shape.size(), y.shape.size()});
  if (rank == 0) rank = 1;
  dims ad = padded(a->shape, rank), bd = padded(b->shape, rank);
  dims yd = padded(y.shape, rank);
  if (shape_numel(y.shape) == 0) return nullptr;
  // oneDNN broadcasts src1 only: swap commutative operands when A is the
  // broadcast one.
  int i0 = 0, i1 = 1;
  if (ad != yd) {
    bool commutative = op == "Add" || op == "Mul";
    if (!commutative || bd != yd) return nullptr;
    std::swap(ad, bd);
    std::swap(i0, i1);
  }
  if (!broadcasts_to(bd, yd)) return nullptr;
  dnnl::algorithm alg = op == "Add"   ? dnnl::algorithm::binary_add
                        : op == "Sub" ? dnnl::algorithm::binary_sub
                        : op == "Mul" ? dnnl::algorithm::binary_mul
                                      : dnnl::algorithm::binary_div;
  dnnl::memory::desc md0 = user_md(*oc.in(i0), ad),
                     md1 = user_md(*oc.in(i1), bd), mdy = user_md(y, yd);
  dnnl::binary::desc d(alg, md0, md1, mdy);
  dnnl::binary::primitive_desc pd(d, base_attr(), oc.ctx.engine);
  auto k = std::make_unique<DnnlKernel>(oc);
  k->add(dnnl::binary(pd), pd,
         {{DNNL_ARG_SRC_0, k->operand(oc, i0, md0)},
          {DNNL_ARG_SRC_1, k->operand(oc, i1, md1)},
          {DNNL_ARG_DST, k->bind_output(0, mdy)}});
  k->set_impl(pd);
  return k;
}

KernelPtr make_softmax(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!x || oc.num_inputs() != 1 || oc.ins.outputs.size() != 1) return nullptr;
  const Attrs& a = oc.ins.attrs;
  int64_t rank = int64_t(x->shape.size());
  if (rank == 0 || shape_numel(x->shape) == 0) return nullptr;
  bool coerce = a.i("coerce_2d", 0) != 0;
  int64_t axis = a.i("axis", coerce ? 1 : -1);
  if (axis < -rank || axis >= rank)
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": axis " + std::to_string(axis) +
                    " out of range for shape " + shape_str(x->shape));
  if (axis < 0) axis += rank;
  check_shape(oc, oc.out(0), x->shape);
  if (x->layout != program::Layout::plain ||
      oc.out(0).layout != program::Layout::plain)
    return nullptr;
  dims xd = to_dims(x->shape);
  if (coerce) {
    // Pre-opset-13 semantics: softmax over the 2-D view [outer, inner].
    int64_t outer = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= x->shape[i];
    xd = {outer, shape_numel(x->shape) / outer};
    axis = 1;
  }
  dnnl::memory::desc md = plain_md(xd);
  auto alg = oc.ins.op == "LogSoftmax" ? dnnl::algorithm::softmax_log
                                       : dnnl::algorithm::softmax_accurate;
  dnnl::softmax_v2_forward::desc d(dnnl::prop_kind::forward_inference, alg, md,
                                   md, int(axis));
  dnnl::softmax_v2_forward::primitive_desc pd(d, base_attr(), oc.ctx.engine);
  auto k = std::make_unique<DnnlKernel>(oc);
  k->add(dnnl::softmax_v2_forward(pd), pd,
         {{DNNL_ARG_SRC, k->operand(oc, 0, md)},
          {DNNL_ARG_DST, k->bind_output(0, md)}});
  k->set_impl(pd);
  return k;
}

KernelPtr make_concat(const OpContext& oc) {
  if (oc.num_inputs() < 1 || oc.ins.outputs.size() != 1) return nullptr;
  const program::TensorDesc& y = oc.out(0);
  int64_t rank = int64_t(y.shape.size());
  if (rank == 0 || !oc.ins.attrs.has("axis")) return nullptr;
  int64_t axis = oc.ins.attrs.i("axis", 0);
  if (axis < -rank || axis >= rank)
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": axis " + std::to_string(axis) +
                    " out of range for rank " + std::to_string(rank));
  if (axis < 0) axis += rank;
  std::vector<dnnl::memory::desc> mds;
  Shape expected = y.shape;
  expected[axis] = 0;
  for (int i = 0; i < oc.num_inputs(); ++i) {
    const program::TensorDesc* t = oc.in(i);
    if (!t || shape_numel(t->shape) == 0) return nullptr;
    if (int64_t(t->shape.size()) != rank)
      throw Error(ErrorKind::invalid_argument,
                  oc.what() + ": input '" + t->name + "' has shape " +
                      shape_str(t->shape) + ", output " + shape_str(y.shape));
    for (int64_t j = 0; j < rank; ++j)
      if (j != axis && t->shape[j] != y.shape[j])
        throw Error(ErrorKind::invalid_argument,
                    oc.what() + ": input '" + t->name + "' has shape " +
                        shape_str(t->shape) + ", output " + shape_str(y.shape));
    expected[axis] += t->shape[axis];
    mds.push_back(user_md(*t, to_dims(t->shape)));
  }
  check_shape(oc, y, expected);
  dnnl::memory::desc ymd = user_md(y, to_dims(y.shape));
  dnnl::concat::primitive_desc pd(ymd, int(axis), mds, oc.ctx.engine,
                                  base_attr());
  auto k = std::make_unique<DnnlKernel>(oc);
  DnnlKernel::Args args;
  for (int i = 0; i < oc.num_inputs(); ++i)
    args[DNNL_ARG_MULTIPLE_SRC + i] = k->operand(oc, i, mds[i]);
  args[DNNL_ARG_DST] = k->bind_output(0, ymd);
  k->add(dnnl::concat(pd), pd, std::move(args));
  k->set_impl(pd);
  return k;
}

}  // namespace shoal::cpu::onednn
