// Pairs whose squared distance |a|^2 + |b|^2 - 2 a.b has lost its digits to cancellation, recomputed from
// explicit differences (for the kernels with |a - b|, whose values and gradients need the distance itself).
#pragma once

#include <cstdint>
#include <vector>

#include "kernel_terms.h"

namespace fastmmd {

// Squared distance from explicit differences, accumulated in double.
template <typename T>
T explicit_squared_distance(const T* a, const T* b, int64_t d) {
  double s = 0;
  for (int64_t k = 0; k < d; ++k) {
    const double diff = static_cast<double>(a[k]) - static_cast<double>(b[k]);
    s += diff * diff;
  }
  return static_cast<T>(s);
}

// Finds the columns j < cols (other than `skip`) of one tile row whose r2 the inner-product formula cannot
// resolve (near_pair_threshold), replaces row.r2[j] by the explicit value and lists them in `near`.
// a_row: (dp,), b_block: (cols, dp) row-major; sq_a = |a|^2, sq_b[j] = |b_j|^2.
template <typename T>
void refine_near_pairs(const T* a_row, const T* b_block, int64_t dp, int64_t cols, int64_t skip, T sq_a,
                       const T* sq_b, RowScratch<T>& row, std::vector<int64_t>& near) {
  near.clear();
  T* r2 = row.r2.data();
  const T threshold = near_pair_threshold<T>();
  for (int64_t j = 0; j < cols; ++j) {
    if (j == skip || r2[j] >= threshold * (sq_a + sq_b[j])) continue;
    r2[j] = explicit_squared_distance(a_row, b_block + j * dp, dp);
    near.push_back(j);
  }
}

}  // namespace fastmmd
