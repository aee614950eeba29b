#include "program/crc32c.hpp"

#include <array>

namespace shoal::program {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

using Tables = std::array<std::array<uint32_t, 256>, 8>;

// t[0] is the classic byte table; t[k][b] is the CRC of byte b followed by k
// zero bytes, which lets the main loop fold 8 input bytes per step.
constexpr Tables make_tables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][b] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
  return t;
}

constexpr Tables kTables = make_tables();

inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

uint32_t crc32c_table(const void* data, size_t n, uint32_t crc) noexcept;

#if defined(__x86_64__)
// Shifting a CRC over zero bytes is a multiplication by a power of x modulo
// the polynomial (bit-reflected, as zlib's crc32_combine does it): what
// joins the CRCs of blocks computed apart.
uint32_t multmodp(uint32_t a, uint32_t b) noexcept {
  uint32_t m = 1u << 31, prod = 0;
  for (;;) {
    if (a & m) {
      prod ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return prod;
}

/// x^(8 n) modulo the polynomial: shifts a CRC over n zero bytes.
uint32_t x8nmodp(uint64_t n) noexcept {
  uint32_t p = 1u << 31;                                 // x^0
  uint32_t x2k = 1u << 30;                               // x^(2^k), k = 0
  for (int k = 0; k < 3; ++k) x2k = multmodp(x2k, x2k);  // x^8
  for (; n; n >>= 1, x2k = multmodp(x2k, x2k))
    if (n & 1) p = multmodp(x2k, p);
  return p;
}

/// The CRC of a ++ b from crc(a) and crc(b), b being `shift_b` = x8nmodp of
/// its length.
inline uint32_t combine(uint32_t crc_a, uint32_t crc_b, uint32_t shift_b) noexcept {
  return multmodp(shift_b, crc_a) ^ crc_b;
}

// SSE4.2's crc32 instruction computes exactly this CRC, 8 bytes a step, but
// each step waits for the previous one (3 cycles). Three blocks are run side
// by side, their CRCs joined: about 3x the speed of one chain (~8 bytes a
// cycle), which is most of a big program's load time.
__attribute__((target("sse4.2"))) uint32_t chain(uint64_t c, const uint8_t* p, size_t n) noexcept {
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  uint32_t c32 = uint32_t(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

constexpr size_t kBlock = 16384;  // bytes per chain; a multiple of 8

__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(const void* data, size_t n,
                                                        uint32_t crc) noexcept {
  const auto* p = static_cast<const uint8_t*>(data);
  static const uint32_t shift = x8nmodp(kBlock);
  for (; n >= 3 * kBlock; p += 3 * kBlock, n -= 3 * kBlock) {
    uint64_t a = ~crc, b = ~0u, c = ~0u;  // b and c start fresh, joined below
    const uint8_t* pb = p + kBlock;
    const uint8_t* pc = p + 2 * kBlock;
    for (size_t i = 0; i < kBlock; i += 8) {
      uint64_t va, vb, vc;
      __builtin_memcpy(&va, p + i, 8);
      __builtin_memcpy(&vb, pb + i, 8);
      __builtin_memcpy(&vc, pc + i, 8);
      a = __builtin_ia32_crc32di(a, va);
      b = __builtin_ia32_crc32di(b, vb);
      c = __builtin_ia32_crc32di(c, vc);
    }
    crc = combine(combine(~uint32_t(a), ~uint32_t(b), shift), ~uint32_t(c), shift);
  }
  return ~chain(~crc, p, n);
}
#endif

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) noexcept {
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return crc32c_sse42(data, n, crc);
#endif
  return crc32c_table(data, n, crc);
}

namespace {

uint32_t crc32c_table(const void* data, size_t n, uint32_t crc) noexcept {
  const auto* p = static_cast<const uint8_t*>(data);
  const auto& t = kTables;
  crc = ~crc;
  while (n >= 8) {
    uint32_t lo = load_le32(p) ^ crc;
    uint32_t hi = load_le32(p + 4);
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
          t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xFF];
  return ~crc;
}

}  // namespace

}  // namespace shoal::program
