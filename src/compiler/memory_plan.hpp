// Memory planning: every run-time tensor gets an offset in one arena, with
// space reused once a tensor is dead.
#pragma once

#include <cstdint>
#include <vector>

namespace shoal::compiler {

struct Buffer {
  uint64_t bytes = 0;
  int first = 0;  // step that writes it (-1: before the first instruction)
  int last = 0;   // last step that reads it
  uint64_t offset = 0;  // result
};

/// Assigns offsets so that buffers alive at the same step never overlap;
/// greedy best fit, largest first. Returns the arena size. Offsets are
/// multiples of `align`.
uint64_t plan_arena(std::vector<Buffer>& buffers, uint64_t align = 64);

}  // namespace shoal::compiler
