// Stacking samples: one kernel runs over several samples of a batch at once
// (a micro-batch), which keeps weights in cache across samples and gives the
// kernels larger matrices. Programs are compiled per sample; the runtime
// derives a stacked view of the program for n samples when every
// instruction allows it.
#pragma once

#include <string>

#include "program/program_data.hpp"

namespace shoal::runtime {

/// Empty when `pd` can run several samples at once: every arena tensor an
/// instruction touches has dim 0 = 1 (the batch dim), every instruction's op
/// computes each sample on its own when samples are stacked along it
/// (OpSpec::per_sample), and shape inference on a stack of two gives every
/// output with dim 0 doubled. Else why not, naming the instruction or tensor.
std::string stacking_blocker(const program::ProgramData& pd);

/// Turns `view` (a per-sample program, weights included) into the program
/// for `n` stacked samples: dim 0, offset and reserved bytes of every arena
/// tensor, and the arena size, multiplied by n. Each sample's arena bytes
/// stay contiguous, so the liveness plan stays valid.
/// Throws Error(out_of_memory) when the stacked arena's size overflows.
void stack_samples(program::ProgramData& view, int64_t n);

/// The largest stack a runtime accepts (RuntimeOptions::micro_batch).
inline constexpr int kMaxMicroBatch = 4096;

}  // namespace shoal::runtime
