// shoal's own CPU kernels ("native"): elementwise ops with numpy
// broadcasting, reductions and global pools, LayerNormalization, Softmax and
// the copies (Transpose, Slice, Concat, Split, Gather), on f32 operands in plain or
// channels-last layout, vectorized per ISA (loops.hpp), threaded over the
// cluster's team (nest.hpp). They cover what oneDNN 2.6 runs only with its
// slow reference implementations (a broadcast Mul in channels-last, global
// pools, every op outside its primitives).
#pragma once

#include <memory>
#include <string_view>

#include "backends/cpu/onednn_common.hpp"

namespace shoal::cpu::native {

/// The native kernel for the instruction, or nullptr when the op, its dtypes
/// or layouts are not covered (another kernel takes it). Throws
/// shoal::Error(invalid_argument) for operands that contradict the op.
std::unique_ptr<device::Kernel> make_native_kernel(const onednn::OpContext& oc);

/// Whether native kernels are tried before oneDNN's for this op (ops oneDNN
/// runs no faster); for the others they stand in only where oneDNN would
/// use its reference implementation.
bool native_first(std::string_view op);

/// Whether attributes `a` name a fused activation ("activation", see
/// ref::activation_from_attrs) the native loops compute.
bool has_fused_activation(const Attrs& a);
/// Applies that activation to y[0, n) in place, NaN-faithfully. False when
/// there is none or the native loops lack it.
bool apply_fused_activation(const Attrs& a, float* y, int64_t n);

/// After a max pooling that skipped NaN (oneDNN's does): sets every output
/// whose window holds a NaN input to NaN. x, y: the pooling's operands (plain
/// or channels-last), g its geometry.
void maxpool_nan_fixup(const ref::WindowGeometry& g, const program::TensorDesc& x,
                       const program::TensorDesc& y, const float* xp, float* yp);

/// Whether a native kernel exists for the op in some form (for the layout
/// pass's and strict mode's questions).
bool has_native_kernel(std::string_view op);

}  // namespace shoal::cpu::native
