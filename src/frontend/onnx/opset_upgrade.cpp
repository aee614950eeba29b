#include "frontend/onnx/opset_upgrade.hpp"

#include <onnx/version_converter/convert.h>

#include <exception>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "shoal/error.hpp"

namespace shoal::frontend {
namespace {

/// The converter's assertion messages start with the source location of
/// the assertion ("./onnx/...h:42: adapter_lookup: Assertion `false`
/// failed: No Adapter ..."); the reason is what follows.
std::string reason_of(const std::exception& e) {
  std::string s = e.what();
  const std::string failed = " failed: ";
  const size_t at = s.find(failed);
  if (at != std::string::npos && at + failed.size() < s.size()) s = s.substr(at + failed.size());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

/// ONNX 1.12's Reshape 4 -> 5 adapter turns the 'shape' attribute into a
/// Constant whose tensor has the values but no dims (a "scalar" of n
/// values; later ONNX releases give it its one dim): give it that dim.
void repair_reshape_shapes(onnx::GraphProto& g) {
  std::unordered_map<std::string, onnx::TensorProto*> constants;
  for (onnx::NodeProto& n : *g.mutable_node())
    if (n.op_type() == "Constant" && n.output_size() == 1 && n.attribute_size() == 1 &&
        n.attribute(0).name() == "value" && n.attribute(0).has_t())
      constants[n.output(0)] = n.mutable_attribute(0)->mutable_t();
  for (const onnx::NodeProto& n : g.node()) {
    if (n.op_type() != "Reshape" || n.input_size() < 2) continue;
    auto it = constants.find(n.input(1));
    if (it == constants.end()) continue;
    onnx::TensorProto& t = *it->second;
    if (t.dims_size() == 0 && t.data_type() == onnx::TensorProto::INT64 && t.int64_data_size() != 1)
      t.add_dims(t.int64_data_size());
  }
}

/// ONNX's IR importer (ImportModelProto), which the converter runs first,
/// dereferences a null pointer for a graph output that no graph input, node
/// or (IR version 4+) initializer defines, and the ONNX checker lets such a
/// model through: name it here instead.
void require_defined_outputs(const onnx::ModelProto& m, const std::string& what) {
  const onnx::GraphProto& g = m.graph();
  std::unordered_set<std::string> defined;
  for (const auto& in : g.input()) defined.insert(in.name());
  if (m.ir_version() >= 4)
    for (const auto& t : g.initializer()) defined.insert(t.name());
  for (const auto& n : g.node())
    for (const auto& o : n.output()) defined.insert(o);
  for (const auto& out : g.output())
    if (out.name().empty() || !defined.count(out.name()))
      throw Error(ErrorKind::invalid_argument,
                  what + "graph output '" + out.name() + "' is not produced by any node");
}

}  // namespace

void upgrade_opset(onnx::ModelProto& m, int from) {
  const std::string what = "the model uses opset " + std::to_string(from) +
                           "; converting it to opset " + std::to_string(kMinOpset) +
                           " (shoal imports opsets " + std::to_string(kMinOpset) + " to " +
                           std::to_string(kMaxOpset) + ") with ONNX's version converter failed: ";
  // ONNX's IR importer, which the converter runs first, accepts IR version
  // 2 and later only (1 has no opset imports).
  if (!m.has_ir_version() || m.ir_version() < 2)
    throw Error(ErrorKind::unsupported,
                what + "IR version " + std::to_string(m.ir_version()) + " is too old");
  require_defined_outputs(m, what);
  onnx::ModelProto converted;
  try {
    converted = onnx::version_conversion::ConvertVersion(m, kMinOpset);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::unsupported, what + reason_of(e));
  }
  repair_reshape_shapes(*converted.mutable_graph());
  m = std::move(converted);
}

}  // namespace shoal::frontend
