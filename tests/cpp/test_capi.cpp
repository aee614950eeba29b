// Tests of the C API (include/shoal/shoal.h).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "shoal/shoal.h"
#include "shoal/shoal.hpp"

namespace {

std::string source_dir() {
  if (const char* env = std::getenv("SHOAL_SOURCE_DIR")) return env;
#ifdef SHOAL_SOURCE_DIR
  return SHOAL_SOURCE_DIR;
#else
  return ".";
#endif
}

std::string digits_model() { return source_dir() + "/models/digits/digits_cnn.onnx"; }

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Expects `status` to be INVALID_ARGUMENT with a message containing `text`.
#define EXPECT_INVALID(status, text)                                               \
  do {                                                                             \
    EXPECT_EQ((status), SHOAL_ERR_INVALID_ARGUMENT);                               \
    EXPECT_TRUE(contains(shoal_last_error(), (text)))                              \
        << "message: '" << shoal_last_error() << "', expected '" << (text) << "'"; \
  } while (0)

TEST(CApiTest, VersionAndStatusNames) {
  ASSERT_NE(shoal_version(), nullptr);
  EXPECT_STREQ(shoal_version(), SHOAL_VERSION);
  EXPECT_STREQ(shoal_version(), shoal::version());
  EXPECT_EQ(std::string(SHOAL_VERSION), std::to_string(SHOAL_VERSION_MAJOR) + "." +
                                            std::to_string(SHOAL_VERSION_MINOR) + "." +
                                            std::to_string(SHOAL_VERSION_PATCH));
  EXPECT_STREQ(shoal_status_name(SHOAL_OK), "ok");
  EXPECT_STREQ(shoal_status_name(SHOAL_ERR_INVALID_ARGUMENT), "invalid_argument");
  EXPECT_STREQ(shoal_status_name(SHOAL_ERR_UNSUPPORTED), "unsupported");
  EXPECT_STREQ(shoal_status_name(SHOAL_ERR_OUT_OF_MEMORY), "out_of_memory");
  EXPECT_STREQ(shoal_status_name(SHOAL_ERR_DEVICE), "device");
  EXPECT_STREQ(shoal_status_name(SHOAL_ERR_INTERNAL), "internal");
  EXPECT_STREQ(shoal_status_name(42), "unknown");
  ASSERT_NE(shoal_last_error(), nullptr);
}

TEST(CApiTest, NullArgumentsAreInvalid) {
  shoal_program* prog = nullptr;
  shoal_runtime* rt = nullptr;
  size_t n = 0;
  int64_t size = 0;
  const int64_t shape[4] = {1, 1, 8, 8};

  EXPECT_INVALID(shoal_program_load(nullptr, &prog), "path");
  EXPECT_INVALID(shoal_program_load("x.shoal", nullptr), "out");
  EXPECT_INVALID(shoal_program_from_bytes(nullptr, 4, &prog), "data");
  EXPECT_INVALID(shoal_program_save(nullptr, "x.shoal"), "program");
  EXPECT_INVALID(shoal_compile(nullptr, shape, 4, 1, 1, 0, &prog), "onnx_path");
  EXPECT_INVALID(shoal_compile("m.onnx", shape, 4, 1, 1, 0, nullptr), "out");
  EXPECT_INVALID(shoal_compile("m.onnx", nullptr, 4, 1, 1, 0, &prog), "input_shape");
  EXPECT_INVALID(shoal_compile("m.onnx", shape, 4, 0, 1, 0, &prog), "devices");
  EXPECT_INVALID(shoal_compile("m.onnx", shape, 4, 1, -1, 0, &prog), "clusters");
  EXPECT_INVALID(shoal_compile("m.onnx", shape, 4, 1, 1, 3, &prog), "mode must be");
  EXPECT_INVALID(shoal_compile_bytes(nullptr, 0, shape, 4, 1, 1, 0, &prog), "onnx_bytes");
  EXPECT_INVALID(shoal_program_num_inputs(nullptr, &n), "program");
  EXPECT_INVALID(shoal_program_num_outputs(nullptr, &n), "program");
  EXPECT_INVALID(shoal_program_input_size(nullptr, 0, &size), "program");
  EXPECT_INVALID(shoal_program_output_size(nullptr, 0, &size), "program");
  EXPECT_INVALID(shoal_program_input_shape(nullptr, 0, nullptr, 0, &n), "program");
  EXPECT_INVALID(shoal_program_output_shape(nullptr, 0, nullptr, 0, &n), "program");
  EXPECT_INVALID(shoal_runtime_create(nullptr, nullptr, 0, &rt), "program");
  float in[64] = {}, out[10] = {};
  EXPECT_INVALID(shoal_runtime_run(nullptr, in, 1, out, 10), "runtime");
  const float* ins[1] = {in};
  float* outs[1] = {out};
  const size_t caps[1] = {10};
  EXPECT_INVALID(shoal_runtime_run_multi(nullptr, ins, 1, 1, outs, caps, 1), "runtime");
  double ms = 0;
  EXPECT_INVALID(shoal_runtime_last_run_ms(nullptr, &ms), "runtime");
  EXPECT_INVALID(shoal_device_count(nullptr), "count");
  EXPECT_EQ(prog, nullptr) << "outputs must be untouched on failure";
  EXPECT_EQ(rt, nullptr);

  shoal_program_free(nullptr);  // no-ops
  shoal_runtime_free(nullptr);
}

TEST(CApiTest, MissingFilesNameThePath) {
  shoal_program* prog = nullptr;
  const std::string path = "/nonexistent/shoal_dir/model.shoal";
  EXPECT_INVALID(shoal_program_load(path.c_str(), &prog), path);
  const std::string onnx = "/nonexistent/shoal_dir/model.onnx";
  const int64_t shape[4] = {1, 1, 8, 8};
  EXPECT_INVALID(shoal_compile(onnx.c_str(), shape, 4, 1, 1, 0, &prog), onnx);
  EXPECT_EQ(prog, nullptr);
}

TEST(CApiTest, GarbageProgramBytesAreRejected) {
  shoal_program* prog = nullptr;
  const char garbage[] = "this is not a shoal program";
  const int status = shoal_program_from_bytes(garbage, sizeof garbage, &prog);
  EXPECT_EQ(status, SHOAL_ERR_INVALID_ARGUMENT) << shoal_last_error();
  EXPECT_GT(std::string(shoal_last_error()).size(), 0u);
  EXPECT_EQ(prog, nullptr);
}

TEST(CApiTest, LastErrorIsPerThread) {
  shoal_program* prog = nullptr;
  ASSERT_NE(shoal_program_load(nullptr, &prog), SHOAL_OK);
  const std::string mine = shoal_last_error();
  std::string theirs;
  std::thread t([&] {
    theirs = shoal_last_error();  // nothing failed on this thread yet
    shoal_device_count(nullptr);
  });
  t.join();
  EXPECT_EQ(theirs, "");
  EXPECT_EQ(mine, shoal_last_error());
}

// Compiles the digits model once for the tests below.
class CApiDigitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(digits_model()))
        << "model missing (bundled): " << digits_model();
    const int64_t shape[4] = {1, 1, 8, 8};
    ASSERT_EQ(shoal_compile(digits_model().c_str(), shape, 4, 1, 1, 0, &prog_), SHOAL_OK)
        << shoal_last_error();
    ASSERT_NE(prog_, nullptr);
    ASSERT_EQ(shoal_runtime_create(prog_, nullptr, 0, &rt_), SHOAL_OK) << shoal_last_error();
    ASSERT_NE(rt_, nullptr);
  }
  void TearDown() override {
    shoal_runtime_free(rt_);
    shoal_program_free(prog_);
  }

  // A deterministic batch of inputs in [0, 16), like the digits data set.
  static std::vector<float> inputs(size_t batch) {
    std::vector<float> x(batch * 64);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7 + 3) % 17);
    return x;
  }

  shoal_program* prog_ = nullptr;
  shoal_runtime* rt_ = nullptr;
};

