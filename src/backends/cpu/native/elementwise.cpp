// Unary activations and math, and binary ops with numpy broadcasting, over
// operands in any mix of plain and channels-last layouts.
#include <unordered_map>

#include "backends/cpu/native/kernel.hpp"
#include "reference/geometry.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::native {
namespace {

/// The unary op of an instruction (activation parameters resolved), or
/// false when the op is not unary or its parameters are not constants.
bool unary_of(const OpContext& oc, UnaryOp& f) {
  static const std::unordered_map<std::string_view, Unary> ops = {
      {"Relu", Unary::relu},
      {"LeakyRelu", Unary::leaky_relu},
      {"Clip", Unary::clip},
      {"Sigmoid", Unary::sigmoid},
      {"Tanh", Unary::tanh},
      {"HardSigmoid", Unary::hard_sigmoid},
      {"HardSwish", Unary::hard_swish},
      {"Elu", Unary::elu},
      {"shoal.Silu", Unary::silu},
      {"Gelu", Unary::gelu},
      {"Erf", Unary::erf},
      {"Exp", Unary::exp},
      {"Log", Unary::log},
      {"Sqrt", Unary::sqrt},
      {"Neg", Unary::neg},
      {"Abs", Unary::abs},
      {"Reciprocal", Unary::reciprocal},
      {"Floor", Unary::floor},
      {"Ceil", Unary::ceil}};
  auto it = ops.find(oc.ins.op);
  if (it == ops.end()) return false;
  f.kind = it->second;
  const Attrs& a = oc.ins.attrs;
  if (ref::is_fusable_activation(oc.ins.op)) {
    ref::activation_defaults(oc.ins.op, f.alpha, f.beta);
    if (oc.ins.op == "Clip") {
      f.alpha = a.f("min", f.alpha);
      f.beta = a.f("max", f.beta);
      if (oc.in(1) && !onednn::read_scalar(oc, oc.in(1), f.alpha)) return false;
      if (oc.in(2) && !onednn::read_scalar(oc, oc.in(2), f.beta)) return false;
      return oc.num_inputs() <= 3;
    }
    f.alpha = a.f("alpha", f.alpha);
    f.beta = a.f("beta", f.beta);
    const ref::Activation act = ref::activation_of(oc.ins.op, f.alpha, f.beta);
    f.alpha = act.alpha;
    f.beta = act.beta;
  }
  if (oc.ins.op == "Gelu" && a.s("approximate", "none") != "none") return false;
  return oc.num_inputs() == 1;
}

void check_same_shape(const OpContext& oc, const program::TensorDesc& x,
                      const program::TensorDesc& y) {
  if (x.shape != y.shape)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", input " +
                                                 shape_str(x.shape));
}

}  // namespace

bool fused_unary(const Attrs& a, UnaryOp& f) {
  const ref::Activation act = ref::activation_from_attrs(a);
  using A = ref::Act;
  static const std::unordered_map<int, Unary> kinds = {{int(A::none), Unary::copy},
                                                       {int(A::relu), Unary::relu},
                                                       {int(A::leaky_relu), Unary::leaky_relu},
                                                       {int(A::clip), Unary::clip},
                                                       {int(A::sigmoid), Unary::sigmoid},
                                                       {int(A::tanh), Unary::tanh},
                                                       {int(A::hard_sigmoid), Unary::hard_sigmoid},
                                                       {int(A::hard_swish), Unary::hard_swish},
                                                       {int(A::elu), Unary::elu},
                                                       {int(A::silu), Unary::silu},
                                                       {int(A::gelu), Unary::gelu}};
  auto it = kinds.find(int(act.kind));
  if (it == kinds.end() || (act.kind == A::gelu && act.alpha != 0)) return false;  // tanh form
  f = {it->second, act.alpha, act.beta};
  return true;
}

KernelPtr make_unary(const OpContext& oc) {
  UnaryOp f;
  if (oc.ins.outputs.size() != 1 || !unary_of(oc, f)) return nullptr;
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(x) || !dense_f32(&y)) return nullptr;
  check_same_shape(oc, *x, y);
  const Nest nest = make_nest(y.shape, {layout_strides(y), layout_strides(*x)});
  if (nest.dims == 0) return nullptr;
  return std::make_unique<NativeKernel>([nest, f](int threads, std::span<void* const> in,
                                                  std::span<void* const> out) {
    const Loops& L = loops();
    const float* xp = cf32(in[0]);
    float* yp = f32(out[0]);
    const int64_t sx = nest.stride[1][size_t(nest.dims - 1)];
    for_rows(nest, threads, 0,
             [&](const int64_t* off, int64_t n) { L.unary(f, xp + off[1], sx, yp + off[0], n); });
  });
}

KernelPtr make_binary(const OpContext& oc) {
  static const std::unordered_map<std::string_view, Binary> ops = {
      {"Add", Binary::add}, {"Sub", Binary::sub}, {"Mul", Binary::mul}, {"Div", Binary::div},
      {"Max", Binary::max}, {"Min", Binary::min}, {"Pow", Binary::pow}, {"PRelu", Binary::prelu}};
  auto it = ops.find(oc.ins.op);
  if (it == ops.end() || oc.num_inputs() != 2 || oc.ins.outputs.size() != 1) return nullptr;
  const Binary op = it->second;
  UnaryOp act;
  if (!fused_unary(oc.ins.attrs, act)) return nullptr;
  const program::TensorDesc *a = oc.in(0), *b = oc.in(1);
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(a) || !dense_f32(b) || !dense_f32(&y) || shape_numel(y.shape) == 0) return nullptr;
  std::vector<int64_t> sa, sb;
  if (!broadcast_strides(*a, y.shape, sa) || !broadcast_strides(*b, y.shape, sb))
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": inputs " + shape_str(a->shape) + " and " + shape_str(b->shape) +
                    " do not broadcast to output '" + y.name + "' " + shape_str(y.shape));
  const Nest nest = make_nest(y.shape, {layout_strides(y), sa, sb});
  if (nest.dims == 0) return nullptr;
  return std::make_unique<NativeKernel>(
      [nest, op, act](int threads, std::span<void* const> in, std::span<void* const> out) {
        const Loops& L = loops();
        const float *ap = cf32(in[0]), *bp = cf32(in[1]);
        float* yp = f32(out[0]);
        const size_t last = size_t(nest.dims - 1);
        const int64_t s1 = nest.stride[1][last], s2 = nest.stride[2][last];
        for_rows(nest, threads, 0, [&](const int64_t* off, int64_t n) {
          L.binary(op, act, ap + off[1], s1, bp + off[2], s2, yp + off[0], n);
        });
      });
}

}  // namespace shoal::cpu::native
