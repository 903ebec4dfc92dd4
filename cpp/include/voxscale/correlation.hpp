// Pearson correlation about the mean (ChimeraX "correlation about mean"), sums in double.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "threads.hpp"

namespace voxscale {

/// Pearson correlation of a and b over n values, optionally weighted by w (w >= 0; nullptr for
/// unit weights). Two passes (means, then centred sums) for accuracy. Returns NaN when either
/// array has zero variance or the total weight is zero.
inline double pearson(const float* a, const float* b, const float* w, std::size_t n,
                      int nthreads) {
  const int nt = resolve_threads(nthreads, n, 65536);
  (void)nt;
  const std::ptrdiff_t m = std::ptrdiff_t(n);
  double sw = 0.0, sa = 0.0, sb = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : sw, sa, sb) num_threads(nt)
  for (std::ptrdiff_t i = 0; i < m; ++i) {
    const double wi = w ? double(w[i]) : 1.0;
    sw += wi;
    sa += wi * a[i];
    sb += wi * b[i];
  }
  if (!(sw > 0.0)) return std::numeric_limits<double>::quiet_NaN();
  const double ma = sa / sw, mb = sb / sw;
  double saa = 0.0, sbb = 0.0, sab = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : saa, sbb, sab) num_threads(nt)
  for (std::ptrdiff_t i = 0; i < m; ++i) {
    const double wi = w ? double(w[i]) : 1.0;
    const double da = a[i] - ma, db = b[i] - mb;
    saa += wi * da * da;
    sbb += wi * db * db;
    sab += wi * da * db;
  }
  if (!(saa > 0.0) || !(sbb > 0.0)) return std::numeric_limits<double>::quiet_NaN();
  return sab / std::sqrt(saa * sbb);
}

}  // namespace voxscale
