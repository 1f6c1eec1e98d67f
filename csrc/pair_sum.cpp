#include "pair_sum.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "near_pairs.h"
#include "operand.h"
#include "simd.h"

namespace fastmmd {
namespace {

// Working memory of one worker: one tile's inner products and gradient coefficients.
template <typename T>
struct TileScratch {
  Buffer<T> dot, coef, coef_t;
  std::vector<T> row_alpha, col_alpha, col_count, col_sum;
  RowScratch<T> row;
  std::vector<int64_t> near;  // columns of the current row whose distance is recomputed explicitly
  TileScratch()
      : dot(TS * TS), coef(TS * TS), coef_t(TS * TS), row_alpha(TS), col_alpha(TS), col_count(TS),
        col_sum(TS), row(TS) {
    near.reserve(TS);
  }
};

// out[i, :] += alpha[i] * x[i, :] for the TS rows of a block.
template <typename T>
void add_scaled_rows(const T* alpha, const T* x, int64_t dp, T* out) {
  for (int64_t i = 0; i < TS; ++i) {
    const T s = alpha[i];
#pragma omp simd
    for (int64_t k = 0; k < dp; ++k) out[i * dp + k] += s * x[i * dp + k];
  }
}

template <typename T>
void transpose_tile(const T* in, T* out) {
  for (int64_t i = 0; i < TS; ++i)
    for (int64_t j = 0; j < TS; ++j) out[j * TS + i] = in[i * TS + j];
}

// One tile: rows I*TS.. of a against rows J*TS.. of b, weighted by `weight` (2 for an off-diagonal tile
// of a symmetric block, which stands for both orders of its pairs). Returns the weighted sum of the kernel
// values; with gradients, adds the tile's share to the gradient blocks grad_rows (of a) and grad_cols (of b).
//   d/da_i = sum_j dk/dr2 * 2 (a_i - b_j) + dk/ddot * b_j, assembled as row_alpha_i a_i + sum_j coef_ij b_j
// with two GEMMs; the radial part of a near pair is added from its explicit difference a_i - b_j instead,
// since alpha a_i - coef b_j would cancel to noise of the size of a_i.
// With stats, the tile's raw (unweighted) row sums of k are added to stats.rows (rows of a), its column sums to
// stats.cols (rows of b) and weight * its sum of k^2 to *stats.squares.
struct TileStats {
  double* rows = nullptr;
  double* cols = nullptr;
  double* squares = nullptr;
};

template <typename T>
double process_tile(const KernelSpec& spec, const Operand<T>& A, int64_t I, const Operand<T>& B,
                    int64_t J, bool exclude_diag, T weight, TileScratch<T>& s, T* grad_rows,
                    T* grad_cols, const TileStats& stats) {
  const int64_t i0 = I * TS, j0 = J * TS, dp = A.dp;
  const int64_t rows = std::min(TS, A.n - i0), cols = std::min(TS, B.n - j0);
  T* dot = s.dot.data();
  std::fill(dot, dot + TS * TS, T(0));
  gemm_accumulate<T>(TS, TS, dp, A.row_block(I), dp, B.transposed_block(J), TS, dot, TS);

  const bool grads = grad_rows != nullptr;
  T* coef = s.coef.data();
  T* col_alpha = s.col_alpha.data();
  T* col_count = s.col_count.data();
  if (grads) {
    std::fill(col_alpha, col_alpha + TS, T(0));
    std::fill(col_count, col_count + TS, T(0));
  }
  const T* sq_b = B.sq.data() + j0;
  const T* norm_b = B.norm.data() + j0;
  const T* b_block = B.row_block(J);
  const T energy = static_cast<T>(spec.energy_weight);
  const bool want_stats = stats.rows != nullptr;
  T* col_sum = s.col_sum.data();
  if (want_stats) std::fill(col_sum, col_sum + TS, T(0));
  double total = 0, squares = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const T norm_a = A.norm.data()[i0 + i];
    const T sq_a = A.sq.data()[i0 + i];
    const T* a_row = A.row_block(I) + i * dp;
    const int64_t skip = exclude_diag ? i0 + i - j0 : -1;  // the column of pair (i, i), if here
    if (spec.needs_r2) squared_distances_row<T>(TS, dot + i * TS, sq_a, sq_b, s.row);
    if (spec.needs_sqrt) refine_near_pairs<T>(a_row, b_block, dp, cols, skip, sq_a, sq_b, s.row, s.near);
    evaluate_row<T>(spec, TS, dot + i * TS, norm_b, norm_a, s.row);
    const T* val = s.row.val.data();
    T* d_r2 = s.row.d_r2.data();
    const T* d_dot = s.row.d_dot.data();
    T* coef_row = coef + i * TS;
    if (grads) {
      for (int64_t j : s.near) {
        const T radial = weight * 2 * d_r2[j];
        d_r2[j] = 0;  // taken out of the GEMM assembly below
        if (radial == 0) continue;
        T* g_a = grad_rows + i * dp;
        T* g_b = grad_cols + j * dp;
        const T* b_row = b_block + j * dp;
        for (int64_t k = 0; k < dp; ++k) {
          const T diff = a_row[k] - b_row[k];
          g_a[k] += radial * diff;
          g_b[k] -= radial * diff;
        }
      }
    }
    T row_sum = 0, alpha = 0, count = 0;
#pragma omp simd reduction(+ : row_sum, alpha, count)
    for (int64_t j = 0; j < TS; ++j) {
      const T keep = (j < cols && j != skip) ? T(1) : T(0);
      row_sum += keep * val[j];
      if (grads) {
        const T radial = keep * weight * 2 * d_r2[j];
        coef_row[j] = keep * weight * d_dot[j] - radial;
        alpha += radial;
        col_alpha[j] += radial;
        col_count[j] += keep;
        count += keep;
      }
    }
    total += static_cast<double>(row_sum);
    if (want_stats) {
      T row_squares = 0;
#pragma omp simd reduction(+ : row_squares)
      for (int64_t j = 0; j < TS; ++j) {
        const T kept = (j < cols && j != skip) ? val[j] : T(0);
        col_sum[j] += kept;  // unused (and harmless) when stats.cols is null
        row_squares += kept * kept;
      }
      stats.rows[i] += static_cast<double>(row_sum);
      squares += static_cast<double>(row_squares);
    }
    if (grads)
      s.row_alpha[i] = alpha + (norm_a > 0 ? weight * energy * count / norm_a : T(0));
  }
  if (want_stats) {
    if (stats.cols)
      for (int64_t j = 0; j < cols; ++j) stats.cols[j] += static_cast<double>(col_sum[j]);
    *stats.squares += static_cast<double>(weight) * squares;
  }
  if (!grads) return static_cast<double>(weight) * total;

