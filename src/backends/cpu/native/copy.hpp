// Strided copies between operands of any layout: the building block of the
// native ops that move elements (copy.cpp, pad.cpp).
#pragma once

#include <vector>

#include "backends/cpu/native/kernel.hpp"

namespace shoal::cpu::native {

/// A copy of `space` elements from x (strides sx, from element xoff) to y
/// (strides sy, from element yoff).
struct Copy {
  Nest nest;
  int64_t xoff = 0, yoff = 0;
};

Copy make_copy(const Shape& space, const std::vector<int64_t>& sy, int64_t yoff,
               const std::vector<int64_t>& sx, int64_t xoff);
/// Runs the copy over the team's threads (float32 elements).
void run_copy(const Copy& c, int threads, const float* x, float* y);
/// The same for 1-byte elements (uint8/int8 maps of int8 layers).
void run_copy_bytes(const Copy& c, int threads, const uint8_t* x, uint8_t* y);

/// How a list of copies maps to the operands: copy i from input i into
/// output 0 (Concat), from input 0 into output i (Split), or from input 0
/// into output 0 (Transpose, Slice, Gather, Expand).
enum class Fan { inputs, outputs, one };

/// A kernel running the copies in order; nullptr when one is empty.
/// `bytes`: of 1-byte elements (its precision int8), else float32.
KernelPtr copies_kernel(std::vector<Copy> copies, Fan fan, bool bytes = false);

}  // namespace shoal::cpu::native
