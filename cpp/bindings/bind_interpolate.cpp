// Bindings of interpolate.hpp: spline_prefilter, interpolate_points, resample_affine.
#include "common.hpp"
#include "voxscale/interpolate.hpp"

namespace voxscale::bindings {

namespace {

GridView<float> view_of(const py::array_t<float, py::array::c_style>& a) {
  return {a.data(), std::size_t(a.shape(2)), std::size_t(a.shape(1)), std::size_t(a.shape(0))};
}

int check_order(int order) {
  if (order != 1 && order != 3)
    throw py::value_error("order must be 1 (trilinear) or 3 (cubic B-spline)");
  return order;
}

// With overwrite, `data` itself becomes the coefficients (no copy: a caller that drops the
// samples saves a map's memory).
py::array_t<float> spline_prefilter_py(const py::object& data_obj, int nthreads, bool overwrite) {
  auto data = as_map<float>(data_obj, "data");
  check_threads(nthreads);
  if (overwrite && !data.writeable())
    throw py::value_error("data must be writeable when overwrite is true");
  py::array_t<float> out = data;
  if (!overwrite) {
    out = py::array_t<float>({data.shape(0), data.shape(1), data.shape(2)});
    std::copy(data.data(), data.data() + data.size(), out.mutable_data());
  }
  float* p = out.mutable_data();
  const auto g = view_of(data);
  {
    py::gil_scoped_release release;
    spline_prefilter(p, g.nx, g.ny, g.nz, nthreads);
  }
  return out;
}

py::tuple interpolate_points_py(const py::object& data_obj, const py::object& origin_obj,
                                const py::object& voxel_obj, const py::object& points_obj,
                                int order, float fill, bool gradient, int nthreads) {
  auto data = as_map<float>(data_obj, "data");
  auto points = as_array<double>(points_obj, "points", 2);
  if (points.shape(1) != 3) throw py::value_error("points must have shape (n, 3): x, y, z in Å");
  GridGeometry geom{as_triple(origin_obj, "origin"), as_triple(voxel_obj, "voxel_size")};
  for (double v : geom.voxel)
    if (!(v > 0.0)) throw py::value_error("voxel_size must be > 0");
  check_order(order);
  check_threads(nthreads);
  const std::size_t n = std::size_t(points.shape(0));
  py::array_t<float> values(n);
  py::array_t<std::uint8_t> inside(n);
  py::object grads = py::none();
  float* gp = nullptr;
  if (gradient) {
    py::array_t<float> g({py::ssize_t(n), py::ssize_t(3)});
    gp = g.mutable_data();
    grads = g;
  }
  float* vp = values.mutable_data();
  std::uint8_t* ip = inside.mutable_data();
  const auto g = view_of(data);
  const double* pp = points.data();
  {
    py::gil_scoped_release release;
    interpolate_points(g, geom, pp, n, order, fill, vp, gp, ip, nthreads);
  }
  return py::make_tuple(values, grads, inside.attr("astype")("bool"));
}

py::array_t<float> resample_affine_py(const py::object& data_obj, const py::object& matrix_obj,
                                      const py::object& shape_obj, int order, float fill,
                                      int nthreads) {
  auto data = as_map<float>(data_obj, "data");
  auto matrix = as_array<double>(matrix_obj, "index_map", 2);
  if (matrix.shape(0) != 3 || matrix.shape(1) != 4)
    throw py::value_error("index_map must have shape (3, 4)");
  const auto shape = as_shape(shape_obj, "out_shape");
  check_order(order);
  check_threads(nthreads);
  Affine a;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) a.m[3 * r + c] = matrix.at(r, c);
    a.b[r] = matrix.at(r, 3);
  }
  if (!a.finite()) throw py::value_error("index_map must be finite");
  py::array_t<float> out({py::ssize_t(shape[0]), py::ssize_t(shape[1]), py::ssize_t(shape[2])});
  float* op = out.mutable_data();
  const auto g = view_of(data);
  {
    py::gil_scoped_release release;
    resample_affine(g, order, a, op, shape[2], shape[1], shape[0], fill, nthreads);
  }
  return out;
}

}  // namespace

void bind_interpolate(py::module_& m) {
  m.def("spline_prefilter", &spline_prefilter_py, py::arg("data"), py::arg("nthreads") = 0,
        py::arg("overwrite") = false,
        "Cubic B-spline coefficients (mirror boundaries) of a float32 (nz, ny, nx) array; "
        "with overwrite, computed in place of the array and returned as it.");
  m.def("interpolate_points", &interpolate_points_py, py::arg("data"), py::arg("origin"),
        py::arg("voxel_size"), py::arg("points"), py::arg("order") = 1, py::arg("fill") = 0.0f,
        py::arg("gradient") = false, py::arg("nthreads") = 0,
        "Values (and gradients per Å) at (n, 3) points x, y, z in Å -> (values, gradients|None, "
        "inside).");
  m.def("resample_affine", &resample_affine_py, py::arg("data"), py::arg("index_map"),
        py::arg("out_shape"), py::arg("order") = 1, py::arg("fill") = 0.0f,
        py::arg("nthreads") = 0,
        "Samples data at index_map·(ix, iy, iz, 1) for every voxel of an (nz, ny, nx) output.");
}

}  // namespace voxscale::bindings
