// Compiles an ONNX model of 8x8 one-channel digits into a shoal program file.
//   compile_digits model.onnx out.shoal
#include <cstdio>
#include <cstring>
#include <exception>
#include <shoal/shoal.hpp>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s model.onnx out.shoal\n", argv[0]);
    return 2;
  }
  // The headers' version and the loaded library's must agree.
  if (std::strcmp(shoal::version(), SHOAL_VERSION) != 0) {
    std::fprintf(stderr, "headers are shoal %s, library is %s\n", SHOAL_VERSION, shoal::version());
    return 1;
  }
  try {
    shoal::CompileOptions options;
    options.input_shape = shoal::parse_shape("8x8x1");  // WxHxC -> {1, 1, 8, 8}
    shoal::Program program = shoal::compile(argv[1], options);
    program.save(argv[2]);
    std::printf("shoal %s compiled %s into %s: %zu instructions, %llu weight bytes\n",
                shoal::version(), argv[1], argv[2], program.num_instructions(),
                static_cast<unsigned long long>(program.weight_bytes()));
  } catch (const shoal::Error& e) {
    std::fprintf(stderr, "shoal error: %s\n", e.what());
    return 1;
  }
  return 0;
}
