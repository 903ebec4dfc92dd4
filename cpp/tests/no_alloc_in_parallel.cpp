// No kernel may allocate inside an OpenMP parallel region.
//
// std::bad_alloc thrown inside a parallel region cannot leave it: the runtime calls
// std::terminate and the whole process (a Python interpreter, say) dies instead of getting an
// exception. This program replaces every global operator new / new[] with one that aborts, naming
// the kernel, when called while omp_in_parallel() is true, then runs every kernel of the core with
// several threads on small inputs.
//
//   no_alloc_in_parallel            abort at the first allocation inside a parallel region
//   no_alloc_in_parallel --report   run everything, list the kernels that allocated; exit 1 if any
//
// Each kernel's line carries a digest of its output, so that a refactoring can be checked to give
// bit-identical results (pearson's and rigid_score's OpenMP reductions combine in an unspecified
// order: with 3 or more threads their digests may vary from run to run). Before the kernels, a probe checks that the replacement is in effect and
// that a region of 2 threads is active (so a pass cannot come from a hook that never fires).
#include <voxscale/voxscale.hpp>

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>
#include <vector>

// ---- the replaced allocation functions ---------------------------------------------------------

namespace {

std::atomic<bool> g_report{false};          // count instead of aborting
std::atomic<long> g_violations{0};          // allocations seen inside a parallel region
std::atomic<long> g_allocations{0};         // all allocations (the probe checks the hook runs)
std::atomic<const char*> g_kernel{"startup"};

void check(std::size_t size, const char* what) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (!omp_in_parallel()) return;
  g_violations.fetch_add(1, std::memory_order_relaxed);
  if (g_report.load(std::memory_order_relaxed)) return;
  // No stdio buffers: write(2) of a stack buffer allocates nothing.
  char msg[320];
  const int len = std::snprintf(
      msg, sizeof msg,
      "no_alloc_in_parallel: FAIL: %s(%zu bytes) inside an OpenMP parallel region "
      "(thread %d of %d) in kernel '%s'\n",
      what, size, omp_get_thread_num(), omp_get_num_threads(), g_kernel.load());
  if (len > 0) (void)!write(2, msg, std::size_t(len) < sizeof msg ? std::size_t(len) : sizeof msg);
  std::abort();
}

void* allocate(std::size_t size, std::size_t align) {
  if (size == 0) size = 1;
  if (align <= alignof(std::max_align_t)) return std::malloc(size);
  void* p = nullptr;
  return posix_memalign(&p, align, size) == 0 ? p : nullptr;  // freed by free() as well
}

void* checked(std::size_t size, std::size_t align, const char* what) {
  check(size, what);
  if (void* p = allocate(size, align)) return p;
  throw std::bad_alloc();
}

void* checked_nothrow(std::size_t size, std::size_t align, const char* what) noexcept {
  check(size, what);
  return allocate(size, align);
}

}  // namespace

