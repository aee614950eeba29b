#include <functional>

#include "passes/passes.hpp"
#include "reference/geometry.hpp"
#include "reference/plans.hpp"

namespace shoal::passes {
namespace {

/// True when value `target` is computed (transitively) from value `from`.
bool depends_on(const ir::Graph& g, const std::vector<int>& prod, int target, int from) {
  std::vector<char> seen(g.values.size(), 0);
  std::function<bool(int)> visit = [&](int v) {
    if (v < 0 || seen[size_t(v)]) return false;
    if (v == from) return true;
    seen[size_t(v)] = 1;
    int p = prod[size_t(v)];
    if (p < 0) return false;
    for (int i : g.nodes[size_t(p)].inputs)
      if (visit(i)) return true;
    return false;
  };
  return visit(target);
}

/// The node producing `v` if `v` feeds only one node and is no graph output.
ir::Node* sole_producer(ir::Graph& g, const std::vector<int>& prod,
                        const std::vector<std::vector<int>>& cons, int v) {
  if (v < 0 || prod[size_t(v)] < 0 || cons[size_t(v)].size() != 1 || is_graph_output(g, v))
    return nullptr;
  ir::Node* p = &g.nodes[size_t(prod[size_t(v)])];
  return p->dead ? nullptr : p;
}

/// The constant scalar value of an optional input (Clip's min/max).
bool const_scalar(const ir::Graph& g, const ir::Node& n, size_t i, float& out) {
  if (i >= n.inputs.size() || n.inputs[i] < 0) return true;  // absent: default
  const auto& v = g.values[size_t(n.inputs[i])];
  if (!v.is_const() || v.constant->numel() != 1) return false;
  out = float(v.constant->float_at(0));
  return true;
}

}  // namespace

void fuse_residual_add(ir::Graph& g, const Log& log) {
  auto prod = g.producers();
  auto cons = g.consumers();
  int fused = 0;
  for (size_t ai = 0; ai < g.nodes.size(); ++ai) {
    ir::Node& add = g.nodes[ai];
    if (add.dead || add.op != "Add" || add.inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const int a = add.inputs[size_t(side)], b = add.inputs[size_t(1 - side)];
      ir::Node* conv = sole_producer(g, prod, cons, a);
      if (!conv || conv->op != "Conv" || conv->attrs.has("activation") || conv->inputs.size() > 3)
        continue;
      const auto &va = g.values[size_t(a)], &vb = g.values[size_t(b)];
      if (va.shape != vb.shape || vb.dtype != DType::f32 || vb.is_const()) continue;
      if (depends_on(g, prod, b, a)) continue;
      conv->inputs.resize(4, -1);
      conv->inputs[3] = b;
      conv->outputs[0] = add.outputs[0];
      add.dead = true;
      ++fused;
      // The fused node is now the producer of the Add's output.
      prod[size_t(add.outputs[0])] = int(conv - g.nodes.data());
      cons[size_t(b)].push_back(int(conv - g.nodes.data()));
      break;
    }
  }
  g.compact();
  g.sort();  // the Conv now reads the residual operand
  if (log) log("fused " + std::to_string(fused) + " residual Add nodes into Conv");
}

void fuse_activations(ir::Graph& g, const Log& log) {
  auto prod = g.producers();
  auto cons = g.consumers();
  int fused = 0;
  for (auto& act : g.nodes) {
    if (act.dead || !ref::is_fusable_activation(act.op)) continue;
    ir::Node* p = sole_producer(g, prod, cons, act.inputs[0]);
    if (!p || p->attrs.has("activation")) continue;
    // A BatchNormalization left unfolded (pre-activation blocks such as
    // DenseNet's) runs as the native per-channel affine kernel, which applies
    // any activation the native loops compute in the same pass (GELU's tanh
    // form excepted).
    const bool bn_act = p->op == "BatchNormalization" &&
                        !(act.op == "Gelu" && act.attrs.s("approximate", "none") != "none");
    // An int8 shoal.QMatMul with a float32 result applies it after its
    // scale and post_bias (a requantized one took its Relu/Clip in fuse_qdq).
    const bool float_qmm = p->op == "shoal.QMatMul" && (p->inputs.size() <= 6 || p->inputs[6] < 0);
    if (p->op != "Conv" && p->op != "Gemm" && p->op != "MatMul" && !bn_act && !float_qmm) continue;
    float alpha = 0, beta = 0;
    ref::activation_defaults(act.op, alpha, beta);
    if (act.op == "Clip") {
      alpha = act.attrs.f("min", alpha);
      beta = act.attrs.f("max", beta);
      if (!const_scalar(g, act, 1, alpha) || !const_scalar(g, act, 2, beta)) continue;
    } else {
      alpha = act.attrs.f("alpha", alpha);
      beta = act.attrs.f("beta", beta);
    }
    if (act.op == "Gelu") alpha = act.attrs.s("approximate", "none") == "tanh" ? 1.0f : 0.0f;
    p->attrs.set("activation", act.op);
    p->attrs.set("activation_alpha", alpha);
    p->attrs.set("activation_beta", beta);
    p->outputs[0] = act.outputs[0];
    prod[size_t(act.outputs[0])] = int(p - g.nodes.data());
    act.dead = true;
    ++fused;
  }
  g.compact();
  if (log)
    log("fused " + std::to_string(fused) +
        " activations into Conv/Gemm/MatMul/BatchNormalization/shoal.QMatMul");
}

void fuse_concat_batchnorm(ir::Graph& g, const Log& log) {
  auto prod = g.producers();
  auto cons = g.consumers();
  int fused = 0;
  for (auto& bn : g.nodes) {
    BatchNormParams bp;
    if (!inference_batchnorm(g, bn, bp)) continue;
    ir::Node* cat = sole_producer(g, prod, cons, bn.inputs[0]);
    if (!cat || cat->op != "Concat" || cat->attrs.has("affine_scale")) continue;
    const ir::Value& y = g.values[size_t(cat->outputs[0])];
    if (y.dtype != DType::f32 || y.shape.size() < 2 || y.shape[1] != bp.c) continue;
    int64_t axis = cat->attrs.i("axis", 1);
    if (axis < 0) axis += int64_t(y.shape.size());
    if (axis != 1) continue;
    std::vector<float> scale(static_cast<size_t>(bp.c)), shift(static_cast<size_t>(bp.c));
    ref::batchnorm_affine(bp.scale->as<float>(), bp.bias->as<float>(), bp.mean->as<float>(),
                          bp.var->as<float>(), bn.attrs.f("epsilon", 1e-5f), bp.c, scale.data(),
                          shift.data());
    cat->attrs.set("affine_scale", scale);
    cat->attrs.set("affine_shift", shift);
    for (const char* key : {"activation", "activation_alpha", "activation_beta"})
      if (auto it = bn.attrs.items().find(key); it != bn.attrs.items().end())
        cat->attrs.set(key, it->second);
    cat->outputs[0] = bn.outputs[0];
    prod[size_t(bn.outputs[0])] = int(cat - g.nodes.data());
    bn.dead = true;
    ++fused;
  }
  g.compact();
  if (log)
    log("fused " + std::to_string(fused) +
        " BatchNormalizations into the Concat before them (one pass, no copy then normalize)");
}

}  // namespace shoal::passes