TEST_F(CApiDigitsTest, Describes) {
  size_t n = 0;
  ASSERT_EQ(shoal_program_num_inputs(prog_, &n), SHOAL_OK);
  EXPECT_EQ(n, 1u);
  ASSERT_EQ(shoal_program_num_outputs(prog_, &n), SHOAL_OK);
  EXPECT_EQ(n, 1u);
  int64_t size = 0;
  ASSERT_EQ(shoal_program_input_size(prog_, 0, &size), SHOAL_OK);
  EXPECT_EQ(size, 64);
  ASSERT_EQ(shoal_program_output_size(prog_, 0, &size), SHOAL_OK);
  EXPECT_EQ(size, 10);
  EXPECT_INVALID(shoal_program_output_size(prog_, 1, &size), "out of range");

  int64_t dims[8] = {};
  size_t ndim = 0;
  ASSERT_EQ(shoal_program_input_shape(prog_, 0, dims, 8, &ndim), SHOAL_OK);
  ASSERT_EQ(ndim, 4u);
  EXPECT_EQ(dims[0], 1);
  EXPECT_EQ(dims[1], 1);
  EXPECT_EQ(dims[2], 8);
  EXPECT_EQ(dims[3], 8);
  ndim = 0;
  EXPECT_INVALID(shoal_program_input_shape(prog_, 0, dims, 2, &ndim), "capacity");
  EXPECT_EQ(ndim, 4u) << "the rank is reported even when capacity is short";
  ndim = 0;
  ASSERT_EQ(shoal_program_output_shape(prog_, 0, nullptr, 0, &ndim), SHOAL_OK) << "a rank query";
  ASSERT_GE(ndim, 1u);
  std::vector<int64_t> out_dims(ndim);
  ASSERT_EQ(shoal_program_output_shape(prog_, 0, out_dims.data(), ndim, &ndim), SHOAL_OK);
  EXPECT_EQ(out_dims[0], 1);
  EXPECT_EQ(out_dims.back(), 10);
}

