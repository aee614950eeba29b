// The program file format: round trips, load_file, and every class of
// corruption the loader must reject with Error(invalid_argument).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "core/attrs.hpp"
#include "program/crc32c.hpp"
#include "program/format.hpp"
#include "program/program_data.hpp"
#include "shoal/error.hpp"
#include "shoal/version.h"

namespace shoal::program {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// --- helpers ----------------------------------------------------------------

HostTensor make_tensor(DType dtype, Shape shape) {
  HostTensor t(dtype, std::move(shape));
  auto* b = static_cast<uint8_t*>(t.data());
  for (size_t k = 0; k < t.bytes(); ++k) b[k] = uint8_t(k * 7 + 3);
  return t;
}

TensorDesc desc(std::string name, DType dtype, Shape shape, Storage storage,
                uint64_t offset, uint64_t bytes, Layout layout = Layout::plain,
                Bytes packing = {}) {
  TensorDesc t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.storage = storage;
  t.layout = layout;
  t.offset = offset;
  t.bytes = bytes;
  t.packing = std::move(packing);
  return t;
}

// A small program with tensors of each storage and layout, instructions with
// every attribute kind, and 320 bytes of weights.
struct Sample {
  ProgramData p;
  Bytes weights;
};

Sample make_sample() {
  Sample s;
  ProgramData& p = s.p;
  p.version = kFormatVersion;
  p.target = "cpu";
  p.producer = "shoal test";
  p.model_name = "tiny";
  p.devices = 2;
  p.clusters = 3;
  p.mode = Mode::split;
  p.arena_bytes = 4096;
  p.tensors = {
      desc("x", DType::f32, {1, 3, 4, 4}, Storage::activation, 0, 192),
      desc("w", DType::f32, {2, 3, 1, 1}, Storage::weight, 0, 24),
      desc("w_packed", DType::f32, {2, 3, 2, 2}, Storage::weight, 64, 128,
           Layout::packed, {1, 2, 3, 4, 5}),
      desc("shape", DType::i64, {4}, Storage::weight, 192, 32),
      desc("y", DType::f32, {1, 2, 4, 4}, Storage::activation, 256, 128),
      desc("q", DType::i8, {1, 2, 4, 4}, Storage::activation, 384, 40),
      desc("scalar", DType::f64, {}, Storage::activation, 512, 8),
      desc("empty", DType::u8, {0, 5}, Storage::activation, 4096, 0),
      desc("mask", DType::boolean, {3}, Storage::weight, 256, 3),
  };
  Instruction conv;
  conv.op = "Conv";
  conv.name = "conv_0";
  conv.inputs = {0, 1, -1};
  conv.outputs = {4};
  conv.flops = 1234.5;
  conv.attrs.set("group", int64_t(1));
  conv.attrs.set("alpha", 0.25f);
  conv.attrs.set("auto_pad", std::string("NOTSET"));
  conv.attrs.set("empty_str", std::string());
  conv.attrs.set("pads", std::vector<int64_t>{0, 0, -1, 1LL << 40});
  conv.attrs.set("no_ints", std::vector<int64_t>{});
  conv.attrs.set("scales", std::vector<float>{1.5f, -2.0f, 1e-30f});
  conv.attrs.set("no_floats", std::vector<float>{});
  conv.attrs.set("value", make_tensor(DType::f32, {2, 3}));
  conv.attrs.set("ivalue", make_tensor(DType::i64, {4}));
  conv.attrs.set("scalar_t", make_tensor(DType::u8, {}));
  conv.attrs.set("zero_t", make_tensor(DType::i32, {0, 3}));
  conv.attrs.set("undef_t", HostTensor());
  Instruction quant;
  quant.op = "QuantizeLinear";
  quant.name = "";
  quant.inputs = {4};
  quant.outputs = {5, 6};
  Instruction plain;
  plain.op = "Identity";
  plain.name = "id";
  plain.inputs = {5};
  plain.outputs = {7};
  p.instructions = {conv, quant, plain};
  p.inputs = {0};
  p.outputs = {5, 6};
  s.weights.resize(320);
  for (size_t k = 0; k < s.weights.size(); ++k)
    s.weights[k] = uint8_t(k * 31 + 1);
  p.weights = s.weights.data();
  p.weights_bytes = s.weights.size();
  return s;
}

void expect_same(const ProgramData& a, const ProgramData& b) {
  EXPECT_EQ(b.version, kFormatVersion);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.producer, b.producer);
  EXPECT_EQ(a.model_name, b.model_name);
  EXPECT_EQ(a.devices, b.devices);
  EXPECT_EQ(a.clusters, b.clusters);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.arena_bytes, b.arena_bytes);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.outputs, b.outputs);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorDesc &x = a.tensors[i], &y = b.tensors[i];
    SCOPED_TRACE("tensor " + std::to_string(i));
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.dtype, y.dtype);
    EXPECT_EQ(x.shape, y.shape);
    EXPECT_EQ(x.storage, y.storage);
    EXPECT_EQ(x.layout, y.layout);
    EXPECT_EQ(x.offset, y.offset);
    EXPECT_EQ(x.bytes, y.bytes);
    EXPECT_EQ(x.packing, y.packing);
  }
  ASSERT_EQ(a.instructions.size(), b.instructions.size());
  for (size_t i = 0; i < a.instructions.size(); ++i) {
    const Instruction &x = a.instructions[i], &y = b.instructions[i];
    SCOPED_TRACE("instruction " + std::to_string(i));
    EXPECT_EQ(x.op, y.op);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.inputs, y.inputs);
    EXPECT_EQ(x.outputs, y.outputs);
    EXPECT_EQ(x.flops, y.flops);
    EXPECT_EQ(x.attrs.items().size(), y.attrs.items().size());
    EXPECT_TRUE(x.attrs == y.attrs);
  }
  ASSERT_EQ(a.weights_bytes, b.weights_bytes);
  if (a.weights_bytes) {
    ASSERT_NE(b.weights, nullptr);
    EXPECT_EQ(std::memcmp(a.weights, b.weights, a.weights_bytes), 0);
  }
}

