// recognize_composites: the decomposed forms exporters write for SiLU,
// HardSwish, GELU and LayerNormalization become one node each, which
// fuse_activations can then move into a Conv/Gemm/MatMul, or which runs as
// one vectorized kernel. fuse_matmul_bias: MatMul + Add(bias) -> MatMul
// with a bias input.
#include <cmath>

#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

struct Ctx {
  ir::Graph& g;
  std::vector<int> prod;
  std::vector<std::vector<int>> cons;

  explicit Ctx(ir::Graph& graph) : g(graph), prod(g.producers()), cons(g.consumers()) {}
  ir::Node* producer(int v) {
    if (v < 0 || prod[size_t(v)] < 0) return nullptr;
    ir::Node* p = &g.nodes[size_t(prod[size_t(v)])];
    return p->dead ? nullptr : p;
  }
  /// The producer of `v` when it has op `op` and `v` is read by `readers`
  /// nodes only and is no graph output (so the node can go).
  ir::Node* only(int v, const char* op, size_t readers = 1) {
    ir::Node* p = producer(v);
    if (!p || p->op != op || p->outputs.size() != 1 || cons[size_t(v)].size() != readers ||
        is_graph_output(g, v))
      return nullptr;
    return p;
  }
  /// The value of constant v when it is a scalar (rank 0, or rank 1 of one
  /// element: it broadcasts without changing the other operand's shape), or
  /// NAN.
  double scalar(int v) const {
    if (v < 0) return NAN;
    const ir::Value& val = g.values[size_t(v)];
    if (!val.is_const() || val.constant->numel() != 1 || val.shape.size() > 1) return NAN;
    return val.constant->float_at(0);
  }
  /// The input of binary node n that is not `other`, or -1.
  static int other_input(const ir::Node& n, int other) {
    if (n.inputs.size() != 2) return -1;
    if (n.inputs[0] == other) return n.inputs[1];
    if (n.inputs[1] == other) return n.inputs[0];
    return -1;
  }
  /// Turns node n into a unary op over x.
  static void make_unary(ir::Node& n, const std::string& op, int x) {
    n.op = op;
    n.domain.clear();
    n.inputs = {x};
    n.attrs = Attrs{};
  }
};

bool near(double v, double want) { return std::fabs(v - want) <= 1e-4 * std::fabs(want); }

/// Mul(x, Sigmoid(x)) -> shoal.Silu(x); Mul(x, HardSigmoid(x) with 1/6,
/// 1/2) -> HardSwish(x).
int gated(Ctx& c) {
  int n = 0;
  for (auto& mul : c.g.nodes) {
    if (mul.dead || mul.op != "Mul" || mul.inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const int x = mul.inputs[size_t(side)], gate = mul.inputs[size_t(1 - side)];
      ir::Node* s = c.only(gate, "Sigmoid");
      ir::Node* h = c.only(gate, "HardSigmoid");
      if (s && s->inputs[0] == x) {
        s->dead = true;
        Ctx::make_unary(mul, "shoal.Silu", x);
      } else if (h && h->inputs[0] == x && near(h->attrs.f("alpha", 0.2f), 1.0 / 6) &&
                 near(h->attrs.f("beta", 0.5f), 0.5)) {
        h->dead = true;
        Ctx::make_unary(mul, "HardSwish", x);
      } else {
        continue;
      }
      ++n;
      break;
    }
  }
  return n;
}

