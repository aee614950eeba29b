#include "runtime/session.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <set>
#include <sstream>

#include "device/registry.hpp"
#include "ops/instruction_check.hpp"
#include "runtime/batching.hpp"
#include "runtime/executor.hpp"
#include "runtime/finite.hpp"
#include "shoal/error.hpp"

namespace shoal::runtime {
namespace {

/// Waits for a fixed number of jobs; keeps the first exception.
class Completion {
 public:
  explicit Completion(int n) : left_(n) {}
  void done(std::exception_ptr e = nullptr) {
    std::lock_guard<std::mutex> lk(mu_);
    if (e && !error_) error_ = e;
    if (--left_ == 0) cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return left_ == 0; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int left_;
  std::exception_ptr error_;
};

/// Which devices runtimes of this process have claimed (RuntimeOptions).
class DeviceRegistry {
 public:
  static DeviceRegistry& get() {
    static DeviceRegistry r;
    return r;
  }
  /// Claims `ids` exclusively; throws naming the first device in use.
  void claim(const std::vector<int>& ids, const std::vector<DeviceInfo>& host) {
    std::lock_guard<std::mutex> lk(mu_);
    for (int id : ids)
      if (owned_.count(id))
        throw Error(ErrorKind::device,
                    "device " + std::to_string(id) + " (" + host[size_t(id)].name +
                        ") is owned by another runtime; free that runtime first, or set "
                        "share_devices on both to share it");
    for (int id : ids) owned_.insert(id);
  }
  void release(const std::vector<int>& ids) {
    std::lock_guard<std::mutex> lk(mu_);
    for (int id : ids) owned_.erase(id);
  }
  bool owned(int id) const {
    std::lock_guard<std::mutex> lk(mu_);
    return owned_.count(id) != 0;
  }

 private:
  mutable std::mutex mu_;
  std::set<int> owned_;
};

/// Tells the kernel it may drop the whole pages of a read-only file mapping
/// inside [p, p+n); they are read back from the file if touched again.
void drop_pages(const uint8_t* p, size_t n) {
  const uintptr_t page = 4096, lo = (uintptr_t(p) + page - 1) / page * page,
                  hi = (uintptr_t(p) + n) / page * page;
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

/// Copies the weight section into device memory (on the device's cluster
/// `ctx`). With `drop` (one device and a mapped file), each copied chunk of
/// the mapping is dropped once the device has it, so the weights are never
/// resident twice.
void copy_weights(device::Device& dev, device::ExecContext& ctx, uint8_t* dst,
                  const program::ProgramData& pd, bool drop) {
  const size_t chunk = size_t(8) << 20;
  for (size_t off = 0; off < pd.weights_bytes; off += chunk) {
    const size_t n = std::min(chunk, size_t(pd.weights_bytes) - off);
    dev.copy_in(ctx, dst + off, pd.weights + off, n);
    if (drop) {
      dev.synchronize(ctx);
      drop_pages(pd.weights + off, n);
    }
  }
  dev.synchronize(ctx);
}

/// The placement `requested` resolves to: SHOAL_WEIGHTS (settings.weights)
/// overrides automatic, which each device then decides
/// (Device::prefers_host_weights).
WeightPlacement resolve_weight_placement(WeightPlacement requested, const Settings& settings) {
  return requested != WeightPlacement::automatic ? requested : settings.weights;
}

/// One worker's share of a batch: runs samples `chunk` at a time, taking
/// each chunk's first index from `next`, until `end`; returns the error that
/// stopped it (then `next` is moved to `end`, so the other workers stop early).
std::exception_ptr run_samples(Executor& ex, device::ExecContext& ctx,
                               const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
                               std::atomic<int64_t>& next, int64_t end, int64_t chunk, bool profile,
                               bool finite) {
  try {
    for (int64_t i; (i = next.fetch_add(chunk)) < end;) {
      const int64_t m = std::min(chunk, end - i);
      for (int64_t j = 0; j < m;)  // m samples from i, in stacks that work
        j += ex.run(ctx, inputs, outputs, i + j, m - j, profile, finite);
    }
    return nullptr;
  } catch (...) {
    next.store(end);
    return std::current_exception();
  }
}

}  // namespace

Shape batched(const Shape& s, int64_t n) {
  Shape out = s;
  if (!out.empty() && out[0] == 1)
    out[0] = n;
  else
    out.insert(out.begin(), n);
  return out;
}

struct Session::Job {
  std::vector<Tensor> inputs, outputs;
  uint64_t tag = 0;
  std::mutex mu;
  std::condition_variable cv;
  int left = 0;  // workers still running
  std::exception_ptr error;
  std::function<void()> on_done;
  std::chrono::steady_clock::time_point t0;

