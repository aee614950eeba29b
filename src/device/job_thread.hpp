// One cluster's thread and its job queue, as every backend's clusters run
// them: Device::submit queues a job and returns at once; the thread runs the
// jobs in order. A backend prepares the thread (pinning, per-thread state
// such as a oneDNN stream) in the function it starts it with.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "device/kernel.hpp"

namespace shoal::device {

class JobThread {
 public:
  using Job = std::function<void(ExecContext&)>;
  /// Runs the queued jobs with `ctx` until stopped and drained.
  using RunJobs = std::function<void(ExecContext& ctx)>;

  JobThread() = default;
  JobThread(const JobThread&) = delete;
  JobThread& operator=(const JobThread&) = delete;
  /// Stops (once the queue is drained) and joins.
  ~JobThread();

  /// Starts the thread: main(run) prepares it, then calls run(ctx).
  void start(std::function<void(const RunJobs& run)> main);
  /// Queues a job; jobs catch their own exceptions.
  void submit(Job job);
  /// Asks the thread to stop once its queue is drained (does not wait).
  void request_stop();
  /// Waits for the thread to end (after request_stop).
  void join();

 private:
  void run(ExecContext& ctx);

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
};

}  // namespace shoal::device
