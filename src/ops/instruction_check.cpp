#include "ops/instruction_check.hpp"

#include <cstring>
#include <optional>

#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::ops {
namespace {

/// Shape-determining constants are small; larger weights are not read.
constexpr uint64_t kMaxConstantBytes = uint64_t(1) << 20;

std::string operand(const program::TensorDesc& d) {
  return "'" + d.name + "' " + shape_str(d.shape) + " " + dtype_name(d.dtype);
}

/// Ops whose output is their input reinterpreted (OpSpec::view: the
/// compiler plans them in place; the reference kernel skips them).
bool is_view(const std::string& op) {
  const OpSpec* spec = find_op(op);
  return spec && spec->view;
}

bool overlap(const program::TensorDesc& a, const program::TensorDesc& b) {
  return a.bytes && b.bytes && a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
}

}  // namespace

InstructionInputs instruction_inputs(const program::Instruction& ins,
                                     const program::ProgramData& prog, int64_t stack) {
  InstructionInputs r;
  auto& constants = r.constants;
  auto& infos = r.infos;
  constants.resize(ins.inputs.size());
  infos.resize(ins.inputs.size());
  for (size_t i = 0; i < ins.inputs.size(); ++i) {
    ops::ValueInfo& vi = infos[i];
    if (ins.inputs[i] < 0) {
      vi.present = false;
      continue;
    }
    const program::TensorDesc& d = prog.tensors.at(size_t(ins.inputs[i]));
    vi.dtype = d.dtype;
    vi.shape = d.shape;
    if (d.storage == program::Storage::activation && stack != 1 && !vi.shape.empty())
      vi.shape[0] *= stack;
    // Plain weights are constants, as they were to the compiler.
    const uint64_t bytes = uint64_t(shape_numel(d.shape)) * dtype_size(d.dtype);
    if (d.storage == program::Storage::weight && d.layout == program::Layout::plain &&
        bytes <= kMaxConstantBytes && prog.weights && d.offset <= prog.weights_bytes &&
        bytes <= prog.weights_bytes - d.offset) {
      constants[i].emplace(d.dtype, d.shape);
      if (bytes) std::memcpy(constants[i]->data(), prog.weights + d.offset, bytes);
      vi.constant = &*constants[i];
    }
  }
  return r;
}

std::vector<ops::TypeShape> infer_instruction(const program::Instruction& ins,
                                              const program::ProgramData& prog, int64_t stack) {
  const ops::OpSpec* spec = ops::find_op(ins.op);
  if (!spec)
    throw Error(ErrorKind::unsupported,
                ins.op + ": unknown operator (not supported by this build of shoal)");
  const InstructionInputs in = instruction_inputs(ins, prog, stack);
  return spec->infer(ins.attrs, in.infos);
}