  void finish_worker(std::exception_ptr e) {
    bool last;
    {
      std::lock_guard<std::mutex> lk(mu);
      if (e && !error) error = e;
      last = --left == 0;
    }
    if (!last) return;
    if (on_done) on_done();
    std::lock_guard<std::mutex> lk(mu);
    cv.notify_all();
  }
  bool done() {
    std::lock_guard<std::mutex> lk(mu);
    return left == 0;
  }
  void wait() {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return left == 0; });
  }
};

struct Session::DeviceState {
  std::unique_ptr<device::Device> device;
  uint8_t* weights = nullptr;  // the device's copy (device memory), or null: read in place
  program::ProgramData view;   // the program with weights on this device
  std::vector<std::unique_ptr<Executor>> executors;
  ~DeviceState() {
    executors.clear();  // kernels and arenas first: they live in the device
    if (weights) device->free(weights);
  }
};

Session::Session(const Program& program, const RuntimeOptions& options, const Settings& settings)
    : program_(program), options_(options), settings_(settings) {
  if (!program_)
    throw Error(ErrorKind::invalid_argument, "cannot create a runtime from an empty program");
  const program::ProgramData& pd = program::data_of(program_);
  // A program file is untrusted input: every instruction is checked against
  // the operator table once, here, before any device makes a kernel for it.
  for (const program::Instruction& ins : pd.instructions) ops::check_instruction(ins, pd);
  ops::check_program_io(pd);  // samples are copied in and out byte for byte
  if (options.micro_batch < 1 || options.micro_batch > kMaxMicroBatch)
    throw Error(ErrorKind::invalid_argument, "micro_batch must be at least 1 and at most " +
                                                 std::to_string(kMaxMicroBatch) + ", got " +
                                                 std::to_string(options.micro_batch));
  stacking_ = stacking_blocker(pd);
  max_stack_ = stacking_.empty() ? options.micro_batch : 1;
  std::vector<DeviceInfo> host = device::enumerate_devices(settings_);
  std::vector<int> ids = options.devices;
  DeviceRegistry& registry = DeviceRegistry::get();
  if (ids.empty()) {
    // The devices of backends that runtimes may pick by themselves (not
    // the debugging ones, which run only where named).
    std::vector<int> pickable;
    for (const DeviceInfo& d : host)
      if (d.automatic) pickable.push_back(d.id);
    const int want = pd.devices;
    if (want > int(pickable.size()))
      throw Error(ErrorKind::device, "the program was compiled for " + std::to_string(want) +
                                         " devices; this host has " +
                                         std::to_string(pickable.size()) +
                                         " (set SHOAL_CPU_DEVICES to partition its cores, e.g. "
                                         "SHOAL_CPU_DEVICES=" +
                                         std::to_string(want) + ")");
    for (int i : pickable)
      if (int(ids.size()) < want && !registry.owned(i)) ids.push_back(i);
    if (int(ids.size()) < want)
      throw Error(ErrorKind::device, "the program needs " + std::to_string(want) +
                                         " devices and only " + std::to_string(ids.size()) +
                                         " of this host's " + std::to_string(pickable.size()) +
                                         " are not owned by other runtimes");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= int(host.size()))
      throw Error(ErrorKind::device, "no device " + std::to_string(ids[i]) + " (this host has " +
                                         std::to_string(host.size()) + ")");
    for (size_t j = 0; j < i; ++j)
      if (ids[j] == ids[i])
        throw Error(ErrorKind::invalid_argument,
                    "device " + std::to_string(ids[i]) + " listed twice");
  }
  const WeightPlacement placement = resolve_weight_placement(options.weights, settings_);
  if (!options.devices.empty() && !options.share_devices) {
    registry.claim(ids, host);
    exclusive_ = true;
  }
  device_ids_ = ids;
  for (int id : ids) device_names_.push_back(host[size_t(id)].name);
  try {
    init_devices(host, placement);
  } catch (...) {
    devices_.clear();
    if (exclusive_) registry.release(ids);
    throw;
  }
  capacity_ = 2 * executors_.size();
  // The devices hold their own copies now: let the kernel drop the mapped
  // file's pages rather than count the weights twice in resident memory.
  bool in_place = false;
  for (const auto& ds : devices_) in_place = in_place || !ds->weights;
  if (pd.weights_mapped && !in_place) drop_pages(pd.weights, pd.weights_bytes);
}

