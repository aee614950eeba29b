// make_cpu_kernel: which of the CPU backend's fast kernels runs an
// instruction, oneDNN's or shoal's native ones (the reference kernel is the
// runtime's fallback when both decline).
#include <string>

#include "backends/cpu/native/native.hpp"
#include "backends/cpu/onednn_common.hpp"

namespace shoal::cpu {

std::unique_ptr<runtime::Kernel> make_cpu_kernel(const program::Instruction& ins,
                                                 const program::ProgramData& prog,
                                                 OneDnnContext& ctx, int threads) {
  onednn::OpContext oc{ins, prog, ctx, threads};
  if (native::native_first(ins.op))
    if (auto k = native::make_native_kernel(oc)) return k;
  auto k = make_onednn_kernel(ins, prog, ctx, threads);
  // oneDNN's own reference implementations ("onednn:ref:...") are as slow as
  // ours: a native kernel, where one exists, runs instead.
  if (k && k->impl().rfind("onednn:ref", 0) != 0) return k;
  if (!native::native_first(ins.op))
    if (auto n = native::make_native_kernel(oc)) return n;
  return k;
}

}  // namespace shoal::cpu
