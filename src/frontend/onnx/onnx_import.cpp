#include "frontend/onnx/onnx_import.hpp"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <limits>
#include <set>
#include <sstream>
#include <unordered_map>

#include "frontend/onnx/opset_upgrade.hpp"
#include "frontend/onnx/tensor_proto.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::frontend {
namespace {

void log_line(const ImportOptions& o, const std::string& s) {
  if (o.log) o.log(s);
}

onnx::ModelProto parse(const void* bytes, size_t size) {
  if (!bytes || size == 0)
    throw Error(ErrorKind::invalid_argument, "the ONNX model is empty");
  if (size > size_t(std::numeric_limits<int>::max()))
    throw Error(ErrorKind::unsupported,
                "ONNX models over 2 GiB (protobuf's limit) are not supported");
  onnx::ModelProto m;
  if (!m.ParseFromArray(bytes, int(size)))
    throw Error(ErrorKind::invalid_argument,
                "not a valid ONNX model: protobuf parsing failed (" +
                    std::to_string(size) + " bytes; truncated or not ONNX?)");
  if (!m.has_graph())
    throw Error(ErrorKind::invalid_argument, "the ONNX model has no graph");
  return m;
}

int default_opset(const onnx::ModelProto& m) {
  for (const auto& o : m.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return int(o.version());
  throw Error(ErrorKind::invalid_argument,
              "the ONNX model imports no default-domain opset");
}

/// Replaces the dims of the graph's inputs by the requested/fixed shapes.
std::vector<Shape> fix_input_shapes(onnx::ModelProto& m, const ImportOptions& opt) {
  std::set<std::string> inits;
  for (const auto& t : m.graph().initializer()) inits.insert(t.name());
  std::vector<Shape> shapes;
  bool first = true;
  for (auto& in : *m.mutable_graph()->mutable_input()) {
    if (inits.count(in.name())) continue;
    if (!in.type().has_tensor_type())
      throw Error(ErrorKind::unsupported,
                  "input '" + in.name() + "' is not a tensor");
    auto* tt = in.mutable_type()->mutable_tensor_type();
    if (!dtype_valid(tt->elem_type()))
      throw Error(ErrorKind::unsupported,
                  "input '" + in.name() + "' has ONNX data type " +
                      std::to_string(tt->elem_type()) + ", not supported");
    Shape model_shape;
    bool dynamic = false;
    for (const auto& d : tt->shape().dim()) {
      model_shape.push_back(d.has_dim_value() ? d.dim_value() : -1);
      dynamic |= !d.has_dim_value();
    }
    Shape s = model_shape;
    if (first && !opt.input_shape.empty()) {
      if (tt->has_shape() && model_shape.size() != opt.input_shape.size())
        throw Error(ErrorKind::invalid_argument,
                    "input '" + in.name() + "' has rank " +
                        std::to_string(model_shape.size()) +
                        " but the requested shape " +
                        shape_str(opt.input_shape) + " has rank " +
                        std::to_string(opt.input_shape.size()));
      for (size_t i = 0; i < model_shape.size(); ++i)
        if (model_shape[i] > 0 && model_shape[i] != opt.input_shape[i] && i > 0)
          log_line(opt, "warning: input '" + in.name() + "' is fixed to " +
                            shape_str(model_shape) + " in the model; compiling for " +
                            shape_str(opt.input_shape));
      s = opt.input_shape;
    } else {
      if (!tt->has_shape())
        throw Error(ErrorKind::invalid_argument,
                    "input '" + in.name() + "' has no shape; give one (--shape)");
      // A symbolic leading dim is the batch: one sample per program run.
      if (!s.empty() && s[0] < 0) s[0] = 1;
      for (int64_t d : s)
        if (d < 0)
          throw Error(ErrorKind::invalid_argument,
                      "input '" + in.name() + "' has dynamic dims " +
                          shape_str(model_shape) +
                          "; give a fixed input shape (--shape)");
      (void)dynamic;
    }
    if (!s.empty() && s[0] != 1)
      throw Error(ErrorKind::invalid_argument,
                  "input '" + in.name() + "': the program is compiled for ONE "
                  "sample (batch dim 1; batches are split at run time), got " +
                      shape_str(s));
    for (int64_t d : s)
      if (d < 0 || d > (int64_t(1) << 31))
        throw Error(ErrorKind::invalid_argument,
                    "input '" + in.name() + "': invalid dimension in " + shape_str(s));
    if (!shape_fits(s, DType(tt->elem_type())))
      throw Error(ErrorKind::invalid_argument,
                  "input '" + in.name() + "' of shape " + shape_str(s) +
                      " would have 2^62 bytes or more (zero dims counted as one)");
    auto* shp = tt->mutable_shape();
    shp->clear_dim();
    for (int64_t d : s) shp->add_dim()->set_dim_value(d);
    shapes.push_back(s);
    first = false;
  }
  if (shapes.empty())
    throw Error(ErrorKind::invalid_argument, "the model has no (non-initializer) inputs");
  return shapes;
}

void check(onnx::ModelProto& m, const ImportOptions& opt) {
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::invalid_argument,
                std::string("the ONNX checker rejected the model: ") + e.what());
  }
  // ONNX's own shape inference is not run: it is not hardened against
  // hostile attributes (Conv strides of 0 divide by zero in libonnx), and
  // shoal's shape inference (passes/infer_fold.cpp) checks every node anyway.
  log_line(opt, "checked the model with the ONNX checker");
}

