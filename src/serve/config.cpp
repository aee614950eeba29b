#include "serve/config.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "shoal/error.hpp"

namespace shoal::serve {
namespace {

using nlohmann::json;

[[noreturn]] void invalid(const std::string& message) {
  throw Error(ErrorKind::invalid_argument, message);
}

int64_t integer(const json& v, const std::string& what, int64_t lo, int64_t hi) {
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    invalid(what + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
            ", got " + v.dump());
  return v.get<int64_t>();
}

std::vector<int> integers(const json& v, const std::string& what, int lo) {
  if (!v.is_array()) invalid(what + " must be an array of integers, got " + v.dump());
  std::vector<int> out;
  for (const json& x : v) out.push_back(int(integer(x, what, lo, std::numeric_limits<int>::max())));
  return out;
}

}  // namespace

void apply_config_json(const std::string& text, ModelConfig& c, const std::string& what) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    invalid(what + ": malformed JSON: " + e.what());
  }
  if (!doc.is_object()) invalid(what + ": a config must be a JSON object");
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    const std::string w = what + ": \"" + key + "\"";
    if (key == "max_batch_size")
      c.max_batch_size = int(integer(v, w, 0, kIntMax));
    else if (key == "max_queue_delay_us")
      c.max_queue_delay_us = integer(v, w, 0, int64_t(3600) * 1000000);
    else if (key == "preferred_batch_sizes")
      c.preferred_batch_sizes = integers(v, w, 1);
    else if (key == "queue_capacity")
      c.queue_capacity = int(integer(v, w, 1, kIntMax));
    else if (key == "instances")
      c.instances = int(integer(v, w, 1, 64));
    else if (key == "devices")
      c.devices = integers(v, w, 0);
    else if (key == "clusters")
      c.clusters = int(integer(v, w, 0, 4096));
    else if (key == "shape") {
      if (!v.is_string()) invalid(w + " must be a string like \"1,3,224,224\"");
      c.shape = v.get<std::string>();
    } else {
      invalid(what + ": unknown key \"" + key +
              "\" (known: max_batch_size, max_queue_delay_us, preferred_batch_sizes, "
              "queue_capacity, instances, devices, clusters, shape)");
    }
  }
}

void apply_config_file(const std::string& path, ModelConfig& config) {
  std::ifstream f(path, std::ios::binary);
  if (!f) invalid("cannot read model config '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  apply_config_json(ss.str(), config, path);
}

std::vector<ModelConfig> scan_model_repository(const std::string& dir,
                                               const ModelConfig& defaults) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) invalid("model repository '" + dir + "' is not a folder");
  std::map<std::string, fs::path> found;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const fs::path& p = e.path();
    if (!e.is_regular_file() || (p.extension() != ".shoal" && p.extension() != ".onnx")) continue;
    const std::string name = p.stem().string();
    if (found.count(name))
      invalid("model repository '" + dir + "' has two files for model '" + name +
              "': " + found[name].filename().string() + " and " + p.filename().string());
    found[name] = p;
  }
  if (ec) invalid("cannot list model repository '" + dir + "': " + ec.message());
  if (found.empty()) invalid("model repository '" + dir + "' holds no .shoal or .onnx file");
  std::vector<ModelConfig> out;
  for (const auto& [name, path] : found) {
    ModelConfig c = defaults;
    c.name = name;
    c.path = path.string();
    const fs::path cfg = fs::path(dir) / (name + ".json");
    if (fs::exists(cfg, ec)) apply_config_file(cfg.string(), c);
    out.push_back(c);
  }
  return out;
}

void validate(const ModelConfig& c) {
  const std::string what = "model '" + c.name + "'";
  if (c.name.empty()) invalid("a model needs a name (NAME=PATH)");
  for (char ch : c.name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.'))
      invalid(what + ": a name holds letters, digits, '_', '-' and '.' only");
  if (c.path.empty()) invalid(what + " has no file");
  if (c.max_batch_size < 0) invalid(what + ": max_batch_size must be >= 0");
  if (c.queue_capacity < 1) invalid(what + ": queue_capacity must be >= 1");
  if (c.instances < 1) invalid(what + ": instances must be >= 1");
  if (c.max_queue_delay_us < 0) invalid(what + ": max_queue_delay_us must be >= 0");
  for (int p : c.preferred_batch_sizes) {
    if (p < 1) invalid(what + ": preferred batch sizes must be >= 1");
    if (c.max_batch_size > 0 && p > c.max_batch_size)
      invalid(what + ": preferred batch size " + std::to_string(p) + " exceeds max_batch_size " +
              std::to_string(c.max_batch_size));
  }
  std::vector<int> d = c.devices;
  std::sort(d.begin(), d.end());
  if (std::adjacent_find(d.begin(), d.end()) != d.end())
    invalid(what + ": a device is listed twice");
}

}  // namespace shoal::serve
