// Shared pieces of the `shoal` command line: a tiny argument parser, output
// helpers and the entry points of the commands (one file each, cmd_*.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "shoal/types.hpp"

namespace shoal::cli {

constexpr int kExitOk = 0;
constexpr int kExitError = 1;  // a runtime failure: "shoal: error: ..."
constexpr int kExitUsage = 2;  // bad command line

/// A bad command line; main() prints it with the command's usage, exit 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parsed options of one command.
struct Args {
  bool help = false;
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;  // by long name

  bool has(const std::string& name) const { return options.count(name) > 0; }
  /// The last value given for `name`, or `fallback`.
  std::string value(const std::string& name,
                    const std::string& fallback = "") const;
  /// All values given for `name`, in order.
  std::vector<std::string> values(const std::string& name) const;
  /// The last value as an integer >= min_value (UsageError otherwise).
  int int_value(const std::string& name, int fallback, int min_value) const;
};

/// One command's options, positionals and help text.
class Command {
 public:
  Command(std::string name, std::string synopsis, std::string summary);

  /// A boolean option, e.g. flag("split", 0, "...") for --split.
  Command& flag(const std::string& long_name, char short_name,
                const std::string& help);
  /// An option with a value (--name VALUE, --name=VALUE or -x VALUE); may be
  /// repeated.
  Command& option(const std::string& long_name, char short_name,
                  const std::string& metavar, const std::string& help);
  /// Expects between min and max positional arguments.
  Command& positionals(size_t min, size_t max);
  /// Extra help text printed after the options.
  Command& epilog(const std::string& text);

  /// Parses argv (without the program and command names). Throws
  /// UsageError. With -h/--help anywhere, returns with help = true.
  Args parse(const std::vector<std::string>& argv) const;
  std::string help() const;
  const std::string& name() const { return name_; }
  const std::string& synopsis() const { return synopsis_; }

 private:
  struct Opt {
    std::string long_name;
    char short_name;
    std::string metavar;  // empty for flags
    std::string help;
  };
  const Opt* find_long(const std::string& name) const;
  const Opt* find_short(char c) const;

  std::string name_, synopsis_, summary_, epilog_;
  std::vector<Opt> opts_;
  size_t min_pos_ = 0, max_pos_ = 0;
};

// ---- output helpers ---------------------------------------------------------

/// A JSON string literal (quoted, escaped).
std::string json_string(const std::string& s);
/// A JSON number; NaN and infinities become null.
std::string json_number(double x);
/// A JSON array of integers.
std::string json_shape(const Shape& s);
/// "1.50 MiB" style sizes.
std::string human_bytes(uint64_t bytes);
/// "0,1,3" -> {0,1,3}; UsageError naming `what` on anything else.
std::vector<int> parse_int_list(const std::string& text,
                                const std::string& what);
/// Compact core list: {0,1,2,3,6} -> "0-3,6".
std::string int_ranges(const std::vector<int>& v);

// ---- commands (argv without the program and command names) ------------------

int cmd_compile(const std::vector<std::string>& argv);
int cmd_run(const std::vector<std::string>& argv);
int cmd_inspect(const std::vector<std::string>& argv);
int cmd_devices(const std::vector<std::string>& argv);
int cmd_ops(const std::vector<std::string>& argv);
int cmd_bench(const std::vector<std::string>& argv);
int cmd_worker(const std::vector<std::string>& argv);  // cmd_worker.cpp
/// Replaces the process with `python3 -m MODULE ARGV...` (cmd_worker.cpp);
/// `needs` names what that takes, for the error when it cannot start.
int forward_to_python(const std::string& module, const std::string& needs,
                      const std::vector<std::string>& argv);
int cmd_debug_compare(const std::vector<std::string>& argv);
int cmd_serve(const std::vector<std::string>& argv);   // cmd_serve.cpp, src/serve/
/// Replaces the process with `python3 -m shoal.dask COMMAND ARGV...`.
int forward_to_dask(const std::string& command, const std::vector<std::string>& argv);
/// `shoal quantize`: forwards to `python3 -m shoal.quantization`.
int cmd_quantize(const std::vector<std::string>& argv);

}  // namespace shoal::cli
