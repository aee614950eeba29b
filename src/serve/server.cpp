#include "serve/server.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "serve/protocol.hpp"

namespace shoal::serve {

class HttpServer : public httplib::Server {
 public:
  /// httplib listens with a backlog of 5: more clients connecting at once
  /// would see their SYNs dropped and retried a second later.
  void set_backlog(int n) { ::listen(svr_sock_, n); }
};

namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kHeaderLength = "Inference-Header-Content-Length";

void send_json(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.body = std::move(body);
  res.set_header("Content-Type", kJson);
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, status, error_body(message));
}

// Set by infer() on the HTTP thread that handles the request, cleared by the
// logger, which httplib calls on the same thread once the response is
// written: a request counts as in flight until its client has the answer.
thread_local bool t_inflight = false;

// Shuts down (does not close: httplib owns them) this process's accepted
// connections on `port`. httplib's stop() closes the listener, but a
// keep-alive connection waiting idle for its next request ends only at its
// keep-alive timeout; shut down, it ends at once.
void shut_down_connections(int port) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    const std::string name = e.path().filename().string();
    if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc()) continue;
    sockaddr_storage local{}, peer{};
    socklen_t n = sizeof local, m = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &n) != 0 ||
        ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &m) != 0)
      continue;
    int local_port = -1;
    if (local.ss_family == AF_INET)
      local_port = ntohs(reinterpret_cast<const sockaddr_in*>(&local)->sin_port);
    else if (local.ss_family == AF_INET6)
      local_port = ntohs(reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port);
    if (local_port == port) ::shutdown(fd, SHUT_RDWR);
  }
}

int status_of(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::invalid_argument:
    case ErrorKind::dtype:
    case ErrorKind::unsupported:
      return 400;
    case ErrorKind::out_of_memory:
      return 503;
    default:
      return 500;
  }
}

}  // namespace

Server::Server(const std::vector<ModelConfig>& models, const ServerOptions& options, Log log)
    : options_(options), log_(std::move(log)) {
  if (models.empty()) throw Error(ErrorKind::invalid_argument, "no model to serve");
  std::set<std::string> names;
  for (const ModelConfig& m : models)
    if (!names.insert(m.name).second)
      throw Error(ErrorKind::invalid_argument, "model name '" + m.name + "' is given twice");
  // Models that name no devices share those runtimes pick by themselves
  // (not the debugging ref devices).
  std::vector<int> pool;
  for (const DeviceInfo& d : devices())
    if (d.automatic) pool.push_back(d.id);
  const std::vector<Placement> placement = place_models(models, pool);
  for (size_t i = 0; i < models.size(); ++i) {
    models_.push_back(std::make_unique<ServedModel>(models[i], placement[i].devices,
                                                    placement[i].share, metrics_, log_));
    by_name_[models[i].name] = models_.back().get();
  }

  http_ = std::make_unique<HttpServer>();
  const size_t threads = size_t(std::max(options_.http_threads, 4));
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_tcp_nodelay(true);
  http_->set_keep_alive_max_count(size_t(1) << 30);
  http_->set_keep_alive_timeout(30);
  routes();
  const bool bound = options_.port == 0 ? (port_ = http_->bind_to_any_port(options_.host)) > 0
                                        : http_->bind_to_port(options_.host, port_ = options_.port);
  if (!bound)
    throw Error(ErrorKind::device, "cannot listen on " + options_.host + ":" +
                                       std::to_string(options_.port) +
                                       " (in use, or not an address of this host)");
  http_->set_backlog(SOMAXCONN);
  const std::string base = "http://" + options_.host + ":" + std::to_string(port_);
  for (const auto& m : models_) {
    log_(m->describe());
    log_("model '" + m->name() + "': POST " + base + "/v2/models/" + m->name() + "/infer");
  }
  log_("metrics: GET " + base + "/metrics");
}

Server::~Server() {
  if (http_ && http_->is_running()) http_->stop();
  for (auto& m : models_) m->batcher().stop();
}

ServedModel* Server::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