/// 0.5 * x * (1 + erf(x / sqrt(2))) in the orders exporters write it ->
/// Gelu(x).
int gelu(Ctx& c) {
  int n = 0;
  for (auto& erf : c.g.nodes) {
    if (erf.dead || erf.op != "Erf") continue;
    // x / sqrt(2) or x * (1 / sqrt(2)).
    ir::Node* scaled = c.producer(erf.inputs[0]);
    if (!scaled || c.cons[size_t(erf.inputs[0])].size() != 1 || scaled->inputs.size() != 2 ||
        is_graph_output(c.g, erf.inputs[0]))
      continue;
    int x = -1;
    if (scaled->op == "Div" && near(c.scalar(scaled->inputs[1]), std::sqrt(2.0)))
      x = scaled->inputs[0];
    else if (scaled->op == "Mul" && near(c.scalar(scaled->inputs[1]), std::sqrt(0.5)))
      x = scaled->inputs[0];
    else if (scaled->op == "Mul" && near(c.scalar(scaled->inputs[0]), std::sqrt(0.5)))
      x = scaled->inputs[1];
    if (x < 0 || c.g.values[size_t(x)].dtype != DType::f32) continue;  // Gelu: f32
    // 1 + erf.
    const int e = erf.outputs[0];
    if (c.cons[size_t(e)].size() != 1 || is_graph_output(c.g, e)) continue;
    ir::Node& add = c.g.nodes[size_t(c.cons[size_t(e)][0])];
    if (add.op != "Add" || !near(c.scalar(Ctx::other_input(add, e)), 1.0)) continue;
    const int p = add.outputs[0];
    if (c.cons[size_t(p)].size() != 1 || is_graph_output(c.g, p)) continue;
    ir::Node& m1 = c.g.nodes[size_t(c.cons[size_t(p)][0])];
    if (m1.op != "Mul") continue;
    const int o1 = Ctx::other_input(m1, p);
    ir::Node* last = nullptr;  // the node whose output is the GELU
    std::vector<ir::Node*> gone = {scaled, &erf, &add};
    if (o1 == x) {
      // (x * (1 + erf)) * 0.5
      const int q = m1.outputs[0];
      if (c.cons[size_t(q)].size() != 1 || is_graph_output(c.g, q)) continue;
      ir::Node& m2 = c.g.nodes[size_t(c.cons[size_t(q)][0])];
      if (m2.op != "Mul" || !near(c.scalar(Ctx::other_input(m2, q)), 0.5)) continue;
      gone.push_back(&m1);
      last = &m2;
    } else if (near(c.scalar(o1), 0.5)) {
      // x * ((1 + erf) * 0.5)
      const int q = m1.outputs[0];
      if (c.cons[size_t(q)].size() != 1 || is_graph_output(c.g, q)) continue;
      ir::Node& m2 = c.g.nodes[size_t(c.cons[size_t(q)][0])];
      if (m2.op != "Mul" || Ctx::other_input(m2, q) != x) continue;
      gone.push_back(&m1);
      last = &m2;
    } else if (ir::Node* h = c.only(o1, "Mul");
               h && Ctx::other_input(*h, x) >= 0 && near(c.scalar(Ctx::other_input(*h, x)), 0.5)) {
      // (x * 0.5) * (1 + erf)
      gone.push_back(h);
      last = &m1;
    } else {
      continue;
    }
    for (ir::Node* d : gone) d->dead = true;
    Ctx::make_unary(*last, "Gelu", x);
    ++n;
  }
  return n;
}

/// The trailing axes of a ReduceMean over rank r with keepdims: the first
/// of them, or -1 when they are not the last dims.
int64_t trailing_axes(const ir::Graph& g, const ir::Node& rm, size_t r) {
  if (rm.op != "ReduceMean" || rm.attrs.i("keepdims", 1) == 0) return -1;
  std::vector<int64_t> axes = rm.attrs.ints("axes");
  if (!rm.attrs.has("axes")) {
    if (rm.inputs.size() < 2 || rm.inputs[1] < 0) return -1;
    const ir::Value& v = g.values[size_t(rm.inputs[1])];
    if (!v.is_const()) return -1;
    axes = v.constant->to_ints();
  }
  if (axes.empty()) return -1;
  std::vector<bool> on(r, false);
  for (int64_t a : axes) {
    if (a < 0) a += int64_t(r);
    if (a < 0 || a >= int64_t(r)) return -1;
    on[size_t(a)] = true;
  }
  const int64_t first = int64_t(r) - int64_t(axes.size());
  for (size_t d = 0; d < r; ++d)
    if (on[d] != (int64_t(d) >= first)) return -1;
  return first;
}

