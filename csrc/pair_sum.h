// The fused tiled reduction: sum over pairs of k(a_i, b_j) and its gradients, without an n x m buffer.
#pragma once

#include <cstdint>

#include "kernel_terms.h"

namespace fastmmd {

struct PairSumOptions {
  bool symmetric = false;     // b is a: visit each unordered pair of tiles once
  bool exclude_diag = false;  // leave out the pairs i == j
  bool want_grad = false;
  int num_threads = 0;        // 0: OpenMP's default
};

// Row and column statistics of the kept pairs: rows (n,) = sum_j k(a_i, b_j), cols (m,) = sum_i k(a_i, b_j)
// (unused when symmetric: rows then holds the full row sums of the symmetric block), squares = sum k^2.
struct PairStats {
  double* rows = nullptr;
  double* cols = nullptr;
  double squares = 0;
};

// total = sum_{i,j} k(a_i, b_j); grad_a (n, d) and grad_b (m, d) receive d total / d a and d total / d b
// when options.want_grad (grad_b unused when symmetric); stats, when not null, receives the row and
// column sums and the sum of squares from the same pass. a: (n, d), b: (m, d), row-major.
template <typename T>
double pair_sum(const KernelSpec& spec, const T* a, int64_t n, const T* b, int64_t m, int64_t d,
                const PairSumOptions& options, T* grad_a, T* grad_b, PairStats* stats = nullptr);

}  // namespace fastmmd