void Session::init_devices(const std::vector<DeviceInfo>& host, WeightPlacement placement) {
  const program::ProgramData& pd = program::data_of(program_);
  // Clusters per device: the program's count, or (0) one per compute unit.
  auto clusters_of = [&](int id) {
    return pd.clusters > 0 ? pd.clusters : std::max(1, host[size_t(id)].compute_units);
  };
  clusters_ = clusters_of(device_ids_.front());
  // Auto mode gives a device with clusters to choose between a team over all
  // its cores; a one-cluster device's cluster already is one (with one
  // cluster everywhere the modes coincide, and there are no teams).
  auto has_team = [&](int id) { return pd.mode == Mode::automatic && clusters_of(id) > 1; };
  bool team = false;
  for (int id : device_ids_) team = team || has_team(id);
  for (int id : device_ids_) {
    auto ds = std::make_unique<DeviceState>();
    // Batch mode: one worker per cluster, each taking whole samples. Split
    // mode (the SDK's nobatch): the clusters of a device form one team and
    // share every operator of ONE sample (oneDNN partitions each op's output
    // over the team's threads), which cuts latency instead. Auto mode: both,
    // the team as one more cluster over all the device's cores.
    const DeviceInfo& info = host[size_t(id)];
    device::DeviceConfig config;
    config.clusters = pd.mode == Mode::split ? 1 : clusters_of(id);
    config.team = has_team(id);
    config.settings = settings_;
    ds->device = device::backend(info.kind).create(info, config);
    device::Device& dev = *ds->device;
    if (!dev.runs_target(pd.target))
      throw Error(ErrorKind::invalid_argument, "the program was compiled for target '" + pd.target +
                                                   "', which device " + info.name + " cannot run");
    // Broadcast the weights into the device's own memory, copied (and so
    // first touched) by the device's own thread; or, where the device reads
    // host memory and placement allows, read in place from the program.
    const bool in_place = info.host_addressable &&
                          (placement == WeightPlacement::shared ||
                           (placement == WeightPlacement::automatic && dev.prefers_host_weights()));
    if (!in_place) ds->weights = static_cast<uint8_t*>(dev.allocate(pd.weights_bytes));
    ds->view.version = pd.version;
    ds->view.target = pd.target;
    ds->view.devices = pd.devices;
    ds->view.clusters = pd.clusters;
    ds->view.mode = pd.mode;
    ds->view.arena_bytes = pd.arena_bytes;
    ds->view.tensors = pd.tensors;
    ds->view.instructions = pd.instructions;
    ds->view.inputs = pd.inputs;
    ds->view.outputs = pd.outputs;
    ds->view.weights = in_place ? pd.weights : ds->weights;
    ds->view.weights_bytes = pd.weights_bytes;
    for (int c = 0; c < dev.num_clusters(); ++c)
      ds->executors.push_back(std::make_unique<Executor>(dev, c, ds->view, max_stack_, settings_));
    if (!in_place) {
      Completion init(dev.num_clusters());
      for (auto& exp : ds->executors) {
        Executor* ex = exp.get();
        DeviceState* d = ds.get();
        const bool drop = pd.weights_mapped && device_ids_.size() == 1;
        dev.submit(ex->cluster(), [ex, d, &pd, &init, drop](device::ExecContext& ctx) {
          try {
            if (ex->cluster() == 0 && pd.weights_bytes)
              copy_weights(*d->device, ctx, d->weights, pd, drop);
            init.done();
          } catch (...) {
            init.done(std::current_exception());
          }
        });
      }
      init.wait();
    }
    // Kernels for one sample are created on each cluster's thread (memory
    // first-touched there); those for stacks of samples on first use.
    Completion kernels(dev.num_clusters());
    for (auto& exp : ds->executors) {
      Executor* ex = exp.get();
      dev.submit(ex->cluster(), [ex, &kernels](device::ExecContext& ctx) {
        try {
          ex->init(ctx);
          kernels.done();
        } catch (...) {
          kernels.done(std::current_exception());
        }
      });
    }
    kernels.wait();
    for (auto& e : ds->executors)
      (has_team(id) && e->cluster() == dev.num_clusters() - 1 ? teams_ : executors_)
          .push_back(e.get());
    if (team && !has_team(id)) teams_.push_back(ds->executors.front().get());
    devices_.push_back(std::move(ds));
  }
}

