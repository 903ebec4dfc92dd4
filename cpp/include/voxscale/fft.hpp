// Real-to-complex and complex-to-real 3-D FFTs of maps, through pocketfft.
//
// Convention (docs/method.md §2, the same as gemmi.transform_map_to_f_phi and CCP4 sfall):
//   F(h) = (V/N) Σ_x ρ(x) exp(+2πi h·x)      (map → structure factors)
//   ρ(x) = (1/V) Σ_h F(h) exp(−2πi h·x)      (structure factors → map)
// V is the box volume in Å³ and N the number of voxels, so a round trip is exact. A map of shape
// (nz, ny, nx) gives the half-transform (nz, ny, nx/2 + 1): h = ix >= 0 along x, and
// k, l = iy, iz taken modulo ny, nz (indices above n/2 are negative frequencies).
#pragma once

#include <algorithm>
#include <complex>
#include <cstddef>
#include <stdexcept>

// Plans are reused across calls of one length: pocketfft keeps the most recent 16 in a
// process-wide, mutex-guarded cache (its default, 0, would rebuild the twiddle tables on every
// transform). A program that includes pocketfft itself must define the same value.
#ifndef POCKETFFT_CACHE_SIZE
#define POCKETFFT_CACHE_SIZE 16
#endif
#include "pocketfft_hdronly.h"
#include "threads.hpp"

namespace voxscale {

/// Map → structure factors. `in` holds nz*ny*nx floats, `out` nz*ny*(nx/2+1) complex values;
/// `volume` is the box volume in Å³.
inline void map_to_sf(const float* in, std::complex<float>* out, std::size_t nx, std::size_t ny,
                      std::size_t nz, double volume, int nthreads) {
  if (nx == 0 || ny == 0 || nz == 0) throw std::invalid_argument("map has an empty axis");
  const int nt = resolve_threads(nthreads);
  const std::size_t hx = nx / 2 + 1;
  const pocketfft::shape_t shape{nz, ny, nx};
  const pocketfft::stride_t stride_in{std::ptrdiff_t(sizeof(float) * ny * nx),
                                      std::ptrdiff_t(sizeof(float) * nx), sizeof(float)};
  const pocketfft::stride_t stride_out{std::ptrdiff_t(sizeof(std::complex<float>) * ny * hx),
                                       std::ptrdiff_t(sizeof(std::complex<float>) * hx),
                                       sizeof(std::complex<float>)};
  const double n = double(nx) * double(ny) * double(nz);
  // pocketfft's "backward" direction uses exp(+i…), the sign of our convention.
  pocketfft::r2c<float>(shape, stride_in, stride_out, {0, 1, 2}, pocketfft::BACKWARD, in, out,
                        float(volume / n), std::size_t(nt));
}

/// Structure factors → map: the inverse of map_to_sf. `in` is the half-transform; it is left
/// unchanged (pocketfft's multi-axis c2r copies it into a full complex temporary first).
inline void sf_to_map(const std::complex<float>* in, float* out, std::size_t nx, std::size_t ny,
                      std::size_t nz, double volume, int nthreads) {
  if (nx == 0 || ny == 0 || nz == 0) throw std::invalid_argument("map has an empty axis");
  if (!(volume > 0.0)) throw std::invalid_argument("volume must be > 0");
  const int nt = resolve_threads(nthreads);
  const std::size_t hx = nx / 2 + 1;
  const pocketfft::shape_t shape{nz, ny, nx};
  const pocketfft::stride_t stride_in{std::ptrdiff_t(sizeof(std::complex<float>) * ny * hx),
                                      std::ptrdiff_t(sizeof(std::complex<float>) * hx),
                                      sizeof(std::complex<float>)};
  const pocketfft::stride_t stride_out{std::ptrdiff_t(sizeof(float) * ny * nx),
                                       std::ptrdiff_t(sizeof(float) * nx), sizeof(float)};
  pocketfft::c2r<float>(shape, stride_in, stride_out, {0, 1, 2}, pocketfft::FORWARD, in, out,
                        float(1.0 / volume), std::size_t(nt));
}

/// sf_to_map in place of its input, for callers that own the half-transform and no longer
/// need it: an in-place complex pass over z and y (as gemmi does), the 1-D complex-to-real
/// pass along x written over each row's own slot (a row's nx reals fit in its nx/2+1
/// complex values, so no row's output touches another row's input), then the rows packed
/// to the front of the buffer. Returns the map, `nz*ny*nx` floats at the start of `inout`
/// (reinterpreted): no temporary of the map's size, and no output array either.
inline float* sf_to_map_in_place(std::complex<float>* inout, std::size_t nx, std::size_t ny,
                                 std::size_t nz, double volume, int nthreads) {
  if (nx == 0 || ny == 0 || nz == 0) throw std::invalid_argument("map has an empty axis");
  if (!(volume > 0.0)) throw std::invalid_argument("volume must be > 0");
  const std::size_t nt = std::size_t(resolve_threads(nthreads));
  const std::size_t hx = nx / 2 + 1;
  const pocketfft::stride_t stride_half{std::ptrdiff_t(sizeof(std::complex<float>) * ny * hx),
                                        std::ptrdiff_t(sizeof(std::complex<float>) * hx),
                                        sizeof(std::complex<float>)};
  const pocketfft::stride_t stride_slots{std::ptrdiff_t(sizeof(std::complex<float>) * ny * hx),
                                         std::ptrdiff_t(sizeof(std::complex<float>) * hx),
                                         sizeof(float)};
  pocketfft::c2c<float>({nz, ny, hx}, stride_half, stride_half, {0, 1}, pocketfft::FORWARD, inout,
                        inout, 1.0f, nt);
  float* real = reinterpret_cast<float*>(inout);
  // pocketfft copies each line to its own buffer before it writes that line's output
  pocketfft::c2r<float>({nz, ny, nx}, stride_half, stride_slots, std::size_t(2),
                        pocketfft::FORWARD, inout, real, float(1.0 / volume), nt);
  // row r moves from 2·hx·r floats to nx·r: in order, each move reads only its own slot
  // and writes over rows already moved (std::copy forward: the destination starts first)
  const std::size_t slot = 2 * hx, rows = ny * nz;
  for (std::size_t r = 1; r < rows; ++r)
    std::copy(real + r * slot, real + r * slot + nx, real + r * nx);
  return real;
}

}  // namespace voxscale
