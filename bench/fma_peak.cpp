// fma_peak: measures one core's fp32 FMA peak in GFLOP/s.
//
// A register-blocked loop of independent FMAs (enough accumulators to cover
// the FMA latency times the number of FMA pipes), AVX-512 where the CPU has
// it, else AVX2+FMA, else plain SSE multiply-adds. The thread is pinned to
// the first core this process may use; the best of several trials is kept.
//
//   fma_peak [--json] [--seconds S] [--isa avx512|avx2|sse]
//
// Prints e.g. "fp32 FMA peak, one core (avx512, core 0): 211.3 GFLOP/s".
#include <immintrin.h>
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// The accumulators start at distinct values so that the compiler cannot
// merge their (identical) update chains into one.
#define SHOAL_FMA_STEP(i) c##i = FMA(c##i, a, b);
#define SHOAL_FMA_12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define SHOAL_FMA_24(X) \
  SHOAL_FMA_12(X) X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)

// 24 accumulators (of 32 registers) x 16 lanes x 2 flops per iteration: more
// than latency x pipes needs, and the loop overhead is spread thinner.
// Returns a checksum so the work cannot be dropped.
__attribute__((target("avx512f"))) float loop_avx512(long iters) {
#define FMA _mm512_fmadd_ps
#define SHOAL_FMA_INIT(i) __m512 c##i = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  SHOAL_FMA_24(SHOAL_FMA_INIT)
  for (long i = 0; i < iters; ++i) {
    SHOAL_FMA_24(SHOAL_FMA_STEP)
  }
  float out[16], sum = 0;
#define SHOAL_FMA_SUM(i) _mm512_storeu_ps(out, c##i); for (float v : out) sum += v;
  SHOAL_FMA_24(SHOAL_FMA_SUM)
#undef SHOAL_FMA_INIT
#undef FMA
  return sum;
}

// 12 accumulators x 8 lanes x 2 flops per iteration.
__attribute__((target("avx2,fma"))) float loop_avx2(long iters) {
#define FMA _mm256_fmadd_ps
#define SHOAL_FMA_INIT(i) __m256 c##i = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  SHOAL_FMA_12(SHOAL_FMA_INIT)
  for (long i = 0; i < iters; ++i) {
    SHOAL_FMA_12(SHOAL_FMA_STEP)
  }
  float out[8], sum = 0;
#undef SHOAL_FMA_SUM
#define SHOAL_FMA_SUM(i) _mm256_storeu_ps(out, c##i); for (float v : out) sum += v;
  SHOAL_FMA_12(SHOAL_FMA_SUM)
#undef SHOAL_FMA_SUM
#undef SHOAL_FMA_INIT
#undef FMA
  return sum;
}

// 8 accumulators x 4 lanes x 2 flops (a multiply and an add) per iteration.
float loop_sse(long iters) {
  __m128 a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-7f);
  __m128 c[8];
  for (int i = 0; i < 8; ++i) c[i] = _mm_set1_ps(float(i) * 1e-3f);
  for (long i = 0; i < iters; ++i)
    for (__m128& v : c) v = _mm_add_ps(_mm_mul_ps(v, a), b);
  __m128 s = _mm_setzero_ps();
  for (__m128& v : c) s = _mm_add_ps(s, v);
  float out[4];
  _mm_storeu_ps(out, s);
  return out[0] + out[1] + out[2] + out[3];
}

struct Kernel {
  const char* isa;
  float (*run)(long);
  double flops_per_iter;
};

// The widest kernel the CPU runs, no wider than `limit` ("" = any).
Kernel pick_kernel(const std::string& limit) {
  __builtin_cpu_init();
  const bool any = limit.empty() || limit == "avx512";
  if (any && __builtin_cpu_supports("avx512f"))
    return {"avx512", loop_avx512, 24 * 16 * 2};
  if ((any || limit == "avx2") && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma"))
    return {"avx2", loop_avx2, 12 * 8 * 2};
  return {"sse", loop_sse, 8 * 4 * 2};
}

// Pins the calling thread to the first core it may use; returns that core.
int pin_first_core() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(c, &one);
    return sched_setaffinity(0, sizeof one, &one) == 0 ? c : -1;
  }
  return -1;
}

int usage() {
  std::fprintf(stderr,
               "usage: fma_peak [--json] [--seconds S] [--isa avx512|avx2|sse]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  double seconds = 1.0;  // total measuring time, about
  std::string isa;       // widest ISA to use; "" = the best available
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      char* end = nullptr;
      seconds = std::strtod(argv[++i], &end);
      if (*end != '\0' || !(seconds > 0 && seconds <= 60)) return usage();
    } else if (std::strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
      isa = argv[++i];
      if (isa != "avx512" && isa != "avx2" && isa != "sse") return usage();
    } else if (std::strcmp(argv[i], "-h") == 0 ||
               std::strcmp(argv[i], "--help") == 0) {
      std::printf(
          "fma_peak [--json] [--seconds S] [--isa avx512|avx2|sse]: one "
          "core's fp32 FMA peak (GFLOP/s)\n");
      return 0;
    } else {
      return usage();
    }
  }
  const int core = pin_first_core();
  const Kernel k = pick_kernel(isa);
  using Clock = std::chrono::steady_clock;

  // Calibrate to ~1/10 of the budget per trial, then keep the best trial.
  long iters = 1 << 16;
  for (;;) {
    const auto t0 = Clock::now();
    volatile float sink = k.run(iters);
    (void)sink;
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (s >= seconds / 20 || iters > (1L << 40)) break;
    iters *= 2;
  }
  double best = 0;
  for (int trial = 0; trial < 10; ++trial) {
    const auto t0 = Clock::now();
    volatile float sink = k.run(iters);
    (void)sink;
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (s > 0) best = std::max(best, double(iters) * k.flops_per_iter / s / 1e9);
  }
  if (json)
    std::printf("{\"gflops\": %.2f, \"isa\": \"%s\", \"core\": %d}\n", best,
                k.isa, core);
  else
    std::printf("fp32 FMA peak, one core (%s, core %d): %.1f GFLOP/s\n", k.isa,
                core, best);
  return 0;
}
