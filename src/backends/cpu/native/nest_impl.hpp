// for_rows, included by nest.hpp.
#pragma once

#include <omp.h>

#include <algorithm>

namespace shoal::cpu::native {

namespace detail {

/// Runs the rows whose index along dim `split` lies in [lo, hi) (all rows
/// when split < 0). When split is the row dim, the row itself is cut.
template <class Row>
void run_range(const Nest& nest, int split, int64_t lo, int64_t hi, Row& row) {
  const int d = nest.dims, k = nest.operands;
  std::array<int64_t, kMaxDims> begin{}, end{}, idx{};
  for (int i = 0; i < d; ++i) {
    begin[size_t(i)] = 0;
    end[size_t(i)] = nest.extent[size_t(i)];
  }
  if (split >= 0) {
    begin[size_t(split)] = lo;
    end[size_t(split)] = hi;
  }
  if (begin[size_t(d - 1)] >= end[size_t(d - 1)]) return;
  for (int i = 0; i < d; ++i) {
    if (begin[size_t(i)] >= end[size_t(i)]) return;
    idx[size_t(i)] = begin[size_t(i)];
  }
  const int64_t n = end[size_t(d - 1)] - begin[size_t(d - 1)];
  std::array<int64_t, kMaxOperands> off{};
  for (;;) {
    for (int o = 0; o < k; ++o) {
      int64_t v = 0;
      for (int i = 0; i < d; ++i) v += idx[size_t(i)] * nest.stride[size_t(o)][size_t(i)];
      off[size_t(o)] = v;
    }
    row(off.data(), n);
    int i = d - 2;
    for (; i >= 0; --i) {
      if (++idx[size_t(i)] < end[size_t(i)]) break;
      idx[size_t(i)] = begin[size_t(i)];
    }
    if (i < 0) return;
  }
}

}  // namespace detail

template <class Row>
void for_rows(const Nest& nest, int threads, int writer, Row&& row, int64_t work_per_element) {
  int64_t total = work_per_element;
  for (int i = 0; i < nest.dims; ++i) total *= nest.extent[size_t(i)];
  // Below ~32K elements a team costs more than it saves.
  if (threads <= 1 || total < (int64_t(1) << 15)) {
    detail::run_range(nest, -1, 0, 0, row);
    return;
  }
  // The outermost dim the writer walks with at least `threads` pieces.
  int split = -1;
  for (int i = 0; i < nest.dims; ++i)
    if (nest.stride[size_t(writer)][size_t(i)] != 0 && nest.extent[size_t(i)] >= threads) {
      split = i;
      break;
    }
  if (split < 0) {
    detail::run_range(nest, -1, 0, 0, row);
    return;
  }
  const int64_t ext = nest.extent[size_t(split)];
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t lo = ext * t / nt, hi = ext * (t + 1) / nt;
    if (split == nest.dims - 1) {  // cut the row at 16-element boundaries
      lo = lo / 16 * 16;
      hi = t == nt - 1 ? ext : hi / 16 * 16;
    }
    detail::run_range(nest, split, lo, hi, row);
  }
}

}  // namespace shoal::cpu::native
