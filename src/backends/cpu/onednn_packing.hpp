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
  /// Optionally, a second copy of the weights transformed for oneDNN's
  /// Winograd convolution (wino.format_kind == wino; its bytes lie at
  /// `wino_offset` in the tensor's bytes). oneDNN cannot reorder out of that
  /// layout, so `packed` stays the portable copy: a kernel uses the Winograd
  /// bytes only when its primitive wants exactly this descriptor.
  dnnl::memory::desc wino;
  uint64_t wino_offset = 0;
  /// Or (int8 weights) a second copy in a blocked int8 layout with oneDNN's
  /// extra data (compensation sums for int8 sources or a source zero point),
  /// which oneDNN cannot reorder out of either: `packed` is then the plain
  /// int8 bytes, and a kernel uses the copy (at `copy_offset`) only when its
  /// primitive wants exactly this descriptor.
  dnnl::memory::desc copy;
  uint64_t copy_offset = 0;
};

/// Whether `md` can be encoded: f32 (or bf16, for a packed layout, with
/// allow_bf16), blocked format, no extra flags.
bool can_encode(const dnnl::memory::desc& md, bool allow_bf16 = false);
/// Whether `md` is a blocked int8 layout of `dims_of`'s dims (extra data
/// allowed), which can be encoded as Packing::copy.
bool can_encode_copy(const dnnl::memory::desc& md, const dnnl::memory::desc& dims_of);
/// Whether `md` is a f32 Winograd weights layout of `dims_of`'s dims, which
/// can be encoded as Packing::wino.
bool can_encode_wino(const dnnl::memory::desc& md, const dnnl::memory::desc& dims_of);
/// Whether the Winograd descriptors `a` and `b` describe the same layout.
bool same_wino(const dnnl::memory::desc& a, const dnnl::memory::desc& b);
/// The description's bytes; `p`'s descriptors must pass can_encode.
std::vector<uint8_t> encode_packing(const Packing& p);
/// Decodes t.packing and checks it against `t` (f32, logical shape, reserved
/// bytes), so that both layouts stay inside the tensor's bytes. Throws
/// Error(invalid_argument) naming the tensor when unreadable.
Packing decode_packing(const program::TensorDesc& t);

}  // namespace shoal::cpu::onednn
