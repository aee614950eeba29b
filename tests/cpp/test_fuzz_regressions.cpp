// Every input the fuzzers ever crashed on (fuzz/regressions/) and every seed
// (fuzz/corpus/) goes through the fuzz targets' own code path
// (fuzz/fuzz_common.hpp): it must succeed or throw shoal::Error, nothing else.
// Under the sanitizer builds (scripts/test-sanitizers.sh) this also checks
// that none of them touches memory it should not.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "../../fuzz/fuzz_common.hpp"

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

std::vector<fs::path> files_in(const std::string& dir) {
  std::vector<fs::path> out;
  const fs::path root = fs::path(source_dir()) / "fuzz" / dir;
  if (!fs::is_directory(root)) return out;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

using Target = std::function<void(const uint8_t*, size_t)>;

// Feeds each file to `target`; returns how many were rejected with an Error.
int feed(const std::vector<fs::path>& files, const Target& target) {
  int rejected = 0;
  for (const fs::path& p : files) {
    SCOPED_TRACE(p.string());
    const std::vector<uint8_t> bytes = read_bytes(p);
    try {
      target(bytes.data(), bytes.size());
    } catch (const shoal::Error& e) {
      ++rejected;
      EXPECT_GT(std::string(e.what()).size(), 0u) << "an error needs a message";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "escaped as a non-shoal exception: " << e.what();
    } catch (...) {
      ADD_FAILURE() << "escaped as an unknown exception";
    }
  }
  return rejected;
}

// A missing or emptied folder fails: the reproducers are the point.
TEST(FuzzRegressions, OnnxImport) {
  const auto files = files_in("regressions/onnx");
  ASSERT_FALSE(files.empty()) << "no reproducers in fuzz/regressions/onnx";
  feed(files, shoal::fuzz::compile_onnx);
}

TEST(FuzzRegressions, ProgramLoad) {
  const auto files = files_in("regressions/program");
  ASSERT_FALSE(files.empty()) << "no reproducers in fuzz/regressions/program";
  feed(files, shoal::fuzz::load_and_run_program);
}

// The serve target: every reproducer is a malformed request, so it must be
// refused with a 400 (which decode_serve_request turns into false), and
// every seed must decode.
TEST(FuzzRegressions, ServeRequest) {
  const auto files = files_in("regressions/serve");
  ASSERT_FALSE(files.empty()) << "no reproducers in fuzz/regressions/serve";
  for (const fs::path& p : files) {
    SCOPED_TRACE(p.string());
    const std::vector<uint8_t> bytes = read_bytes(p);
    EXPECT_FALSE(shoal::fuzz::decode_serve_request(bytes.data(), bytes.size()));
  }
  const auto seeds = files_in("corpus/serve");
  ASSERT_FALSE(seeds.empty()) << "no seeds in fuzz/corpus/serve";
  for (const fs::path& p : seeds) {
    SCOPED_TRACE(p.string());
    const std::vector<uint8_t> bytes = read_bytes(p);
    EXPECT_TRUE(shoal::fuzz::decode_serve_request(bytes.data(), bytes.size()));
  }
}

// The seeds are valid: each must compile (or load and run) without error.
TEST(FuzzRegressions, SeedsAreValid) {
  const auto onnx = files_in("corpus/onnx"), programs = files_in("corpus/program");
  ASSERT_FALSE(onnx.empty()) << "no seeds in fuzz/corpus/onnx";
  ASSERT_FALSE(programs.empty()) << "no seeds in fuzz/corpus/program";
  EXPECT_EQ(feed(onnx, shoal::fuzz::compile_onnx), 0);
  EXPECT_EQ(feed(programs, shoal::fuzz::load_and_run_program), 0);
}

}  // namespace
