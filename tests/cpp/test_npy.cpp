// Tests of the .npy reader/writer used by the command line (tools/npy.cpp).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "shoal/error.hpp"

// tools/npy.cpp is compiled into the test binary (tests/CMakeLists.txt).
#include "../../tools/npy.hpp"

namespace {

using shoal::DType;
using shoal::Error;
using shoal::ErrorKind;
namespace npy = shoal::npy;

// A .npy file with the given header dict text (v1.0) and raw data bytes.
std::vector<uint8_t> make_npy(const std::string& dict, const void* data,
                              size_t bytes, int major = 1) {
  std::string header = dict;
  const size_t preamble = major == 1 ? 10 : 12;
  header += std::string((64 - (preamble + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
  const size_t n = header.size();
  out.push_back(uint8_t(n & 0xff));
  out.push_back(uint8_t(n >> 8 & 0xff));
  if (major != 1) {
    out.push_back(uint8_t(n >> 16 & 0xff));
    out.push_back(uint8_t(n >> 24 & 0xff));
  }
  out.insert(out.end(), header.begin(), header.end());
  const auto* d = static_cast<const uint8_t*>(data);
  out.insert(out.end(), d, d + bytes);
  return out;
}

// Expects parse() to throw an Error of `kind` whose message contains `text`.
void expect_error(const std::vector<uint8_t>& bytes, ErrorKind kind,
                  const std::string& text) {
  try {
    npy::parse(bytes.data(), bytes.size(), "test.npy");
    ADD_FAILURE() << "no error; expected one containing '" << text << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test.npy"), std::string::npos)
        << e.what();
  }
}

TEST(NpyTest, RoundTripShapes) {
  const std::vector<shoal::Shape> shapes = {
      {}, {0}, {5}, {2, 3, 4}, {1, 1, 8, 8}};
  for (const shoal::Shape& shape : shapes) {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    std::vector<float> data(n);
    for (size_t i = 0; i < n; ++i) data[i] = float(i) * 0.5f - 3.0f;
    const std::vector<uint8_t> bytes = npy::encode(data.data(), shape);
    EXPECT_EQ(std::memcmp(bytes.data(), "\x93NUMPY\x01\x00", 8), 0);
    const size_t header_len = bytes[8] | bytes[9] << 8;
    EXPECT_EQ((10 + header_len) % 64, 0u) << "data must be 64-byte aligned";
    EXPECT_EQ(bytes.size(), 10 + header_len + n * 4);
    const npy::Array a = npy::parse(bytes.data(), bytes.size());
    EXPECT_EQ(a.shape, shape);
    EXPECT_EQ(a.data, data);
  }
}

TEST(NpyTest, HeaderText) {
  const float x[3] = {1, 2, 3};
  const std::vector<uint8_t> bytes = npy::encode(x, {3});
  const std::string header(bytes.begin() + 10, bytes.end() - 12);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos);
  EXPECT_NE(header.find("'shape': (3,)"), std::string::npos) << header;
  EXPECT_EQ(header.back(), '\n');
}

TEST(NpyTest, FileRoundTrip) {
  const std::string path =
      (std::filesystem::temp_directory_path() /
       ("shoal_npy_test_" + std::to_string(getpid()) + ".npy"))
          .string();
  const std::vector<float> data = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  npy::save(path, data.data(), {2, 3});
  const npy::Array a = npy::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(a.shape, (shoal::Shape{2, 3}));
  EXPECT_EQ(a.data, data);
}

TEST(NpyTest, WritesOtherDtypes) {
  const int64_t v[3] = {1, -2, 300};
  const std::vector<uint8_t> bytes = npy::encode(v, DType::i64, {3});
  const std::string text(bytes.begin(), bytes.end());
  EXPECT_NE(text.find("'<i8'"), std::string::npos);
  const npy::Array a = npy::parse(bytes.data(), bytes.size());
  EXPECT_EQ(a.data, (std::vector<float>{1.0f, -2.0f, 300.0f}));
}

TEST(NpyTest, ConvertsF8AndI8) {
  const double d[4] = {0.5, -1.25, 3.0, 1e3};
  const std::vector<uint8_t> f8 =
      make_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", d,
               sizeof d);
  const npy::Array a = npy::parse(f8.data(), f8.size());
  EXPECT_EQ(a.shape, (shoal::Shape{2, 2}));
  EXPECT_EQ(a.data, (std::vector<float>{0.5f, -1.25f, 3.0f, 1000.0f}));

  const int64_t i[3] = {7, -8, 9};
  const std::vector<uint8_t> b = make_npy(
      "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", i, sizeof i);
  const npy::Array c = npy::parse(b.data(), b.size());
  EXPECT_EQ(c.shape, (shoal::Shape{3}));
  EXPECT_EQ(c.data, (std::vector<float>{7.0f, -8.0f, 9.0f}));
}

TEST(NpyTest, AcceptsVersion2AndLooseSpacing) {
  const float x[2] = {4, 5};
  const std::vector<uint8_t> b =
      make_npy("{\"shape\":(1,2),\"fortran_order\":False,\"descr\":\"<f4\"}", x,
               sizeof x, 2);
  const npy::Array a = npy::parse(b.data(), b.size());
  EXPECT_EQ(a.shape, (shoal::Shape{1, 2}));
  EXPECT_EQ(a.data, (std::vector<float>{4, 5}));
}

TEST(NpyTest, RejectsFortranOrder) {
  const float x[4] = {};
  expect_error(
      make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", x,
               sizeof x),
      ErrorKind::unsupported, "fortran_order");
}

TEST(NpyTest, RejectsBigEndian) {
  const float x[4] = {};
  expect_error(
      make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", x,
               sizeof x),
      ErrorKind::unsupported, "big-endian");
}

