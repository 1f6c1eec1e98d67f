// The fused kernel-matrix product: K(a, b) @ v (and the row sums of K∘K) without an n x m buffer.
#pragma once

#include <cstdint>

#include "kernel_terms.h"

namespace fastmmd {

struct KernelMatmulOptions {
  bool exclude_diag = false;  // leave out the pairs i == j (n == m)
  bool want_sq = false;       // also sq[i] = sum_j k(a_i, b_j)^2
  int num_threads = 0;        // 0: OpenMP's default
};

// out (n, p) = sum_j k(a_i, b_j) v_j over the kept pairs; sq (n,) when options.want_sq (may be null
// otherwise). a: (n, d), b: (m, d), v: (m, p), out: (n, p), all row-major. Sums are accumulated in double
// per tile of columns, in a fixed order: the bits do not depend on the thread count.
template <typename T>
void kernel_matmul(const KernelSpec& spec, const T* a, int64_t n, const T* b, int64_t m, int64_t d,
                   const T* v, int64_t p, const KernelMatmulOptions& options, T* out, T* sq);

}  // namespace fastmmd
