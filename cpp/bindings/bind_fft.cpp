// Bindings of fft.hpp.
#include <complex>

#include "common.hpp"
#include "voxscale/fft.hpp"

namespace voxscale::bindings {

namespace {

double check_volume(double volume) {
  if (!(volume > 0.0) || !std::isfinite(volume))
    throw py::value_error("volume must be finite and > 0 (Å³)");
  return volume;
}

py::array_t<std::complex<float>> map_to_sf_py(const py::object& data_obj, double volume,
                                               int nthreads) {
  auto data = as_map<float>(data_obj, "data");
  check_volume(volume);
  check_threads(nthreads);
  const std::size_t nz = data.shape(0), ny = data.shape(1), nx = data.shape(2);
  py::array_t<std::complex<float>> out(
      {py::ssize_t(nz), py::ssize_t(ny), py::ssize_t(nx / 2 + 1)});
  auto* op = out.mutable_data();
  const float* ip = data.data();
  {
    py::gil_scoped_release release;
    map_to_sf(ip, op, nx, ny, nz, volume, nthreads);
  }
  return out;
}

py::array_t<float> sf_to_map_py(const py::object& f_obj, std::size_t nx, double volume,
                                int nthreads, bool overwrite_f) {
  auto f = as_map<std::complex<float>>(f_obj, "f");
  if (overwrite_f && !f.writeable())
    throw py::value_error("f must be writeable when overwrite_f is true");
  check_volume(volume);
  check_threads(nthreads);
  if (nx < 1 || std::size_t(f.shape(2)) != nx / 2 + 1)
    throw py::value_error("f must have shape (nz, ny, nx // 2 + 1) for the given nx");
  const std::size_t nz = f.shape(0), ny = f.shape(1);
  const std::vector<py::ssize_t> shape{py::ssize_t(nz), py::ssize_t(ny), py::ssize_t(nx)};
  // The map is made in place of the half transform and returned as a view of its memory:
  // of f itself with overwrite_f, else of a copy of f (one array of the map's size, where
  // pocketfft's multi-axis c2r would take a complex temporary and the output besides).
  py::array_t<std::complex<float>> work = f;
  if (!overwrite_f) work = py::array_t<std::complex<float>>({f.shape(0), f.shape(1), f.shape(2)});
  const std::complex<float>* source = f.data();
  const std::size_t count = std::size_t(f.size());
  auto* ip = work.mutable_data();
  float* map = nullptr;
  {
    py::gil_scoped_release release;
    if (!overwrite_f) std::copy(source, source + count, ip);
    map = sf_to_map_in_place(ip, nx, ny, nz, volume, nthreads);
  }
  return py::array_t<float>(shape, map, work);
}

}  // namespace

void bind_fft(py::module_& m) {
  m.def("map_to_sf", &map_to_sf_py, py::arg("data"), py::arg("volume"), py::arg("nthreads") = 0,
        "F(h) = (V/N) Σ ρ(x) exp(+2πi h·x): float32 (nz, ny, nx) -> complex64 "
        "(nz, ny, nx//2+1).");
  m.def("sf_to_map", &sf_to_map_py, py::arg("f"), py::arg("nx"), py::arg("volume"),
        py::arg("nthreads") = 0, py::arg("overwrite_f") = false,
        "ρ(x) = (1/V) Σ F(h) exp(−2πi h·x): complex64 (nz, ny, nx//2+1) -> float32 (nz, ny, nx). "
        "The map is returned as a view of the memory it was computed in: with overwrite_f, f's "
        "own (no new array; f is left overwritten), else a copy of f's.");
}

}  // namespace voxscale::bindings
