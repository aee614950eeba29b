#include "device/job_thread.hpp"

namespace shoal::device {

JobThread::~JobThread() {
  request_stop();
  join();
}

void JobThread::start(std::function<void(const RunJobs& run)> main) {
  thread_ =
      std::thread([this, main = std::move(main)] { main([this](ExecContext& ctx) { run(ctx); }); });
}

void JobThread::submit(Job job) {
  std::lock_guard<std::mutex> lk(mu_);
  jobs_.push_back(std::move(job));
  cv_.notify_one();
}

void JobThread::request_stop() {
  std::lock_guard<std::mutex> lk(mu_);
  stop_ = true;
  cv_.notify_all();
}

void JobThread::join() {
  if (thread_.joinable()) thread_.join();
}

void JobThread::run(ExecContext& ctx) {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stop requested, queue drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job(ctx);  // jobs catch their own exceptions
  }
}

}  // namespace shoal::device
