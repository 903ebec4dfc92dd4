// Grid views and geometry: how an array of voxels relates to physical space.
//
// Conventions (docs/method.md §2): arrays are C order with shape (nz, ny, nx), x fastest; voxel
// (ix, iy, iz) sits at origin + (ix*vx, iy*vy, iz*vz) in Cartesian Å.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace voxscale {

/// Non-owning read-only view of a 3-D array stored x fastest.
template <typename T>
struct GridView {
  const T* data = nullptr;
  std::size_t nx = 0, ny = 0, nz = 0;

  std::size_t size() const { return nx * ny * nz; }
  const T& at(std::size_t ix, std::size_t iy, std::size_t iz) const {
    return data[(iz * ny + iy) * nx + ix];
  }
};

/// Physical placement of a grid: origin and voxel size, both (x, y, z) in Å.
struct GridGeometry {
  std::array<double, 3> origin{0.0, 0.0, 0.0};
  std::array<double, 3> voxel{1.0, 1.0, 1.0};

  void validate(const char* what) const {
    for (int a = 0; a < 3; ++a) {
      if (!(voxel[a] > 0.0) || !std::isfinite(voxel[a]))
        throw std::invalid_argument(std::string(what) + ": voxel sizes must be finite and > 0");
      if (!std::isfinite(origin[a]))
        throw std::invalid_argument(std::string(what) + ": origin must be finite");
    }
  }
};

/// An affine map from one index space to another: y = M·x + b, M row-major 3×3, all (x, y, z).
struct Affine {
  std::array<double, 9> m{1, 0, 0, 0, 1, 0, 0, 0, 1};
  std::array<double, 3> b{0, 0, 0};

  std::array<double, 3> apply(double x, double y, double z) const {
    return {m[0] * x + m[1] * y + m[2] * z + b[0], m[3] * x + m[4] * y + m[5] * z + b[1],
            m[6] * x + m[7] * y + m[8] * z + b[2]};
  }
  bool finite() const {
    for (double v : m) if (!std::isfinite(v)) return false;
    for (double v : b) if (!std::isfinite(v)) return false;
    return true;
  }
};

}  // namespace voxscale