TEST_F(CApiDigitsTest, RunsABatchOfThree) {
  const size_t batch = 3;
  const std::vector<float> x = inputs(batch);
  std::vector<float> y(batch * 10, NAN);
  ASSERT_EQ(shoal_runtime_run(rt_, x.data(), batch, y.data(), y.size()), SHOAL_OK)
      << shoal_last_error();
  for (float v : y) EXPECT_TRUE(std::isfinite(v));

  // Each sample alone gives the same 10 outputs, in input order.
  for (size_t b = 0; b < batch; ++b) {
    float one[10];
    ASSERT_EQ(shoal_runtime_run(rt_, x.data() + b * 64, 1, one, 10), SHOAL_OK)
        << shoal_last_error();
    for (size_t j = 0; j < 10; ++j)
      EXPECT_NEAR(one[j], y[b * 10 + j], 1e-4f * (1 + std::fabs(one[j])))
          << "sample " << b << " output " << j;
  }
  double ms = -1;
  ASSERT_EQ(shoal_runtime_last_run_ms(rt_, &ms), SHOAL_OK);
  EXPECT_GE(ms, 0.0);

  // run_multi gives the same result.
  std::vector<float> z(batch * 10, NAN);
  const float* ins[1] = {x.data()};
  float* outs[1] = {z.data()};
  const size_t caps[1] = {z.size()};
  ASSERT_EQ(shoal_runtime_run_multi(rt_, ins, 1, batch, outs, caps, 1), SHOAL_OK)
      << shoal_last_error();
  for (size_t i = 0; i < z.size(); ++i) EXPECT_NEAR(z[i], y[i], 1e-4f);
}

TEST_F(CApiDigitsTest, RejectsBadRunArguments) {
  const std::vector<float> x = inputs(3);
  std::vector<float> y(30, 123.0f);
  EXPECT_INVALID(shoal_runtime_run(rt_, x.data(), 3, y.data(), 29), "capacity");
  for (float v : y) EXPECT_EQ(v, 123.0f) << "output written despite the error";
  EXPECT_INVALID(shoal_runtime_run(rt_, x.data(), 0, y.data(), 30), "batch");
  EXPECT_INVALID(shoal_runtime_run(rt_, nullptr, 3, y.data(), 30), "input");
  EXPECT_INVALID(shoal_runtime_run(rt_, x.data(), 3, nullptr, 30), "output");

  const float* ins[1] = {x.data()};
  float* outs[1] = {y.data()};
  const size_t caps[1] = {30};
  EXPECT_INVALID(shoal_runtime_run_multi(rt_, ins, 2, 3, outs, caps, 1), "inputs");
  EXPECT_INVALID(shoal_runtime_run_multi(rt_, ins, 1, 3, outs, caps, 2), "outputs");
  EXPECT_INVALID(shoal_runtime_run_multi(rt_, ins, 1, 3, outs, nullptr, 1), "output_capacities");
  const float* null_in[1] = {nullptr};
  EXPECT_INVALID(shoal_runtime_run_multi(rt_, null_in, 1, 3, outs, caps, 1), "input 0");
}

