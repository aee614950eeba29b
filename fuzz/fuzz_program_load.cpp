// libFuzzer target: arbitrary bytes -> shoal::Program::from_bytes (with the
// checksums recomputed, so mutations get past them), and when they load, a
// Runtime running one all-zero input sample.
//
// Any shoal::Error is a correct answer; a crash, a sanitizer report, another
// exception escaping, a hang or a leak is a bug. Build and run:
// fuzz/build.sh, fuzz/run.sh program SECONDS.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    shoal::fuzz::load_and_run_program(data, size);
  } catch (const shoal::Error&) {
  }
  return 0;
}
