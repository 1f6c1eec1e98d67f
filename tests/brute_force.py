"""Independent float64 brute-force MMD² (numpy and plain Python; does not import fastmmd).

A kernel is described here by a list of ``Term``s, each a weighted summand of one family, with the
formulas of docs/kernels.md written out directly (explicit differences ``a - b``, never the
‖a‖² + ‖b‖² − 2aᵀb expansion).  The tests build the fastmmd kernel and the matching ``Term`` list
from the same case description, so the truth here never depends on the code under test.

Two independent routes:
- ``mmd2_loops``: plain Python loops over pairs straight from the estimator formulas (tiny shapes only).
- ``mmd2_terms``: vectorised numpy (chunked over rows) with per-estimator weight matrices; also gives the
  three normalised terms T_xx, T_yy, T_xy, their gradients, and the gradient of MMD² (analytic kernel
  derivatives), used for the error scales of the tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

FAMILIES = ("gaussian", "gaussian_dsigma", "rq", "rq_dalpha", "laplacian", "imq", "energy", "linear", "polynomial")
ESTIMATORS = ("unbiased", "biased", "u-statistic", "linear")


@dataclass(frozen=True)
class Term:
    """weight * family(a, b; params).

    gaussian: sigma            exp(-|a-b|² / (2 sigma²))
    gaussian_dsigma: sigma     d/dsigma of gaussian: |a-b|² / sigma³ exp(-|a-b|² / (2 sigma²))
    rq:       alpha, scale     (1 + |a-b|² / (2 alpha scale²)) ** -alpha
    rq_dalpha: alpha, scale    d/dalpha of rq: (1 + u) ** -alpha * (u / (1 + u) - log(1 + u)),
                               u = |a-b|² / (2 alpha scale²)
    laplacian: sigma           exp(-|a-b| / sigma)
    imq:      c, beta          (c² + |a-b|²) ** -beta
    energy:                    |a| + |b| - |a-b|
    linear:                    aᵀb
    polynomial: degree, gamma, coef0   (gamma aᵀb + coef0) ** degree   (gamma None: 1/d)
    """

    family: str
    weight: float = 1.0
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}")


# --------------------------------------------------------------------------------------------
# Plain Python, one pair at a time.


def _term_scalar(t: Term, a, b) -> float:
    a = [float(v) for v in a]
    b = [float(v) for v in b]
    p = t.params
    r2 = sum((ai - bi) ** 2 for ai, bi in zip(a, b))
    dot = sum(ai * bi for ai, bi in zip(a, b))
    if t.family == "gaussian":
        v = math.exp(-r2 / (2.0 * p["sigma"] ** 2))
    elif t.family == "gaussian_dsigma":
        v = r2 / p["sigma"] ** 3 * math.exp(-r2 / (2.0 * p["sigma"] ** 2))
    elif t.family == "rq":
        alpha, scale = p["alpha"], p.get("scale", 1.0)
        v = (1.0 + r2 / (2.0 * alpha * scale**2)) ** (-alpha)
    elif t.family == "rq_dalpha":
        alpha, scale = p["alpha"], p.get("scale", 1.0)
        u = r2 / (2.0 * alpha * scale**2)
        v = (1.0 + u) ** (-alpha) * (u / (1.0 + u) - math.log1p(u))
    elif t.family == "laplacian":
        v = math.exp(-math.sqrt(r2) / p["sigma"])
    elif t.family == "imq":
        v = (p["c"] ** 2 + r2) ** (-p["beta"])
    elif t.family == "energy":
        v = math.sqrt(sum(ai * ai for ai in a)) + math.sqrt(sum(bi * bi for bi in b)) - math.sqrt(r2)
    elif t.family == "linear":
        v = dot
    else:  # polynomial
        gamma = p.get("gamma")
        if gamma is None:
            gamma = 1.0 / len(a)
        v = (gamma * dot + p.get("coef0", 1.0)) ** p["degree"]
    return t.weight * v


def k_scalar(terms, a, b) -> float:
    return sum(_term_scalar(t, a, b) for t in terms)


def mmd2_loops(terms, x, y, estimator: str) -> float:
    """MMD² straight from the estimator formulas (docs/mmd.md), pair by pair, true diagonal."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, m = len(x), len(y)
    k = lambda a, b: k_scalar(terms, a, b)  # noqa: E731
    if estimator == "linear":
        if n != m:
            raise ValueError("linear estimator needs n == m")
        half = n // 2
        h = 0.0
        for i in range(half):
            x1, x2, y1, y2 = x[2 * i], x[2 * i + 1], y[2 * i], y[2 * i + 1]
            h += k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
        return h / half
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m))
    if estimator == "biased":
        return sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)
    trxx = sum(k(x[i], x[i]) for i in range(n))
    tryy = sum(k(y[j], y[j]) for j in range(m))
    if estimator == "unbiased":
        return (sxx - trxx) / (n * (n - 1)) + (syy - tryy) / (m * (m - 1)) - 2.0 * sxy / (n * m)
    if estimator == "u-statistic":
        if n != m:
            raise ValueError("u-statistic needs n == m")
        trxy = sum(k(x[i], y[i]) for i in range(n))
        return (sxx - trxx) / (n * (n - 1)) + (syy - tryy) / (n * (n - 1)) - 2.0 * (sxy - trxy) / (n * (n - 1))
    raise ValueError(f"unknown estimator {estimator!r}")