// Runs f; expects Error(invalid_argument) whose message has every word.
void expect_error(const std::function<void()>& f,
                  const std::vector<std::string>& words) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << e.what();
    std::string msg = e.what();
    for (const auto& w : words)
      EXPECT_NE(msg.find(w), std::string::npos)
          << "message lacks '" << w << "': " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-shoal exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "did not throw; expected an error with '"
                << (words.empty() ? "" : words[0]) << "'";
}

void expect_bad(const Bytes& b, const std::vector<std::string>& words) {
  expect_error([&] { deserialize(b.data(), b.size(), nullptr); }, words);
}

uint32_t get32(const Bytes& b, size_t at) {
  return uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 |
         uint32_t(b[at + 2]) << 16 | uint32_t(b[at + 3]) << 24;
}
uint64_t get64(const Bytes& b, size_t at) {
  return uint64_t(get32(b, at)) | uint64_t(get32(b, at + 4)) << 32;
}
void put32(Bytes& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(v >> (8 * i));
}
void put64(Bytes& b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = uint8_t(v >> (8 * i));
}

size_t entry(int section) {
  return format::kFixedHeaderSize + section * format::kSectionEntrySize;
}
uint64_t section_offset(const Bytes& b, int section) {
  return get64(b, entry(section) + 8);
}
uint64_t section_size(const Bytes& b, int section) {
  return get64(b, entry(section) + 16);
}

// Recomputes every checksum after a test edited the bytes on purpose, so
// that the loader's other checks are what rejects the file.
void reseal(Bytes& b) {
  for (int i = 0; i < int(format::kSectionCount); ++i) {
    uint64_t off = section_offset(b, i), size = section_size(b, i);
    if (off <= b.size() && size <= b.size() - off)
      put32(b, entry(i) + 4, crc32c(b.data() + off, size));
  }
  put32(b, format::kOffHeaderCrc, 0);
  put32(b, format::kOffHeaderCrc, crc32c(b.data(), format::kHeaderSize));
}

