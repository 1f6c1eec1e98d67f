// Kernel families and the tile epilogue: from a tile of inner products and the squared norms, the kernel
// values and the coefficients of their gradients. Codes and parameters are listed in INTERFACE.md.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fast_math.h"

namespace fastmmd {

enum Family : int {
  GAUSSIAN = 0,
  RATIONAL_QUADRATIC = 1,
  LAPLACIAN = 2,
  INVERSE_MULTIQUADRIC = 3,
  ENERGY = 4,
  LINEAR = 5,
  POLYNOMIAL = 6,
  // log(1 + p1 r2) (1 + p1 r2)^(-p2): the derivative of a rational quadratic in alpha is made of it
  RATIONAL_QUADRATIC_LOG = 7,
  // r2 exp(-p1 r2): the derivative of a Gaussian in its bandwidth is made of it
  GAUSSIAN_R2 = 8,
};
constexpr int kNumFamilies = 9;
// The largest polynomial degree the epilogue unrolls (fastmmd.kernels.MAX_COMPILED_DEGREE; a test checks
// that the two agree through fastmmd._C.MAX_POLYNOMIAL_DEGREE).
constexpr int kMaxPolynomialDegree = 64;

struct Term {
  int family;
  double weight, p1, p2, p3;
};

struct KernelSpec {
  std::vector<Term> terms;
  bool needs_r2 = false;    // some term depends on |a - b|^2
  bool needs_sqrt = false;  // some term depends on |a - b| (infinite derivative at 0)
  double energy_weight = 0; // total weight of the |a| + |b| parts of Energy terms

  explicit KernelSpec(std::vector<Term> t) : terms(std::move(t)) {
    for (const Term& term : terms) {
      if (term.family <= ENERGY || term.family >= RATIONAL_QUADRATIC_LOG) needs_r2 = true;
      if (term.family == LAPLACIAN || term.family == ENERGY) needs_sqrt = true;
      if (term.family == ENERGY) energy_weight += term.weight;
    }
  }
};

// Per-row scratch of one tile: values and the derivatives dk/dr2 (radial) and dk/d(dot) per column.
template <typename T>
struct RowScratch {
  std::vector<T> r2, dist, val, d_r2, d_dot;
  explicit RowScratch(int64_t width)
      : r2(width), dist(width), val(width), d_r2(width), d_dot(width) {}
};

// Squared distances of one row of a tile from its inner products:
//   s.r2[j] = max(|a_i|^2 + |b_j|^2 - 2 a_i.b_j, 0), dot[j] = a_i . b_j, sq_a = |a_i|^2, sq_b[j] = |b_j|^2.
// A NaN stays NaN (v < 0 is false for it): a clamp written `v > 0 ? v : 0` would turn it into distance 0.
// Pairs this formula cannot resolve (see is_near_pair) are recomputed by the caller from explicit differences.
template <typename T>
inline void squared_distances_row(int64_t width, const T* __restrict dot, T sq_a, const T* __restrict sq_b,
                                  RowScratch<T>& s) {
  T* __restrict r2 = s.r2.data();
#pragma omp simd
  for (int64_t j = 0; j < width; ++j) {
    const T v = sq_a + sq_b[j] - 2 * dot[j];
    r2[j] = v < 0 ? T(0) : v;
  }
}

// Relative size r2 / (|a|^2 + |b|^2) below which |a|^2 + |b|^2 - 2 a.b has lost too many digits to
// cancellation for the kernels with |a - b|: their gradient (a - b) / |a - b| needs the distance to full
// relative precision, so such pairs take explicit differences. Relative error of r2 at the threshold:
// about 8 eps / threshold (5e-5 in float32, 1e-10 in float64).
template <typename T>
constexpr T near_pair_threshold() {
  return sizeof(T) == sizeof(float) ? T(1e-2) : T(1e-5);
}

// Evaluates the kernel on one row of a tile, from s.r2 (filled by squared_distances_row and refined).
//   dot[j] = a_i . b_j, norm_a = |a_i|, norm_b[j] = |b_j|, for j < width.
// Fills s.val with k(a_i, b_j), s.d_r2 with dk/d(r2) and s.d_dot with dk/d(dot).
template <typename T>
inline void evaluate_row(const KernelSpec& spec, int64_t width, const T* __restrict dot,
                         const T* __restrict norm_b, T norm_a, RowScratch<T>& s) {
  T* __restrict r2 = s.r2.data();
  T* __restrict dist = s.dist.data();
  T* __restrict val = s.val.data();
  T* __restrict d_r2 = s.d_r2.data();
  T* __restrict d_dot = s.d_dot.data();
#pragma omp simd
  for (int64_t j = 0; j < width; ++j) {
    val[j] = 0;
    d_r2[j] = 0;
    d_dot[j] = 0;
  }
  if (spec.needs_sqrt) {
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) dist[j] = std::sqrt(r2[j]);
  }
  for (const Term& term : spec.terms) {
    const T w = static_cast<T>(term.weight);
    const T p1 = static_cast<T>(term.p1);
    const T p2 = static_cast<T>(term.p2);
    switch (term.family) {
      case GAUSSIAN:
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          const T e = w * fexp(-p1 * r2[j]);
          val[j] += e;
          d_r2[j] -= p1 * e;
        }
        break;
      case RATIONAL_QUADRATIC:
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          const T base = 1 + p1 * r2[j];
          const T e = w * fexp(-p2 * flog1p(p1 * r2[j]));
          val[j] += e;
          d_r2[j] -= p2 * p1 * e / base;
        }
        break;
      case LAPLACIAN:
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          const T e = w * fexp(-p1 * dist[j]);
          val[j] += e;
          d_r2[j] -= dist[j] > 0 ? p1 * e / (2 * dist[j]) : T(0);
        }
        break;
      case RATIONAL_QUADRATIC_LOG:
        // w L e^(-p2 L), L = log1p(p1 r2): dk/dr2 = w p1 e^(-p2 L) (1 - p2 L) / (1 + p1 r2)
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          const T log_base = flog1p(p1 * r2[j]);
          const T e = w * fexp(-p2 * log_base);
          val[j] += log_base * e;
          d_r2[j] += p1 * e * (1 - p2 * log_base) / (1 + p1 * r2[j]);
        }
        break;
      case GAUSSIAN_R2:
        // w r2 e^(-p1 r2): dk/dr2 = w e^(-p1 r2) (1 - p1 r2)
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          const T e = w * fexp(-p1 * r2[j]);
          val[j] += r2[j] * e;
          d_r2[j] += e * (1 - p1 * r2[j]);
        }
        break;
      case INVERSE_MULTIQUADRIC:
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          const T base = p1 + r2[j];
          const T e = w * fexp(-p2 * flog(base));
          val[j] += e;
          d_r2[j] -= p2 * e / base;
        }
        break;
      case ENERGY:
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          val[j] += w * (norm_a + norm_b[j] - dist[j]);
          d_r2[j] -= dist[j] > 0 ? w / (2 * dist[j]) : T(0);
        }
        break;
      case LINEAR:
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          val[j] += w * dot[j];
          d_dot[j] += w;
        }
        break;
      case POLYNOMIAL: {
        const int degree = static_cast<int>(term.p3);
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) {
          const T base = p1 * dot[j] + p2;
          T lower = 1;  // base^(degree - 1)
          for (int q = 1; q < degree; ++q) lower *= base;
          val[j] += w * lower * base;
          d_dot[j] += w * static_cast<T>(degree) * p1 * lower;
        }
        break;
      }
      default:
        break;  // rejected when the spec is parsed
    }
  }
}

}  // namespace fastmmd