/// (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* g] [+ b] over
/// trailing axes -> LayerNormalization(x, g or 1, b).
int layernorm(Ctx& c) {
  int n = 0;
  for (auto& div : c.g.nodes) {
    if (div.dead || div.op != "Div" || div.inputs.size() != 2) continue;
    const int d = div.inputs[0];
    ir::Node* sub = c.only(d, "Sub", 2);
    ir::Node* sq = c.only(div.inputs[1], "Sqrt");
    if (!sub || !sq) continue;
    const int x = sub->inputs[0];
    const ir::Value& xv = c.g.values[size_t(x)];
    if (xv.dtype != DType::f32 || xv.shape.empty()) continue;
    const size_t r = xv.shape.size();
    ir::Node* mean = c.only(sub->inputs[1], "ReduceMean");
    if (!mean || mean->inputs[0] != x) continue;
    const int64_t axis = trailing_axes(c.g, *mean, r);
    ir::Node* add = c.only(sq->inputs[0], "Add");
    if (axis < 0 || !add || add->inputs.size() != 2) continue;
    const double eps = c.scalar(add->inputs[1]);
    ir::Node* var = c.only(add->inputs[0], "ReduceMean");
    if (std::isnan(eps) || !var || trailing_axes(c.g, *var, r) != axis) continue;
    ir::Node* pow = c.only(var->inputs[0], "Pow");
    if (!pow || pow->inputs[0] != d || c.scalar(pow->inputs[1]) != 2.0) continue;
    // The block's own Pow -> both readers of d are the pattern's.
    const Shape block(xv.shape.begin() + axis, xv.shape.end());
    const int64_t bn = shape_numel(block);
    auto affine = [&](const ir::Node& op, int from) -> int {
      const int w = Ctx::other_input(op, from);
      if (w < 0) return -1;
      const ir::Value& wv = c.g.values[size_t(w)];
      if (!wv.is_const() || wv.dtype != DType::f32 || wv.constant->numel() != bn ||
          wv.shape.size() > block.size() || (!wv.shape.empty() && wv.shape.back() != block.back()))
        return -1;
      return w;
    };
    // Optional * g, then optional + b.
    ir::Node* out = &div;
    int g = -1, b = -1;
    std::vector<ir::Node*> gone = {sub, sq, mean, add, var, pow};
    int y = div.outputs[0];
    if (c.cons[size_t(y)].size() == 1 && !is_graph_output(c.g, y)) {
      ir::Node& m = c.g.nodes[size_t(c.cons[size_t(y)][0])];
      if (m.op == "Mul" && (g = affine(m, y)) >= 0) {
        gone.push_back(out);
        out = &m;
        y = m.outputs[0];
      }
    }
    if (c.cons[size_t(y)].size() == 1 && !is_graph_output(c.g, y)) {
      ir::Node& a = c.g.nodes[size_t(c.cons[size_t(y)][0])];
      if (a.op == "Add" && (b = affine(a, y)) >= 0) {
        gone.push_back(out);
        out = &a;
      }
    }
    if (g < 0) {
      HostTensor ones(DType::f32, block);
      for (int64_t i = 0; i < bn; ++i) ones.as<float>()[i] = 1.0f;
      g = add_constant(c.g, div.name + "/shoal_ones", std::move(ones));
    }
    for (ir::Node* k : gone) k->dead = true;
    out->op = "LayerNormalization";
    out->domain.clear();
    out->inputs = {x, g};
    if (b >= 0) out->inputs.push_back(b);
    out->attrs = Attrs{};
    out->attrs.set("axis", axis);
    out->attrs.set("epsilon", float(eps));
    ++n;
  }
  return n;
}

