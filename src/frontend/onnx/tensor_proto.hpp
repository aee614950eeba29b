// Conversion of ONNX TensorProto and AttributeProto into shoal's types.
#pragma once

#include <onnx/onnx_pb.h>

#include "core/attrs.hpp"
#include "core/tensor.hpp"

namespace shoal::frontend {

/// Converts a TensorProto with its data inside the model. `what` names the
/// tensor in errors ("initializer 'conv1.weight'").
HostTensor tensor_from_proto(const onnx::TensorProto& t, const std::string& what);

/// Converts a node's attributes; throws Error(unsupported) for subgraphs
/// and other kinds shoal has no use for.
Attrs attrs_from_proto(const onnx::NodeProto& node, const std::string& what);

}  // namespace shoal::frontend
