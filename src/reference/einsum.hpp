// Einsum equations, parsed and resolved against the operands' shapes in one
// place for the shape inference and reference kernel (nn_einsum.cpp), the
// per-sample rule (src/ops/batch_rules.cpp) and the lowering of two-operand
// Einsums to MatMul (src/passes/einsum.cpp).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace shoal::ref {

/// One term of an equation: its letters ('a'-'z', 'A'-'Z') in order, with
/// kEllipsis where "..." stands.
constexpr int kEllipsis = -1;
using EinsumTerm = std::vector<int>;

struct EinsumEquation {
  std::string text;  // as the node wrote it
  std::vector<EinsumTerm> inputs;
  EinsumTerm output;             // the explicit output term, or the implicit one
  bool explicit_output = false;  // the equation has "->"
};

/// Parses an ONNX Einsum equation for `num_inputs` operands. Whitespace is
/// ignored. Without "->" the output is implicit: "..." (when an input has
/// one) followed by the letters that appear exactly once in the equation, in
/// alphabetical (ASCII) order, as numpy.einsum does. Throws
/// Error(invalid_argument) naming the equation when it is malformed: another
/// number of terms than operands, characters other than letters, "," "->"
/// and "...", a letter twice in the output or an output letter no input has.
EinsumEquation parse_einsum(const std::string& equation, size_t num_inputs);

/// An equation resolved against its operands' shapes: every dim gets a
/// label. Labels 0 .. ellipsis_rank-1 are the dims "..." stands for
/// (broadcast across the operands numpy-style, right-aligned), then one
/// label per letter. A letter has one size wherever it appears;
/// broadcasting happens only through "...".
struct EinsumDims {
  int ellipsis_rank = 0;
  std::vector<int64_t> sizes;            // per label; an ellipsis dim's broadcast size
  std::vector<int> letters;              // per label: its letter, or kEllipsis
  std::vector<std::vector<int>> inputs;  // per operand: the label of each of its dims
  std::vector<int> output;               // the label of each output dim
  Shape output_shape() const;
  std::string label_name(int label) const;  // "i", or "...[0]"
};

/// Throws Error(invalid_argument) naming the equation when the shapes do not
/// fit it: a term naming more or fewer dims than its operand has, a letter
/// of two sizes, "..." dims that do not broadcast, or "..." dims in the
/// inputs but not in an explicit output.
EinsumDims resolve_einsum(const EinsumEquation& eq, std::span<const Shape> shapes);

}  // namespace shoal::ref
