// Little-endian, length-prefixed encoding primitives of the program file
// format: ByteWriter appends to a buffer; ByteReader reads one section of a
// file with every read bounds-checked, and reports errors naming the file
// offset, the section and the item being read.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "shoal/error.hpp"

namespace shoal::program {

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>& out) : out_(out) {}

  size_t size() const { return out_.size(); }
  void u8(uint8_t v) { out_.push_back(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(uint8_t(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(uint8_t(v >> (8 * i)));
  }
  void i32(int32_t v) { u32(uint32_t(v)); }
  void i64(int64_t v) { u64(uint64_t(v)); }
  void f32(float v) { u32(std::bit_cast<uint32_t>(v)); }
  void f64(double v) { u64(std::bit_cast<uint64_t>(v)); }
  void raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  /// A u32 length or count prefix; `what` names it if it does not fit.
  void count(size_t n, const std::string& what) {
    if (n > UINT32_MAX)
      throw Error(ErrorKind::invalid_argument,
                  "cannot serialize program: " + what + " has " +
                      std::to_string(n) + " entries, more than 2^32-1");
    u32(uint32_t(n));
  }
  void str(const std::string& s, const std::string& what) {
    count(s.size(), what);
    raw(s.data(), s.size());
  }
  void blob(const std::vector<uint8_t>& b, const std::string& what) {
    count(b.size(), what);
    raw(b.data(), b.size());
  }
  void pad_to(uint64_t align) {
    while (out_.size() % align) out_.push_back(0);
  }
  void put_u32_at(size_t pos, uint32_t v) {
    for (int i = 0; i < 4; ++i) out_[pos + i] = uint8_t(v >> (8 * i));
  }
  void put_u64_at(size_t pos, uint64_t v) {
    for (int i = 0; i < 8; ++i) out_[pos + i] = uint8_t(v >> (8 * i));
  }

 private:
  std::vector<uint8_t>& out_;
};

inline uint32_t load_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
         uint32_t(p[3]) << 24;
}

inline uint64_t load_u64(const uint8_t* p) {
  return uint64_t(load_u32(p)) | uint64_t(load_u32(p + 4)) << 32;
}

/// Reads [begin, end) of the file at `file`; offsets are file offsets.
class ByteReader {
 public:
  ByteReader(const uint8_t* file, uint64_t begin, uint64_t end,
             const char* section)
      : file_(file), pos_(begin), end_(end), section_(section) {}

  uint64_t offset() const { return pos_; }
  uint64_t left() const { return end_ - pos_; }
  /// What is being read, for error messages ("tensor 3 'conv.w'").
  void set_item(std::string item) { item_ = std::move(item); }
  const std::string& item() const { return item_; }

  [[noreturn]] void fail(uint64_t at, const std::string& what) const {
    std::string where = "section " + std::string(section_);
    if (!item_.empty()) where += ", " + item_;
    throw Error(ErrorKind::invalid_argument, "invalid program file at offset " +
                                                 std::to_string(at) + " (" +
                                                 where + "): " + what);
  }

  const uint8_t* take(uint64_t n, const char* what) {
    if (n > left())
      fail(pos_, "expected " + std::to_string(n) + " bytes of " + what +
                     ", the section has " + std::to_string(left()) + " left");
    const uint8_t* p = file_ + pos_;
    pos_ += n;
    return p;
  }
  uint8_t u8(const char* what) { return *take(1, what); }
  uint32_t u32(const char* what) { return load_u32(take(4, what)); }
  uint64_t u64(const char* what) { return load_u64(take(8, what)); }
  int32_t i32(const char* what) { return int32_t(u32(what)); }
  int64_t i64(const char* what) { return int64_t(u64(what)); }
  float f32(const char* what) { return std::bit_cast<float>(u32(what)); }
  double f64(const char* what) { return std::bit_cast<double>(u64(what)); }

  /// A u32 count of items that take at least `min_item_bytes` each; rejected
  /// (before anything is allocated) when they cannot fit in what is left.
  uint32_t count(const char* what, uint64_t min_item_bytes) {
    uint64_t at = pos_;
    uint32_t n = u32(what);
    if (uint64_t(n) * min_item_bytes > left())
      fail(at, std::string(what) + " " + std::to_string(n) +
                   " needs at least " +
                   std::to_string(uint64_t(n) * min_item_bytes) +
                   " bytes, more than the " + std::to_string(left()) +
                   " bytes left in the section");
    return n;
  }
  /// A u32 length, then that many bytes.
  std::string str(const char* what) {
    const uint8_t* p = prefixed(what);
    return std::string(reinterpret_cast<const char*>(p + 4), load_u32(p));
  }
  std::vector<uint8_t> blob(const char* what) {
    const uint8_t* p = prefixed(what);
    return std::vector<uint8_t>(p + 4, p + 4 + load_u32(p));
  }

 private:
  // Checks a length prefix against what is left; returns its address.
  const uint8_t* prefixed(const char* what) {
    uint64_t at = pos_;
    uint32_t n = u32(what);
    if (n > left())
      fail(at, std::string(what) + " length " + std::to_string(n) +
                   " exceeds the " + std::to_string(left()) +
                   " bytes left in the section");
    pos_ += n;
    return file_ + at;
  }

  const uint8_t* file_;
  uint64_t pos_, end_;
  const char* section_;
  std::string item_;
};

}  // namespace shoal::program
