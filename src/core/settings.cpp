#include "core/settings.hpp"

#include <cstdlib>

namespace shoal {
namespace {

// The library's only getenv calls (see settings.hpp).
/// The variable's value, "" when unset.
std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}
bool is_set(const char* name) { return std::getenv(name) != nullptr; }

bool digits(const std::string& v, size_t max_len) {
  return !v.empty() && v.size() <= max_len &&
         v.find_first_not_of("0123456789") == std::string::npos;
}

[[noreturn]] void bad(const char* name, const std::string& v, const char* expected) {
  throw Error(ErrorKind::invalid_argument, std::string(name) + "=" + v + ": expected " + expected);
}

}  // namespace

Settings read_settings() {
  Settings s;
  if (const std::string v = env("SHOAL_WEIGHTS"); !v.empty()) {
    if (v == "copy")
      s.weights = WeightPlacement::copy;
    else if (v == "shared")
      s.weights = WeightPlacement::shared;
    else if (v != "auto")
      bad("SHOAL_WEIGHTS", v, "copy, shared or auto");
  }
  if (const std::string v = env("SHOAL_STACK_SPLIT"); !v.empty()) {
    if (!digits(v, 9)) bad("SHOAL_STACK_SPLIT", v, "an instruction count");
    s.stack_split = std::stoll(v);
  }
  s.debug_stack = is_set("SHOAL_DEBUG_STACK");
  s.cpu_devices = env("SHOAL_CPU_DEVICES");
  s.isa = env("SHOAL_ISA");
  s.reference_only = is_set("SHOAL_REFERENCE_ONLY");
  if (const std::string v = env("SHOAL_ROW_BANDS"); !v.empty()) {
    if (v == "all")
      s.row_bands = RowBands::all;
    else if (v == "none")
      s.row_bands = RowBands::none;
    else if (v != "auto")
      bad("SHOAL_ROW_BANDS", v, "all, none or auto");
  }
  if (const std::string v = env("SHOAL_REF_DEVICES"); !v.empty()) {
    if (!digits(v, 2)) bad("SHOAL_REF_DEVICES", v, "a device count from 0 to 99");
    s.ref_devices = std::stoi(v);
  }
  s.winograd_all = env("SHOAL_WINOGRAD") == "all";
  s.python = env("SHOAL_PYTHON");
  return s;
}

}  // namespace shoal
