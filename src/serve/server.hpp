// `shoal serve`: the Open Inference Protocol (KServe v2) REST endpoints over
// cpp-httplib, /metrics, and the lifecycle (ready, drain, stop).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "serve/config.hpp"
#include "serve/model.hpp"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace shoal::serve {

class HttpServer;  // httplib::Server with a deeper accept backlog (server.cpp)

struct ServerOptions {
  std::string host = "127.0.0.1";  ///< loopback unless told otherwise
  int port = 8000;                 ///< 0: any free port (port() says which)
  /// HTTP worker threads; each open connection holds one while it lives.
  int http_threads = 128;
  /// Larger request bodies are refused with 413 before they are read.
  size_t max_body_bytes = size_t(256) << 20;
};

class Server {
 public:
  /// Loads every model (compiling ONNX ones), binds the port and logs each
  /// model's devices, plan and endpoint. Throws shoal::Error.
  Server(const std::vector<ModelConfig>& models, const ServerOptions& options, Log log);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  /// Serves until shutdown(); returns when the listener has stopped (throws
  /// if it failed on its own).
  void run();
  /// Turns ready off, refuses new inference requests (503), lets every
  /// accepted one finish (queued batches go at once), then stops the
  /// listener. Thread-safe; returns when drained.
  void shutdown();

 private:
  void routes();
  void infer(const httplib::Request& req, const std::string& body, httplib::Response& res);
  ServedModel* find(const std::string& name) const;

  ServerOptions options_;
  Log log_;
  Metrics metrics_;
  std::vector<std::unique_ptr<ServedModel>> models_;
  std::map<std::string, ServedModel*> by_name_;
  std::unique_ptr<HttpServer> http_;
  int port_ = 0;
  std::atomic<bool> accepting_{false};
  bool stop_requested_ = false;  // shutdown() was called (under inflight_mu_)
  std::mutex inflight_mu_;
  std::condition_variable inflight_cv_;
  size_t inflight_ = 0;  // inference requests being handled
};

}  // namespace shoal::serve
