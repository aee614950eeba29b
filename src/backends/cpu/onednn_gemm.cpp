// Gemm and MatMul as oneDNN matmul. A constant right-hand side is packed
// once per device in the layout the primitive prefers (with Gemm's alpha
// folded in), unless the compiler stored it so (see gemm_weight_plan); Gemm's
// C becomes the (broadcast) bias, with beta folded in when C is constant.
// Fused forms: y = act(A*B + C + residual), residual = input 3.
#include "backends/cpu/onednn_common.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {
namespace {

struct MatmulSpec {
  dims a_dims, a_strides;  // as oneDNN's src: [batch..., M, K]
  dims b_dims, b_strides;  // as oneDNN's weights: [batch..., K, N]
  dims y_dims;             // [batch..., M, N], plain
  bool has_bias = false;
  dims bias_dims;  // broadcastable to y_dims
  float alpha = 1, beta = 1;
  int residual = -1;  // input index of the residual, -1 = none
};

/// What a matmul kernel derives from its instruction, up to the primitive
/// descriptor. The kernel and the compiler's weight prepacking both get it
/// from plan_matmul, so the packed layout is the one the kernel wants.
struct MatmulPlan {
  const program::TensorDesc *b = nullptr, *c = nullptr, *r = nullptr;
  bool b_const = false, c_const = false;
  dnnl::memory::desc amd, bu, ymd, cmd;  // bu: B's plain (user) layout
  dnnl::matmul::primitive_desc pd;
};

/// Fills `out`; false when oneDNN does not take this matmul.
bool plan_matmul(const OpContext& oc, const MatmulSpec& s, MatmulPlan& out) {
  const program::TensorDesc* b = oc.in(1);
  const program::TensorDesc* c = s.has_bias ? oc.in(2) : nullptr;
  const bool b_const = is_weight(*b);
  const bool c_const = c && is_weight(*c);
  // alpha and beta are folded into constants; oneDNN's output scales would
  // also scale the bias.
  if (s.alpha != 1.0f && !b_const) return false;
  if (c && s.beta != 1.0f && !c_const) return false;

  const program::TensorDesc& y = oc.out(0);
  dims yflat = s.y_dims;
  if (shape_numel(y.shape) != shape_numel(Shape(yflat.begin(), yflat.end())))
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": output '" + y.name + "' has shape " +
                    shape_str(y.shape) + ", expected " +
                    shape_str(Shape(yflat.begin(), yflat.end())));
  const program::TensorDesc* r = s.residual >= 0 ? oc.in(s.residual) : nullptr;
  dnnl::primitive_attr attr;
  if (!fused_attr(oc, r, attr)) return false;

  dnnl::memory::desc amd = strided_md(s.a_dims, s.a_strides);
  dnnl::memory::desc bu = strided_md(s.b_dims, s.b_strides);
  // bf16 (when compiled so): A and B converted to dense bf16 (a constant B
  // packed so once), f32 accumulation, bias and output.
  const dt type = compute_type(oc);
  auto dense = [&](const dims& d) { return dnnl::memory::desc(d, type, plain_strides(d)); };
  dnnl::memory::desc asrc = type == dt::f32 ? amd : dense(s.a_dims);
  dnnl::memory::desc bmd = b_const           ? any_md(s.b_dims, type)
                           : type == dt::f32 ? bu
                                             : dense(s.b_dims);
  dnnl::memory::desc ymd = plain_md(s.y_dims);
  dnnl::memory::desc cmd = c ? plain_md(s.bias_dims) : dnnl::memory::desc();
  auto d = c ? dnnl::matmul::desc(asrc, bmd, cmd, ymd)
             : dnnl::matmul::desc(asrc, bmd, ymd);
  dnnl::matmul::primitive_desc pd(d, attr, oc.ctx.engine);
  out = MatmulPlan{b, c, r, b_const, c_const, amd, bu, ymd, cmd, pd};
  return true;
}

KernelPtr build(const OpContext& oc, const MatmulSpec& s) {
  MatmulPlan p;
  if (!plan_matmul(oc, s, p)) return nullptr;
  const program::TensorDesc *b = p.b, *c = p.c, *r = p.r;
  const bool b_const = p.b_const, c_const = p.c_const;
  const dnnl::memory::desc &amd = p.amd, &bu = p.bu, &ymd = p.ymd,
                           &cmd = p.cmd;
  const dnnl::matmul::primitive_desc& pd = p.pd;

  auto k = std::make_unique<DnnlKernel>(oc);
  DnnlKernel::Args args;
  // A (and a variable B) as the primitive wants them: converted to bf16 in
  // the workspace when it computes in bf16.
  auto source = [&](int index, const dnnl::memory::desc& user, const dnnl::memory::desc& want) {
    if (want == user) return k->operand(oc, index, user);
    dnnl::memory t = k->temp(want);
    k->add_reorder(k->operand(oc, index, user), t);
    return t;
  };
  args[DNNL_ARG_SRC] = source(0, amd, pd.src_desc());
  if (b_const) {
    auto packed =
        packed_weight(oc, *b, bu, pd.weights_desc(), "matmul", s.alpha);
    args[DNNL_ARG_WEIGHTS] = *packed;
    k->keep(packed);
  } else {
    args[DNNL_ARG_WEIGHTS] = source(1, bu, pd.weights_desc());
  }
  if (c) {
    if (c_const && s.beta != 1.0f) {
      auto scaled = packed_weight(oc, *c, cmd, cmd, "bias", s.beta);
      args[DNNL_ARG_BIAS] = *scaled;
      k->keep(scaled);
    } else {
      args[DNNL_ARG_BIAS] = k->operand(oc, 2, cmd);
    }
  }
  dnnl::memory dst = k->bind_output(0, ymd);
  args[DNNL_ARG_DST] = dst;
  if (r) k->add_reorder(k->operand(oc, s.residual, ymd), dst, true);
  k->add(dnnl::matmul(pd), pd, std::move(args));
  k->set_impl(pd);
  return k;
}

