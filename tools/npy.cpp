// .npy reading and writing; see npy.hpp and
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#include "npy.hpp"

#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>

#include "shoal/error.hpp"

namespace shoal::npy {
namespace {

// Data is reinterpreted in place, which is only right on little-endian hosts.
static_assert(std::endian::native == std::endian::little,
              "npy.cpp assumes a little-endian host");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

[[noreturn]] void bad(const std::string& what, const std::string& message) {
  throw Error(ErrorKind::invalid_argument, what + ": " + message);
}

// One value of the header dict: a string, a bool or a tuple of ints.
struct Value {
  enum Kind { string, boolean, ints } kind = string;
  std::string s;
  bool b = false;
  std::vector<int64_t> v;
};

// A recursive-descent parser for the header, a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& what)
      : t_(text), what_(what) {}

  // Returns the dict's values for the keys it holds.
  void parse(std::optional<Value>& descr, std::optional<Value>& fortran,
             std::optional<Value>& shape) {
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') break;
      const std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr" && peek() == '[')
        throw Error(ErrorKind::unsupported,
                    what_ + ": structured dtypes are not supported");
      Value v = parse_value();
      if (key == "descr")
        descr = v;
      else if (key == "fortran_order")
        fortran = v;
      else if (key == "shape")
        shape = v;
      // Other keys are ignored.
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect('}');
      return;
    }
    ++i_;
  }

 private:
  char peek() const { return i_ < t_.size() ? t_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[i_])))
      ++i_;
  }
  [[noreturn]] void fail(const std::string& expected) const {
    bad(what_, "malformed header: expected " + expected + " at offset " +
                   std::to_string(i_) + " of '" + t_ + "'");
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("'") + c + "'");
    ++i_;
  }
  std::string parse_string() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("a quoted string");
    ++i_;
    const size_t end = t_.find(q, i_);
    if (end == std::string::npos) fail("a closing quote");
    std::string s = t_.substr(i_, end - i_);
    i_ = end + 1;
    return s;
  }
  int64_t parse_int() {
    if (!std::isdigit(static_cast<unsigned char>(peek())))
      fail("a non-negative integer");
    int64_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      const int d = t_[i_++] - '0';
      if (v > (std::numeric_limits<int64_t>::max() - d) / 10)
        bad(what_, "malformed header: dimension too large");
      v = v * 10 + d;
    }
    if (peek() == 'L') ++i_;  // Python 2 long suffix
    return v;
  }
  Value parse_value() {
    Value v;
    const char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = Value::string;
      v.s = parse_string();
    } else if (t_.compare(i_, 4, "True") == 0) {
      v.kind = Value::boolean;
      v.b = true;
      i_ += 4;
    } else if (t_.compare(i_, 5, "False") == 0) {
      v.kind = Value::boolean;
      i_ += 5;
    } else if (c == '(' || c == '[') {
      const char close = c == '(' ? ')' : ']';
      v.kind = Value::ints;
      ++i_;
      for (;;) {
        skip_ws();
        if (peek() == close) break;
        v.v.push_back(parse_int());
        skip_ws();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        if (peek() != close) fail(std::string("',' or '") + close + "'");
      }
      ++i_;
    } else {
      fail("a string, True, False or a tuple");
    }
    return v;
  }

  const std::string& t_;
  const std::string& what_;
  size_t i_ = 0;
};

// The element types a descr may name, with their sizes.
struct ElemType {
  char kind;  // 'f', 'i', 'u', 'b'
  size_t size;
};

