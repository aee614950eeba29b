// The reference kernel of an instruction: the op table's reference
// implementation over the program's plain tensors, for host memory. The CPU
// backend falls back to it where no fast kernel applies; the ref backend
// runs it for everything.
#pragma once

#include <cstdint>
#include <memory>

#include "device/kernel.hpp"
#include "program/program_data.hpp"

namespace shoal::cpu {

/// `weights` is where the kernel reads the program's weight section on the
/// host (a weight stored packed for the CPU kernels is unpacked from it once,
/// here); operands passed to execute() are host pointers.
std::unique_ptr<device::Kernel> make_reference_kernel(const program::Instruction& ins,
                                                      const program::ProgramData& prog,
                                                      const uint8_t* weights);

}  // namespace shoal::cpu
