"""MMD²_u and the unbiased estimate of its variance as differentiable functions of the samples, of the
weights and views of a kernel that learns (fastmmd.kernels.views), through fused passes only.

Both are functions of the blocks' row sums r (n,), column sums c (m,) and sums of squares S
(fastmmd.formulas.moments). With ᾱ = dL/dr, γ̄ = dL/dc, β̄ = dL/dS (float64, by autograd on that formula):
    dL/dx through Σ_i ᾱ_i r_i of the XX block = d/dx Σ_{i≠j} (ᾱ_i + ᾱ_j) k(x_i, x_j) / 2 · 2
        = ∂/∂a of Σ_i [ᾱ_i (K 1)_i + (K ᾱ)_i]  (b = a held fixed): a backward of kernel_matmul, 2 columns;
    dL/dx through Σ_i ᾱ_i r_i + Σ_j γ̄_j c_j of the XY block = ∂/∂a Σ_i [ᾱ_i (K 1)_i + (K γ̄)_i];
    dL/dx through β̄ S = β̄ ∇ Σ k² : the gradient pass of the pair sum of k² (fastmmd.kernels.products).
For a kernel Σ_t w_t κ_t on views V_t, r = Σ_t w_t r_t and S = Σ_{t,s} w_t w_s S_ts, S_ts the pair sum of
κ_t κ_s (fastmmd.kernels.views.product_term); the weights' gradients are the same sums, unweighted. A number
θ inside κ_t (a rational quadratic's α, with ∂κ_t/∂θ = D) gets dL/dθ = w_t (ᾱ·r(D) + γ̄·c(D)) + β̄ Σ_s 2 w_t w_s
Σ κ_s D over the terms s on κ_t's view: a pair_stats pass of D and a pair sum of κ_s D per block. The
forward values are those of `mmd2_and_variance` without gradients (one pair_stats pass per block and term).
The fused path is differentiable once (a second derivative raises); the reference backend's path is torch
autograd through materialised Gram matrices in float64, to any order.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from fastmmd.backends import Backend
from fastmmd.formulas.moments import CrossBlock, SelfBlock, mmd2_unbiased_variance
from fastmmd.kernels import TableKernel
from fastmmd.kernels.derivatives import gradient_tables
from fastmmd.kernels.products import product_table, squared_table
from fastmmd.kernels.views import ParameterTerm, ViewTerm, product_term
from fastmmd.ops.kernel_matmul import point_gradient
from fastmmd.ops.views import with_parameter_gradients
from fastmmd.statistics.block_stats import block_sums

__all__ = ["differentiable_mmd2_and_variance"]

BLOCKS = ("xx", "yy", "xy")
_DOUBLE_BACKWARD = (
    "mmd2_and_variance: a gradient of its gradient (create_graph=True) is not supported on the fused backends, "
    "whose backward passes compute first derivatives; use backend='reference' for higher-order derivatives"
)


@dataclass(frozen=True)
class _Product:
    """κ_t κ_s for t < s: its table, the indices (t, s), and the factors of each view's columns in the
    side-by-side views (None: both terms have one view, and the product is on it)."""

    table: np.ndarray
    pair: Tuple[int, int]
    factors: Optional[Tuple[float, float]]


def _moments(stats: dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """(MMD²_u, its variance) of {"xx": (rows, S), "yy": (rows, S), "xy": (rows, cols, S)} (float64)."""
    xx, yy = SelfBlock(*stats["xx"]), SelfBlock(*stats["yy"])
    xy = CrossBlock(*stats["xy"])
    return xx.mean + yy.mean - 2 * xy.mean, mmd2_unbiased_variance(xx, yy, xy)


def _block_inputs(block: str, x: torch.Tensor, y: torch.Tensor):
    """(a, b, symmetric, exclude_diag) of a block."""
    return {"xx": (x, x, True, True), "yy": (y, y, True, True), "xy": (x, y, False, False)}[block]


def _products(terms: Sequence[ViewTerm]) -> List[Tuple[_Product, Tuple[torch.Tensor, torch.Tensor]]]:
    out = []
    for t in range(len(terms)):
        for s in range(t + 1, len(terms)):
            table, views, factors = product_term(terms[t], terms[s], terms[t].views[0].shape[1],
                                                 terms[s].views[0].shape[1])
            out.append((_Product(table, (t, s), factors), views))
    return out


class _FusedMMDVariance(torch.autograd.Function):
    """(MMD²_u, variance) of weights (T,), kernel parameters (P,) and views x_1, y_1, ..., x_T, y_T: fused
    forward and backward (first derivatives only)."""

    @staticmethod
    def forward(ctx, plan, weights, parameters, *views):
        kernels, products, backend, precision, _ = plan
        T = len(kernels)
        xs, ys = views[0::2], views[1::2]
        threads = torch.get_num_threads()
        per_term = []  # per_term[t][block] = (rows, cols or None, squares)
        for t in range(T):
            stats = {}
            for block in BLOCKS:
                a, b, symmetric, exclude = _block_inputs(block, xs[t], ys[t])
                stats[block] = block_sums(a, b, kernels[t], backend, precision, symmetric, exclude)
            per_term.append(stats)
        cross = []  # cross[p][block] = total of the product pair p
        for product, (zx, zy) in products:
            totals = {}
            for block in BLOCKS:
                a, b, symmetric, exclude = _block_inputs(block, zx, zy)
                total, _, _ = backend.pair_sum(a, b, product.table.ravel().tolist(), symmetric, exclude, False,
                                               precision, threads)
                totals[block] = total.to(torch.float64).reshape(()).to(xs[0].device)
            cross.append(totals)
        w = weights.detach().to(torch.float64).to(xs[0].device)
        stats = _combine(w, per_term, cross, products)
        value, variance = _moments(stats)
        ctx.plan = plan
        ctx.per_term, ctx.cross, ctx.stats = per_term, cross, stats
        ctx.save_for_backward(weights, parameters, *views)
        return value, variance

    @staticmethod
    def backward(ctx, grad_value, grad_variance):
        if torch.is_grad_enabled():  # create_graph=True: a gradient of this gradient would be silently wrong
            raise RuntimeError(_DOUBLE_BACKWARD)
        kernels, products, backend, precision, parameter_plan = ctx.plan
        weights, parameters, *views = ctx.saved_tensors
        xs, ys = views[0::2], views[1::2]
        w = weights.detach().to(torch.float64).to(xs[0].device)
        bar = _stat_gradients(ctx.stats, grad_value, grad_variance)
        grad_w = torch.zeros_like(w)
        grads = [torch.zeros_like(v) for v in views]
        threads = torch.get_num_threads()
        for t, kernel in enumerate(kernels):
            table = kernel.terms(xs[t].shape[1])
            # the row and column sums: r_t, c_t weighted by ᾱ, γ̄
            for block in BLOCKS:
                rows, cols, _ = ctx.per_term[t][block]
                grad_w[t] += (bar[block]["rows"] * rows).sum()
                if cols is not None:
                    grad_w[t] += (bar[block]["cols"] * cols).sum()
            for index, grad in _row_sum_gradients(xs[t], ys[t], table, bar, backend.name, precision):
                grads[2 * t + index] += w[t].to(grad.dtype) * grad
            # S_tt, weighted by w_t² β̄
            square = squared_table(table)
            for block in BLOCKS:
                squares = ctx.per_term[t][block][2]
                grad_w[t] += 2 * w[t] * bar[block]["squares"] * squares
                a, b, symmetric, exclude = _block_inputs(block, xs[t], ys[t])
                _, grad_a, grad_b = backend.pair_sum(a, b, square.ravel().tolist(), symmetric, exclude, True,
                                                     precision, threads)
                scale = (w[t] * w[t] * bar[block]["squares"]).item()
                _add_block(grads, block, 2 * t, grad_a, grad_b, scale)
        for p, (product, (zx, zy)) in enumerate(products):
            t, s = product.pair
            for block in BLOCKS:
                total = ctx.cross[p][block]
                grad_w[t] += 2 * w[s] * bar[block]["squares"] * total
                grad_w[s] += 2 * w[t] * bar[block]["squares"] * total
                a, b, symmetric, exclude = _block_inputs(block, zx, zy)
                _, grad_a, grad_b = backend.pair_sum(a, b, product.table.ravel().tolist(), symmetric, exclude,
                                                     True, precision, threads)
                scale = (2 * w[t] * w[s] * bar[block]["squares"]).item()
                _add_product_block(grads, block, product, xs[t].shape[1], grad_a, grad_b, scale)
        grad_p = None
        if ctx.needs_input_grad[2]:
            grad_p = _parameter_gradients(parameter_plan, kernels, w, xs, ys, bar, backend, precision)
            grad_p = grad_p.to(parameters.dtype).to(parameters.device)
        return (None, grad_w.to(weights.dtype).to(weights.device), grad_p, *grads)


def _parameter_gradients(parameter_plan, kernels, w: torch.Tensor, xs, ys, bar: dict, backend: Backend,
                         precision: str) -> torch.Tensor:
    """dL/dθ (P,) float64 for the parameters (t, ParameterTerm, indices of the terms on t's view)."""
    out = torch.zeros(len(parameter_plan), dtype=torch.float64, device=w.device)
    threads = torch.get_num_threads()
    for i, (t, parameter, same_view) in enumerate(parameter_plan):
        d = xs[t].shape[1]
        derivative = parameter.derivative.terms(d)
        for block in BLOCKS:
            a, b, symmetric, exclude = _block_inputs(block, xs[t], ys[t])
            rows, cols, _ = block_sums(a, b, parameter.derivative, backend, precision, symmetric, exclude)
            out[i] += w[t] * (bar[block]["rows"] * rows).sum()
            if cols is not None:
                out[i] += w[t] * (bar[block]["cols"] * cols).sum()
            for s in same_view:
                table = product_table(kernels[s].terms(d), derivative).ravel().tolist()
                total, _, _ = backend.pair_sum(a, b, table, symmetric, exclude, False, precision, threads)
                total = total.to(torch.float64).reshape(()).to(w.device)
                out[i] += 2 * w[t] * w[s] * bar[block]["squares"] * total
    return out


def _combine(w: torch.Tensor, per_term, cross, products) -> dict:
    """The kernel's block statistics from its terms': r = Σ w_t r_t, S = Σ w_t² S_tt + Σ_{t<s} 2 w_t w_s S_ts."""
    out = {}
    for block in BLOCKS:
        rows = sum(w[t] * per_term[t][block][0] for t in range(len(per_term)))
        cols = None if block != "xy" else sum(w[t] * per_term[t][block][1] for t in range(len(per_term)))
        squares = sum(w[t] * w[t] * per_term[t][block][2] for t in range(len(per_term)))
        for p, (product, _) in enumerate(products):
            t, s = product.pair
            squares = squares + 2 * w[t] * w[s] * cross[p][block]
        out[block] = (rows, squares) if cols is None else (rows, cols, squares)
    return out


def _stat_gradients(stats: dict, grad_value, grad_variance) -> dict:
    """{block: {"rows": ᾱ, "cols": γ̄ (xy), "squares": β̄}} of L = grad_value·MMD² + grad_variance·Var."""
    leaves = {block: tuple(s.detach().requires_grad_(True) for s in stats[block]) for block in BLOCKS}
    with torch.enable_grad():
        value, variance = _moments(leaves)
        total = value * _or_zero(grad_value) + variance * _or_zero(grad_variance)
        flat = [s for block in BLOCKS for s in leaves[block]]
        grads = torch.autograd.grad(total, flat, allow_unused=True)
    grads = [torch.zeros_like(s) if g is None else g for s, g in zip(flat, grads)]
    return {"xx": {"rows": grads[0], "squares": grads[1]}, "yy": {"rows": grads[2], "squares": grads[3]},
            "xy": {"rows": grads[4], "cols": grads[5], "squares": grads[6]}}


def _or_zero(grad) -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64) if grad is None else grad.detach().to(torch.float64).cpu()


