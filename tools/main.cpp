// `shoal`: the command-line tool. This file only dispatches to the commands
// (cmd_*.cpp) and maps failures to exit codes: 1 for runtime errors
// ("shoal: error: <message>"), 2 for usage errors.
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "cli.hpp"
#include "shoal/shoal.hpp"

namespace {

struct CommandEntry {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>&);
};

constexpr CommandEntry kCommands[] = {
    {"compile", "compile an ONNX model into a program file", shoal::cli::cmd_compile},
    {"run", "run a program on .npy inputs", shoal::cli::cmd_run},
    {"inspect", "describe a program file", shoal::cli::cmd_inspect},
    {"devices", "list the devices of this host", shoal::cli::cmd_devices},
    {"ops", "list the supported operators", shoal::cli::cmd_ops},
    {"bench", "time a program on a random batch", shoal::cli::cmd_bench},
    {"worker", "serve a device to a Dask cluster", shoal::cli::cmd_worker},
    {"quantize", "calibrate and quantize an ONNX model into a QDQ model",
     shoal::cli::cmd_quantize},
    {"debug-compare", "compare two devices layer by layer", shoal::cli::cmd_debug_compare},
    {"serve", "serve models over HTTP (KServe v2, batching, metrics)", shoal::cli::cmd_serve},
};

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: shoal [--help] [--version] COMMAND [ARGS...]\n\n"
               "Compiles ONNX CNNs ahead of time and runs them on CPU "
               "devices.\n\ncommands:\n");
  for (const CommandEntry& c : kCommands) std::fprintf(out, "  %-13s %s\n", c.name, c.summary);
  std::fprintf(out, "\nRun 'shoal COMMAND --help' for a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  using shoal::cli::kExitError;
  using shoal::cli::kExitUsage;
  if (argc < 2) {
    print_usage(stderr);
    return kExitUsage;
  }
  const std::string first = argv[1];
  if (first == "-h" || first == "--help" || first == "help") {
    print_usage(stdout);
    return 0;
  }
  if (first == "-V" || first == "--version") {
    std::printf("shoal %s\n", shoal::version());
    return 0;
  }
  const CommandEntry* command = nullptr;
  for (const CommandEntry& c : kCommands)
    if (first == c.name) command = &c;
  if (command == nullptr) {
    std::fprintf(stderr, "shoal: unknown %s '%s'\n",
                 first.rfind("-", 0) == 0 ? "option" : "command",
                 first.c_str());
    std::fprintf(stderr, "Run 'shoal --help' for the list of commands.\n");
    return kExitUsage;
  }

  const std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return command->run(args);
  } catch (const shoal::cli::UsageError& e) {
    std::fprintf(stderr, "shoal %s: %s\n", command->name, e.what());
    std::fprintf(stderr, "Run 'shoal %s --help' for usage.\n", command->name);
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "shoal: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shoal: error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "shoal: error: unknown failure\n");
  }
  return kExitError;
}
