// libFuzzer target: arbitrary bytes -> the decoding of an Open Inference
// Protocol infer request as `shoal serve` does it (JSON tensors and the
// binary tensor data extension, src/serve/protocol.cpp), and the encoding of
// a response to every request that decodes. The input layout is described
// at shoal::fuzz::decode_serve_request (fuzz/fuzz_common.hpp).
//
// A 400 is a correct answer; a crash, a sanitizer report, an exception
// escaping, a hang or a leak is a bug. Build and run: fuzz/build.sh,
// fuzz/run.sh serve SECONDS.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  shoal::fuzz::decode_serve_request(data, size);
  return 0;
}
