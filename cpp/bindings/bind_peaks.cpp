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

py::tuple label_regions_py(const py::object& data_obj, float threshold) {
  auto data = as_map<float>(data_obj, "data");
  if (!(threshold > 0.0f) || !std::isfinite(threshold))
    throw py::value_error("threshold must be finite and > 0");
  if (data.size() >= py::ssize_t(INT32_MAX))
    throw py::value_error("data has too many voxels for int32 region labels");
  const GridView<float> view{data.data(), std::size_t(data.shape(2)), std::size_t(data.shape(1)),
                             std::size_t(data.shape(0))};
  py::array_t<std::int32_t> labels({data.shape(0), data.shape(1), data.shape(2)});
  auto* lp = labels.mutable_data();
  std::vector<std::int64_t> count;
  std::vector<double> sum;
  {
    py::gil_scoped_release release;
    label_regions(view, threshold, lp, count, sum);
  }
  return py::make_tuple(labels, py::array_t<std::int64_t>(count.size(), count.data()),
                        py::array_t<double>(sum.size(), sum.data()));
}

}  // namespace

void bind_peaks(py::module_& m) {
  m.def("label_regions", &label_regions_py, py::arg("data"), py::arg("threshold"),
        "6-connected regions beyond ±threshold -> (labels int32 (0 = none, 1..n), count (n,), "
        "sum (n,)); serial.");
  m.def("local_extrema", &local_extrema_py, py::arg("data"), py::arg("threshold"),
        py::arg("nthreads") = 0,
        "Voxels >= threshold that are >= their 26 neighbours and voxels <= -threshold that are "
        "<= them -> (index (n, 3) as ix, iy, iz; values (n,)).");
}

}  // namespace voxscale::bindings
