// The fallback kernel: the op table's reference implementation over the
// program's plain tensors.
#include "ops/op_table.hpp"
#include "runtime/device.hpp"
#include "shoal/error.hpp"

namespace shoal::runtime {
namespace {

class ReferenceKernel final : public Kernel {
 public:
  ReferenceKernel(const program::Instruction& ins, const program::ProgramData& prog,
                  const ops::OpSpec& spec)
      : attrs_(ins.attrs), spec_(spec) {
    for (int32_t t : ins.inputs)
      in_.push_back(t < 0 ? TensorRef{} : ref_of(prog.tensors[size_t(t)]));
    for (int32_t t : ins.outputs)
      out_.push_back(t < 0 ? TensorRef{} : ref_of(prog.tensors[size_t(t)]));
    view_ = spec.name == "Reshape" || spec.name == "Flatten" ||
            spec.name == "Squeeze" || spec.name == "Unsqueeze" ||
            spec.name == "Identity" || spec.name == "Dropout";
  }

  void execute(ExecContext&, std::span<void* const> in,
               std::span<void* const> out) override {
    // Views planned in place: the bytes are already where they belong.
    if (view_ && !in.empty() && !out.empty() && in[0] == out[0]) return;
    for (size_t i = 0; i < in.size(); ++i) in_[i].data = in[i];
    for (size_t i = 0; i < out.size(); ++i) out_[i].data = out[i];
    spec_.reference(attrs_, in_, out_);
  }

  std::string impl() const override { return "reference"; }

 private:
  static TensorRef ref_of(const program::TensorDesc& d) {
    if (d.layout != program::Layout::plain)
      throw Error(ErrorKind::unsupported,
                  "reference kernels need plain tensors; '" + d.name + "' is packed");
    return TensorRef{d.dtype, d.shape, nullptr};
  }

  Attrs attrs_;
  const ops::OpSpec& spec_;
  std::vector<TensorRef> in_, out_;
  bool view_ = false;
};

}  // namespace

std::unique_ptr<Kernel> make_reference_kernel(const program::Instruction& ins,
                                              const program::ProgramData& prog) {
  const ops::OpSpec* spec = ops::find_op(ins.op);
  if (!spec || !spec->runtime)
    throw Error(ErrorKind::unsupported,
                ins.op + " node '" + ins.name + "': no kernel for this operator");
  return std::make_unique<ReferenceKernel>(ins, prog, *spec);
}

}  // namespace shoal::runtime
