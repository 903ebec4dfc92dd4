// The extension module voxscale._core: one bind_* function per concern.
#include "common.hpp"
#include "voxscale/threads.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "voxscale C++ core kernels (see python/voxscale for the documented API)";
  m.def("has_openmp", &voxscale::has_openmp, "True when the core was built with OpenMP.");
  m.def("resolve_threads", pybind11::overload_cast<int>(&voxscale::resolve_threads),
        pybind11::arg("nthreads"),
        "Threads a kernel uses for `nthreads` (0 = all available, honouring OMP_NUM_THREADS).");
  voxscale::bindings::bind_interpolate(m);
  voxscale::bindings::bind_correlation(m);
  voxscale::bindings::bind_fft(m);
  voxscale::bindings::bind_shells(m);
  voxscale::bindings::bind_fit(m);
  voxscale::bindings::bind_peaks(m);
}
