// Bindings of peaks.hpp.
#include "common.hpp"
#include "voxscale/peaks.hpp"

namespace voxscale::bindings {

namespace {

py::tuple local_extrema_py(const py::object& data_obj, float threshold, int nthreads) {
  auto data = as_map<float>(data_obj, "data");
  if (!(threshold > 0.0f) || !std::isfinite(threshold))
    throw py::value_error("threshold must be finite and > 0");
  check_threads(nthreads);
  const GridView<float> view{data.data(), std::size_t(data.shape(2)), std::size_t(data.shape(1)),
                             std::size_t(data.shape(0))};
  std::vector<Extremum> found;
  {
    py::gil_scoped_release release;
    found = local_extrema(view, threshold, nthreads);
  }
  py::array_t<std::int64_t> index({py::ssize_t(found.size()), py::ssize_t(3)});
  py::array_t<float> values(py::ssize_t(found.size()));
  auto* ip = index.mutable_data();
  auto* vp = values.mutable_data();
  for (std::size_t i = 0; i < found.size(); ++i) {
    ip[3 * i] = std::int64_t(found[i].ix);
    ip[3 * i + 1] = std::int64_t(found[i].iy);
    ip[3 * i + 2] = std::int64_t(found[i].iz);
    vp[i] = found[i].value;
  }
  return py::make_tuple(index, values);
}

}  // namespace

void bind_peaks(py::module_& m) {
  m.def("local_extrema", &local_extrema_py, py::arg("data"), py::arg("threshold"),
        py::arg("nthreads") = 0,
        "Voxels >= threshold that are >= their 26 neighbours and voxels <= -threshold that are "
        "<= them -> (index (n, 3) as ix, iy, iz; values (n,)).");
}

}  // namespace voxscale::bindings
