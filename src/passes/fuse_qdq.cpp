// fuse_qdq: the QDQ form of a quantized convolution,
//
//   DequantizeLinear(xq) ─┐
//   DequantizeLinear(wq) ─┼─ Conv ─ [Relu] ─ QuantizeLinear ─> yq
//   DequantizeLinear(bq) ─┘
//
// becomes one QLinearConv(xq, ..., wq, ..., bq) -> yq (with the Relu as its
// fused activation): an int8 convolution that requantizes its result, with
// no float32 tensor in between. Runs before infer_and_fold, which would fold
// the weights' DequantizeLinear into float32 constants. Matched only where
// the fused node computes what the QDQ graph says: per-tensor activation
// scales, weights int8 with zero points 0 (per tensor or per output
// channel, axis 0), an int32 bias whose scale is x_scale * w_scale. Other
// Convs keep the QDQ nodes and run in float32 on the dequantized values.
// Gemm and MatMul of a dequantized activation and constant int8 weights
// become shoal.QMatMul the same way, requantized or with a float32 result
// (a classifier's logits).
#include <cmath>
#include <limits>

#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

const HostTensor* constant(const ir::Graph& g, int v) {
  if (v < 0 || !g.values[size_t(v)].is_const()) return nullptr;
  return &*g.values[size_t(v)].constant;
}

/// The node producing `v` when it is an op of type `op` (not dead).
ir::Node* producer_of(ir::Graph& g, const std::vector<int>& prod, int v, const char* op) {
  if (v < 0 || prod[size_t(v)] < 0) return nullptr;
  ir::Node* n = &g.nodes[size_t(prod[size_t(v)])];
  return !n->dead && n->op == op ? n : nullptr;
}

/// The only reader of `v` (no graph output), when it is an op of type `op`.
ir::Node* sole_reader(ir::Graph& g, const std::vector<std::vector<int>>& cons, int v,
                      const char* op) {
  if (v < 0 || cons[size_t(v)].size() != 1 || is_graph_output(g, v)) return nullptr;
  ir::Node* n = &g.nodes[size_t(cons[size_t(v)][0])];
  return !n->dead && n->op == op ? n : nullptr;
}

int input(const ir::Node& n, size_t i) { return i < n.inputs.size() ? n.inputs[i] : -1; }

/// A per-tensor (de)quantization of an activation: constant scalar f32 scale
/// and a constant scalar 8-bit zero point.
bool per_tensor(const ir::Graph& g, const ir::Node& q) {
  const HostTensor* s = constant(g, input(q, 1));
  const HostTensor* z = constant(g, input(q, 2));
  return s && z && s->dtype() == DType::f32 && s->numel() == 1 &&
         (z->dtype() == DType::u8 || z->dtype() == DType::i8) && z->numel() == 1 &&
         q.inputs[0] >= 0;
}

/// Whether `act` is an activation fused into an int8 kernel (Relu, or Clip
/// with constant bounds), and its attributes for the fused node.
bool int8_activation(ir::Graph& g, const std::vector<int>& prod, const ir::Node& act, Attrs& out) {
  if (act.op == "Relu") {
    out.set("activation", std::string("Relu"));
    return true;
  }
  if (act.op != "Clip") return false;
  float lo = act.attrs.f("min", std::numeric_limits<float>::lowest());
  float hi = act.attrs.f("max", std::numeric_limits<float>::max());
  for (size_t i = 1; i < 3 && i < act.inputs.size(); ++i) {
    if (act.inputs[i] < 0) continue;
    // A constant, or a Constant node's value (not folded yet).
    const HostTensor* t = constant(g, act.inputs[i]);
    if (const ir::Node* c = producer_of(g, prod, act.inputs[i], "Constant"); !t && c)
      t = c->attrs.tensor("value");
    if (!t || t->numel() != 1 || t->dtype() != DType::f32) return false;
    (i == 1 ? lo : hi) = float(t->float_at(0));
  }
  out.set("activation", std::string("Clip"));
  out.set("activation_alpha", lo);
  out.set("activation_beta", hi);
  return true;
}

/// The sole reader of `v` when it is Relu or Clip (constant bounds), with
/// its attributes for the fused node; nullptr otherwise.
ir::Node* sole_activation(ir::Graph& g, const std::vector<int>& prod,
                          const std::vector<std::vector<int>>& cons, int v, Attrs& out) {
  if (v < 0 || cons[size_t(v)].size() != 1 || is_graph_output(g, v)) return nullptr;
  ir::Node* n = &g.nodes[size_t(cons[size_t(v)][0])];
  return !n->dead && int8_activation(g, prod, *n, out) ? n : nullptr;
}

