#include "runtime/batching.hpp"

#include "ops/instruction_check.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::runtime {

std::string stacking_blocker(const program::ProgramData& pd) {
  auto batched = [&](int32_t t) {
    return t >= 0 && pd.tensors[size_t(t)].storage == program::Storage::activation;
  };
  auto no_batch_dim = [&](int32_t t) -> std::string {
    if (!batched(t)) return "";  // absent (-1) or a weight
    const program::TensorDesc& d = pd.tensors[size_t(t)];
    if (!d.shape.empty() && d.shape[0] == 1) return "";
    return "tensor '" + d.name + "' " + shape_str(d.shape) + " has no batch dim (dim 0 of 1)";
  };
  for (int32_t t : pd.inputs)
    if (auto why = no_batch_dim(t); !why.empty()) return why;
  for (const program::Instruction& ins : pd.instructions) {
    const std::string what = ins.op + " '" + ins.name + "'";
    for (int32_t t : ins.inputs)
      if (auto why = no_batch_dim(t); !why.empty()) return why;
    for (int32_t t : ins.outputs)
      if (auto why = no_batch_dim(t); !why.empty()) return why;
    const ops::OpSpec* spec = ops::find_op(ins.op);
    if (!spec || !spec->per_sample) return what + " never runs on stacked samples";
    // MaxPool's Indices count elements from the start of the tensor its
    // kernel sees: on a stack they would run on across the samples.
    if (ins.op == "MaxPool" && ins.outputs.size() > 1)
      return what + " outputs Indices, which count from the start of one sample";
    std::vector<bool> flags;
    for (int32_t t : ins.inputs) flags.push_back(batched(t));
    const std::unique_ptr<bool[]> b(new bool[flags.size() + 1]);
    for (size_t i = 0; i < flags.size(); ++i) b[i] = flags[i];
    try {
      const ops::InstructionInputs in = ops::instruction_inputs(ins, pd, 1);
      if (!spec->per_sample(ins.attrs, in.infos, std::span<const bool>(b.get(), flags.size())))
        return what +
               " mixes samples (or its attributes or inputs depend on "
               "the batch)";
      const std::vector<ops::TypeShape> two = ops::infer_instruction(ins, pd, 2);
      for (size_t i = 0; i < ins.outputs.size(); ++i) {
        Shape want = pd.tensors[size_t(ins.outputs[i])].shape;
        want[0] *= 2;
        if (i >= two.size() || two[i].shape != want)
          return what + ": output " + std::to_string(i) + " does not grow with the batch";
      }
    } catch (const std::exception& e) {
      return what + " cannot take two stacked samples: " + e.what();
    }
  }
  return "";
}

void stack_samples(program::ProgramData& view, int64_t n) {
  uint64_t arena = 0;
  if (n < 1 || __builtin_mul_overflow(view.arena_bytes, uint64_t(n), &arena) ||
      arena > (uint64_t(1) << 62))
    throw Error(ErrorKind::out_of_memory, "an arena for " + std::to_string(n) +
                                              " stacked samples of " +
                                              std::to_string(view.arena_bytes) + " bytes each");
  for (program::TensorDesc& d : view.tensors) {
    if (d.storage != program::Storage::activation || d.shape.empty()) continue;
    d.shape[0] *= n;
    d.offset *= uint64_t(n);
    d.bytes *= uint64_t(n);
  }
  view.arena_bytes *= uint64_t(n);
}

}  // namespace shoal::runtime
