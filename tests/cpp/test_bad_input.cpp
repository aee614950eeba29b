// Bad input through the C++ and C APIs: every case must fail with
// shoal::Error (C: a status) whose message names what was wrong, never crash;
// NaN and Inf inputs run and propagate. Programs broken in ways the file
// format cannot see (operands that do not fit their instruction) are caught
// by the runtime's instruction check. Cases already covered elsewhere
// (test_capi.cpp, test_program_format.cpp, tests/python/test_api.py) are not
// repeated here.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "program/program_data.hpp"
#include "shoal/shoal.h"
#include "shoal/shoal.hpp"

namespace shoal {
namespace {

namespace fs = std::filesystem;

std::string source_dir() {
  if (const char* env = std::getenv("SHOAL_SOURCE_DIR")) return env;
#ifdef SHOAL_SOURCE_DIR
  return SHOAL_SOURCE_DIR;
#else
  return ".";
#endif
}

std::string digits_model() { return source_dir() + "/models/digits/digits_cnn.onnx"; }

// Runs f; expects Error of `kind` whose message contains every one of `words`.
void expect_error(const std::function<void()>& f, ErrorKind kind,
                  const std::vector<std::string>& words) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    const std::string msg = e.what();
    for (const std::string& w : words)
      EXPECT_NE(msg.find(w), std::string::npos) << "message lacks '" << w << "': " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-shoal exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "did not throw; expected an error with '" << (words.empty() ? "" : words[0])
                << "'";
}

// A scratch directory, removed with everything in it.
class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() / ("shoal_bad_input_" + std::to_string(::getpid()))) {
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name, const std::vector<uint8_t>& bytes) const {
    const std::string p = (path_ / name).string();
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    return p;
  }
  // A sparse file of `size` bytes (no data blocks written).
  std::string sparse(const std::string& name, uintmax_t size) const {
    const std::string p = file(name, {});
    fs::resize_file(p, size);
    return p;
  }
  std::string dir() const { return path_.string(); }

 private:
  fs::path path_;
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

// Peak resident memory of this process so far, in MiB.
long peak_rss_mib() {
  struct rusage u {};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

// The digits program, compiled once.
const Program& digits() {
  static const Program p = compile(digits_model());
  return p;
}

class BadInputDigits : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(digits_model())) << "no digits model (bundled)";
  }
  static std::vector<float> samples(size_t n) {
    std::vector<float> x(n * 64);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7 + 3) % 17);
    return x;
  }
};

// --- run(): the inputs ------------------------------------------------------

TEST_F(BadInputDigits, WrongDtypeNamesBoth) {
  Runtime rt(digits());
  const std::string name = digits().inputs()[0].name;
  for (DType t : {DType::f64, DType::i32, DType::u8}) {
    Tensor x(t, {1, 1, 8, 8});
    expect_error([&] { rt.run({x}); }, ErrorKind::dtype,
                 {"'" + name + "'", "float32", dtype_name(t)});
  }
}

TEST_F(BadInputDigits, WrongShapeNamesBoth) {
  Runtime rt(digits());
  for (const Shape& s : std::vector<Shape>{{1, 1, 8, 9}, {1, 8, 8}, {1, 1, 1, 8, 8}, {64}, {}}) {
    Tensor x(DType::f32, s);
    expect_error([&] { rt.run({x}); }, ErrorKind::invalid_argument,
                 {"[N,1,8,8]", "got " + shape_str(s)});
  }
}

TEST_F(BadInputDigits, WrongInputCount) {
  Runtime rt(digits());
  Tensor x(DType::f32, {1, 1, 8, 8});
  expect_error([&] { rt.run({}); }, ErrorKind::invalid_argument, {"takes 1 input, got 0"});
  expect_error([&] { rt.run({x, x}); }, ErrorKind::invalid_argument, {"takes 1 input, got 2"});
}

TEST_F(BadInputDigits, NullDataAndNegativeBatch) {
  Runtime rt(digits());
  expect_error([&] { rt.run({Tensor::view(nullptr, {2, 1, 8, 8})}); },
               ErrorKind::invalid_argument, {"no data", "null pointer", "[2,1,8,8]"});
  // A view may claim any shape; a negative batch must not hang the run.
  float buf[64] = {};
  expect_error([&] { rt.run({Tensor::view(buf, {-1, 1, 8, 8})}); },
               ErrorKind::invalid_argument, {"[N,1,8,8]", "got [-1,1,8,8]"});
  expect_error([] { Tensor(DType::f32, {-3, 1, 8, 8}); }, ErrorKind::invalid_argument,
               {"negative dimension", "[-3,1,8,8]"});
}

