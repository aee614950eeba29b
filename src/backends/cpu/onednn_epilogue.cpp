// Native epilogues of the oneDNN kernels (onednn_epilogue.hpp).
#include "backends/cpu/onednn_epilogue.hpp"

#include <algorithm>

#include "backends/cpu/native/kernel.hpp"
#include "backends/cpu/omp_team.hpp"
#include "reference/geometry.hpp"

namespace shoal::cpu::onednn {
namespace {

/// Pieces of at most this many floats share an epilogue out among threads.
constexpr int64_t kPiece = 16384;

}  // namespace

bool native_activation(const Attrs& a, native::UnaryOp& f) {
  return ref::activation_from_attrs(a).kind == ref::Act::silu && native::fused_unary(a, f);
}

void Epilogue::add_run(int64_t at, int64_t count) {
  for (int64_t o = 0; o < count; o += kPiece)
    pieces_.emplace_back(at + o, std::min(kPiece, count - o));
}

void Epilogue::apply(float* base, int threads) const {
  const native::Loops& L = native::loops();
  const int64_t m = int64_t(pieces_.size());
  threads = team_threads(threads);
  if (threads <= 1 || m < 2) {
    for (const auto& [at, len] : pieces_) L.unary(f_, base + at, 1, base + at, len);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < m; ++i) {
    const auto& [at, len] = pieces_[size_t(i)];
    L.unary(f_, base + at, 1, base + at, len);
  }
}

}  // namespace shoal::cpu::onednn
