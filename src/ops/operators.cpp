// The public view of the operator table, and the generated operator docs.
#include <sstream>

#include "ops/op_table.hpp"
#include "shoal/shoal.hpp"

namespace shoal {

std::vector<OperatorInfo> operators() {
  std::vector<OperatorInfo> out;
  for (const ops::OpSpec& s : ops::all_ops())
    out.push_back({s.name, s.min_opset, s.min_inputs, s.max_inputs, s.runtime, s.dtypes,
                   s.summary, s.view, bool(s.per_sample), s.channels_last});
  return out;
}

std::string operators_markdown() {
  std::ostringstream o;
  o << "# Supported operators\n\n"
    << "Generated from the operator table (`src/ops/op_table.hpp`) by `shoal ops --markdown`;\n"
    << "a test checks that this file matches it. Every operator has a reference kernel\n"
    << "(`src/reference/`); the fast CPU kernels, oneDNN's (`src/backends/cpu/onednn_*`) and\n"
    << "shoal's native ones (`src/backends/cpu/native/`), cover the hot ones and fall back to\n"
    << "the reference kernel for anything they do not handle. Operators marked\n"
    << "*compile time* are folded into constants by the compiler and never run.\n"
    << "Models written for opsets 1 to 6 are converted to opset 7 with ONNX's version\n"
    << "converter when imported; *from opset* is the oldest model opset an operator is\n"
    << "imported from (where the converter has no adapter, or its adapter needs tensor\n"
    << "shapes it is not given, later than the operator's first ONNX version).\n"
    << "*Stacks*: samples may run through it as one stack (its rule, `OpSpec::per_sample`, also\n"
    << "looks at its attributes; a *view* costs nothing); *NHWC*: its fast kernels take 4-D\n"
    << "activations channels-last.\n\n"
    << "| operator | from opset | inputs | run time | dtypes at run time | stacks | NHWC | summary |\n"
    << "|---|---|---|---|---|---|---|---|\n";
  for (const OperatorInfo& op : operators()) {
    o << "| " << op.name << " | " << op.min_opset << " | " << op.min_inputs;
    if (op.max_inputs != op.min_inputs)
      o << "-" << (op.max_inputs >= 1 << 20 ? std::string("n") : std::to_string(op.max_inputs));
    o << " | " << (op.runtime ? "yes" : "compile time") << " | ";
    for (size_t i = 0; i < op.dtypes.size(); ++i) o << (i ? ", " : "") << dtype_name(op.dtypes[i]);
    o << " | " << (op.view ? "view" : op.per_sample ? "yes" : "") << " | "
      << (op.channels_last ? "yes" : "") << " | " << op.summary << " |\n";
  }
  o << "\n" << operators().size() << " operators.\n";
  return o.str();
}

}  // namespace shoal