TEST_F(BadInputDigits, EmptyBatchGivesEmptyOutputs) {
  Runtime rt(digits());
  std::vector<Tensor> y = rt.run({Tensor(DType::f32, {0, 1, 8, 8})});
  ASSERT_EQ(y.size(), 1u);
  EXPECT_EQ(y[0].shape(), (Shape{0, 10}));
}

TEST_F(BadInputDigits, NanAndInfDoNotLeakIntoOtherSamples) {
  Runtime rt(digits());
  std::vector<float> x = samples(4);
  x[64 + 27] = std::numeric_limits<float>::quiet_NaN();
  x[128 + 27] = std::numeric_limits<float>::infinity();
  for (int i = 0; i < 64; ++i) x[192 + size_t(i)] = -std::numeric_limits<float>::infinity();
  std::vector<Tensor> y = rt.run({Tensor::view(x.data(), {4, 1, 8, 8})});
  // Sample 0 is untouched by its neighbours.
  std::vector<float> x0(x.begin(), x.begin() + 64);
  std::vector<Tensor> y0 = rt.run({Tensor::view(x0.data(), {1, 1, 8, 8})});
  for (int j = 0; j < 10; ++j) EXPECT_EQ(y[0].f32()[j], y0[0].f32()[j]);
  // +Inf through a convolution with weights of both signs gives NaN.
  bool nonfinite = false;
  for (int j = 0; j < 10; ++j) nonfinite |= !std::isfinite(y[0].f32()[20 + j]);
  EXPECT_TRUE(nonfinite) << "an Inf input should reach the logits";
}

// A program whose one instruction is Add(x, b) with b = 1 in the weights,
// optionally broken by `edit` before it is serialized; loaded from bytes as
// a program file would be.
Program add_program(const std::function<void(program::ProgramData&)>& edit = {}) {
  program::ProgramData p;
  p.version = program::kFormatVersion;
  p.target = "cpu";
  p.producer = "shoal test";
  p.arena_bytes = 128;
  auto desc = [](std::string name, Shape shape, program::Storage storage, uint64_t offset) {
    program::TensorDesc d;
    d.name = std::move(name);
    d.shape = std::move(shape);
    d.storage = storage;
    d.offset = offset;
    d.bytes = uint64_t(shape_numel(d.shape)) * 4;
    return d;
  };
  p.tensors = {desc("x", {1, 4}, program::Storage::activation, 0),
               desc("b", {1, 4}, program::Storage::weight, 0),
               desc("y", {1, 4}, program::Storage::activation, 64)};
  program::Instruction add;
  add.op = "Add";
  add.name = "add_0";
  add.inputs = {0, 1};
  add.outputs = {2};
  p.instructions = {add};
  p.inputs = {0};
  p.outputs = {2};
  std::vector<uint8_t> weights(64, 0);
  const float one = 1.0f;
  for (int i = 0; i < 4; ++i) std::memcpy(weights.data() + 4 * i, &one, 4);
  p.weights = weights.data();
  p.weights_bytes = weights.size();
  if (edit) edit(p);
  const std::vector<uint8_t> bytes = program::serialize(p);
  return Program::from_bytes(bytes.data(), bytes.size());
}

void expect_bad_program(const std::function<void(program::ProgramData&)>& edit,
                        const std::vector<std::string>& words,
                        ErrorKind kind = ErrorKind::invalid_argument) {
  const Program p = add_program(edit);  // the file format itself is fine
  expect_error([&] { Runtime rt(p); }, kind, words);
}

TEST(BadInputProgram, NanAndInfPropagate) {
  Runtime rt(add_program());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  float x[4] = {nan, inf, -inf, 2.0f};
  std::vector<Tensor> y = rt.run({Tensor::view(x, {1, 4})});
  EXPECT_TRUE(std::isnan(y[0].f32()[0]));
  EXPECT_EQ(y[0].f32()[1], inf);
  EXPECT_EQ(y[0].f32()[2], -inf);
  EXPECT_EQ(y[0].f32()[3], 3.0f);
}

TEST(BadInputProgram, OutputShapeThatTheOpDoesNotGive) {
  expect_bad_program(
      [](program::ProgramData& p) {
        p.tensors[2].shape = {1, 5};
        p.tensors[2].bytes = 20;
      },
      {"instruction Add 'add_0'", "output 0", "[1,5]", "its inputs give [1,4]"});
}

TEST(BadInputProgram, UnknownOperator) {
  expect_bad_program([](program::ProgramData& p) { p.instructions[0].op = "NoSuchOp"; },
                     {"NoSuchOp", "add_0", "not supported"}, ErrorKind::unsupported);
}

