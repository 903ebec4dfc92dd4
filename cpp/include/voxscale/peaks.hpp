// Local extrema of a map beyond a threshold (the peak search of difference maps).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "grid.hpp"
#include "threads.hpp"

namespace voxscale {

struct Extremum {
  std::size_t ix, iy, iz;
  float value;
};

/// Voxels with value >= threshold that are >= all their (up to 26) neighbours, and voxels with
/// value <= -threshold that are <= all their neighbours (threshold > 0). Plateaus give one
/// extremum per voxel of the plateau; a caller merges nearby extrema. Sorted by grid order.
inline std::vector<Extremum> local_extrema(const GridView<float>& g, float threshold,
                                           int nthreads) {
  const int nt = resolve_threads(nthreads);
  (void)nt;
  const std::ptrdiff_t nx = std::ptrdiff_t(g.nx), ny = std::ptrdiff_t(g.ny),
                       nz = std::ptrdiff_t(g.nz);
  std::vector<std::vector<Extremum>> per_slab(static_cast<std::size_t>(nz));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (std::ptrdiff_t iz = 0; iz < nz; ++iz) {
    auto& found = per_slab[std::size_t(iz)];
    for (std::ptrdiff_t iy = 0; iy < ny; ++iy) {
      for (std::ptrdiff_t ix = 0; ix < nx; ++ix) {
        const float v = g.at(std::size_t(ix), std::size_t(iy), std::size_t(iz));
        const bool high = v >= threshold, low = v <= -threshold;
        if (!high && !low) continue;
        bool is_peak = true;
        for (std::ptrdiff_t dz = -1; dz <= 1 && is_peak; ++dz) {
          const std::ptrdiff_t z = iz + dz;
          if (z < 0 || z >= nz) continue;
          for (std::ptrdiff_t dy = -1; dy <= 1 && is_peak; ++dy) {
            const std::ptrdiff_t y = iy + dy;
            if (y < 0 || y >= ny) continue;
            for (std::ptrdiff_t dx = -1; dx <= 1; ++dx) {
              const std::ptrdiff_t x = ix + dx;
              if (x < 0 || x >= nx || (dx == 0 && dy == 0 && dz == 0)) continue;
              const float w = g.at(std::size_t(x), std::size_t(y), std::size_t(z));
              if (high ? w > v : w < v) {
                is_peak = false;
                break;
              }
            }
          }
        }
        if (is_peak) found.push_back({std::size_t(ix), std::size_t(iy), std::size_t(iz), v});
      }
    }
  }
  std::vector<Extremum> all;
  for (auto& slab : per_slab) all.insert(all.end(), slab.begin(), slab.end());
  return all;
}

}  // namespace voxscale
