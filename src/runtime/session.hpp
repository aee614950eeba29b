// A program loaded onto devices: per-device weights, per-cluster arenas and
// kernels, and the scheduling of a batch across all clusters.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/device.hpp"

namespace shoal::runtime {

class Session {
 public:
  Session(const Program& program, const RuntimeOptions& options);
  ~Session();

  std::vector<Tensor> run(const std::vector<Tensor>& inputs);
  const Program& program() const { return program_; }
  double last_run_ms() const { return last_ms_.load(); }
  std::vector<LayerProfile> profile() const;
  void reset_profile();

 private:
  struct Executor;  // one per (device, cluster)
  struct DeviceState;

  void check_inputs(const std::vector<Tensor>& inputs, int64_t& batch) const;

  Program program_;
  RuntimeOptions options_;
  std::vector<std::unique_ptr<DeviceState>> devices_;
  std::vector<Executor*> executors_;
  std::atomic<double> last_ms_{0};
  std::atomic<size_t> round_robin_{0};  // spreads small batches over clusters
};

}  // namespace shoal::runtime
