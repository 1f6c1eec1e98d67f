// What the processor offers and what a variant was compiled for: the import-time choice of the best variant
// (fastmmd/backends/cpu_variants.py) compares the two.
#pragma once

#include <pybind11/pybind11.h>

namespace fastmmd {

// The instruction sets of this compilation (the -m flags setup.py gave the variant), as macro names.
inline pybind11::list compiled_instruction_sets() {
  pybind11::list out;
#if defined(__SSE2__)
  out.append("sse2");
#endif
#if defined(__AVX2__)
  out.append("avx2");
#endif
#if defined(__FMA__)
  out.append("fma");
#endif
#if defined(__AVX512F__)
  out.append("avx512f");
#endif
#if defined(__AVX512DQ__)
  out.append("avx512dq");
#endif
#if defined(__AVX512BW__)
  out.append("avx512bw");
#endif
#if defined(__AVX512VL__)
  out.append("avx512vl");
#endif
#if defined(__ARM_NEON)
  out.append("neon");
#endif
  return out;
}

// {name: supported} for the x86 extensions the variants use. GCC's and Clang's __builtin_cpu_supports also
// check that the operating system saves the wider registers (XCR0), so a "true" can be executed. Empty off
// x86 and with other compilers: only the baseline variant is built there.
inline pybind11::dict cpu_features() {
  pybind11::dict out;
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  __builtin_cpu_init();
  out["sse2"] = static_cast<bool>(__builtin_cpu_supports("sse2"));
  out["avx2"] = static_cast<bool>(__builtin_cpu_supports("avx2"));
  out["fma"] = static_cast<bool>(__builtin_cpu_supports("fma"));
  out["avx512f"] = static_cast<bool>(__builtin_cpu_supports("avx512f"));
  out["avx512dq"] = static_cast<bool>(__builtin_cpu_supports("avx512dq"));
  out["avx512bw"] = static_cast<bool>(__builtin_cpu_supports("avx512bw"));
  out["avx512vl"] = static_cast<bool>(__builtin_cpu_supports("avx512vl"));
#endif
  return out;
}

}  // namespace fastmmd