# --------------------------------------------------------------------------------------------
# Vectorised numpy with explicit differences, chunked over rows (memory O(chunk * m * d)).

_CHUNK = 64


def _radial_g(t: Term, r2):
    """(g(r2), dg/dr2) for radial families; kernel = g(|a-b|²)."""
    p = t.params
    if t.family == "gaussian":
        c = 1.0 / (2.0 * p["sigma"] ** 2)
        g = np.exp(-c * r2)
        return g, -c * g
    if t.family == "rq":
        alpha, scale = p["alpha"], p.get("scale", 1.0)
        c = 1.0 / (2.0 * alpha * scale**2)
        base = 1.0 + c * r2
        return base ** (-alpha), -alpha * c * base ** (-alpha - 1.0)
    if t.family == "gaussian_dsigma":
        s = p["sigma"]
        e = np.exp(-r2 / (2.0 * s**2))
        return r2 / s**3 * e, e / s**3 * (1.0 - r2 / (2.0 * s**2))
    if t.family == "rq_dalpha":
        alpha, scale = p["alpha"], p.get("scale", 1.0)
        c = 1.0 / (2.0 * alpha * scale**2)
        u = c * r2
        bracket = u / (1.0 + u) - np.log1p(u)
        g = (1.0 + u) ** (-alpha) * bracket
        dg_du = -alpha * (1.0 + u) ** (-alpha - 1.0) * bracket - (1.0 + u) ** (-alpha) * u / (1.0 + u) ** 2
        return g, c * dg_du
    if t.family == "imq":
        base = p["c"] ** 2 + r2
        return base ** (-p["beta"]), -p["beta"] * base ** (-p["beta"] - 1.0)
    raise AssertionError(t.family)


def _block(terms, a, b, want_grad):
    """K (na, nb) and, if asked, G (na, nb, d) = ∇_a k(a_i, b_j)."""
    diff = a[:, None, :] - b[None, :, :]
    r2 = np.einsum("ijk,ijk->ij", diff, diff)
    dot = a @ b.T
    d = a.shape[1]
    K = np.zeros(r2.shape)
    G = np.zeros(diff.shape) if want_grad else None
    for t in terms:
        w = t.weight
        if t.family in ("gaussian", "gaussian_dsigma", "rq", "rq_dalpha", "imq"):
            g, dg = _radial_g(t, r2)
            K += w * g
            if want_grad:
                G += (w * 2.0 * dg)[..., None] * diff
        elif t.family == "laplacian":
            r = np.sqrt(r2)
            e = np.exp(-r / t.params["sigma"])
            K += w * e
            if want_grad:
                safe = np.where(r > 0, r, 1.0)
                coef = np.where(r > 0, -e / (t.params["sigma"] * safe), 0.0)
                G += (w * coef)[..., None] * diff
        elif t.family == "energy":
            r = np.sqrt(r2)
            na = np.sqrt(np.einsum("ik,ik->i", a, a))
            nb = np.sqrt(np.einsum("jk,jk->j", b, b))
            K += w * (na[:, None] + nb[None, :] - r)
            if want_grad:
                ua = a / np.where(na > 0, na, 1.0)[:, None]  # gradient of |a| is 0 at a = 0
                inv_r = np.where(r > 0, 1.0 / np.where(r > 0, r, 1.0), 0.0)
                G += w * (ua[:, None, :] - inv_r[..., None] * diff)
        elif t.family == "linear":
            K += w * dot
            if want_grad:
                G += w * np.broadcast_to(b[None, :, :], diff.shape)
        else:  # polynomial
            p = t.params
            gamma = p.get("gamma")
            if gamma is None:
                gamma = 1.0 / d
            base = gamma * dot + p.get("coef0", 1.0)
            deg = p["degree"]
            K += w * base**deg
            if want_grad:
                G += (w * deg * gamma * base ** (deg - 1))[..., None] * b[None, :, :]
    return K, G