void* operator new(std::size_t n) { return checked(n, 0, "operator new"); }
void* operator new[](std::size_t n) { return checked(n, 0, "operator new[]"); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return checked_nothrow(n, 0, "operator new(nothrow)");
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return checked_nothrow(n, 0, "operator new[](nothrow)");
}
void* operator new(std::size_t n, std::align_val_t a) {
  return checked(n, std::size_t(a), "operator new(aligned)");
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return checked(n, std::size_t(a), "operator new[](aligned)");
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return checked_nothrow(n, std::size_t(a), "operator new(aligned, nothrow)");
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return checked_nothrow(n, std::size_t(a), "operator new[](aligned, nothrow)");
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

// ---- the kernels -------------------------------------------------------------------------------

namespace {

using namespace voxscale;

// FNV-1a over the bytes of the outputs.
struct Digest {
  std::uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, std::size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
  }
  template <typename T> void add(const T& v) { bytes(&v, sizeof v); }
  template <typename T> void add(const std::vector<T>& v) { bytes(v.data(), v.size() * sizeof(T)); }
};

int g_failures = 0;

// Runs one kernel; in --report mode, counts the allocations it made inside a parallel region.
template <typename F>
void run(const char* name, int nt, F&& kernel) {
  g_kernel.store(name);
  const long before = g_violations.load();
  Digest d;
  kernel(nt, d);
  const long bad = g_violations.load() - before;
  if (bad) ++g_failures;
  std::printf("%-4s %-34s nthreads=%d digest=%016llx", bad ? "FAIL" : "ok", name, nt,
              static_cast<unsigned long long>(d.h));
  if (bad) std::printf("  (%ld allocations inside a parallel region)", bad);
  std::printf("\n");
  std::fflush(stdout);
  g_kernel.store("between kernels");
}

std::vector<float> random_map(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// The probe: the hook is installed, and a 2-thread region is active and gets caught.
bool probe() {
  omp_set_dynamic(0);  // a region gets the threads it asks for
  const long before = g_allocations.load();
  void* volatile p = ::operator new(16);
  ::operator delete(p);
  if (g_allocations.load() == before) {
    std::fprintf(stderr, "no_alloc_in_parallel: the replaced operator new is not in use\n");
    return false;
  }
  g_report.store(true);
  int team = 0;
  const long bad = g_violations.load();
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    team = omp_get_num_threads();
    void* volatile q = ::operator new(16);
    ::operator delete(q);
  }
  const bool caught = g_violations.load() - bad == 2;
  g_violations.store(bad);
  if (team < 2 || !caught) {
    std::fprintf(stderr, "no_alloc_in_parallel: probe failed (team of %d threads, %s)\n", team,
                 caught ? "caught" : "not caught");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const bool report = argc > 1 && std::strcmp(argv[1], "--report") == 0;
  if (argc > 2 || (argc == 2 && !report)) {
    std::fprintf(stderr, "usage: %s [--report]\n", argv[0]);
    return 2;
  }
  if (!probe()) return 1;
  g_report.store(report);

  // Sizes: small, but past the kernels' work thresholds (resolve_threads) for 3 threads, so that
  // every kernel runs a real team. One axis is longer than the spline's 30-sample horizon.
  const std::size_t nx = 40, ny = 20, nz = 14, nvox = nx * ny * nz;
  const std::size_t npoints = 50000;           // > 2 × 16384 (interpolate_points, rigid_score)
  const std::size_t nvalues = 4 * 65536 + 7;   // > 2 × 65536 (pearson)
  const std::vector<float> map = random_map(nvox, 1);
  const GridView<float> grid{map.data(), nx, ny, nz};
  GridGeometry geom;
  geom.origin = {1.0, -2.0, 0.5};
  geom.voxel = {1.1, 0.9, 1.3};
  std::vector<float> coeffs = map;
  spline_prefilter(coeffs.data(), nx, ny, nz, 1);
  const GridView<float> cgrid{coeffs.data(), nx, ny, nz};
  std::vector<double> points(3 * npoints);
  {
    std::mt19937 rng(2);
    // Some points fall outside the map, to exercise the fill path.
    std::uniform_real_distribution<double> ux(-2.0, 46.0), uy(-3.0, 18.0), uz(-1.0, 19.0);
    for (std::size_t i = 0; i < npoints; ++i) {
      points[3 * i] = ux(rng);
      points[3 * i + 1] = uy(rng);
      points[3 * i + 2] = uz(rng);
    }
  }
  const std::vector<float> point_values = random_map(npoints, 3);
  const std::vector<float> va = random_map(nvalues, 4), vb = random_map(nvalues, 5);
  std::vector<float> vw = random_map(nvalues, 6);
  for (auto& w : vw) w = std::fabs(w);
  Affine rot;  // a rotation about z by 0.3 rad with a shift, in index units
  rot.m = {std::cos(0.3), -std::sin(0.3), 0, std::sin(0.3), std::cos(0.3), 0, 0, 0, 1};
  rot.b = {2.0, -1.5, 0.7};
  const std::vector<float> flat_map = random_map(nx * ny, 7);  // nz = 1: no trilinear fast path
  const GridView<float> flat{flat_map.data(), nx, ny, 1};
  const std::size_t hx = nx / 2 + 1, nhalf = hx * ny * nz;
  const double cell[3] = {nx * geom.voxel[0], ny * geom.voxel[1], nz * geom.voxel[2]};
  const double edges[] = {0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6};
  const std::size_t nedges = sizeof edges / sizeof edges[0];

  for (int nt : {2, 3}) {
    run("spline_prefilter", nt, [&](int t, Digest& d) {
      std::vector<float> c = map;
      spline_prefilter(c.data(), nx, ny, nz, t);
      d.add(c);
    });
    for (int order : {1, 3}) {
      const GridView<float>& src = order == 1 ? grid : cgrid;
      run(order == 1 ? "resample_affine trilinear" : "resample_affine cubic", nt,
          [&](int t, Digest& d) {
            std::vector<float> out(nvox);
            resample_affine(src, order, rot, out.data(), nx, ny, nz, -5.0f, t);
            d.add(out);
          });
      run(order == 1 ? "interpolate_points trilinear" : "interpolate_points cubic", nt,
          [&](int t, Digest& d) {
            std::vector<float> values(npoints);
            std::vector<std::uint8_t> inside(npoints);
            interpolate_points(src, geom, points.data(), npoints, order, -1.0f, values.data(),
                               nullptr, inside.data(), t);
            d.add(values);
            d.add(inside);
          });
      run(order == 1 ? "interpolate_points trilinear+grad" : "interpolate_points cubic+grad", nt,
          [&](int t, Digest& d) {
            std::vector<float> values(npoints), grads(3 * npoints);
            interpolate_points(src, geom, points.data(), npoints, order, 0.0f, values.data(),
                               grads.data(), nullptr, t);
            d.add(values);
            d.add(grads);
          });
      run(order == 1 ? "rigid_score trilinear" : "rigid_score cubic", nt, [&](int t, Digest& d) {
        const double R[9] = {0.99, -0.05, 0.02, 0.05, 0.99, -0.03, -0.02, 0.03, 1.01};
        const double shift[3] = {0.3, -0.2, 0.1}, centre[3] = {22.0, 7.0, 9.0};
        const RigidScore s = rigid_score(src, geom, order, points.data(), point_values.data(),
                                         npoints, R, shift, centre, t);
        d.add(s.cc);
        d.add(s.gradient);
        d.add(s.linear);
        d.add(s.n_inside);
      });
    }
    run("resample_affine trilinear nz=1", nt, [&](int t, Digest& d) {
      std::vector<float> out(nx * ny * 3);
      resample_affine(flat, 1, rot, out.data(), nx, ny, 3, 0.0f, t);
      d.add(out);
    });
    run("pearson", nt, [&](int t, Digest& d) {
      d.add(pearson(va.data(), vb.data(), nullptr, nvalues, t));
    });
    run("pearson weighted", nt, [&](int t, Digest& d) {
      d.add(pearson(va.data(), vb.data(), vw.data(), nvalues, t));
    });
    std::vector<std::complex<float>> f(nhalf);
    run("map_to_sf", nt, [&](int t, Digest& d) {
      map_to_sf(map.data(), f.data(), nx, ny, nz, cell[0] * cell[1] * cell[2], t);
      d.add(f);
    });
    run("sf_to_map", nt, [&](int t, Digest& d) {
      std::vector<float> back(nvox);
      sf_to_map(f.data(), back.data(), nx, ny, nz, cell[0] * cell[1] * cell[2], t);
      d.add(back);
    });
    std::vector<std::int32_t> shell(nhalf);
    run("shell_index", nt, [&](int t, Digest& d) {
      shell_index(nx, ny, nz, cell, edges, nedges, shell.data(), t);
      d.add(shell);
    });
    std::vector<std::complex<float>> f2(f.rbegin(), f.rend());
    for (const std::complex<float>* second : {static_cast<const std::complex<float>*>(nullptr),
                                              static_cast<const std::complex<float>*>(f2.data())}) {
      run(second ? "shell_sums f1 f2" : "shell_sums f1", nt, [&](int t, Digest& d) {
        const ShellSums s = shell_sums(f.data(), second, shell.data(), nhalf, nedges - 1, t);
        d.add(s.count);
        d.add(s.sum_f1);
        d.add(s.sum_f2);
        d.add(s.sum_f1_sq);
        d.add(s.sum_f2_sq);
        d.add(s.sum_abs_diff);
        d.add(s.sum_re_cross);
      });
    }
    run("local_extrema", nt, [&](int t, Digest& d) {
      const std::vector<Extremum> found = local_extrema(grid, 0.6f, t);
      d.add(found.size());
      for (const Extremum& e : found) {
        d.add(e.ix);
        d.add(e.iy);
        d.add(e.iz);
        d.add(e.value);
      }
    });
    run("label_regions (serial)", nt, [&](int, Digest& d) {
      std::vector<std::int32_t> labels(nvox);
      std::vector<std::int64_t> count;
      std::vector<double> sum;
      label_regions(grid, 0.6f, labels.data(), count, sum);
      d.add(labels);
      d.add(count);
      d.add(sum);
    });
  }
  if (g_failures) {
    std::printf("no_alloc_in_parallel: %d kernel runs allocated inside a parallel region\n",
                g_failures);
    return 1;
  }
  std::printf("no_alloc_in_parallel: passed (no allocation inside a parallel region)\n");
  return 0;
}
