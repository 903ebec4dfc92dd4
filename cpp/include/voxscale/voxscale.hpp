// voxscale C++ core: one include for everything.
//
//   grid.hpp         GridView, GridGeometry, Affine (conventions of the whole library)
//   threads.hpp      nthreads handling (0 = all available)
//   interpolate.hpp  spline_prefilter, interpolate_points (values and gradients), resample_affine
//   correlation.hpp  pearson (optionally weighted)
//   fft.hpp          map_to_sf / sf_to_map (pocketfft, docs/method.md §2 sign and normalisation)
//   shells.hpp       shell_index over the half-transform, shell_sums
//   fit.hpp          rigid_score: correlation of fit points with a map and its gradients
//   peaks.hpp        local_extrema beyond a threshold
#pragma once

#include "correlation.hpp"
#include "fft.hpp"
#include "fit.hpp"
#include "grid.hpp"
#include "interpolate.hpp"
#include "peaks.hpp"
#include "shells.hpp"
#include "simd.hpp"
#include "threads.hpp"
