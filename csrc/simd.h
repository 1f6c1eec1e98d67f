// Portable SIMD vectors (GCC/Clang vector extensions) and the register-blocked micro-kernel
// shared by the inner-product tile and the two gradient products.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastmmd {

// The widest vectors the target has (AVX-512, AVX or SSE2/NEON width). aligned(sizeof(T)) allows loads from any element.
template <typename T>
struct Simd;

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
// Micro-tile shape: MR rows x (NV vectors) columns; 24 accumulators of the 32 vector registers.
constexpr int MR = 12;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
// Micro-tile shape: MR rows x (NV vectors) columns; 12 accumulators of the 16 vector registers.
constexpr int MR = 6;
#else
// SSE2 or NEON (the baseline variant): 16-byte registers, 12 accumulators of the 16 (32 on NEON).
constexpr int kVectorBytes = 16;
constexpr int MR = 6;
#endif
constexpr int NV = 2;

template <>
struct Simd<float> {
  typedef float vec __attribute__((vector_size(kVectorBytes), aligned(4)));
  static constexpr int width = kVectorBytes / 4;
};

template <>
struct Simd<double> {
  typedef double vec __attribute__((vector_size(kVectorBytes), aligned(8)));
  static constexpr int width = kVectorBytes / 8;
};

template <typename T>
constexpr int nr() { return NV * Simd<T>::width; }

// C[0:MR, 0:nr] += sum_k A[r, k] * B[k, 0:nr]
// A row-major with leading dimension lda, B row-major with leading dimension ldb, C with ldc.
template <typename T>
inline void micro_kernel(int64_t kdim, const T* __restrict a, int64_t lda, const T* __restrict b,
                         int64_t ldb, T* __restrict c, int64_t ldc) {
  typedef typename Simd<T>::vec V;
  constexpr int W = Simd<T>::width;
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = *reinterpret_cast<const V*>(c + r * ldc + v * W);
  for (int64_t k = 0; k < kdim; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = *reinterpret_cast<const V*>(b + k * ldb + v * W);
    for (int r = 0; r < MR; ++r) {
      const T s = a[r * lda + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += s * bv[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) *reinterpret_cast<V*>(c + r * ldc + v * W) = acc[r][v];
}

// C[0:rows, 0:cols] += A[0:rows, 0:kdim] @ B[0:kdim, 0:cols]; rows a multiple of MR, cols of nr<T>().
// The k dimension is split in chunks so that the operands of one micro-tile stay in L1.
template <typename T>
inline void gemm_accumulate(int64_t rows, int64_t cols, int64_t kdim, const T* a, int64_t lda,
                            const T* b, int64_t ldb, T* c, int64_t ldc) {
  constexpr int64_t KC = 256;
  constexpr int NR = nr<T>();
  for (int64_t k0 = 0; k0 < kdim; k0 += KC) {
    const int64_t kc = kdim - k0 < KC ? kdim - k0 : KC;
    for (int64_t j = 0; j < cols; j += NR)
      for (int64_t i = 0; i < rows; i += MR)
        micro_kernel<T>(kc, a + i * lda + k0, lda, b + k0 * ldb + j, ldb, c + i * ldc + j, ldc);
  }
}

}  // namespace fastmmd