/// Whether an (integer) zero point is absent or all 0; a float one is not:
/// it is left for DequantizeLinear's type check to refuse.
bool all_zero(const HostTensor* t) {
  if (!t) return true;  // absent: 0
  if (t->dtype() == DType::f32 || t->dtype() == DType::f64) return false;
  for (int64_t i = 0; i < t->numel(); ++i)
    if (t->int_at(i) != 0) return false;
  return true;
}

/// The int32 bias of a quantized layer: DequantizeLinear(int32 [m]) with
/// zero points 0 and scales x_scale * w_scale[k] (the accumulator's units);
/// its int32 value, or -1 when `v` is not such a bias.
int int32_bias(ir::Graph& g, const std::vector<int>& prod, int v, float xs, const HostTensor& ws,
               int64_t m) {
  ir::Node* db = producer_of(g, prod, v, "DequantizeLinear");
  const HostTensor* b = db ? constant(g, input(*db, 0)) : nullptr;
  const HostTensor* bs = db ? constant(g, input(*db, 1)) : nullptr;
  if (!b || !bs || b->dtype() != DType::i32 || b->shape() != Shape{m} ||
      bs->dtype() != DType::f32 || (bs->numel() != 1 && bs->numel() != m))
    return -1;
  if (input(*db, 2) >= 0 && !all_zero(constant(g, db->inputs[2]))) return -1;
  for (int64_t k = 0; k < m; ++k) {
    const double want = double(xs) * ws.float_at(ws.numel() == 1 ? 0 : k);
    const double got = bs->float_at(bs->numel() == 1 ? 0 : k);
    if (std::fabs(got - want) > 1e-5 * std::fabs(want)) return -1;
  }
  return db->inputs[0];
}

/// Gemm (transA 0, alpha and beta 1) or MatMul of DequantizeLinear(x) (per
/// tensor, 8-bit) and DequantizeLinear(W) (a constant int8 matrix, zero
/// points 0, one scale or one per output column), Gemm's C an int32 bias as
/// a Conv's: one shoal.QMatMul, requantized when a per-tensor QuantizeLinear
/// (after a Relu or Clip) alone reads the result, else with a float32
/// result. Returns whether it fused.
bool fuse_matmul(ir::Graph& g, const std::vector<int>& prod,
                 const std::vector<std::vector<int>>& cons, ir::Node& mm) {
  const bool gemm = mm.op == "Gemm";
  if (mm.inputs.size() < 2 || mm.inputs.size() > (gemm ? 3u : 2u) || mm.outputs.size() != 1)
    return false;
  if (gemm && (mm.attrs.i("transA", 0) != 0 || mm.attrs.f("alpha", 1) != 1.0f ||
               (input(mm, 2) >= 0 && mm.attrs.f("beta", 1) != 1.0f)))
    return false;
  const bool trans_b = gemm && mm.attrs.i("transB", 0) != 0;
  ir::Node* dx = producer_of(g, prod, mm.inputs[0], "DequantizeLinear");
  ir::Node* dw = producer_of(g, prod, mm.inputs[1], "DequantizeLinear");
  if (!dx || !dw || !per_tensor(g, *dx)) return false;
  const HostTensor* wq = constant(g, input(*dw, 0));
  const HostTensor* ws = constant(g, input(*dw, 1));
  const HostTensor* wz = constant(g, input(*dw, 2));
  if (!wq || !ws || wq->dtype() != DType::i8 || ws->dtype() != DType::f32 ||
      wq->shape().size() != 2)
    return false;
  if ((input(*dw, 2) >= 0 && !wz) || !all_zero(wz)) return false;
  const int64_t k = wq->shape()[trans_b ? 1 : 0], n = wq->shape()[trans_b ? 0 : 1];
  int64_t axis = dw->attrs.i("axis", 1);
  if (axis < 0) axis += 2;
  if (ws->numel() != 1 &&
      !(ws->numel() == n && ws->shape().size() == 1 && axis == (trans_b ? 0 : 1)))
    return false;
  const float xs = float(constant(g, dx->inputs[1])->float_at(0));
  int bias = -1;
  if (input(mm, 2) >= 0 && (bias = int32_bias(g, prod, mm.inputs[2], xs, *ws, n)) < 0) return false;

  int y = mm.outputs[0];
  Attrs act_attrs;
  ir::Node* act = sole_activation(g, prod, cons, y, act_attrs);
  ir::Node* q = sole_reader(g, cons, act ? act->outputs[0] : y, "QuantizeLinear");
  if (!q || !per_tensor(g, *q) || q->outputs.size() != 1 || q->attrs.i("output_dtype", 0) != 0) {
    act = q = nullptr;  // a float32 result
    act_attrs = Attrs();
  }

  ir::Node f;
  f.name = mm.name;
  f.op = "shoal.QMatMul";
  f.attrs = act_attrs;
  if (act && act_attrs.has("activation_alpha")) {  // Clip's bounds in units of y_scale
    const float ys = float(constant(g, q->inputs[1])->float_at(0));
    f.attrs.set("activation_alpha", act_attrs.f("activation_alpha", 0) / ys);
    f.attrs.set("activation_beta", act_attrs.f("activation_beta", 0) / ys);
  }
  f.attrs.set("shoal_precision", std::string("int8"));
  int w_id = dw->inputs[0];
  if (trans_b) {  // stored [N, K]: the op takes [K, N]
    HostTensor t(DType::i8, {k, n});
    const int8_t* src = wq->as<int8_t>();
    int8_t* dst = t.as<int8_t>();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) dst[c * n + r] = src[r * k + c];
    w_id = add_constant(g, mm.name + "_weight_kn", std::move(t));
  }
  int wz_id = input(*dw, 2);
  if (wz_id < 0) wz_id = add_constant(g, mm.name + "_w_zero_point", HostTensor(DType::i8, {}));
  f.inputs = {dx->inputs[0], dx->inputs[1], dx->inputs[2],         w_id,
              dw->inputs[1], wz_id,         q ? q->inputs[1] : -1, q ? q->inputs[2] : -1};
  if (bias >= 0) f.inputs.push_back(bias);
  f.outputs = q ? q->outputs : mm.outputs;
  mm.dead = true;
  if (act) act->dead = true;
  if (q) q->dead = true;
  g.nodes.push_back(std::move(f));
  return true;
}

}  // namespace