std::string node_label(const onnx::NodeProto& n, size_t index) {
  return n.name().empty() ? n.op_type() + "_" + std::to_string(index) : n.name();
}

/// Every node whose operator shoal lacks, listed together.
void reject_unsupported(const onnx::GraphProto& g, int opset) {
  std::vector<std::string> bad;
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    const std::string where = n.op_type() + " node '" + node_label(n, size_t(i)) +
                              "' (domain '" + n.domain() + "', opset " +
                              std::to_string(opset) + ")";
    const bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
    const ops::OpSpec* spec = default_domain ? ops::find_op(n.op_type()) : nullptr;
    if (!spec)
      bad.push_back(where);
    else if (opset < spec->min_opset)
      bad.push_back(where + ": shoal implements it from opset " +
                    std::to_string(spec->min_opset));
    else
      for (const auto& a : n.attribute())
        if (a.type() == onnx::AttributeProto::GRAPH ||
            a.type() == onnx::AttributeProto::GRAPHS)
          bad.push_back(where + ": subgraph attribute '" + a.name() + "'");
  }
  if (bad.empty()) return;
  std::ostringstream o;
  o << "unsupported model: " << bad.size()
    << (bad.size() == 1 ? " node uses" : " nodes use")
    << " operators shoal does not support:";
  for (auto& b : bad) o << "\n  - " << b;
  throw Error(ErrorKind::unsupported, o.str());
}

}  // namespace

