// Argument checking shared by the binding files. Everything here runs with the GIL held; the
// kernels are only called after it, with the GIL released.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

namespace voxscale::bindings {

namespace py = pybind11;

/// A zero-copy view of `obj` as a C-contiguous array of T with `ndim` dimensions (-1 = any).
/// Wrong type or dtype is a TypeError, wrong layout or shape a ValueError; both name `name`.
template <typename T>
py::array_t<T, py::array::c_style> as_array(const py::object& obj, const char* name,
                                            int ndim = -1) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  // Equivalent, not identical, dtypes: an unpickled float32 dtype is a different object.
  if (!py::isinstance<py::array_t<T>>(arr))
    throw py::type_error(std::string(name) + " must have dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", not " +
                         py::str(arr.dtype()).cast<std::string>());
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  if (ndim >= 0 && arr.ndim() != ndim)
    throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) +
                          " dimensions, not " + std::to_string(arr.ndim()));
  return py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(arr);
}

/// Checks a 3-D map array (nz, ny, nx) with no empty axis.
template <typename T>
py::array_t<T, py::array::c_style> as_map(const py::object& obj, const char* name) {
  auto arr = as_array<T>(obj, name, 3);
  for (int a = 0; a < 3; ++a)
    if (arr.shape(a) < 1) throw py::value_error(std::string(name) + " has an empty axis");
  return arr;
}

/// Three finite numbers (x, y, z).
inline std::array<double, 3> as_triple(const py::object& obj, const char* name) {
  std::vector<double> v;
  try {
    v = obj.cast<std::vector<double>>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(name) + " must be a sequence of three numbers");
  }
  if (v.size() != 3) throw py::value_error(std::string(name) + " must hold three numbers");
  for (double x : v)
    if (!std::isfinite(x)) throw py::value_error(std::string(name) + " must be finite");
  return {v[0], v[1], v[2]};
}

/// A shape (nz, ny, nx) of positive sizes.
inline std::array<std::size_t, 3> as_shape(const py::object& obj, const char* name) {
  std::vector<long long> v;
  try {
    v = obj.cast<std::vector<long long>>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string(name) + " must be a sequence of three integers");
  }
  if (v.size() != 3) throw py::value_error(std::string(name) + " must hold three integers");
  for (long long x : v)
    if (x < 1) throw py::value_error(std::string(name) + " sizes must be >= 1");
  // Refuse before any buffer is built: the product (and its bytes, for strides) must fit in
  // a signed 64-bit count. 2^40 elements (4 TiB of float32) is beyond any map.
  constexpr long long kMaxElements = 1LL << 40;
  long long total = 1;
  for (long long x : v) {
    if (x > kMaxElements / total)
      throw py::value_error(std::string(name) + " is too large (more than 2^40 elements)");
    total *= x;
  }
  return {std::size_t(v[0]), std::size_t(v[1]), std::size_t(v[2])};
}

inline int check_threads(int nthreads) {
  if (nthreads < 0) throw py::value_error("nthreads must be >= 0 (0 = all available)");
  return nthreads;
}

void bind_interpolate(py::module_& m);
void bind_correlation(py::module_& m);
void bind_fft(py::module_& m);
void bind_shells(py::module_& m);
void bind_fit(py::module_& m);
void bind_peaks(py::module_& m);

}  // namespace voxscale::bindings
