// fuse_qdq_lookup: int8 ops from float32 functions of one 8-bit tensor.
//
// In a QDQ graph, a float tensor computed from DequantizeLinear(x) (per
// tensor, x uint8/int8) by elementwise ops whose other operands are scalar
// constants (SiLU as Sigmoid and Mul, HardSwish, Clip, Tanh, ...) takes one
// value per byte of x: 256 at most. Such a function is evaluated here, on
// all 256 bytes, by the ops' own reference kernels into a table, and the ops
// reading it become table lookups on x:
//
//   f(DQ(x)) -> QuantizeLinear                   -> shoal.QLinearLookup
//   GlobalAveragePool(f(DQ(x))) -> QuantizeLinear -> shoal.QLinearGlobalAveragePool
//   AveragePool(f(DQ(x))) -> QuantizeLinear       -> shoal.QLinearAveragePool
//   Mul(f(DQ(a)), g(DQ(b))) -> QuantizeLinear     -> shoal.QLinearMul
//
// (a Flatten or other view between the pool and its QuantizeLinear then
// runs on the pool's 8-bit result), DQ(x) -> MaxPool -> QuantizeLinear
// becomes MaxPool on x's bytes [-> shoal.QLinearLookup requantizing], and
// Concat(DQ(x1), DQ(x2), ...) -> QuantizeLinear a Concat of the bytes, each
// input [requantized by a shoal.QLinearLookup].
// (EfficientNet: SiLU and the squeeze-excitation's pool and channel scale.)
// The fused ops compute what the reference kernels compute on the unfused
// graph, bit for bit (reference/nn_qlookup.cpp). Nodes left without readers
// are removed by remove_dead_and_identity. Runs after infer_and_fold (it
// needs shapes and folded constants), before recognize_composites (which
// would make Sigmoid and Mul one shoal.Silu: fine too, but not needed).
#include <algorithm>
#include <map>
#include <set>

#include "ops/op_table.hpp"
#include "passes/passes.hpp"

namespace shoal::passes {
namespace {

const std::set<std::string> kUnary = {
    "Relu",     "LeakyRelu",  "Clip",       "Sigmoid", "Tanh",  "HardSigmoid", "HardSwish",
    "Elu",      "Selu",       "Celu",       "Erf",     "Exp",   "Log",         "Sqrt",
    "Neg",      "Abs",        "Floor",      "Ceil",    "Round", "Sign",        "Softplus",
    "Softsign", "Reciprocal", "shoal.Silu", "Gelu"};
const std::set<std::string> kViews = {"Flatten", "Reshape", "Squeeze", "Unsqueeze"};
const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"};

bool is8(DType t) { return t == DType::u8 || t == DType::i8; }

const HostTensor* constant(const ir::Graph& g, int v) {
  if (v < 0 || !g.values[size_t(v)].is_const()) return nullptr;
  return &*g.values[size_t(v)].constant;
}

bool scalar_f32(const ir::Graph& g, int v) {
  const HostTensor* t = constant(g, v);
  return t && t->dtype() == DType::f32 && t->numel() == 1;
}

/// A per-tensor DequantizeLinear of an 8-bit tensor into float32.
bool per_tensor_dq(const ir::Graph& g, const ir::Node& n) {
  if (n.op != "DequantizeLinear" || n.inputs.size() < 2 || n.inputs[0] < 0) return false;
  const ir::Value& x = g.values[size_t(n.inputs[0])];
  const HostTensor* z = n.inputs.size() > 2 ? constant(g, n.inputs[2]) : nullptr;
  if (n.inputs.size() > 2 && n.inputs[2] >= 0 && (!z || z->numel() != 1 || z->dtype() != x.dtype))
    return false;
  return is8(x.dtype) && x.shape_known && scalar_f32(g, n.inputs[1]) &&
         n.attrs.i("block_size", 0) == 0;
}

/// A per-tensor QuantizeLinear to uint8/int8.
bool per_tensor_q(const ir::Graph& g, const ir::Node& n) {
  if (n.dead || n.op != "QuantizeLinear" || n.inputs.size() != 3 || n.outputs.size() != 1)
    return false;
  const HostTensor* z = constant(g, n.inputs[2]);
  return scalar_f32(g, n.inputs[1]) && z && z->numel() == 1 && is8(z->dtype()) &&
         n.attrs.i("output_dtype", 0) == 0 && n.attrs.i("block_size", 0) == 0;
}

/// A float32 value computed elementwise from one 8-bit tensor `src`: the
/// nodes computing it (the DequantizeLinear among them).
struct Fn {
  int src = -1;
  std::vector<int> nodes;
};

class Matcher {
 public:
  explicit Matcher(ir::Graph& g) : g_(g), prod_(g.producers()) {}

