// Run-time choice of the SIMD instruction set for the kernels that have vector paths.
//
// The core is built for the portable baseline (x86-64 without AVX, or any other CPU); the vector
// kernels are compiled for AVX2 or AVX-512 with per-function target attributes (GCC and Clang on
// x86-64) and chosen here, once per call, from what the CPU reports. Elsewhere, or with another
// compiler, only the scalar path exists. The level can be lowered (never raised above what the
// CPU has), so that the paths can be compared with each other on one machine.
#pragma once

#include <atomic>
#include <stdexcept>
#include <string>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define VOXSCALE_X86_DISPATCH 1
#include <immintrin.h>
#define VOXSCALE_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define VOXSCALE_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))
#else
#define VOXSCALE_X86_DISPATCH 0
#endif

namespace voxscale {

enum class SimdLevel : int { scalar = 0, avx2 = 1, avx512 = 2 };

inline const char* simd_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::avx2: return "avx2";
    case SimdLevel::avx512: return "avx512";
    default: return "scalar";
  }
}

inline SimdLevel simd_from_name(const std::string& name) {
  if (name == "scalar") return SimdLevel::scalar;
  if (name == "avx2") return SimdLevel::avx2;
  if (name == "avx512") return SimdLevel::avx512;
  throw std::invalid_argument("SIMD level must be 'scalar', 'avx2' or 'avx512', not '" + name +
                              "'");
}

/// The best level this CPU supports (AVX2 with FMA; AVX-512 needs its F, DQ and VL subsets; the
/// AVX-512 level also runs the AVX2 kernels where a kernel has no AVX-512 path).
inline SimdLevel detected_simd() {
#if VOXSCALE_X86_DISPATCH
  static const SimdLevel level = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
      return SimdLevel::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdLevel::avx2;
    return SimdLevel::scalar;
  }();
  return level;
#else
  return SimdLevel::scalar;
#endif
}

namespace detail {
inline std::atomic<int>& simd_ceiling() {
  static std::atomic<int> ceiling{int(SimdLevel::avx512)};
  return ceiling;
}
}  // namespace detail

/// The level the kernels use: the detected one, capped by set_simd_limit.
inline SimdLevel active_simd() {
  const int cap = detail::simd_ceiling().load(std::memory_order_relaxed);
  const int have = int(detected_simd());
  return SimdLevel(have < cap ? have : cap);
}

/// Caps the level for every later kernel call (process-wide); returns the previous cap.
inline SimdLevel set_simd_limit(SimdLevel cap) {
  return SimdLevel(detail::simd_ceiling().exchange(int(cap)));
}

}  // namespace voxscale
