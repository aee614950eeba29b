// The code paths the fuzz targets drive, shared with the regression test
// (tests/cpp/test_fuzz_regressions.cpp) so that every saved reproducer goes
// through exactly what the fuzzer ran. Each function either returns or throws
// shoal::Error; anything else (a crash, another exception, a sanitizer
// report) is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "program/crc32c.hpp"
#include "shoal/shoal.hpp"

namespace shoal::fuzz {

/// Bytes -> compile_bytes, and a compiled program must serialize and load.
inline void compile_onnx(const uint8_t* data, size_t size) {
  CompileOptions options;
  options.prepack = false;  // no oneDNN packing: the import is under test
  Program p = compile_bytes(data, size, options);
  std::vector<uint8_t> bytes = p.to_bytes();
  Program::from_bytes(bytes.data(), bytes.size());
}

/// A copy of a would-be program file whose CRC-32C fields (section table and
/// header, docs/PROGRAM_FORMAT.md) are recomputed, so that mutations reach
/// the parser behind the checksums. Bytes too short or with the wrong magic
/// are returned as they are.
inline std::vector<uint8_t> fix_checksums(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  constexpr size_t kHeader = 136, kCrc = 32, kTable = 40, kEntry = 24;
  if (size < kHeader || std::memcmp(data, "SHOALPRG", 8) != 0) return b;
  auto u64_at = [&](size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | b[at + size_t(i)];
    return v;
  };
  auto put_u32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + size_t(i)] = uint8_t(v >> (8 * i));
  };
  for (size_t e = kTable; e < kHeader; e += kEntry) {
    const uint64_t offset = u64_at(e + 8), n = u64_at(e + 16);
    if (offset <= size && n <= size - offset)
      put_u32(e + 4, program::crc32c(b.data() + offset, size_t(n)));
  }
  put_u32(kCrc, 0);
  put_u32(kCrc, program::crc32c(b.data(), kHeader));
  return b;
}

/// What the program target is willing to run. A fuzzed program may
/// legitimately ask for gigabytes of arena or thousands of cluster threads;
/// running those is correct but would only make the fuzzer slow or trip its
/// memory limit, so they are loaded and described but not run.
inline bool small_enough_to_run(const Program& p) {
  constexpr uint64_t kMaxBytes = uint64_t(64) << 20;
  return p.devices() == 1 && p.clusters() <= 4 && p.arena_bytes() <= kMaxBytes &&
         p.weight_bytes() <= kMaxBytes && p.num_instructions() <= 4096;
}

/// Bytes (checksums fixed) -> Program::from_bytes; when they load, a Runtime
/// on one device running one all-zero input sample.
inline void load_and_run_program(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes = fix_checksums(data, size);
  Program p = Program::from_bytes(bytes.data(), bytes.size());
  p.describe();
  if (!small_enough_to_run(p)) return;
  RuntimeOptions options;
  options.devices = {0};
  options.share_devices = true;
  Runtime rt(p, options);
  std::vector<Tensor> inputs;
  for (const TensorInfo& info : p.inputs()) {
    Shape shape = info.shape;  // one sample; the runtime's batch dim is 1
    if (shape.empty() || shape[0] != 1) shape.insert(shape.begin(), 1);
    inputs.emplace_back(info.dtype, shape);
  }
  rt.run(inputs);
}

}  // namespace shoal::fuzz