// 64-aligned heap copy of `b`, owned by the returned keepalive.
std::shared_ptr<void> aligned_copy(const Bytes& b) {
  void* mem = ::operator new(b.size() + 1, std::align_val_t(64));
  if (!b.empty()) std::memcpy(mem, b.data(), b.size());
  return std::shared_ptr<void>(
      mem, [](void* m) { ::operator delete(m, std::align_val_t(64)); });
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() /
          ("shoal_progfmt_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void write_file(const std::string& path, const Bytes& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

// --- CRC --------------------------------------------------------------------

uint32_t crc32c_bitwise(const uint8_t* p, size_t n) {
  uint32_t c = ~0u;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

TEST(ProgramFormatCrc, CheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(ProgramFormatCrc, MatchesBitwiseAndChains) {
  std::mt19937 rng(7);
  Bytes data(1000);
  for (auto& x : data) x = uint8_t(rng());
  for (size_t n : {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 999, 1000}) {
    for (size_t start : {0, 1, 3}) {
      if (start + n > data.size()) continue;
      uint32_t want = crc32c_bitwise(data.data() + start, n);
      EXPECT_EQ(crc32c(data.data() + start, n), want) << n << " @" << start;
      size_t half = n / 3;
      EXPECT_EQ(crc32c(data.data() + start + half, n - half,
                       crc32c(data.data() + start, half)),
                want);
    }
  }
}

// Long inputs take the three-chain path (blocks of 16 KiB, joined): lengths
// around the block boundaries, and a running CRC carried in.
TEST(ProgramFormatCrc, LongInputsMatchBitwise) {
  constexpr size_t kBlock = 16384;
  std::mt19937 rng(11);
  Bytes data(8 * kBlock + 100);
  for (auto& x : data) x = uint8_t(rng());
  for (size_t n : {3 * kBlock - 1, 3 * kBlock, 3 * kBlock + 1, 3 * kBlock + 8, 6 * kBlock,
                   7 * kBlock + 13, 8 * kBlock + 100}) {
    for (size_t start : {size_t(0), size_t(5)}) {
      if (start + n > data.size()) continue;
      const uint32_t want = crc32c_bitwise(data.data() + start, n);
      EXPECT_EQ(crc32c(data.data() + start, n), want) << n << " @" << start;
      const size_t head = 12345;
      EXPECT_EQ(crc32c(data.data() + start + head, n - head, crc32c(data.data() + start, head)),
                want)
          << n << " @" << start << ", continued";
    }
  }
}

// --- round trips ------------------------------------------------------------

TEST(ProgramFormat, HeaderLayout) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  EXPECT_EQ(std::memcmp(b.data(), "SHOALPRG", 8), 0);
  EXPECT_EQ(get32(b, format::kOffVersion), kFormatVersion);
  EXPECT_EQ(get32(b, format::kOffHeaderSize), format::kHeaderSize);
  EXPECT_EQ(get32(b, format::kOffSectionCount), 4u);
  EXPECT_EQ(get64(b, format::kOffFileSize), b.size());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(get32(b, entry(i)), uint32_t(i + 1));
  EXPECT_EQ(section_offset(b, 0), format::kHeaderSize);
  EXPECT_EQ(section_offset(b, 3) % kWeightAlign, 0u);
  EXPECT_EQ(section_size(b, 3), 320u);
  EXPECT_EQ(section_offset(b, 3) + section_size(b, 3), b.size());
}

TEST(ProgramFormat, RoundTripCopies) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  auto q = deserialize(b.data(), b.size(), nullptr);
  expect_same(s.p, *q);
  EXPECT_EQ(q->keepalive, nullptr);
  // The weights were copied into owned_weights, 64-aligned there.
  const uint8_t* own = q->owned_weights.data();
  EXPECT_GE(q->weights, own);
  EXPECT_LE(q->weights + q->weights_bytes, own + q->owned_weights.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q->weights) % kWeightAlign, 0u);
  // Dropping the input buffer does not affect the copy.
  Bytes copy = b;
  std::fill(b.begin(), b.end(), 0);
  EXPECT_EQ(serialize(*q), copy);
}

TEST(ProgramFormat, RoundTripZeroCopy) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  std::shared_ptr<void> buf = aligned_copy(b);
  const auto* base = static_cast<const uint8_t*>(buf.get());
  auto q = deserialize(base, b.size(), buf);
  expect_same(s.p, *q);
  EXPECT_EQ(q->keepalive.get(), buf.get());
  EXPECT_TRUE(q->owned_weights.empty());
  EXPECT_EQ(q->weights, base + section_offset(b, 3));
  EXPECT_EQ(size_t(q->weights - base) % kWeightAlign, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q->weights) % kWeightAlign, 0u);
  // Weight tensor offsets are relative to the section, so aligned too.
  for (const auto& t : q->tensors) {
    if (t.storage == Storage::weight) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(q->weights + t.offset) % 64, 0u);
    }
  }
  // The program keeps the buffer alive on its own.
  buf.reset();
  EXPECT_EQ(std::memcmp(q->weights, s.weights.data(), s.weights.size()), 0);
}

