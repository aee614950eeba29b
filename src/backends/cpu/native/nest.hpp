// A loop nest over up to three strided operands: the one mechanism behind
// every native kernel's broadcasting, layout handling (plain or
// channels-last operands, mixed freely) and threading.
//
// An operand is described by its element stride along each logical dim of
// the iteration space (0 where it is broadcast or reduced). make_nest orders
// the dims by the memory order of one operand, drops size-1 dims and merges
// dims that stay contiguous for every operand, so a channels-last tensor
// times a per-channel [1,C,1,1] scale becomes rows of C contiguous elements
// against one contiguous scale vector, and a plain one rows of H*W elements
// against a scalar. for_rows then calls a loop of loops.hpp once per row.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "program/program_data.hpp"

namespace shoal::cpu::native {

constexpr int kMaxOperands = 3;
constexpr int kMaxDims = 8;

struct Nest {
  int operands = 0;
  int dims = 0;  // >= 1; the last is the row
  std::array<int64_t, kMaxDims> extent{};
  std::array<std::array<int64_t, kMaxDims>, kMaxOperands> stride{};
  int64_t rows() const;
  int64_t row_length() const { return extent[size_t(dims - 1)]; }
};

/// Element strides of tensor `t` along its logical dims, in its layout
/// (plain: row-major; channels_last: N, spatial..., C in memory).
std::vector<int64_t> layout_strides(const program::TensorDesc& t);
/// Strides of `t` for an iteration space of shape `space`, numpy
/// broadcasting `t`'s shape into it (right-aligned; stride 0 where t's dim is
/// 1 and the space's is not). False when `t` does not broadcast to `space`.
bool broadcast_strides(const program::TensorDesc& t, const Shape& space,
                       std::vector<int64_t>& strides);

/// The nest over `space` for the operands' strides (one vector per operand,
/// each of space's rank), dims ordered by operand `order_by`'s strides
/// (largest first; ties keep logical order).
Nest make_nest(const Shape& space, const std::vector<std::vector<int64_t>>& strides,
               int order_by = 0);

/// Calls row(offsets, n) for every row of the nest: `offsets[k]` is operand
/// k's element offset of the row's first element, n its length. With
/// threads > 1 and enough work, rows (or, for one long row, pieces of it) are
/// shared over an OpenMP team; only dims where operand `writer` has a
/// non-zero stride are split, so no two threads write one element.
/// `work_per_element` scales the work a team must have (a row call that
/// reduces that many input rows into each element).
template <class Row>
void for_rows(const Nest& nest, int threads, int writer, Row&& row, int64_t work_per_element = 1);

}  // namespace shoal::cpu::native

#include "backends/cpu/native/nest_impl.hpp"
