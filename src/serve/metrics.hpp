// Prometheus metrics of the server, per model, named as Triton names them
// (nv_inference_*), so existing dashboards and alerts apply. Durations are
// cumulative microseconds (counters); a batch's compute time is counted
// once per request in it, as Triton does.
#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}  // namespace prometheus

namespace shoal::serve {

/// One model's series (labels model="NAME", version="1").
struct ModelMetrics {
  prometheus::Counter* request_success = nullptr;    ///< requests answered 200
  prometheus::Counter* request_failure = nullptr;    ///< requests answered with an error
  prometheus::Counter* inference_count = nullptr;    ///< samples inferred
  prometheus::Counter* exec_count = nullptr;         ///< batches run (count / exec = average batch)
  prometheus::Counter* request_us = nullptr;         ///< receipt to response, per request
  prometheus::Counter* queue_us = nullptr;           ///< waiting for a batch to start
  prometheus::Counter* compute_input_us = nullptr;   ///< gathering the batch's inputs
  prometheus::Counter* compute_infer_us = nullptr;   ///< Runtime::run
  prometheus::Counter* compute_output_us = nullptr;  ///< scattering the outputs
  prometheus::Gauge* pending = nullptr;              ///< requests waiting in the queue
};

/// The server's registry; thread-safe.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  /// Creates the series of model `name` (once per name).
  ModelMetrics add_model(const std::string& name);
  /// The Prometheus text exposition format (version 0.0.4).
  std::string text() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
};

}  // namespace shoal::serve