std::string Session::plan() const {
  const program::ProgramData& pd = program::data_of(program_);
  std::ostringstream o;
  o << device_ids_.size() << " device" << (device_ids_.size() == 1 ? "" : "s") << " [";
  for (size_t i = 0; i < device_ids_.size(); ++i) o << (i ? "," : "") << device_names_[i];
  o << "]" << (exclusive_ ? " (owned)" : " (shared)") << " x " << clusters_ << " cluster"
    << (clusters_ == 1 ? "" : "s") << (pd.clusters == 0 ? " (one per core)" : "") << "; ";
  const size_t n = executors_.size();
  if (pd.mode == Mode::split)
    o << "split mode: the clusters of each device share every operator of one input";
  else if (auto_mode())
    o << "auto mode: a batch of " << n << " inputs or more runs in batch mode (each input on "
      << "one cluster, " << n << " at a time), a smaller one in split mode (each input on a "
      << "whole device, the clusters sharing every operator), and so do the inputs of a larger "
      << "batch left over after whole rounds of the clusters, when at most half a round";
  else
    o << "batch mode: each input runs on one cluster, " << n << " inputs at a time";
  if (max_stack_ > 1)
    o << "; up to " << max_stack_ << " inputs at once through each kernel";
  else if (options_.micro_batch > 1)
    o << "; one input at a time through the kernels (" << stacking_ << ")";
  std::vector<std::string> in_place, copied;
  for (size_t i = 0; i < devices_.size(); ++i)
    (devices_[i]->weights ? copied : in_place).push_back(device_names_[i]);
  if (copied.empty())
    o << "; weights read in place from the program (one copy in host memory)";
  else if (in_place.empty())
    o << "; weights copied into each device's memory";
  else
    for (size_t i = 0; i < in_place.size(); ++i)
      o << (i ? ", " : "; weights read in place from the program by ") << in_place[i];
  if (!copied.empty() && !in_place.empty())
    for (size_t i = 0; i < copied.size(); ++i)
      o << (i ? ", " : ", copied into the memory of ") << copied[i];
  // Layers no fast kernel took (named, so a slow model says why).
  const Executor* ex = !executors_.empty() ? executors_.front()
                       : !teams_.empty()   ? teams_.front()
                                           : nullptr;
  std::vector<std::string> slow;
  for (size_t s = 0; ex && s < pd.instructions.size(); ++s)
    if (ex->impl(s) == "reference")
      slow.push_back(pd.instructions[s].op + " '" + pd.instructions[s].name + "'");
  if (slow.empty()) {
    o << "; every layer runs a fast kernel";
  } else {
    o << "; " << slow.size() << " layer" << (slow.size() == 1 ? " runs" : "s run")
      << " the slow reference kernels: ";
    for (size_t i = 0; i < slow.size(); ++i) o << (i ? ", " : "") << slow[i];
  }
  // Where each precision runs: counts per kernel precision, and the layers
  // compiled for a reduced one whose kernel computes in another.
  std::map<std::string, int> per;
  std::vector<std::string> fell_back;
  for (size_t s = 0; ex && s < pd.instructions.size(); ++s) {
    const program::Instruction& ins = pd.instructions[s];
    if (ex->impl(s) == "view") continue;  // costs nothing, computes nothing
    const std::string got = ex->precision(s), want = ins.attrs.s("shoal_precision", "f32");
    ++per[got];
    // (An int8 layer on the reference kernel still computes int8; it is
    // named among the slow layers above.)
    if (got != want && want == "bf16")
      fell_back.push_back(ins.op + " '" + ins.name + "' (" + got + ")");
  }
  o << "; precision:";
  const char* sep = " ";
  for (const auto& [name, n] : per) {
    o << sep << n << " layer" << (n == 1 ? "" : "s") << " " << name;
    sep = ", ";
  }
  if (!fell_back.empty()) {
    o << "; " << fell_back.size() << " layer" << (fell_back.size() == 1 ? "" : "s")
      << " compiled for reduced precision run" << (fell_back.size() == 1 ? "s" : "")
      << " another: ";
    for (size_t i = 0; i < fell_back.size(); ++i) o << (i ? ", " : "") << fell_back[i];
  }
  return o.str();
}

