#include "compiler/emit.hpp"

#include <algorithm>
#include <cstring>
#include <map>

#include "compiler/memory_plan.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::compiler {
namespace {

/// Ops whose output is their input reinterpreted (OpSpec::view): they share
/// its buffer.
bool is_view_op(const std::string& op) {
  const ops::OpSpec* spec = ops::find_op(op);
  return spec && spec->view;
}

void check_runtime_dtypes(const ir::Graph& g) {
  for (int v : g.inputs)
    if (g.values[size_t(v)].dtype != DType::f32)
      throw Error(ErrorKind::unsupported, "input '" + g.values[size_t(v)].name + "' is " +
                                              dtype_name(g.values[size_t(v)].dtype) +
                                              "; shoal programs take float32 inputs");
  for (const auto& n : g.nodes) {
    const ops::OpSpec* spec = ops::find_op(n.op);
    auto check = [&](int v) {
      if (v < 0 || g.values[size_t(v)].is_const()) return;
      const DType t = g.values[size_t(v)].dtype;
      for (DType ok : spec->dtypes)
        if (ok == t) return;
      throw Error(ErrorKind::unsupported, g.describe(n) + ": tensor '" + g.values[size_t(v)].name +
                                              "' is " + dtype_name(t) +
                                              " at run time, which this op does not support there");
    };
    for (int v : n.inputs) check(v);
    for (int v : n.outputs) check(v);
  }
}

}  // namespace

double node_flops(const ir::Graph& g, const ir::Node& n) {
  auto numel = [&](int v) { return v < 0 ? 0.0 : double(shape_numel(g.values[size_t(v)].shape)); };
  const double out = numel(n.outputs[0]);
  if (n.op == "Conv" && n.inputs.size() > 1) {
    const Shape& w = g.values[size_t(n.inputs[1])].shape;  // [M, C/g, k...]
    double per = 1;
    for (size_t i = 1; i < w.size(); ++i) per *= double(w[i]);
    return 2 * out * per;
  }
  if (n.op == "ConvTranspose" && n.inputs.size() > 1) {
    const Shape& w = g.values[size_t(n.inputs[1])].shape;  // [C, M/g, k...]
    return 2 * numel(n.inputs[0]) * double(shape_numel(w)) / double(w[0]);
  }
  if (n.op == "Gemm" || n.op == "MatMul") {
    const Shape& a = g.values[size_t(n.inputs[0])].shape;
    int64_t k = a.empty() ? 1 : a.back();
    if (n.op == "Gemm" && n.attrs.i("transA", 0)) k = a[0];
    return 2 * out * double(k);
  }
  return out;
}

