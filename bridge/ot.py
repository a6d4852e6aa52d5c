r"""Discrete entropic OT between sample sets, in the SB convention (docs/math.md §5), with POT and geomloss.

For samples :math:`x_1..x_n \sim \rho_0`, :math:`y_1..y_m \sim \rho_1` with uniform weights
:math:`a = \mathbf 1/n`, :math:`b = \mathbf 1/m` and the paper's ``eps``, both solvers compute

.. math::
    P^\star = \operatorname*{argmin}_{P \in \Pi(a, b)} \sum_{ij} P_{ij} |x_i - y_j|^2
        + \mathrm{reg}\,\mathrm{KL}(P \,|\, a b^\top), \qquad \mathrm{reg} = 4\epsilon,

the discrete counterpart of the SB's ``(x0, x1)`` law (:mod:`bridge.conventions`). The solution
has the form :math:`P_{ij} = \exp((f_i + g_j - |x_i - y_j|^2)/\mathrm{reg})` with dual
potentials ``f``, ``g`` (POT's convention: ``f = reg * log_u``, ``g = reg * log_v``, the
``reg log a`` and ``reg log b`` terms included).

Out of sample, the entropic conditional of a new point ``x`` is the softmax

.. math::
    \pi(y_j \mid x) = \frac{\exp((g_j - |x - y_j|^2)/\mathrm{reg})}
                           {\sum_k \exp((g_k - |x - y_k|^2)/\mathrm{reg})},

which reproduces the rows :math:`P_{ij}/a_i` at the training points (Pooladian & Niles-Weed
2021's entropic map is its mean, :meth:`EntropicPotentials.barycentric_map`).

* :func:`entropic_plan`: POT's log-domain Sinkhorn (``method="sinkhorn_log"``; the default
  ``"sinkhorn"`` underflows at small ``reg``) with a marginal check; it raises
  :class:`ConvergenceError` instead of returning an unconverged (e.g. independent) plan.
* :func:`minibatch_log_plan`: the log of a small dense plan (a minibatch), quickly and to a loose
  tolerance, for drawing pairs from (the SB solver's ``coupling="minibatch"``).
* :func:`entropic_potentials`: geomloss's epsilon-scaling solver (fast at small eps) followed
  by memory-light log-domain Sinkhorn sweeps until the same marginal tolerance holds, for sample
  sets where the dense ``n x m`` plan is not wanted.

Plans too large for memory (up to 10^5 points per side and beyond) are solved from their
potentials by :func:`bridge.ot_online.chunked_sinkhorn`; :func:`bridge.ot_backend.solve_plan`
picks that or :func:`entropic_plan` by size. Both return this module's :class:`EntropicPotentials`
interface, whose passes over the plan run in blocks.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x0 = torch.randn(200, 2, generator=g, dtype=torch.float64)
    >>> res = entropic_plan(x0, x0 + 3.0, eps=0.5)
    >>> res.plan.shape, res.marginal_error < 1e-6
    (torch.Size([200, 200]), True)
    >>> res.barycentric_map(torch.zeros(1, 2, dtype=torch.float64)).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .conventions import check_eps
from .convergence import final_sweeps, give_up_target, hopeless, stopped_early
from .metrics import _pair

__all__ = [
    "PLAN_ADVICE",
    "POTENTIALS_ADVICE",
    "ConvergenceError",
    "EntropicPotentials",
    "EntropicPlanResult",
    "entropic_plan",
    "entropic_potentials",
    "log_conditional",
    "MinibatchPlan",
    "minibatch_log_plan",
]

_BLOCK_ELEMENTS = 2**22  # cost-matrix entries held at once by the chunked passes (32 MiB in float64)
#: :func:`entropic_potentials` keeps the cost matrix, in both orientations, for all its sweeps up
#: to this many entries (256 MiB in float64; 2048 x 2048 points per side is 2**23); above it every
#: sweep recomputes it block by block.
_CACHED_COST_ELEMENTS = 2**25
#: Bytes of one block of the chunked passes over the plan (``_BLOCK_ELEMENTS`` float64 entries).
BLOCK_BYTES = 8 * _BLOCK_ELEMENTS
#: Largest tile of the tiled passes over a plan (1 MiB): tiles that stay in a core's cache, where
#: the ``addmm`` and the in-place ``exp`` run fastest.
TILE_BYTES = 2**20
#: Columns per tile of those passes.
TILE_COLS = 2048


#: :func:`entropic_plan` runs POT this many iterations at a time (a multiple of POT's 10 between
#: error checks), and between runs looks at the rate (:mod:`bridge.convergence`).
POT_CHUNK = 500
#: What a :class:`ConvergenceError` of :func:`entropic_plan` advises, in this library's terms (the
#: message ends with it; the ``bridge`` command words it in its own flags or leaves it out).
PLAN_ADVICE = "raise max_iter or use entropic_potentials"
#: What a :class:`ConvergenceError` of :func:`entropic_potentials` advises.
POTENTIALS_ADVICE = "raise max_iter or scaling"


class ConvergenceError(RuntimeError):
    """A Sinkhorn solver stopped with marginals further from the targets than the tolerance."""


def _sqdist(x: Tensor, y: Tensor) -> Tensor:
    """``|x_i - y_j|^2`` as ``(n, m)``, clamped at 0 (the expanded form can round below 0)."""
    return ((x * x).sum(1, keepdim=True) - 2.0 * x @ y.T + (y * y).sum(1)).clamp_min(0)


def _rows(cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(cols, 1))


def _check_positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol: expected a finite number > 0, got {tol!r}")
    return float(tol)


def log_conditional(x: Tensor, y: Tensor, g: Tensor, reg: float) -> Tensor:
    r""":math:`\log \pi(y_j \mid x_i) = \log\mathrm{softmax}_j((g_j - |x_i - y_j|^2)/\mathrm{reg})`, ``(N, m)``,
    in the dtype of ``g``: the out-of-sample conditional of a plan with target potential ``g``.

    Computed as a log-softmax of :math:`(g_j + 2 x\cdot y_j - |y_j|^2)/\mathrm{reg}` (the
    :math:`|x|^2` term cancels), so each row sums to 1 after ``exp``.

    Example:
        >>> import torch
        >>> y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
        >>> log_conditional(y, y, torch.zeros(2, dtype=torch.float64), 4.0).exp()  # nearer points more likely
        tensor([[0.5622, 0.4378],
                [0.4378, 0.5622]], dtype=torch.float64)
    """
    x, y = x.to(g.dtype), y.to(g.dtype)
    return torch.log_softmax((g + 2.0 * x @ y.T - (y * y).sum(1)) / reg, dim=1)


@dataclass(eq=False)
class EntropicPotentials:
    r"""Dual potentials of a discrete entropic OT problem, and the conditionals they define.

    Attributes:
        x0: source samples ``(n, d)``, float64.
        x1: target samples ``(m, d)``, float64.
        f: source potential ``(n,)`` (POT's convention, see the module docstring).
        g: target potential ``(m,)``.
        eps: the paper's eps; ``reg = 4 eps``.
        marginal_error: :math:`\max(\|P\mathbf 1 - a\|_1, \|P^\top\mathbf 1 - b\|_1)` of the plan
            the potentials define.
        n_iter: Sinkhorn iterations performed.
        converged: ``marginal_error <= tol``.
        solver: ``"pot"`` (:func:`entropic_plan`), ``"geomloss"`` or ``"anneal"``
            (:func:`entropic_potentials` with that ``start``), ``"chunked"``
            (:func:`bridge.ot_online.chunked_sinkhorn`).
        backend_reason: why this solver was used, when :func:`bridge.ot_backend.solve_plan`
            chose it (``""`` otherwise).
        block_bytes: memory of one block of the chunked passes below (rows of ``x`` against all
            of ``x1``); no pass holds an ``N x m`` array except :meth:`log_conditional`'s result
            and :meth:`plan_matrix`.
        scaling_sweeps: sweeps of an epsilon-scaling before the ``n_iter`` sweeps at ``reg``
            (``"chunked"`` only; 0 otherwise).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
        >>> pots = entropic_plan(x, x, eps=0.01)
        >>> pots.barycentric_map(x).round(decimals=6)  # small eps: nearly the identity map
        tensor([[0.],
                [1.]], dtype=torch.float64)
    """

    x0: Tensor
    x1: Tensor
    f: Tensor
    g: Tensor
    eps: float
    marginal_error: float
    n_iter: int
    converged: bool
    solver: str
    backend_reason: str = field(default="", kw_only=True)
    block_bytes: int = field(default=BLOCK_BYTES, kw_only=True)
    scaling_sweeps: int = field(default=0, kw_only=True)

    @property
    def reg(self) -> float:
        """POT's regularisation ``4 eps``."""
        return 4.0 * self.eps

    def _rows(self) -> int:
        """Rows of ``x`` per block of a pass against all ``m`` target samples."""
        return max(1, self.block_bytes // (self.x1.element_size() * max(self.x1.shape[0], 1)))

    def _check_new(self, x) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(
                f"x: expected a floating-point tensor of shape (N, {self.x1.shape[1]}), got {type(x).__name__}"
            )
        if x.dim() != 2 or x.shape[1] != self.x1.shape[1]:
            raise ValueError(f"x: expected shape (N, {self.x1.shape[1]}), got {tuple(x.shape)}")
        x = x.detach().to(dtype=self.x1.dtype, device=self.x1.device)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x: contains NaN or Inf")
        return x

    def log_conditional(self, x: Tensor) -> Tensor:
        r""":math:`\log \pi(y_j \mid x)` over the target samples for each row of ``x``, ``(N, m)``.

        Computed as a log-softmax of :math:`(g_j + 2 x\cdot y_j - |y_j|^2)/\mathrm{reg}` (the
        :math:`|x|^2` term cancels), so each row sums to 1 after ``exp``.

        Example:
            >>> import torch
            >>> y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> entropic_plan(y, y, eps=0.25).log_conditional(torch.zeros(1, 1, dtype=torch.float64)).exp().sum()
            tensor(1., dtype=torch.float64)
        """
        return log_conditional(self._check_new(x), self.x1, self.g, self.reg)

    def barycentric_map(self, x: Tensor | None = None) -> Tensor:
        r"""Entropic (barycentric) map :math:`T(x) = \sum_j \pi(y_j \mid x)\, y_j`, ``(N, d)``.

        Args:
            x: points ``(N, d)``; ``None`` means the source samples ``x0`` (where it equals
                :math:`\sum_j P_{ij} y_j / a_i`, docs/math.md §5.9 (b)).

        Example:
            >>> import torch
            >>> y = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
            >>> res = entropic_plan(y, y, eps=100.0)
            >>> res.barycentric_map(torch.ones(1, 1, dtype=torch.float64))  # large eps: about the mean
            tensor([[1.]], dtype=torch.float64)
        """
        x = self.x0 if x is None else self._check_new(x)
        out = []
        for start in range(0, x.shape[0], self._rows()):
            w = self.log_conditional(x[start : start + self._rows()]).exp()
            out.append(w @ self.x1)
        return torch.cat(out) if out else x.new_zeros(0, self.x1.shape[1])

    def conditional_sample(self, x: Tensor, k: int, *, generator: torch.Generator | None = None) -> Tensor:
        r"""``k`` draws from :math:`\pi(\cdot \mid x)` (target samples, with replacement) per row of
        ``x``: shape ``(N, k, d)``.

        Example:
            >>> import torch
            >>> y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> res = entropic_plan(y, y, eps=0.5)
            >>> x = torch.zeros(3, 1, dtype=torch.float64)
            >>> res.conditional_sample(x, 4, generator=torch.Generator().manual_seed(0)).shape
            torch.Size([3, 4, 1])
        """
        k = _check_positive_int(k, "k")
        x = self._check_new(x)
        idx = []
        for start in range(0, x.shape[0], self._rows()):
            w = self.log_conditional(x[start : start + self._rows()]).exp()
            idx.append(torch.multinomial(w, k, replacement=True, generator=generator))
        idx = torch.cat(idx) if idx else torch.zeros(0, k, dtype=torch.long, device=x.device)
        return self.x1[idx]

    def plan_matrix(self) -> Tensor:
        r"""The dense plan :math:`P_{ij} = \exp((f_i + g_j - |x_i - y_j|^2)/\mathrm{reg})`, ``(n, m)``.

        Example:
            >>> import torch
            >>> y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> round(entropic_plan(y, y, eps=0.5).plan_matrix().sum().item(), 12)
            1.0
        """
        return torch.exp((self.f[:, None] + self.g[None, :] - _sqdist(self.x0, self.x1)) / self.reg)

    def _plan_tiles(self):
        r"""``(rows, cols, L)`` over tiles of :math:`L_{ij} = \log P_{ij} = (f_i + g_j - |x_i - y_j|^2)/\mathrm{reg}`,
        each one ``addmm`` of at most ``min(block_bytes, TILE_BYTES)`` (points shifted by the mean
        of ``x0``: the cost is shift-invariant, and smaller norms round better)."""
        shift = self.x0.mean(0)
        x, y = self.x0 - shift, self.x1 - shift
        row_bias = (self.f - (x * x).sum(1)) / self.reg
        col_bias = (self.g - (y * y).sum(1)) / self.reg
        yt = y.T * (2.0 / self.reg)
        tile = min(self.block_bytes, TILE_BYTES) // self.x1.element_size()
        cols = max(1, min(y.shape[0], TILE_COLS, tile))
        rows = max(1, tile // cols)
        for r0 in range(0, x.shape[0], rows):
            r = slice(r0, r0 + rows)
            for c0 in range(0, y.shape[0], cols):
                c = slice(c0, c0 + cols)
                yield r, c, torch.addmm(col_bias[c], x[r], yt[:, c]).add_(row_bias[r, None])

    def marginals(self) -> tuple[Tensor, Tensor]:
        r"""Row and column sums :math:`(P\mathbf 1, P^\top\mathbf 1)` of the plan, in row blocks.

        Example:
            >>> import torch
            >>> y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> r, c = entropic_plan(y, y, eps=0.5).marginals()
            >>> [round(v, 9) for v in r.tolist() + c.tolist()]
            [0.5, 0.5, 0.5, 0.5]
        """
        r, c = self.f.new_zeros(self.x0.shape[0]), self.g.new_zeros(self.x1.shape[0])
        for rows, cols, log_p in self._plan_tiles():
            p = log_p.exp_()
            r[rows] += p.sum(1)
            c[cols] += p.sum(0)
        return r, c

    def cross_covariance(self) -> Tensor:
        r""":math:`\sum_{ij} P_{ij} (x_i - \bar x)(y_j - \bar y)^\top` with the plan's marginal means,
        ``(d, d)``, in row blocks (the plan's mass, 1 up to the marginal error, is kept exactly).

        Example:
            >>> import torch
            >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> entropic_plan(x, x, eps=0.01).cross_covariance()  # ~ Var = 1/4
            tensor([[0.2500]], dtype=torch.float64)
        """
        x, y = self.x0 - self.x0.mean(0), self.x1 - self.x1.mean(0)  # any common shift: better rounding
        mass, xy = self.f.new_zeros(()), self.f.new_zeros(x.shape[1], y.shape[1])
        mx, my = self.f.new_zeros(x.shape[1]), self.f.new_zeros(y.shape[1])
        for rows, cols, log_p in self._plan_tiles():
            p = log_p.exp_()
            r = p.sum(1)
            mass, mx, my = mass + r.sum(), mx + r @ x[rows], my + p.sum(0) @ y[cols]
            xy += x[rows].T @ (p @ y[cols])
        xbar, ybar = mx / mass, my / mass
        return xy - mass * torch.outer(xbar, ybar)

    def transport_cost(self) -> float:
        r""":math:`\sum_{ij} P_{ij} |x_i - y_j|^2`, the plan's :math:`\mathbb E|x_0 - x_1|^2`, in row blocks.

        Example:
            >>> import torch
            >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> round(entropic_plan(x, x + 1, eps=0.05).transport_cost(), 3)  # W2^2 = 1, plus blur
            1.007
        """
        total = self.f.new_zeros(())
        for rows, cols, log_p in self._plan_tiles():  # M_ij = f_i + g_j - reg log P_ij
            p = log_p.exp()
            total += p.sum(1) @ self.f[rows] + p.sum(0) @ self.g[cols] - self.reg * (p * log_p).sum()
        return float(total)

    def value(self) -> float:
        r"""POT's objective :math:`\langle P, M\rangle + \mathrm{reg}\,\mathrm{KL}(P\,|\,ab^\top)`, from the
        potentials: with :math:`\log P_{ij} = (f_i + g_j - M_{ij})/\mathrm{reg}` the cost terms cancel and it
        is :math:`\sum_i f_i r_i + \sum_j g_j c_j + \mathrm{reg} \log(nm) \sum_{ij} P_{ij}`, ``r, c`` the
        plan's row and column sums (:meth:`marginals`).

        Example:
            >>> import torch
            >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> entropic_plan(x, x, eps=1e3).value() > 0
            True
        """
        r, c = self.marginals()
        n, m = self.x0.shape[0], self.x1.shape[0]
        return float(self.f @ r + self.g @ c) + self.reg * math.log(n * m) * float(r.sum())

    def row_ess(self, rows: int | None = None) -> float:
        r"""Median effective sample size :math:`1 / \sum_j \pi(y_j \mid x_i)^2` of the plan's rows.

        Args:
            rows: only the first ``rows`` source samples (None: all), for a cheap estimate.

        Example:
            >>> import torch
            >>> y = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> round(entropic_plan(y, y, eps=1e3).row_ess(), 3)  # large eps: each row spreads over both points
            2.0
        """
        x = self.x0 if rows is None else self.x0[: _check_positive_int(rows, "rows")]
        step = self._rows()
        ess = [1.0 / self.log_conditional(x[s : s + step]).mul(2).exp().sum(1) for s in range(0, x.shape[0], step)]
        return float(torch.cat(ess).median())


@dataclass(eq=False)
class EntropicPlanResult(EntropicPotentials):
    r""":func:`entropic_plan`'s result: the potentials of :class:`EntropicPotentials` and the plan.

    Attributes:
        plan: :math:`P^\star`, ``(n, m)``, float64, summing to 1.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x0 = torch.randn(100, 1, generator=g, dtype=torch.float64)
        >>> res = entropic_plan(x0, 2 * x0, eps=0.5)
        >>> bool(res.cross_covariance()[0, 0] > 0), res.solver
        (True, 'pot')
    """

    plan: Tensor

    def cross_covariance(self) -> Tensor:
        r""":math:`\sum_{ij} P_{ij} (x_i - \bar x)(y_j - \bar y)^\top` with the plan's marginal means, ``(d, d)``.

        Example:
            >>> import torch
            >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> entropic_plan(x, x, eps=0.01).cross_covariance()  # ~ Var = 1/4
            tensor([[0.2500]], dtype=torch.float64)
        """
        xc = self.x0 - self.plan.sum(1) @ self.x0
        yc = self.x1 - self.plan.sum(0) @ self.x1
        return xc.T @ self.plan @ yc

    def transport_cost(self) -> float:
        r""":math:`\sum_{ij} P_{ij} |x_i - y_j|^2`, the plan's :math:`\mathbb E|x_0 - x_1|^2`.

        Example:
            >>> import torch
            >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> round(entropic_plan(x, x + 1, eps=0.05).transport_cost(), 3)  # W2^2 = 1, plus blur
            1.007
        """
        return float((self.plan * _sqdist(self.x0, self.x1)).sum())

    def value(self) -> float:
        r"""POT's regularised objective :math:`\langle P, M\rangle + \mathrm{reg}\,\mathrm{KL}(P\,|\,ab^\top)`
        (twice geomloss's ``SamplesLoss("sinkhorn", p=2, blur=sqrt(2 eps), debias=False)``).

        Example:
            >>> import torch
            >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
            >>> entropic_plan(x, x, eps=1e3).value() > 0
            True
        """
        n, m = self.plan.shape
        p = self.plan
        kl = torch.where(p > 0, p * (torch.log(p) + math.log(n * m)), torch.zeros_like(p)).sum()
        return self.transport_cost() + self.reg * float(kl)


def entropic_plan(
    x0: Tensor, x1: Tensor, eps: float, *, max_iter: int = 10_000, tol: float = 1e-6, check: bool = True
) -> EntropicPlanResult:
    r"""Entropic OT plan between two sample sets for the SB with the paper's ``eps`` (POT).

    .. math::
        P^\star = \operatorname*{argmin}_{P \in \Pi(\mathbf 1/n, \mathbf 1/m)}
            \langle P, M \rangle + 4\epsilon\,\mathrm{KL}(P \,|\, ab^\top),\qquad M_{ij} = |x_i - y_j|^2,

    solved by ``ot.sinkhorn(a, b, ot.dist(x0, x1), reg=4*eps, method="sinkhorn_log", log=True)``
    in float64 on the device of ``x0`` (POT's torch backend). POT stops when the L2 error of the
    second marginal is below ``tol / sqrt(m)``; afterwards both marginals are checked in L1.

    Args:
        x0: source samples ``(n, d)``.
        x1: target samples ``(m, d)``.
        eps: the paper's eps (``reg = 4 eps``).
        max_iter: Sinkhorn iterations at most.
        tol: largest accepted :math:`\max(\|P\mathbf 1 - a\|_1, \|P^\top\mathbf 1 - b\|_1)`.
        check: raise :class:`ConvergenceError` when the tolerance is not met (default). With
            ``False`` the result is returned with ``converged=False``; it is never replaced by
            another plan.

    Returns:
        :class:`EntropicPlanResult`.

    Raises:
        ConvergenceError: the marginals are off by more than ``tol`` after ``max_iter``
            iterations (raise ``max_iter``, or use :func:`entropic_potentials`, whose
            epsilon-scaling start converges faster at small eps). With ``check`` it is raised
            as soon as the error's rate shows that ``max_iter`` cannot be enough
            (:mod:`bridge.convergence`), not only after them.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g) + 2
        >>> res = entropic_plan(x0, x1, eps=0.5)
        >>> res.converged, round(res.plan.sum().item(), 12)
        (True, 1.0)
    """
    e = check_eps(eps)
    max_iter = _check_positive_int(max_iter, "max_iter")
    tol = _check_tol(tol)
    x, y = _pair(x0, x1, ("x0", "x1"))
    import ot

    n, m = x.shape[0], y.shape[0]
    a = x.new_full((n,), 1.0 / n)
    b = x.new_full((m,), 1.0 / m)
    reg = 4.0 * e
    plan, log, n_iter, gave_up = _pot_sinkhorn(a, b, ot.dist(x, y), reg, max_iter, tol, check)
    f, g = reg * log["log_u"], reg * log["log_v"]
    if not (bool(torch.isfinite(plan).all()) and bool(torch.isfinite(f).all()) and bool(torch.isfinite(g).all())):
        raise ConvergenceError(f"entropic_plan: POT returned NaN/Inf at reg = 4 eps = {reg:g}")
    err = _marginal_l1(plan, a, b)
    if check and not err <= tol:
        raise ConvergenceError(
            f"entropic_plan: Sinkhorn did not converge: marginal error {err:.3g} > tol {tol:g} after {n_iter} "
            f"iterations{stopped_early(gave_up, max_iter)} at reg = 4 eps = {reg:g}; {PLAN_ADVICE}"
        )
    return EntropicPlanResult(
        x0=x, x1=y, f=f, g=g, eps=e, marginal_error=err, n_iter=n_iter, converged=err <= tol, solver="pot", plan=plan
    )


def _marginal_l1(plan: Tensor, a: Tensor, b: Tensor) -> float:
    """The larger L1 error of a plan's two marginals against ``a`` and ``b``."""
    return max(float((plan.sum(1) - a).abs().sum()), float((plan.sum(0) - b).abs().sum()))


def _pot_sinkhorn(a: Tensor, b: Tensor, M: Tensor, reg: float, max_iter: int, tol: float, give_up: bool):
    """POT's log-domain Sinkhorn (stopped at an L2 column error of ``tol / sqrt(m)``) in runs of
    :data:`POT_CHUNK` iterations, each warm-started where the last ended (the same iterations as
    one call); with ``give_up``, stopped early when the plan's L1 marginal error is above ``tol``
    and :func:`bridge.convergence.hopeless` says it will not get there in time.

    Returns:
        ``(plan, log, iterations, gave_up)``, ``log`` POT's of the last run.
    """
    import ot

    warm, errors, done = None, [], 0
    while True:
        k = min(POT_CHUNK, max_iter - done)
        with warnings.catch_warnings():  # non-convergence is reported by the caller
            warnings.simplefilter("ignore", UserWarning)
            plan, log = ot.sinkhorn(
                a, b, M, reg=reg, method="sinkhorn_log", numItermax=k, stopThr=tol / math.sqrt(b.shape[0]),
                log=True, warmstart=warm,
            )  # fmt: skip
        done += int(log["niter"]) + 1
        errors += [float(v) for v in log["err"]]  # POT's L2 column error, every 10 iterations
        if done >= max_iter or int(log["niter"]) + 1 < k:  # out of iterations, or POT stopped: converged
            return plan, log, done, False
        if give_up:
            err = _marginal_l1(plan, a, b)
            if err > tol and hopeless(errors, 10, tol, max_iter - done, current=err):
                return plan, log, done, True
        warm = (log["log_u"], log["log_v"])


@dataclass(eq=False)
class MinibatchPlan:
    """:func:`minibatch_log_plan`'s result.

    Attributes:
        log_plan: ``log P``, ``(n, m)``, float64; the rows sum to ``1/n`` exactly.
        potential: the source potential ``f``, ``(n,)``, float64: with the source points, the
            ``warm`` start of a later plan.
        marginal_error: L1 error of the column marginal.
    """

    log_plan: Tensor
    potential: Tensor
    marginal_error: float


def minibatch_log_plan(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    tol: float = 1e-2,
    max_iter: int = 200,
    warm: tuple[Tensor, Tensor] | None = None,
) -> MinibatchPlan:
    r"""The entropic plan between two small sample sets (a minibatch), in the log domain.

    :math:`P = \operatorname{argmin}_{P \in \Pi(\mathbf 1/n, \mathbf 1/m)} \langle P, C\rangle
    + 4\epsilon\,\mathrm{KL}(P \,|\, ab^\top)`, :math:`C_{ij} = |x_i - y_j|^2`, by log-domain Sinkhorn
    on the precomputed dense cost. It stops once the column marginal's L1 error is at most ``tol``
    (the rows are exact after each half-step); the plan is meant to be sampled from, so the
    default tolerance is loose. Float64 inside.

    Cold, the potentials start by halving the temperature from ``max C`` down to ``4 eps`` (stable
    at any eps). With ``warm = (x_prev, f_prev)``, the source points and ``potential`` of an
    earlier plan between samples of the same two distributions at the same eps, the target
    potential instead starts as the c-transform of ``f_prev``, i.e. the earlier plan's
    out-of-sample potential at ``x1``, and the temperature is halved twice from ``16 eps``.
    Consecutive minibatch plans in training are such plans; with 256 points per side at
    ``tol = 1e-2`` the warm start needs 0.65-0.95 of the cold start's passes on
    ``benchmarks/sb.py``'s problems at eps >= 0.5, and as many at eps = 0.05, where the minibatch
    potentials differ more from plan to plan.

    Args:
        x0, x1: ``(n, d)`` and ``(m, d)``.
        eps: the paper's eps (``reg = 4 eps``).
        tol: accepted L1 error of the column marginal.
        max_iter: Sinkhorn sweeps at the final temperature at most.
        warm: ``(x_prev (k, d), f_prev (k,))`` or None.

    Returns:
        :class:`MinibatchPlan`; the caller decides what marginal error it accepts.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(64, 2, generator=g), torch.randn(64, 2, generator=g) + 1
        >>> res = minibatch_log_plan(x0, x1, 0.5, tol=1e-6, max_iter=1000)
        >>> res.marginal_error <= 1e-6, round(float(res.log_plan.exp().sum()), 6)
        (True, 1.0)
    """
    reg = 4.0 * check_eps(eps)
    x, y = _pair(x0, x1, ("x0", "x1"))
    y = y.to(torch.float64)
    c = _sqdist(x.to(torch.float64), y)
    n, m = c.shape
    la, lb = -math.log(n), -math.log(m)

    def f_of(g, level):  # c-transforms at temperature `level`
        return -level * torch.logsumexp((g[None, :] - c) / level + lb, dim=1)

    def g_of(f, level, cost=c, log_w=la):
        return -level * torch.logsumexp((f[:, None] - cost) / level + log_w, dim=0)

    if warm is not None:
        x_prev, f_prev = warm
        if x_prev.dim() != 2 or x_prev.shape[1] != x.shape[1] or f_prev.shape != x_prev.shape[:1]:
            raise ValueError(
                f"warm: expected (x_prev (k, {x.shape[1]}), f_prev (k,)), got shapes "
                f"{tuple(x_prev.shape)} and {tuple(f_prev.shape)}"
            )
        c_prev = _sqdist(x_prev.to(device=c.device, dtype=c.dtype), y)
        g = g_of(f_prev.to(device=c.device, dtype=c.dtype), reg, c_prev, -math.log(x_prev.shape[0]))
        level = min(float(c.max()), 4 * reg)  # two halvings: a minibatch's potential is noisy at small eps
    else:
        g, level = c.new_zeros(m), float(c.max())
    while level > reg:
        g = g_of(f_of(g, level), level)
        level /= 2
    f = f_of(g, reg)
    err = math.inf
    for _ in range(max_iter + 1):
        g_next = g_of(f, reg)
        # with exact rows, column j sums to b_j exp((g_j - g_next_j) / reg)
        err = float(torch.expm1((g - g_next) / reg).abs().sum()) / m
        if err <= tol:
            break
        g = g_next
        f = f_of(g, reg)
    return MinibatchPlan((f[:, None] + g[None, :] - c) / reg + la + lb, f, err)


def _cost_blocks(x: Tensor, y: Tensor) -> list[Tensor] | None:
    """``|x_i - y_j|^2`` in the row blocks of ``x`` that :func:`_c_transform` passes over, computed
    once for every sweep while both orientations hold at most :data:`_CACHED_COST_ELEMENTS`
    entries together (None above: the sweeps recompute them)."""
    if 2 * x.shape[0] * y.shape[0] > _CACHED_COST_ELEMENTS:
        return None
    r = _rows(y.shape[0])
    return [_sqdist(x[start : start + r], y) for start in range(0, x.shape[0], r)]


def _c_transform(pot: Tensor, y: Tensor, x: Tensor, log_w: Tensor, reg: float, costs=None) -> Tensor:
    r"""``h_i = reg log w_i - reg logsumexp_j((pot_j - |x_i - y_j|^2)/reg)``, in row blocks of ``x``;
    ``costs``: those blocks' costs from :func:`_cost_blocks` (None: computed here)."""
    out, r = [], _rows(y.shape[0])
    for k, start in enumerate(range(0, x.shape[0], r)):
        cost = costs[k] if costs is not None else _sqdist(x[start : start + r], y)
        out.append(-reg * torch.logsumexp((pot[None, :] - cost) / reg, dim=1))
    return reg * log_w + torch.cat(out)


def entropic_potentials(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    scaling: float = 0.95,
    max_iter: int = 1000,
    tol: float = 1e-6,
    check: bool = True,
    start: str = "geomloss",
    progress=None,
    give_up_above: float | None = None,
) -> EntropicPotentials:
    r"""Dual potentials of the same problem as :func:`entropic_plan`, without forming the plan.

    .. math::
        \max_{f, g}\ \sum_i a_i f_i + \sum_j b_j g_j
            - \mathrm{reg} \sum_{ij} e^{(f_i + g_j - |x_i - y_j|^2)/\mathrm{reg}},
        \qquad \mathrm{reg} = 4\epsilon

    (POT's convention for the potentials; the objective holds up to a constant).

    Two stages: (1) geomloss ``SamplesLoss("sinkhorn", p=2, blur=sqrt(2 eps), debias=False,
    potentials=True, scaling=scaling)``, whose epsilon-scaling reaches the neighbourhood of the
    solution in ``O(log(diameter/blur)/log(1/scaling))`` sweeps (also where plain Sinkhorn
    stalls, e.g. small eps) but leaves marginal errors of ~1e-3..1e-2 at the final temperature;
    without pykeops geomloss holds the ``n x m`` cost matrix during this stage; its potentials
    :math:`F, G` (cost :math:`|x-y|^2/2`, temperature ``2 eps``) become POT's by :math:`f = 2F + \mathrm{reg}\log a`,
    :math:`g = 2G + \mathrm{reg}\log b`; (2) log-domain Sinkhorn sweeps (the c-transforms
    :math:`g \leftarrow \mathrm{reg}\log b - \mathrm{reg}\,\mathrm{LSE}_i((f_i - M_{ij})/\mathrm{reg})`
    and likewise for ``f``) in blocks of at most ~4M cost entries, until the column-marginal L1
    error is below ``tol`` (the row marginal is exact after each ``f`` update). The annealing start
    and the sweeps reuse one computation of the cost matrix while it is small enough
    (:data:`_CACHED_COST_ELEMENTS`).

    Args:
        x0: source samples ``(n, d)``.
        x1: target samples ``(m, d)``.
        eps: the paper's eps.
        scaling: geomloss's epsilon-scaling ratio in ``(0, 1)``.
        max_iter: refinement sweeps at most.
        progress: optional ``progress(sweeps, max_iter)``, called after every refinement sweep.
        tol: accepted marginal L1 error.
        check: raise :class:`ConvergenceError` when ``tol`` is not met.
        give_up_above: stop the sweeps early once their rate shows that the marginal error will
            not fall to this value within ``max_iter`` (:mod:`bridge.convergence`); None: ``tol``
            with ``check``, else never.
        start: stage (1): ``"geomloss"`` as above, or ``"anneal"``: our own epsilon-scaling with
            the memory-light sweeps of stage (2) (``reg`` halved per sweep from the squared
            diameter down to ``4 eps``); the latter is several times faster on a CPU without
            pykeops (geomloss's tensorised backend spends most of its time outside the sweeps).

    Returns:
        :class:`EntropicPotentials` (``solver`` is the ``start`` used).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x0 = torch.randn(300, 2, generator=g, dtype=torch.float64)
        >>> pots = entropic_potentials(x0, x0 + 1, eps=0.05)
        >>> pots.converged, pots.f.shape
        (True, torch.Size([300]))
    """
    e = check_eps(eps)
    max_iter = _check_positive_int(max_iter, "max_iter")
    tol = _check_tol(tol)
    if isinstance(scaling, bool) or not isinstance(scaling, numbers.Real) or not 0 < scaling < 1:
        raise ValueError(f"scaling: expected a number in (0, 1), got {scaling!r}")
    if start not in ("geomloss", "anneal"):
        raise ValueError(f"start: expected 'geomloss' or 'anneal', got {start!r}")
    x, y = _pair(x0, x1, ("x0", "x1"))
    n, m = x.shape[0], y.shape[0]
    reg = 4.0 * e
    log_a = x.new_full((n,), -math.log(n))
    log_b = x.new_full((m,), -math.log(m))
    if start == "geomloss":
        from geomloss import SamplesLoss

        loss = SamplesLoss(
            "sinkhorn", p=2, blur=math.sqrt(2.0 * e), debias=False, potentials=True, scaling=float(scaling)
        )
        with torch.no_grad():
            F, G = loss(x, y)
        f = 2.0 * F.reshape(-1) + reg * log_a
        g = 2.0 * G.reshape(-1) + reg * log_b
    cx, cy = _cost_blocks(x, y), _cost_blocks(y, x)  # rows of x against y, rows of y against x
    if start == "anneal":
        both = torch.cat([x, y])
        level = float((both.amax(0) - both.amin(0)).pow(2).sum())  # squared diameter, >= every cost
        g = torch.zeros_like(log_b)
        while level > reg:
            f = _c_transform(g, y, x, log_a, level, cx)
            g = _c_transform(f, x, y, log_b, level, cy)
            level *= 0.5
    f, g, err, it, gave_up = final_sweeps(
        g,
        lambda g: _c_transform(g, y, x, log_a, reg, cx),
        lambda f: _c_transform(f, x, y, log_b, reg, cy),
        log_b.exp(),
        reg,
        tol=tol,
        max_iter=max_iter,
        progress=progress,
        give_up=give_up_target(tol, check, give_up_above),
    )
    if not (bool(torch.isfinite(f).all()) and bool(torch.isfinite(g).all())):
        raise ConvergenceError(f"entropic_potentials: NaN/Inf potentials at reg = 4 eps = {reg:g}")
    if check and not err <= tol:
        raise ConvergenceError(
            f"entropic_potentials: marginal error {err:.3g} > tol {tol:g} after {it} Sinkhorn sweeps"
            f"{stopped_early(gave_up, max_iter)} at reg = 4 eps = {reg:g}; "
            f"{POTENTIALS_ADVICE}"
        )
    return EntropicPotentials(
        x0=x, x1=y, f=f, g=g, eps=e, marginal_error=err, n_iter=it, converged=err <= tol, solver=start
    )
