// The fallback kernel: the op table's reference implementation over the
// program's plain tensors (weights stored packed are unpacked at creation).
#include "backends/cpu/reference_kernel.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

#include "backends/cpu/onednn_kernels.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

/// Converts between channels-last (N, spatial..., C) and plain (N, C,
/// spatial...) orders of a dense tensor of `elem` bytes per element.
void convert_layout(const Shape& shape, size_t elem, const uint8_t* src, uint8_t* dst,
                    bool to_plain) {
  const int64_t n = shape[0], c = shape[1];
  int64_t sp = 1;
  for (size_t d = 2; d < shape.size(); ++d) sp *= shape[d];
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t i = 0; i < sp; ++i) {
        const int64_t plain = (b * c + ch) * sp + i, last = (b * sp + i) * c + ch;
        const int64_t from = to_plain ? last : plain, to = to_plain ? plain : last;
        std::memcpy(dst + size_t(to) * elem, src + size_t(from) * elem, elem);
      }
}

class ReferenceKernel final : public device::Kernel {
 public:
  ReferenceKernel(const program::Instruction& ins, const program::ProgramData& prog,
                  const uint8_t* weights, const ops::OpSpec& spec)
      : attrs_(ins.attrs), spec_(spec) {
    for (int32_t t : ins.inputs) {
      // A weight the compiler stored packed: unpacked once, here, into a
      // plain copy of the kernel's own.
      in_plain_.push_back(unpacked(prog, weights, t));
      in_.push_back(t < 0              ? TensorRef{}
                    : in_plain_.back() ? in_plain_.back()->ref()
                                       : ref_of(prog.tensors[size_t(t)]));
      in_scratch_.push_back(scratch_for(prog, t));
    }
    for (int32_t t : ins.outputs) {
      out_.push_back(t < 0 ? TensorRef{} : ref_of(prog.tensors[size_t(t)]));
      out_scratch_.push_back(scratch_for(prog, t));
    }
    view_ = spec.view;
  }

  void execute(device::ExecContext&, std::span<void* const> in,
               std::span<void* const> out) override {
    // Views planned in place: the bytes are already where they belong,
    // unless the op writes more (Dropout's mask).
    if (view_ && !in.empty() && !out.empty() && in[0] == out[0] &&
        std::all_of(out.begin() + 1, out.end(), [](void* p) { return p == nullptr; }))
      return;
    // Channels-last operands are converted to plain and back around the
    // plain reference code.
    for (size_t i = 0; i < in.size(); ++i) {
      if (in_plain_[i]) continue;  // the unpacked weight, already bound
      in_[i].data = in[i];
      if (in[i] && !in_scratch_[i].empty()) {
        convert_layout(in_[i].shape, dtype_size(in_[i].dtype), static_cast<uint8_t*>(in[i]),
                       in_scratch_[i].data(), true);
        in_[i].data = in_scratch_[i].data();
      }
    }
    for (size_t i = 0; i < out.size(); ++i)
      out_[i].data = out_scratch_[i].empty() ? out[i] : out_scratch_[i].data();
    spec_.reference(attrs_, in_, out_);
    for (size_t i = 0; i < out.size(); ++i)
      if (out[i] && !out_scratch_[i].empty())
        convert_layout(out_[i].shape, dtype_size(out_[i].dtype), out_scratch_[i].data(),
                       static_cast<uint8_t*>(out[i]), false);
  }

  std::string impl() const override { return view_ ? "view" : "reference"; }

 private:
  static TensorRef ref_of(const program::TensorDesc& d) {
    if (d.layout == program::Layout::packed)
      throw Error(ErrorKind::unsupported,
                  "reference kernels need plain tensors; '" + d.name + "' is packed");
    return TensorRef{d.dtype, d.shape, nullptr};
  }

  static std::optional<HostTensor> unpacked(const program::ProgramData& prog,
                                            const uint8_t* weights, int32_t t) {
    if (t < 0 || prog.tensors[size_t(t)].layout != program::Layout::packed ||
        prog.tensors[size_t(t)].storage != program::Storage::weight)
      return std::nullopt;
    const program::TensorDesc& d = prog.tensors[size_t(t)];
    const uint8_t* base = weights ? weights : prog.owned_weights.data();
    const uint64_t size = weights ? prog.weights_bytes : prog.owned_weights.size();
    if (!base || d.offset > size || size - d.offset < d.bytes)
      throw Error(ErrorKind::invalid_argument,
                  "weight '" + d.name + "' lies outside the weight section");
    return unpack_weight(d, base + d.offset);
  }

  static std::vector<uint8_t> scratch_for(const program::ProgramData& prog, int32_t t) {
    if (t < 0 || prog.tensors[size_t(t)].layout != program::Layout::channels_last) return {};
    return std::vector<uint8_t>(prog.tensors[size_t(t)].bytes);
  }

  Attrs attrs_;
  const ops::OpSpec& spec_;
  std::vector<TensorRef> in_, out_;
  std::vector<std::optional<HostTensor>> in_plain_;             // unpacked packed weights
  std::vector<std::vector<uint8_t>> in_scratch_, out_scratch_;  // channels-last
  bool view_ = false;
};

}  // namespace

std::unique_ptr<device::Kernel> make_reference_kernel(const program::Instruction& ins,
                                                      const program::ProgramData& prog,
                                                      const uint8_t* weights) {
  const ops::OpSpec* spec = ops::find_op(ins.op);
  if (!spec || !spec->runtime)
    throw Error(ErrorKind::unsupported,
                ins.op + " node '" + ins.name + "': no kernel for this operator");
  return std::make_unique<ReferenceKernel>(ins, prog, weights, *spec);
}

}  // namespace shoal::cpu
