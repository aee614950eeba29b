// `shoal worker ...` and `shoal run --scheduler ...`: the Dask commands live in
// the Python package (python3 -m shoal.dask); these replace this process with
// it. PYTHONPATH, when unset, points at the package next to this binary: the
// build's python dir (the binary is in build/bin, the package in
// build/python), or the installed one (SHOAL_INSTALLED_PYTHON_DIR, relative to
// the binary's directory); SHOAL_PYTHON picks the interpreter (default
// /usr/bin/python3).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "cli.hpp"
#include "shoal/error.hpp"

namespace shoal::cli {
namespace {

#ifndef SHOAL_INSTALLED_PYTHON_DIR
#define SHOAL_INSTALLED_PYTHON_DIR "../lib/python3/dist-packages"
#endif

// The first of <directory of this binary>/../python (a build) and
// <directory of this binary>/SHOAL_INSTALLED_PYTHON_DIR (an install) that
// holds the shoal package, else "".
std::string package_python_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (const fs::path& dir : {exe.parent_path().parent_path() / "python",
                              (exe.parent_path() / SHOAL_INSTALLED_PYTHON_DIR).lexically_normal()})
    if (fs::exists(dir / "shoal" / "__init__.py", ec)) return dir.string();
  return "";
}

}  // namespace

int forward_to_python(const std::string& module, const std::string& needs,
                      const std::vector<std::string>& argv) {
  const char* py = std::getenv("SHOAL_PYTHON");
  const std::string python = py && *py ? py : "/usr/bin/python3";
  const char* path = std::getenv("PYTHONPATH");
  if (path == nullptr || *path == '\0') {
    const std::string dir = package_python_dir();
    if (!dir.empty()) setenv("PYTHONPATH", dir.c_str(), 1);
  }
  std::vector<std::string> args = {python, "-m", module};
  args.insert(args.end(), argv.begin(), argv.end());
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  std::fflush(nullptr);
  execvp(python.c_str(), cargs.data());
  throw Error(ErrorKind::unsupported,
              "this command runs '" + python + " -m " + module + "' (" + needs +
                  "), but it could not be started: " + std::strerror(errno) +
                  " (set SHOAL_PYTHON to the interpreter)");
}

int forward_to_dask(const std::string& command, const std::vector<std::string>& argv) {
  std::vector<std::string> args = {command};
  args.insert(args.end(), argv.begin(), argv.end());
  return forward_to_python("shoal.dask", "Python 3 with python3-distributed", args);
}

int cmd_worker(const std::vector<std::string>& argv) { return forward_to_dask("worker", argv); }

}  // namespace shoal::cli
