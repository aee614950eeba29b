#include <cmath>

#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

const HostTensor* const_f32(const ir::Graph& g, int v) {
  if (v < 0) return nullptr;
  const auto& val = g.values[size_t(v)];
  return val.is_const() && val.dtype == DType::f32 ? &*val.constant : nullptr;
}

}  // namespace

bool inference_batchnorm(const ir::Graph& g, const ir::Node& bn, BatchNormParams& p) {
  if (bn.dead || bn.op != "BatchNormalization" || bn.inputs.size() != 5 ||
      bn.attrs.i("training_mode", 0) != 0)  // batch statistics: nothing to fold
    return false;
  for (size_t i = 1; i < bn.outputs.size(); ++i)
    if (bn.outputs[i] >= 0) return false;
  p = {const_f32(g, bn.inputs[1]), const_f32(g, bn.inputs[2]), const_f32(g, bn.inputs[3]),
       const_f32(g, bn.inputs[4]), 0};
  if (!p.scale || !p.bias || !p.mean || !p.var) return false;
  p.c = p.scale->numel();
  return p.bias->numel() == p.c && p.mean->numel() == p.c && p.var->numel() == p.c;
}

void fold_batchnorm(ir::Graph& g, const Log& log) {
  auto cons = g.consumers();
  auto prod = g.producers();
  int folded = 0;
  for (auto& bn : g.nodes) {
    BatchNormParams bp;
    if (!inference_batchnorm(g, bn, bp)) continue;
    const int x = bn.inputs[0];
    if (prod[size_t(x)] < 0 || cons[size_t(x)].size() != 1 || is_graph_output(g, x)) continue;
    ir::Node& p = g.nodes[size_t(prod[size_t(x)])];
    if (p.dead) continue;
    const HostTensor *scale = bp.scale, *beta = bp.bias, *mean = bp.mean, *var = bp.var;
    const int64_t c = bp.c;
    const HostTensor* w = const_f32(g, p.inputs.size() > 1 ? p.inputs[1] : -1);
    if (!w || p.attrs.has("activation") || p.inputs.size() > 3) continue;
    // Output channels: Conv weight [M, C/g, k...] -> axis 0 of W;
    // Gemm(transB=1) weight [N, K] -> axis 0; Gemm(transB=0) [K, N] -> axis 1.
    bool rows;
    if (p.op == "Conv") {
      rows = true;
    } else if (p.op == "Gemm" && p.attrs.f("alpha", 1.f) == 1.f && p.attrs.i("transA", 0) == 0) {
      rows = p.attrs.i("transB", 0) != 0;
    } else {
      continue;
    }
    if (w->shape().size() < 2 || w->shape()[rows ? 0 : 1] != c) continue;
    const HostTensor* b = const_f32(g, p.inputs.size() > 2 ? p.inputs[2] : -1);
    if (p.inputs.size() > 2 && p.inputs[2] >= 0 && (!b || b->numel() != c)) continue;
    if (p.op == "Gemm" && b && p.attrs.f("beta", 1.f) != 1.f) continue;

    const float eps = bn.attrs.f("epsilon", 1e-5f);
    std::vector<float> s(static_cast<size_t>(c)), t(static_cast<size_t>(c));
    for (int64_t i = 0; i < c; ++i) {
      s[size_t(i)] = scale->as<float>()[i] / std::sqrt(var->as<float>()[i] + eps);
      float bias = b ? b->as<float>()[i] : 0.f;
      t[size_t(i)] = (bias - mean->as<float>()[i]) * s[size_t(i)] + beta->as<float>()[i];
    }
    HostTensor nw = *w;
    float* pw = nw.as<float>();
    if (rows) {
      const int64_t per = nw.numel() / c;
      for (int64_t i = 0; i < c; ++i)
        for (int64_t j = 0; j < per; ++j) pw[i * per + j] *= s[size_t(i)];
    } else {
      const int64_t k = nw.shape()[0];
      for (int64_t r = 0; r < k; ++r)
        for (int64_t i = 0; i < c; ++i) pw[r * c + i] *= s[size_t(i)];
    }
    HostTensor nb(DType::f32, {c});
    std::copy(t.begin(), t.end(), nb.as<float>());
    const int wid = add_constant(g, g.values[size_t(p.inputs[1])].name + "_bnfold", std::move(nw));
    const int bid = add_constant(g, bn.name + "_bias", std::move(nb));
    p.inputs[1] = wid;
    if (p.inputs.size() < 3) p.inputs.resize(3, -1);
    p.inputs[2] = bid;
    // The producer now writes the BatchNormalization's output.
    p.outputs[0] = bn.outputs[0];
    bn.dead = true;
    ++folded;
  }
  g.compact();
  if (log) log("folded " + std::to_string(folded) + " BatchNormalization nodes into Conv/Gemm");
}

}  // namespace shoal::passes
