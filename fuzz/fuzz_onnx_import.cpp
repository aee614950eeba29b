// libFuzzer target: arbitrary bytes -> shoal::compile_bytes (and the
// compiled program back through the program file format).
//
// Any shoal::Error is a correct answer (the bytes are not a model shoal can
// compile); a crash, a sanitizer report, another exception escaping, a hang or
// a leak is a bug. Build and run: fuzz/build.sh, fuzz/run.sh onnx SECONDS.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    shoal::fuzz::compile_onnx(data, size);
  } catch (const shoal::Error&) {
  }
  return 0;
}
