#include "compiler/memory_plan.hpp"

#include <algorithm>
#include <numeric>

namespace shoal::compiler {

uint64_t plan_arena(std::vector<Buffer>& buffers, uint64_t align) {
  auto round_up = [align](uint64_t x) { return (x + align - 1) / align * align; };
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return buffers[a].bytes > buffers[b].bytes;
  });
  std::vector<size_t> placed;
  uint64_t arena = 0;
  for (size_t i : order) {
    Buffer& b = buffers[i];
    const uint64_t need = round_up(std::max<uint64_t>(b.bytes, 1));
    // Address ranges taken by buffers alive at the same time, sorted.
    std::vector<std::pair<uint64_t, uint64_t>> busy;
    for (size_t j : placed) {
      const Buffer& o = buffers[j];
      if (o.first <= b.last && b.first <= o.last)
        busy.push_back({o.offset, o.offset + round_up(std::max<uint64_t>(o.bytes, 1))});
    }
    std::sort(busy.begin(), busy.end());
    // Best fit: the smallest gap that holds the buffer, else the end.
    uint64_t best = UINT64_MAX, best_gap = UINT64_MAX, cursor = 0;
    for (auto [lo, hi] : busy) {
      if (lo > cursor && lo - cursor >= need && lo - cursor < best_gap) {
        best = cursor;
        best_gap = lo - cursor;
      }
      cursor = std::max(cursor, hi);
    }
    b.offset = best != UINT64_MAX ? best : cursor;
    arena = std::max(arena, b.offset + need);
    placed.push_back(i);
  }
  return arena;
}

}  // namespace shoal::compiler
