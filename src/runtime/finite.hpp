// Finding NaN and Inf in float32 inputs: the runtime scans each chunk of a
// batch before it runs (ExecContext::nonfinite) and, with
// RuntimeOptions::check_inputs, rejects such inputs.
#pragma once

#include <cstdint>
#include <cstring>

namespace shoal::runtime {

/// Index of the first NaN or Inf among x[0, n), or -1 when all are finite.
/// Bit tests (all exponent bits set), so it vectorizes and ignores the FP
/// environment.
inline int64_t first_nonfinite(const float* x, int64_t n) {
  constexpr int64_t kBlock = 256;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = b + kBlock < n ? b + kBlock : n;
    uint32_t any = 0;
    for (int64_t i = b; i < e; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, 4);
      any |= uint32_t((u & 0x7f800000u) == 0x7f800000u);
    }
    if (any)
      for (int64_t i = b; i < e; ++i) {
        uint32_t u;
        std::memcpy(&u, x + i, 4);
        if ((u & 0x7f800000u) == 0x7f800000u) return i;
      }
  }
  return -1;
}

}  // namespace shoal::runtime
