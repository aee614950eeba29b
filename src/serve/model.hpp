// One served model: its program (loaded, or compiled from ONNX at start),
// a Runtime on its devices, its dynamic batcher and its metrics.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "serve/batcher.hpp"
#include "serve/config.hpp"
#include "serve/metrics.hpp"
#include "shoal/shoal.hpp"

namespace shoal::serve {

using Log = std::function<void(const std::string&)>;

class ServedModel {
 public:
  /// Loads or compiles config.path and starts a Runtime on `devices` (shared
  /// with other models when `share_devices`). Throws shoal::Error.
  ServedModel(const ModelConfig& config, const std::vector<int>& devices, bool share_devices,
              Metrics& metrics, const Log& log);
  ~ServedModel();

  const std::string& name() const { return config_.name; }
  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }
  Batcher& batcher() { return *batcher_; }
  const ModelMetrics& metrics() const { return metrics_; }
  /// One line: devices, runtime plan and batching settings.
  std::string describe() const;

 private:
  void warm_up(int max_batch, const Log& log);

  ModelConfig config_;
  Program program_;
  std::unique_ptr<Runtime> runtime_;
  std::vector<TensorInfo> inputs_, outputs_;
  ModelMetrics metrics_;
  std::unique_ptr<Batcher> batcher_;
};

/// Which devices each model runs on: a model's own "devices" when set;
/// the others share out the remaining devices of `pool` (the devices
/// runtimes pick by themselves), each getting its own
/// (contiguous, as even as possible) when there are enough, and sharing
/// them round-robin (share = true) when there are more such models than
/// devices.
struct Placement {
  std::vector<int> devices;
  bool share = false;
};
std::vector<Placement> place_models(const std::vector<ModelConfig>& models,
                                    const std::vector<int>& pool);

}  // namespace shoal::serve
