// The ref backend: devices that run every instruction with the op table's
// reference kernels, for debugging numerics (compare a layer against the
// cpu backend's oneDNN and native kernels: `shoal debug-compare`).
//
// Its memory is deliberately NOT host-addressable from the runtime's side,
// as a GPU's is not: an address it hands out is the host address of its
// buffer plus 2^62, which is not a canonical x86-64 (or AArch64 user)
// address, so anything but this backend that read or wrote through it would
// fault at once. Bytes move only through copy_in/copy_out/copy/fill, and
// its kernels translate addresses before running. Registered as "ref"; not
// picked by runtimes that name no device.
#include "backends/ref/ref_device.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "backends/cpu/reference_kernel.hpp"
#include "device/job_thread.hpp"
#include "device/registry.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::ref {

void* to_device(void* host) {
  return host ? reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(host) + kAddressBias) : nullptr;
}
void* to_host(const void* dev) {
  return dev ? reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(dev) - kAddressBias) : nullptr;
}

namespace {

using device::ExecContext;

/// A reference kernel reading host memory, behind device addresses.
class RefKernel final : public device::Kernel {
 public:
  explicit RefKernel(std::unique_ptr<device::Kernel> inner) : inner_(std::move(inner)) {}
  void execute(ExecContext& ctx, std::span<void* const> in, std::span<void* const> out) override {
    in_.resize(in.size());
    out_.resize(out.size());
    for (size_t i = 0; i < in.size(); ++i) in_[i] = to_host(in[i]);
    for (size_t i = 0; i < out.size(); ++i) out_[i] = to_host(out[i]);
    inner_->execute(ctx, in_, out_);
  }
  std::string impl() const override { return inner_->impl(); }

 private:
  std::unique_ptr<device::Kernel> inner_;
  std::vector<void*> in_, out_;
};

class RefDevice final : public device::Device {
 public:
  RefDevice(const DeviceInfo& info, const device::DeviceConfig& config) : info_(info) {
    const int n = std::max(1, config.clusters) + (config.team ? 1 : 0);
    for (int c = 0; c < n; ++c) {
      clusters_.push_back(std::make_unique<device::JobThread>());
      clusters_.back()->start([c](const device::JobThread::RunJobs& run) {
        ExecContext ctx{c, 1, nullptr};
        run(ctx);
      });
    }
  }
  ~RefDevice() override {
    for (auto& cl : clusters_) cl->request_stop();
    for (auto& cl : clusters_) cl->join();
    for (auto& [p, n] : live_) std::free(p);
  }

  const DeviceInfo& info() const override { return info_; }
  int num_clusters() const override { return int(clusters_.size()); }

  void* allocate(size_t bytes) override {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = bytes < info_.memory_bytes ? std::aligned_alloc(64, rounded) : nullptr;
    if (!p)
      throw Error(ErrorKind::out_of_memory,
                  "device " + info_.name + ": cannot allocate " + std::to_string(bytes) + " bytes");
    std::lock_guard<std::mutex> lk(mu_);
    live_[p] = rounded;
    return to_device(p);
  }
  void free(void* dev) noexcept override {
    if (!dev) return;
    void* p = to_host(dev);
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (!live_.erase(p)) return;
    }
    std::free(p);
  }
  void copy_in(ExecContext&, void* dst, const void* src, size_t bytes) override {
    std::memcpy(to_host(dst), src, bytes);
  }
  void copy_out(ExecContext&, void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, to_host(src), bytes);
  }
  void copy(ExecContext&, void* dst, const void* src, size_t bytes) override {
    std::memmove(to_host(dst), to_host(src), bytes);
  }
  void fill(ExecContext&, void* dst, uint8_t value, size_t bytes) override {
    std::memset(to_host(dst), value, bytes);
  }
  void synchronize(ExecContext&) override {}

  // Its own programs (plain weights), and the cpu target's: their packed
  // weights are unpacked by the reference kernels once, at creation.
  bool runs_target(const std::string& target) const override {
    return target == "ref" || target == "cpu";
  }

  bool supports(const program::Instruction& ins, const program::ProgramData&) const override {
    const ops::OpSpec* spec = ops::find_op(ins.op);
    return spec && spec->runtime;
  }

  std::unique_ptr<device::Kernel> make_kernel(const program::Instruction& ins,
                                              const program::ProgramData& prog, int) override {
    if (!supports(ins, prog))
      throw Error(ErrorKind::unsupported,
                  ins.op + " node '" + ins.name + "' is not supported on ref devices");
    return std::make_unique<RefKernel>(
        cpu::make_reference_kernel(ins, prog, static_cast<const uint8_t*>(to_host(prog.weights))));
  }

  void submit(int cluster, std::function<void(ExecContext&)> work) override {
    clusters_.at(size_t(cluster))->submit(std::move(work));
  }

 private:
  DeviceInfo info_;
  std::mutex mu_;
  std::unordered_map<void*, size_t> live_;  // host buffer -> bytes
  std::vector<std::unique_ptr<device::JobThread>> clusters_;
};

/// SHOAL_REF_DEVICES=n ref devices (default 1, 0 for none).
std::vector<DeviceInfo> enumerate(const Settings& settings) {
  const int n = settings.ref_devices;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  const uint64_t mem = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
  std::vector<DeviceInfo> out(static_cast<size_t>(n));
  for (DeviceInfo& d : out) {
    d.compute_units = 1;
    d.compute_unit = "thread";
    d.clusters = 1;
    d.memory_bytes = mem;
    d.host_addressable = false;
  }
  return out;
}

std::unique_ptr<device::Device> create(const DeviceInfo& info, const device::DeviceConfig& c) {
  return std::make_unique<RefDevice>(info, c);
}

[[maybe_unused]] const bool registered = device::register_backend({
    .kind = "ref",
    .order = 10,
    .automatic = false,
    .enumerate = enumerate,
    .create = create,
    .reference_layers = {},  // every layer runs the reference kernels, on purpose
    .compile = {},           // "ref" programs: plain f32 weights
});

}  // namespace
}  // namespace shoal::ref