def _row_sum_gradients(x: torch.Tensor, y: torch.Tensor, table: np.ndarray, bar: dict, backend: str,
                       precision: str):
    """(0 for x / 1 for y, d/dview of Σ ᾱ r + Σ γ̄ c) over the three blocks, for one term's views."""
    tables = gradient_tables(table)
    terms = table.ravel().tolist()
    threads = torch.get_num_threads()
    n, m = x.shape[0], y.shape[0]

    def gradient(a, b, v, g, exclude):
        options = (terms, exclude, threads, backend, precision)
        return point_gradient(a, b, v.to(a.dtype), g.to(a.dtype), tables, options)

    ones_n, ones_m = x.new_ones((n, 1), dtype=torch.float64), y.new_ones((m, 1), dtype=torch.float64)
    for index, (points, block) in enumerate(((x, "xx"), (y, "yy"))):
        alpha = bar[block]["rows"].to(points.device)[:, None]
        ones = ones_n if index == 0 else ones_m
        # Σ_{i≠j} ᾱ_i k_ij through both arguments: ∂/∂a of Σ_i ᾱ_i (K1)_i + Σ_i (Kᾱ)_i
        yield index, gradient(points, points, torch.cat([ones, alpha], 1), torch.cat([alpha, ones], 1), True)
    alpha, gamma = bar["xy"]["rows"].to(x.device)[:, None], bar["xy"]["cols"].to(x.device)[:, None]
    yield 0, gradient(x, y, torch.cat([ones_m, gamma], 1), torch.cat([alpha, ones_n], 1), False)
    yield 1, gradient(y, x, torch.cat([alpha, ones_n], 1), torch.cat([ones_m, gamma], 1), False)


