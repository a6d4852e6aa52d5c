r"""Entropic OT between large sample sets without the ``n x m`` matrix (docs/math.md §5.12).

The problem is :func:`bridge.ot.entropic_plan`'s: for samples :math:`x_1..x_n`, :math:`y_1..y_m`
with uniform weights :math:`a = \mathbf 1/n`, :math:`b = \mathbf 1/m` and the paper's ``eps``,

.. math::
    P^\star = \operatorname*{argmin}_{P \in \Pi(a, b)} \sum_{ij} P_{ij} |x_i - y_j|^2
        + \mathrm{reg}\,\mathrm{KL}(P \,|\, a b^\top), \qquad \mathrm{reg} = 4\epsilon,

whose solution :math:`P_{ij} = \exp((f_i + g_j - |x_i - y_j|^2)/\mathrm{reg})` is stored as the
potentials ``(f, g)`` only (``O(n + m)`` memory). :func:`chunked_sinkhorn` alternates the
c-transforms (log-domain Sinkhorn)

.. math::
    f_i = \mathrm{reg}\log a_i - \mathrm{reg}\,\mathrm{LSE}_j\big((g_j - |x_i - y_j|^2)/\mathrm{reg}\big),
    \qquad
    g_j = \mathrm{reg}\log b_j - \mathrm{reg}\,\mathrm{LSE}_i\big((f_i - |x_i - y_j|^2)/\mathrm{reg}\big),

each a log-sum-exp over blocks of rows (of ``x`` for ``f``, of ``y`` for ``g``) that fill
``block_bytes``, and reaches small ``reg`` by epsilon-scaling: the same sweeps at the
temperatures :math:`T_0 = \operatorname{diam}^2, T_0 s, T_0 s^2, \dots` down to ``reg`` (Schmitzer
2019; geomloss's ``scaling``), each temperature's potentials starting the next one's sweep. The
returned :class:`bridge.ot.EntropicPotentials` computes the conditionals, the barycentric map,
conditional samples, the cross-covariance, the transport cost and the objective in blocks too,
for new points through the c-transform of ``g``.

Which solver a plan of a given size gets (POT's dense one or this) is decided in
:func:`bridge.ot_backend.plan_backend`. KeOps (geomloss's ``"online"`` backend) would do the
same reductions symbolically; this module needs only torch.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x0 = torch.randn(500, 2, generator=g, dtype=torch.float64)
    >>> plan = chunked_sinkhorn(x0, x0 + 1.0, eps=0.1, block_bytes=2**16)
    >>> plan.converged, plan.solver, plan.f.shape
    (True, 'chunked', torch.Size([500]))
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
from torch import Tensor

from .conventions import check_eps
from .convergence import final_sweeps, give_up_target, stopped_early
from .metrics import _pair
from .ot import BLOCK_BYTES, POTENTIALS_ADVICE, TILE_BYTES, TILE_COLS, ConvergenceError, EntropicPotentials

__all__ = ["DEFAULT_SCALING", "ChunkedPlan", "chunked_sinkhorn"]


#: Temperature ratio of the epsilon-scaling: each temperature is this share of the one before
#: (geomloss's default ``scaling = 0.5`` is on the blur, i.e. 0.25 on the temperature; halving the
#: temperature costs a few more annealing sweeps and leaves the final ones a better start).
DEFAULT_SCALING = 0.5


@dataclass
class _Side:
    """One side of the problem in the solver's coordinates: points, squared norms, log weights."""

    x: Tensor
    sq: Tensor
    log_w: Tensor


@dataclass(frozen=True)
class _Tiles:
    """Tiles of ``rows x cols`` entries, ``rows * cols * itemsize <= tile_bytes``."""

    rows: int
    cols: int


def _side(x: Tensor) -> _Side:
    return _Side(x, (x * x).sum(1), x.new_full((x.shape[0],), -math.log(x.shape[0])))


