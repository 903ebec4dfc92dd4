// The extension module voxscale._core: one bind_* function per concern.
#include "common.hpp"
#include "voxscale/simd.hpp"
#include "voxscale/threads.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "voxscale C++ core kernels (see python/voxscale for the documented API)";
  m.def("has_openmp", &voxscale::has_openmp, "True when the core was built with OpenMP.");
  m.def("resolve_threads", pybind11::overload_cast<int>(&voxscale::resolve_threads),
        pybind11::arg("nthreads"),
        "Threads a kernel uses for `nthreads` (0 = all available, honouring OMP_NUM_THREADS).");
  m.def("simd_level", [] { return std::string(voxscale::simd_name(voxscale::active_simd())); },
        "Instruction set the vector kernels use now: 'avx512', 'avx2' or 'scalar'.");
  m.def("detected_simd", [] { return std::string(voxscale::simd_name(voxscale::detected_simd())); },
        "Best instruction set this CPU supports for the vector kernels.");
  m.def(
      "set_simd_limit",
      [](const std::string& name) {
        voxscale::SimdLevel level;
        try {
          level = voxscale::simd_from_name(name);
        } catch (const std::invalid_argument& e) {
          throw pybind11::value_error(e.what());
        }
        return std::string(voxscale::simd_name(voxscale::set_simd_limit(level)));
      },
      pybind11::arg("level"),
      "Caps the instruction set of the vector kernels (process-wide; never above what the CPU "
      "has); returns the previous cap. For comparing the paths.");
  voxscale::bindings::bind_interpolate(m);
  voxscale::bindings::bind_correlation(m);
  voxscale::bindings::bind_fft(m);
  voxscale::bindings::bind_shells(m);
  voxscale::bindings::bind_fit(m);
  voxscale::bindings::bind_peaks(m);
}