void check_instruction(const program::Instruction& ins, const program::ProgramData& prog) {
  const std::string what = "program instruction " + ins.op + " '" + ins.name + "'";
  auto fail = [&](const std::string& msg) -> Error {
    return Error(ErrorKind::invalid_argument, what + ": " + msg);
  };
  const ops::OpSpec* spec = ops::find_op(ins.op);
  if (!spec)
    throw Error(ErrorKind::unsupported,
                what + ": unknown operator (not supported by this build of shoal)");
  const int nin = int(ins.inputs.size()), nout = int(ins.outputs.size());
  if (nin < spec->min_inputs || nin > spec->max_inputs)
    throw fail("has " + std::to_string(nin) + " inputs; the operator takes " +
               std::to_string(spec->min_inputs) + " to " + std::to_string(spec->max_inputs));
  if (nout < 1 || (spec->num_outputs >= 0 && nout > spec->num_outputs))
    throw fail("has " + std::to_string(nout) + " outputs");
  auto desc = [&](int32_t t) -> const program::TensorDesc& {
    if (t < 0 || size_t(t) >= prog.tensors.size())
      throw fail("names tensor " + std::to_string(t) + " of " +
                 std::to_string(prog.tensors.size()));
    const program::TensorDesc& d = prog.tensors[size_t(t)];
    if (d.layout == program::Layout::channels_last && d.shape.size() < 2)
      throw fail("operand '" + d.name + "' is channels-last with rank " +
                 std::to_string(d.shape.size()) + " (needs rank >= 2)");
    return d;
  };

  for (int32_t t : ins.inputs)
    if (t >= 0) desc(t);
  std::vector<ops::TypeShape> want;
  try {
    want = infer_instruction(ins, prog, 1);
  } catch (const Error& e) {
    throw Error(e.kind(), what + ": " + e.what());
  } catch (const std::exception& e) {
    throw fail(e.what());
  }
  if (size_t(nout) > want.size())
    throw fail("has " + std::to_string(nout) + " outputs; its inputs give " +
               std::to_string(want.size()));
  for (size_t i = 0; i < ins.outputs.size(); ++i) {
    const program::TensorDesc& d = desc(ins.outputs[i]);
    if (d.dtype != want[i].dtype || d.shape != want[i].shape)
      throw fail("output " + std::to_string(i) + " is " + operand(d) + ", but its inputs give " +
                 shape_str(want[i].shape) + " " + dtype_name(want[i].dtype));
    if (d.storage != program::Storage::activation)
      throw fail("output " + std::to_string(i) + " '" + d.name +
                 "' is stored in the weight section; outputs live in the arena");
  }
  // Outputs are written while the inputs are read: their arena bytes must not
  // overlap, except for a view (its output is its input, reinterpreted) and
  // a convolution adding its residual in place.
  const bool view = is_view(ins.op);
  for (size_t i = 0; i < ins.outputs.size(); ++i) {
    const program::TensorDesc& o = desc(ins.outputs[i]);
    auto check = [&](int32_t t, bool is_input, size_t k) {
      if (t < 0) return;
      const program::TensorDesc& d = desc(t);
      if (d.storage != program::Storage::activation || !overlap(o, d)) return;
      if (view && is_input && i == 0 && k == 0 && o.offset == d.offset) return;
      // A convolution's sum may run in place over its residual (input 3).
      if (ins.op == "Conv" && is_input && i == 0 && k == 3 && o.offset == d.offset &&
          o.bytes == d.bytes && o.layout == d.layout && o.shape == d.shape)
        return;
      throw fail("output " + std::to_string(i) + " '" + o.name + "' overlaps " +
                 (is_input ? "input " : "output ") + std::to_string(k) + " '" + d.name +
                 "' in the arena (bytes [" + std::to_string(o.offset) + ", +" +
                 std::to_string(o.bytes) + ") and [" + std::to_string(d.offset) + ", +" +
                 std::to_string(d.bytes) + "))");
    };
    for (size_t k = 0; k < ins.inputs.size(); ++k) check(ins.inputs[k], true, k);
    for (size_t k = 0; k < i; ++k) check(ins.outputs[k], false, k);
  }
}

void check_program_io(const program::ProgramData& prog) {
  auto check = [&](int32_t t, const char* what, size_t k) {
    if (t < 0 || size_t(t) >= prog.tensors.size())
      throw Error(ErrorKind::invalid_argument, std::string("program ") + what + " " +
                                                   std::to_string(k) + " names tensor " +
                                                   std::to_string(t));
    const program::TensorDesc& d = prog.tensors[size_t(t)];
    const std::string where =
        std::string("program ") + what + " " + std::to_string(k) + " '" + d.name + "' ";
    const uint64_t logical = uint64_t(shape_numel(d.shape)) * dtype_size(d.dtype);
    if (d.layout == program::Layout::packed || d.bytes != logical)
      throw Error(ErrorKind::invalid_argument,
                  where + "must be a dense tensor of " + std::to_string(logical) +
                      " bytes; it is " +
                      (d.layout == program::Layout::packed ? "packed" : "reserved") + " with " +
                      std::to_string(d.bytes) + " bytes");
    if (std::string(what) == "input" && d.storage != program::Storage::activation)
      throw Error(ErrorKind::invalid_argument,
                  where + "is stored in the weight section; inputs live in the arena");
  };
  for (size_t k = 0; k < prog.inputs.size(); ++k) check(prog.inputs[k], "input", k);
  for (size_t k = 0; k < prog.outputs.size(); ++k) check(prog.outputs[k], "output", k);
}

}  // namespace shoal::ops
