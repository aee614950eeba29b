// Models written for an opset older than shoal's oldest: converted with
// ONNX's version converter before import.
#pragma once

#include <onnx/onnx_pb.h>

namespace shoal::frontend {

/// The default-domain opsets shoal imports directly; older models are
/// converted to kMinOpset first (upgrade_opset).
constexpr int kMinOpset = 7;
constexpr int kMaxOpset = 18;

/// Converts a checked model whose default-domain opset `from` is below
/// kMinOpset to kMinOpset with ONNX's version converter
/// (onnx::version_conversion::ConvertVersion), in place. Throws
/// Error(unsupported) naming both opsets and the converter's reason when it
/// cannot (e.g. an operator changed at a version it has no adapter for:
/// Pad and Split before opset 2, Cast and Tile before opset 6). The
/// converter sees the shapes of graph inputs, initializers and value_info
/// only (ONNX's shape inference is not run, see check() in
/// onnx_import.cpp), so the adapters that need other tensors' shapes (Gemm
/// 6 -> 7; Add, Sub, Mul, Div, Pow with the opset-1 'broadcast' attribute)
/// fail for those.
void upgrade_opset(onnx::ModelProto& m, int from);

}  // namespace shoal::frontend