Session::~Session() {
  // Jobs still queued hold references into this session: let them finish.
  std::deque<std::shared_ptr<Job>> left;
  {
    std::lock_guard<std::mutex> lk(queue_mu_);
    left.swap(queue_);
  }
  for (auto& j : left) j->wait();
  devices_.clear();
  if (exclusive_) DeviceRegistry::get().release(device_ids_);
}

void Session::check_inputs(const std::vector<Tensor>& inputs, int64_t& batch) const {
  batch = program_.check_inputs(inputs);
  if (!options_.check_inputs) return;
  const auto infos = program_.inputs();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (t.dtype() != DType::f32 || t.numel() == 0) continue;
    const int64_t at = first_nonfinite(static_cast<const float*>(t.data()), t.numel());
    if (at < 0) continue;
    const int64_t per = t.numel() / t.shape()[0];
    const float v = static_cast<const float*>(t.data())[at];
    throw Error(ErrorKind::invalid_argument,
                "input '" + infos[i].name + "' holds " +
                    (v != v  ? "NaN"
                     : v > 0 ? "+Inf"
                             : "-Inf") +
                    " in sample " + std::to_string(at / per) + " (element " +
                    std::to_string(at % per) +
                    " of the sample); check_inputs rejects non-finite inputs");
  }
}

void Session::start_tail(const std::shared_ptr<Job>& job,
                         const std::shared_ptr<std::atomic<int64_t>>& next, int64_t n, int workers,
                         bool profile, bool finite) {
  // One sample at a time on each team, which shares it over all its cores.
  for (int w = 0; w < workers; ++w) {
    Executor* ex = teams_[size_t(w)];
    ex->device().submit(
        ex->cluster(), [ex, next, n, job, profile, finite](device::ExecContext& ctx) {
          job->finish_worker(
              run_samples(*ex, ctx, job->inputs, job->outputs, *next, n, 1, profile, finite));
        });
  }
}