TEST(ProgramFormat, SerializeIsDeterministicAndStable) {
  Sample s = make_sample();
  Bytes a = serialize(s.p);
  EXPECT_EQ(serialize(s.p), a);
  auto q = deserialize(a.data(), a.size(), nullptr);
  EXPECT_EQ(serialize(*q), a);
}

TEST(ProgramFormat, EmptyProgramRoundTrips) {
  ProgramData p;
  Bytes b = serialize(p);
  EXPECT_EQ(b.size() % kWeightAlign, 0u);  // ends where WEIGHTS (empty) starts
  auto q = deserialize(b.data(), b.size(), nullptr);
  expect_same(p, *q);
  EXPECT_EQ(q->weights_bytes, 0u);
}

TEST(ProgramFormat, SerializeUsesOwnedWeightsWithoutPointer) {
  Sample s = make_sample();
  s.p.owned_weights = s.weights;
  s.p.weights = nullptr;
  s.p.weights_bytes = 0;
  Bytes b = serialize(s.p);
  auto q = deserialize(b.data(), b.size(), nullptr);
  EXPECT_EQ(q->weights_bytes, s.weights.size());
  EXPECT_EQ(std::memcmp(q->weights, s.weights.data(), s.weights.size()), 0);
}

TEST(ProgramFormat, LoadFile) {
  Sample s = make_sample();
  std::string path = temp_path("ok.shoal");
  write_file(path, serialize(s.p));
  auto q = load_file(path);
  fs::remove(path);  // the mapping outlives the name
  expect_same(s.p, *q);
  EXPECT_NE(q->keepalive, nullptr);
  EXPECT_TRUE(q->owned_weights.empty());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q->weights) % kWeightAlign, 0u);
}

// --- serialize refuses what deserialize would reject -------------------------

TEST(ProgramFormatSerialize, RejectsInvalidPrograms) {
  {
    Sample s = make_sample();
    s.p.tensors[1].offset = 8;
    expect_error([&] { serialize(s.p); },
                 {"cannot serialize", "'w'", "multiple of 64"});
  }
  {
    Sample s = make_sample();
    s.p.instructions[0].inputs[0] = 42;
    expect_error([&] { serialize(s.p); }, {"cannot serialize", "out of range"});
  }
  {
    Sample s = make_sample();
    s.p.weights = nullptr;
    expect_error([&] { serialize(s.p); }, {"cannot serialize", "null"});
  }
}

// --- load_file errors -------------------------------------------------------

TEST(ProgramFormatLoad, MissingFile) {
  std::string path = temp_path("does_not_exist.shoal");
  expect_error([&] { load_file(path); }, {path, "No such file"});
}

TEST(ProgramFormatLoad, Directory) {
  std::string path = temp_path("dir");
  fs::create_directory(path);
  expect_error([&] { load_file(path); }, {path, "directory"});
  fs::remove(path);
}

TEST(ProgramFormatLoad, EmptyFile) {
  std::string path = temp_path("empty.shoal");
  write_file(path, {});
  expect_error([&] { load_file(path); }, {path, "empty"});
  fs::remove(path);
}

