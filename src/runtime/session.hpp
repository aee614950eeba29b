// A program loaded onto devices: per-device weights, per-cluster arenas and
// kernels, and the scheduling of a batch across all clusters.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "core/settings.hpp"
#include "program/access.hpp"
#include "shoal/shoal.hpp"

namespace shoal::runtime {

/// The shape of a model input/output (recorded for one sample) in a batch of
/// n: dimension 0 becomes n (inserted when the sample's shape has no batch 1).
Shape batched(const Shape& s, int64_t n);

class Executor;  // one per (device, cluster): executor.hpp

class Session {
 public:
  /// `settings`: the environment as the API read it (core/settings.hpp).
  Session(const Program& program, const RuntimeOptions& options, const Settings& settings);
  ~Session();

  std::vector<Tensor> run(const std::vector<Tensor>& inputs);
  bool put(const std::vector<Tensor>& inputs, uint64_t tag, double timeout_ms);
  bool get(std::vector<Tensor>& outputs, uint64_t& tag, double timeout_ms);
  size_t queue_capacity() const;
  void set_queue_capacity(size_t capacity);
  size_t pending() const;
  /// Refuses further put()/get() and wakes every thread waiting in one with
  /// an error.
  void close();
  const Program& program() const { return program_; }
  std::string plan() const;
  /// Clusters per device taking whole inputs (1 in split mode).
  int clusters() const { return program::data_of(program_).mode == Mode::split ? 1 : clusters_; }
  double last_run_ms() const { return last_ms_.load(); }
  std::vector<LayerProfile> profile() const;
  void reset_profile();
  std::vector<LayerOutputs> run_layers(const std::vector<Tensor>& inputs);

 private:
  struct DeviceState;
  struct Job;  // one batch in flight

  void check_inputs(const std::vector<Tensor>& inputs, int64_t& batch) const;
  void init_devices(const std::vector<DeviceInfo>& host, WeightPlacement placement);
  /// Validates and starts a batch on the clusters; `on_done` runs (on a
  /// cluster thread) when its last sample finished.
  std::shared_ptr<Job> start(std::vector<Tensor> inputs, std::function<void()> on_done);
  /// Auto mode: runs samples [next, n) of `job` one at a time on the first
  /// `workers` teams, after the clusters ran the rest of the batch.
  void start_tail(const std::shared_ptr<Job>& job,
                  const std::shared_ptr<std::atomic<int64_t>>& next, int64_t n, int workers,
                  bool profile, bool finite);

  Program program_;
  RuntimeOptions options_;
  Settings settings_;
  std::vector<int> device_ids_;
  bool exclusive_ = false;  // this runtime claimed device_ids_
  std::vector<std::string> device_names_;
  int clusters_ = 1;  // clusters per device (the first device's)
  std::vector<std::unique_ptr<DeviceState>> devices_;
  std::vector<Executor*> executors_;  // one per cluster (split mode: per device)
  /// Auto mode: one per device, over all its cores (a one-cluster device's
  /// own cluster, which is also in executors_).
  std::vector<Executor*> teams_;
  /// Auto mode with clusters to choose between (one cluster is both modes).
  bool auto_mode() const { return !teams_.empty(); }
  std::vector<Executor*> all_executors() const {
    std::vector<Executor*> all = executors_;
    for (Executor* t : teams_)
      if (std::find(all.begin(), all.end(), t) == all.end()) all.push_back(t);
    return all;
  }
  std::string stacking_;   // why samples cannot be stacked ("" when they can)
  int64_t max_stack_ = 1;  // samples per kernel run
  std::atomic<double> last_ms_{0};
  std::atomic<size_t> round_robin_{0};  // spreads small batches over clusters

  // The asynchronous queue: jobs in put order, and who waits on them.
  mutable std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  size_t capacity_ = 2;
  bool closed_ = false;  // close(): put/get throw
};

}  // namespace shoal::runtime
