// Fused activations the oneDNN kernels apply themselves after a primitive
// (which computes without them), with the native loops: a host step of the
// DnnlKernel over the runs of floats the primitive wrote.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "backends/cpu/native/loops.hpp"
#include "core/attrs.hpp"

namespace shoal::cpu::onednn {

/// Whether the fused activation of attributes `a` runs natively after the
/// primitive rather than as a oneDNN post-op; fills `f` when it does. SiLU:
/// oneDNN 2.6's swish post-op divides and costs 0.36 ns per element on the
/// Xeon measured (29% of EfficientNet-B0's time with it); the native loop
/// (division-free) 0.26 ns, as a pass over the output once the primitive is
/// done. (Row bands that keep the output in L2 for the pass measured no
/// faster.)
bool native_activation(const Attrs& a, native::UnaryOp& f);

/// An activation applied in place to runs of floats, cut into pieces that
/// the team's threads share.
class Epilogue {
 public:
  explicit Epilogue(const native::UnaryOp& f) : f_(f) {}
  /// Floats [at, at + count) of the buffer the epilogue is applied to.
  void add_run(int64_t at, int64_t count);
  void apply(float* base, int threads) const;

 private:
  native::UnaryOp f_;
  std::vector<std::pair<int64_t, int64_t>> pieces_;  // (first float, count)
};

}  // namespace shoal::cpu::onednn