ElemType parse_descr(const std::string& descr, const std::string& what) {
  if (descr.size() < 3)
    throw Error(ErrorKind::unsupported,
                what + ": unsupported dtype '" + descr + "'");
  const char order = descr[0];
  const char kind = descr[1];
  size_t size = 0;
  for (size_t i = 2; i < descr.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(descr[i])) || size > 64)
      throw Error(ErrorKind::unsupported,
                  what + ": unsupported dtype '" + descr + "'");
    size = size * 10 + size_t(descr[i] - '0');
  }
  if (order != '<' && order != '>' && order != '|' && order != '=')
    throw Error(ErrorKind::unsupported,
                what + ": unsupported dtype '" + descr + "'");
  if (order == '>' && size > 1)
    throw Error(ErrorKind::unsupported,
                what + ": big-endian data ('" + descr +
                    "') is not supported; save it little-endian "
                    "(e.g. a.astype('<f4'))");
  const bool ok = (kind == 'f' && (size == 4 || size == 8)) ||
                  ((kind == 'i' || kind == 'u') &&
                   (size == 1 || size == 2 || size == 4 || size == 8)) ||
                  (kind == 'b' && size == 1);
  if (!ok)
    throw Error(ErrorKind::unsupported,
                what + ": unsupported dtype '" + descr +
                    "' (supported: float32, float64, integers, bool)");
  return {kind, size};
}

template <typename T>
void convert(const uint8_t* src, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(x);
  }
}

void convert_any(ElemType t, const uint8_t* src, size_t n, float* dst) {
  switch (t.kind) {
    case 'f':
      if (t.size == 4) {
        if (n) std::memcpy(dst, src, n * 4);  // an empty array has no buffer
      } else {
        convert<double>(src, n, dst);
      }
      return;
    case 'i':
      if (t.size == 1) return convert<int8_t>(src, n, dst);
      if (t.size == 2) return convert<int16_t>(src, n, dst);
      if (t.size == 4) return convert<int32_t>(src, n, dst);
      return convert<int64_t>(src, n, dst);
    case 'u':
      if (t.size == 1) return convert<uint8_t>(src, n, dst);
      if (t.size == 2) return convert<uint16_t>(src, n, dst);
      if (t.size == 4) return convert<uint32_t>(src, n, dst);
      return convert<uint64_t>(src, n, dst);
    default:  // 'b'
      for (size_t i = 0; i < n; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f;
  }
}

std::string shape_text(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    out += std::to_string(s[i]);
    if (s.size() == 1 || i + 1 < s.size()) out += s.size() == 1 ? "," : ", ";
  }
  return out + ")";
}

const char* descr_of(DType t) {
  switch (t) {
    case DType::f32:
      return "<f4";
    case DType::f64:
      return "<f8";
    case DType::i64:
      return "<i8";
    case DType::i32:
      return "<i4";
    case DType::i8:
      return "|i1";
    case DType::u8:
      return "|u1";
    case DType::boolean:
      return "|b1";
    case DType::undefined:
      break;
  }
  throw Error(ErrorKind::unsupported,
              "npy: cannot write arrays of type " + std::to_string(int(t)));
}

size_t item_size(DType t) {
  switch (t) {
    case DType::f64:
    case DType::i64:
      return 8;
    case DType::f32:
    case DType::i32:
      return 4;
    default:
      return 1;
  }
}

}  // namespace