def gram(terms, a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.concatenate([_block(terms, a[s : s + _CHUNK], b, False)[0] for s in range(0, len(a), _CHUNK)])


def weighted_sum_and_grad(terms, a, b, W):
    """(Σ_ij W_ij k(a_i, b_j), Σ_j W_ij ∇_a k(a_i, b_j))."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    total = 0.0
    grad = np.zeros_like(a)
    for s in range(0, len(a), _CHUNK):
        K, G = _block(terms, a[s : s + _CHUNK], b, True)
        w = W[s : s + _CHUNK]
        total += float(np.sum(w * K))
        grad[s : s + _CHUNK] = np.einsum("ij,ijk->ik", w, G)
    return total, grad


def estimator_weights(estimator: str, n: int, m: int):
    """Symmetric W_xx, W_yy and W_xy with T = Σ W ⊙ K and MMD² = T_xx + T_yy − 2 T_xy."""
    if estimator == "biased":
        return np.full((n, n), 1.0 / n**2), np.full((m, m), 1.0 / m**2), np.full((n, m), 1.0 / (n * m))
    if estimator in ("unbiased", "u-statistic"):
        wxx = (1.0 - np.eye(n)) / (n * (n - 1))
        wyy = (1.0 - np.eye(m)) / (m * (m - 1))
        if estimator == "unbiased":
            wxy = np.full((n, m), 1.0 / (n * m))
        else:
            if n != m:
                raise ValueError("u-statistic needs n == m")
            wxy = (1.0 - np.eye(n)) / (n * (n - 1))
        return wxx, wyy, wxy
    if estimator == "linear":
        if n != m:
            raise ValueError("linear estimator needs n == m")
        half = n // 2
        w = np.zeros((n, n))
        for i in range(half):
            w[2 * i, 2 * i + 1] = w[2 * i + 1, 2 * i] = 1.0 / (2 * half)
        return w, w.copy(), w.copy()
    raise ValueError(f"unknown estimator {estimator!r}")


@dataclass
class Terms:
    mmd2: float
    t_xx: float
    t_yy: float
    t_xy: float
    grad_x: np.ndarray  # d MMD² / d x
    grad_y: np.ndarray
    gxx_x: np.ndarray  # d T_xx / d x
    gyy_y: np.ndarray  # d T_yy / d y
    gxy_x: np.ndarray  # d T_xy / d x
    gxy_y: np.ndarray  # d T_xy / d y

    @property
    def value_scale(self) -> float:
        return abs(self.t_xx) + abs(self.t_yy) + 2.0 * abs(self.t_xy)

    @property
    def grad_scale(self) -> float:
        """‖∇T_xx‖_∞ + ‖∇T_yy‖_∞ + 2‖∇T_xy‖_∞ (the gradient of each term w.r.t. all of its inputs)."""
        return _inf(self.gxx_x) + _inf(self.gyy_y) + 2.0 * max(_inf(self.gxy_x), _inf(self.gxy_y))


def _inf(a) -> float:
    return float(np.max(np.abs(a))) if a.size else 0.0


def mmd2_terms(terms, x, y, estimator: str) -> Terms:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    wxx, wyy, wxy = estimator_weights(estimator, len(x), len(y))
    t_xx, gxx = weighted_sum_and_grad(terms, x, x, wxx)
    t_yy, gyy = weighted_sum_and_grad(terms, y, y, wyy)
    t_xy, gxy_x = weighted_sum_and_grad(terms, x, y, wxy)
    _, gxy_y = weighted_sum_and_grad(terms, y, x, wxy.T)
    # W_xx symmetric and k symmetric: d/dx_i Σ_jl W_jl k(x_j, x_l) = 2 Σ_j W_ij ∇_a k(x_i, x_j).
    gxx, gyy = 2.0 * gxx, 2.0 * gyy
    return Terms(
        mmd2=t_xx + t_yy - 2.0 * t_xy,
        t_xx=t_xx,
        t_yy=t_yy,
        t_xy=t_xy,
        grad_x=gxx - 2.0 * gxy_x,
        grad_y=gyy - 2.0 * gxy_y,
        gxx_x=gxx,
        gyy_y=gyy,
        gxy_x=gxy_x,
        gxy_y=gxy_y,
    )
