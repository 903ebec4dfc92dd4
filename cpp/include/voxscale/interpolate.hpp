// Interpolation of a map at arbitrary points and resampling through an affine transform.
//
// Two orders, both defined on the index domain [0, n-1] of every axis; a point outside it gets
// the fill value (and a zero gradient) and is flagged outside, as ChimeraX fitmap does:
//   order 1  trilinear interpolation of the samples;
//   order 3  cubic B-spline interpolation of *spline coefficients* (see spline_prefilter), the
//            same interpolant as scipy.ndimage with order=3, mode='mirror'. It reproduces the
//            samples exactly, is C2-continuous and far more accurate between samples than
//            trilinear, which matters for fitting and for the voxel-scale scan.
#pragma once

#include <cmath>
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "grid.hpp"
#include "interpolate_simd.hpp"
#include "simd.hpp"
#include "threads.hpp"

namespace voxscale {

namespace detail {

// Index of sample i of an axis of length n extended by mirror symmetry about its end samples
// (d c b | a b c d | c b a), periodic with period 2(n-1).
inline std::ptrdiff_t mirror_index(std::ptrdiff_t i, std::ptrdiff_t n) {
  if (i >= 0 && i < n) return i;  // the common case, without a division
  if (n == 1) return 0;
  const std::ptrdiff_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

constexpr double kSplinePole = -0.267949192431122706472553658494;  // sqrt(3) - 2

// In-place cubic B-spline prefilter of `w` interleaved lines of length n:
// sample k of line x lives at buf[k * w + x]. Mirror boundary conditions (Unser 1999).
// `init` is scratch for w values (the caller's, so that nothing is allocated here).
inline void spline_filter_block(double* buf, std::size_t n, std::size_t w, double* init) {
  if (n < 2) return;
  const double z = kSplinePole;
  const double gain = (1.0 - z) * (1.0 - 1.0 / z);
  for (std::size_t i = 0; i < n * w; ++i) buf[i] *= gain;
  // Causal initialisation: a truncated sum converges to double precision after ~28 terms;
  // shorter lines use the exact mirror-symmetric sum.
  const std::size_t horizon = 30;
  std::fill(init, init + w, 0.0);
  if (n > horizon) {
    double zk = 1.0;
    for (std::size_t k = 0; k < horizon; ++k, zk *= z)
      for (std::size_t x = 0; x < w; ++x) init[x] += zk * buf[k * w + x];
  } else {
    const double zn = std::pow(z, double(n - 1));
    const double z2n = zn * zn;
    double zk = z, z2 = zn * zn / z;  // z^k and z^(2n-2-k) for k = 1
    for (std::size_t x = 0; x < w; ++x) init[x] = buf[x] + zn * buf[(n - 1) * w + x];
    for (std::size_t k = 1; k + 1 < n; ++k) {
      for (std::size_t x = 0; x < w; ++x) init[x] += (zk + z2) * buf[k * w + x];
      zk *= z;
      z2 /= z;
    }
    for (std::size_t x = 0; x < w; ++x) init[x] /= (1.0 - z2n);
  }
  for (std::size_t x = 0; x < w; ++x) buf[x] = init[x];
  for (std::size_t k = 1; k < n; ++k)
    for (std::size_t x = 0; x < w; ++x) buf[k * w + x] += z * buf[(k - 1) * w + x];
  const double last = z / (z * z - 1.0);
  for (std::size_t x = 0; x < w; ++x)
    buf[(n - 1) * w + x] = last * (buf[(n - 1) * w + x] + z * buf[(n - 2) * w + x]);
  for (std::size_t k = n - 1; k-- > 0;)
    for (std::size_t x = 0; x < w; ++x)
      buf[k * w + x] = z * (buf[(k + 1) * w + x] - buf[k * w + x]);
}

// Weights of the 2 (linear) or 4 (cubic) samples of one axis around fractional index t,
// their derivatives, and the (mirrored) sample indices. Every caller has put t onto the
// domain [0, n - 1], where truncation is the floor: std::floor is a libm call in the baseline
// x86-64 build (no SSE4.1 rounding), about 7 % of a cubic fit-point score with gradients.
template <int Order>
struct AxisWeights {
  static constexpr int kTaps = Order == 1 ? 2 : 4;
  double w[kTaps], dw[kTaps];
  std::ptrdiff_t idx[kTaps];

  void set(double t, std::ptrdiff_t n) {
    if constexpr (Order == 1) {
      std::ptrdiff_t i0 = static_cast<std::ptrdiff_t>(t);
      if (i0 > n - 2) i0 = n - 2;
      if (i0 < 0) i0 = 0;  // n == 1
      const double f = t - double(i0);
      w[0] = 1.0 - f; w[1] = f;
      dw[0] = -1.0; dw[1] = 1.0;
      idx[0] = i0; idx[1] = n > 1 ? i0 + 1 : 0;
      if (n == 1) { w[0] = 1.0; w[1] = 0.0; dw[0] = dw[1] = 0.0; }
    } else {
      const std::ptrdiff_t i0 = static_cast<std::ptrdiff_t>(t);
      cubic_weights<true>(t - double(i0), w, dw);
      for (int a = 0; a < 4; ++a) idx[a] = mirror_index(i0 - 1 + a, n);
    }
  }
};

// Points this close to the domain (in voxels) count as inside: a map's own voxel positions,
// computed as (p - origin) / voxel, can land a few ulps beyond the last index.
constexpr double kEdgeTolerance = 1e-6;

// Clamps a fractional index within kEdgeTolerance of the domain [0, n-1] into it; returns false
// (leaving f unchanged) if it is farther out or NaN.
inline bool clamp_to_domain(double& f, std::size_t n) {
  const double top = double(n - 1);
  if (!(f >= -kEdgeTolerance && f <= top + kEdgeTolerance)) return false;
  f = f < 0.0 ? 0.0 : (f > top ? top : f);
  return true;
}

inline bool inside_domain(double& fx, double& fy, double& fz, const GridView<float>& g) {
  return clamp_to_domain(fx, g.nx) && clamp_to_domain(fy, g.ny) && clamp_to_domain(fz, g.nz);
}

// Value (and, with Grad, derivatives in index units) at fractional index (fx, fy, fz), which
// must lie inside the domain. `simd` (resolved once by the caller) selects the vector path of
// cubic interpolation for points whose taps need no mirroring.
template <int Order, bool Grad>
inline double evaluate(const GridView<float>& g, double fx, double fy, double fz, double* grad,
                       SimdLevel simd = SimdLevel::scalar) {
  (void)simd;  // no vector path for Order 1, nor without x86 dispatch
#if VOXSCALE_X86_DISPATCH
  if constexpr (Order == 3) {
    double value;
    if (simd != SimdLevel::scalar &&
        cubic_interior_point_avx2<Grad>(g.data, std::ptrdiff_t(g.nx), std::ptrdiff_t(g.ny),
                                        std::ptrdiff_t(g.nz), fx, fy, fz, grad, value))
      return value;
  }
#endif
  AxisWeights<Order> wx, wy, wz;
  wx.set(fx, std::ptrdiff_t(g.nx));
  wy.set(fy, std::ptrdiff_t(g.ny));
  wz.set(fz, std::ptrdiff_t(g.nz));
  constexpr int T = AxisWeights<Order>::kTaps;
  double v = 0.0, gx = 0.0, gy = 0.0, gz = 0.0;
  for (int c = 0; c < T; ++c) {
    double ty = 0.0, tdx = 0.0, tdy = 0.0;
    for (int b = 0; b < T; ++b) {
      const float* row = g.data + (std::size_t(wz.idx[c]) * g.ny + std::size_t(wy.idx[b])) * g.nx;
      double sx = 0.0, sdx = 0.0;
      for (int a = 0; a < T; ++a) {
        const double s = row[wx.idx[a]];
        sx += wx.w[a] * s;
        if constexpr (Grad) sdx += wx.dw[a] * s;
      }
      ty += wy.w[b] * sx;
      if constexpr (Grad) { tdx += wy.w[b] * sdx; tdy += wy.dw[b] * sx; }
    }
    v += wz.w[c] * ty;
    if constexpr (Grad) { gx += wz.w[c] * tdx; gy += wz.w[c] * tdy; gz += wz.dw[c] * ty; }
  }
  if constexpr (Grad) { grad[0] = gx; grad[1] = gy; grad[2] = gz; }
  return v;
}

inline void check_order(int order) {
  if (order != 1 && order != 3)
    throw std::invalid_argument("order must be 1 (trilinear) or 3 (cubic B-spline)");
}

inline void check_grid(const GridView<float>& g, const char* name) {
  if (g.data == nullptr || g.nx == 0 || g.ny == 0 || g.nz == 0)
    throw std::invalid_argument(std::string(name) + ": empty grid");
}

}  // namespace detail

/// Converts samples to cubic B-spline coefficients in place (mirror boundaries), so that order-3
/// interpolation of the result passes through the original samples. Equivalent to
/// scipy.ndimage.spline_filter(order=3, mode='mirror'); arithmetic in double.
inline void spline_prefilter(float* data, std::size_t nx, std::size_t ny, std::size_t nz,
                             int nthreads) {
  const int nt = resolve_threads(nthreads);
  // One scratch block per thread, allocated before the parallel regions (see threads.hpp): the
  // lines of the largest of the three passes, then spline_filter_block's `init` (at most nx
  // values), padded by a cache line so that threads do not share one.
  const std::size_t lines = std::max({nx, nx * ny, nx * nz});
  const std::size_t per_thread = lines + nx + 8;
  std::vector<double> scratch(per_thread * thread_slots(nt));
  auto block = [&] { return scratch.data() + per_thread * std::size_t(thread_index()); };
  // x: contiguous lines, one at a time.
#pragma omp parallel num_threads(nt)
  {
    double* buf = block();
#pragma omp for schedule(static)
    for (std::ptrdiff_t line = 0; line < std::ptrdiff_t(ny * nz); ++line) {
      float* p = data + std::size_t(line) * nx;
      for (std::size_t i = 0; i < nx; ++i) buf[i] = p[i];
      detail::spline_filter_block(buf, nx, 1, buf + nx);
      for (std::size_t i = 0; i < nx; ++i) p[i] = float(buf[i]);
    }
  }
  // y: for each z, the ny rows of the slab are filtered together (vectorised over x).
#pragma omp parallel num_threads(nt)
  {
    double* buf = block();
#pragma omp for schedule(static)
    for (std::ptrdiff_t iz = 0; iz < std::ptrdiff_t(nz); ++iz) {
      float* p = data + std::size_t(iz) * ny * nx;
      for (std::size_t i = 0; i < nx * ny; ++i) buf[i] = p[i];
      detail::spline_filter_block(buf, ny, nx, buf + nx * ny);
      for (std::size_t i = 0; i < nx * ny; ++i) p[i] = float(buf[i]);
    }
  }
  // z: for each y, the nz rows at that y are gathered, filtered together and scattered back.
#pragma omp parallel num_threads(nt)
  {
    double* buf = block();
#pragma omp for schedule(static)
    for (std::ptrdiff_t iy = 0; iy < std::ptrdiff_t(ny); ++iy) {
      for (std::size_t iz = 0; iz < nz; ++iz) {
        const float* p = data + (iz * ny + std::size_t(iy)) * nx;
        for (std::size_t ix = 0; ix < nx; ++ix) buf[iz * nx + ix] = p[ix];
      }
      detail::spline_filter_block(buf, nz, nx, buf + nx * nz);
      for (std::size_t iz = 0; iz < nz; ++iz) {
        float* p = data + (iz * ny + std::size_t(iy)) * nx;
        for (std::size_t ix = 0; ix < nx; ++ix) p[ix] = float(buf[iz * nx + ix]);
      }
    }
  }
}

/// Interpolates `grid` (samples for order 1, spline coefficients for order 3) at `n` points
/// given as (x, y, z) in Å, row-major (n, 3).
///
/// values[i]    interpolated value, or `fill` outside the domain;
/// gradients    optional (n, 3) derivatives d/dx, d/dy, d/dz in value per Å (0 outside);
/// inside       optional flags, 1 where the point lies in the domain.
inline void interpolate_points(const GridView<float>& grid, const GridGeometry& geom,
                               const double* points, std::size_t n, int order, float fill,
                               float* values, float* gradients, std::uint8_t* inside,
                               int nthreads) {
  detail::check_order(order);
  detail::check_grid(grid, "grid");
  geom.validate("grid");
  const int nt = resolve_threads(nthreads, n, 16384);
  (void)nt;
  const SimdLevel simd = active_simd();
  const double inv[3] = {1.0 / geom.voxel[0], 1.0 / geom.voxel[1], 1.0 / geom.voxel[2]};
#pragma omp parallel for schedule(static) num_threads(nt)
  for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) {
    const double* p = points + 3 * i;
    double fx = (p[0] - geom.origin[0]) * inv[0];
    double fy = (p[1] - geom.origin[1]) * inv[1];
    double fz = (p[2] - geom.origin[2]) * inv[2];
    const bool in = detail::inside_domain(fx, fy, fz, grid);
    if (inside) inside[i] = in ? 1 : 0;
    double g[3] = {0.0, 0.0, 0.0};
    double v = fill;
    if (in) {
      if (gradients) {
        v = order == 1 ? detail::evaluate<1, true>(grid, fx, fy, fz, g)
                       : detail::evaluate<3, true>(grid, fx, fy, fz, g, simd);
      } else {
        v = order == 1 ? detail::evaluate<1, false>(grid, fx, fy, fz, nullptr)
                       : detail::evaluate<3, false>(grid, fx, fy, fz, nullptr, simd);
      }
    }
    values[i] = float(v);
    if (gradients)
      for (int a = 0; a < 3; ++a) gradients[3 * i + a] = float(g[a] * inv[a]);
  }
}

namespace detail {

// Resampled points this close to the source's domain (in voxels) count as inside and take
// the value at the nearest point of it: a pose fitted to ~1e-4 voxel (a map against itself)
// must not cut off a box's outer planes (EMD-5170 against itself lost its last plane, R 6 %),
// and 0.01 voxel changes a value by at most 1 % of one voxel's difference.
constexpr double kResampleEdgeTolerance = 1e-2;

// The range [lo, hi] of steps i for which start + step*i lies in [-tol, top + tol] (tol =
// kResampleEdgeTolerance); empty when lo > hi. Floating-point rounding is monotonic in i, so
// checking the two ends makes the range exact.
inline void clip_row_axis(double start, double step, double top, std::ptrdiff_t& lo,
                          std::ptrdiff_t& hi) {
  constexpr double tol = kResampleEdgeTolerance;
  auto near_domain = [&](double f) { return f >= -tol && f <= top + tol; };
  if (step == 0.0) {
    if (!near_domain(start)) hi = lo - 1;
    return;
  }
  double a = (-tol - start) / step, b = (top + tol - start) / step;
  if (a > b) std::swap(a, b);
  const double dlo = std::ceil(a), dhi = std::floor(b);
  if (dlo > double(lo)) lo = dlo > double(hi) + 1.0 ? hi + 1 : std::ptrdiff_t(dlo);
  if (dhi < double(hi)) hi = dhi < double(lo) - 1.0 ? lo - 1 : std::ptrdiff_t(dhi);
  auto inside = [&](std::ptrdiff_t i) { return near_domain(start + step * double(i)); };
  while (lo <= hi && !inside(lo)) ++lo;
  while (hi >= lo && !inside(hi)) --hi;
}

// How far (in samples) the reads of a row's point lie from the corner (x+reach, y+reach,
// z+reach) of its taps that a later row, (rows_y, rows_z) output rows away, reads first
// (reach 1 for trilinear, 2 for cubic). The rotated reads of a row cross source lines
// diagonally, which the hardware prefetchers do not follow, so without this every first touch
// of a line waits for memory (about half the time of a 256³ resample). Rounding to whole
// voxels is enough: a prefetch fetches a whole line.
inline std::int64_t prefetch_offset(const Affine& index_map, double rows_y, double rows_z,
                                    std::int64_t stride_y, std::int64_t stride_z,
                                    std::int64_t reach, std::size_t n_samples) {
  // in double, so that no transform (any finite matrix is allowed) can overflow an integer;
  // an offset beyond the source is no use as a hint: none then
  const auto d = [&](int a) {
    return std::round(index_map.m[3 * a + 1] * rows_y + index_map.m[3 * a + 2] * rows_z) +
           double(reach);
  };
  const double offset = d(0) + d(1) * double(stride_y) + d(2) * double(stride_z);
  return std::fabs(offset) < double(n_samples) ? std::int64_t(offset) : 0;
}

// 32.32 fixed point of a coordinate or step in voxels (|v| < kFixedLimit).
inline std::int64_t to_fixed(double v) { return std::int64_t(std::llround(v * 4294967296.0)); }

// 32.32 fixed point holds |v| < 2^31 voxels: rows whose steps are larger (at most one point of
// such a row lies in any grid) take the general path. The steps past a row's last point may
// leave that range; they wrap (unsigned, or vector adds) and are never used.
constexpr double kFixedLimit = 2147483648.0;

// Trilinear interpolation along one output row, every point known to be inside a source whose
// axes all have at least two samples; `start` (the coordinate of point lo) and `step` in
// 32.32 fixed point: one integer add per axis and point instead of float-to-int conversions,
// which dominate this loop (the rounding drift is below 1e-6 voxel over 10^4 steps). Indices
// are clamped to the valid cells, so no rounding can ever read outside the source.
inline void trilinear_row(const GridView<float>& src, const std::int64_t* start,
                          const std::int64_t* step, std::ptrdiff_t lo, std::ptrdiff_t hi,
                          std::int64_t prefetch, float* __restrict out) {
  const float* __restrict data = src.data;
  const std::int64_t mx = std::int64_t(src.nx) - 2, my = std::int64_t(src.ny) - 2,
                     mz = std::int64_t(src.nz) - 2;
  const std::int64_t dy = std::int64_t(src.nx), dz = std::int64_t(src.nx * src.ny);
  constexpr float kInv = 1.0f / 4294967296.0f;
  // unsigned adds: the step after the last point may wrap, which must not be undefined
  std::uint64_t X = std::uint64_t(start[0]), Y = std::uint64_t(start[1]),
                Z = std::uint64_t(start[2]);
  const std::uint64_t DX = std::uint64_t(step[0]), DY = std::uint64_t(step[1]),
                      DZ = std::uint64_t(step[2]);
  // Cell index and fraction, clamped to the cells [0, m] and the fractions [0, 1]: at the upper
  // edge (and up to kResampleEdgeTolerance beyond it) the fraction is 1.
  auto split = [](std::uint64_t u, std::int64_t m, std::int64_t& cell) {
    const std::int64_t v = std::int64_t(u);
    cell = v >> 32;
    if (cell < 0) { cell = 0; return 0.0f; }
    if (cell > m) { cell = m; return 1.0f; }
    return float(v - (cell << 32)) * kInv;
  };
  for (std::ptrdiff_t ix = lo; ix <= hi; ++ix, X += DX, Y += DY, Z += DZ) {
    std::int64_t x0, y0, z0;
    const float tx = split(X, mx, x0), ty = split(Y, my, y0), tz = split(Z, mz, z0);
    const float* p = data + z0 * dz + y0 * dy + x0;
    prefetch_source(p, prefetch);
    const float c00 = p[0] + tx * (p[1] - p[0]);
    const float c10 = p[dy] + tx * (p[dy + 1] - p[dy]);
    const float c01 = p[dz] + tx * (p[dz + 1] - p[dz]);
    const float c11 = p[dz + dy] + tx * (p[dz + dy + 1] - p[dz + dy]);
    const float c0 = c00 + ty * (c10 - c00), c1 = c01 + ty * (c11 - c01);
    out[ix] = c0 + tz * (c1 - c0);
  }
}

}  // namespace detail

/// Resamples `src` onto an output grid (onx, ony, onz) through `index_map`, which takes an
/// output index (ix, iy, iz) to a fractional source index. Output points outside the source
/// domain get `fill`.
///
/// The output is processed in tiles of whole rows, 2 rows by 2 planes: the rows of a tile read
/// neighbouring source lines, so the source region a tile reads stays in cache whatever the
/// rotation, and the rows are long enough that the work per row (the part of it inside the
/// source, below) is small against its points. (Measured on a 256³ map rotated 20°, 2
/// threads: 0.046 s with tiles of 64 x 16 x 16 voxels, 0.031 s with these.) Along a row the
/// source coordinate moves by the first column of the matrix, so the part of the row inside
/// the source is found once and the inner loop needs no bounds tests.
inline void resample_affine(const GridView<float>& src, int order, const Affine& index_map,
                            float* out, std::size_t onx, std::size_t ony, std::size_t onz,
                            float fill, int nthreads) {
  detail::check_order(order);
  detail::check_grid(src, "source");
  if (!index_map.finite()) throw std::invalid_argument("transform must be finite");
  const int nt = resolve_threads(nthreads);
  (void)nt;
  constexpr std::size_t kTileRows = 2, kTilePlanes = 2;
  const std::size_t nty = (ony + kTileRows - 1) / kTileRows,
                    ntz = (onz + kTilePlanes - 1) / kTilePlanes;
  const double sx = index_map.m[0], sy = index_map.m[3], sz = index_map.m[6];
  const double hx = double(src.nx - 1), hy = double(src.ny - 1), hz = double(src.nz - 1);
  // rows stepped in fixed point (trilinear_row): every axis with a cell, steps not absurd
  const bool fast_linear = order == 1 && src.nx > 1 && src.ny > 1 && src.nz > 1 &&
                           std::fabs(sx) < detail::kFixedLimit &&
                           std::fabs(sy) < detail::kFixedLimit &&
                           std::fabs(sz) < detail::kFixedLimit;
  // The level is read once, before the parallel region.
  const SimdLevel simd = active_simd();
  // The trilinear vector paths index in 32 bits. AVX2 places a row's points in double from
  // its start, not in the scalar path's fixed point; the two agree to about 2^-33 voxel per
  // point of the row only while step × row length stays below 2^20 voxels. Rows of larger
  // steps, which hold a point or two of the source, take the scalar path.
  const double row_reach =
      double(onx) * std::max({std::fabs(sx), std::fabs(sy), std::fabs(sz)});
  SimdLevel linear_simd = src.size() < (std::size_t(1) << 31) ? simd : SimdLevel::scalar;
  if (linear_simd == SimdLevel::avx2 && !(row_reach < 1048576.0))
    linear_simd = SimdLevel::scalar;
  const detail::TrilinearSource lin{src.data,
                                    std::int32_t(src.nx) - 2,
                                    std::int32_t(src.ny) - 2,
                                    std::int32_t(src.nz) - 2,
                                    std::int32_t(src.nx),
                                    std::int32_t(src.nx * src.ny)};
  const double step[3] = {sx, sy, sz};
  const std::int64_t fixed_step[3] = {
      fast_linear ? detail::to_fixed(sx) : 0, fast_linear ? detail::to_fixed(sy) : 0,
      fast_linear ? detail::to_fixed(sz) : 0};
  // What a row prefetches for (see prefetch_offset): the same row two planes on, the first
  // reads of the next band of tiles. Measured against one plane on (the next row of the same
  // tile, whose lines the tile has mostly read already) and rows ahead in the same plane, in
  // alternating C++ runs on 2 threads: 256³ at 20° 22.1–22.8 ms against 23.9–24.1, at 45°
  // 24.3–24.5 against 29.4–29.6, at 70° 24.8–25.1 against 25.8–25.9, at 0° the same; 400³ at
  // 20° and 45° 84 and 90 ms against 92 and 107. Three planes on is no better.
  const std::int64_t ahead = detail::prefetch_offset(
      index_map, 0.0, 2.0, std::int64_t(src.nx), std::int64_t(src.nx * src.ny),
      order == 3 ? 2 : 1, src.size());
#pragma omp parallel for schedule(dynamic, 4) num_threads(nt)
  for (std::ptrdiff_t tile = 0; tile < std::ptrdiff_t(nty * ntz); ++tile) {
    const std::size_t ty = std::size_t(tile) % nty, tz = std::size_t(tile) / nty;
    const std::size_t y_end = std::min(ony, (ty + 1) * kTileRows);
    const std::size_t z_end = std::min(onz, (tz + 1) * kTilePlanes);
    for (std::size_t iz = tz * kTilePlanes; iz < z_end; ++iz) {
      for (std::size_t iy = ty * kTileRows; iy < y_end; ++iy) {
        const auto start = index_map.apply(0.0, double(iy), double(iz));
        float* o = out + (iz * ony + iy) * onx;
        std::ptrdiff_t lo = 0, hi = std::ptrdiff_t(onx) - 1;
        detail::clip_row_axis(start[0], sx, hx, lo, hi);
        detail::clip_row_axis(start[1], sy, hy, lo, hi);
        detail::clip_row_axis(start[2], sz, hz, lo, hi);
        if (lo > hi) {
          std::fill(o, o + onx, fill);
          continue;
        }
        std::fill(o, o + lo, fill);
        std::fill(o + hi + 1, o + onx, fill);
        if (fast_linear) {
#if VOXSCALE_X86_DISPATCH
          if (linear_simd == SimdLevel::avx2) {
            detail::trilinear_row_avx2(lin, start.data(), step, lo, hi, ahead, o);
            continue;
          }
#endif
          // the points inside the source are within kFixedLimit of it
          const std::int64_t first[3] = {detail::to_fixed(start[0] + sx * double(lo)),
                                         detail::to_fixed(start[1] + sy * double(lo)),
                                         detail::to_fixed(start[2] + sz * double(lo))};
#if VOXSCALE_X86_DISPATCH
          if (linear_simd == SimdLevel::avx512) {
            std::ptrdiff_t interior_lo, interior_hi;
            detail::interior_range(lin, first, fixed_step, lo, hi, interior_lo, interior_hi);
            detail::trilinear_row_avx512(lin, first, fixed_step, lo, hi, interior_lo,
                                         interior_hi, ahead, o);
            continue;
          }
#endif
          detail::trilinear_row(src, first, fixed_step, lo, hi, ahead, o);
          continue;
        }
#if VOXSCALE_X86_DISPATCH
        if (order == 3 && simd != SimdLevel::scalar) {
          detail::cubic_row_avx2(src.data, std::ptrdiff_t(src.nx), std::ptrdiff_t(src.ny),
                                 std::ptrdiff_t(src.nz), start.data(), step, lo, hi, ahead, o,
                                 [&](double fx, double fy, double fz) {
                                   return detail::evaluate<3, false>(src, fx, fy, fz, nullptr);
                                 });
          continue;
        }
#endif
        for (std::ptrdiff_t ix = lo; ix <= hi; ++ix) {
          double fx = start[0] + sx * double(ix);
          double fy = start[1] + sy * double(ix);
          double fz = start[2] + sz * double(ix);
          // onto the domain: clip_row_axis let points within kResampleEdgeTolerance in
          fx = std::min(std::max(fx, 0.0), double(src.nx - 1));
          fy = std::min(std::max(fy, 0.0), double(src.ny - 1));
          fz = std::min(std::max(fz, 0.0), double(src.nz - 1));
          if (order == 3)
            detail::prefetch_source(src.data + (std::size_t(fz) * src.ny + std::size_t(fy)) *
                                                   src.nx + std::size_t(fx), ahead);
          o[ix] = float(order == 1 ? detail::evaluate<1, false>(src, fx, fy, fz, nullptr)
                                   : detail::evaluate<3, false>(src, fx, fy, fz, nullptr,
                                                                simd));
        }
      }
    }
  }
}

}  // namespace voxscale