void emit_program(const ir::Graph& g, program::ProgramData& p, const passes::Log& log) {
  check_runtime_dtypes(g);
  const int steps = int(g.nodes.size());
  // Buffers: one per run-time value, except views that share their source's.
  std::vector<int> buffer_of(g.values.size(), -1);
  std::vector<Buffer> buffers;
  auto new_buffer = [&](int v, int step) {
    const auto& val = g.values[size_t(v)];
    buffers.push_back({uint64_t(shape_numel(val.shape)) * dtype_size(val.dtype), step, step, 0});
    buffer_of[size_t(v)] = int(buffers.size()) - 1;
  };
  // The last step reading each value or a view of it (graph outputs: past
  // the end), keyed by the value whose buffer it is.
  std::vector<int> root(g.values.size()), last_read(g.values.size(), -1);
  for (size_t v = 0; v < root.size(); ++v) root[v] = int(v);
  for (const ir::Node& n : g.nodes)
    if (is_view_op(n.op) && !n.inputs.empty() && n.inputs[0] >= 0 && !n.outputs.empty() &&
        n.outputs[0] >= 0)
      root[size_t(n.outputs[0])] = root[size_t(n.inputs[0])];
  auto read_at = [&](int v, int step) {
    int& last = last_read[size_t(root[size_t(v)])];
    last = std::max(last, step);
  };
  for (int s = 0; s < steps; ++s)
    for (int v : g.nodes[size_t(s)].inputs)
      if (v >= 0) read_at(v, s);
  for (int v : g.outputs) read_at(v, steps);
  // A convolution adding a residual that dies with it writes its output over
  // the residual (same bytes and layout): the sum then needs no copy, which
  // matters once a stack of samples no longer fits in cache.
  auto in_place_residual = [&](const ir::Node& n, int s) -> int {
    if (n.op != "Conv" || n.inputs.size() < 4 || n.outputs.empty()) return -1;
    const int r = n.inputs[3], y = n.outputs[0];
    if (r < 0 || y < 0 || buffer_of[size_t(r)] < 0 || last_read[size_t(root[size_t(r)])] != s)
      return -1;
    const auto &rv = g.values[size_t(r)], &yv = g.values[size_t(y)];
    if (rv.shape != yv.shape || rv.dtype != yv.dtype || rv.channels_last != yv.channels_last)
      return -1;
    for (size_t i = 0; i < n.inputs.size(); ++i)  // nor read it as another operand
      if (i != 3 && n.inputs[i] >= 0 && buffer_of[size_t(n.inputs[i])] == buffer_of[size_t(r)])
        return -1;
    // Graph inputs are copied into the arena on every run: fine to overwrite.
    return buffer_of[size_t(r)];
  };
  for (int v : g.inputs) new_buffer(v, -1);
  for (int s = 0; s < steps; ++s) {
    const ir::Node& n = g.nodes[size_t(s)];
    for (int v : n.inputs)
      if (v >= 0 && buffer_of[size_t(v)] >= 0) buffers[size_t(buffer_of[size_t(v)])].last = s;
    const int src = n.inputs.empty() ? -1 : n.inputs[0];
    const int shared = in_place_residual(n, s);
    for (int v : n.outputs) {
      if (v < 0) continue;
      if (is_view_op(n.op) && src >= 0 && buffer_of[size_t(src)] >= 0 && v == n.outputs[0]) {
        buffer_of[size_t(v)] = buffer_of[size_t(src)];
        buffers[size_t(buffer_of[size_t(v)])].last = s;
      } else if (shared >= 0 && v == n.outputs[0]) {
        buffer_of[size_t(v)] = shared;
        buffers[size_t(shared)].last = s;
      } else {
        new_buffer(v, s);
      }
    }
  }
  for (int v : g.outputs)
    if (buffer_of[size_t(v)] >= 0) buffers[size_t(buffer_of[size_t(v)])].last = steps;
  p.arena_bytes = plan_arena(buffers, 64);

  // Tensors: run-time values in the arena, constants in the weight section.
  std::map<int, int32_t> tensor_of;
  std::vector<uint8_t> weights;
  auto tensor_id = [&](int v) -> int32_t {
    if (v < 0) return -1;
    auto it = tensor_of.find(v);
    if (it != tensor_of.end()) return it->second;
    const auto& val = g.values[size_t(v)];
    program::TensorDesc d;
    d.name = val.name;
    d.dtype = val.dtype;
    d.shape = val.shape;
    d.bytes = uint64_t(shape_numel(val.shape)) * dtype_size(val.dtype);
    if (val.channels_last) d.layout = program::Layout::channels_last;
    if (val.is_const()) {
      d.storage = program::Storage::weight;
      d.offset = (weights.size() + program::kWeightAlign - 1) / program::kWeightAlign *
                 program::kWeightAlign;
      weights.resize(d.offset + d.bytes);
      if (d.bytes) std::memcpy(weights.data() + d.offset, val.constant->data(), d.bytes);
    } else {
      if (buffer_of[size_t(v)] < 0)
        throw Error(ErrorKind::internal, "value '" + val.name + "' has no buffer");
      d.storage = program::Storage::activation;
      d.offset = buffers[size_t(buffer_of[size_t(v)])].offset;
    }
    p.tensors.push_back(std::move(d));
    return tensor_of[v] = int32_t(p.tensors.size()) - 1;
  };
  for (int v : g.inputs) p.inputs.push_back(tensor_id(v));
  for (const auto& n : g.nodes) {
    program::Instruction ins;
    ins.op = n.op;
    ins.name = n.name;
    ins.attrs = n.attrs;
    for (int v : n.inputs) ins.inputs.push_back(tensor_id(v));
    for (int v : n.outputs) ins.outputs.push_back(tensor_id(v));
    ins.flops = node_flops(g, n);
    p.instructions.push_back(std::move(ins));
  }
  for (int v : g.outputs) p.outputs.push_back(tensor_id(v));
  p.owned_weights = std::move(weights);
  p.weights = p.owned_weights.data();
  p.weights_bytes = p.owned_weights.size();
  if (log)
    log("planned the arena: " + std::to_string(p.arena_bytes) + " bytes for " +
        std::to_string(buffers.size()) + " buffers; weights " + std::to_string(p.weights_bytes) +
        " bytes");
}

}  // namespace shoal::compiler
