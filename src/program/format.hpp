// Private constants and entry points of the program file format, shared by
// the writer (serialize.cpp), the reader (deserialize.cpp) and the tests.
// docs/PROGRAM_FORMAT.md is the specification; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "program/program_data.hpp"

namespace shoal::program::format {

inline constexpr char kMagic[8] = {'S', 'H', 'O', 'A', 'L', 'P', 'R', 'G'};

// Fixed part of the header; byte offsets of its fields.
inline constexpr uint64_t kFixedHeaderSize = 40;
inline constexpr uint64_t kOffMagic = 0;
inline constexpr uint64_t kOffVersion = 8;
inline constexpr uint64_t kOffHeaderSize = 12;
inline constexpr uint64_t kOffFlags = 16;
inline constexpr uint64_t kOffSectionCount = 20;
inline constexpr uint64_t kOffFileSize = 24;
inline constexpr uint64_t kOffHeaderCrc = 32;
// Version 2: u8 major, u8 minor, u8 patch of the writing shoal, then a zero
// byte (version 1: a reserved u32, 0). Like the magic and kOffVersion, it
// keeps its place in every later version, so that any reader can name the
// shoal that wrote a file it cannot load.
inline constexpr uint64_t kOffProducerVersion = 36;

// Section table entry: kind u32, crc u32, offset u64, size u64.
inline constexpr uint64_t kSectionEntrySize = 24;

enum class SectionKind : uint32_t {
  meta = 1,
  tensors = 2,
  instructions = 3,
  weights = 4,
};
// Version 1 has exactly these sections, in this order, in table and file.
inline constexpr uint32_t kSectionCount = 4;
inline constexpr SectionKind kSectionOrder[kSectionCount] = {
    SectionKind::meta, SectionKind::tensors, SectionKind::instructions,
    SectionKind::weights};
inline constexpr uint64_t kHeaderSize =
    kFixedHeaderSize + kSectionCount * kSectionEntrySize;  // 136
// Alignment of the start of non-weight sections (WEIGHTS uses kWeightAlign).
inline constexpr uint64_t kSectionAlign = 8;

inline const char* section_name(SectionKind k) {
  switch (k) {
    case SectionKind::meta:
      return "META";
    case SectionKind::tensors:
      return "TENSORS";
    case SectionKind::instructions:
      return "INSTRUCTIONS";
    case SectionKind::weights:
      return "WEIGHTS";
  }
  return "UNKNOWN";
}

// AttrValue encoding tags (one byte before each attribute's payload).
enum class AttrTag : uint8_t {
  int64 = 1,
  float32 = 2,
  string = 3,
  ints = 4,
  floats = 5,
  tensor = 6,
};

// Sanity limits the reader enforces ("absurd" values are rejected).
inline constexpr uint32_t kMaxRank = 32;
inline constexpr int kMaxDevices = 1 << 16;
inline constexpr int kMaxClusters = 1 << 16;
inline constexpr uint64_t kMaxArenaBytes = uint64_t(1) << 48;
inline constexpr uint64_t kMaxTensorBytes = uint64_t(1) << 62;

struct ParseOptions {
  bool verify_checksums = true;
  // false: `weights` points into the parsed buffer and `keepalive` is stored.
  bool copy_weights = true;
  std::shared_ptr<void> keepalive;
};

/// The writer behind serialize(), without its validation (tests use it to
/// produce invalid files).
std::vector<uint8_t> encode(const ProgramData& p);

/// The reader behind deserialize(); serialize() also runs it (without
/// checksums, without copying) to validate what it wrote.
std::shared_ptr<ProgramData> parse(const uint8_t* bytes, size_t size,
                                   const ParseOptions& options);

}  // namespace shoal::program::format
