// pybind11 bindings of the C++ backend, built once per instruction-set variant as fastmmd._C_<variant>
// (setup.py defines FASTMMD_MODULE and FASTMMD_VARIANT). The interface is described in INTERFACE.md.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "cpu_features.h"
#include "kernel_matmul.h"
#include "kernel_terms.h"
#include "pair_sum.h"

#ifndef FASTMMD_MODULE
#error "setup.py defines FASTMMD_MODULE (the extension's name) and FASTMMD_VARIANT"
#endif

namespace py = pybind11;
using fastmmd::KernelSpec;
using fastmmd::PairSumOptions;
using fastmmd::Term;

namespace {

KernelSpec parse_terms(const py::array& terms_obj) {
  auto terms = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(terms_obj);
  if (!terms || terms.ndim() != 2 || terms.shape(1) != 5)
    throw py::value_error("terms must be a float64 array of shape (T, 5)");
  if (terms.shape(0) == 0) throw py::value_error("terms must hold at least one kernel term");
  std::vector<Term> out;
  auto t = terms.unchecked<2>();
  for (py::ssize_t r = 0; r < terms.shape(0); ++r) {
    const double code = t(r, 0);
    Term term{static_cast<int>(code), t(r, 1), t(r, 2), t(r, 3), t(r, 4)};
    if (code != std::floor(code) || term.family < 0 || term.family >= fastmmd::kNumFamilies)
      throw py::value_error("terms: unknown kernel family code " + std::to_string(code));
    for (int q = 1; q < 5; ++q)
      if (!std::isfinite(t(r, q)))
        throw py::value_error("terms: kernel parameters must be finite (row " + std::to_string(r) + ")");
    if (term.family == fastmmd::POLYNOMIAL &&
        (term.p3 != std::floor(term.p3) || term.p3 < 1 || term.p3 > fastmmd::kMaxPolynomialDegree))
      throw py::value_error("terms: polynomial degree must be an integer in [1, " +
                            std::to_string(fastmmd::kMaxPolynomialDegree) + "]");
    out.push_back(term);
  }
  return KernelSpec(std::move(out));
}

template <typename T>
py::tuple run(const py::array& a_obj, const py::array& b_obj, const KernelSpec& spec,
              const PairSumOptions& opt) {
  auto a = py::array_t<T, py::array::c_style>::ensure(a_obj);
  auto b = py::array_t<T, py::array::c_style>::ensure(b_obj);
  if (!a || !b) throw py::type_error("a and b must be arrays of the same floating dtype");
  const int64_t n = a.shape(0), m = b.shape(0), d = a.shape(1);

  py::object grad_a = py::none(), grad_b = py::none();
  T* ga = nullptr;
  T* gb = nullptr;
  if (opt.want_grad) {
    py::array_t<T> arr_a({n, d});
    ga = arr_a.mutable_data();
    grad_a = arr_a;
    if (!opt.symmetric) {
      py::array_t<T> arr_b({m, d});
      gb = arr_b.mutable_data();
      grad_b = arr_b;
    }
  }
  const T* pa = a.data();
  const T* pb = b.data();
  double total;
  {
    py::gil_scoped_release release;
    total = fastmmd::pair_sum<T>(spec, pa, n, pb, m, d, opt, ga, gb);
  }
  return py::make_tuple(total, grad_a, grad_b);
}

// The checks shared by pair_sum and pair_stats, and their options.
PairSumOptions checked_pair_options(const py::array& a, const py::array& b, bool symmetric, bool exclude_diag,
                                    bool want_grad, int num_threads) {
  if (a.ndim() != 2) throw py::value_error("a must be 2-D (n, d)");
  if (b.ndim() != 2) throw py::value_error("b must be 2-D (m, d)");
  if (a.shape(1) != b.shape(1)) throw py::value_error("a and b must have the same number of columns");
  if (!a.dtype().is(b.dtype())) throw py::type_error("a and b must have the same dtype");
  if (!(a.flags() & py::array::c_style)) throw py::value_error("a must be C-contiguous");
  if (!(b.flags() & py::array::c_style)) throw py::value_error("b must be C-contiguous");
  if (symmetric && !a.is(b)) throw py::value_error("symmetric=True needs b to be a itself");
  if (num_threads < 0) throw py::value_error("num_threads must be >= 0");
  if (a.shape(1) < 1) throw py::value_error("a and b must have at least one feature column");
  if (exclude_diag && a.shape(0) != b.shape(0))
    throw py::value_error("exclude_diag needs as many rows in b as in a");
  PairSumOptions opt;
  opt.symmetric = symmetric;
  opt.exclude_diag = exclude_diag;
  opt.want_grad = want_grad;
  opt.num_threads = num_threads;
  return opt;
}

py::tuple pair_sum(const py::array& a, const py::array& b, const py::array& terms, bool symmetric,
                   bool exclude_diag, bool want_grad, int num_threads) {
  const PairSumOptions opt = checked_pair_options(a, b, symmetric, exclude_diag, want_grad, num_threads);
  const KernelSpec spec = parse_terms(terms);
  if (a.dtype().is(py::dtype::of<float>())) return run<float>(a, b, spec, opt);
  if (a.dtype().is(py::dtype::of<double>())) return run<double>(a, b, spec, opt);
  throw py::type_error("a and b must be float32 or float64");
}

template <typename T>
py::tuple run_stats(const py::array& a_obj, const py::array& b_obj, const KernelSpec& spec,
                    const PairSumOptions& opt) {
  auto a = py::array_t<T, py::array::c_style>::ensure(a_obj);
  auto b = py::array_t<T, py::array::c_style>::ensure(b_obj);
  if (!a || !b) throw py::type_error("a and b must be arrays of the same floating dtype");
  const int64_t n = a.shape(0), m = b.shape(0), d = a.shape(1);
  py::array_t<double> rows(n);
  py::object cols = py::none();
  fastmmd::PairStats stats;
  stats.rows = rows.mutable_data();
  if (!opt.symmetric) {
    py::array_t<double> arr(m);
    stats.cols = arr.mutable_data();
    cols = arr;
  }
  double total;
  {
    py::gil_scoped_release release;
    total = fastmmd::pair_sum<T>(spec, a.data(), n, b.data(), m, d, opt, nullptr, nullptr, &stats);
  }
  return py::make_tuple(total, rows, cols, stats.squares);
}

py::tuple pair_stats(const py::array& a, const py::array& b, const py::array& terms, bool symmetric,
                     bool exclude_diag, int num_threads) {
  const PairSumOptions opt = checked_pair_options(a, b, symmetric, exclude_diag, false, num_threads);
  const KernelSpec spec = parse_terms(terms);
  if (a.dtype().is(py::dtype::of<float>())) return run_stats<float>(a, b, spec, opt);
  if (a.dtype().is(py::dtype::of<double>())) return run_stats<double>(a, b, spec, opt);
  throw py::type_error("a and b must be float32 or float64");
}

template <typename T>
py::tuple run_matmul(const py::array& a_obj, const py::array& b_obj, const py::array& v_obj,
                     const KernelSpec& spec, const fastmmd::KernelMatmulOptions& opt) {
  auto a = py::array_t<T, py::array::c_style>::ensure(a_obj);
  auto b = py::array_t<T, py::array::c_style>::ensure(b_obj);
  auto v = py::array_t<T, py::array::c_style>::ensure(v_obj);
  if (!a || !b || !v) throw py::type_error("a, b and v must be arrays of the same floating dtype");
  const int64_t n = a.shape(0), m = b.shape(0), d = a.shape(1), p = v.shape(1);
  py::array_t<T> out({n, p});
  py::object sq = py::none();
  T* sq_data = nullptr;
  if (opt.want_sq) {
    py::array_t<T> arr(n);
    sq_data = arr.mutable_data();
    sq = arr;
  }
  T* out_data = out.mutable_data();
  {
    py::gil_scoped_release release;
    fastmmd::kernel_matmul<T>(spec, a.data(), n, b.data(), m, d, v.data(), p, opt, out_data, sq_data);
  }
  return py::make_tuple(out, sq);
}

py::tuple kernel_matmul(const py::array& a, const py::array& b, const py::array& v, const py::array& terms,
                        bool exclude_diag, bool want_sq, int num_threads) {
  if (a.ndim() != 2) throw py::value_error("a must be 2-D (n, d)");
  if (b.ndim() != 2) throw py::value_error("b must be 2-D (m, d)");
  if (v.ndim() != 2) throw py::value_error("v must be 2-D (m, p)");
  if (a.shape(1) != b.shape(1)) throw py::value_error("a and b must have the same number of columns");
  if (a.shape(1) < 1) throw py::value_error("a and b must have at least one feature column");
  if (v.shape(0) != b.shape(0)) throw py::value_error("v must have as many rows as b");
  if (v.shape(1) < 1) throw py::value_error("v must have at least one column");
  if (!a.dtype().is(b.dtype()) || !a.dtype().is(v.dtype()))
    throw py::type_error("a, b and v must have the same dtype");
  for (const py::array* arr : {&a, &b, &v})
    if (!(arr->flags() & py::array::c_style)) throw py::value_error("a, b and v must be C-contiguous");
  if (exclude_diag && a.shape(0) != b.shape(0))
    throw py::value_error("exclude_diag needs as many rows in b as in a");
  if (num_threads < 0) throw py::value_error("num_threads must be >= 0");
  const KernelSpec spec = parse_terms(terms);
  fastmmd::KernelMatmulOptions opt;
  opt.exclude_diag = exclude_diag;
  opt.want_sq = want_sq;
  opt.num_threads = num_threads;
  if (a.dtype().is(py::dtype::of<float>())) return run_matmul<float>(a, b, v, spec, opt);
  if (a.dtype().is(py::dtype::of<double>())) return run_matmul<double>(a, b, v, spec, opt);
  throw py::type_error("a, b and v must be float32 or float64");
}

}  // namespace

