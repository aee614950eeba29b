// How many threads the CPU kernels' own OpenMP regions use.
#pragma once

namespace shoal::cpu {

/// The threads an OpenMP region of shoal's CPU kernels (native kernels, row
/// bands) uses for a team of `threads`. Under ThreadSanitizer one: TSan
/// cannot see libgomp's (uninstrumented) fork and barriers, so every team's
/// reads of data its caller wrote would look like races. The results of the
/// threaded partitions are checked by the kernel tests instead.
inline int team_threads(int threads) {
#if defined(__SANITIZE_THREAD__)
  (void)threads;
  return 1;
#else
  return threads;
#endif
}

}  // namespace shoal::cpu
