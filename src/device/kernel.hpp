// The kernel interface: what a backend provides per instruction, a Kernel
// bound to the instruction's shapes, created once at init and executed many
// times on one cluster of its device.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "program/program_data.hpp"

namespace shoal::device {

/// Per-execution context handed to kernels and to a device's memory calls
/// (one per cluster, owned by the cluster's thread).
struct ExecContext {
  int cluster = 0;
  int threads = 1;                // threads of this cluster
  void* backend_state = nullptr;  // the backend's per-cluster state (CPU: the dnnl::stream)
  /// The samples of this run hold NaN or Inf in a float input. Kernels whose
  /// fast path can lose a NaN (an activation fused into a oneDNN primitive
  /// maps NaN to a number; so does oneDNN's max pooling) take a slower path
  /// that keeps ONNX's semantics.
  bool nonfinite = false;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  /// in[i] / out[i]: the operand's address in the device's memory (arena or
  /// weights), laid out as the program's TensorDesc says; nullptr for an
  /// absent optional input. Only a host-addressable device's kernels may
  /// read them as host pointers.
  virtual void execute(ExecContext& ctx, std::span<void* const> in, std::span<void* const> out) = 0;
  /// Which implementation runs, for profiles ("onednn:jit:avx512", "reference").
  virtual std::string impl() const = 0;
  /// The arithmetic it computes in, for profiles and plans: "f32", "bf16" or
  /// "int8".
  virtual std::string precision() const { return "f32"; }
};

}  // namespace shoal::device
