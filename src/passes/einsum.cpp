// lower_einsum: a two-operand float32 Einsum that is a (batched) matrix
// product becomes Transpose/Reshape views around one MatMul, which runs on
// oneDNN's matmul instead of the reference kernel. Each label (letter, or a
// dim under "...") is batch (in A, B and the output), contracted (A and B),
// free in A (A and the output) or free in B (B and the output); then
//
//   A -> Transpose [batch, freeA, contracted] -> Reshape [batch', M, K]
//   B -> Transpose [batch, contracted, freeB] -> Reshape [batch', K, N]
//   MatMul -> Reshape [batch, freeA, freeB] -> Transpose to the output order
//
// with identity Transposes and Reshapes left out, and those of a constant
// operand computed here. batch' is the first batch dim and the others
// merged (oneDNN's matmul takes up to 4 dims); without batch dims A keeps
// its first free dim, [freeA0, rest, K] x [K, N] (a Linear layer over
// samples). A Reshape that keeps dim 0 writes 0 there (ONNX: copy it), so
// that samples still stack through it. Einsums with a letter repeated in a
// term, a letter summed away within one operand, "..." dims that broadcast,
// or batch dims only (an elementwise product) stay and run the reference
// kernel.
#include "reference/einsum.hpp"

#include <algorithm>

#include "ops/op_table.hpp"
#include "passes/passes.hpp"
#include "shoal/error.hpp"

namespace shoal::passes {
namespace {

/// The MatMul form of one Einsum node: which labels go where.
struct Plan {
  std::vector<int> batch, free_a, free_b, contracted;  // labels
  std::vector<int64_t> perm_a, perm_b;                 // to [batch, freeA, K] / [batch, K, freeB]
  Shape a2, b2, y2;                                    // MatMul's operand and result shapes
  Shape y3;                                            // [batch, freeA, freeB]
  std::vector<int64_t> perm_y;                         // y3 -> the output
};

int64_t product(const ref::EinsumDims& d, const std::vector<int>& labels, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < labels.size(); ++i) p *= d.sizes[size_t(labels[i])];
  return p;
}

/// The positions in `have` of the labels `want` (each present once).
std::vector<int64_t> positions(const std::vector<int>& have, const std::vector<int>& want) {
  std::vector<int64_t> p;
  for (int l : want) p.push_back(std::find(have.begin(), have.end(), l) - have.begin());
  return p;
}

bool identity(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != int64_t(i)) return false;
  return true;
}

/// Plans the lowering, or returns false when the Einsum is no matrix product.
bool plan(const ref::EinsumDims& d, const Shape& sa, const Shape& sb, Plan& p) {
  const std::vector<int>&a = d.inputs[0], &b = d.inputs[1], &out = d.output;
  auto in = [](const std::vector<int>& ls, int l) { return std::count(ls.begin(), ls.end(), l); };
  // Every label once per term; no "..." dim broadcast (size 1 against more).
  for (size_t j = 0; j < a.size(); ++j)
    if (in(a, a[j]) != 1 || sa[j] != d.sizes[size_t(a[j])]) return false;
  for (size_t j = 0; j < b.size(); ++j)
    if (in(b, b[j]) != 1 || sb[j] != d.sizes[size_t(b[j])]) return false;
  for (int l : out) {
    if (in(a, l) && in(b, l))
      p.batch.push_back(l);
    else if (in(a, l))
      p.free_a.push_back(l);
    else if (in(b, l))
      p.free_b.push_back(l);
    else
      return false;
  }
  for (int l : a) {
    if (in(out, l)) continue;
    if (!in(b, l)) return false;  // summed within A alone
    p.contracted.push_back(l);
  }
  for (int l : b)
    if (!in(out, l) && !in(a, l)) return false;  // summed within B alone
  // Batch dims only: an elementwise product, no matrix product.
  if (p.contracted.empty() && p.free_a.empty() && p.free_b.empty()) return false;
  std::vector<int> order_a = p.batch, order_b = p.batch, y3 = p.batch;
  order_a.insert(order_a.end(), p.free_a.begin(), p.free_a.end());
  order_a.insert(order_a.end(), p.contracted.begin(), p.contracted.end());
  order_b.insert(order_b.end(), p.contracted.begin(), p.contracted.end());
  order_b.insert(order_b.end(), p.free_b.begin(), p.free_b.end());
  y3.insert(y3.end(), p.free_a.begin(), p.free_a.end());
  y3.insert(y3.end(), p.free_b.begin(), p.free_b.end());
  p.perm_a = positions(a, order_a);
  p.perm_b = positions(b, order_b);
  p.perm_y = positions(y3, out);
  for (int l : y3) p.y3.push_back(d.sizes[size_t(l)]);
  const int64_t m = product(d, p.free_a), k = product(d, p.contracted), n = product(d, p.free_b);
  if (!p.batch.empty()) {
    Shape lead = {d.sizes[size_t(p.batch[0])]};
    if (p.batch.size() > 1) lead.push_back(product(d, p.batch, 1));
    p.a2 = p.b2 = p.y2 = lead;
    p.a2.insert(p.a2.end(), {m, k});
    p.b2.insert(p.b2.end(), {k, n});
    p.y2.insert(p.y2.end(), {m, n});
  } else {
    if (p.free_a.empty()) {
      p.a2 = {1};
    } else {
      p.a2 = {d.sizes[size_t(p.free_a[0])]};
      if (p.free_a.size() > 1) p.a2.push_back(product(d, p.free_a, 1));
    }
    p.y2 = p.a2;
    p.y2.push_back(n);
    p.a2.push_back(k);
    p.b2 = {k, n};
  }
  return true;
}

