"""Kernel value objects: parameters, algebra, names, the terms(d) encoding, gram/diag against the formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fastmmd
from fastmmd.kernels import (
    KERNEL_NAMES,
    Energy,
    Family,
    Gaussian,
    InverseMultiquadric,
    Kernel,
    KernelSum,
    Laplacian,
    Linear,
    Polynomial,
    RationalQuadratic,
    get_kernel,
    resolve_kernel,
)
from tolerances import ENCODING_RTOL, FLOAT64_ATOL, SAME_ARITHMETIC_RTOL

# float64 Gram matrices against per-pair Python formulas.
RTOL, ATOL = SAME_ARITHMETIC_RTOL, FLOAT64_ATOL


def _points(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------- brute force


def _dist(a, b):
    return math.sqrt(sum((p - q) ** 2 for p, q in zip(a, b)))


def _dot(a, b):
    return sum(p * q for p, q in zip(a, b))


def _norm(a):
    return math.sqrt(_dot(a, a))


BRUTE_FORCE = [
    (Gaussian(1.5), lambda a, b: math.exp(-_dist(a, b) ** 2 / (2 * 1.5**2))),
    (
        Gaussian([0.5, 2.0]),
        lambda a, b: sum(math.exp(-_dist(a, b) ** 2 / (2 * s * s)) for s in (0.5, 2.0)),
    ),
    (
        RationalQuadratic(alpha=[0.1, 1.0, 10.0]),
        lambda a, b: sum((1 + _dist(a, b) ** 2 / (2 * al)) ** -al for al in (0.1, 1.0, 10.0)),
    ),
    (RationalQuadratic(alpha=2.0, scale=3.0), lambda a, b: (1 + _dist(a, b) ** 2 / (2 * 2.0 * 9.0)) ** -2.0),
    (Linear(), _dot),
    (Polynomial(), lambda a, b: (_dot(a, b) / len(a) + 1) ** 3),
    (Polynomial(degree=2, gamma=0.3, coef0=-0.5), lambda a, b: (0.3 * _dot(a, b) - 0.5) ** 2),
    (Laplacian(2.0), lambda a, b: math.exp(-_dist(a, b) / 2.0)),
    (InverseMultiquadric(c=1.5, beta=0.7), lambda a, b: (1.5**2 + _dist(a, b) ** 2) ** -0.7),
    (Energy(), lambda a, b: _norm(a) + _norm(b) - _dist(a, b)),
    (
        0.5 * Gaussian(1.0) + 2.0 * Linear(),
        lambda a, b: 0.5 * math.exp(-_dist(a, b) ** 2 / 2) + 2.0 * _dot(a, b),
    ),
]
BRUTE_IDS = [repr(k) for k, _ in BRUTE_FORCE]


@pytest.mark.parametrize("kernel, formula", BRUTE_FORCE, ids=BRUTE_IDS)
def test_gram_matches_formula(kernel, formula):
    a, b = _points(5, 3, 0), _points(4, 3, 1)
    expected = torch.tensor([[formula(p.tolist(), q.tolist()) for q in b] for p in a], dtype=torch.float64)
    torch.testing.assert_close(kernel.gram(a, b), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kernel, formula", BRUTE_FORCE, ids=BRUTE_IDS)
def test_diag_matches_formula(kernel, formula):
    a, b = _points(6, 3, 2), _points(6, 3, 3)
    expected = torch.tensor([formula(p.tolist(), q.tolist()) for p, q in zip(a, b)], dtype=torch.float64)
    torch.testing.assert_close(kernel.diag(a, b), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kernel, formula", BRUTE_FORCE, ids=BRUTE_IDS)
def test_self_gram_diagonal_is_the_true_diagonal(kernel, formula):
    a = _points(7, 4, 4) * 10
    expected = torch.tensor([formula(p.tolist(), p.tolist()) for p in a], dtype=torch.float64)
    torch.testing.assert_close(kernel.gram(a, a).diagonal(), expected, rtol=RTOL, atol=ATOL)


def test_self_gram_diagonal_has_exactly_zero_distance():
    a = _points(9, 5, 5) * 100
    assert torch.equal(Gaussian(1.0).gram(a, a).diagonal(), torch.ones(9, dtype=torch.float64))


def test_gram_of_a_sum_is_the_sum_of_grams():
    a, b = _points(5, 3, 6), _points(3, 3, 7)
    k1, k2 = RationalQuadratic(alpha=0.5), Energy()
    torch.testing.assert_close((k1 + 3.0 * k2).gram(a, b), k1.gram(a, b) + 3.0 * k2.gram(a, b), rtol=RTOL, atol=ATOL)


def test_polynomial_gamma_none_is_one_over_d():
    a, b = _points(4, 6, 8), _points(5, 6, 9)
    torch.testing.assert_close(
        Polynomial(degree=3).gram(a, b), Polynomial(degree=3, gamma=1 / 6).gram(a, b), rtol=RTOL, atol=ATOL
    )
    assert Polynomial().resolved_gamma(6) == 1 / 6
    assert Polynomial(gamma=0.25).resolved_gamma(6) == 0.25


# ------------------------------------------------------------------------------------------ finite gradients


@pytest.mark.parametrize("kernel", [Energy(), Laplacian(1.0), Energy() + Laplacian(0.5)], ids=repr)
def test_gradient_finite_where_points_coincide(kernel):
    a = _points(4, 3, 10)
    a[1] = a[0]
    a[2] = 0.0  # |a| = 0 too
    b = torch.cat([a[:2], _points(2, 3, 11)])  # rows 0 and 1 of b coincide with rows 0 and 1 of a
    x, y = a.clone().requires_grad_(), b.clone().requires_grad_()
    (kernel.gram(x, x).sum() + kernel.gram(x, y).sum() + kernel.diag(x, y).sum() + kernel.diag(x, x).sum()).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_energy_gradient_at_coinciding_points_is_that_of_the_norms():
    # k(a, b) = |a| + |b| - |a - b|: at a = b the |a - b| part contributes 0 to the gradient.
    a = _points(1, 3, 12).requires_grad_()
    b = a.detach().clone()
    Energy().diag(a, b).sum().backward()
    torch.testing.assert_close(a.grad, a.detach() / a.detach().norm(), rtol=RTOL, atol=ATOL)


def test_gradients_match_finite_differences():
    a, b = _points(3, 2, 13), _points(4, 2, 14)
    kernel = get_kernel("mix_rq_1dot") + Laplacian(1.0) + Energy() + Polynomial(degree=2)
    assert torch.autograd.gradcheck(lambda p, q: kernel.gram(p, q), (a.requires_grad_(), b.requires_grad_()))


# -------------------------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "make, parameter",
    [
        (lambda: Gaussian(0.0), "bandwidth"),
        (lambda: Gaussian(-1.0), "bandwidth"),
        (lambda: Gaussian(float("nan")), "bandwidth"),
        (lambda: Gaussian(float("inf")), "bandwidth"),
        (lambda: Gaussian([]), "bandwidth"),
        (lambda: Gaussian([1.0, 0.0]), "bandwidth"),
        (lambda: Gaussian(True), "bandwidth"),
        (lambda: Gaussian("1"), "bandwidth"),
        (lambda: Gaussian(torch.tensor(-1.0, requires_grad=True)), "bandwidth"),
        (lambda: Gaussian(torch.ones(1, 2, requires_grad=True)), "bandwidth"),
        (lambda: Laplacian(torch.tensor(1.0, requires_grad=True)), "bandwidth"),
        (lambda: RationalQuadratic(alpha=torch.tensor(-1.0, requires_grad=True)), "alpha"),
        (lambda: RationalQuadratic(scale=torch.ones(2, requires_grad=True)), "scale"),
        (lambda: RationalQuadratic(alpha=0.0), "alpha"),
        (lambda: RationalQuadratic(alpha=[]), "alpha"),
        (lambda: RationalQuadratic(alpha=[1.0, -2.0]), "alpha"),
        (lambda: RationalQuadratic(alpha=1.0, scale=0.0), "scale"),
        (lambda: Laplacian(0.0), "bandwidth"),
        (lambda: Laplacian(False), "bandwidth"),
        (lambda: InverseMultiquadric(c=0.0), "c"),
        (lambda: InverseMultiquadric(beta=0.0), "beta"),
        (lambda: InverseMultiquadric(beta=float("nan")), "beta"),
        (lambda: Polynomial(degree=0), "degree"),
        (lambda: Polynomial(degree=2.5), "degree"),
        (lambda: Polynomial(degree=3.0), "degree"),
        (lambda: Polynomial(degree=True), "degree"),
        (lambda: Polynomial(gamma=0.0), "gamma"),
        (lambda: Polynomial(gamma=-1.0), "gamma"),
        (lambda: Polynomial(coef0=float("inf")), "coef0"),
        (lambda: 2.0 * Gaussian(1.0) * float("nan"), "weight"),
        (lambda: True * Gaussian(1.0), "weight"),
        (lambda: KernelSum(()), "parts"),
    ],
)
def test_invalid_parameter_raises_value_error_naming_it(make, parameter):
    with pytest.raises(ValueError, match=parameter):
        make()


def test_parameters_accept_numpy_and_tensors():
    assert Gaussian(np.float32(2.0)) == Gaussian(2.0)
    assert Gaussian(np.array([2.0, 5.0])) == Gaussian((2.0, 5.0))
    assert Gaussian(torch.tensor(2.0)) == Gaussian(2)
    assert Polynomial(degree=np.int64(2)) == Polynomial(degree=2)


def test_kernels_are_immutable():
    k = Gaussian(1.0)
    with pytest.raises(AttributeError):
        k.bandwidth = 2.0


# -------------------------------------------------------------------------------------------- algebra


def test_sum_and_scaling_build_weighted_parts():
    g, lin = Gaussian(2.0), Linear()
    assert (g + lin).parts == ((1.0, g), (1.0, lin))
    assert (3 * g).parts == ((3.0, g),)
    assert (g * 3).parts == ((3.0, g),)
    assert (2.0 * (g + 0.5 * lin)).parts == ((2.0, g), (1.0, lin))
    assert (g + (lin + Energy())).parts == ((1.0, g), (1.0, lin), (1.0, Energy()))
    assert sum([g, lin]) == g + lin


def test_algebra_rejects_non_scalars():
    g = Gaussian(1.0)
    with pytest.raises(TypeError):
        g * g
    with pytest.raises(TypeError):
        g + 1.0
    with pytest.raises(TypeError):
        "2" * g


def test_equality_and_hash():
    assert Gaussian([2, 5]) == Gaussian((2.0, 5.0))
    assert hash(Gaussian(1)) == hash(Gaussian(1.0))
    assert Gaussian(1.0) != Laplacian(1.0)
    assert Linear() == Linear() and Linear() != Energy()
    assert Gaussian(1.0) + Linear() == Gaussian(1.0) + Linear()
    assert Gaussian(1.0) + Linear() != Linear() + Gaussian(1.0)
    assert len({Polynomial(), Polynomial(degree=3, gamma=None, coef0=1)}) == 1


@pytest.mark.parametrize(
    "kernel",
    [Gaussian([2, 5]), RationalQuadratic(0.5, scale=2), Polynomial(), Energy(), 0.5 * Gaussian(1) + Linear()],
    ids=repr,
)
def test_repr_is_readable_and_evaluates_back(kernel):
    namespace = {name: getattr(fastmmd, name) for name in fastmmd.__all__}
    assert eval(repr(kernel), namespace) == kernel


def test_sum_repr():
    assert repr(Gaussian(2.0) + 0.5 * Linear()) == "Gaussian(bandwidth=2.0) + 0.5 * Linear()"


def test_translation_invariance():
    for k in (Gaussian(1), RationalQuadratic(1), Laplacian(1), InverseMultiquadric(), Gaussian(1) + Laplacian(2)):
        assert k.translation_invariant
    for k in (Linear(), Polynomial(), Energy(), Gaussian(1) + Linear(), 2 * Energy()):
        assert not k.translation_invariant


# ---------------------------------------------------------------------------------------------- names


def test_every_name_resolves():
    assert set(KERNEL_NAMES) == {
        "gaussian", "rq", "polynomial", "linear", "laplacian", "imq", "energy", "mix_rbf", "mix_rq", "mix_rq_1dot",
    }
    for name in KERNEL_NAMES:
        assert isinstance(get_kernel(name), Kernel)


def test_named_kernels_and_presets():
    assert get_kernel("gaussian") == Gaussian(1.0)
    assert get_kernel("rq") == RationalQuadratic(alpha=1.0)
    assert get_kernel("polynomial") == Polynomial(degree=3, gamma=None, coef0=1.0)
    assert get_kernel("linear") == Linear()
    assert get_kernel("laplacian") == Laplacian(1.0)
    assert get_kernel("imq") == InverseMultiquadric(c=1.0, beta=0.5)
    assert get_kernel("energy") == Energy()
    assert get_kernel("mix_rbf") == Gaussian([2, 5, 10, 20, 40, 80])
    assert get_kernel("mix_rq") == RationalQuadratic(alpha=[0.1, 1, 10])
    assert get_kernel("mix_rq_1dot") == RationalQuadratic(alpha=[0.1, 1, 10]) + 1.0 * Linear()
    assert get_kernel("Mix_RBF") == get_kernel("mix_rbf")


def test_get_kernel_passes_kernels_through():
    k = Gaussian(3.0)
    assert get_kernel(k) is k
    assert resolve_kernel(k) is k


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="rbf") as info:
        get_kernel("rbf")
    for name in KERNEL_NAMES:
        assert repr(name) in str(info.value)


def test_non_kernel_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="kernel"):
        get_kernel(3)


# ---------------------------------------------------------------------------------------- terms(d)


def test_terms_encoding():
    d = 8
    cases = [
        (Gaussian([1.0, 2.0]), [[Family.GAUSSIAN, 1, 0.5, 0, 0], [Family.GAUSSIAN, 1, 0.125, 0, 0]]),
        (RationalQuadratic([0.5, 2.0], scale=2.0), [[1, 1, 1 / 4, 0.5, 0], [1, 1, 1 / 16, 2.0, 0]]),
        (Laplacian(4.0), [[2, 1, 0.25, 0, 0]]),
        (InverseMultiquadric(c=3.0, beta=0.25), [[3, 1, 9.0, 0.25, 0]]),
        (Energy(), [[4, 1, 0, 0, 0]]),
        (Linear(), [[5, 1, 0, 0, 0]]),
        (Polynomial(), [[6, 1, 1 / 8, 1.0, 3]]),
        (Polynomial(degree=2, gamma=0.5, coef0=-1), [[6, 1, 0.5, -1.0, 2]]),
        (2.0 * Gaussian(1.0) + 0.5 * Linear(), [[0, 2.0, 0.5, 0, 0], [5, 0.5, 0, 0, 0]]),
        (get_kernel("mix_rq_1dot"), [[1, 1, 5.0, 0.1, 0], [1, 1, 0.5, 1.0, 0], [1, 1, 0.05, 10.0, 0], [5, 1, 0, 0, 0]]),
    ]
    for kernel, rows in cases:
        terms = kernel.terms(d)
        assert terms.dtype == np.float64 and terms.shape == (len(rows), 5)
        np.testing.assert_allclose(terms, np.array(rows, dtype=np.float64), rtol=ENCODING_RTOL, err_msg=repr(kernel))


def test_family_codes_match_the_interface_table():
    assert [f.name for f in sorted(Family)] == [
        "GAUSSIAN", "RATIONAL_QUADRATIC", "LAPLACIAN", "INVERSE_MULTIQUADRIC", "ENERGY", "LINEAR", "POLYNOMIAL",
        "RATIONAL_QUADRATIC_LOG", "GAUSSIAN_R2",
    ]
    assert [int(f) for f in sorted(Family)] == list(range(9))


@pytest.mark.parametrize("d", [0, -1, 2.0, True])
def test_terms_rejects_bad_dimension(d):
    with pytest.raises(ValueError, match="d"):
        Linear().terms(d)


def _evaluate_terms(terms: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (T, 5) table of csrc/INTERFACE.md evaluated on all pairs, independently of the kernel classes."""
    r2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    dot = a @ b.T
    na, nb = np.linalg.norm(a, axis=1)[:, None], np.linalg.norm(b, axis=1)[None, :]
    out = np.zeros_like(r2)
    for family, w, p1, p2, p3 in terms:
        family = Family(int(family))
        if family == Family.GAUSSIAN:
            term = np.exp(-p1 * r2)
        elif family == Family.RATIONAL_QUADRATIC:
            term = (1 + p1 * r2) ** (-p2)
        elif family == Family.LAPLACIAN:
            term = np.exp(-p1 * np.sqrt(r2))
        elif family == Family.INVERSE_MULTIQUADRIC:
            term = (p1 + r2) ** (-p2)
        elif family == Family.ENERGY:
            term = na + nb - np.sqrt(r2)
        elif family == Family.LINEAR:
            term = dot
        elif family == Family.GAUSSIAN_R2:
            term = r2 * np.exp(-p1 * r2)
        elif family == Family.RATIONAL_QUADRATIC_LOG:
            term = np.log1p(p1 * r2) * (1 + p1 * r2) ** (-p2)
        else:
            term = (p1 * dot + p2) ** p3
        out += w * term
    return out


