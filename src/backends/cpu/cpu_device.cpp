// A CPU device: a set of host cores split into clusters, each cluster a
// thread (plus its OpenMP team) pinned to its cores with its own job queue.
// Its memory is host memory: copies are memcpy, and it may read the mapped
// program's weights in place. Registered as backend "cpu".
#include "backends/cpu/cpu_device.hpp"

#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <unordered_map>

#include "backends/cpu/native/loops.hpp"
#include "backends/cpu/onednn_kernels.hpp"
#include "backends/cpu/reference_kernel.hpp"
#include "device/job_thread.hpp"
#include "device/registry.hpp"
#include "ops/op_table.hpp"

namespace shoal::cpu {
namespace {

using device::ExecContext;
using device::Kernel;

class CpuDevice final : public device::Device {
 public:
  CpuDevice(const DeviceInfo& info, int clusters, bool team, const Settings& settings)
      : info_(info), team_(team), disable_onednn_(settings.reference_only) {
    onednn_.row_bands = settings.row_bands;
    native::use_isa(settings.isa);
    const int ncores = int(info.cores.size());
    if (clusters < 1) clusters = 1;
    clusters_.reserve(size_t(clusters));
    for (int c = 0; c < clusters; ++c) {
      auto cl = std::make_unique<Cluster>();
      // Cores split as evenly as possible; more clusters than cores share.
      if (clusters <= ncores) {
        const int lo = c * ncores / clusters, hi = (c + 1) * ncores / clusters;
        cl->cores.assign(info.cores.begin() + lo, info.cores.begin() + hi);
      } else {
        cl->cores.push_back(info.cores[size_t(c % ncores)]);
      }
      clusters_.push_back(std::move(cl));
    }
    if (team) {  // the device's cores as one more cluster (auto mode)
      auto cl = std::make_unique<Cluster>();
      cl->cores = info.cores;
      clusters_.push_back(std::move(cl));
      ++clusters;
    }
    for (int c = 0; c < clusters; ++c)
      clusters_[size_t(c)]->jobs.start(
          [this, c](const device::JobThread::RunJobs& run) { thread_main(c, run); });
  }

  ~CpuDevice() override {
    for (auto& cl : clusters_) cl->jobs.request_stop();
    for (auto& cl : clusters_) cl->jobs.join();
  }

  const DeviceInfo& info() const override { return info_; }
  int num_clusters() const override { return int(clusters_.size()); }

  /// Device memory is mapped anonymously and asks for transparent huge
  /// pages, so the first touch (on the device's thread) takes a few faults
  /// per 2 MiB instead of one per 4 KiB: that touch was most of init.
  void* allocate(size_t bytes) override {
    // More than the host's memory would be filled (first touch) until the
    // process is killed: refuse it up front.
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0 && bytes / uint64_t(page) >= uint64_t(pages))
      throw Error(ErrorKind::out_of_memory,
                  "device " + std::to_string(info_.id) + ": cannot allocate " +
                      std::to_string(bytes) + " bytes; the host has " +
                      std::to_string(uint64_t(pages) * uint64_t(page)) + " bytes of memory");
    const size_t rounded = (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096;
    void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      throw Error(ErrorKind::out_of_memory, "device " + std::to_string(info_.id) +
                                                ": cannot allocate " + std::to_string(bytes) +
                                                " bytes");
    if (rounded >= (size_t(2) << 20)) ::madvise(p, rounded, MADV_HUGEPAGE);
    std::lock_guard<std::mutex> lk(alloc_mu_);
    sizes_[p] = rounded;
    return p;
  }
  void free(void* p) noexcept override {
    if (!p) return;
    size_t n = 0;
    {
      std::lock_guard<std::mutex> lk(alloc_mu_);
      auto it = sizes_.find(p);
      if (it == sizes_.end()) return;
      n = it->second;
      sizes_.erase(it);
    }
    ::munmap(p, n);
  }

