// split_concat_conv: a channel Concat read only by a 1x1 convolution (a
// SqueezeNet fire module feeding the next one's squeeze layer) is not
// materialized. conv1x1(concat(A, B), [Wa Wb]) = conv1x1(A, Wa) +
// conv1x1(B, Wb): each part gets its slice of the weights, and the parts are
// summed by Add nodes that fuse_residual_add turns into sum post-ops. A
// MaxPool between the two is moved before the Concat first (pooling works
// channel by channel). Applied where the convolution's output is smaller than
// the concat's, so the partial sums move fewer bytes than the copy did.
#include <cstring>
#include <string>

#include "passes/passes.hpp"
#include "reference/geometry.hpp"

namespace shoal::passes {
namespace {

bool all_ones(const std::vector<int64_t>& v) {
  for (int64_t x : v)
    if (x != 1) return false;
  return true;
}

bool all_zeros(const std::vector<int64_t>& v) {
  for (int64_t x : v)
    if (x != 0) return false;
  return true;
}

/// The only live node reading `v`, or -1 (also when `v` is a graph output).
int sole_consumer(const ir::Graph& g, const std::vector<std::vector<int>>& cons, int v) {
  if (v < 0 || is_graph_output(g, v) || cons[size_t(v)].size() != 1) return -1;
  const int c = cons[size_t(v)][0];
  return g.nodes[size_t(c)].dead ? -1 : c;
}

/// A channel Concat of f32 4-D activations.
bool channel_concat(const ir::Graph& g, const ir::Node& n) {
  if (n.dead || n.op != "Concat" || n.inputs.size() < 2 || n.outputs.size() != 1) return false;
  const int64_t axis = n.attrs.i("axis", 1);
  if (axis != 1 && axis != -3) return false;
  for (int v : n.inputs) {
    if (v < 0) return false;
    const ir::Value& x = g.values[size_t(v)];
    if (x.is_const() || x.dtype != DType::f32 || x.shape.size() != 4 || !x.shape_known)
      return false;
  }
  return true;
}

/// A plain 1x1 convolution (no stride, padding, dilation or groups) with
/// constant f32 weights and bias, whose output is smaller than its input.
bool splittable_conv(const ir::Graph& g, const ir::Node& n, int input) {
  if (n.dead || n.op != "Conv" || n.inputs.size() < 2 || n.inputs.size() > 3 ||
      n.inputs[0] != input || n.outputs.size() != 1 || n.attrs.has("activation"))
    return false;
  const ir::Value& w = g.values[size_t(n.inputs[1])];
  if (!w.is_const() || w.dtype != DType::f32 || w.shape.size() != 4 || w.shape[2] != 1 ||
      w.shape[3] != 1 || w.constant->shape() != w.shape || w.constant->dtype() != DType::f32)
    return false;
  if (n.inputs.size() == 3 && n.inputs[2] >= 0) {
    const ir::Value& b = g.values[size_t(n.inputs[2])];
    if (!b.is_const() || b.dtype != DType::f32) return false;
  }
  if (n.attrs.i("group", 1) != 1 || n.attrs.s("auto_pad", "NOTSET") != "NOTSET" ||
      !all_ones(n.attrs.ints("strides", {1, 1})) || !all_ones(n.attrs.ints("dilations", {1, 1})) ||
      !all_zeros(n.attrs.ints("pads", {0, 0, 0, 0})))
    return false;
  const Shape &x = g.values[size_t(input)].shape, &y = g.values[size_t(n.outputs[0])].shape;
  return x.size() == 4 && y.size() == 4 && w.shape[1] == x[1] && y[1] < x[1];
}

/// A MaxPool (channel by channel) whose one output is `input` pooled.
bool channelwise_pool(const ir::Node& n, int input) {
  return !n.dead && n.op == "MaxPool" && n.inputs.size() == 1 && n.inputs[0] == input &&
         n.outputs.size() == 1;
}

/// Columns [c0, c0 + c) of a [M, C, 1, 1] weight, as a constant value.
int weight_slice(ir::Graph& g, const ir::Value& w, int64_t c0, int64_t c, const std::string& name) {
  const int64_t m = w.shape[0], total = w.shape[1];
  HostTensor part(DType::f32, {m, c, 1, 1});
  const float* src = w.constant->as<float>();
  float* dst = part.as<float>();
  for (int64_t o = 0; o < m; ++o)
    std::memcpy(dst + o * c, src + o * total + c0, size_t(c) * sizeof(float));
  return add_constant(g, name, std::move(part));
}

}  // namespace

void split_concat_conv(ir::Graph& g, const Log& log) {
  int split = 0, pools = 0;
  auto cons = g.consumers();  // recomputed after each rewrite
  for (size_t ci = 0; ci < g.nodes.size(); ++ci) {
    if (!channel_concat(g, g.nodes[ci])) continue;
    const int cat_out = g.nodes[ci].outputs[0];
    int user = sole_consumer(g, cons, cat_out);
    if (user < 0) continue;
    // Concat -> MaxPool -> Conv: pool each part (only if the conv splits).
    int pool = -1;
    if (channelwise_pool(g.nodes[size_t(user)], cat_out)) {
      pool = user;
      user = sole_consumer(g, cons, g.nodes[size_t(pool)].outputs[0]);
      if (user < 0) continue;
    }
    const int conv_in = pool < 0 ? cat_out : g.nodes[size_t(pool)].outputs[0];
    if (!splittable_conv(g, g.nodes[size_t(user)], conv_in)) continue;
    int64_t channels = 0;  // the parts must add up to the weights' input channels
    for (int v : g.nodes[ci].inputs) channels += g.values[size_t(v)].shape[1];
    if (channels != g.values[size_t(g.nodes[size_t(user)].inputs[1])].shape[1]) continue;

    const std::vector<int> parts_in = g.nodes[ci].inputs;
    const ir::Node conv = g.nodes[size_t(user)];  // copies: g.nodes grows below
    const ir::Value w = g.values[size_t(conv.inputs[1])];
    const int bias = conv.inputs.size() == 3 ? conv.inputs[2] : -1;
    const Shape y_shape = g.values[size_t(conv.outputs[0])].shape;
    std::vector<int> parts;
    for (size_t k = 0; k < parts_in.size(); ++k) {
      int v = parts_in[k];
      if (pool >= 0) {  // MaxPool of this part: the pooled shape with its channels
        const ir::Node p = g.nodes[size_t(pool)];
        Shape s = g.values[size_t(p.outputs[0])].shape;
        s[1] = g.values[size_t(v)].shape[1];
        const int out = add_f32_value(g, p.name + "/part" + std::to_string(k), s);
        ir::Node q = p;
        q.name = p.name + "/part" + std::to_string(k);
        q.inputs = {v};
        q.outputs = {out};
        g.nodes.push_back(q);
        v = out;
      }
      parts.push_back(v);
    }
    int64_t c0 = 0;
    int sum = -1;
    for (size_t k = 0; k < parts.size(); ++k) {
      const int64_t c = g.values[size_t(parts[k])].shape[1];
      const std::string name = conv.name + "/part" + std::to_string(k);
      ir::Node part = conv;
      part.name = name;
      part.inputs = {parts[k], weight_slice(g, w, c0, c, name + "/W")};
      if (k == 0 && bias >= 0) part.inputs.push_back(bias);
      const bool last = k + 1 == parts.size();
      const int y = add_f32_value(g, name, y_shape);
      part.outputs = {y};
      g.nodes.push_back(part);
      if (k == 0) {
        sum = y;
      } else {  // Add(part, sum): fuse_residual_add makes it part's sum post-op
        ir::Node add;
        add.name = name + "/sum";
        add.op = "Add";
        add.inputs = {y, sum};
        add.outputs = {last ? conv.outputs[0] : add_f32_value(g, add.name, y_shape)};
        sum = add.outputs[0];
        g.nodes.push_back(add);
      }
      c0 += c;
    }
    g.nodes[ci].dead = true;
    g.nodes[size_t(user)].dead = true;
    if (pool >= 0) {
      g.nodes[size_t(pool)].dead = true;
      ++pools;
    }
    ++split;
    cons = g.consumers();
  }
  if (!split) return;
  g.compact();
  g.sort();
  if (log)
    log("split " + std::to_string(split) + " Concat -> 1x1 Conv pairs into partial convolutions (" +
        std::to_string(pools) + " through a MaxPool)");
}

}  // namespace shoal::passes
