// Bindings of fit.hpp.
#include "common.hpp"
#include "voxscale/fit.hpp"

namespace voxscale::bindings {

namespace {

py::tuple rigid_score_py(const py::object& grid_obj, const py::object& origin_obj,
                         const py::object& voxel_obj, const py::object& points_obj,
                         const py::object& values_obj, const py::object& rotation_obj,
                         const py::object& translation_obj, const py::object& center_obj,
                         int order, int nthreads) {
  auto grid = as_map<float>(grid_obj, "grid");
  auto points = as_array<double>(points_obj, "points", 2);
  if (points.shape(1) != 3) throw py::value_error("points must have shape (n, 3): x, y, z in Å");
  auto values = as_array<float>(values_obj, "values", 1);
  if (values.shape(0) != points.shape(0))
    throw py::value_error("values must have one entry per point");
  auto rotation = as_array<double>(rotation_obj, "linear", 2);
  if (rotation.shape(0) != 3 || rotation.shape(1) != 3)
    throw py::value_error("linear must have shape (3, 3)");
  for (py::ssize_t i = 0; i < 9; ++i)
    if (!std::isfinite(rotation.data()[i])) throw py::value_error("linear must be finite");
  const auto t = as_triple(translation_obj, "translation");
  const auto c = as_triple(center_obj, "center");
  GridGeometry geom{as_triple(origin_obj, "origin"), as_triple(voxel_obj, "voxel_size")};
  for (double v : geom.voxel)
    if (!(v > 0.0)) throw py::value_error("voxel_size must be > 0");
  if (order != 1 && order != 3)
    throw py::value_error("order must be 1 (trilinear) or 3 (cubic B-spline)");
  check_threads(nthreads);
  const GridView<float> view{grid.data(), std::size_t(grid.shape(2)), std::size_t(grid.shape(1)),
                             std::size_t(grid.shape(0))};
  const double* pp = points.data();
  const float* vp = values.data();
  const double* rp = rotation.data();
  const std::size_t n = std::size_t(points.shape(0));
  RigidScore s;
  {
    py::gil_scoped_release release;
    s = rigid_score(view, geom, order, pp, vp, n, rp, t.data(), c.data(), nthreads);
  }
  py::array_t<double> grad(6);
  std::copy(s.gradient.begin(), s.gradient.end(), grad.mutable_data());
  py::array_t<double> linear({3, 3});
  std::copy(s.linear.begin(), s.linear.end(), linear.mutable_data());
  return py::make_tuple(s.cc, grad, s.n_inside, linear);
}

}  // namespace

void bind_fit(py::module_& m) {
  m.def("rigid_score", &rigid_score_py, py::arg("grid"), py::arg("origin"),
        py::arg("voxel_size"), py::arg("points"), py::arg("values"), py::arg("linear"),
        py::arg("translation"), py::arg("center"), py::arg("order") = 3, py::arg("nthreads") = 0,
        "Correlation of values with the reference at L·(p − c) + c + t, its rigid gradient "
        "(dω x,y,z per rad, dt x,y,z per Å), the points inside and G = dCC/dX for a left "
        "update L -> (I + X)·L -> (cc, grad, n, G).");
}

}  // namespace voxscale::bindings