def _tiles(n_out: int, n_in: int, itemsize: int, tile_bytes: int) -> _Tiles:
    """Tiles of a pass of ``n_out`` output points against ``n_in`` points: at most
    :data:`TILE_COLS` columns and as many rows as ``tile_bytes`` holds."""
    cols = min(n_in, TILE_COLS, max(1, tile_bytes // itemsize))
    return _Tiles(max(1, min(n_out, tile_bytes // (itemsize * cols))), cols)


def _softmin(pot: Tensor, src: _Side, dst: _Side, level: float, tiles: _Tiles) -> Tensor:
    r"""The c-transform at temperature ``level``: for each point ``x`` of ``dst``,
    :math:`\mathrm{level}\,\log w + |x|^2 - \mathrm{level}\,\mathrm{LSE}_j((\mathrm{pot}_j - |y_j|^2
    + 2 x\cdot y_j)/\mathrm{level})` over the points ``y_j`` of ``src`` (the :math:`|x|^2` term of the
    cost leaves the log-sum-exp). Tile by tile: one ``addmm``, exponentiated in place, and a
    running maximum and sum per row (the streaming log-sum-exp)."""
    bias = (pot - src.sq) / level
    yt = src.x.T * (2.0 / level)
    out = torch.empty_like(dst.sq)
    for r0 in range(0, dst.x.shape[0], tiles.rows):
        xr = dst.x[r0 : r0 + tiles.rows]
        top = xr.new_full((xr.shape[0],), -math.inf)
        total = xr.new_zeros(xr.shape[0])
        for c0 in range(0, src.x.shape[0], tiles.cols):
            tile = torch.addmm(bias[c0 : c0 + tiles.cols], xr, yt[:, c0 : c0 + tiles.cols])
            new_top = torch.maximum(top, tile.amax(1))
            total = total * torch.exp(top - new_top) + tile.sub_(new_top[:, None]).exp_().sum(1)
            top = new_top
        out[r0 : r0 + tiles.rows] = total.log_().add_(top)
    return level * dst.log_w + dst.sq - level * out


class ChunkedPlan(EntropicPotentials):
    r""":func:`chunked_sinkhorn`'s result: :class:`bridge.ot.EntropicPotentials` whose barycentric
    map and conditional samples stream over tiles of the targets (at most
    ``min(block_bytes, TILE_BYTES)`` each) instead of rows against all of them.

    Example:
        >>> import torch
        >>> y = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
        >>> chunked_sinkhorn(y, y, eps=100.0).barycentric_map(torch.ones(1, 1, dtype=torch.float64))
        tensor([[1.]], dtype=torch.float64)
    """

    def _target_tiles(self, n_out: int):
        """``(y_shifted, col_bias, yt, tiles, shift)`` of the passes of ``n_out`` points against ``x1``."""
        shift = self.x1.mean(0)
        y = self.x1 - shift
        tiles = _tiles(n_out, y.shape[0], y.element_size(), min(self.block_bytes, TILE_BYTES))
        return y, (self.g - (y * y).sum(1)) / self.reg, y.T * (2.0 / self.reg), tiles, shift

    def barycentric_map(self, x: Tensor | None = None) -> Tensor:
        r""":math:`T(x) = \sum_j \pi(y_j \mid x)\, y_j`, ``(N, d)``, a streaming softmax-weighted mean
        (running maximum, normaliser and weighted sum per row, merged tile by tile)."""
        x = self.x0 if x is None else self._check_new(x)
        y, bias, yt, tiles, shift = self._target_tiles(x.shape[0])
        xs, out = x - shift, torch.empty_like(x)
        for r0 in range(0, x.shape[0], tiles.rows):
            xr = xs[r0 : r0 + tiles.rows]
            top, total = xr.new_full((xr.shape[0],), -math.inf), xr.new_zeros(xr.shape[0])
            acc = xr.new_zeros(xr.shape[0], y.shape[1])
            for c0 in range(0, y.shape[0], tiles.cols):
                cols = slice(c0, c0 + tiles.cols)
                tile = torch.addmm(bias[cols], xr, yt[:, cols])
                new_top = torch.maximum(top, tile.amax(1))
                scale = torch.exp(top - new_top)
                w = tile.sub_(new_top[:, None]).exp_()
                total, acc, top = total * scale + w.sum(1), acc * scale[:, None] + w @ y[cols], new_top
            out[r0 : r0 + tiles.rows] = acc / total[:, None] + shift
        return out

    def conditional_sample(self, x: Tensor, k: int, *, generator: torch.Generator | None = None) -> Tensor:
        r"""``k`` draws from :math:`\pi(\cdot \mid x)` per row of ``x``, ``(N, k, d)``, by inversion in
        two streaming passes: the log-normaliser of each row, then the running cumulative mass, in
        which each draw's uniform number finds its target (``searchsorted`` within the tile)."""
        k = _check_positive(k, "k")
        x = self._check_new(x)
        y, bias, yt, tiles, shift = self._target_tiles(x.shape[0])
        xs, m = x - shift, y.shape[0]
        idx = torch.full((x.shape[0], k), m - 1, dtype=torch.long, device=x.device)  # rounding: the last
        u = torch.rand(x.shape[0], k, generator=generator, dtype=x.dtype).to(x.device)
        for r0 in range(0, x.shape[0], tiles.rows):
            xr, ur, rows = xs[r0 : r0 + tiles.rows], u[r0 : r0 + tiles.rows], slice(r0, r0 + tiles.rows)
            col_tiles = [slice(c0, c0 + tiles.cols) for c0 in range(0, m, tiles.cols)]
            top, total = xr.new_full((xr.shape[0],), -math.inf), xr.new_zeros(xr.shape[0])
            for cols in col_tiles:  # pass 1: the normaliser
                tile = torch.addmm(bias[cols], xr, yt[:, cols])
                new_top = torch.maximum(top, tile.amax(1))
                total, top = total * torch.exp(top - new_top) + tile.sub_(new_top[:, None]).exp_().sum(1), new_top
            log_z, mass = (total.log() + top)[:, None], xr.new_zeros(xr.shape[0], 1)
            pending = torch.ones_like(ur, dtype=torch.bool)
            for cols in col_tiles:  # pass 2: the cumulative mass
                cdf = torch.addmm(bias[cols], xr, yt[:, cols]).sub_(log_z).exp_().cumsum(1).add_(mass)
                pos = torch.searchsorted(cdf, ur.contiguous())
                hit = pending & (pos < cdf.shape[1])
                idx[rows] = torch.where(hit, pos + cols.start, idx[rows])
                pending, mass = pending & ~hit, cdf[:, -1:]
        return self.x1[idx]


def _check_positive(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


def _check_options(dtype, block_bytes, scaling, tol, max_iter) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype: expected torch.float32 or torch.float64, got {dtype!r}")
    for name, v in (("block_bytes", block_bytes), ("max_iter", max_iter)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    if isinstance(scaling, bool) or not isinstance(scaling, numbers.Real) or not 0 < scaling < 1:
        raise ValueError(f"scaling: expected a number in (0, 1), got {scaling!r}")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: expected a finite number > 0, got {tol!r}")


def chunked_sinkhorn(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    dtype: torch.dtype = torch.float64,
    block_bytes: int = BLOCK_BYTES,
    scaling: float = DEFAULT_SCALING,
    tol: float = 1e-6,
    max_iter: int = 1000,
    check: bool = True,
    progress=None,
    give_up_above: float | None = None,
) -> ChunkedPlan:
    r"""Potentials of :func:`bridge.ot.entropic_plan`'s problem by blockwise log-domain Sinkhorn
    with epsilon-scaling; memory ``O((n + m) d)`` plus one block of ``block_bytes``.

    .. math::
        \max_{f, g}\ \sum_i a_i f_i + \sum_j b_j g_j
            - \mathrm{reg} \sum_{ij} e^{(f_i + g_j - |x_i - y_j|^2)/\mathrm{reg}},
        \qquad \mathrm{reg} = 4\epsilon.

    The temperature starts at the squared diameter of both sets (at least every cost, so the first
    sweep is nearly the independent plan's) and is multiplied by ``scaling`` after each sweep
    (one ``f`` and one ``g`` update) until it reaches ``reg``; then sweeps at ``reg`` run until
    the column marginal's L1 error is at most ``tol`` (the row marginal is exact after every
    ``f`` update, so the error is the column error, read off the next ``g`` update for free:
    column ``j`` sums to :math:`b_j e^{(g_j - g'_j)/\mathrm{reg}}`).

    Args:
        x0: source samples ``(n, d)``.
        x1: target samples ``(m, d)``.
        eps: the paper's eps (``reg = 4 eps``).
        dtype: ``torch.float64`` (default) or ``torch.float32`` (about twice as fast on a CPU;
            its rounding leaves marginal errors of ~1e-5, so ask for ``tol >= 1e-4``).
        block_bytes: memory of one block: the solver's tiles hold ``min(block_bytes,``
            :data:`bridge.ot.TILE_BYTES` ``)``, the result's passes (rows of new points against all of
            ``x1``) ``block_bytes``.
        scaling: temperature ratio of the epsilon-scaling, in ``(0, 1)``.
        tol: accepted L1 marginal error.
        max_iter: sweeps at the final temperature at most.
        check: raise :class:`bridge.ot.ConvergenceError` when ``tol`` is not met.
        progress: optional ``progress(sweeps, max_iter)`` after each sweep at the final temperature.
        give_up_above: stop the sweeps early once their rate shows that the marginal error will
            not fall to this value within ``max_iter`` (:mod:`bridge.convergence`); None: ``tol``
            with ``check``, else never.

    Returns:
        :class:`ChunkedPlan` (a :class:`bridge.ot.EntropicPotentials`) with ``solver="chunked"``,
        the points in ``dtype``, ``n_iter`` the sweeps at the final temperature and ``scaling_sweeps`` those before.

    Raises:
        ConvergenceError: with ``check``, the marginals are off by more than ``tol`` after
            ``max_iter`` sweeps, or sooner when their rate shows that ``max_iter`` cannot be
            enough; NaN/Inf potentials always.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
        >>> plan = chunked_sinkhorn(x, x, eps=0.01)
        >>> plan.barycentric_map(x).round(decimals=6)  # small eps: nearly the identity map
        tensor([[0.],
                [1.]], dtype=torch.float64)
    """
    e = check_eps(eps)
    _check_options(dtype, block_bytes, scaling, tol, max_iter)
    x, y = (v.to(dtype) for v in _pair(x0, x1, ("x0", "x1")))
    shift = torch.cat([x, y]).mean(0)  # the cost is shift-invariant; centred points round better
    src, dst = _side(x - shift), _side(y - shift)
    tile_bytes = min(int(block_bytes), TILE_BYTES)
    to_x = _tiles(x.shape[0], y.shape[0], x.element_size(), tile_bytes)  # passes that give f
    to_y = _tiles(y.shape[0], x.shape[0], x.element_size(), tile_bytes)  # passes that give g
    reg = 4.0 * e
    both = torch.cat([src.x, dst.x])
    level = float((both.amax(0) - both.amin(0)).pow(2).sum())  # squared diameter, >= every cost
    g, annealing = torch.zeros_like(dst.sq), 0
    while level > reg:
        g = _softmin(_softmin(g, dst, src, level, to_x), src, dst, level, to_y)
        level, annealing = level * scaling, annealing + 1
    f, g, err, it, gave_up = final_sweeps(
        g,
        lambda g: _softmin(g, dst, src, reg, to_x),
        lambda f: _softmin(f, src, dst, reg, to_y),
        dst.log_w.exp(),
        reg,
        tol=tol,
        max_iter=max_iter,
        progress=progress,
        give_up=give_up_target(tol, check, give_up_above),
    )
    if not (bool(torch.isfinite(f).all()) and bool(torch.isfinite(g).all())):
        raise ConvergenceError(f"chunked_sinkhorn: NaN/Inf potentials at reg = 4 eps = {reg:g}")
    if check and not err <= tol:
        raise ConvergenceError(
            f"chunked_sinkhorn: marginal error {err:.3g} > tol {tol:g} after {it} Sinkhorn sweeps"
            f"{stopped_early(gave_up, max_iter)} at reg = 4 eps = {reg:g}; "
            f"{POTENTIALS_ADVICE}"
        )
    return ChunkedPlan(
        x0=x, x1=y, f=f, g=g, eps=e, marginal_error=err, n_iter=it, converged=err <= tol, solver="chunked",
        block_bytes=int(block_bytes), scaling_sweeps=annealing,
    )  # fmt: skip
