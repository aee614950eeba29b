// Checks a program instruction against the operator table before a kernel is
// made for it: a program file is untrusted input, and kernels rely on their
// operands' shapes agreeing with the op's attributes.
#pragma once

#include <optional>
#include <vector>

#include "ops/op_table.hpp"
#include "program/program_data.hpp"

namespace shoal::ops {

/// Throws Error(invalid_argument) naming the instruction and the operand when
/// the instruction's operand counts, dtypes or shapes are not what the op's
/// shape inference gives for its inputs and attributes (as a program from a
/// corrupted or hand-made file may have). `prog.weights` must hold the
/// weights (shape-determining inputs such as Reshape's are read from them).
void check_instruction(const program::Instruction& ins, const program::ProgramData& prog);

/// The instruction's inputs as shape inference sees them: plain weights of
/// up to 1 MiB are read as constants; dim 0 of every arena (batch-carrying)
/// input is multiplied by `stack`. `infos` point into `constants`.
struct InstructionInputs {
  std::vector<std::optional<HostTensor>> constants;
  std::vector<ops::ValueInfo> infos;
};
InstructionInputs instruction_inputs(const program::Instruction& ins,
                                     const program::ProgramData& prog, int64_t stack);

/// The output types and shapes the op's shape inference gives for the
/// instruction's inputs as stored in `prog` (plain weights read as
/// constants), with dim 0 of every arena (batch-carrying) input multiplied
/// by `stack`. Operand ids must be valid. Throws what the inference throws.
std::vector<ops::TypeShape> infer_instruction(const program::Instruction& ins,
                                              const program::ProgramData& prog, int64_t stack);

/// Throws Error(invalid_argument) unless every program input is a dense
/// (plain or channels-last) arena tensor and every output a dense tensor whose
/// reserved bytes are its logical size: the runtime copies samples in and out
/// of them byte for byte.
void check_program_io(const program::ProgramData& prog);

}  // namespace shoal::ops
