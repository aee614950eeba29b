// `shoal ops`: lists the supported operators (the operator table).
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"
#include "shoal/shoal.hpp"

namespace shoal::cli {

int cmd_ops(const std::vector<std::string>& argv) {
  const Command cmd = Command("ops", "shoal ops [--markdown]",
                              "Lists the operators shoal supports, from its operator table.")
                          .flag("markdown", 0, "print docs/OPERATORS.md")
                          .positionals(0, 0);
  const Args args = cmd.parse(argv);
  if (args.help) {
    std::fputs(cmd.help().c_str(), stdout);
    return kExitOk;
  }
  if (args.has("markdown")) {
    std::fputs(operators_markdown().c_str(), stdout);
    return kExitOk;
  }
  for (const OperatorInfo& op : operators())
    std::printf("%-20s opset %-3d %s%s\n", op.name.c_str(), op.min_opset,
                op.runtime ? "" : "(compile time) ", op.summary.c_str());
  return kExitOk;
}

}  // namespace shoal::cli
