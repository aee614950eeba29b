#include "serve/model.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace shoal::serve {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

Program load_program(const ModelConfig& c, const Log& log) {
  if (!ends_with(c.path, ".onnx")) {
    if (!c.shape.empty() || c.clusters != 0)
      log("model '" + c.name + "': \"shape\" and \"clusters\" apply to ONNX models only; " +
          c.path + " is a program and keeps its own");
    return Program::load(c.path);
  }
  CompileOptions o;
  if (!c.shape.empty()) o.input_shape = parse_shape(c.shape);
  o.clusters = c.clusters;
  log("model '" + c.name + "': compiling " + c.path);
  return compile(c.path, o);
}

std::string ids(const std::vector<int>& v) {
  std::string s;
  for (int i : v) s += (s.empty() ? "" : ",") + std::to_string(i);
  return s;
}

}  // namespace

ServedModel::ServedModel(const ModelConfig& config, const std::vector<int>& devices,
                         bool share_devices, Metrics& metrics, const Log& log)
    : config_(config) {
  validate(config_);
  program_ = load_program(config_, log);
  RuntimeOptions ro;
  ro.devices = devices;
  ro.share_devices = share_devices;
  runtime_ = std::make_unique<Runtime>(program_, ro);
  inputs_ = program_.inputs();
  outputs_ = program_.outputs();
  if (inputs_.empty()) throw Error(ErrorKind::unsupported, "model '" + name() + "' has no inputs");
  metrics_ = metrics.add_model(config_.name);
  BatchSettings b;
  const int batch_executors = runtime_->clusters() * int(std::max<size_t>(devices.size(), 1));
  b.max_batch_size =
      config_.max_batch_size > 0 ? config_.max_batch_size : std::max(8, batch_executors);
  b.max_queue_delay_us = config_.max_queue_delay_us;
  b.preferred_batch_sizes = config_.preferred_batch_sizes;
  for (int p : b.preferred_batch_sizes)
    if (p > b.max_batch_size)
      throw Error(ErrorKind::invalid_argument, "model '" + name() + "': preferred batch size " +
                                                   std::to_string(p) + " exceeds max_batch_size " +
                                                   std::to_string(b.max_batch_size));
  b.queue_capacity = config_.queue_capacity;
  b.instances = config_.instances;
  warm_up(b.max_batch_size, log);
  batcher_ = std::make_unique<Batcher>(*runtime_, b, metrics_);
}

void ServedModel::warm_up(int max_batch, const Log& log) {
  // The runtime makes a batch size's kernels on its first use: run the sizes
  // the first requests will most likely bring (one sample, a full batch) on
  // zeros before the server says it is ready.
  std::vector<int> sizes = {1};
  if (max_batch > 1) sizes.push_back(max_batch);
  for (int n : sizes) {
    std::vector<Tensor> zeros;
    for (const TensorInfo& info : inputs_)
      zeros.emplace_back(info.dtype, batch_shape(info.shape, n));
    try {
      runtime_->run(zeros);
    } catch (const Error& e) {
      log("model '" + name() + "': warm-up on zeros failed (" + e.what() + "); serving it anyway");
      return;
    }
  }
}

ServedModel::~ServedModel() {
  if (batcher_) batcher_->stop();  // before the runtime it runs on goes
}

std::string ServedModel::describe() const {
  const BatchSettings& b = batcher_->settings();
  std::ostringstream o;
  o << "model '" << name() << "' (" << config_.path << "): " << runtime_->plan()
    << "; dynamic batching: up to " << b.max_batch_size << " samples, queue delay "
    << b.max_queue_delay_us << " us";
  if (!b.preferred_batch_sizes.empty()) o << ", preferred sizes " << ids(b.preferred_batch_sizes);
  o << ", queue capacity " << b.queue_capacity << ", " << b.instances
    << (b.instances == 1 ? " batch" : " batches") << " at once";
  return o.str();
}

std::vector<Placement> place_models(const std::vector<ModelConfig>& models,
                                    const std::vector<int>& pool) {
  std::vector<Placement> out(models.size());
  std::set<int> named;
  size_t unplaced = 0;
  for (size_t i = 0; i < models.size(); ++i) {
    out[i].devices = models[i].devices;
    for (int d : models[i].devices) named.insert(d);
    if (models[i].devices.empty()) ++unplaced;
  }
  std::vector<int> free;
  for (int d : pool)
    if (!named.count(d)) free.push_back(d);
  if (unplaced == 0) return out;
  if (free.empty())
    throw Error(ErrorKind::device,
                "every device is named by some model's \"devices\"; give the other models "
                "theirs too");
  size_t next = 0, k = 0;
  for (size_t i = 0; i < models.size(); ++i) {
    if (!models[i].devices.empty()) continue;
    if (unplaced > free.size()) {  // more models than devices: share them
      out[i].devices = {free[k++ % free.size()]};
      out[i].share = true;
      continue;
    }
    // Contiguous shares, the first models taking one more when uneven.
    const size_t n = free.size() / unplaced + (k < free.size() % unplaced ? 1 : 0);
    out[i].devices.assign(free.begin() + std::ptrdiff_t(next),
                          free.begin() + std::ptrdiff_t(next + n));
    next += n;
    ++k;
  }
  return out;
}

}  // namespace shoal::serve
