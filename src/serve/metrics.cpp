#include "serve/metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace shoal::serve {
namespace {

prometheus::Counter* counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help, const std::string& model) {
  // BuildCounter returns the existing family for a name already registered.
  auto& family = prometheus::BuildCounter().Name(name).Help(help).Register(r);
  return &family.Add({{"model", model}, {"version", "1"}});
}

}  // namespace

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}
Metrics::~Metrics() = default;

ModelMetrics Metrics::add_model(const std::string& model) {
  prometheus::Registry& r = *registry_;
  ModelMetrics m;
  m.request_success =
      counter(r, "nv_inference_request_success", "Number of successful inference requests", model);
  m.request_failure =
      counter(r, "nv_inference_request_failure", "Number of failed inference requests", model);
  m.inference_count =
      counter(r, "nv_inference_count", "Number of inferences performed (samples)", model);
  m.exec_count = counter(r, "nv_inference_exec_count",
                         "Number of model executions performed (batches)", model);
  m.request_us = counter(r, "nv_inference_request_duration_us",
                         "Cumulative inference request duration in microseconds", model);
  m.queue_us = counter(r, "nv_inference_queue_duration_us",
                       "Cumulative inference queuing duration in microseconds", model);
  m.compute_input_us = counter(r, "nv_inference_compute_input_duration_us",
                               "Cumulative compute input duration in microseconds", model);
  m.compute_infer_us = counter(r, "nv_inference_compute_infer_duration_us",
                               "Cumulative compute inference duration in microseconds", model);
  m.compute_output_us =
      counter(r, "nv_inference_compute_output_duration_us",
              "Cumulative inference compute output duration in microseconds", model);
  auto& pending = prometheus::BuildGauge()
                      .Name("nv_inference_pending_request_count")
                      .Help("Instantaneous number of pending requests awaiting execution")
                      .Register(r);
  m.pending = &pending.Add({{"model", model}, {"version", "1"}});
  return m;
}

std::string Metrics::text() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace shoal::serve
