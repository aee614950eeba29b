// The cpu target's compile hook: what compiling for CPU devices adds to the
// emitted program (registered with the backend in cpu_device.cpp; the
// compiler names no backend).
#include "backends/cpu/cpu_device.hpp"
#include "backends/cpu/onednn_kernels.hpp"

namespace shoal::cpu {

void compile_for_cpu(program::ProgramData& p, const CompileOptions& o, const Settings& settings,
                     const std::function<void(const std::string&)>& log) {
  assign_precision(p, o.precision, log);  // throws where this CPU lacks bf16
  if (o.optimize && o.winograd)
    // SHOAL_WINOGRAD=all: wherever oneDNN has it, not only where it pays
    // (tests of the Winograd path on small models).
    choose_conv_algorithms(
        p, settings.winograd_all ? WinogradPolicy::all : WinogradPolicy::worthwhile, log);
  if (o.prepack) prepack_weights(p, log);
}

}  // namespace shoal::cpu
