// make_cpu_kernel: which of the CPU backend's fast kernels runs an
// instruction, oneDNN's or shoal's native ones (the reference kernel is the
// runtime's fallback when both decline).
#include <string>
#include <vector>

#include "backends/cpu/native/native.hpp"
#include "backends/cpu/onednn_common.hpp"
#include "runtime/instruction_check.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

/// Whether an operand of the instruction holds no elements (a dim of 0).
bool has_empty_operand(const program::Instruction& ins, const program::ProgramData& prog) {
  auto empty = [&](int32_t t) {
    return t >= 0 && size_t(t) < prog.tensors.size() &&
           shape_numel(prog.tensors[size_t(t)].shape) == 0;
  };
  for (int32_t t : ins.inputs)
    if (empty(t)) return true;
  for (int32_t t : ins.outputs)
    if (empty(t)) return true;
  return false;
}

}  // namespace

std::unique_ptr<runtime::Kernel> make_cpu_kernel(const program::Instruction& ins,
                                                 const program::ProgramData& prog,
                                                 OneDnnContext& ctx, int threads) {
  // Zero elements cost nothing: the reference kernel, written for empty
  // tensors, takes them (oneDNN fails on zero dims, even with SIGFPE).
  if (has_empty_operand(ins, prog)) return nullptr;
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

bool is_view_op(const std::string& op) {
  return op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" ||
         op == "Identity" || op == "Dropout";
}

std::vector<std::string> reference_layers(const program::ProgramData& prog) {
  OneDnnContext ctx;
  std::vector<std::string> slow;
  for (const program::Instruction& ins : prog.instructions) {
    if (is_view_op(ins.op)) continue;
    bool empty = !ins.outputs.empty();  // the op table skips ops with only empty outputs
    for (int32_t t : ins.outputs)
      empty = empty && t >= 0 && size_t(t) < prog.tensors.size() &&
              shape_numel(prog.tensors[size_t(t)].shape) == 0;
    if (empty) continue;
    const std::string what = ins.op + " '" + ins.name + "'";
    try {
      runtime::check_instruction(ins, prog);  // a program file is untrusted input
      if (!make_cpu_kernel(ins, prog, ctx, 1)) slow.push_back(what);
    } catch (const Error& e) {
      slow.push_back(what + " (no kernel: " + e.what() + ")");
    }
  }
  return slow;
}

}  // namespace shoal::cpu
