// shoal: the one error type raised at every API boundary.
#pragma once

#include <stdexcept>
#include <string>

namespace shoal {

/// What went wrong, coarsely. Mapped in one place to C return codes
/// (include/shoal/shoal.h) and to Python exception classes.
enum class ErrorKind {
  invalid_argument = 1,  ///< bad input from the caller: a file, a shape, a value
  unsupported = 2,       ///< well-formed, but shoal cannot do it (an op, a dtype)
  out_of_memory = 3,     ///< an allocation failed
  device = 4,            ///< a device failed or is unavailable
  internal = 5,          ///< a bug in shoal
  /// An input of the wrong element type: an invalid argument that Python
  /// raises as DTypeError (also a TypeError); SHOAL_ERR_INVALID_ARGUMENT in C.
  dtype = 6,
};

const char* error_kind_name(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace shoal
