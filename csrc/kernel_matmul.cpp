#include "kernel_matmul.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "near_pairs.h"
#include "operand.h"
#include "simd.h"

namespace fastmmd {
namespace {

// Columns of v up to which a tile's product is formed row by row; wider v goes through the GEMM micro-kernel.
constexpr int64_t kRowwiseColumns = 8;
// Column blocks of b whose GEMM products accumulate in the input dtype before they are added to the float64
// accumulators: flushing after every block made the wide products (permutation tests) memory-bound.
constexpr int64_t kFlushBlocks = 16;

// v (m, p) copied into (m_pad, pp) with zero rows and columns, pp a multiple of the micro-kernel width.
template <typename T>
Buffer<T> padded_right_side(const T* v, int64_t m, int64_t m_pad, int64_t p, int64_t pp) {
  Buffer<T> out(m_pad * pp);
  for (int64_t j = 0; j < m; ++j)
    for (int64_t c = 0; c < p; ++c) out.data()[j * pp + c] = v[j * p + c];
  return out;
}

}  // namespace

template <typename T>
void kernel_matmul(const KernelSpec& spec, const T* a, int64_t n, const T* b, int64_t m, int64_t d,
                   const T* v, int64_t p, const KernelMatmulOptions& opt, T* out, T* sq) {
  const int threads = opt.num_threads > 0 ? opt.num_threads : omp_get_max_threads();
  const Operand<T> A(a, n, d);
  const Operand<T> B(b, m, d);
  const int64_t dp = A.dp;
  const bool rowwise = p <= kRowwiseColumns;
  const int64_t pp = rowwise ? p : round_up(p, nr<T>());
  const Buffer<T> V = padded_right_side(v, m, B.n_pad, p, pp);

#pragma omp parallel num_threads(threads)
  {
    Buffer<T> dot(TS * TS), ktile(TS * TS), product(rowwise ? 1 : TS * pp);
    RowScratch<T> row(TS);
    std::vector<int64_t> near;
    near.reserve(TS);
    std::vector<double> acc(TS * p), acc_sq(TS);
    // Each row block is one task that visits the column blocks in order: no two threads write the same
    // output, and the order of the sums is fixed.
#pragma omp for schedule(dynamic, 1)
    for (int64_t I = 0; I < A.blocks(); ++I) {
      const int64_t i0 = I * TS, rows = std::min(TS, n - i0);
      std::fill(acc.begin(), acc.end(), 0.0);
      std::fill(acc_sq.begin(), acc_sq.end(), 0.0);
      if (!rowwise) std::fill(product.data(), product.data() + TS * pp, T(0));
      for (int64_t J = 0; J < B.blocks(); ++J) {
        const int64_t j0 = J * TS, cols = std::min(TS, m - j0);
        std::fill(dot.data(), dot.data() + TS * TS, T(0));
        gemm_accumulate<T>(TS, TS, dp, A.row_block(I), dp, B.transposed_block(J), TS, dot.data(), TS);
        const T* sq_b = B.sq.data() + j0;
        const T* norm_b = B.norm.data() + j0;
        const T* v_block = V.data() + j0 * pp;
        for (int64_t i = 0; i < rows; ++i) {
          const T sq_a = A.sq.data()[i0 + i];
          const int64_t skip = opt.exclude_diag ? i0 + i - j0 : -1;
          if (spec.needs_r2) squared_distances_row<T>(TS, dot.data() + i * TS, sq_a, sq_b, row);
          if (spec.needs_sqrt)
            refine_near_pairs<T>(A.row_block(I) + i * dp, B.row_block(J), dp, cols, skip, sq_a, sq_b, row, near);
          evaluate_row<T>(spec, TS, dot.data() + i * TS, norm_b, A.norm.data()[i0 + i], row);
          T* val = row.val.data();
          T* k_row = ktile.data() + i * TS;
          T squares = 0;
#pragma omp simd reduction(+ : squares)
          for (int64_t j = 0; j < TS; ++j) {
            const T kept = (j < cols && j != skip) ? val[j] : T(0);
            k_row[j] = kept;
            squares += kept * kept;
          }
          acc_sq[i] += static_cast<double>(squares);
          if (rowwise) {
            for (int64_t c = 0; c < p; ++c) {
              T s = 0;
#pragma omp simd reduction(+ : s)
              for (int64_t j = 0; j < TS; ++j) s += k_row[j] * v_block[j * pp + c];
              acc[i * p + c] += static_cast<double>(s);
            }
          }
        }
        if (!rowwise) {
          std::fill(ktile.data() + rows * TS, ktile.data() + TS * TS, T(0));
          gemm_accumulate<T>(TS, pp, TS, ktile.data(), TS, v_block, pp, product.data(), pp);
          if ((J + 1) % kFlushBlocks == 0 || J + 1 == B.blocks()) {
            for (int64_t i = 0; i < rows; ++i)
              for (int64_t c = 0; c < p; ++c) acc[i * p + c] += static_cast<double>(product.data()[i * pp + c]);
            std::fill(product.data(), product.data() + TS * pp, T(0));
          }
        }
      }
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t c = 0; c < p; ++c) out[(i0 + i) * p + c] = static_cast<T>(acc[i * p + c]);
        if (opt.want_sq) sq[i0 + i] = static_cast<T>(acc_sq[i]);
      }
    }
  }
}

template void kernel_matmul<float>(const KernelSpec&, const float*, int64_t, const float*, int64_t, int64_t,
                                   const float*, int64_t, const KernelMatmulOptions&, float*, float*);
template void kernel_matmul<double>(const KernelSpec&, const double*, int64_t, const double*, int64_t, int64_t,
                                    const double*, int64_t, const KernelMatmulOptions&, double*, double*);

}  // namespace fastmmd