  for (int64_t i = rows; i < TS; ++i) {
    std::fill(coef + i * TS, coef + (i + 1) * TS, T(0));
    s.row_alpha[i] = 0;
  }
  for (int64_t j = 0; j < TS; ++j)
    if (norm_b[j] > 0) col_alpha[j] += weight * energy * col_count[j] / norm_b[j];

  // d/da_i = row_alpha_i a_i + sum_j coef_ij b_j ;  d/db_j = col_alpha_j b_j + sum_i coef_ij a_i
  gemm_accumulate<T>(TS, dp, TS, coef, TS, b_block, dp, grad_rows, dp);
  add_scaled_rows<T>(s.row_alpha.data(), A.row_block(I), dp, grad_rows);
  transpose_tile<T>(coef, s.coef_t.data());
  gemm_accumulate<T>(TS, dp, TS, s.coef_t.data(), TS, A.row_block(I), dp, grad_cols, dp);
  add_scaled_rows<T>(col_alpha, b_block, dp, grad_cols);
  return static_cast<double>(weight) * total;
}

// Work is split into a fixed grid of cells (row group r, column group c), independent of the thread count:
// row block I belongs to group I mod R, column block J to group J mod C. A cell adds its gradient shares to
// its own slots (slot c of the row-side buffer, slot r of the column-side buffer), so cells never write the
// same memory, and the slots are summed in a fixed order at the end: the same bits for any thread count.
struct Grid {
  int64_t R, C;
};

Grid choose_grid(int64_t blocks_a, int64_t blocks_b, int64_t slot_bytes_a, int64_t slot_bytes_b,
                 bool want_grad) {
  constexpr int64_t kMaxGroups = 8;
  // At least this many cells when there are enough blocks, whatever the memory (a fixed number, so that the
  // summation order, hence the bits, do not depend on the machine's thread count).
  constexpr int64_t kMinCells = 8;
  constexpr int64_t kSlotBudgetBytes = int64_t(64) << 20;
  const int64_t max_r = std::min(kMaxGroups, blocks_a), max_c = std::min(kMaxGroups, blocks_b);
  if (!want_grad) return Grid{max_r, max_c};
  const int64_t min_cells = std::min(kMinCells, max_r * max_c);
  // The most cells within the budget; failing that, the least memory with min_cells cells.
  Grid best{1, 1};
  int64_t best_cells = 0, best_bytes = 0;
  bool best_fits = false;
  for (int64_t r = 1; r <= max_r; ++r) {
    for (int64_t c = 1; c <= max_c; ++c) {
      const int64_t cells = r * c, bytes = c * slot_bytes_a + r * slot_bytes_b;
      if (cells < min_cells) continue;
      const bool fits = bytes <= kSlotBudgetBytes;
      const bool better = best_cells == 0 || (fits && !best_fits) ||
                          (fits && best_fits && (cells > best_cells || (cells == best_cells && bytes < best_bytes))) ||
                          (!fits && !best_fits && bytes < best_bytes);
      if (better) {
        best = Grid{r, c};
        best_cells = cells;
        best_bytes = bytes;
        best_fits = fits;
      }
    }
  }
  return best;
}

}  // namespace

