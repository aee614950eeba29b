// Reduced precision: which instructions the compiler asks to run in bf16, and
// whether this CPU has the instructions to run them (never emulated).
#include <cpuid.h>

#include <cstdlib>
#include <oneapi/dnnl/dnnl.hpp>

#include "backends/cpu/onednn_kernels.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "generic";
  }
}

/// Whether the CPU itself has AVX512-BF16 (CPUID leaf 7 subleaf 1, EAX bit
/// 5) or AMX-BF16 (leaf 7 subleaf 0, EDX bit 22). (cpuid, not
/// __builtin_cpu_supports: clang, which builds the fuzz targets, knows no
/// "amx-bf16" there.)
bool cpu_has_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  bool has = false;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) has = (d >> 22) & 1u;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) has = has || ((a >> 5) & 1u);
  return has;
}

}  // namespace

std::string bf16_unavailable() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  const unsigned bf16 = unsigned(dnnl::cpu_isa::avx512_core_bf16);
  if ((unsigned(isa) & bf16) == bf16) return "";
  // The CPU has them but oneDNN does not use them: its ISA is capped
  // (DNNL_MAX_CPU_ISA, which oneDNN reads itself).
  const bool capped = cpu_has_bf16();
  return std::string(
             "precision bf16 needs a CPU with AVX512-BF16 (avx512_bf16) or AMX-BF16 "
             "(amx_bf16); this one runs oneDNN's ") +
         isa_name(isa) + " kernels" +
         (capped ? std::string(" (capped by DNNL_MAX_CPU_ISA)") : std::string()) +
         ", without either (shoal does not emulate bf16: compile with precision f32)";
}

bool runs_bf16(const program::Instruction& ins) {
  return ins.attrs.s(kPrecisionAttr, "") == "bf16";
}

int assign_precision(program::ProgramData& p, Precision precision,
                     const std::function<void(const std::string&)>& log) {
  if (precision == Precision::f32) return 0;
  if (precision != Precision::bf16)
    throw Error(ErrorKind::invalid_argument,
                std::string("unknown precision '") + precision_name(precision) + "'");
  const std::string missing = bf16_unavailable();
  if (!missing.empty()) throw Error(ErrorKind::unsupported, missing);
  int marked = 0, candidates = 0;
  for (program::Instruction& ins : p.instructions) {
    if (ins.op != "Conv" && ins.op != "Gemm" && ins.op != "MatMul") continue;
    if (ins.inputs.size() < 2 || ins.outputs.size() != 1) continue;
    bool f32 = !has_channel_scale(ins);
    for (int k = 0; k < 2; ++k) {
      const int32_t t = ins.inputs[size_t(k)];
      f32 =
          f32 && t >= 0 && size_t(t) < p.tensors.size() && p.tensors[size_t(t)].dtype == DType::f32;
    }
    ++candidates;
    if (!f32) continue;
    ins.attrs.set(kPrecisionAttr, std::string("bf16"));
    ++marked;
  }
  if (log)
    log("precision bf16: " + std::to_string(marked) + " of " + std::to_string(candidates) +
        " Conv/Gemm/MatMul layers (other ops stay f32)");
  return marked;
}

}  // namespace shoal::cpu
