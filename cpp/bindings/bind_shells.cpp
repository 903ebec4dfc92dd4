// Bindings of shells.hpp.
#include <complex>

#include "common.hpp"
#include "voxscale/shells.hpp"

namespace voxscale::bindings {

namespace {

py::array_t<std::int32_t> shell_index_py(const py::object& shape_obj, const py::object& cell_obj,
                                         const py::object& edges_obj, int nthreads) {
  const auto shape = as_shape(shape_obj, "shape");
  const auto cell = as_triple(cell_obj, "cell");
  auto edges = as_array<double>(edges_obj, "edges", 1);
  check_threads(nthreads);
  const std::size_t nz = shape[0], ny = shape[1], nx = shape[2];
  py::array_t<std::int32_t> out({py::ssize_t(nz), py::ssize_t(ny), py::ssize_t(nx / 2 + 1)});
  auto* op = out.mutable_data();
  const double* ep = edges.data();
  const std::size_t ne = std::size_t(edges.size());
  {
    // Invalid edges throw std::invalid_argument before any work; pybind11 makes it ValueError.
    py::gil_scoped_release release;
    shell_index(nx, ny, nz, cell.data(), ep, ne, op, nthreads);
  }
  return out;
}

py::dict shell_sums_py(const py::object& f1_obj, const py::object& f2_obj,
                       const py::object& shell_obj, std::size_t nshells, int nthreads) {
  auto f1 = as_array<std::complex<float>>(f1_obj, "f1");
  auto shell = as_array<std::int32_t>(shell_obj, "shell");
  if (shell.size() != f1.size()) throw py::value_error("shell must have the size of f1");
  const std::complex<float>* f2p = nullptr;
  py::array_t<std::complex<float>, py::array::c_style> f2;
  if (!f2_obj.is_none()) {
    f2 = as_array<std::complex<float>>(f2_obj, "f2");
    if (f2.size() != f1.size()) throw py::value_error("f2 must have the size of f1");
    f2p = f2.data();
  }
  check_threads(nthreads);
  // Shells beyond the entries stay empty: refuse before the per-shell sums are allocated.
  constexpr std::size_t kMaxShells = 1000000;
  if (nshells > kMaxShells && nshells > std::size_t(f1.size()))
    throw py::value_error("nshells must be at most 1000000 (or the number of entries)");
  const auto* f1p = f1.data();
  const auto* sp = shell.data();
  const std::size_t n = std::size_t(f1.size());
  ShellSums s;
  {
    py::gil_scoped_release release;
    s = shell_sums(f1p, f2p, sp, n, nshells, nthreads);
  }
  py::dict d;
  d["count"] = py::array_t<std::int64_t>(s.count.size(), s.count.data());
  d["sum_f1"] = py::array_t<double>(s.sum_f1.size(), s.sum_f1.data());
  d["sum_f2"] = py::array_t<double>(s.sum_f2.size(), s.sum_f2.data());
  d["sum_f1_sq"] = py::array_t<double>(s.sum_f1_sq.size(), s.sum_f1_sq.data());
  d["sum_f2_sq"] = py::array_t<double>(s.sum_f2_sq.size(), s.sum_f2_sq.data());
  d["sum_abs_diff"] = py::array_t<double>(s.sum_abs_diff.size(), s.sum_abs_diff.data());
  d["sum_re_cross"] = py::array_t<double>(s.sum_re_cross.size(), s.sum_re_cross.data());
  return d;
}

}  // namespace

void bind_shells(py::module_& m) {
  m.def("shell_index", &shell_index_py, py::arg("shape"), py::arg("cell"), py::arg("edges"),
        py::arg("nthreads") = 0,
        "int32 shell of every reflection of the half-transform of a (nz, ny, nx) map (-1 = none).");
  m.def("shell_sums", &shell_sums_py, py::arg("f1"), py::arg("f2"), py::arg("shell"),
        py::arg("nshells"), py::arg("nthreads") = 0,
        "Per-shell count, Σ|F1|, Σ|F2|, Σ|F1|², Σ|F2|², Σ||F1|−|F2||, Re ΣF1·conj(F2).");
}

}  // namespace voxscale::bindings
