// A program's one instruction, as the kernel tests build it by hand.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "program/program_data.hpp"

namespace shoal::test_util {

inline program::Instruction one_instruction(const std::string& op, std::vector<int32_t> inputs,
                                            std::vector<int32_t> outputs, Attrs attrs = {}) {
  program::Instruction i;
  i.op = op;
  i.name = "test_" + op;
  i.inputs = std::move(inputs);
  i.outputs = std::move(outputs);
  i.attrs = std::move(attrs);
  return i;
}

}  // namespace shoal::test_util
