// shoal::quantize: post-training int8 quantization for C++ and C callers. The
// quantizer is the Python package's (python/shoal/quantization.py edits ONNX
// graphs with python3-onnx; calibration runs in shoal's runtime there), so
// this runs `python3 -m shoal.quantization` in a child process, as the CLI's
// `shoal quantize` does, and turns its failure into an Error.
#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/settings.hpp"
#include "shoal/shoal.hpp"

extern char** environ;

namespace shoal {
namespace {

#ifndef SHOAL_LIB_TO_PYTHON_DIR
#define SHOAL_LIB_TO_PYTHON_DIR "python3/dist-packages"
#endif

/// The directory holding the shoal Python package that belongs to this
/// library: <lib dir>/../python (a build tree), the install's
/// (SHOAL_LIB_TO_PYTHON_DIR, relative to the library's directory) or, for a
/// pip install (the library inside the package), the package's parent; ""
/// if none.
std::string package_dir() {
  namespace fs = std::filesystem;
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&package_dir), &info) || !info.dli_fname) return "";
  std::error_code ec;
  const fs::path lib = fs::canonical(info.dli_fname, ec).parent_path();
  if (ec) return "";
  for (const fs::path& dir :
       {lib.parent_path() / "python", (lib / SHOAL_LIB_TO_PYTHON_DIR).lexically_normal(),
        lib.parent_path()})
    if (fs::exists(dir / "shoal" / "__init__.py", ec)) return dir.string();
  return "";
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

/// The quantizer's command line.
std::vector<std::string> arguments(const std::string& python, const std::string& model,
                                   const std::string& output, const QuantizeOptions& o) {
  std::vector<std::string> a = {python,     "-m",     "shoal.quantization", model,
                                "-o",       output,   "--calibration",      o.calibration,
                                "--method", o.method, "--activations",      o.activations};
  if (!o.input_shape.empty()) {
    std::vector<std::string> dims;
    for (int64_t d : o.input_shape) dims.push_back(std::to_string(d));
    a.insert(a.end(), {"--shape", join(dims, ",")});
  }
  if (!o.exclude.empty()) a.insert(a.end(), {"--exclude", join(o.exclude, ",")});
  if (o.keep_first_last) a.push_back("--keep-first-last");
  return a;
}

/// The last line of `text` with more than blanks, without trailing blanks and
/// the CLI's "shoal: error: ".
std::string message_of(const std::string& text) {
  std::string line;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (const size_t end = l.find_last_not_of(' '); end != std::string::npos)
      line = l.substr(0, end + 1);
  const std::string prefix = "shoal: error: ";
  return line.rfind(prefix, 0) == 0 ? line.substr(prefix.size()) : line;
}

}  // namespace

void quantize(const std::string& model_path, const std::string& output_path,
              const QuantizeOptions& options) {
  if (model_path.empty() || output_path.empty() || options.calibration.empty())
    throw Error(ErrorKind::invalid_argument,
                "quantize: the model, the output and the calibration data must be named");
  auto one_of = [](const std::string& v, const std::vector<std::string>& allowed,
                   const char* what) {
    for (const std::string& a : allowed)
      if (v == a) return;
    throw Error(ErrorKind::invalid_argument, std::string("quantize: ") + what + " '" + v +
                                                 "' is not one of " + join(allowed, ", "));
  };
  one_of(options.method, {"minmax", "percentile", "entropy"}, "method");
  one_of(options.activations, {"auto", "u8", "s8"}, "activations");
  const std::string py = read_settings().python;
  const std::string python = py.empty() ? "/usr/bin/python3" : py;
  std::vector<std::string> args = arguments(python, model_path, output_path, options);
  std::vector<std::string> env;
  bool has_path = false;
  for (char** e = environ; e && *e; ++e) {
    env.emplace_back(*e);
    has_path = has_path || (env.back().rfind("PYTHONPATH=", 0) == 0 && env.back().size() > 11);
  }
  if (!has_path)
    if (const std::string dir = package_dir(); !dir.empty()) env.push_back("PYTHONPATH=" + dir);
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  // The child's stderr comes back through a pipe (its message); its stdout
  // (the quantizer's summary line) goes nowhere.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    throw Error(ErrorKind::internal, std::string("quantize: pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, python.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  const std::string needs = "'" + python +
                            " -m shoal.quantization' (Python 3 with numpy and python3-onnx, and "
                            "shoal's Python package; SHOAL_PYTHON picks the interpreter)";
  if (rc != 0) {
    close(fds[0]);
    throw Error(ErrorKind::unsupported,
                "quantize runs " + needs + ", which could not be started: " + std::strerror(rc));
  }
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    err.append(buf, size_t(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      throw Error(ErrorKind::internal, std::string("quantize: waitpid: ") + std::strerror(errno));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  const std::string msg = message_of(err);
  // The quantizer reports bad input as "shoal: error: ..." and exit 1; an
  // interpreter without numpy or onnx fails on the import.
  if (WIFEXITED(status) && WEXITSTATUS(status) == 1 &&
      err.find("shoal: error: ") != std::string::npos)
    throw Error(ErrorKind::invalid_argument, "quantize " + model_path + ": " + msg);
  throw Error(ErrorKind::unsupported,
              "quantize " + model_path + ": " + needs + " failed (" +
                  (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                     : "signal " + std::to_string(WTERMSIG(status))) +
                  "): " + msg);
}

}  // namespace shoal