TEST(ProgramFormatLoad, NotAProgram) {
  std::string path = temp_path("text.shoal");
  std::string text = "hello, this is not a program file at all\n";
  write_file(path, Bytes(text.begin(), text.end()));
  expect_error([&] { load_file(path); }, {path, "not a shoal program file"});
  fs::remove(path);
}

TEST(ProgramFormatLoad, CorruptFileNamesPath) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  b[section_offset(b, 1) + 2] ^= 0x10;
  std::string path = temp_path("corrupt.shoal");
  write_file(path, b);
  expect_error([&] { load_file(path); }, {path, "checksum", "TENSORS"});
  fs::remove(path);
}

TEST(ProgramFormatLoad, UnreadableFile) {
  Sample s = make_sample();
  std::string path = temp_path("locked.shoal");
  write_file(path, serialize(s.p));
  ::chmod(path.c_str(), 0);
  // Root reads any file: this thread's file-system uid becomes nobody's for
  // the load (dropping the file capabilities with it), as CI runs as root.
  const bool root = ::geteuid() == 0;
  if (root) ::setfsuid(65534);
  expect_error([&] { load_file(path); }, {path, "Permission denied"});
  if (root) ::setfsuid(0);
  fs::remove(path);
}

// --- corruption -------------------------------------------------------------

TEST(ProgramFormatCorrupt, TruncatedAtEveryLength) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  for (size_t n = 0; n < b.size(); ++n) {
    SCOPED_TRACE("length " + std::to_string(n));
    Bytes cut(b.begin(), b.begin() + n);
    expect_bad(cut, {"truncated"});
    std::shared_ptr<void> buf = aligned_copy(cut);
    expect_error(
        [&] { deserialize(static_cast<const uint8_t*>(buf.get()), n, buf); },
        {"truncated"});
  }
  expect_error([&] { deserialize(nullptr, 0, nullptr); }, {"truncated"});
}

TEST(ProgramFormatCorrupt, TruncationNamesSection) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  uint64_t off = section_offset(b, 1);
  Bytes cut(b.begin(), b.begin() + off + 5);
  expect_bad(cut,
             {"truncated at offset " + std::to_string(off), "section TENSORS",
              "expected " + std::to_string(section_size(b, 1)) + " bytes"});
}

TEST(ProgramFormatCorrupt, TrailingBytes) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  b.push_back(0);
  expect_bad(b, {"trailing"});
}

TEST(ProgramFormatCorrupt, EveryByteFlipped) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  for (size_t i = 0; i < b.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xFF}) {
      SCOPED_TRACE("byte " + std::to_string(i) + " ^ " + std::to_string(mask));
      Bytes c = b;
      c[i] ^= mask;
      expect_bad(c, {});
    }
  }
}

TEST(ProgramFormatCorrupt, BadMagic) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  b[3] = 'x';
  expect_bad(b, {"not a shoal program file", "offset 0"});
  expect_bad(Bytes{'P', 'K', 3}, {"not a shoal program file"});
}

TEST(ProgramFormatCorrupt, FutureAndPastVersions) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  put32(b, format::kOffVersion, 7);
  put32(b, format::kOffProducerVersion, 0x0a0302);  // written by shoal 2.3.10
  reseal(b);
  // Both format versions and both shoal versions.
  expect_bad(b, {"program format version 7 (written by shoal 2.3.10) is newer than this shoal " +
                     std::string(SHOAL_VERSION) + " loads (format versions 1 to " +
                     std::to_string(kFormatVersion) + ")",
                 "recompile the model with this shoal, or upgrade shoal"});
  put32(b, format::kOffVersion, 0);
  reseal(b);
  expect_bad(b, {"version 0 is older than this shoal " + std::string(SHOAL_VERSION) +
                 " loads (format versions 1 to " + std::to_string(kFormatVersion) + ")"});
  // The version is checked before the rest of the header is trusted; a file
  // too short to hold the writer's version does not name it.
  Bytes head(b.begin(), b.begin() + 12);
  put32(head, format::kOffVersion, 9);
  expect_bad(head, {"version 9 is newer"});
}