/// Gemm as a matmul; false when oneDNN does not take it.
bool gemm_spec(const OpContext& oc, MatmulSpec& s) {
  const program::TensorDesc* a = oc.in(0);
  const program::TensorDesc* b = oc.in(1);
  const program::TensorDesc* c = oc.in(2);
  if (!a || !b || oc.num_inputs() > 4 || oc.ins.outputs.size() != 1)
    return false;
  if (a->shape.size() != 2 || b->shape.size() != 2) return false;
  const Attrs& at = oc.ins.attrs;
  bool ta = at.i("transA", 0) != 0, tb = at.i("transB", 0) != 0;
  int64_t m = ta ? a->shape[1] : a->shape[0];
  int64_t ka = ta ? a->shape[0] : a->shape[1];
  int64_t kb = tb ? b->shape[1] : b->shape[0];
  int64_t n = tb ? b->shape[0] : b->shape[1];
  if (ka != kb)
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": inner dimensions differ: A " +
                    shape_str(a->shape) + ", B " + shape_str(b->shape));
  s.a_dims = {m, ka};
  s.a_strides = ta ? dims{1, m} : dims{ka, 1};
  s.b_dims = {ka, n};
  s.b_strides = tb ? dims{1, ka} : dims{n, 1};
  s.y_dims = {m, n};
  s.alpha = at.f("alpha", 1.0f);
  s.beta = at.f("beta", 1.0f);
  s.residual = oc.in(3) ? 3 : -1;
  if (c && s.beta != 0.0f) {
    // C broadcasts unidirectionally to [M, N].
    const Shape& cs = c->shape;
    if (cs.size() > 2) return false;
    Shape c2(2 - cs.size(), 1);
    c2.insert(c2.end(), cs.begin(), cs.end());
    if ((c2[0] != 1 && c2[0] != m) || (c2[1] != 1 && c2[1] != n))
      throw Error(ErrorKind::invalid_argument,
                  oc.what() + ": C of shape " + shape_str(cs) +
                      " does not broadcast to [" + std::to_string(m) + ", " +
                      std::to_string(n) + "]");
    s.has_bias = true;
    s.bias_dims = {c2[0], c2[1]};
  }
  return true;
}

/// MatMul as a matmul; false when oneDNN does not take it.
bool matmul_spec(const OpContext& oc, MatmulSpec& s) {
  const program::TensorDesc* a = oc.in(0);
  const program::TensorDesc* b = oc.in(1);
  if (!a || !b || oc.ins.outputs.size() != 1) return false;
  // Inputs beyond A and B: a bias of N values at index 2 (fuse_matmul_bias)
  // and the fused residual at index 3.
  if (oc.num_inputs() > 4) return false;
  const Shape& as = a->shape;
  const Shape& bs = b->shape;
  if (as.size() < 2 || bs.size() < 2 || as.size() > 4 || bs.size() > 4)
    return false;
  int64_t k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    throw Error(ErrorKind::invalid_argument,
                oc.what() + ": inner dimensions differ: A " + shape_str(as) +
                    ", B " + shape_str(bs));
  s.residual = oc.in(3) ? 3 : -1;
  if (bs.size() == 2) {
    // [..., M, K] x [K, N]: the batch dims of A fold into M.
    int64_t m = shape_numel(as) / k;
    s.a_dims = {m, k};
    s.b_dims = {k, n};
    s.y_dims = {m, n};
  } else {
    if (as.size() != bs.size() ||
        !std::equal(as.begin(), as.end() - 2, bs.begin()))
      return false;  // broadcast batch dims: not handled here
    s.a_dims = dims(as.begin(), as.end());
    s.b_dims = dims(bs.begin(), bs.end());
    s.y_dims = s.a_dims;
    s.y_dims.back() = n;
  }
  s.a_strides = plain_strides(s.a_dims);
  s.b_strides = plain_strides(s.b_dims);
  if (const program::TensorDesc* c = oc.in(2)) {
    if (shape_numel(c->shape) != n || (!c->shape.empty() && c->shape.back() != n)) return false;
    s.has_bias = true;
    s.bias_dims = dims(s.y_dims.size(), 1);
    s.bias_dims.back() = n;
  }
  return true;
}

/// The weight plan of a matmul with a constant B.
bool weight_plan(const OpContext& oc, const MatmulSpec& s, WeightPlan& wp) {
  MatmulPlan p;
  if (!plan_matmul(oc, s, p) || !p.b_const) return false;
  wp.plain = p.bu;
  wp.target = p.pd.weights_desc();
  wp.scale = s.alpha;
  return true;
}

}  // namespace

KernelPtr make_gemm(const OpContext& oc) {
  MatmulSpec s;
  return gemm_spec(oc, s) ? build(oc, s) : nullptr;
}

KernelPtr make_matmul(const OpContext& oc) {
  MatmulSpec s;
  return matmul_spec(oc, s) ? build(oc, s) : nullptr;
}

bool gemm_weight_plan(const OpContext& oc, WeightPlan& wp) {
  MatmulSpec s;
  return gemm_spec(oc, s) && weight_plan(oc, s, wp);
}

bool matmul_weight_plan(const OpContext& oc, WeightPlan& wp) {
  MatmulSpec s;
  return matmul_spec(oc, s) && weight_plan(oc, s, wp);
}

}  // namespace shoal::cpu::onednn