TEST(NpyTest, RejectsTruncatedData) {
  const float x[3] = {};
  expect_error(
      make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", x,
               sizeof x),
      ErrorKind::invalid_argument, "truncated");
}

TEST(NpyTest, RejectsTruncatedHeader) {
  std::vector<uint8_t> b = make_npy(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", nullptr, 0);
  b.resize(30);
  expect_error(b, ErrorKind::invalid_argument, "truncated header");
}

TEST(NpyTest, RejectsBadMagic) {
  std::vector<uint8_t> b = make_npy(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", nullptr, 0);
  b[1] = 'X';
  expect_error(b, ErrorKind::invalid_argument, "magic");
  expect_error({}, ErrorKind::invalid_argument, "magic");
}

TEST(NpyTest, RejectsMalformedHeaders) {
  const float x[1] = {};
  // Missing keys, bad values, not a dict.
  expect_error(make_npy("{'descr': '<f4', 'fortran_order': False, }", x, 4),
               ErrorKind::invalid_argument, "shape");
  expect_error(make_npy("{'shape': (1,), 'fortran_order': False, }", x, 4),
               ErrorKind::invalid_argument, "descr");
  expect_error(make_npy("{'descr': '<f4', 'shape': (1,), }", x, 4),
               ErrorKind::invalid_argument, "fortran_order");
  expect_error(
      make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", x,
               4),
      ErrorKind::invalid_argument, "malformed header");
  expect_error(
      make_npy("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", x,
               4),
      ErrorKind::invalid_argument, "malformed header");
  expect_error(make_npy("['descr', '<f4']", x, 4), ErrorKind::invalid_argument,
               "malformed header");
  expect_error(make_npy("{'descr': '<f4'", x, 4), ErrorKind::invalid_argument,
               "malformed header");
}

TEST(NpyTest, RejectsUnsupportedTypes) {
  const float x[2] = {};
  expect_error(
      make_npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", x,
               8),
      ErrorKind::unsupported, "unsupported dtype");
  expect_error(make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, "
                        "'shape': (1,), }",
                        x, 4),
               ErrorKind::unsupported, "structured");
  std::vector<uint8_t> b = make_npy(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", x, 4);
  b[6] = 9;
  expect_error(b, ErrorKind::unsupported, "version 9");
}

TEST(NpyTest, MissingFileNamesThePath) {
  const std::string path = "/nonexistent/shoal/missing.npy";
  try {
    npy::load(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

}  // namespace