@pytest.mark.parametrize("kernel", [k for k, _ in BRUTE_FORCE] + [get_kernel(n) for n in KERNEL_NAMES], ids=repr)
def test_terms_encode_the_same_kernel_as_gram(kernel):
    a, b = _points(5, 3, 15), _points(6, 3, 16)
    expected = _evaluate_terms(kernel.terms(3), a.numpy(), b.numpy())
    np.testing.assert_allclose(kernel.gram(a, b).numpy(), expected, rtol=SAME_ARITHMETIC_RTOL, atol=FLOAT64_ATOL)


def _compiled_backend():
    from fastmmd.backends.cpu import _load_extension

    ext, reason = _load_extension()
    if ext is None:
        pytest.skip(reason)
    return ext


def test_terms_agree_with_the_compiled_backend():
    ext = _compiled_backend()
    a, b = _points(9, 4, 17), _points(7, 4, 18)
    kernel = get_kernel("mix_rq_1dot") + Laplacian(2.0) + InverseMultiquadric() + Energy() + Polynomial()
    total, _, _ = ext.pair_sum(a.numpy(), b.numpy(), kernel.terms(4), False, False, False, 1)
    assert total == pytest.approx(kernel.gram(a, b).sum().item(), rel=SAME_ARITHMETIC_RTOL)
