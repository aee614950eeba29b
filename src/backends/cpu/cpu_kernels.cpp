// make_cpu_kernel: which of the CPU backend's fast kernels runs an
// instruction, oneDNN's or shoal's native ones (the reference kernel is the
// runtime's fallback when both decline).
#include <string>
#include <vector>

#include "backends/cpu/native/native.hpp"
#include "backends/cpu/onednn_common.hpp"
#include "backends/cpu/reference_kernel.hpp"
#include "ops/instruction_check.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

/// Whether an operand of the instruction holds no elements (a dim of 0).
/// Empty 1-D constants are parameter lists, not data (Resize's roi and
/// scales when not given: exporters write them as empty tensors), and leave
/// the fast kernels to judge.
bool has_empty_operand(const program::Instruction& ins, const program::ProgramData& prog) {
  auto empty = [&](int32_t t) {
    if (t < 0 || size_t(t) >= prog.tensors.size()) return false;
    const program::TensorDesc& d = prog.tensors[size_t(t)];
    if (d.storage == program::Storage::weight && d.shape.size() <= 1) return false;
    return shape_numel(d.shape) == 0;
  };
  for (int32_t t : ins.inputs)
    if (empty(t)) return true;
  for (int32_t t : ins.outputs)
    if (empty(t)) return true;
  return false;
}

using KernelPtr = std::unique_ptr<device::Kernel>;

KernelPtr make_fastest(const program::Instruction& ins, const program::ProgramData& prog,
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

/// A oneDNN kernel that can turn NaN into a number, with a NaN-faithful path
/// for runs whose inputs hold NaN or Inf (ExecContext::nonfinite). oneDNN
/// applies fused activations with max/min and clamps exp's argument, so a
/// fused Relu, Clip, Sigmoid... maps NaN to a number: the faithful path runs
/// the op without its activation (a second kernel, made on first need) and
/// then the activation natively. oneDNN's max pooling skips NaN: the faithful
/// path puts NaN back where a window holds one. A fused pair with an
/// activation between (shoal.PointwiseDepthwise) runs the reference kernel.
class NanFaithfulKernel final : public device::Kernel {
 public:
  NanFaithfulKernel(KernelPtr fast, const program::Instruction& ins,
                    const program::ProgramData& prog, OneDnnContext& ctx, int threads)
      : fast_(std::move(fast)), ins_(ins), prog_(prog), ctx_(ctx), threads_(threads) {
    for (const char* key : {"activation", "activation_alpha", "activation_beta"})
      bare_.attrs.erase(key);
  }

  void execute(device::ExecContext& ctx, std::span<void* const> in,
               std::span<void* const> out) override {
    if (!ctx.nonfinite) return fast_->execute(ctx, in, out);
    const program::TensorDesc& y = prog_.tensors[size_t(ins_.outputs[0])];
    float* yp = static_cast<float*>(out[0]);
    if (ins_.op == "MaxPool") {
      fast_->execute(ctx, in, out);
      const program::TensorDesc& x = prog_.tensors[size_t(ins_.inputs[0])];
      native::maxpool_nan_fixup(ref::pool_geometry(ins_.attrs, x.shape), x, y,
                                static_cast<const float*>(in[0]), yp);
      return;
    }
    if (ins_.op == "shoal.PointwiseDepthwise") {
      if (!bare_kernel_) bare_kernel_ = make_reference_kernel(ins_, prog_, prog_.weights);
      return bare_kernel_->execute(ctx, in, out);
    }
    if (!bare_kernel_) bare_kernel_ = make_fastest(bare_, prog_, ctx_, threads_);
    if (!bare_kernel_) return fast_->execute(ctx, in, out);  // not expected: the op ran fused
    bare_kernel_->execute(ctx, in, out);
    native::apply_fused_activation(ins_.attrs, yp, shape_numel(y.shape));
  }
  std::string impl() const override { return fast_->impl(); }
  std::string precision() const override { return fast_->precision(); }

  /// Whether kernel k, made for ins, may lose a NaN that this class keeps.
  static bool wanted(const program::Instruction& ins, const device::Kernel& k) {
    if (k.impl().rfind("onednn", 0) != 0 || ins.outputs.size() != 1) return false;
    if (k.precision() == "int8") return false;  // integers: no NaN to lose
    return ins.op == "MaxPool" || ins.op == "shoal.PointwiseDepthwise" ||
           native::has_fused_activation(ins.attrs);
  }

 private:
  KernelPtr fast_;
  const program::Instruction& ins_;
  program::Instruction bare_ = ins_;  // ins_ without its fused activation
  const program::ProgramData& prog_;
  OneDnnContext& ctx_;
  int threads_;
  KernelPtr bare_kernel_;
};

}  // namespace

std::unique_ptr<device::Kernel> make_cpu_kernel(const program::Instruction& ins,
                                                const program::ProgramData& prog,
                                                OneDnnContext& ctx, int threads) {
  KernelPtr k = make_fastest(ins, prog, ctx, threads);
  if (k && NanFaithfulKernel::wanted(ins, *k))
    return std::make_unique<NanFaithfulKernel>(std::move(k), ins, prog, ctx, threads);
  return k;
}

bool is_view_op(const std::string& op) {
  const ops::OpSpec* spec = ops::find_op(op);
  return spec && spec->view;
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
      ops::check_instruction(ins, prog);  // a program file is untrusted input
      if (!make_cpu_kernel(ins, prog, ctx, 1)) slow.push_back(what);
    } catch (const Error& e) {
      slow.push_back(what + " (no kernel: " + e.what() + ")");
    }
  }
  return slow;
}

}  // namespace shoal::cpu
