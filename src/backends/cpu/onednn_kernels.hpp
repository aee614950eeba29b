// oneDNN kernels for the CPU backend: one Kernel per instruction, built from
// oneDNN 2.6 primitives bound to the instruction's (batch-1) shapes.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "core/settings.hpp"
#include "core/tensor.hpp"
#include "device/kernel.hpp"
#include "program/program_data.hpp"

namespace shoal::cpu {

/// Per-device oneDNN state, shared by the kernels of all the device's
/// clusters.
struct OneDnnContext {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  /// Which one-sample convolutions of a team are cut into row bands
  /// (SHOAL_ROW_BANDS; see wants_bands in onednn_conv.cpp).
  RowBands row_bands = RowBands::automatic;

  /// Packed (reordered) weights shared by the kernels of all clusters of the
  /// device, so a device stores each weight once. `make` runs at most once per
  /// key; thread-safe.
  std::shared_ptr<dnnl::memory> packed_weight(const std::string& key,
                                              const std::function<dnnl::memory()>& make);

  /// Bytes held by packed weights, for reports.
  size_t packed_bytes() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<dnnl::memory>> packed_;
  size_t packed_bytes_ = 0;
};

/// Returns a kernel for the instruction, or nullptr when oneDNN does not
/// handle this op/attribute/layout combination (the runtime then falls back to
/// the reference kernel). Throws shoal::Error only for real failures (a weight
/// outside the weight section, inconsistent shapes, out of memory).
///
/// Kernel::execute expects ExecContext::backend_state to be the calling
/// cluster's dnnl::stream* (on ctx.engine). A kernel must only be executed by
/// one thread at a time; it uses a thread-local workspace for its temporary
/// blocked tensors and oneDNN scratchpads.
///
/// `threads` is the size of the running cluster's team: with more than one,
/// some convolutions (Winograd ones with small weights, 1x1 ones with a
/// residual) are cut into bands of output rows, one per thread (see
/// wants_bands in onednn_conv.cpp).
std::unique_ptr<device::Kernel> make_onednn_kernel(const program::Instruction& ins,
                                                   const program::ProgramData& prog,
                                                   OneDnnContext& ctx, int threads = 1);

/// The fastest CPU kernel for the instruction: shoal's native kernel for the
/// ops it runs first (elementwise, reductions, copies; see
/// native/native.hpp), else oneDNN's, else a native one where oneDNN has only
/// its reference implementation. nullptr when neither covers it (the
/// runtime's reference kernel then runs). Same contract as
/// make_onednn_kernel.
std::unique_ptr<device::Kernel> make_cpu_kernel(const program::Instruction& ins,
                                                const program::ProgramData& prog,
                                                OneDnnContext& ctx, int threads = 1);

/// Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout): the
/// memory plan shares their input's buffer, so they cost nothing.
bool is_view_op(const std::string& op);

/// The layers ("Op 'name'") of a program that no fast CPU kernel takes on
/// this CPU, so the slow reference kernels would run them (views excluded).
/// Builds each kernel once to find out (strict compiles, `shoal inspect`).
std::vector<std::string> reference_layers(const program::ProgramData& prog);

/// Compile-time weight prepacking: stores the weight of each Conv,
/// ConvTranspose, Gemm and MatMul whose weight is a constant used by that
/// instruction alone in the layout its oneDNN kernel wants on this machine's
/// CPU (with Gemm's alpha folded in), so that loading does no repacking. Such
/// tensors get layout packed, `bytes` = the packed size (for a Winograd layer:
/// the plain bytes, padded to 64, then the transformed copy) and `packing` = the
/// description of docs/PROGRAM_FORMAT.md; the weight section is rebuilt (every
/// offset stays 64-aligned). Kernels on a CPU that wants another layout
/// reorder from the stored one once; other consumers use unpack_weight.
void prepack_weights(program::ProgramData& p, const std::function<void(const std::string&)>& log);

/// The instruction attribute (int, 1 = yes) by which the compiler asks for
/// oneDNN's Winograd convolution; a CPU without one runs the direct one.
inline constexpr const char* kWinogradAttr = "shoal_winograd";

/// Which 3x3 stride-1 convolutions get oneDNN's Winograd kernel: none; those
/// where it pays (output maps of 14x14 or more, 32+ input and 64+ output
/// channels: 24-55% faster there on AVX-512); or all (tests).
enum class WinogradPolicy { none, worthwhile, all };

/// Marks with kWinogradAttr the convolutions the policy picks, where this
/// CPU has a Winograd kernel for them. Winograd sums in another order:
/// outputs differ from direct convolution by about 1e-6 of their magnitude
/// per layer. Returns how many it marked. Deterministic (the same program
/// for the same model and CPU). Run before prepack_weights (Winograd weights
/// stay plain and are transformed at load: their layout cannot be stored).
int choose_conv_algorithms(program::ProgramData& p, WinogradPolicy policy,
                           const std::function<void(const std::string&)>& log);

/// Whether `ins` is a Conv with a channel scale (input 4,
/// passes::fuse_channel_scale): its kernel scales float32 weights on every
/// run, so it takes neither Winograd nor bf16.
inline bool has_channel_scale(const program::Instruction& ins) {
  return ins.op == "Conv" && ins.inputs.size() > 4 && ins.inputs[4] >= 0;
}

/// The instruction attribute (string) by which the compiler asks for a
/// reduced precision: "bf16" on Conv, Gemm and MatMul (see assign_precision).
inline constexpr const char* kPrecisionAttr = "shoal_precision";

/// "" when this CPU (as oneDNN sees it, DNNL_MAX_CPU_ISA included) runs bf16
/// kernels natively (AVX512-BF16 or AMX-BF16), else the error message naming
/// the missing instruction sets.
std::string bf16_unavailable();
/// Whether the compiler asked for bf16 on `ins`.
bool runs_bf16(const program::Instruction& ins);
/// Marks the float32 Conv, Gemm and MatMul instructions with kPrecisionAttr
/// for `precision` (nothing for f32); throws Error(unsupported) naming the
/// missing instruction set when this CPU cannot run it. Run before
/// choose_conv_algorithms and prepack_weights (bf16 layers take no Winograd,
/// and their weights are stored in bf16). Returns how many it marked.
int assign_precision(program::ProgramData& p, Precision precision,
                     const std::function<void(const std::string&)>& log);

/// The plain (dense row-major, ONNX) values of weight `t` whose bytes are at
/// `bytes` (t.bytes of them): packed tensors are reordered back and any folded
/// factor divided out; plain ones are copied. Throws Error(invalid_argument)
/// naming the tensor when its packing description is unreadable.
HostTensor unpack_weight(const program::TensorDesc& t, const uint8_t* bytes);

}  // namespace shoal::cpu