void Server::routes() {
  httplib::Server& h = *http_;
  h.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, R"({"live": true})");
  });
  h.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
    if (accepting_)
      send_json(res, 200, R"({"ready": true})");
    else
      send_error(res, 503, "the server is not ready (starting or shutting down)");
  });
  h.Get("/v2", [](const httplib::Request&, httplib::Response& res) {
    const nlohmann::json doc = {
        {"name", "shoal"}, {"version", version()}, {"extensions", {"binary_tensor_data"}}};
    send_json(res, 200, doc.dump());
  });
  h.Get(R"(/v2/models/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    const ServedModel* m = find(req.matches[1]);
    if (!m) return send_error(res, 404, "unknown model '" + std::string(req.matches[1]) + "'");
    send_json(res, 200, model_metadata(m->name(), m->inputs(), m->outputs()));
  });
  h.Get(R"(/v2/models/([^/]+)/ready)", [this](const httplib::Request& req, httplib::Response& res) {
    const ServedModel* m = find(req.matches[1]);
    if (!m) return send_error(res, 404, "unknown model '" + std::string(req.matches[1]) + "'");
    if (!accepting_) return send_error(res, 503, "model '" + m->name() + "' is not ready");
    send_json(res, 200, nlohmann::json{{"name", m->name()}, {"ready", true}}.dump());
  });
  // The body is read here rather than by httplib, into a string reserved at
  // its Content-Length (bounded by the limit): httplib appends it 4 KB at a
  // time, and a growing string would copy a 600 KB image several times over.
  h.Post(R"(/v2/models/([^/]+)/infer)", [this](const httplib::Request& req, httplib::Response& res,
                                               const httplib::ContentReader& read) {
    std::string body;
    const uint64_t declared = req.get_header_value<uint64_t>("Content-Length");
    body.reserve(size_t(std::min<uint64_t>(declared, options_.max_body_bytes)));
    if (!read([&](const char* data, size_t n) {
          body.append(data, n);
          return true;
        }))
      return;  // httplib set the status: 400 (short body) or 413 (too large)
    infer(req, body, res);
  });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.body = metrics_.text();
    res.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  });
  h.set_logger([this](const httplib::Request&, const httplib::Response&) {
    if (!t_inflight) return;
    t_inflight = false;
    std::lock_guard<std::mutex> lk(inflight_mu_);
    if (--inflight_ == 0) inflight_cv_.notify_all();
  });
  // Anything else that fails (no route: 404, a body over the limit: 413,
  // a body shorter than its Content-Length: 400) gets an error body too.
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = "HTTP " + std::to_string(res.status);
    if (res.status == 404)
      message = "no endpoint " + req.method + " " + req.path;
    else if (res.status == 413)
      message = "the request body is larger than the server's limit";
    else if (res.status == 400)
      message = "bad request (a body shorter than its Content-Length, or malformed HTTP)";
    send_error(res, res.status, message);
  });
  h.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string message = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          message = e.what();
        } catch (...) {
        }
        send_error(res, 500, message);
      });
}

void Server::infer(const httplib::Request& req, const std::string& body, httplib::Response& res) {
  const Clock::time_point t0 = Clock::now();
  ServedModel* m = find(req.matches[1]);
  if (!m) return send_error(res, 404, "unknown model '" + std::string(req.matches[1]) + "'");
  {
    std::lock_guard<std::mutex> lk(inflight_mu_);
    ++inflight_;
  }
  t_inflight = true;  // until the logger saw the response written
  bool ok = false;
  try {
    if (!accepting_) throw HttpError(503, "the server is shutting down");
    std::optional<size_t> header_length;
    if (req.has_header(kHeaderLength))
      header_length = parse_header_length(req.get_header_value(kHeaderLength), body.size());
    const InferRequest request =
        decode_infer_request(body, header_length, m->inputs(), m->outputs());
    auto pending = std::make_shared<Pending>(request);
    if (!m->batcher().submit(pending))
      throw HttpError(503, "model '" + m->name() + "' is overloaded: " +
                               std::to_string(m->batcher().settings().queue_capacity) +
                               " requests are already waiting (queue_capacity)");
    pending->wait();
    if (pending->error) std::rethrow_exception(pending->error);
    EncodedResponse out = encode_infer_response(m->name(), request, pending->outputs, m->outputs());
    res.status = 200;
    if (out.binary) {
      res.set_header(kHeaderLength, std::to_string(out.header_length));
      res.set_header("Content-Type", "application/octet-stream");
      res.body = std::move(out.body);
    } else {
      send_json(res, 200, std::move(out.body));
    }
    ok = true;
  } catch (const HttpError& e) {
    send_error(res, e.status(), e.what());
  } catch (const Error& e) {
    send_error(res, status_of(e), e.what());
  } catch (const std::exception& e) {
    send_error(res, 500, e.what());
  }
  const ModelMetrics& metrics = m->metrics();
  if (ok) {
    metrics.request_success->Increment();
    metrics.request_us->Increment(
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  } else {
    metrics.request_failure->Increment();
  }
}

void Server::run() {
  {
    std::lock_guard<std::mutex> lk(inflight_mu_);
    if (stop_requested_) return;
    accepting_ = true;
  }
  log_("ready: listening on http://" + options_.host + ":" + std::to_string(port_));
  if (!http_->listen_after_bind() && !stop_requested_)
    throw Error(ErrorKind::device, "the HTTP listener failed");
}

void Server::shutdown() {
  {
    std::lock_guard<std::mutex> lk(inflight_mu_);
    if (stop_requested_) return;
    stop_requested_ = true;
    if (!accepting_) return;  // run() has not started and now will not
    accepting_ = false;
  }
  for (auto& m : models_) m->batcher().flush();
  {
    std::unique_lock<std::mutex> lk(inflight_mu_);
    log_("draining: " + std::to_string(inflight_) + " request(s) in flight");
    inflight_cv_.wait(lk, [&] { return inflight_ == 0; });
  }
  // run() set accepting_ just before it listens: wait until it does.
  while (!http_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();
  shut_down_connections(port_);
  log_("drained; stopped");
}

}  // namespace shoal::serve
