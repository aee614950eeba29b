// The in-memory form of a compiled program: what the program file holds and
// what the runtime executes. See docs/PROGRAM_FORMAT.md for the file layout.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/attrs.hpp"
#include "shoal/types.hpp"

namespace shoal::program {

enum class Storage : uint8_t {
  activation = 0,  // lives in the per-cluster arena at `offset`
  weight = 1,      // lives in the weight section at `offset`
};

/// Layout of a tensor's bytes. Plain = dense row-major (NCHW for 4-D).
/// Packed = a kernel-specific packing described by `packing` (opaque bytes
/// the backend that wrote them understands, e.g. a oneDNN memory desc).
/// Channels-last = dense with the channel dim (1) moved last (NHWC for 4-D):
/// the same bytes as plain, another order; the compiler picks it for
/// activations passed between kernels that prefer it.
enum class Layout : uint8_t { plain = 0, packed = 1, channels_last = 2 };

struct TensorDesc {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;             // logical shape, for ONE input sample
  Storage storage = Storage::activation;
  Layout layout = Layout::plain;
  uint64_t offset = 0;     // bytes, in the arena or the weight section
  uint64_t bytes = 0;      // bytes reserved (>= logical size when packed)
  std::vector<uint8_t> packing;  // backend's description when packed
};

struct Instruction {
  std::string op;    // op table name
  std::string name;  // source node name, for errors and profiles
  std::vector<int32_t> inputs;   // tensor ids; -1 = absent optional
  std::vector<int32_t> outputs;  // tensor ids
  Attrs attrs;
  double flops = 0;  // per input sample, for profiles
};

struct ProgramData {
  uint32_t version = 0;      // format version (set when reading; writing uses kFormatVersion)
  std::string target;        // e.g. "cpu"; checked at load
  std::string producer;      // "shoal <version>" (META, free text)
  /// The version of the shoal library that wrote the file, from the header
  /// ("0.1.0"); "" for format version 1 files, which do not record it.
  std::string producer_version;
  std::string model_name;
  int devices = 1;
  int clusters = 1;          // clusters per device
  Mode mode = Mode::batch;   // how clusters share a batch
  uint64_t arena_bytes = 0;  // per cluster, for one input sample
  std::vector<TensorDesc> tensors;
  std::vector<Instruction> instructions;
  std::vector<int32_t> inputs;   // tensor ids of graph inputs
  std::vector<int32_t> outputs;  // tensor ids of graph outputs
  /// The weight section. Either owned, or a view into a mapped file that
  /// `keepalive` holds open.
  const uint8_t* weights = nullptr;
  uint64_t weights_bytes = 0;
  std::vector<uint8_t> owned_weights;
  std::shared_ptr<void> keepalive;
  /// True when `weights` points into a read-only file mapping (load_file):
  /// its pages can be dropped and are read back from the file on demand.
  bool weights_mapped = false;
};

/// Serializes to the file format (header, sections, checksum).
std::vector<uint8_t> serialize(const ProgramData& p);
/// Parses and validates; the returned program may point into `bytes` when
/// `keepalive` is given (zero-copy), else it copies. Throws Error naming the
/// file offset of anything wrong.
std::shared_ptr<ProgramData> deserialize(const uint8_t* bytes, size_t size,
                                         std::shared_ptr<void> keepalive);
/// mmaps the file read-only and deserializes without copying weights.
std::shared_ptr<ProgramData> load_file(const std::string& path);

/// The format version this shoal writes, and the oldest it still loads.
constexpr uint32_t kFormatVersion = 3;
constexpr uint32_t kOldestFormatVersion = 1;
constexpr uint64_t kWeightAlign = 64;

}  // namespace shoal::program
