// Standalone activations (Relu, LeakyRelu, Sigmoid, Tanh, Elu, HardSigmoid,
// HardSwish, Clip) as oneDNN eltwise over the tensor viewed as 1-D.
#include "backends/cpu/onednn_common.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {

KernelPtr make_eltwise(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!x || oc.ins.outputs.size() != 1) return nullptr;
  const std::string& op = oc.ins.op;
  const Attrs& a = oc.ins.attrs;
  float alpha = 0, beta = 0;
  ref::activation_defaults(op, alpha, beta);
  if (op == "Clip") {
    // Opset >= 11: min/max are optional constant inputs; before: attributes.
    alpha = a.f("min", alpha);
    beta = a.f("max", beta);
    if (oc.in(1) && !read_scalar(oc, oc.in(1), alpha)) return nullptr;
    if (oc.in(2) && !read_scalar(oc, oc.in(2), beta)) return nullptr;
    if (oc.num_inputs() > 3) return nullptr;
  } else {
    if (oc.num_inputs() != 1) return nullptr;
    alpha = a.f("alpha", alpha);
    beta = a.f("beta", beta);
  }
  std::vector<EltOp> chain;
  if (!eltwise_chain(ref::activation_of(op, alpha, beta), chain) ||
      chain.empty())
    return nullptr;

  const program::TensorDesc& y = oc.out(0);
  int64_t n = shape_numel(x->shape);
  if (shape_numel(y.shape) != n)
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": output '" + y.name + "' has shape " +
                    shape_str(y.shape) + ", input " + shape_str(x->shape));
  // Elementwise over the flat buffer: both operands in one layout.
  if (n == 0 || !same_layout(*x, y)) return nullptr;
  dnnl::memory::desc md = plain_md({n});
  auto k = std::make_unique<DnnlKernel>(oc);
  dnnl::memory src = k->operand(oc, 0, md), dst = k->bind_output(0, md);
  for (const EltOp& e : chain) {
    dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, e.alg, md,
                                  e.alpha, e.beta);
    dnnl::eltwise_forward::primitive_desc pd(d, base_attr(), oc.ctx.engine);
    k->add(dnnl::eltwise_forward(pd), pd,
           {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    if (&e == &chain.front()) k->set_impl(pd);
    src = dst;  // later operations of the chain run in place
  }
  return k;
}

}  // namespace shoal::cpu::onednn
