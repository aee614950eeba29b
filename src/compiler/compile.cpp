// shoal::compile: ONNX bytes -> passes -> ProgramData.
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "compiler/emit.hpp"
#include "core/settings.hpp"
#include "device/registry.hpp"
#include "frontend/onnx/onnx_import.hpp"
#include "passes/passes.hpp"
#include "program/access.hpp"
#include "shoal/shoal.hpp"

namespace shoal {
namespace {

std::vector<uint8_t> read_file(const std::string& path) {
  std::error_code ec;  // a directory opens as a stream "of 2^63 bytes"
  if (std::filesystem::is_directory(path, ec))
    throw Error(ErrorKind::invalid_argument,
                "cannot read model file '" + path + "': it is a directory");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error(ErrorKind::invalid_argument, "cannot open model file '" + path + "'");
  const std::streamoff size = f.tellg();
  if (size < 0) throw Error(ErrorKind::invalid_argument, "cannot read model file '" + path + "'");
  // Checked before reading, so that a huge file is not read in vain.
  if (size > std::streamoff(std::numeric_limits<int>::max()))
    throw Error(ErrorKind::unsupported,
                "model file '" + path + "' has " + std::to_string(size) +
                    " bytes; ONNX models over 2 GiB (protobuf's limit) are not supported");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(ErrorKind::invalid_argument, "cannot read model file '" + path + "'");
  return bytes;
}

/// The backend `kind` names; Error(invalid_argument) listing the build's
/// backends when there is none.
device::Backend target_backend(const std::string& kind) {
  std::string have;
  for (const device::Backend& b : device::backends()) {
    if (b.kind == kind) return b;
    have += (have.empty() ? "" : ", ") + b.kind;
  }
  throw Error(ErrorKind::invalid_argument,
              "target '" + kind + "': no such backend in this build (it has " + have + ")");
}

}  // namespace

Program compile_bytes(const void* onnx_bytes, size_t size, const CompileOptions& o) {
  const Settings settings = read_settings();
  if (o.devices < 1 || o.devices > 1024)
    throw Error(ErrorKind::invalid_argument,
                "devices must be 1..1024, got " + std::to_string(o.devices));
  if (o.clusters < 0 || o.clusters > 1024)
    throw Error(ErrorKind::invalid_argument,
                "clusters must be 0 (one per core) to 1024, got " + std::to_string(o.clusters));
  // The target's backend, before any work: its compile hook does the
  // target-specific part (the compiler names no backend).
  const device::Backend target = target_backend(o.target);
  if (!target.compile && o.precision != Precision::f32)
    throw Error(ErrorKind::unsupported, std::string("precision ") + precision_name(o.precision) +
                                            ": target '" + o.target + "' computes in f32 only");
  const auto t0 = std::chrono::steady_clock::now();
  auto log = [&](const std::string& s) {
    if (!o.log) return;
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "[%8.1f ms] ", ms);
    o.log(stamp + s);
  };
  frontend::ImportOptions io;
  io.input_shape = o.input_shape;
  io.log = log;
  auto data = std::make_shared<program::ProgramData>();
  ir::Graph g = frontend::import_onnx(onnx_bytes, size, io, &data->model_name);
  passes::remove_unused(g, log);
  if (o.optimize) passes::fuse_qdq(g, log);
  passes::infer_and_fold(g, log);
  if (o.optimize) passes::fuse_qdq_add(g, log);
  if (o.optimize) passes::fuse_qdq_lookup(g, log);
  passes::remove_dead_and_identity(g, log);
  if (o.optimize) {
    passes::lower_einsum(g, log);
    passes::lower_reductions(g, log);
    passes::fold_pad_into_pool(g, log);
    passes::fold_batchnorm(g, log);
    passes::split_concat_conv(g, log);
    passes::recognize_composites(g, log);
    passes::batch_generic_reshapes(g, log);
    passes::fuse_matmul_bias(g, log);
    passes::fuse_residual_add(g, log);
    passes::fuse_activations(g, log);
    passes::fuse_concat_batchnorm(g, log);
    passes::fuse_pointwise_depthwise(g, log);
    passes::fuse_channel_scale(g, log);
    passes::fuse_concat_gather(g, log);
    passes::assign_layouts(g, log);
  }
  data->version = program::kFormatVersion;
  data->target = o.target;
  data->producer = std::string("shoal ") + version();
  data->devices = o.devices;
  data->clusters = o.clusters;
  data->mode = o.mode;
  compiler::emit_program(g, *data, log);
  if (target.compile) target.compile(*data, o, settings, log);
  if (o.strict) {
    std::string kind = o.target;  // "CPU" in messages
    for (char& c : kind) c = char(std::toupper(static_cast<unsigned char>(c)));
    const std::vector<std::string> slow =
        target.reference_layers ? target.reference_layers(*data) : std::vector<std::string>{};
    if (!slow.empty()) {
      std::string list;
      for (size_t i = 0; i < slow.size(); ++i) list += (i ? ", " : "") + slow[i];
      throw Error(ErrorKind::unsupported,
                  "strict: " + std::to_string(slow.size()) + " layer" +
                      (slow.size() == 1 ? " has" : "s have") + " no fast " + kind +
                      " kernel and would run the slow reference kernels: " + list);
    }
    log("strict: every layer has a fast " + kind + " kernel");
  }
  log("compiled " + std::to_string(data->instructions.size()) + " instructions");
  return program::make_program(std::move(data));
}

Program compile(const std::string& onnx_path, const CompileOptions& options) {
  const std::vector<uint8_t> bytes = read_file(onnx_path);
  try {
    return compile_bytes(bytes.data(), bytes.size(), options);
  } catch (const Error& e) {
    throw Error(e.kind(), onnx_path + ": " + e.what());
  }
}

}  // namespace shoal