TEST(ProgramFormat, HeaderRecordsTheWritersVersion) {
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  EXPECT_EQ(b[format::kOffProducerVersion], SHOAL_VERSION_MAJOR);
  EXPECT_EQ(b[format::kOffProducerVersion + 1], SHOAL_VERSION_MINOR);
  EXPECT_EQ(b[format::kOffProducerVersion + 2], SHOAL_VERSION_PATCH);
  EXPECT_EQ(b[format::kOffProducerVersion + 3], 0);
  auto p = deserialize(b.data(), b.size(), nullptr);
  EXPECT_EQ(p->version, kFormatVersion);
  EXPECT_EQ(p->producer_version, SHOAL_VERSION);
  // The byte after it is reserved: must be zero.
  b[format::kOffProducerVersion + 3] = 1;
  reseal(b);
  expect_bad(b, {"offset 39", "the byte after the producer version is 1, expected 0"});
}

TEST(ProgramFormat, LoadsFormatVersion1) {
  // Version 1 is version 2 without the writer's version (a reserved 0 there).
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  put32(b, format::kOffVersion, 1);
  put32(b, format::kOffProducerVersion, 0);
  reseal(b);
  auto p = deserialize(b.data(), b.size(), nullptr);
  EXPECT_EQ(p->version, 1u);
  EXPECT_EQ(p->producer_version, "");
  EXPECT_EQ(p->producer, s.p.producer);
  EXPECT_EQ(p->instructions.size(), s.p.instructions.size());
  ASSERT_EQ(p->weights_bytes, s.p.weights_bytes);
  EXPECT_EQ(std::memcmp(p->weights, s.p.weights, p->weights_bytes), 0);
  put32(b, format::kOffProducerVersion, 0x000100);
  reseal(b);
  expect_bad(b,
             {"offset 36", "reserved header field is 0x00000100, expected 0 in format version 1"});
}

TEST(ProgramFormat, LoadsFormatVersion2) {
  // Version 3 only adds int8 prepacked weights: a version 2 file is read as is.
  Sample s = make_sample();
  Bytes b = serialize(s.p);
  put32(b, format::kOffVersion, 2);
  reseal(b);
  auto p = deserialize(b.data(), b.size(), nullptr);
  EXPECT_EQ(p->version, 2u);
  EXPECT_EQ(p->producer_version, SHOAL_VERSION);
  EXPECT_EQ(p->instructions.size(), s.p.instructions.size());
  ASSERT_EQ(p->weights_bytes, s.p.weights_bytes);
  EXPECT_EQ(std::memcmp(p->weights, s.p.weights, p->weights_bytes), 0);
}

TEST(ProgramFormatCorrupt, ChecksumsNameTheSection) {
  Sample s = make_sample();
  const Bytes b = serialize(s.p);
  const char* names[] = {"META", "TENSORS", "INSTRUCTIONS", "WEIGHTS"};
  for (int i = 0; i < 4; ++i) {
    Bytes c = b;
    c[section_offset(c, i) + section_size(c, i) / 2] ^= 0x04;
    expect_bad(c, {"checksum mismatch", std::string("section ") + names[i],
                   "offset " + std::to_string(section_offset(c, i))});
  }
  Bytes c = b;
  c[entry(2) + 12] ^= 0x01;  // section table entry
  expect_bad(c, {"checksum mismatch", "header"});
}

TEST(ProgramFormatCorrupt, HeaderFields) {
  Sample s = make_sample();
  const Bytes b = serialize(s.p);
  {
    Bytes c = b;
    put32(c, format::kOffFlags, 1);
    reseal(c);
    expect_bad(c, {"flags", "offset 16"});
  }
  {
    Bytes c = b;
    put32(c, format::kOffSectionCount, 5);
    expect_bad(c, {"section count"});
  }
  {
    Bytes c = b;
    put32(c, format::kOffHeaderSize, 4000);
    expect_bad(c, {"header size"});
  }
  {
    Bytes c = b;
    put32(c, entry(1), 9);  // kind
    reseal(c);
    expect_bad(c, {"kind 9", "TENSORS"});
  }
}