template <typename T>
double pair_sum(const KernelSpec& spec, const T* a, int64_t n, const T* b, int64_t m, int64_t d,
                const PairSumOptions& opt, T* grad_a, T* grad_b, PairStats* stats) {
  const int threads = opt.num_threads > 0 ? opt.num_threads : omp_get_max_threads();
  const Operand<T> A(a, n, d);
  const Operand<T>* Bp = &A;
  Operand<T> B_storage = opt.symmetric ? Operand<T>(nullptr, 0, d) : Operand<T>(b, m, d);
  if (!opt.symmetric) Bp = &B_storage;
  const Operand<T>& B = *Bp;

  const int64_t dp = A.dp;
  const Grid grid = choose_grid(A.blocks(), B.blocks(), A.n_pad * dp * int64_t(sizeof(T)),
                                B.n_pad * dp * int64_t(sizeof(T)), opt.want_grad);
  const int64_t cells = grid.R * grid.C;
  std::vector<Buffer<T>> row_slots, col_slots;
  if (opt.want_grad) {
    for (int64_t c = 0; c < grid.C; ++c) row_slots.emplace_back(A.n_pad * dp);
    for (int64_t r = 0; r < grid.R; ++r) col_slots.emplace_back(B.n_pad * dp);
  }
  std::vector<double> cell_total(cells, 0.0), cell_squares(cells, 0.0);
  // Statistics slots, like the gradient slots: row sums per column group, column sums per row group.
  std::vector<std::vector<double>> row_stat_slots, col_stat_slots;
  if (stats) {
    row_stat_slots.assign(grid.C, std::vector<double>(A.n_pad, 0.0));
    col_stat_slots.assign(grid.R, std::vector<double>(B.n_pad, 0.0));
  }

#pragma omp parallel num_threads(threads)
  {
    TileScratch<T> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t cell = 0; cell < cells; ++cell) {
      const int64_t r = cell / grid.C, c = cell % grid.C;
      double total = 0;
      for (int64_t I = r; I < A.blocks(); I += grid.R) {
        for (int64_t J = c; J < B.blocks(); J += grid.C) {
          if (opt.symmetric && J < I) continue;
          const T weight = (opt.symmetric && J != I) ? T(2) : T(1);
          T* grad_rows = opt.want_grad ? row_slots[c].data() + I * TS * dp : nullptr;
          T* grad_cols = opt.want_grad ? col_slots[r].data() + J * TS * dp : nullptr;
          TileStats tile_stats;
          if (stats) {
            tile_stats.rows = row_stat_slots[c].data() + I * TS;
            // A diagonal tile of a symmetric block holds both orders of its pairs: its row sums are complete.
            tile_stats.cols = (opt.symmetric && I == J) ? nullptr : col_stat_slots[r].data() + J * TS;
            tile_stats.squares = &cell_squares[cell];
          }
          total += process_tile<T>(spec, A, I, B, J, opt.exclude_diag, weight, scratch,
                                   grad_rows, grad_cols, tile_stats);
        }
      }
      cell_total[cell] = total;
    }
  }

  double total = 0;
  for (double t : cell_total) total += t;
  if (stats) {
    stats->squares = 0;
    for (double q : cell_squares) stats->squares += q;
    // A symmetric block's column sums are row sums too (the other order of the same pairs).
    for (int64_t i = 0; i < n; ++i) {
      double r_sum = 0;
      for (const auto& slot : row_stat_slots) r_sum += slot[i];
      if (opt.symmetric)
        for (const auto& slot : col_stat_slots) r_sum += slot[i];
      stats->rows[i] = r_sum;
    }
    if (!opt.symmetric) {
      for (int64_t j = 0; j < m; ++j) {
        double c_sum = 0;
        for (const auto& slot : col_stat_slots) c_sum += slot[j];
        stats->cols[j] = c_sum;
      }
    }
  }
  if (!opt.want_grad) return total;

  // Sum the slots in a fixed order; with symmetric, a's gradient has both sides.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < d; ++k) {
      T g = 0;
      for (const Buffer<T>& slot : row_slots) g += slot.data()[i * dp + k];
      if (opt.symmetric)
        for (const Buffer<T>& slot : col_slots) g += slot.data()[i * dp + k];
      grad_a[i * d + k] = g;
    }
  }
  if (!opt.symmetric) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t j = 0; j < m; ++j) {
      for (int64_t k = 0; k < d; ++k) {
        T g = 0;
        for (const Buffer<T>& slot : col_slots) g += slot.data()[j * dp + k];
        grad_b[j * d + k] = g;
      }
    }
  }
  return total;
}

template double pair_sum<float>(const KernelSpec&, const float*, int64_t, const float*, int64_t,
                                int64_t, const PairSumOptions&, float*, float*, PairStats*);
template double pair_sum<double>(const KernelSpec&, const double*, int64_t, const double*, int64_t,
                                 int64_t, const PairSumOptions&, double*, double*, PairStats*);

}  // namespace fastmmd
