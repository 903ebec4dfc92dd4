// Score and gradient of a placement of fit points in a reference map.
//
// The score is the Pearson correlation about the mean between values attached to the points
// (the target map's density at its own grid points above its contour) and the reference map
// interpolated at the transformed points (ChimeraX fitmap "correlation about mean", envelope
// mode). The transform is q = L·(p − c) + c + t with c the centre of the points and L a rotation
// (rigid fit) or any linear map (anisotropic scale refinement). Gradients are taken at the
// current transform with respect to t and to a small left update L → (I + X)·L:
//   dCC/dX_ij = G_ij = Σ_k a_k ∂ρ/∂x_i(q_k) · (L(p_k − c))_j,  a_k = dCC/dρ(q_k),
// whose antisymmetric part is the rotation gradient (ω × r = X·r for X = [ω]×), whose trace is
// the isotropic-scale gradient and whose symmetric part is the strain gradient. A caller
// re-bases L after each step, where these derivatives are exact.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "grid.hpp"
#include "interpolate.hpp"
#include "threads.hpp"

namespace voxscale {

struct RigidScore {
  double cc = 0.0;                    // Pearson correlation (NaN if undefined)
  std::array<double, 6> gradient{};   // dCC/dω (x, y, z; per radian), dCC/dt (per Å)
  std::array<double, 9> linear{};     // G = dCC/dX, row-major (see above)
  std::size_t n_inside = 0;           // points that landed inside the reference
};

/// Correlation between `values` (n, centred or not) and the reference at the transformed
/// `points` (n × 3, x, y, z Å), with its gradients. Points outside the reference take the value
/// 0 and contribute no gradient. `R` is the row-major 3×3 linear part L.
inline RigidScore rigid_score(const GridView<float>& ref, const GridGeometry& geom, int order,
                              const double* points, const float* values, std::size_t n,
                              const double R[9], const double t[3], const double c[3],
                              int nthreads) {
  detail::check_order(order);
  detail::check_grid(ref, "reference");
  geom.validate("reference");
  const int nt = resolve_threads(nthreads, n, 16384);
  (void)nt;
  RigidScore out;
  if (n < 2) {
    out.cc = std::nan("");
    return out;
  }
  const SimdLevel simd = active_simd();
  const double inv[3] = {1.0 / geom.voxel[0], 1.0 / geom.voxel[1], 1.0 / geom.voxel[2]};
  const double shift[3] = {c[0] + t[0], c[1] + t[1], c[2] + t[2]};
  // Per point: reference value, gradient (per Å) and offset from the transformed centre.
  std::vector<float> val(n), grad(3 * n), arm(3 * n);
  double sv = 0.0, svv = 0.0, sw = 0.0, sww = 0.0, swv = 0.0;
  std::size_t inside = 0;
#pragma omp parallel for schedule(static) num_threads(nt) \
    reduction(+ : sv, svv, sw, sww, swv, inside)
  for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) {
    const double* p = points + 3 * i;
    const double d0 = p[0] - c[0], d1 = p[1] - c[1], d2 = p[2] - c[2];
    const double r0 = R[0] * d0 + R[1] * d1 + R[2] * d2;
    const double r1 = R[3] * d0 + R[4] * d1 + R[5] * d2;
    const double r2 = R[6] * d0 + R[7] * d1 + R[8] * d2;
    double fx = (r0 + shift[0] - geom.origin[0]) * inv[0];
    double fy = (r1 + shift[1] - geom.origin[1]) * inv[1];
    double fz = (r2 + shift[2] - geom.origin[2]) * inv[2];
    double g[3] = {0.0, 0.0, 0.0}, v = 0.0;
    if (detail::inside_domain(fx, fy, fz, ref)) {
      v = order == 1 ? detail::evaluate<1, true>(ref, fx, fy, fz, g)
                     : detail::evaluate<3, true>(ref, fx, fy, fz, g, simd);
      ++inside;
    }
    val[i] = float(v);
    for (int a = 0; a < 3; ++a) grad[3 * i + a] = float(g[a] * inv[a]);
    arm[3 * i] = float(r0);
    arm[3 * i + 1] = float(r1);
    arm[3 * i + 2] = float(r2);
    const double w = values[i];
    sv += v; svv += v * v; sw += w; sww += w * w; swv += w * v;
  }
  out.n_inside = inside;
  const double nn = double(n);
  const double vv = svv - sv * sv / nn, ww = sww - sw * sw / nn, wv = swv - sw * sv / nn;
  if (!(vv > 0.0) || !(ww > 0.0)) {
    out.cc = std::nan("");
    return out;
  }
  const double norm = std::sqrt(vv * ww);
  out.cc = wv / norm;
  // dCC/dv_i = (w_i − w̄)/√(vv·ww) − CC·(v_i − v̄)/vv; the chain rule through q_i gives the
  // translation and rotation gradients.
  const double mw = sw / nn, mv = sv / nn, a_w = 1.0 / norm, a_v = out.cc / vv;
  double t0 = 0, t1 = 0, t2 = 0;  // Σ a ∇ρ
  double G[9] = {0, 0, 0, 0, 0, 0, 0, 0, 0};
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : t0, t1, t2, G[:9])
  for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) {
    const double a = a_w * (double(values[i]) - mw) - a_v * (double(val[i]) - mv);
    const double g[3] = {a * grad[3 * i], a * grad[3 * i + 1], a * grad[3 * i + 2]};
    const double r[3] = {arm[3 * i], arm[3 * i + 1], arm[3 * i + 2]};
    t0 += g[0];
    t1 += g[1];
    t2 += g[2];
    for (int row = 0; row < 3; ++row)
      for (int col = 0; col < 3; ++col) G[3 * row + col] += g[row] * r[col];
  }
  // Rotation: ω × r = [ω]× r, so dCC/dω = (G_zy − G_yz, G_xz − G_zx, G_yx − G_xy).
  out.gradient = {G[7] - G[5], G[2] - G[6], G[3] - G[1], t0, t1, t2};
  std::copy(G, G + 9, out.linear.begin());
  return out;
}

}  // namespace voxscale
