// Dynamic batching of one model: concurrent requests wait in a bounded
// queue; worker threads ("instances") take them in arrival order, merge as
// many as the settings allow into one batch, run it with Runtime::run (which
// spreads it over the runtime's devices and clusters) and hand each request
// its own rows of the outputs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "serve/metrics.hpp"
#include "serve/protocol.hpp"
#include "shoal/shoal.hpp"

namespace shoal::serve {

using Clock = std::chrono::steady_clock;

/// One request in the batcher: its decoded inputs (owned by the caller,
/// which waits) and, once done, its outputs or the error.
class Pending {
 public:
  explicit Pending(const InferRequest& request) : request(request) {}
  const InferRequest& request;
  Clock::time_point queued;
  std::vector<Tensor> outputs;  ///< each with leading dim request.batch
  std::exception_ptr error;

  void finish();  ///< wakes wait()
  void wait();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

struct BatchSettings {
  int max_batch_size = 8;  ///< samples per run (a larger request runs alone)
  int64_t max_queue_delay_us = 0;
  std::vector<int> preferred_batch_sizes;
  int queue_capacity = 128;
  int instances = 1;
};

class Batcher {
 public:
  /// `runtime` and `metrics` outlive the batcher.
  Batcher(Runtime& runtime, const BatchSettings& settings, const ModelMetrics& metrics);
  ~Batcher();  ///< stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Queues a request; false (at once) when queue_capacity requests wait or
  /// the batcher is stopping. Every queued request is finished exactly once.
  bool submit(const std::shared_ptr<Pending>& request);
  /// From now on batches go without waiting for the queue delay (draining).
  void flush();
  /// Refuses new requests, runs every queued one, joins the workers.
  void stop();
  const BatchSettings& settings() const { return settings_; }

 private:
  void work();
  /// How many queued requests to take now (0: wait until `wake`).
  size_t ready(Clock::time_point now, Clock::time_point& wake) const;
  void run(std::vector<std::shared_ptr<Pending>>& batch);

  Runtime& runtime_;
  const std::vector<TensorInfo> inputs_;  // the model's
  const BatchSettings settings_;
  const ModelMetrics metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Pending>> queue_;
  bool flushing_ = false, stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace shoal::serve