Array parse(const void* bytes, size_t size, const std::string& what) {
  const auto* p = static_cast<const uint8_t*>(bytes);
  if (p == nullptr && size > 0) bad(what, "no data");
  if (size < kMagicLen + 4 || std::memcmp(p, kMagic, kMagicLen) != 0)
    bad(what, "not a .npy file (bad magic)");
  const int major = p[kMagicLen];
  size_t header_len = 0, preamble = 0;
  if (major == 1) {
    header_len = size_t(p[8]) | size_t(p[9]) << 8;
    preamble = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) bad(what, "truncated header");
    header_len = size_t(p[8]) | size_t(p[9]) << 8 | size_t(p[10]) << 16 |
                 size_t(p[11]) << 24;
    preamble = 12;
  } else {
    throw Error(ErrorKind::unsupported,
                what + ": unsupported .npy format version " +
                    std::to_string(major) + "." +
                    std::to_string(int(p[kMagicLen + 1])));
  }
  if (header_len > size - preamble)
    bad(what, "truncated header: needs " + std::to_string(header_len) +
                  " bytes, the file has " + std::to_string(size - preamble));
  const std::string header(reinterpret_cast<const char*>(p + preamble),
                           header_len);

  std::optional<Value> descr, fortran, shape;
  HeaderParser(header, what).parse(descr, fortran, shape);
  if (!descr || descr->kind != Value::string)
    bad(what, "header has no 'descr' string");
  if (!fortran || fortran->kind != Value::boolean)
    bad(what, "header has no 'fortran_order' bool");
  if (!shape || shape->kind != Value::ints)
    bad(what, "header has no 'shape' tuple");
  const ElemType et = parse_descr(descr->s, what);
  if (fortran->b)
    throw Error(ErrorKind::unsupported,
                what +
                    ": fortran_order arrays are not supported; save a "
                    "C-order array (np.ascontiguousarray)");

  Array a;
  a.shape = shape->v;
  uint64_t numel = 1;
  for (int64_t d : a.shape) {
    if (d != 0 &&
        numel > std::numeric_limits<uint64_t>::max() / 16 / uint64_t(d))
      bad(what, "shape " + shape_text(a.shape) + " is too large");
    numel *= uint64_t(d);
  }
  const uint64_t need = numel * et.size;
  const size_t have = size - preamble - header_len;
  if (need > have)
    bad(what, "truncated data: shape " + shape_text(a.shape) + " of '" +
                  descr->s + "' needs " + std::to_string(need) +
                  " bytes, the file has " + std::to_string(have));
  a.data.resize(size_t(numel));
  convert_any(et, p + preamble + header_len, size_t(numel), a.data.data());
  return a;
}

Array load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw Error(ErrorKind::invalid_argument,
                "cannot open '" + path + "': " + std::strerror(errno));
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                          std::istreambuf_iterator<char>());
  if (f.bad())
    throw Error(ErrorKind::invalid_argument, "cannot read '" + path + "'");
  return parse(bytes.data(), bytes.size(), path);
}

std::vector<uint8_t> encode(const void* data, DType dtype, const Shape& shape) {
  const char* descr = descr_of(dtype);
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0)
      throw Error(ErrorKind::invalid_argument,
                  "npy: negative dimension in shape " + shape_text(shape));
    numel *= uint64_t(d);
  }
  if (data == nullptr && numel > 0)
    throw Error(ErrorKind::invalid_argument, "npy: no data to write");

  std::string header =
      std::string("{'descr': '") + descr +
      "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  // Pad with spaces so the data starts on a 64-byte boundary; '\n' ends it.
  size_t preamble = 10;
  auto padded = [&] {
    const size_t total = preamble + header.size() + 1;
    return header + std::string((64 - total % 64) % 64, ' ') + "\n";
  };
  std::string h = padded();
  if (h.size() > 0xffff) {
    preamble = 12;
    h = padded();
  }
  const size_t data_bytes = size_t(numel) * item_size(dtype);
  std::vector<uint8_t> out;
  out.reserve(preamble + h.size() + data_bytes);
  out.insert(out.end(), kMagic, kMagic + kMagicLen);
  out.push_back(preamble == 10 ? 1 : 2);
  out.push_back(0);
  const size_t len = h.size();
  out.push_back(uint8_t(len & 0xff));
  out.push_back(uint8_t(len >> 8 & 0xff));
  if (preamble == 12) {
    out.push_back(uint8_t(len >> 16 & 0xff));
    out.push_back(uint8_t(len >> 24 & 0xff));
  }
  out.insert(out.end(), h.begin(), h.end());
  const auto* d = static_cast<const uint8_t*>(data);
  if (data_bytes > 0) out.insert(out.end(), d, d + data_bytes);
  return out;
}

void save(const std::string& path, const void* data, DType dtype,
          const Shape& shape) {
  const std::vector<uint8_t> bytes = encode(data, dtype, shape);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f)
    throw Error(ErrorKind::invalid_argument,
                "cannot create '" + path + "': " + std::strerror(errno));
  f.write(reinterpret_cast<const char*>(bytes.data()),
          std::streamsize(bytes.size()));
  f.close();
  if (!f)
    throw Error(ErrorKind::invalid_argument, "cannot write '" + path + "'");
}

}  // namespace shoal::npy
