// Thread-count handling shared by every parallel kernel.
//
// Each kernel takes `nthreads` (0 = all available, which honours OMP_NUM_THREADS) and applies it
// to its own parallel region only; the global OpenMP setting is never changed.
#pragma once

#include <cstddef>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace voxscale {

/// True when the core was compiled with OpenMP.
constexpr bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

/// The number of threads a kernel uses for a requested `nthreads` (0 = all available).
/// Requests above kMaxThreads are clamped: a typo must not spawn a million threads.
constexpr int kMaxThreads = 256;

inline int resolve_threads(int nthreads) {
  if (nthreads < 0) throw std::invalid_argument("nthreads must be >= 0 (0 = all available)");
#ifdef _OPENMP
  const int n = nthreads == 0 ? omp_get_max_threads() : nthreads;
#else
  const int n = nthreads == 0 ? 1 : nthreads;  // still meaningful for pocketfft's thread pool
#endif
  return n < kMaxThreads ? n : kMaxThreads;
}

/// Threads for a kernel over `work` independent items: at most one per `min_per_thread` items,
/// so a small call does not pay for waking (or, on a loaded machine, waiting for) threads.
inline int resolve_threads(int nthreads, std::size_t work, std::size_t min_per_thread) {
  const int n = resolve_threads(nthreads);
  const std::size_t useful = work / (min_per_thread ? min_per_thread : 1) + 1;
  return useful < std::size_t(n) ? int(useful) : n;
}

// Nothing may be allocated inside a parallel region: a std::bad_alloc there cannot propagate and
// terminates the process. Kernels allocate per-thread scratch before the region, one slot for each
// of the `nt` threads they request (the runtime may start fewer, never more), and each thread
// uses slot thread_index().

/// Per-thread slots for a region run with num_threads(nt).
inline std::size_t thread_slots(int nt) { return has_openmp() ? std::size_t(nt) : 1; }

/// Index of the calling thread in the current parallel region (0 outside one).
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace voxscale
