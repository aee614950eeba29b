// Lowers an optimized graph into a ProgramData: tensors, instructions, the
// arena plan and the weight section.
#pragma once

#include "ir/graph.hpp"
#include "passes/passes.hpp"
#include "program/program_data.hpp"

namespace shoal::compiler {

void emit_program(const ir::Graph& g, program::ProgramData& p, const passes::Log& log);

/// Floating-point operations of one node for one input sample.
double node_flops(const ir::Graph& g, const ir::Node& n);

}  // namespace shoal::compiler
