// The packing description of a weight the compiler stored in a oneDNN layout
// (TensorDesc::packing): what it is, how it is encoded, how it is checked.
// The byte format is documented in docs/PROGRAM_FORMAT.md.
#pragma once

#include <cstdint>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "program/program_data.hpp"

namespace shoal::cpu::onednn {

struct Packing {
  /// The tensor's plain (ONNX) bytes viewed as the primitive's weights: the
  /// dims the primitive uses and the strides of the ONNX layout.
  dnnl::memory::desc plain;
  /// The layout the bytes are stored in (same dims as `plain`).
  dnnl::memory::desc packed;
  /// The stored values are the plain ones times `scale` (Gemm's alpha).
  float scale = 1.0f;
};

/// Whether `md` can be encoded: f32, blocked format, no extra flags.
bool can_encode(const dnnl::memory::desc& md);
/// The description's bytes; `p`'s descriptors must pass can_encode.
std::vector<uint8_t> encode_packing(const Packing& p);
/// Decodes t.packing and checks it against `t` (f32, logical shape, reserved
/// bytes), so that both layouts stay inside the tensor's bytes. Throws
/// Error(invalid_argument) naming the tensor when unreadable.
Packing decode_packing(const program::TensorDesc& t);

}  // namespace shoal::cpu::onednn