std::shared_ptr<Session::Job> Session::start(std::vector<Tensor> inputs,
                                             std::function<void()> on_done) {
  auto job = std::make_shared<Job>();
  job->t0 = std::chrono::steady_clock::now();
  int64_t n = 0;
  check_inputs(inputs, n);
  job->inputs = std::move(inputs);
  job->on_done = std::move(on_done);
  const program::ProgramData& pd = program::data_of(program_);
  for (int32_t t : pd.outputs) {
    const auto& d = pd.tensors[size_t(t)];
    job->outputs.emplace_back(d.dtype, batched(d.shape, n));
  }
  // Auto mode: a batch too small to give every cluster an input runs on the
  // devices' whole-core teams instead (latency), a larger one on clusters.
  const bool small = !teams_.empty() && n < int64_t(executors_.size());
  const std::vector<Executor*>& pool = small ? teams_ : executors_;
  const int workers = int(std::min<int64_t>(n, int64_t(pool.size())));
  // A batch that does not divide evenly over the clusters would leave some
  // idle for a whole extra round (3 samples on 2 clusters took as long as
  // 4). In auto mode the few samples left over run afterwards on the teams,
  // which share each sample over all cores: one round of the clusters plus
  // one split-mode sample instead of two rounds (docs/ARCHITECTURE.md).
  int64_t tail = 0;
  if (!teams_.empty() && !small) {
    const int64_t clusters = int64_t(executors_.size()), teams = int64_t(teams_.size());
    const int64_t rest = n % clusters;
    // Worth it while each team's share is at most half a round of its clusters.
    if (2 * ((rest + teams - 1) / teams) <= clusters / teams) tail = rest;
  }
  const int tail_workers = int(std::min<int64_t>(tail, int64_t(teams_.size())));
  job->left = workers + tail_workers;
  if (workers == 0) return job;  // an empty batch is done at once
  // Each worker (cluster) takes the next chunk of samples until its part of
  // the batch is done, so outputs land in input order whatever order chunks
  // finish in. A chunk (up to max_stack_ samples, the part shared evenly)
  // runs through the kernels at once.
  const int64_t head = n - tail;
  const int64_t chunk = std::clamp<int64_t>((head + workers - 1) / workers, 1, max_stack_);
  auto next = std::make_shared<std::atomic<int64_t>>(0);
  auto head_left = std::make_shared<std::atomic<int>>(workers);
  const bool profile = options_.profile;
  auto tail_next = std::make_shared<std::atomic<int64_t>>(head);
  const size_t first = round_robin_.fetch_add(size_t(workers));
  for (int w = 0; w < workers; ++w) {
    Executor* ex = pool[(first + size_t(w)) % pool.size()];
    ex->device().submit(
        ex->cluster(), [this, ex, next, tail_next, head, head_left, chunk, job, profile, n,
                        tail_workers, finite = options_.check_inputs](device::ExecContext& ctx) {
          const std::exception_ptr error =
              run_samples(*ex, ctx, job->inputs, job->outputs, *next, head, chunk, profile, finite);
          if (error) tail_next->store(n);  // the tail does nothing
          // The last cluster done starts the tail (its workers are counted in
          // job->left, so the job ends after them).
          if (head_left->fetch_sub(1) == 1 && tail_workers > 0)
            start_tail(job, tail_next, n, tail_workers, profile, finite);
          job->finish_worker(error);
        });
  }
  return job;
}

std::vector<Tensor> Session::run(const std::vector<Tensor>& inputs) {
  auto job = start(inputs, nullptr);
  job->wait();
  if (job->error) std::rethrow_exception(job->error);
  last_ms_ =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - job->t0).count();
  return std::move(job->outputs);
}

static std::chrono::steady_clock::time_point deadline_after(double timeout_ms) {
  if (timeout_ms < 0) return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() +
         std::chrono::microseconds(int64_t(std::min(timeout_ms, 1e12) * 1000));
}

bool Session::put(const std::vector<Tensor>& inputs, uint64_t tag, double timeout_ms) {
  int64_t n = 0;
  check_inputs(inputs, n);  // before waiting: a bad put fails at once
  // The caller may reuse its buffers as soon as put returns: copy them.
  std::vector<Tensor> copies;
  for (const Tensor& t : inputs) {
    Tensor c(t.dtype(), t.shape());
    if (c.bytes() && t.data()) std::memcpy(c.data(), t.data(), c.bytes());
    copies.push_back(std::move(c));
  }
  const auto deadline = deadline_after(timeout_ms);
  std::unique_lock<std::mutex> lk(queue_mu_);
  if (!queue_cv_.wait_until(lk, deadline, [&] { return closed_ || queue_.size() < capacity_; }))
    return false;
  if (closed_) throw Error(ErrorKind::invalid_argument, "put(): the runtime was closed");
  auto job = start(std::move(copies), [this] {
    std::lock_guard<std::mutex> g(queue_mu_);
    queue_cv_.notify_all();
  });
  job->tag = tag;
  queue_.push_back(std::move(job));
  queue_cv_.notify_all();  // a get() on another thread may wait for a put
  return true;
}