  /// Whether `v` is such a function; fills fn.
  bool function_of_one(int v, Fn& fn, int depth = 0) {
    if (v < 0 || depth > 16 || prod_[size_t(v)] < 0) return false;
    const int ni = prod_[size_t(v)];
    const ir::Node& n = g_.nodes[size_t(ni)];
    const ir::Value& out = g_.values[size_t(v)];
    if (n.dead || n.outputs.size() != 1 || out.dtype != DType::f32 || !out.shape_known)
      return false;
    if (n.op == "DequantizeLinear") {
      if (!per_tensor_dq(g_, n) || (fn.src >= 0 && fn.src != n.inputs[0])) return false;
      fn.src = n.inputs[0];
    } else if (kUnary.count(n.op)) {
      if (n.inputs.empty()) return false;
      for (size_t i = 1; i < n.inputs.size(); ++i)
        if (n.inputs[i] >= 0 && !scalar_f32(g_, n.inputs[i])) return false;
      if (!function_of_one(n.inputs[0], fn, depth + 1)) return false;
    } else if (kBinary.count(n.op)) {
      if (n.inputs.size() != 2) return false;
      int vars = 0;
      for (int in : n.inputs) {
        if (scalar_f32(g_, in)) continue;
        if (!function_of_one(in, fn, depth + 1)) return false;
        ++vars;
      }
      if (vars == 0) return false;
    } else {
      return false;
    }
    if (!ops::find_op(n.op) || out.shape != g_.values[size_t(fn.src)].shape) return false;
    fn.nodes.push_back(ni);
    return true;
  }

  /// The function's 256 values, one per byte of src, as the reference
  /// kernels compute them.
  HostTensor table(const Fn& fn, int v) {
    std::vector<int> order = fn.nodes;
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    const DType st = g_.values[size_t(fn.src)].dtype;
    HostTensor bytes(st, {256});
    for (int i = 0; i < 256; ++i) bytes.as<uint8_t>()[i] = uint8_t(i);
    std::map<int, HostTensor> vals;
    vals.emplace(fn.src, std::move(bytes));
    for (int ni : order) {
      const ir::Node& n = g_.nodes[size_t(ni)];
      const ops::OpSpec* spec = ops::find_op(n.op);
      std::vector<TensorRef> in;
      std::vector<ops::ValueInfo> info;
      for (int x : n.inputs) {
        if (x < 0) {
          in.push_back(TensorRef{});
          ops::ValueInfo vi;
          vi.present = false;
          info.push_back(vi);
          continue;
        }
        auto it = vals.find(x);
        const HostTensor& t = it != vals.end() ? it->second : *g_.values[size_t(x)].constant;
        in.push_back(t.ref());
        ops::ValueInfo vi;
        vi.dtype = t.dtype();
        vi.shape = t.shape();
        vi.constant = it != vals.end() ? nullptr : &t;
        info.push_back(vi);
      }
      std::vector<ops::TypeShape> ts = spec->infer(n.attrs, info);
      HostTensor r(ts.at(0).dtype, ts.at(0).shape);
      std::vector<TensorRef> out = {r.ref()};
      spec->reference(n.attrs, in, out);
      r.reshape({256});
      vals[n.outputs[0]] = std::move(r);
    }
    return std::move(vals.at(v));
  }

  /// Quantizes a float table as QuantizeLinear node q does.
  HostTensor quantized(const HostTensor& t, const ir::Node& q) {
    const HostTensor& z = *constant(g_, q.inputs[2]);
    HostTensor r(z.dtype(), {256});
    std::vector<TensorRef> in = {t.ref(), constant(g_, q.inputs[1])->ref(), z.ref()};
    std::vector<TensorRef> out = {r.ref()};
    ops::find_op("QuantizeLinear")->reference(q.attrs, in, out);
    return r;
  }

  int producer(int v) const { return v < 0 ? -1 : prod_[size_t(v)]; }