/// Adds the nodes of one lowering after the graph's nodes.
class Emitter {
 public:
  Emitter(ir::Graph& g, std::string base) : g_(g), base_(std::move(base)) {}

  int transpose(int x, const std::vector<int64_t>& perm, int out = -1) {
    const ir::Value& v = g_.values[size_t(x)];
    Shape shape;
    for (int64_t p : perm) shape.push_back(v.shape[size_t(p)]);
    Attrs attrs;
    attrs.set("perm", perm);
    if (v.is_const() && out < 0) {  // computed now, by the reference kernel
      HostTensor t(v.dtype, shape);
      const TensorRef src = v.constant->ref(), dst = t.ref();
      ops::find_op("Transpose")->reference(attrs, {&src, 1}, {&dst, 1});
      return add_constant(g_, name("transposed"), std::move(t));
    }
    return add("Transpose", {x}, shape, std::move(attrs), out);
  }

  /// keep0: dim 0 of x and of the result are the same label (written as 0).
  int reshape(int x, const Shape& shape, bool keep0, int out = -1) {
    const ir::Value& v = g_.values[size_t(x)];
    if (v.is_const() && out < 0) {
      HostTensor t = *v.constant;
      t.reshape(shape);
      return add_constant(g_, name("reshaped"), std::move(t));
    }
    HostTensor target(DType::i64, {int64_t(shape.size())});
    for (size_t i = 0; i < shape.size(); ++i) target.as<int64_t>()[i] = shape[i];
    if (keep0 && !shape.empty()) target.as<int64_t>()[0] = 0;
    const int t = add_constant(g_, name("shape"), std::move(target));
    return add("Reshape", {x, t}, shape, Attrs{}, out);
  }

  int matmul(int a, int b, const Shape& shape, int out) {
    return add("MatMul", {a, b}, shape, Attrs{}, out);
  }

  std::vector<ir::Node> nodes;

 private:
  std::string name(const std::string& what) {
    return base_ + "/shoal_einsum_" + what + std::to_string(count_++);
  }

  /// A node writing `out`, or a new value of `shape` when out < 0.
  int add(const std::string& op, std::vector<int> inputs, const Shape& shape, Attrs attrs,
          int out) {
    ir::Node n;
    n.name = name(op);
    n.op = op;
    n.inputs = std::move(inputs);
    if (out < 0) out = add_f32_value(g_, n.name, shape);
    n.outputs = {out};
    n.attrs = std::move(attrs);
    nodes.push_back(std::move(n));
    return out;
  }

  ir::Graph& g_;
  std::string base_;
  int count_ = 0;
};

void lower(ir::Graph& g, const ir::Node& einsum, const Plan& p, std::vector<ir::Node>& added) {
  Emitter e(g, einsum.name);
  const bool batched = !p.batch.empty();
  int a = einsum.inputs[0], b = einsum.inputs[1];
  if (!identity(p.perm_a)) a = e.transpose(a, p.perm_a);
  if (g.values[size_t(a)].shape != p.a2) a = e.reshape(a, p.a2, batched || !p.free_a.empty());
  if (!identity(p.perm_b)) b = e.transpose(b, p.perm_b);
  if (g.values[size_t(b)].shape != p.b2) b = e.reshape(b, p.b2, batched);
  const int y = einsum.outputs[0];
  const bool reshape = p.y2 != p.y3, transpose = !identity(p.perm_y);
  int v = e.matmul(a, b, p.y2, reshape || transpose ? -1 : y);
  if (reshape) v = e.reshape(v, p.y3, batched || !p.free_a.empty(), transpose ? -1 : y);
  if (transpose) e.transpose(v, p.perm_y, y);
  for (ir::Node& n : e.nodes) added.push_back(std::move(n));
}

}  // namespace

void lower_einsum(ir::Graph& g, const Log& log) {
  int lowered = 0, kept = 0;
  std::vector<ir::Node> added;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].dead || g.nodes[i].op != "Einsum") continue;
    const ir::Node einsum = g.nodes[i];  // a copy: values are added below
    ++kept;
    if (einsum.inputs.size() != 2 || einsum.outputs.size() != 1 || einsum.inputs[0] < 0 ||
        einsum.inputs[1] < 0)
      continue;
    const ir::Value &va = g.values[size_t(einsum.inputs[0])],
                    &vb = g.values[size_t(einsum.inputs[1])];
    if (va.dtype != DType::f32 || vb.dtype != DType::f32) continue;
    ref::EinsumDims d;
    try {
      const std::vector<Shape> shapes = {va.shape, vb.shape};
      d = ref::resolve_einsum(ref::parse_einsum(einsum.attrs.s("equation", ""), 2), shapes);
    } catch (const Error& err) {
      throw Error(err.kind(), g.describe(einsum) + ": " + err.what());
    }
    Plan p;
    if (!plan(d, va.shape, vb.shape, p)) continue;
    lower(g, einsum, p, added);
    g.nodes[i].dead = true;
    ++lowered;
    --kept;
  }
  for (ir::Node& n : added) g.nodes.push_back(std::move(n));
  if (lowered) {
    g.compact();
    g.sort();
  }
  if (log)
    log("lowered " + std::to_string(lowered) + " Einsum to MatMul (" + std::to_string(kept) +
        " left to the reference kernel)");
}

}  // namespace shoal::passes