/// Fuses DequantizeLinear(a), DequantizeLinear(b) -> Add [-> Relu|Clip] ->
/// QuantizeLinear (per tensor, a and b of one shape) into shoal.QLinearAdd:
/// int8 in, int8 out, the same float32 arithmetic inside.
void fuse_qdq_add(ir::Graph& g, const Log& log) {
  auto prod = g.producers();
  auto cons = g.consumers();
  int fused = 0;
  const size_t count = g.nodes.size();
  for (size_t ai = 0; ai < count; ++ai) {
    ir::Node& add = g.nodes[ai];
    if (add.dead || add.op != "Add" || add.inputs.size() != 2 || add.outputs.size() != 1) continue;
    ir::Node* da = producer_of(g, prod, add.inputs[0], "DequantizeLinear");
    ir::Node* db = producer_of(g, prod, add.inputs[1], "DequantizeLinear");
    if (!da || !db || !per_tensor(g, *da) || !per_tensor(g, *db)) continue;
    const ir::Value& va = g.values[size_t(da->inputs[0])];
    const ir::Value& vb = g.values[size_t(db->inputs[0])];
    auto is8 = [](DType t) { return t == DType::u8 || t == DType::i8; };
    if (!is8(va.dtype) || !is8(vb.dtype) || !va.shape_known || !vb.shape_known ||
        va.shape != vb.shape)
      continue;
    Attrs act_attrs;
    int y = add.outputs[0];
    ir::Node* act = sole_activation(g, prod, cons, y, act_attrs);
    if (act) y = act->outputs[0];
    ir::Node* q = sole_reader(g, cons, y, "QuantizeLinear");
    if (!q || !per_tensor(g, *q) || q->outputs.size() != 1 || q->attrs.i("output_dtype", 0) != 0)
      continue;
    ir::Node n;
    n.name = add.name;
    n.op = "shoal.QLinearAdd";
    n.attrs = act_attrs;
    n.attrs.set("shoal_precision", std::string("int8"));
    n.inputs = {da->inputs[0], da->inputs[1], da->inputs[2], db->inputs[0],
                db->inputs[1], db->inputs[2], q->inputs[1],  q->inputs[2]};
    n.outputs = q->outputs;
    add.dead = true;
    if (act) act->dead = true;
    q->dead = true;
    g.nodes.push_back(std::move(n));
    ++fused;
  }
  g.compact();
  g.sort();
  if (log)
    log("fused " + std::to_string(fused) +
        " Add nodes with their QDQ nodes into int8 shoal.QLinearAdd");
}

