// Picks the loop table for this CPU, or the one SHOAL_ISA names (see loops.hpp).
#include "backends/cpu/native/loops.hpp"

#include <atomic>
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

const Loops& pick_fastest() {
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

namespace {
const Loops& fastest() {
  static const Loops& table = pick_fastest();
  return table;
}
std::atomic<const Loops*> in_use{nullptr};  // null: the fastest
}  // namespace

const Loops& loops() {
  const Loops* l = in_use.load(std::memory_order_relaxed);
  return l ? *l : fastest();
}

void use_isa(const std::string& isa) {
  if (isa.empty()) {
    in_use.store(&fastest(), std::memory_order_relaxed);
    return;
  }
  const Loops* l = loops_named(isa);
  if (!l)
    throw Error(ErrorKind::invalid_argument,
                "SHOAL_ISA=" + isa + ": expected generic, avx2 or avx512, one this CPU runs");
  in_use.store(l, std::memory_order_relaxed);
}

}  // namespace shoal::cpu::native