/// Reshape [N,C,rest] -> [N,f1..fk,rest], Transpose of the factor dims
/// only, Reshape back to [N,C,rest]: a permutation of the channels (a
/// channel shuffle) -> Gather(x, permutation, axis 1), one permuting copy
/// that runs in any layout.
int channel_permutations(Ctx& c) {
  int n = 0;
  for (auto& back : c.g.nodes) {
    if (back.dead || back.op != "Reshape") continue;
    ir::Node* tr = c.only(back.inputs[0], "Transpose");
    if (!tr) continue;
    ir::Node* split = c.only(tr->inputs[0], "Reshape");
    if (!split) continue;
    const int x = split->inputs[0];
    const Shape &xs = c.g.values[size_t(x)].shape, &fs = c.g.values[size_t(tr->inputs[0])].shape;
    const Shape& ys = c.g.values[size_t(back.outputs[0])].shape;
    if (xs.size() < 2 || ys != xs || fs.size() < xs.size() || fs[0] != xs[0]) continue;
    const size_t k = fs.size() - xs.size() + 1;  // factors of the channel dim
    bool ok = shape_numel(Shape(fs.begin() + 1, fs.begin() + 1 + long(k))) == xs[1];
    for (size_t d = 2; ok && d < xs.size(); ++d) ok = fs[d + k - 1] == xs[d];
    std::vector<int64_t> perm = tr->attrs.ints("perm");
    ok = ok && perm.size() == fs.size() && perm[0] == 0;
    for (size_t d = 1; ok && d < perm.size(); ++d)
      ok = d <= k ? perm[d] >= 1 && perm[d] <= int64_t(k) : perm[d] == int64_t(d);
    if (!ok || c.g.values[size_t(x)].dtype != DType::f32) continue;
    // Output channel c' has digits d' over the transposed factors; the
    // input channel has digit d'[m] at factor perm[m].
    const int64_t ch = xs[1];
    HostTensor idx(DType::i64, {ch});
    for (int64_t o = 0; o < ch; ++o) {
      std::vector<int64_t> orig(k + 1, 0);
      int64_t rest = o;
      for (size_t m = k; m >= 1; --m) {
        const int64_t f = fs[size_t(perm[m])];
        orig[size_t(perm[m])] = rest % f;
        rest /= f;
      }
      int64_t in = 0;
      for (size_t m = 1; m <= k; ++m) in = in * fs[m] + orig[m];
      idx.as<int64_t>()[o] = in;
    }
    const int ids = add_constant(c.g, back.name + "/shoal_permutation", std::move(idx));
    split->dead = true;
    tr->dead = true;
    back.op = "Gather";
    back.domain.clear();
    back.inputs = {x, ids};
    back.attrs = Attrs{};
    back.attrs.set("axis", int64_t(1));
    ++n;
  }
  return n;
}

}  // namespace

void recognize_composites(ir::Graph& g, const Log& log) {
  // Each rewriter on a fresh view of producers and consumers, then the dead
  // nodes it left are dropped.
  auto pass = [&g](int (*rewrite)(Ctx&)) {
    Ctx c(g);
    const int n = rewrite(c);
    g.compact();
    return n;
  };
  const int silu = pass(gated), gel = pass(gelu), ln = pass(layernorm),
            shuffles = pass(channel_permutations);
  g.sort();
  if (log)
    log("recognized " + std::to_string(silu) + " SiLU/HardSwish, " + std::to_string(gel) +
        " GELU, " + std::to_string(ln) + " LayerNormalization and " + std::to_string(shuffles) +
        " channel shuffle patterns");
}

namespace {

/// An int8 shoal.QMatMul with a float32 result (no y_scale, y_zero_point or
/// post_bias yet), else nullptr.
ir::Node* float_qmatmul(ir::Node* n) {
  if (!n || n->inputs.size() > 9) return nullptr;
  for (size_t i = 6; i < n->inputs.size(); ++i)
    if (i != 8 && n->inputs[i] >= 0) return nullptr;
  return n;
}

}  // namespace

void fuse_matmul_bias(ir::Graph& g, const Log& log) {
  Ctx c(g);
  int fused = 0;
  for (auto& add : g.nodes) {
    if (add.dead || add.op != "Add" || add.inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const int a = add.inputs[size_t(side)], b = add.inputs[size_t(1 - side)];
      ir::Node* mm = c.only(a, "MatMul");
      if (!mm) mm = float_qmatmul(c.only(a, "shoal.QMatMul"));
      if (!mm || (mm->op == "MatMul" && mm->inputs.size() != 2) || mm->attrs.has("activation"))
        continue;
      const ir::Value &bv = g.values[size_t(b)], &yv = g.values[size_t(a)];
      const ir::Value& wv = g.values[size_t(mm->inputs[mm->op == "MatMul" ? 1 : 3])];
      // A bias of N values along the last dim, added to an output of the
      // same shape (no broadcasting beyond it), B a constant matrix.
      if (!bv.is_const() || bv.dtype != DType::f32 || yv.shape.empty() ||
          g.values[size_t(add.outputs[0])].shape != yv.shape || !wv.is_const() ||
          wv.shape.size() != 2)
        continue;
      const int64_t n = yv.shape.back();
      bool ok = bv.constant->numel() == n && !bv.shape.empty() && bv.shape.back() == n;
      if (!ok) continue;
      if (mm->op != "MatMul") mm->inputs.resize(9, -1);  // post_bias is input 9
      mm->inputs.push_back(b);
      mm->outputs[0] = add.outputs[0];
      add.dead = true;
      ++fused;
      break;
    }
  }
  g.compact();
  if (log) log("fused " + std::to_string(fused) + " bias Add nodes into MatMul and shoal.QMatMul");
}

}  // namespace shoal::passes
