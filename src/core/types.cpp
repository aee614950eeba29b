#include <limits>
#include <sstream>

#include "core/tensor.hpp"
#include "shoal/error.hpp"

namespace shoal {

const char* error_kind_name(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_argument: return "invalid argument";
    case ErrorKind::unsupported: return "unsupported";
    case ErrorKind::out_of_memory: return "out of memory";
    case ErrorKind::device: return "device error";
    case ErrorKind::internal: return "internal error";
    case ErrorKind::dtype: return "wrong dtype";
  }
  return "error";
}

size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::f32: return 4;
    case DType::u8: return 1;
    case DType::i8: return 1;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::boolean: return 1;
    case DType::f64: return 8;
    case DType::undefined: return 0;
  }
  return 0;
}

const char* mode_name(Mode m) noexcept {
  switch (m) {
    case Mode::batch: return "batch";
    case Mode::split: return "split";
    case Mode::automatic: return "auto";
  }
  return "unknown";
}

bool mode_from_name(std::string_view name, Mode& mode) noexcept {
  for (Mode m : {Mode::batch, Mode::split, Mode::automatic})
    if (name == mode_name(m)) {
      mode = m;
      return true;
    }
  return false;
}

const char* precision_name(Precision p) noexcept {
  switch (p) {
    case Precision::f32: return "f32";
    case Precision::bf16: return "bf16";
  }
  return "unknown";
}

bool precision_from_name(std::string_view name, Precision& precision) noexcept {
  for (Precision p : {Precision::f32, Precision::bf16})
    if (name == precision_name(p)) {
      precision = p;
      return true;
    }
  return false;
}

const char* dtype_name(DType t) noexcept {
  switch (t) {
    case DType::f32: return "float32";
    case DType::u8: return "uint8";
    case DType::i8: return "int8";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::boolean: return "bool";
    case DType::f64: return "float64";
    case DType::undefined: return "undefined";
  }
  return "undefined";
}

bool dtype_valid(int code) noexcept {
  switch (code) {
    case 1: case 2: case 3: case 6: case 7: case 9: case 11: return true;
    default: return false;
  }
}

int64_t shape_numel(const Shape& s) noexcept {
  // A zero dimension makes any shape empty, however large the others; a
  // product past int64 (a hostile file's shape) saturates, so that callers'
  // size limits refuse it instead of wrapping around.
  for (int64_t d : s)
    if (d == 0) return 0;
  int64_t n = 1;
  for (int64_t d : s)
    if (__builtin_mul_overflow(n, d, &n)) return std::numeric_limits<int64_t>::max();
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? "," : "") << s[i];
  o << ']';
  return o.str();
}

HostTensor::HostTensor(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)) {
  for (int64_t d : shape_)
    if (d < 0)
      throw Error(ErrorKind::invalid_argument,
                  "negative dimension in tensor shape " + shape_str(shape_));
  int64_t n = shape_numel(shape_);
  if (n > (int64_t(1) << 40) / int64_t(std::max<size_t>(1, dtype_size(dtype))))
    throw Error(ErrorKind::out_of_memory,
                "tensor of shape " + shape_str(shape_) + " is too large");
  buf_.assign(size_t(n) * dtype_size(dtype), 0);
}

bool shape_fits(const Shape& shape, DType dtype) noexcept {
  uint64_t n = std::max<uint64_t>(1, dtype_size(dtype));
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, uint64_t(std::max<int64_t>(d, 1)), &n) ||
        n >= (uint64_t(1) << 62))
      return false;
  return true;
}

namespace {
/// double to int64 without undefined behaviour: truncates, saturates at the
/// int64 range, NaN gives 0.
int64_t saturate_int64(double v) {
  if (!(v == v)) return 0;
  if (v >= 9223372036854775808.0) return std::numeric_limits<int64_t>::max();
  if (v < -9223372036854775808.0) return std::numeric_limits<int64_t>::min();
  return int64_t(v);
}
}  // namespace

int64_t HostTensor::int_at(int64_t k) const {
  switch (dtype_) {
    case DType::f32:
      return saturate_int64(as<float>()[k]);
    case DType::f64:
      return saturate_int64(as<double>()[k]);
    case DType::i64: return as<int64_t>()[k];
    case DType::i32: return as<int32_t>()[k];
    case DType::i8: return as<int8_t>()[k];
    case DType::u8: return as<uint8_t>()[k];
    case DType::boolean: return as<uint8_t>()[k] != 0;
    default: throw Error(ErrorKind::internal, "int_at on undefined tensor");
  }
}

double HostTensor::float_at(int64_t k) const {
  switch (dtype_) {
    case DType::f32: return as<float>()[k];
    case DType::f64: return as<double>()[k];
    default: return double(int_at(k));
  }
}

std::vector<int64_t> HostTensor::to_ints() const {
  std::vector<int64_t> v(static_cast<size_t>(numel()));
  for (int64_t k = 0; k < numel(); ++k) v[size_t(k)] = int_at(k);
  return v;
}

void HostTensor::reshape(Shape s) {
  if (shape_numel(s) != numel())
    throw Error(ErrorKind::internal, "reshape " + shape_str(shape_) + " to " +
                                         shape_str(s) + " changes size");
  shape_ = std::move(s);
}

}  // namespace shoal