 private:
  ir::Graph& g_;
  std::vector<int> prod_;
};

}  // namespace

void fuse_qdq_lookup(ir::Graph& g, const Log& log) {
  auto cons = g.consumers();
  Matcher m(g);
  int lookups = 0, pools = 0, avgpools = 0, muls = 0, maxpools = 0, concats = 0;
  const size_t count = g.nodes.size();
  for (size_t qi = 0; qi < count; ++qi) {
    if (!per_tensor_q(g, g.nodes[qi])) continue;
    const int y = g.nodes[qi].inputs[0];
    if (y < 0 || cons[size_t(y)].size() != 1 || is_graph_output(g, y)) continue;
    int pi = m.producer(y);
    if (pi < 0) continue;
    // A view between the op and the QuantizeLinear (Flatten before a
    // classifier) runs after it, on the 8-bit result.
    int view = -1;
    if (kViews.count(g.nodes[size_t(pi)].op) && !g.nodes[size_t(pi)].inputs.empty()) {
      const int vin = g.nodes[size_t(pi)].inputs[0];
      const int gp = m.producer(vin);
      if (gp < 0 || g.nodes[size_t(gp)].op != "GlobalAveragePool" ||
          cons[size_t(vin)].size() != 1 || is_graph_output(g, vin))
        continue;
      view = pi;
      pi = gp;
    }
    ir::Node fused;
    Fn fn;
    const std::string pop = g.nodes[size_t(pi)].op;
    std::string tag = g.nodes[size_t(pi)].name;
    auto add_table = [&](HostTensor t, const std::string& what) {
      return add_constant(g, tag + "_" + what, std::move(t));
    };
    const ir::Node q = g.nodes[qi];  // copies: add_constant may grow g.values only
    if (m.function_of_one(y, fn)) {
      fused.op = "shoal.QLinearLookup";
      fused.inputs = {fn.src, add_table(m.quantized(m.table(fn, y), q), "table")};
      ++lookups;
    } else if (pop == "GlobalAveragePool") {
      const int x = g.nodes[size_t(pi)].inputs[0];
      Fn fx;
      if (!m.function_of_one(x, fx)) continue;
      fused.op = "shoal.QLinearGlobalAveragePool";
      fused.inputs = {fx.src, add_table(m.table(fx, x), "x_table"), q.inputs[1], q.inputs[2]};
      ++pools;
    } else if (pop == "AveragePool" && g.nodes[size_t(pi)].outputs.size() == 1) {
      const int x = g.nodes[size_t(pi)].inputs[0];
      Fn fx;
      if (!m.function_of_one(x, fx)) continue;
      fused.op = "shoal.QLinearAveragePool";
      fused.attrs = g.nodes[size_t(pi)].attrs;  // the window
      fused.inputs = {fx.src, add_table(m.table(fx, x), "x_table"), q.inputs[1], q.inputs[2]};
      ++avgpools;
    } else if (pop == "Mul" && g.nodes[size_t(pi)].inputs.size() == 2) {
      const int a = g.nodes[size_t(pi)].inputs[0], b = g.nodes[size_t(pi)].inputs[1];
      Fn fa, fb;
      if (!m.function_of_one(a, fa) || !m.function_of_one(b, fb)) continue;
      const int ta = add_table(m.table(fa, a), "a_table");
      const int tb = add_table(m.table(fb, b), "b_table");
      fused.op = "shoal.QLinearMul";
      fused.inputs = {fa.src, ta, fb.src, tb, q.inputs[1], q.inputs[2]};
      ++muls;
    } else if (pop == "Concat" && !g.nodes[size_t(pi)].attrs.has("affine_scale")) {
      // Concat of DequantizeLinear'd inputs -> Concat of their bytes, each
      // input requantized to the output's scale by a byte table where it
      // differs (the identity otherwise).
      ir::Node cat = g.nodes[size_t(pi)];
      const DType yt = constant(g, q.inputs[2])->dtype();
      std::vector<HostTensor> tables;
      std::vector<int> srcs;
      for (int in : cat.inputs) {
        Fn f;
        if (!m.function_of_one(in, f) || f.nodes.size() != 1 || g.values[size_t(f.src)].dtype != yt)
          break;
        tables.push_back(m.quantized(m.table(f, in), q));
        srcs.push_back(f.src);
      }
      if (srcs.size() != cat.inputs.size() || srcs.empty()) continue;
      for (size_t i = 0; i < srcs.size(); ++i) {
        bool identity = true;
        for (int b = 0; b < 256 && identity; ++b)
          identity = tables[i].as<uint8_t>()[b] == uint8_t(b);
        cat.inputs[i] = srcs[i];
        if (identity) continue;
        ir::Value r;
        r.name = tag + "_input" + std::to_string(i) + "_requantized";
        r.dtype = yt;
        r.shape = g.values[size_t(srcs[i])].shape;
        r.shape_known = true;
        ir::Node lut;
        lut.name = r.name;
        lut.op = "shoal.QLinearLookup";
        lut.attrs.set("shoal_precision", std::string("int8"));
        lut.inputs = {srcs[i], add_table(std::move(tables[i]), "table" + std::to_string(i))};
        lut.outputs = {g.add_value(std::move(r))};
        cat.inputs[i] = lut.outputs[0];
        g.nodes.push_back(std::move(lut));
        ++lookups;
      }
      cat.outputs = q.outputs;
      cat.attrs.set("shoal_precision", std::string("int8"));
      g.nodes[qi].dead = true;
      g.nodes.push_back(std::move(cat));
      ++concats;
      continue;
    } else if (pop == "MaxPool") {
      // Max commutes with the nondecreasing DequantizeLinear (scale > 0):
      // MaxPool on the bytes, then the byte table of DQ -> Q (none when
      // that is the identity: the same scale and zero point).
      const ir::Node& mp = g.nodes[size_t(pi)];
      const int x = mp.inputs[0];
      Fn fx;
      if ((mp.outputs.size() > 1 && mp.outputs[1] >= 0) || !m.function_of_one(x, fx) ||
          fx.nodes.size() != 1 ||
          constant(g, g.nodes[size_t(fx.nodes[0])].inputs[1])->float_at(0) <= 0)
        continue;
      HostTensor t = m.quantized(m.table(fx, x), q);
      bool identity = t.dtype() == g.values[size_t(fx.src)].dtype;
      for (int i = 0; i < 256 && identity; ++i) identity = t.as<uint8_t>()[i] == uint8_t(i);
      ir::Node pool = mp;
      pool.inputs[0] = fx.src;
      pool.outputs = q.outputs;
      pool.outputs.resize(1);
      pool.attrs.set("shoal_precision", std::string("int8"));
      g.nodes[qi].dead = true;
      ++maxpools;
      if (identity) {
        g.nodes.push_back(std::move(pool));
        continue;
      }
      ir::Value r;
      r.name = tag + "_bytes";
      r.dtype = g.values[size_t(fx.src)].dtype;
      r.shape = g.values[size_t(y)].shape;
      r.shape_known = true;
      pool.outputs = {g.add_value(std::move(r))};
      fused.op = "shoal.QLinearLookup";
      fused.inputs = {pool.outputs[0], add_table(std::move(t), "table")};
      g.nodes.push_back(std::move(pool));
      ++lookups;
    } else {
      continue;
    }
    fused.name = tag;
    fused.attrs.set("shoal_precision", std::string("int8"));
    fused.outputs = q.outputs;
    g.nodes[qi].dead = true;
    if (view >= 0) {  // fused -> an 8-bit value of the op's shape -> the view -> q's output
      ir::Node v = g.nodes[size_t(view)];
      ir::Value r;
      r.name = tag + "_quantized";
      r.dtype = g.values[size_t(q.outputs[0])].dtype;
      r.shape = g.values[size_t(v.inputs[0])].shape;
      r.shape_known = true;
      fused.outputs = {g.add_value(std::move(r))};
      v.inputs[0] = fused.outputs[0];
      v.outputs = q.outputs;
      g.nodes[size_t(view)].dead = true;
      g.nodes.push_back(std::move(fused));
      g.nodes.push_back(std::move(v));
      continue;
    }
    g.nodes.push_back(std::move(fused));
  }
  g.compact();
  g.sort();
  if (log)
    log("fused float32 functions of int8 tensors into " + std::to_string(lookups) +
        " shoal.QLinearLookup, " + std::to_string(pools) + " shoal.QLinearGlobalAveragePool, " +
        std::to_string(avgpools) + " shoal.QLinearAveragePool, " + std::to_string(muls) +
        " shoal.QLinearMul, " + std::to_string(maxpools) + " MaxPool and " +
        std::to_string(concats) + " Concat on 8-bit maps");
}

}  // namespace shoal::passes
