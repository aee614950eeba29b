// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI,
// ext4 and SSE4.2's crc32 instruction. Check value: crc32c("123456789") ==
// 0xE3069283. SSE4.2's crc32 instruction where the CPU has it (three chains
// side by side, joined), else table-driven (slicing-by-8); no dependency.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shoal::program {

/// CRC of `n` bytes at `data`. Pass a previous result as `crc` to continue a
/// running checksum: crc32c(b, nb, crc32c(a, na)) == crc32c(a ++ b).
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0) noexcept;

}  // namespace shoal::program
