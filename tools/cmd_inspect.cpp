// `shoal inspect`: describes a program file, as text or JSON.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cli.hpp"
#include "shoal/shoal.hpp"

namespace shoal::cli {
namespace {

Command spec() {
  return Command("inspect", "shoal inspect PROGRAM.shoal [--json]",
                 "Prints a program's layers, shapes, arena and weight sizes.")
      .flag("json", 0,
            "print a machine-readable summary: inputs, outputs, instruction "
            "count, ops, arena and weight bytes")
      .positionals(1, 1);
}

std::string tensors_json(const std::vector<TensorInfo>& infos) {
  std::string s = "[";
  for (size_t i = 0; i < infos.size(); ++i) {
    if (i) s += ", ";
    s += "{\"name\": " + json_string(infos[i].name) +
         ", \"dtype\": " + json_string(dtype_name(infos[i].dtype)) +
         ", \"shape\": " + json_shape(infos[i].shape) +
         ", \"size\": " + std::to_string(infos[i].numel()) + "}";
  }
  return s + "]";
}

std::string strings_json(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_string(v[i]);
  return s + "]";
}

std::string summary_json(const std::string& path, const Program& p) {
  const ProgramInfo d = p.info();
  std::map<std::string, int> ops;
  for (const LayerInfo& l : d.layers) ++ops[l.op];
  std::string op_counts = "{";
  for (const auto& [op, n] : ops) {
    if (op_counts.size() > 1) op_counts += ", ";
    op_counts += json_string(op) + ": " + std::to_string(n);
  }
  op_counts += "}";
  // Layers per precision the compiler asked for (views and other ops: f32).
  std::map<std::string, int> precisions;
  for (const LayerInfo& l : d.layers) ++precisions[l.precision];
  std::string precision_counts = "{";
  for (const auto& [name, n] : precisions) {
    if (precision_counts.size() > 1) precision_counts += ", ";
    precision_counts += json_string(name) + ": " + std::to_string(n);
  }
  precision_counts += "}";
  return "{\"file\": " + json_string(path) + ", \"model\": " + json_string(d.model) +
         ", \"precision\": " + precision_counts + ", \"producer\": " + json_string(d.producer) +
         ", \"target\": " + json_string(d.target) +
         ", \"format_version\": " + std::to_string(d.format_version) +
         ", \"devices\": " + std::to_string(p.devices()) +
         ", \"clusters\": " + std::to_string(p.clusters()) +
         ", \"mode\": " + json_string(mode_name(p.mode())) +
         ", \"split\": " + (p.split() ? "true" : "false") +
         ", \"inputs\": " + tensors_json(p.inputs()) +
         ", \"outputs\": " + tensors_json(p.outputs()) +
         ", \"instructions\": " + std::to_string(p.num_instructions()) + ", \"ops\": " + op_counts +
         ", \"arena_bytes\": " + std::to_string(p.arena_bytes()) +
         ", \"weight_bytes\": " + std::to_string(p.weight_bytes()) +
         ", \"reference_layers\": " + strings_json(p.reference_layers(d.target)) + "}\n";
}

}  // namespace

int cmd_inspect(const std::vector<std::string>& argv) {
  const Command cmd = spec();
  const Args args = cmd.parse(argv);
  if (args.help) {
    std::fputs(cmd.help().c_str(), stdout);
    return kExitOk;
  }
  const std::string& path = args.positional[0];
  const Program program = Program::load(path);
  if (args.has("json")) {
    std::fputs(summary_json(path, program).c_str(), stdout);
  } else {
    std::string text = program.describe();
    if (!text.empty() && text.back() != '\n') text += '\n';
    const std::vector<std::string> slow = program.reference_layers(program.info().target);
    text += "layers on the slow reference kernels (no fast kernel on this CPU): ";
    if (slow.empty()) text += "none";
    for (size_t i = 0; i < slow.size(); ++i) text += (i ? ", " : "") + slow[i];
    std::fputs((text + "\n").c_str(), stdout);
  }
  return kExitOk;
}

}  // namespace shoal::cli
