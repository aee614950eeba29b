// Runs a compiled digits program (compile_digits) on the held-out samples and
// checks it against PyTorch: links only the shoal runtime library.
//   classify_digits digits.shoal models/digits
// Reads heldout_x.npy (float32 N x 1 x 8 x 8), heldout_y.npy (int64 N) and
// torch_logits.npy (float32 N x 10); prints the accuracy; exits 1 unless every
// prediction equals PyTorch's.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <shoal/shoal.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// A minimal .npy reader: little-endian, C order, the dtype asked for.
template <typename T>
std::vector<T> load_npy(const std::string& path, const char* descr, std::vector<int64_t>& shape) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw std::runtime_error(path + ": not a .npy file");
  const size_t header_len = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
  const std::string header = bytes.substr(10, header_len);
  if (header.find(std::string("'descr': '") + descr + "'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(path + ": expected dtype " + descr + " in C order");
  shape.clear();
  size_t at = header.find("'shape': (") + 10;
  while (at < header.size() && header[at] != ')') {
    size_t used = 0;
    shape.push_back(std::stoll(header.substr(at), &used));
    at += used;
    while (at < header.size() && (header[at] == ',' || header[at] == ' ')) ++at;
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const size_t data = 10 + header_len;
  if (bytes.size() - data != size_t(n) * sizeof(T))
    throw std::runtime_error(path + ": size does not match its shape");
  std::vector<T> out(static_cast<size_t>(n));
  std::memcpy(out.data(), bytes.data() + data, out.size() * sizeof(T));
  return out;
}

size_t argmax(const float* v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s program.shoal DIGITS_DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[2];
  try {
    std::vector<int64_t> xs, ys, ts;
    std::vector<float> x = load_npy<float>(dir + "/heldout_x.npy", "<f4", xs);
    std::vector<int64_t> y = load_npy<int64_t>(dir + "/heldout_y.npy", "<i8", ys);
    std::vector<float> torch = load_npy<float>(dir + "/torch_logits.npy", "<f4", ts);
    const size_t n = size_t(xs.at(0)), classes = size_t(ts.at(1));

    shoal::Runtime runtime(shoal::Program::load(argv[1]));
    std::vector<shoal::Tensor> out = runtime.run({shoal::Tensor::view(x.data(), xs)});
    if (out.size() != 1 || out[0].shape() != shoal::Shape{int64_t(n), int64_t(classes)})
      throw std::runtime_error("unexpected output shape " + shoal::shape_str(out[0].shape()));

    size_t correct = 0, same_as_torch = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t p = argmax(out[0].f32() + i * classes, classes);
      correct += int64_t(p) == y[i];
      same_as_torch += p == argmax(torch.data() + i * classes, classes);
    }
    std::printf(
        "shoal %s (runtime only): accuracy %.2f%% (%zu/%zu), %zu/%zu predictions equal "
        "PyTorch's\n",
        shoal::version(), 100.0 * double(correct) / double(n), correct, n, same_as_torch, n);
    return same_as_torch == n ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