ir::Graph import_onnx(const void* bytes, size_t size, const ImportOptions& opt,
                      std::string* model_name) {
  onnx::ModelProto m = parse(bytes, size);
  int opset = default_opset(m);
  if (opset < 1 || opset > kMaxOpset)
    throw Error(ErrorKind::unsupported,
                "the model uses opset " + std::to_string(opset) + "; shoal supports opsets 1 to " +
                    std::to_string(kMaxOpset) + " (tested: 11 to 17; below " +
                    std::to_string(kMinOpset) + " converted with ONNX's version converter)");
  std::vector<Shape> input_shapes = fix_input_shapes(m, opt);
  // Each operator's 'from opset' (the op table's min_opset) is checked
  // against the model's own opset, before any conversion.
  reject_unsupported(m.graph(), opset);
  check(m, opt);
  if (opset < kMinOpset) {
    upgrade_opset(m, opset);
    log_line(opt, "converted the model from opset " + std::to_string(opset) + " to " +
                      std::to_string(kMinOpset) + " with ONNX's version converter");
    opset = kMinOpset;
    // The converter may add nodes (Unsqueeze, Reshape) and rewrites inputs.
    input_shapes = fix_input_shapes(m, opt);
    reject_unsupported(m.graph(), opset);
    check(m, opt);
  }
  const onnx::GraphProto& g = m.graph();
  if (model_name) *model_name = g.name();

  ir::Graph graph;
  graph.opset = opset;
  std::unordered_map<std::string, int> ids;
  auto define = [&](const std::string& name, ir::Value v, const std::string& what) {
    if (name.empty())
      throw Error(ErrorKind::invalid_argument, what + " has an empty name");
    if (ids.count(name))
      throw Error(ErrorKind::invalid_argument,
                  "tensor '" + name + "' is defined twice (" + what + ")");
    v.name = name;
    int id = graph.add_value(std::move(v));
    ids[name] = id;
    return id;
  };

  for (const auto& t : g.initializer()) {
    ir::Value v;
    v.constant = tensor_from_proto(t, "initializer '" + t.name() + "'");
    v.dtype = v.constant->dtype();
    v.shape = v.constant->shape();
    v.shape_known = true;
    define(t.name(), std::move(v), "initializer");
  }
  size_t k = 0;
  for (const auto& in : g.input()) {
    if (ids.count(in.name())) continue;  // an initializer with a default
    ir::Value v;
    v.dtype = DType(in.type().tensor_type().elem_type());
    v.shape = input_shapes[k++];
    v.shape_known = true;
    graph.inputs.push_back(define(in.name(), std::move(v), "graph input"));
  }
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    ir::Node node;
    node.name = node_label(n, size_t(i));
    node.op = n.op_type();
    node.attrs = attrs_from_proto(n, n.op_type() + " node '" + node.name + "'");
    if ((node.op == "Softmax" || node.op == "LogSoftmax") && opset < 13) {
      node.attrs.set("coerce_2d", int64_t(1));
      if (!node.attrs.has("axis")) node.attrs.set("axis", int64_t(1));
    }
    // Split without sizes divides evenly into as many parts as it has
    // outputs; opset 18 spells that count as an attribute, older ones not.
    if (node.op == "Split" && n.input_size() < 2 && !node.attrs.has("split") &&
        !node.attrs.has("num_outputs"))
      node.attrs.set("num_outputs", int64_t(n.output_size()));
    for (const auto& o : n.output()) {
      node.outputs.push_back(o.empty() ? -1 : define(o, ir::Value{}, node.op + " node '" + node.name + "' output"));
    }
    graph.nodes.push_back(std::move(node));
  }
  // Resolve inputs after all outputs exist, so order in the file is free.
  for (int i = 0; i < g.node_size(); ++i) {
    const auto& n = g.node(i);
    for (const auto& in : n.input()) {
      if (in.empty()) {
        graph.nodes[size_t(i)].inputs.push_back(-1);
        continue;
      }
      auto it = ids.find(in);
      if (it == ids.end())
        throw Error(ErrorKind::invalid_argument,
                    n.op_type() + " node '" + graph.nodes[size_t(i)].name +
                        "' reads '" + in + "', which no node, input or initializer provides");
      graph.nodes[size_t(i)].inputs.push_back(it->second);
    }
  }
  for (const auto& out : g.output()) {
    auto it = ids.find(out.name());
    if (it == ids.end())
      throw Error(ErrorKind::invalid_argument,
                  "graph output '" + out.name() + "' is not produced by any node");
    graph.outputs.push_back(it->second);
  }
  if (graph.outputs.empty())
    throw Error(ErrorKind::invalid_argument, "the model has no outputs");
  graph.sort();
  log_line(opt, "imported " + std::to_string(graph.nodes.size()) + " nodes (opset " +
                    std::to_string(opset) + ")");
  return graph;
}

}  // namespace shoal::frontend