void fuse_qdq(ir::Graph& g, const Log& log) {
  auto prod = g.producers();
  auto cons = g.consumers();
  int fused = 0, convs = 0, matmuls = 0;
  const size_t count = g.nodes.size();
  for (size_t ci = 0; ci < count; ++ci) {
    ir::Node& conv = g.nodes[ci];
    if (!conv.dead && (conv.op == "Gemm" || conv.op == "MatMul")) {
      matmuls += fuse_matmul(g, prod, cons, conv);
      continue;
    }
    if (conv.dead || conv.op != "Conv" || conv.inputs.size() < 2 || conv.inputs.size() > 3 ||
        conv.outputs.size() != 1)
      continue;
    ++convs;
    // The quantized input, weight and bias.
    ir::Node* dx = producer_of(g, prod, conv.inputs[0], "DequantizeLinear");
    ir::Node* dw = producer_of(g, prod, conv.inputs[1], "DequantizeLinear");
    if (!dx || !dw || !per_tensor(g, *dx)) continue;
    const HostTensor* wq = constant(g, input(*dw, 0));
    const HostTensor* ws = constant(g, input(*dw, 1));
    const HostTensor* wz = constant(g, input(*dw, 2));
    if (!wq || !ws || wq->dtype() != DType::i8 || ws->dtype() != DType::f32 || wq->shape().empty())
      continue;
    const int64_t m = wq->shape()[0];
    if (ws->numel() != 1 && !(ws->numel() == m && dw->attrs.i("axis", 1) == 0)) continue;
    if ((input(*dw, 2) >= 0 && !wz) || !all_zero(wz)) continue;
    const float xs = float(constant(g, dx->inputs[1])->float_at(0));
    int bq = -1;
    if (input(conv, 2) >= 0 && (bq = int32_bias(g, prod, conv.inputs[2], xs, *ws, m)) < 0) continue;
    // The output: [Relu | Clip] then a per-tensor QuantizeLinear.
    int y = conv.outputs[0];
    Attrs act_attrs;
    ir::Node* relu = sole_activation(g, prod, cons, y, act_attrs);
    if (relu) y = relu->outputs[0];
    ir::Node* q = sole_reader(g, cons, y, "QuantizeLinear");
    if (!q || !per_tensor(g, *q) || q->outputs.size() != 1) continue;
    if (q->attrs.i("output_dtype", 0) != 0) continue;

    ir::Node fusedn;
    fusedn.name = conv.name;
    fusedn.op = "QLinearConv";
    fusedn.attrs = conv.attrs;
    for (const auto& [key, value] : act_attrs.items()) fusedn.attrs.set(key, value);
    if (act_attrs.has("activation_alpha")) {
      // QLinearConv applies its activation to the requantized value, in
      // units of y_scale (before the zero point): Clip's bounds scale so.
      const float ys = float(constant(g, q->inputs[1])->float_at(0));
      fusedn.attrs.set("activation_alpha", act_attrs.f("activation_alpha", 0) / ys);
      fusedn.attrs.set("activation_beta", act_attrs.f("activation_beta", 0) / ys);
    }
    fusedn.attrs.set("shoal_precision", std::string("int8"));  // for plans and inspect
    int wz_id = input(*dw, 2);  // QLinearConv needs a weight zero point
    if (wz_id < 0) wz_id = add_constant(g, conv.name + "_w_zero_point", HostTensor(DType::i8, {}));
    fusedn.inputs = {dx->inputs[0], dx->inputs[1], dx->inputs[2], dw->inputs[0],
                     dw->inputs[1], wz_id,         q->inputs[1],  q->inputs[2]};
    if (bq >= 0) fusedn.inputs.push_back(bq);
    fusedn.outputs = q->outputs;
    conv.dead = true;
    if (relu) relu->dead = true;
    q->dead = true;
    g.nodes.push_back(std::move(fusedn));
    ++fused;
  }
  g.compact();
  g.sort();
  if (log)
    log("fused " + std::to_string(fused) + " of " + std::to_string(convs) +
        " Conv nodes with their QDQ nodes into int8 QLinearConv, " + std::to_string(matmuls) +
        " Gemm/MatMul nodes into int8 shoal.QMatMul");
}

}  // namespace shoal::passes