TEST(ProgramFormatCorrupt, SectionsOutOfBounds) {
  Sample s = make_sample();
  const Bytes b = serialize(s.p);
  {
    Bytes c = b;
    put64(c, entry(1) + 16, uint64_t(1) << 62);  // TENSORS size
    reseal(c);
    expect_bad(c, {"section TENSORS", "out of bounds"});
  }
  {
    Bytes c = b;
    put64(c, entry(2) + 8, ~uint64_t(0) - 3);  // INSTRUCTIONS offset
    reseal(c);
    expect_bad(c, {"section INSTRUCTIONS", "out of bounds"});
  }
  {
    Bytes c = b;
    put64(c, entry(2) + 8, section_offset(c, 1));  // overlaps TENSORS
    reseal(c);
    expect_bad(c, {"section INSTRUCTIONS", "overlaps"});
  }
  {
    Bytes c = b;  // WEIGHTS moved off its 64-byte alignment
    put64(c, entry(3) + 8, section_offset(c, 3) - 8);
    put64(c, entry(3) + 16, section_size(c, 3) + 8);
    reseal(c);
    expect_bad(c, {"section WEIGHTS", "multiple of 64"});
  }
  {
    // Nonzero padding before the 64-aligned WEIGHTS section.
    Bytes c = b;
    uint64_t gap_at = section_offset(c, 2) + section_size(c, 2);
    ASSERT_LT(gap_at, section_offset(c, 3)) << "sample has no padding gap";
    c[gap_at] = 1;
    reseal(c);
    expect_bad(c, {"padding", "offset " + std::to_string(gap_at)});
  }
}

// Count and length prefixes larger than the section are rejected up front.
TEST(ProgramFormatCorrupt, AbsurdCountsAndLengths) {
  Sample s = make_sample();
  const Bytes b = serialize(s.p);
  uint64_t tensors = section_offset(b, 1);
  uint64_t instrs = section_offset(b, 2);
  struct Case {
    uint64_t at;
    uint32_t value;
    std::vector<std::string> words;
  };
  std::vector<Case> cases = {
      {tensors, 0xFFFFFFFFu, {"tensor count 4294967295", "section TENSORS"}},
      {tensors + 4,
       0x7FFFFFF0u,
       {"tensor name length 2147483632 exceeds", "tensor 0"}},
      {instrs, 0x10000000u, {"instruction count", "section INSTRUCTIONS"}},
      {instrs + 4, 0xFFFFFF00u, {"op name", "instruction 0"}},
      {section_offset(b, 0), 1000, {"producer", "section META"}},
  };
  for (const Case& k : cases) {
    Bytes c = b;
    put32(c, k.at, k.value);
    reseal(c);
    auto words = k.words;
    words.push_back("offset " + std::to_string(k.at));
    expect_bad(c, words);
  }
}

TEST(ProgramFormatCorrupt, BadAttributeTag) {
  ProgramData p;
  p.tensors = {desc("a", DType::f32, {1}, Storage::activation, 0, 4),
               desc("b", DType::f32, {1}, Storage::activation, 4, 4)};
  p.arena_bytes = 8;
  Instruction ins;
  ins.op = "Relu";
  ins.name = "r";
  ins.inputs = {0};
  ins.outputs = {1};
  ins.attrs.set("a", int64_t(5));
  p.instructions = {ins};
  Bytes b = serialize(p);
  // count, op, name, inputs, outputs, flops, attr count, attr name -> tag.
  uint64_t tag_at = section_offset(b, 2) + 4 + 8 + 5 + 8 + 8 + 8 + 4 + 5;
  ASSERT_EQ(b[tag_at], 1);
  b[tag_at] = 9;
  reseal(b);
  expect_bad(b, {"attribute tag 9", "attribute 'a'", "Relu",
                 "offset " + std::to_string(tag_at)});
}

