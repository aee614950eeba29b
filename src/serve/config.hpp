// What `shoal serve` serves: each model's name, file and settings, from the
// command line, a model repository and per-model JSON config files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shoal::serve {

/// Dynamic batching and placement of one model. A per-model config file
/// (JSON, the same keys) overrides the server-wide defaults.
struct ModelConfig {
  std::string name;
  std::string path;  ///< a program (.shoal) or an ONNX model (.onnx, compiled at start)
  /// Most samples merged into one run; 0 = max(8, the runtime's clusters).
  /// A single request larger than this runs alone, never split.
  int max_batch_size = 0;
  /// How long the first request of a batch may wait for others (0: a
  /// batch goes as soon as a worker is free, taking what has arrived).
  int64_t max_queue_delay_us = 0;
  /// Batch sizes to prefer: a batch goes at once when the largest fits;
  /// at the delay, the largest that fits goes.
  std::vector<int> preferred_batch_sizes;
  /// Requests waiting (not yet running); one more is refused with 503.
  int queue_capacity = 128;
  /// Batches run at once (worker threads calling Runtime::run). One batch
  /// already spreads over every cluster of the model's devices, and the
  /// next forms while it runs.
  int instances = 1;
  /// Device ids; empty: the server shares out the devices no model names.
  std::vector<int> devices;
  /// Compile options for an ONNX model.
  std::string shape;  ///< input shape, see shoal::parse_shape ("" = the model's)
  int clusters = 0;   ///< clusters per device (0 = one per core)
};

/// Applies the keys of a JSON config object (text) to `config`. Unknown
/// keys and wrong types are Error(invalid_argument) naming `what`.
void apply_config_json(const std::string& text, ModelConfig& config, const std::string& what);

/// Reads a config file into `config` (see apply_config_json).
void apply_config_file(const std::string& path, ModelConfig& config);

/// The models of a repository folder: one NAME.shoal or NAME.onnx file per
/// model, each with an optional NAME.json config applied over `defaults`.
/// Sorted by name; a name with both a .shoal and an .onnx is an error.
std::vector<ModelConfig> scan_model_repository(const std::string& dir, const ModelConfig& defaults);

/// Checks one model's settings (Error(invalid_argument) naming the model).
void validate(const ModelConfig& config);

}  // namespace shoal::serve
