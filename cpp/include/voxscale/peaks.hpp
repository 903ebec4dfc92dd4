// Local extrema of a map beyond a threshold (the peak search of difference maps).
#pragma once

#include <algorithm>
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

namespace detail {

// True when voxel (ix, iy, iz), of value v, is a local maximum with v >= threshold or a local
// minimum with v <= -threshold.
inline bool is_extremum(const GridView<float>& g, std::ptrdiff_t ix, std::ptrdiff_t iy,
                        std::ptrdiff_t iz, float threshold, float v) {
  const std::ptrdiff_t nx = std::ptrdiff_t(g.nx), ny = std::ptrdiff_t(g.ny),
                       nz = std::ptrdiff_t(g.nz);
  const bool high = v >= threshold, low = v <= -threshold;
  if (!high && !low) return false;
  for (std::ptrdiff_t dz = -1; dz <= 1; ++dz) {
    const std::ptrdiff_t z = iz + dz;
    if (z < 0 || z >= nz) continue;
    for (std::ptrdiff_t dy = -1; dy <= 1; ++dy) {
      const std::ptrdiff_t y = iy + dy;
      if (y < 0 || y >= ny) continue;
      for (std::ptrdiff_t dx = -1; dx <= 1; ++dx) {
        const std::ptrdiff_t x = ix + dx;
        if (x < 0 || x >= nx || (dx == 0 && dy == 0 && dz == 0)) continue;
        const float w = g.at(std::size_t(x), std::size_t(y), std::size_t(z));
        if (high ? w > v : w < v) return false;
      }
    }
  }
  return true;
}

}  // namespace detail

/// Voxels with value >= threshold that are >= all their (up to 26) neighbours, and voxels with
/// value <= -threshold that are <= all their neighbours (threshold > 0). Plateaus give one
/// extremum per voxel of the plateau; a caller merges nearby extrema. Sorted by grid order.
inline std::vector<Extremum> local_extrema(const GridView<float>& g, float threshold,
                                           int nthreads) {
  const int nt = resolve_threads(nthreads);
  (void)nt;
  const std::ptrdiff_t nx = std::ptrdiff_t(g.nx), ny = std::ptrdiff_t(g.ny),
                       nz = std::ptrdiff_t(g.nz);
  // Two passes, so that nothing is allocated inside the parallel regions (see threads.hpp):
  // count the extrema of each z slab, then allocate the result and let each slab fill its part.
  // Most voxels fail the threshold test at once, so testing twice costs little.
  std::vector<std::size_t> first(std::size_t(nz) + 1, 0);  // slab iz's extrema start here
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (std::ptrdiff_t iz = 0; iz < nz; ++iz) {
    std::size_t count = 0;
    for (std::ptrdiff_t iy = 0; iy < ny; ++iy)
      for (std::ptrdiff_t ix = 0; ix < nx; ++ix)
        count += detail::is_extremum(
            g, ix, iy, iz, threshold, g.at(std::size_t(ix), std::size_t(iy), std::size_t(iz)));
    first[std::size_t(iz) + 1] = count;
  }
  for (std::size_t iz = 0; iz < std::size_t(nz); ++iz) first[iz + 1] += first[iz];
  std::vector<Extremum> all(first[std::size_t(nz)]);
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (std::ptrdiff_t iz = 0; iz < nz; ++iz) {
    Extremum* out = all.data() + first[std::size_t(iz)];
    for (std::ptrdiff_t iy = 0; iy < ny; ++iy) {
      for (std::ptrdiff_t ix = 0; ix < nx; ++ix) {
        const float v = g.at(std::size_t(ix), std::size_t(iy), std::size_t(iz));
        if (detail::is_extremum(g, ix, iy, iz, threshold, v))
          *out++ = {std::size_t(ix), std::size_t(iy), std::size_t(iz), v};
      }
    }
  }
  return all;
}

}  // namespace voxscale

namespace voxscale {

/// Connected regions (6-connectivity) of voxels beyond ±threshold: voxels >= threshold and
/// voxels <= -threshold form separate regions. `labels` (one per voxel) gets 0 outside every
/// region and 1…n inside; `count` and `sum` (index label − 1) the voxels and the sum of the
/// values of each region. Serial union–find, linear in the number of voxels.
inline void label_regions(const GridView<float>& g, float threshold, std::int32_t* labels,
                          std::vector<std::int64_t>& count, std::vector<double>& sum) {
  const std::size_t nx = g.nx, ny = g.ny, n = g.size();
  std::vector<std::int32_t> parent;
  auto find = [&](std::int32_t a) {
    while (parent[std::size_t(a)] != a) {
      parent[std::size_t(a)] = parent[std::size_t(parent[std::size_t(a)])];
      a = parent[std::size_t(a)];
    }
    return a;
  };
  auto sign = [&](std::size_t i) {
    const float v = g.data[i];
    return v >= threshold ? 1 : (v <= -threshold ? -1 : 0);
  };
  for (std::size_t i = 0; i < n; ++i) {
    const int s = sign(i);
    if (s == 0) {
      labels[i] = -1;
      continue;
    }
    const std::size_t ix = i % nx, iy = (i / nx) % ny, iz = i / (nx * ny);
    std::int32_t label = -1;
    const std::size_t back[3] = {ix > 0 ? i - 1 : n, iy > 0 ? i - nx : n,
                                 iz > 0 ? i - nx * ny : n};
    for (std::size_t j : back) {
      if (j == n || labels[j] < 0 || sign(j) != s) continue;
      const std::int32_t other = find(labels[j]);
      if (label < 0) {
        label = other;
      } else if (other != label) {
        parent[std::size_t(std::max(other, label))] = std::min(other, label);
        label = std::min(other, label);
      }
    }
    if (label < 0) {
      label = std::int32_t(parent.size());
      parent.push_back(label);
    }
    labels[i] = label;
  }
  // Compact the roots to 1…n and accumulate each region's count and sum.
  std::vector<std::int32_t> final_label(parent.size(), 0);
  std::int32_t next = 0;
  for (std::size_t a = 0; a < parent.size(); ++a)
    if (find(std::int32_t(a)) == std::int32_t(a)) final_label[a] = ++next;
  count.assign(std::size_t(next), 0);
  sum.assign(std::size_t(next), 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    if (labels[i] < 0) {
      labels[i] = 0;
      continue;
    }
    const std::int32_t l = final_label[std::size_t(find(labels[i]))];
    labels[i] = l;
    count[std::size_t(l - 1)] += 1;
    sum[std::size_t(l - 1)] += g.data[i];
  }
}

}  // namespace voxscale