def _add_block(grads: list, block: str, first: int, grad_a, grad_b, scale: float) -> None:
    """Adds scale · (dS/da, dS/db) of a block of term views (x at `first`, y at `first + 1`)."""
    if block == "xx":
        grads[first] += scale * grad_a.to(grads[first].device)
    elif block == "yy":
        grads[first + 1] += scale * grad_a.to(grads[first + 1].device)
    else:
        grads[first] += scale * grad_a.to(grads[first].device)
        grads[first + 1] += scale * grad_b.to(grads[first + 1].device)


def _add_product_block(grads: list, block: str, product: _Product, d_t: int, grad_a, grad_b, scale: float) -> None:
    """The gradient of a product's block sum, back on the two terms' views (split side-by-side columns)."""
    t, s = product.pair
    pieces = {"xx": [(0, grad_a)], "yy": [(1, grad_a)], "xy": [(0, grad_a), (1, grad_b)]}[block]
    for sample, grad in pieces:
        grad = grad.to(grads[2 * t + sample].device)
        if product.factors is None:  # one shared view: all of it to term t's view (it is term s's too)
            grads[2 * t + sample] += scale * grad
        else:
            grads[2 * t + sample] += (scale * product.factors[0]) * grad[:, :d_t]
            grads[2 * s + sample] += (scale * product.factors[1]) * grad[:, d_t:]


