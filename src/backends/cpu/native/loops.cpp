// Picks the loop table for this CPU (see loops.hpp).
#include "backends/cpu/native/loops.hpp"

#include <cstdlib>
#include <string>

#include "shoal/error.hpp"

namespace shoal::cpu::native {
namespace {

bool runs(std::string_view isa) {
  if (isa == "generic") return true;
  __builtin_cpu_init();
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma");
  return false;
}

const Loops& pick() {
  if (const char* env = std::getenv("SHOAL_ISA"); env && *env) {
    if (const Loops* l = loops_named(env)) return *l;
    throw Error(
        ErrorKind::invalid_argument,
        std::string("SHOAL_ISA=") + env + ": expected generic, avx2 or avx512, one this CPU runs");
  }
  if (runs("avx512")) return loops_avx512();
  if (runs("avx2")) return loops_avx2();
  return loops_generic();
}

}  // namespace

const Loops* loops_named(std::string_view isa) {
  if (!runs(isa)) return nullptr;
  if (isa == "avx512") return &loops_avx512();
  if (isa == "avx2") return &loops_avx2();
  return &loops_generic();
}

const Loops& loops() {
  static const Loops& table = pick();
  return table;
}

}  // namespace shoal::cpu::native