TEST(BadInputProgram, WrongOperandCount) {
  expect_bad_program([](program::ProgramData& p) { p.instructions[0].inputs = {0, 1, 0}; },
                     {"add_0", "3 inputs", "takes 2"});
}

TEST(BadInputProgram, AbsurdAttribute) {
  expect_bad_program(
      [](program::ProgramData& p) {
        p.instructions[0].op = "Transpose";
        p.instructions[0].inputs = {0};
        p.instructions[0].attrs.set("perm", std::vector<int64_t>{0, 7});
        p.tensors[2].shape = {4, 1};
      },
      {"Transpose 'add_0'", "perm [0,7]"});
}

TEST(BadInputProgram, OutputOverlapsInput) {
  expect_bad_program([](program::ProgramData& p) { p.tensors[2].offset = 8; },
                     {"output 0 'y' overlaps input 0 'x'"});
}

TEST(BadInputProgram, OutputInTheWeights) {
  expect_bad_program(
      [](program::ProgramData& p) {
        p.tensors[2].storage = program::Storage::weight;
        p.tensors[2].offset = 0;
      },
      {"'y'", "weight section"});
}

TEST(BadInputProgram, InputWithPaddedBytes) {
  // The format allows bytes > numel x size; the runtime copies samples in
  // and out byte for byte, so program inputs and outputs must be dense.
  expect_bad_program([](program::ProgramData& p) { p.tensors[0].bytes = 32; },
                     {"program input 0 'x'", "dense", "16 bytes", "32"});
  expect_bad_program([](program::ProgramData& p) { p.tensors[2].bytes = 64; },
                     {"program output 0 'y'", "dense"});
}

TEST(BadInputProgram, ChannelsLastScalar) {
  expect_bad_program(
      [](program::ProgramData& p) {
        p.instructions[0].op = "Relu";
        p.instructions[0].inputs = {0};
        p.tensors[0].shape = {4};
        p.tensors[2].shape = {4};
        p.tensors[0].layout = program::Layout::channels_last;
        p.inputs.clear();  // not a program input (those are checked first)
        p.tensors[0].name = "t";
      },
      {"'t'", "channels-last with rank 1"});
}

TEST(BadInputProgram, AbsurdArenaIsRefusedBeforeItIsTouched) {
  // 2^46 bytes: more than any host has; refused up front, not touched.
  expect_bad_program([](program::ProgramData& p) { p.arena_bytes = uint64_t(1) << 46; },
                     {"cannot allocate", "bytes of memory"}, ErrorKind::out_of_memory);
}

// --- files ------------------------------------------------------------------

TEST(BadInputFiles, ModelFiles) {
  TempDir tmp;
  expect_error([&] { compile(tmp.dir() + "/missing.onnx"); }, ErrorKind::invalid_argument,
               {"cannot open model file", "missing.onnx"});
  expect_error([&] { compile(tmp.file("empty.onnx", {})); }, ErrorKind::invalid_argument,
               {"empty.onnx", "empty"});
  expect_error([&] { compile(tmp.dir()); }, ErrorKind::invalid_argument,
               {tmp.dir(), "is a directory"});
  const std::vector<uint8_t> garbage = {'n', 'o', 't', ' ', 'o', 'n', 'n', 'x', 0xff, 0xfe};
  expect_error([&] { compile(tmp.file("garbage.onnx", garbage)); }, ErrorKind::invalid_argument,
               {"garbage.onnx", "not a valid ONNX model"});
  if (fs::exists(digits_model())) {
    std::vector<uint8_t> model = read_bytes(digits_model());
    model.resize(model.size() / 2);
    expect_error([&] { compile(tmp.file("half.onnx", model)); }, ErrorKind::invalid_argument,
                 {"half.onnx", "truncated or not ONNX"});
  }
}

TEST(BadInputFiles, HugeSparseFilesAreNotRead) {
  TempDir tmp;
  const long rss0 = peak_rss_mib();
  const std::string onnx = tmp.sparse("huge.onnx", uintmax_t(3) << 30);
  expect_error([&] { compile(onnx); }, ErrorKind::unsupported,
               {"huge.onnx", "3221225472 bytes", "over 2 GiB"});
  const std::string prog = tmp.sparse("huge.shoal", uintmax_t(3) << 30);
  expect_error([&] { Program::load(prog); }, ErrorKind::invalid_argument,
               {"huge.shoal", "bad magic"});
  // Neither file was read into memory (3 GiB of zeros each).
  EXPECT_LT(peak_rss_mib() - rss0, 512);
}