  void copy_in(ExecContext&, void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy_out(ExecContext&, void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy(ExecContext&, void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void fill(ExecContext&, void* dst, uint8_t value, size_t bytes) override {
    std::memset(dst, value, bytes);
  }
  void synchronize(ExecContext&) override {}  // kernels and copies run synchronously

  /// One NUMA node: every core is equally near the mapped file's pages, so a
  /// copy would cost load time and memory only.
  bool prefers_host_weights() const override { return numa_node_count() == 1; }

  bool runs_target(const std::string& target) const override { return target == "cpu"; }

  bool supports(const program::Instruction& ins, const program::ProgramData&) const override {
    const ops::OpSpec* spec = ops::find_op(ins.op);
    return spec && spec->runtime;
  }

  std::unique_ptr<Kernel> make_kernel(const program::Instruction& ins,
                                      const program::ProgramData& prog, int cluster) override {
    if (!supports(ins, prog))
      throw Error(ErrorKind::unsupported,
                  ins.op + " node '" + ins.name + "' is not supported on CPU devices");
    if (!disable_onednn_)
      if (auto k = make_cpu_kernel(ins, prog, onednn_, cluster_threads(cluster))) return k;
    return make_reference_kernel(ins, prog, prog.weights);
  }

  int cluster_threads(int cluster) const {
    return cluster >= 0 && size_t(cluster) < clusters_.size()
               ? int(clusters_[size_t(cluster)]->cores.size())
               : 1;
  }

  void submit(int cluster, std::function<void(ExecContext&)> work) override {
    Cluster& cl = *clusters_.at(size_t(cluster));
    // The team's OpenMP workers spin for a while after its last parallel
    // region (libgomp's default, about 14 ms here), on the cores a cluster
    // job now needs: a batch-mode job after a split-mode one ran at half
    // speed on one core. On such a switch the team releases its workers
    // (queued behind its own jobs; the next team job starts new ones), and
    // cluster jobs wait for that release: started before it, they compete
    // for the cores with the spinning workers and the team thread that is to
    // stop them, and the release itself took milliseconds.
    if (team_ && cluster == team_index()) {
      team_ran_ = true;
      cl.jobs.submit(std::move(work));
      return;
    }
    std::shared_future<void> released;
    if (team_) {
      std::lock_guard lock(release_mu_);
      if (team_ran_.exchange(false)) {
        auto done = std::make_shared<std::promise<void>>();
        team_released_ = done->get_future().share();
        clusters_[size_t(team_index())]->jobs.submit([done](ExecContext&) {
          omp_pause_resource_all(omp_pause_soft);
          done->set_value();
        });
      }
      released = team_released_;
    }
    if (released.valid() &&
        released.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      cl.jobs.submit([released, work = std::move(work)](ExecContext& ctx) {
        released.wait();
        work(ctx);
      });
      return;
    }
    cl.jobs.submit(std::move(work));
  }

 private:
  struct Cluster {
    std::vector<int> cores;
    device::JobThread jobs;
  };

  /// Cluster c's thread: pinned to its cores, its OpenMP team sized to
  /// them, with its own oneDNN stream.
  void thread_main(int c, const device::JobThread::RunJobs& run) {
    Cluster& cl = *clusters_[size_t(c)];
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int core : cl.cores) CPU_SET(core, &set);
    // Pinning is best effort: a restricted container may refuse it.
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    omp_set_num_threads(int(cl.cores.size()));
    dnnl::stream stream(onednn_.engine);
    ExecContext ctx{c, int(cl.cores.size()), &stream};
    run(ctx);
  }

  int team_index() const { return int(clusters_.size()) - 1; }

  DeviceInfo info_;
  const bool team_;                    // the last cluster spans every core
  std::atomic<bool> team_ran_{false};  // a team job was queued since a cluster job
  std::mutex release_mu_;
  std::shared_future<void> team_released_;  // the team's last worker release
  std::mutex alloc_mu_;
  std::unordered_map<void*, size_t> sizes_;  // live allocations
  OneDnnContext onednn_;
  bool disable_onednn_ = false;  // SHOAL_REFERENCE_ONLY
  std::vector<std::unique_ptr<Cluster>> clusters_;
};

[[maybe_unused]] const bool registered = device::register_backend({
    .kind = "cpu",
    .order = 0,
    .automatic = true,
    .enumerate = enumerate_devices,
    .create = make_cpu_device,
    .reference_layers = reference_layers,
    .compile = compile_for_cpu,
});

}  // namespace

std::unique_ptr<device::Device> make_cpu_device(const DeviceInfo& info,
                                                const device::DeviceConfig& config) {
  return std::make_unique<CpuDevice>(info, config.clusters, config.team, config.settings);
}

}  // namespace shoal::cpu
