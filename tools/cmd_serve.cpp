// `shoal serve`: the command line of the inference server (src/serve/) and
// its signals: SIGTERM or SIGINT drains and exits 0.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>

#include "cli.hpp"
#include "serve/server.hpp"

namespace shoal::cli {
namespace {

Command spec() {
  return Command("serve",
                 "shoal serve --model NAME=PATH [--model NAME2=PATH2 ...] "
                 "[--model-repository DIR] [--host 127.0.0.1] [--port 8000]",
                 "Serves models over HTTP with the Open Inference Protocol (KServe v2): "
                 "GET /v2/health/live,\n/v2/health/ready, /v2, /v2/models/NAME, "
                 "/v2/models/NAME/ready; POST /v2/models/NAME/infer\n(JSON tensors or the "
                 "binary tensor data extension); GET /metrics (Prometheus). Concurrent\n"
                 "requests for a model are merged into batches (dynamic batching). SIGTERM or "
                 "SIGINT\nturns ready off, drains the accepted requests and exits 0.")
      .option("model", 'm', "NAME=PATH",
              "serve the program (.shoal) or ONNX model (.onnx, compiled at start) at PATH as "
              "NAME; repeatable")
      .option("model-config", 0, "NAME=FILE",
              "a JSON config for model NAME (keys as the options below, snake_case, plus "
              "devices, clusters and shape)")
      .option("model-repository", 0, "DIR",
              "serve every NAME.shoal / NAME.onnx in DIR, each with an optional NAME.json "
              "config")
      .option("host", 0, "ADDR", "address to listen on (127.0.0.1: loopback only)")
      .option("port", 'p', "PORT", "port to listen on (8000; 0: any free port, logged)")
      .option("max-batch-size", 0, "N",
              "most samples merged into one run (default max(8, the model's clusters))")
      .option("max-queue-delay-us", 0, "US",
              "how long a request may wait for others to batch with (0)")
      .option("preferred-batch-sizes", 0, "LIST", "batch sizes to prefer, e.g. 4,8")
      .option("queue-capacity", 0, "N",
              "requests a model holds waiting; one more gets 503 at once (128)")
      .option("instances", 0, "N", "batches of a model run at once (1)")
      .option("http-threads", 0, "N", "HTTP worker threads, one per open connection (128)")
      .option("max-body-mb", 0, "MB", "larger request bodies get 413 (256)")
      .epilog(
          "Example:\n  shoal serve --model digits=digits.shoal --port 8000\n"
          "  curl localhost:8000/v2/models/digits");
}

std::pair<std::string, std::string> name_value(const std::string& text, const char* option) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw UsageError(std::string("--") + option + " expects NAME=VALUE, got '" + text + "'");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

void log_line(const std::string& line) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  std::fprintf(stderr, "shoal serve: %s\n", line.c_str());
  std::fflush(stderr);
}

std::vector<serve::ModelConfig> model_configs(const Args& args) {
  serve::ModelConfig defaults;
  defaults.max_batch_size = args.int_value("max-batch-size", 0, 1);
  defaults.max_queue_delay_us = args.int_value("max-queue-delay-us", 0, 0);
  if (args.has("preferred-batch-sizes"))
    defaults.preferred_batch_sizes =
        parse_int_list(args.value("preferred-batch-sizes"), "--preferred-batch-sizes");
  defaults.queue_capacity = args.int_value("queue-capacity", 128, 1);
  defaults.instances = args.int_value("instances", 1, 1);

  std::vector<serve::ModelConfig> models;
  for (const std::string& m : args.values("model")) {
    serve::ModelConfig c = defaults;
    std::tie(c.name, c.path) = name_value(m, "model");
    models.push_back(c);
  }
  if (args.has("model-repository")) {
    for (serve::ModelConfig& c :
         serve::scan_model_repository(args.value("model-repository"), defaults))
      models.push_back(c);
  }
  if (models.empty()) throw UsageError("give at least one --model NAME=PATH or --model-repository");
  for (const std::string& mc : args.values("model-config")) {
    const auto [name, file] = name_value(mc, "model-config");
    bool found = false;
    for (serve::ModelConfig& c : models)
      if (c.name == name) {
        serve::apply_config_file(file, c);
        found = true;
      }
    if (!found) throw UsageError("--model-config names model '" + name + "', which is not served");
  }
  return models;
}

}  // namespace

int cmd_serve(const std::vector<std::string>& argv) {
  const Command cmd = spec();
  const Args args = cmd.parse(argv);
  if (args.help) {
    std::fputs(cmd.help().c_str(), stdout);
    return kExitOk;
  }
  const std::vector<serve::ModelConfig> models = model_configs(args);
  serve::ServerOptions options;
  options.host = args.value("host", options.host);
  options.port = args.int_value("port", options.port, 0);
  if (options.port > 65535) throw UsageError("--port expects 0 to 65535");
  options.http_threads = args.int_value("http-threads", options.http_threads, 4);
  options.max_body_bytes = size_t(args.int_value("max-body-mb", 256, 1)) << 20;

  // SIGTERM and SIGINT go to one thread (every other thread, the runtime's
  // included, inherits them blocked), which drains the server.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::mutex mu;  // guards running and drainer
  serve::Server* running = nullptr;
  std::thread drainer;  // runs Server::shutdown() after the first signal
  std::atomic<bool> finished{false};
  std::thread waiter([&] {
    int got = 0, count = 0;
    while (sigwait(&signals, &got) == 0) {
      if (finished) return;
      if (++count > 1) {
        log_line("second signal: exiting without draining");
        std::_Exit(kExitError);
      }
      std::lock_guard<std::mutex> lk(mu);
      if (running == nullptr) {
        log_line("signal while loading the models: exiting");
        std::_Exit(kExitOk);
      }
      log_line(std::string(got == SIGTERM ? "SIGTERM" : "SIGINT") + ": shutting down");
      // On its own thread, so that a second signal is still heard.
      drainer = std::thread([s = running] { s->shutdown(); });
    }
  });
  auto stop_waiter = [&] {
    finished = true;
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
  };
  try {
    serve::Server server(models, options, log_line);
    {
      std::lock_guard<std::mutex> lk(mu);
      running = &server;
    }
    server.run();  // until the listener stops
    stop_waiter();
    if (drainer.joinable()) drainer.join();
  } catch (...) {
    if (waiter.joinable()) stop_waiter();
    if (drainer.joinable()) drainer.join();
    throw;
  }
  return kExitOk;
}

}  // namespace shoal::cli