TEST_F(BadInputDigits, ProgramFiles) {
  TempDir tmp;
  const std::vector<uint8_t> good = digits().to_bytes();
  std::vector<uint8_t> half(good.begin(), good.begin() + long(good.size() / 2));
  expect_error([&] { Program::load(tmp.file("half.shoal", half)); }, ErrorKind::invalid_argument,
               {"half.shoal", "truncated"});
  // A program from a future format version (its version field, at offset 8).
  std::vector<uint8_t> future = good;
  future[8] = uint8_t(program::kFormatVersion + 1);
  expect_error([&] { Program::load(tmp.file("future.shoal", future)); },
               ErrorKind::invalid_argument,
               {"future.shoal", "version " + std::to_string(program::kFormatVersion + 1),
                "newer than this shoal"});
  // An ONNX model where a program is expected, and the other way round.
  if (fs::exists(digits_model())) {
    expect_error([&] { Program::load(digits_model()); }, ErrorKind::invalid_argument,
                 {"digits_cnn.onnx", "not a shoal program file"});
    const std::string prog = tmp.file("digits.shoal", good);
    expect_error([&] { compile(prog); }, ErrorKind::invalid_argument,
                 {"digits.shoal", "not a valid ONNX model"});
  }
}

// --- the C API --------------------------------------------------------------

bool contains(const char* haystack, const std::string& needle) {
  return std::string(haystack).find(needle) != std::string::npos;
}

TEST(BadInputCApi, HugeAndFutureFiles) {
  TempDir tmp;
  shoal_program* prog = nullptr;
  const std::string onnx = tmp.sparse("huge.onnx", uintmax_t(3) << 30);
  EXPECT_EQ(shoal_compile(onnx.c_str(), nullptr, 0, 1, 1, 0, &prog), SHOAL_ERR_UNSUPPORTED);
  EXPECT_TRUE(contains(shoal_last_error(), "over 2 GiB")) << shoal_last_error();
  const std::string huge = tmp.sparse("huge.shoal", uintmax_t(3) << 30);
  EXPECT_EQ(shoal_program_load(huge.c_str(), &prog), SHOAL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(shoal_last_error(), "bad magic")) << shoal_last_error();
  if (fs::exists(digits_model())) {
    std::vector<uint8_t> future = digits().to_bytes();
    future[8] = uint8_t(program::kFormatVersion + 1);
    EXPECT_EQ(shoal_program_from_bytes(future.data(), future.size(), &prog),
              SHOAL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(contains(shoal_last_error(), "newer than this shoal")) << shoal_last_error();
  }
  EXPECT_EQ(prog, nullptr);
}

TEST(BadInputCApi, NanInputRuns) {
  ASSERT_TRUE(fs::exists(digits_model())) << "no digits model (bundled)";
  shoal_program* prog = nullptr;
  shoal_runtime* rt = nullptr;
  ASSERT_EQ(shoal_compile(digits_model().c_str(), nullptr, 0, 1, 1, 0, &prog), SHOAL_OK)
      << shoal_last_error();
  ASSERT_EQ(shoal_runtime_create(prog, nullptr, 0, &rt), SHOAL_OK) << shoal_last_error();
  std::vector<float> x(2 * 64, 1.0f), y(20, 0.0f);
  x[64 + 10] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(shoal_runtime_run(rt, x.data(), 2, y.data(), y.size()), SHOAL_OK)
      << shoal_last_error();
  for (int j = 0; j < 10; ++j) EXPECT_TRUE(std::isfinite(y[size_t(j)]));
  shoal_runtime_free(rt);
  shoal_program_free(prog);
}

}  // namespace
}  // namespace shoal

// An empty shape is empty however large its other dimensions, and a product
// past int64 saturates instead of wrapping (a fuzzed initializer of shape
// [4604662306700501760, 3, 0] overflowed shape_numel: undefined behaviour).
TEST(BadInputShapes, NumelOfHugeAndEmptyShapes) {
  const int64_t big = 4604662306700501760;
  EXPECT_EQ(shoal::shape_numel({big, 3, 0}), 0);
  EXPECT_EQ(shoal::shape_numel({0, big, big}), 0);
  EXPECT_EQ(shoal::shape_numel({big, 3}), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(shoal::shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shoal::shape_numel({}), 1);
  EXPECT_EQ(shoal::HostTensor(shoal::DType::f32, {big, 3, 0}).numel(), 0);
  try {
    shoal::HostTensor(shoal::DType::f32, {big, 3});
    FAIL() << "a tensor of 1.4e19 elements was allocated";
  } catch (const shoal::Error& e) {
    EXPECT_EQ(e.kind(), shoal::ErrorKind::out_of_memory);
  }
}