def _reference_stats(terms: Sequence[ViewTerm], products) -> dict:
    """The block statistics by torch autograd through float64 Gram matrices (the reference backend)."""
    def gram(table, a, b):
        return TableKernel.of(table).gram(a.to(torch.float64), b.to(torch.float64))

    def off_diagonal(k):
        return k - torch.diag_embed(torch.diagonal(k))

    def block_gram(table, a, b, symmetric):
        k = gram(table, a, a if symmetric else b)
        return off_diagonal(k) if symmetric else k

    out = {}
    for block in BLOCKS:
        rows = cols = squares = 0
        for term in terms:
            a, b, symmetric, _ = _block_inputs(block, *term.views)
            k = with_parameter_gradients(term, block_gram(term.kernel.terms(a.shape[1]), a, b, symmetric),
                                         functools.partial(_term_gram, block_gram, a, b, symmetric))
            w = term.weight if isinstance(term.weight, torch.Tensor) else torch.tensor(term.weight)
            w = w.to(torch.float64)
            rows = rows + w * k.sum(1)
            cols = cols + w * k.sum(0)
            squares = squares + w * w * (k * k).sum()
        for product, (zx, zy) in products:
            t, s = product.pair
            a, b, symmetric, _ = _block_inputs(block, zx, zy)
            k = with_parameter_gradients(_product_term(terms, product, (zx, zy)),
                                         block_gram(product.table, a, b, symmetric),
                                         functools.partial(_term_gram, block_gram, a, b, symmetric))
            wt, ws = (torch.as_tensor(terms[i].weight, dtype=torch.float64) for i in (t, s))
            squares = squares + 2 * wt * ws * k.sum()
        out[block] = (rows, squares) if block != "xy" else (rows, cols, squares)
    return out


