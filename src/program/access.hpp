// The library's way into a Program's ProgramData, which the public header
// keeps opaque (include/shoal/shoal.hpp exposes no internal type).
#pragma once

#include <memory>
#include <utility>

#include "program/program_data.hpp"
#include "shoal/shoal.hpp"

namespace shoal::program {

struct Access {
  /// Throws Error(invalid_argument) for an empty program.
  static const ProgramData& data(const Program& p) { return p.data(); }
  static Program make(std::shared_ptr<const ProgramData> d) { return Program(std::move(d)); }
};

/// The program's in-memory form.
inline const ProgramData& data_of(const Program& p) { return Access::data(p); }
/// A Program over `d`.
inline Program make_program(std::shared_ptr<const ProgramData> d) {
  return Access::make(std::move(d));
}

}  // namespace shoal::program
