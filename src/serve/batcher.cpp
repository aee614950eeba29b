#include "serve/batcher.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <algorithm>
#include <cstring>

namespace shoal::serve {
namespace {

double micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

}  // namespace

void Pending::finish() {
  std::lock_guard<std::mutex> lk(mu_);
  done_ = true;
  cv_.notify_all();
}

void Pending::wait() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return done_; });
}

Batcher::Batcher(Runtime& runtime, const BatchSettings& settings, const ModelMetrics& metrics)
    : runtime_(runtime),
      inputs_(runtime.program().inputs()),
      settings_(settings),
      metrics_(metrics) {
  for (int i = 0; i < settings_.instances; ++i) workers_.emplace_back([this] { work(); });
}

Batcher::~Batcher() { stop(); }

bool Batcher::submit(const std::shared_ptr<Pending>& request) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ || queue_.size() >= size_t(settings_.queue_capacity)) return false;
    request->queued = Clock::now();
    queue_.push_back(request);
    metrics_.pending->Increment();
  }
  cv_.notify_all();
  return true;
}

void Batcher::flush() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    flushing_ = true;
  }
  cv_.notify_all();
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = flushing_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
}

size_t Batcher::ready(Clock::time_point now, Clock::time_point& wake) const {
  // The longest prefix of the queue within max_batch_size samples (at least
  // one request: a larger one runs alone), and the prefixes ending on a
  // preferred size.
  const int64_t max = settings_.max_batch_size;
  const std::vector<int>& preferred = settings_.preferred_batch_sizes;
  size_t take = 0, preferred_take = 0;
  int64_t samples = 0, largest_preferred = 0;
  for (const auto& p : queue_) {
    const int64_t n = p->request.batch;
    if (take > 0 && samples + n > max) break;
    samples += n;
    ++take;
    if (std::find(preferred.begin(), preferred.end(), samples) != preferred.end()) {
      preferred_take = take;
      largest_preferred = std::max(largest_preferred, samples);
    }
  }
  const bool full = samples >= max || take < queue_.size();
  const int64_t max_preferred =
      preferred.empty() ? 0 : *std::max_element(preferred.begin(), preferred.end());
  if (full || flushing_ || settings_.max_queue_delay_us == 0) return take;
  if (max_preferred > 0 && largest_preferred == max_preferred) return preferred_take;
  wake = queue_.front()->queued + std::chrono::microseconds(settings_.max_queue_delay_us);
  if (now < wake) return 0;
  return preferred_take > 0 ? preferred_take : take;
}

void Batcher::work() {
  for (;;) {
    std::vector<std::shared_ptr<Pending>> batch;
    {
      std::unique_lock<std::mutex> lk(mu_);
      for (;;) {
        if (queue_.empty()) {
          if (stopping_) return;
          cv_.wait(lk);
          continue;
        }
        Clock::time_point wake;
        const size_t take = ready(Clock::now(), wake);
        if (take > 0) {
          batch.assign(queue_.begin(), queue_.begin() + std::ptrdiff_t(take));
          queue_.erase(queue_.begin(), queue_.begin() + std::ptrdiff_t(take));
          metrics_.pending->Decrement(double(take));
          break;
        }
        cv_.wait_until(lk, wake);
      }
    }
    cv_.notify_all();  // the rest of the queue may make another batch
    run(batch);
  }
}

void Batcher::run(std::vector<std::shared_ptr<Pending>>& batch) {
  const Clock::time_point t0 = Clock::now();
  const size_t requests = batch.size();
  const std::vector<InputTensor>& first = batch[0]->request.inputs;
  int64_t samples = 0;
  for (const auto& p : batch) samples += p->request.batch;
  try {
    // Inputs: a lone request's bytes as they are; several, copied into one
    // batch in queue order.
    std::vector<Tensor> inputs;
    const std::vector<TensorInfo>& infos = inputs_;
    for (size_t k = 0; k < first.size(); ++k) {
      if (requests == 1) {
        inputs.push_back(
            Tensor::view(const_cast<uint8_t*>(first[k].data), infos[k].dtype, first[k].shape));
        continue;
      }
      Tensor t(infos[k].dtype, batch_shape(infos[k].shape, samples));
      uint8_t* dst = static_cast<uint8_t*>(t.data());
      for (const auto& p : batch) {
        const InputTensor& in = p->request.inputs[k];
        if (in.bytes) std::memcpy(dst, in.data, in.bytes);
        dst += in.bytes;
      }
      inputs.push_back(std::move(t));
    }
    const Clock::time_point t1 = Clock::now();
    std::vector<Tensor> outputs = runtime_.run(inputs);
    const Clock::time_point t2 = Clock::now();
    // Outputs: each request gets its own rows.
    if (requests == 1) {
      batch[0]->outputs = std::move(outputs);
    } else {
      int64_t row = 0;
      for (const auto& p : batch) {
        const int64_t n = p->request.batch;
        for (const Tensor& out : outputs) {
          Shape shape = out.shape();
          const size_t per_row = out.bytes() / size_t(std::max<int64_t>(shape[0], 1));
          shape[0] = n;
          Tensor t(out.dtype(), shape);
          if (t.bytes())
            std::memcpy(t.data(), static_cast<const uint8_t*>(out.data()) + size_t(row) * per_row,
                        t.bytes());
          p->outputs.push_back(std::move(t));
        }
        row += n;
      }
    }
    const Clock::time_point t3 = Clock::now();
    const double r = double(requests);
    metrics_.exec_count->Increment();
    metrics_.inference_count->Increment(double(samples));
    for (const auto& p : batch) metrics_.queue_us->Increment(micros(p->queued, t0));
    metrics_.compute_input_us->Increment(micros(t0, t1) * r);
    metrics_.compute_infer_us->Increment(micros(t1, t2) * r);
    metrics_.compute_output_us->Increment(micros(t2, t3) * r);
  } catch (...) {
    for (const auto& p : batch) {
      p->outputs.clear();
      p->error = std::current_exception();
    }
  }
  for (const auto& p : batch) p->finish();
}

}  // namespace shoal::serve
