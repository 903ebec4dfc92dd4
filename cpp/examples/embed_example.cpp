// Embedding the voxscale core: resample a map with a voxel-scale factor, Fourier-transform
// both maps and compare them by resolution shell, through the C++ headers alone.
//
//   embed_example                      uses a generated map (a few Gaussian blobs)
//   embed_example MAP.raw NX NY NZ V   reads raw float32 (x fastest) with voxel size V Å
//
// It prints the correlation and the amplitude difference per shell of the map against a copy
// of itself whose voxel size was changed by 2 % and then corrected.
#include <voxscale/voxscale.hpp>

#include <cmath>
#include <complex>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

namespace {

std::vector<float> generated_map(std::size_t n) {
  std::vector<float> data(n * n * n, 0.0f);
  const double blobs[4][3] = {{0.4, 0.5, 0.5}, {0.6, 0.45, 0.55}, {0.5, 0.62, 0.4}, {0.45, 0.4, 0.6}};
  for (std::size_t z = 0; z < n; ++z)
    for (std::size_t y = 0; y < n; ++y)
      for (std::size_t x = 0; x < n; ++x) {
        double v = 0.0;
        for (const auto& b : blobs) {
          const double dx = x - b[0] * n, dy = y - b[1] * n, dz = z - b[2] * n;
          v += std::exp(-(dx * dx + dy * dy + dz * dz) / 8.0);
        }
        data[(z * n + y) * n + x] = float(v);
      }
  return data;
}

// Index map of a voxel-size change by `scale` about the box centre (same grid in and out):
// output index i -> source index c + (i - c) / scale.
voxscale::Affine scaling_about_centre(std::size_t nx, std::size_t ny, std::size_t nz,
                                      double scale) {
  voxscale::Affine a;
  const double c[3] = {(nx - 1) / 2.0, (ny - 1) / 2.0, (nz - 1) / 2.0};
  for (int i = 0; i < 3; ++i) {
    a.m[4 * i] = 1.0 / scale;
    a.b[i] = c[i] * (1.0 - 1.0 / scale);
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t nx = 48, ny = 48, nz = 48;
  double voxel = 1.0;
  std::vector<float> map;
  if (argc == 6) {
    nx = std::strtoul(argv[2], nullptr, 10);
    ny = std::strtoul(argv[3], nullptr, 10);
    nz = std::strtoul(argv[4], nullptr, 10);
    voxel = std::atof(argv[5]);
    map.resize(nx * ny * nz);
    std::ifstream in(argv[1], std::ios::binary);
    if (!in.read(reinterpret_cast<char*>(map.data()), std::streamsize(map.size() * sizeof(float)))) {
      std::fprintf(stderr, "%s: cannot read %zu float32 values\n", argv[1], map.size());
      return 2;
    }
  } else if (argc == 1) {
    map = generated_map(nx);
  } else {
    std::fprintf(stderr, "usage: %s [MAP.raw NX NY NZ VOXEL]\n", argv[0]);
    return 2;
  }
  const int threads = 0;  // all available
  const voxscale::GridView<float> grid{map.data(), nx, ny, nz};

  // A copy "recorded" with a 2 % voxel-size error, then corrected by the inverse factor.
  std::vector<float> wrong(map.size()), fixed(map.size());
  voxscale::resample_affine(grid, 1, scaling_about_centre(nx, ny, nz, 1.02), wrong.data(), nx,
                            ny, nz, 0.0f, threads);
  std::vector<float> coeffs(wrong);
  voxscale::spline_prefilter(coeffs.data(), nx, ny, nz, threads);
  voxscale::resample_affine({coeffs.data(), nx, ny, nz}, 3,
                            scaling_about_centre(nx, ny, nz, 1.0 / 1.02), fixed.data(), nx, ny,
                            nz, 0.0f, threads);
  std::printf("correlation with the original: wrong scale %.4f, corrected %.4f\n",
              voxscale::pearson(map.data(), wrong.data(), nullptr, map.size(), threads),
              voxscale::pearson(map.data(), fixed.data(), nullptr, map.size(), threads));

  // Structure factors and amplitude difference by resolution shell.
  const double cell[3] = {nx * voxel, ny * voxel, nz * voxel};
  const std::size_t half = nz * ny * (nx / 2 + 1);
  std::vector<std::complex<float>> f_map(half), f_wrong(half), f_fixed(half);
  const double volume = cell[0] * cell[1] * cell[2];
  voxscale::map_to_sf(map.data(), f_map.data(), nx, ny, nz, volume, threads);
  voxscale::map_to_sf(wrong.data(), f_wrong.data(), nx, ny, nz, volume, threads);
  voxscale::map_to_sf(fixed.data(), f_fixed.data(), nx, ny, nz, volume, threads);
  const std::size_t n_shells = 6;
  std::vector<double> edges(n_shells + 1);
  const double s_max = 1.0 / (4.0 * voxel);
  for (std::size_t j = 0; j <= n_shells; ++j) edges[j] = s_max * std::cbrt(double(j) / n_shells);
  std::vector<std::int32_t> shell(half);
  voxscale::shell_index(nx, ny, nz, cell, edges.data(), edges.size(), shell.data(), threads);
  const auto before = voxscale::shell_sums(f_map.data(), f_wrong.data(), shell.data(), half,
                                           n_shells, threads);
  const auto after = voxscale::shell_sums(f_map.data(), f_fixed.data(), shell.data(), half,
                                          n_shells, threads);
  std::printf("  d (A)          n   R wrong (%%)  R corrected (%%)\n");
  for (std::size_t j = 0; j < n_shells; ++j) {
    std::printf("%6.2f-%5.2f %6lld %12.1f %15.1f\n", j ? 1.0 / edges[j] : INFINITY,
                1.0 / edges[j + 1], static_cast<long long>(before.count[j]),
                100.0 * before.sum_abs_diff[j] / before.sum_f1[j],
                100.0 * after.sum_abs_diff[j] / after.sum_f1[j]);
  }
  return 0;
}