void Session::close() {
  std::lock_guard<std::mutex> lk(queue_mu_);
  closed_ = true;
  queue_cv_.notify_all();
}

bool Session::get(std::vector<Tensor>& outputs, uint64_t& tag, double timeout_ms) {
  const auto deadline = deadline_after(timeout_ms);
  std::unique_lock<std::mutex> lk(queue_mu_);
  for (;;) {
    if (closed_) throw Error(ErrorKind::invalid_argument, "get(): the runtime was closed");
    if (queue_.empty()) {
      // Without a time limit nothing may ever come: say so at once. With
      // one, another thread's put may still come within it.
      if (timeout_ms < 0)
        throw Error(ErrorKind::invalid_argument,
                    "get(): no input is pending (every put was already taken)");
      if (queue_cv_.wait_until(lk, deadline) == std::cv_status::timeout && queue_.empty() &&
          !closed_)
        return false;
      continue;
    }
    std::shared_ptr<Job> front = queue_.front();
    if (front->done()) {
      queue_.pop_front();
      queue_cv_.notify_all();  // room for a put
      lk.unlock();
      tag = front->tag;
      if (front->error) std::rethrow_exception(front->error);
      last_ms_ =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - front->t0)
              .count();
      outputs = std::move(front->outputs);
      return true;
    }
    if (queue_cv_.wait_until(lk, deadline) == std::cv_status::timeout && !front->done())
      return false;
  }
}

size_t Session::queue_capacity() const {
  std::lock_guard<std::mutex> lk(queue_mu_);
  return capacity_;
}

void Session::set_queue_capacity(size_t capacity) {
  if (capacity < 1)
    throw Error(ErrorKind::invalid_argument, "the queue capacity must be at least 1");
  std::lock_guard<std::mutex> lk(queue_mu_);
  capacity_ = capacity;
  queue_cv_.notify_all();
}

size_t Session::pending() const {
  std::lock_guard<std::mutex> lk(queue_mu_);
  return queue_.size();
}

std::vector<LayerProfile> Session::profile() const {
  const auto& pd = program::data_of(program_);
  std::vector<LayerProfile> out(pd.instructions.size());
  for (size_t s = 0; s < out.size(); ++s) {
    out[s].name = pd.instructions[s].name;
    out[s].op = pd.instructions[s].op;
    out[s].flops = pd.instructions[s].flops;
    // The kernel of the cluster that ran the instruction most (auto mode's
    // teams may run other kernels than its clusters).
    const Executor* busiest = nullptr;
    for (auto* ex : all_executors()) {
      out[s].ms += ex->ms(s);
      out[s].calls += ex->samples(s);
      if (!busiest || ex->samples(s) > busiest->samples(s)) busiest = ex;
    }
    out[s].impl = busiest ? busiest->impl(s) : "";
    out[s].precision = busiest ? busiest->precision(s) : "";
  }
  return out;
}

std::vector<LayerOutputs> Session::run_layers(const std::vector<Tensor>& inputs) {
  int64_t n = 0;
  check_inputs(inputs, n);
  if (n < 1) throw Error(ErrorKind::invalid_argument, "run_layers needs at least one sample");
  Executor* ex = !executors_.empty() ? executors_.front() : teams_.front();
  const program::ProgramData& pd = program::data_of(program_);
  std::vector<std::vector<Tensor>> outs;
  Completion done(1);
  ex->device().submit(ex->cluster(), [&](device::ExecContext& ctx) {
    try {
      ex->run_layers(ctx, inputs, outs);
      done.done();
    } catch (...) {
      done.done(std::current_exception());
    }
  });
  done.wait();
  std::vector<LayerOutputs> result(pd.instructions.size());
  for (size_t i = 0; i < result.size(); ++i) {
    result[i].name = pd.instructions[i].name;
    result[i].op = pd.instructions[i].op;
    result[i].outputs = std::move(outs[i]);
  }
  return result;
}

void Session::reset_profile() {
  for (auto* ex : all_executors()) ex->reset_profile();
}

}  // namespace shoal::runtime
