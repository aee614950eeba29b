// TeamKernel: the parts of one instruction run side by side on the threads of
// a cluster's OpenMP team, each part single-threaded.
#include <omp.h>

#include <exception>
#include <mutex>

#include "backends/cpu/omp_team.hpp"
#include "backends/cpu/onednn_common.hpp"

namespace shoal::cpu::onednn {

OneThreadPlanning::OneThreadPlanning() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
OneThreadPlanning::~OneThreadPlanning() { omp_set_num_threads(saved_); }

TeamKernel::TeamKernel(const dnnl::engine& eng, std::vector<std::unique_ptr<DnnlKernel>> parts,
                       std::string impl)
    : parts_(std::move(parts)), impl_(std::move(impl)) {
  for (size_t i = 0; i < parts_.size(); ++i) streams_.emplace_back(eng);
}

void TeamKernel::execute(device::ExecContext& ctx, std::span<void* const> in,
                         std::span<void* const> out) {
  const int n = int(parts_.size());
  std::exception_ptr failure;
  std::mutex mu;
  // Exceptions must not leave the parallel region: the first is kept and
  // rethrown on the calling thread. A runtime that gives fewer threads than
  // parts (nested parallelism) still runs every part.
#pragma omp parallel num_threads(team_threads(n))
  {
    device::ExecContext c = ctx;
    c.threads = 1;
    for (int i = omp_get_thread_num(); i < n; i += omp_get_num_threads()) {
      c.backend_state = &streams_[size_t(i)];
      try {
        parts_[size_t(i)]->execute(c, in, out);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!failure) failure = std::current_exception();
      }
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace shoal::cpu::onednn