PYBIND11_MODULE(FASTMMD_MODULE, m) {
  m.doc() = "fastmmd's C++ CPU backend: fused tiled kernel sums (see csrc/INTERFACE.md)";
  m.attr("VARIANT") = FASTMMD_VARIANT;
  m.attr("COMPILED_FOR") = fastmmd::compiled_instruction_sets();
  m.def("cpu_features", &fastmmd::cpu_features,
        "The instruction sets this CPU and its operating system support, as far as the variants need them.");
  m.def("pair_sum", &pair_sum, py::arg("a"), py::arg("b"), py::arg("terms"),
        py::arg("symmetric") = false, py::arg("exclude_diag") = false, py::arg("want_grad") = false,
        py::arg("num_threads") = 0,
        "Sum over pairs of k(a_i, b_j), and its gradients: (total, grad_a, grad_b).");
  m.def("pair_stats", &pair_stats, py::arg("a"), py::arg("b"), py::arg("terms"), py::arg("symmetric") = false,
        py::arg("exclude_diag") = false, py::arg("num_threads") = 0,
        "Sum over pairs of k(a_i, b_j) with its row sums, column sums and sum of squares: "
        "(total, rows, cols, squares).");
  m.def("kernel_matmul", &kernel_matmul, py::arg("a"), py::arg("b"), py::arg("v"), py::arg("terms"),
        py::arg("exclude_diag") = false, py::arg("want_sq") = false, py::arg("num_threads") = 0,
        "K(a, b) @ v without forming K, and optionally the row sums of K∘K: (out, sq).");
  m.attr("GAUSSIAN") = int(fastmmd::GAUSSIAN);
  m.attr("RATIONAL_QUADRATIC") = int(fastmmd::RATIONAL_QUADRATIC);
  m.attr("LAPLACIAN") = int(fastmmd::LAPLACIAN);
  m.attr("INVERSE_MULTIQUADRIC") = int(fastmmd::INVERSE_MULTIQUADRIC);
  m.attr("ENERGY") = int(fastmmd::ENERGY);
  m.attr("LINEAR") = int(fastmmd::LINEAR);
  m.attr("POLYNOMIAL") = int(fastmmd::POLYNOMIAL);
  m.attr("RATIONAL_QUADRATIC_LOG") = int(fastmmd::RATIONAL_QUADRATIC_LOG);
  m.attr("GAUSSIAN_R2") = int(fastmmd::GAUSSIAN_R2);
  m.attr("MAX_POLYNOMIAL_DEGREE") = fastmmd::kMaxPolynomialDegree;
}