def _product_term(terms: Sequence[ViewTerm], product: _Product, views) -> ViewTerm:
    """κ_t κ_s as a term whose parameters (those of κ_t and κ_s) have the derivative kernels ∂(κ_t κ_s)/∂θ."""
    t, s = product.pair
    d = terms[t].views[0].shape[1]
    table_t, table_s = terms[t].kernel.terms(d), terms[s].kernel.terms(d)
    parameters = tuple(ParameterTerm(p.value, TableKernel.of(product_table(p.derivative.terms(d), table_s)))
                       for p in terms[t].parameters)
    parameters += tuple(ParameterTerm(p.value, TableKernel.of(product_table(table_t, p.derivative.terms(d))))
                        for p in terms[s].parameters)
    return ViewTerm(1.0, TableKernel.of(product.table), tuple(views), None, parameters)


def _parameter_plan(terms: Sequence[ViewTerm]) -> list:
    """(t, ParameterTerm, the indices of the terms on term t's view) for every kernel parameter of the terms."""
    return [(t, p, tuple(s for s, other in enumerate(terms) if other.key == term.key))
            for t, term in enumerate(terms) for p in term.parameters]


def _term_gram(block_gram, a, b, symmetric, term: ViewTerm) -> torch.Tensor:
    return block_gram(term.kernel.terms(a.shape[1]), a, b, symmetric)


def differentiable_mmd2_and_variance(terms: Sequence[ViewTerm], backend: Backend, precision: str
                                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(MMD²_u, variance), 0-dim float64, differentiable in the terms' weights, kernel parameters and views."""
    products = _products(terms)
    if not backend.fused:
        return _moments(_reference_stats(terms, products))
    parameter_plan = _parameter_plan(terms)
    for term in terms:  # refuse a kernel without a square before any work
        squared_table(term.kernel.terms(term.views[0].shape[1]))
        gradient_tables(term.kernel.terms(term.views[0].shape[1]))
    weights = torch.stack([torch.as_tensor(t.weight, dtype=torch.float64) for t in terms])
    parameters = (torch.stack([p.value.to(torch.float64) for _, p, _ in parameter_plan]) if parameter_plan
                  else torch.zeros(0, dtype=torch.float64))
    views = [v.contiguous() for t in terms for v in t.views]
    plan = (tuple(t.kernel for t in terms), products, backend, precision, parameter_plan)
    return _FusedMMDVariance.apply(plan, weights, parameters, *views)
