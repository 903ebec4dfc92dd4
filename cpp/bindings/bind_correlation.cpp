// Bindings of correlation.hpp.
#include "common.hpp"
#include "voxscale/correlation.hpp"

namespace voxscale::bindings {

namespace {

double pearson_py(const py::object& a_obj, const py::object& b_obj, const py::object& w_obj,
                  int nthreads) {
  auto a = as_array<float>(a_obj, "a");
  auto b = as_array<float>(b_obj, "b");
  if (a.size() != b.size()) throw py::value_error("a and b must have the same size");
  const float* wp = nullptr;
  py::array_t<float, py::array::c_style> w;
  if (!w_obj.is_none()) {
    w = as_array<float>(w_obj, "weights");
    if (w.size() != a.size()) throw py::value_error("weights must have the size of a");
    wp = w.data();
  }
  check_threads(nthreads);
  const float *ap = a.data(), *bp = b.data();
  const std::size_t n = std::size_t(a.size());
  py::gil_scoped_release release;
  return pearson(ap, bp, wp, n, nthreads);
}

}  // namespace

void bind_correlation(py::module_& m) {
  m.def("pearson", &pearson_py, py::arg("a"), py::arg("b"), py::arg("weights") = py::none(),
        py::arg("nthreads") = 0,
        "Pearson correlation about the mean of two float32 arrays (sums in double); NaN when "
        "either is constant.");
}

}  // namespace voxscale::bindings
