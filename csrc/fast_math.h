// exp and log for the kernel epilogue. float uses branch-free Cephes-style approximations (about 1 ulp)
// that the compiler vectorises inside `omp simd` loops; double uses the C library, for full accuracy.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace fastmmd {

inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

inline int32_t float_to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// exp(x) for x <= 88; inputs below -87.3 give about 1e-38 instead of a denormal or 0.
inline float exp_approx(float x) {
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.3f ? 88.3f : x;
  // Round x / ln 2 to the nearest integer z by adding 1.5 * 2^23 (floor would not vectorise).
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float z = shifted - 12582912.0f;
  const int32_t zi = float_to_bits(shifted) - 0x4B400000;
  float r = x - z * 0.693359375f;
  r = r + z * 2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r2 + r + 1.0f;
  return y * bits_to_float((zi + 127) << 23);
}

// log(x) for x > 0 in the normal range; NaN and +inf come back as they are (the bit manipulations below
// would give a finite number for them).
inline float log_approx(float x) {
  const int32_t bits = float_to_bits(x);
  int32_t e = ((bits >> 23) & 0xff) - 126;
  float m = bits_to_float((bits & 0x007fffff) | 0x3f000000);  // mantissa in [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  e -= small ? 1 : 0;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  const float fe = static_cast<float>(e);
  float y = p * m * z;
  y += fe * -2.12194440e-4f;
  y -= 0.5f * z;
  const float result = m + y + fe * 0.693359375f;
  return x <= 3.40282347e+38f ? result : x;
}

// log(1 + x) for x >= 0 to a few ulp also where 1 + x rounds (x below float's epsilon, or where log(1 + x)
// would lose the digits of x that 1 + x drops): log(u) * x / (u - 1) with u = 1 + x (Goldberg's formula),
// branch-free so that it vectorises.
inline float log1p_approx(float x) {
  const float u = 1.0f + x;
  const float um1 = u - 1.0f;
  const float ratio = x / (um1 == 0.0f ? 1.0f : um1);
  return um1 == 0.0f ? x : log_approx(u) * ratio;
}

inline float fexp(float x) { return exp_approx(x); }
inline double fexp(double x) { return std::exp(x); }
inline float flog(float x) { return log_approx(x); }
inline double flog(double x) { return std::log(x); }
inline float flog1p(float x) { return log1p_approx(x); }
inline double flog1p(double x) { return std::log1p(x); }

}  // namespace fastmmd
