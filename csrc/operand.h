// One input of the tiled reduction, copied once into the layouts the tiles read: zero-padded rows, each
// block of rows transposed (the right operand of the inner-product tile), and the row norms.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "simd.h"

namespace fastmmd {

// Rows per tile, on both sides: a multiple of MR and of nr<T>() for float and double.
constexpr int64_t TS = 96;

inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// A zero-initialised, 64-byte-aligned array that owns its memory.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(int64_t count) : size_(count) {
    const size_t bytes = static_cast<size_t>(round_up(std::max<int64_t>(count, 1) * sizeof(T), 64));
    data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
    std::fill(data_, data_ + count, T(0));
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr; }
  Buffer& operator=(Buffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ~Buffer() { std::free(data_); }
  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  T* data_ = nullptr;
  int64_t size_ = 0;
};

template <typename T>
struct Operand {
  int64_t n, d, n_pad, dp;  // rows, features, rows padded to TS, features padded to nr<T>()
  Buffer<T> rows;           // (n_pad, dp) row-major
  Buffer<T> blocks_t;       // (n_pad / TS, dp, TS): block I holds rows I*TS.. transposed
  Buffer<T> sq;             // (n_pad,) squared norms
  Buffer<T> norm;           // (n_pad,) norms

  Operand(const T* x, int64_t n_, int64_t d_)
      : n(n_), d(d_), n_pad(round_up(std::max<int64_t>(n_, 1), TS)), dp(round_up(d_, nr<T>())),
        rows(n_pad * dp), blocks_t(n_pad * dp), sq(n_pad), norm(n_pad) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t k = 0; k < d; ++k) {
        const T v = x[i * d + k];
        rows.data()[i * dp + k] = v;
        blocks_t.data()[(i / TS) * dp * TS + k * TS + (i % TS)] = v;
        s += static_cast<double>(v) * static_cast<double>(v);
      }
      sq.data()[i] = static_cast<T>(s);
      norm.data()[i] = static_cast<T>(std::sqrt(s));
    }
  }

  int64_t blocks() const { return n_pad / TS; }
  const T* row_block(int64_t block) const { return rows.data() + block * TS * dp; }
  const T* transposed_block(int64_t block) const { return blocks_t.data() + block * TS * dp; }
};

}  // namespace fastmmd