// Semantic errors: files with valid checksums but invalid content, written
// with format::encode (serialize without its validation).
TEST(ProgramFormatCorrupt, InvalidContent) {
  struct Case {
    const char* what;
    std::function<void(ProgramData&)> edit;
    std::vector<std::string> words;
  };
  std::vector<Case> cases = {
      {"instruction input id",
       [](ProgramData& p) { p.instructions[1].inputs[0] = 9; },
       {"section INSTRUCTIONS", "instruction 1", "input 0 is tensor id 9",
        "out of range"}},
      {"instruction input below -1",
       [](ProgramData& p) { p.instructions[0].inputs[2] = -2; },
       {"input 2", "out of range"}},
      {"instruction output -1",
       [](ProgramData& p) { p.instructions[2].outputs[0] = -1; },
       {"output 0", "out of range"}},
      {"program input",
       [](ProgramData& p) { p.inputs = {100}; },
       {"section META", "program input 0", "out of range"}},
      {"program output",
       [](ProgramData& p) { p.outputs[1] = -5; },
       {"program output 1", "out of range"}},
      {"weight past section",
       [](ProgramData& p) { p.tensors[3].offset = 320; },
       {"tensor 3 'shape'", "outside the weight section"}},
      {"weight size past section",
       [](ProgramData& p) { p.tensors[8].bytes = 65; },
       {"'mask'", "outside the weight section"}},
      {"weight offset overflow",
       [](ProgramData& p) { p.tensors[1].offset = ~uint64_t(0) - 63; },
       {"'w'", "outside the weight section"}},
      {"activation past arena",
       [](ProgramData& p) { p.tensors[4].offset = 4000; },
       {"'y'", "outside the arena"}},
      {"unaligned weight",
       [](ProgramData& p) { p.tensors[2].offset = 72; },
       {"'w_packed'", "multiple of 64"}},
      {"dtype code",
       [](ProgramData& p) { p.tensors[0].dtype = DType(5); },
       {"tensor 0 'x'", "dtype code 5"}},
      {"undefined dtype",
       [](ProgramData& p) { p.tensors[0].dtype = DType::undefined; },
       {"dtype code 0"}},
      {"storage code",
       [](ProgramData& p) { p.tensors[0].storage = Storage(7); },
       {"storage code 7"}},
      {"layout code",
       [](ProgramData& p) { p.tensors[0].layout = Layout(3); },
       {"layout code 3"}},
      {"negative dim",
       [](ProgramData& p) { p.tensors[4].shape[2] = -4; },
       {"'y'", "dimension 2 is negative"}},
      {"numel overflow",
       [](ProgramData& p) {
         p.tensors[5].shape = {1LL << 40, 1LL << 40};
       },
       {"'q'", "overflows"}},
      {"size overflow",
       [](ProgramData& p) { p.tensors[4].shape = {1LL << 61}; },
       {"'y'", "overflows"}},
      {"rank",
       [](ProgramData& p) { p.tensors[0].shape = Shape(33, 1); },
       {"rank 33"}},
      {"bytes too small",
       [](ProgramData& p) { p.tensors[0].bytes = 191; },
       {"'x'", "reserves 191 bytes", "needs 192"}},
      {"plain with packing",
       [](ProgramData& p) { p.tensors[0].packing = {1}; },
       {"'x'", "packing"}},
      {"devices", [](ProgramData& p) { p.devices = 0; }, {"device count 0"}},
      {"clusters",
       [](ProgramData& p) { p.clusters = -3; },
       {"cluster count -3"}},
      {"arena",
       [](ProgramData& p) { p.arena_bytes = ~uint64_t(0); },
       {"arena_bytes", "absurd"}},
      {"flops",
       [](ProgramData& p) { p.instructions[0].flops = -1; },
       {"flops"}},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    Sample s = make_sample();
    k.edit(s.p);
    Bytes b = format::encode(s.p);
    auto words = k.words;
    words.push_back("offset ");
    expect_bad(b, words);
    expect_error([&] { serialize(s.p); }, {"cannot serialize"});
  }
}

}  // namespace
}  // namespace shoal::program
