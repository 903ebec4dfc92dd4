// Resolution shells over the half-transform and per-shell sums of structure factors.
//
// The half-transform of an (nz, ny, nx) map has shape (nz, ny, nx/2 + 1) (see fft.hpp). In the
// planes h = 0 and, for even nx, h = nx/2, every reflection's Friedel mate is stored too; only
// one of each pair is counted (the one with the smaller linear (iz, iy) index), so that sums
// over the half-transform are sums over unique reflections. F(000) is never counted.
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "threads.hpp"

namespace voxscale {

/// Signed frequency of array index i along an axis of n samples (numpy.fft.fftfreq order).
inline std::ptrdiff_t fft_frequency(std::size_t i, std::size_t n) {
  return i < (n + 1) / 2 ? std::ptrdiff_t(i) : std::ptrdiff_t(i) - std::ptrdiff_t(n);
}

/// True when reflection (ix, iy, iz) of the half-transform is the representative of its
/// Friedel pair and not F(000).
inline bool is_unique_reflection(std::size_t ix, std::size_t iy, std::size_t iz, std::size_t nx,
                                 std::size_t ny, std::size_t nz) {
  const bool self_mated_plane = ix == 0 || (nx % 2 == 0 && ix == nx / 2);
  if (!self_mated_plane) return true;
  if (ix == 0 && iy == 0 && iz == 0) return false;
  const std::size_t my = (ny - iy) % ny, mz = (nz - iz) % nz;
  return iz * ny + iy <= mz * ny + my;
}

/// Shell index of every reflection of the half-transform of an (nz, ny, nx) map with box
/// lengths `cell` (a, b, c) in Å: shell j holds edges[j] <= |s| < edges[j+1], with |s| = 1/d
/// in Å⁻¹. Reflections outside all shells, F(000) and redundant Friedel mates get -1.
inline void shell_index(std::size_t nx, std::size_t ny, std::size_t nz, const double cell[3],
                        const double* edges, std::size_t nedges, std::int32_t* out,
                        int nthreads) {
  if (nx == 0 || ny == 0 || nz == 0) throw std::invalid_argument("map has an empty axis");
  for (int a = 0; a < 3; ++a)
    if (!(cell[a] > 0.0) || !std::isfinite(cell[a]))
      throw std::invalid_argument("cell lengths must be finite and > 0");
  if (nedges < 2) throw std::invalid_argument("edges needs at least two values");
  if (nedges - 1 > std::size_t(INT32_MAX)) throw std::invalid_argument("too many shells");
  for (std::size_t j = 0; j < nedges; ++j) {
    if (std::isnan(edges[j]) || edges[j] < 0.0)
      throw std::invalid_argument("edges must be >= 0 and not NaN");
    if (j > 0 && !(edges[j] > edges[j - 1]))
      throw std::invalid_argument("edges must increase strictly");
  }
  const int nt = resolve_threads(nthreads);
  (void)nt;
  const std::size_t hx = nx / 2 + 1;
  const double ia = 1.0 / cell[0], ib = 1.0 / cell[1], ic = 1.0 / cell[2];
#pragma omp parallel for schedule(static) num_threads(nt)
  for (std::ptrdiff_t row = 0; row < std::ptrdiff_t(ny * nz); ++row) {
    const std::size_t iy = std::size_t(row) % ny, iz = std::size_t(row) / ny;
    const double k = double(fft_frequency(iy, ny)) * ib, l = double(fft_frequency(iz, nz)) * ic;
    const double kl2 = k * k + l * l;
    std::int32_t* o = out + std::size_t(row) * hx;
    for (std::size_t ix = 0; ix < hx; ++ix) {
      const double h = double(ix) * ia;
      const double s = std::sqrt(h * h + kl2);
      std::int32_t shell = -1;
      if (s >= edges[0] && s < edges[nedges - 1] && is_unique_reflection(ix, iy, iz, nx, ny, nz))
        shell = std::int32_t(std::upper_bound(edges, edges + nedges, s) - edges - 1);
      o[ix] = shell;
    }
  }
}

/// Per-shell sums over one or two arrays of structure factors.
struct ShellSums {
  std::vector<std::int64_t> count;
  std::vector<double> sum_f1, sum_f2;        // Σ|F1|, Σ|F2|
  std::vector<double> sum_f1_sq, sum_f2_sq;  // Σ|F1|², Σ|F2|²
  std::vector<double> sum_abs_diff;          // Σ| |F1| − |F2| |  (amplitude difference)
  std::vector<double> sum_re_cross;          // Re Σ F1·conj(F2)

  explicit ShellSums(std::size_t nshells = 0)
      : count(nshells, 0), sum_f1(nshells, 0.0), sum_f2(nshells, 0.0), sum_f1_sq(nshells, 0.0),
        sum_f2_sq(nshells, 0.0), sum_abs_diff(nshells, 0.0), sum_re_cross(nshells, 0.0) {}

  /// Adds the first count.size() shells of `o` (which may hold more).
  void add(const ShellSums& o) {
    for (std::size_t j = 0; j < count.size(); ++j) {
      count[j] += o.count[j];
      sum_f1[j] += o.sum_f1[j];
      sum_f2[j] += o.sum_f2[j];
      sum_f1_sq[j] += o.sum_f1_sq[j];
      sum_f2_sq[j] += o.sum_f2_sq[j];
      sum_abs_diff[j] += o.sum_abs_diff[j];
      sum_re_cross[j] += o.sum_re_cross[j];
    }
  }
};

/// Sums over the n entries of f1 (and f2, or nullptr) whose shell index lies in [0, nshells);
/// other indices are skipped. With f2 == nullptr its sums stay zero.
inline ShellSums shell_sums(const std::complex<float>* f1, const std::complex<float>* f2,
                            const std::int32_t* shell, std::size_t n, std::size_t nshells,
                            int nthreads) {
  const int nt = resolve_threads(nthreads);
  // Per-thread sums, allocated before the parallel region (see threads.hpp), each padded by a
  // cache line so that no two threads write to the same one.
  std::vector<ShellSums> partial(thread_slots(nt), ShellSums(nshells + 8));
#pragma omp parallel num_threads(nt)
  {
    ShellSums& local = partial[std::size_t(thread_index())];
#pragma omp for schedule(static) nowait
    for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) {
      const std::int32_t j = shell[i];
      if (j < 0 || std::size_t(j) >= nshells) continue;
      const std::complex<double> c1(f1[i]);
      const double a1 = std::sqrt(std::norm(c1));  // not std::abs: hypot is slow
      local.count[j] += 1;
      local.sum_f1[j] += a1;
      local.sum_f1_sq[j] += a1 * a1;
      if (f2) {
        const std::complex<double> c2(f2[i]);
        const double a2 = std::sqrt(std::norm(c2));
        local.sum_f2[j] += a2;
        local.sum_f2_sq[j] += a2 * a2;
        local.sum_abs_diff[j] += std::abs(a1 - a2);
        local.sum_re_cross[j] += c1.real() * c2.real() + c1.imag() * c2.imag();
      }
    }
  }
  // Combined in thread order so that a given nthreads always gives the same result (the slots of
  // threads the runtime did not start hold zeros, which change nothing).
  ShellSums total(nshells);
  for (const ShellSums& p : partial) total.add(p);
  return total;
}

}  // namespace voxscale
