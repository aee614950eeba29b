// ONNX frontend: model bytes -> validated ir::Graph with fixed input shapes.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "ir/graph.hpp"
#include "shoal/types.hpp"

namespace shoal::frontend {

struct ImportOptions {
  Shape input_shape;  // for the first input; empty = the model's own
  std::function<void(const std::string&)> log;
};

/// Parses, runs the ONNX checker, converts to IR, and
/// rejects in one error every node whose operator shoal does not support.
ir::Graph import_onnx(const void* bytes, size_t size, const ImportOptions& opt,
                      std::string* model_name = nullptr);

}  // namespace shoal::frontend