TEST_F(CApiDigitsTest, SaveLoadAndFromBytes) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("shoal_capi_test_" + std::to_string(getpid()) + ".shoal"))
                               .string();
  ASSERT_EQ(shoal_program_save(prog_, path.c_str()), SHOAL_OK) << shoal_last_error();

  const std::vector<float> x = inputs(2);
  std::vector<float> want(20), got(20);
  ASSERT_EQ(shoal_runtime_run(rt_, x.data(), 2, want.data(), 20), SHOAL_OK) << shoal_last_error();

  shoal_program* loaded = nullptr;
  ASSERT_EQ(shoal_program_load(path.c_str(), &loaded), SHOAL_OK) << shoal_last_error();
  shoal_runtime* rt = nullptr;
  ASSERT_EQ(shoal_runtime_create(loaded, nullptr, 0, &rt), SHOAL_OK) << shoal_last_error();
  shoal_program_free(loaded);  // the runtime keeps its own reference
  ASSERT_EQ(shoal_runtime_run(rt, x.data(), 2, got.data(), 20), SHOAL_OK) << shoal_last_error();
  shoal_runtime_free(rt);
  for (size_t i = 0; i < 20; ++i) EXPECT_NEAR(got[i], want[i], 1e-5f);

  std::ifstream f(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                                std::istreambuf_iterator<char>());
  f.close();
  std::filesystem::remove(path);
  shoal_program* from_bytes = nullptr;
  ASSERT_EQ(shoal_program_from_bytes(bytes.data(), bytes.size(), &from_bytes), SHOAL_OK)
      << shoal_last_error();
  size_t n = 0;
  EXPECT_EQ(shoal_program_num_outputs(from_bytes, &n), SHOAL_OK);
  EXPECT_EQ(n, 1u);
  shoal_program_free(from_bytes);
}

}  // namespace

// shoal_compile_precision: bf16 gives the f32 logits to within bf16's
// rounding where the CPU has the instructions, and otherwise fails as
// unsupported naming them (never a silent f32 or emulated run).
TEST_F(CApiDigitsTest, CompilesAtPrecision) {
  const int64_t shape[4] = {1, 1, 8, 8};
  shoal_program* bf16 = nullptr;
  EXPECT_INVALID(shoal_compile_precision(digits_model().c_str(), shape, 4, 1, 1, 0, 7, &bf16),
                 "precision must be");
  const int rc = shoal_compile_precision(digits_model().c_str(), shape, 4, 1, 1, 0,
                                         SHOAL_PRECISION_BF16, &bf16);
  if (rc != SHOAL_OK) {
    EXPECT_EQ(rc, SHOAL_ERR_UNSUPPORTED);
    EXPECT_TRUE(contains(shoal_last_error(), "avx512_bf16")) << shoal_last_error();
    return;
  }
  shoal_runtime* rt = nullptr;
  ASSERT_EQ(shoal_runtime_create(bf16, nullptr, 0, &rt), SHOAL_OK) << shoal_last_error();
  const std::vector<float> x = inputs(2);
  std::vector<float> want(20), got(20);
  ASSERT_EQ(shoal_runtime_run(rt_, x.data(), 2, want.data(), want.size()), SHOAL_OK);
  ASSERT_EQ(shoal_runtime_run(rt, x.data(), 2, got.data(), got.size()), SHOAL_OK);
  float range = 0;
  for (float v : want) range = std::max(range, std::fabs(v));
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 0.02f * range) << i;
  EXPECT_NE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
      << "bf16 rounds: the logits differ from f32's in some bits";
  shoal_runtime_free(rt);
  shoal_program_free(bf16);
}
