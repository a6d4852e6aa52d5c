r"""The step count of an SDE sampler chosen from a measured error (docs/math.md §3).

:func:`choose_steps` integrates a pilot batch (``per_row`` paths from each of ``rows`` starting
points) with ``N`` and ``2N`` steps driven by the *same* Brownian paths and doubles ``N`` until
the two samplers agree in law:

.. math::
    \mathrm{err}(N) = \frac{1}{\operatorname{tr} S^{(2N)}}\Big(\frac1R\sum_{i=1}^R
        \Big[\big|\hat m^{(N)}_i - \hat m^{(2N)}_i\big|^2 - \frac{\operatorname{tr}\hat C_i}{K}\Big]
        + B^2\big(S^{(N)}, S^{(2N)}\big)\Big) \le \mathrm{tol},

with :math:`\hat m_i` the mean of the ``K`` paths from starting point ``i``, :math:`\hat C_i` the
covariance of their paired differences :math:`X^{(N)} - X^{(2N)}`, :math:`S` the covariance of all
pilot end points and ``B`` the Bures distance (:func:`bridge.metrics.gaussian_w2_squared`): the
cBW2-UVP of docs/math.md §6 between the two samplers, in units of 1 instead of percent, with the
conditional covariances pooled. The common noise cancels most of the sampling noise of the
difference; the rest of it in the mean term, :math:`\operatorname{tr}\hat C_i / K`, is
subtracted (so ``err`` is unbiased for that term and may come out negative), and a count is
accepted only when ``err`` plus two of its standard errors (from the spread of the rows' terms)
is within ``tol``. For a
scheme of weak order ``p`` the error of the ``2N``-step law is about ``err(N) / (2^p - 1)^2``, at
most ``err(N)``; ``2N`` is the count returned.

What is left is dominated by rare paths that the two resolutions send to different modes of the
target, a difference of the size of the distance between the modes, so the pilot has few
starting points and many paths each (the noise of the mean term falls like one over the square
root of ``K`` times the number of paths), and the covariances are pooled over all paths (from
``K`` paths each, that noise would enter the Bures term amplified by the dimension).

The pathwise alternative, the mean squared distance of paired end points over the spread
(``path_error``, recorded too), bounds the squared W2 distance of the two laws, but it is
dominated by rare paths that the two resolutions send to different modes of the target (a
difference of the size of the distance between modes, while the laws agree): on the mixture
benchmark it was 56 times the tolerance where the laws agreed (benchmarks/README.md §16).

The same path at two resolutions (a Brownian tree): a step's standard normal ``xi`` is split into
its two halves' normals ``(xi + eta)/sqrt(2)`` and ``(xi - eta)/sqrt(2)`` with a fresh
``eta ~ N(0, 1)``, which are independent standard normals whose normalised sum is ``xi`` again
(Lévy's construction of Brownian motion). The samplers scale each ``xi`` by
``sqrt(2 eps |dt|)``, so the two resolutions see the same ``W`` at every coarse grid time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..metrics import gaussian_w2_squared

__all__ = [
    "StepChoice",
    "choose_steps",
    "refine_noise",
    "STEPS_TOL",
    "STEPS_START",
    "STEPS_MAX",
    "PILOT_ROWS",
    "PILOT_PER_ROW",
]

#: Default tolerance of :func:`choose_steps`: ``100 * tol`` = 0.05 (percent of cBW2-UVP) between
#: the chosen sampler and one with twice its steps, about the spread of the benchmarks' scores at
#: their test size (benchmarks/README.md §16 measures what it gives).
STEPS_TOL = 5e-4
#: The first count tried by :func:`choose_steps` (compared with twice as many, so at least 64 steps
#: are returned): on the mixture benchmark at small eps, 16 and 20 steps score 0.03-0.07 % of
#: cBW2-UVP above the floor, which a pilot of about a thousand paths comparing 8 with 16 steps does
#: not see (benchmarks/README.md §16).
STEPS_START = 32
#: The largest count :func:`choose_steps` returns.
STEPS_MAX = 1024
#: Starting points of the pilot batch (the first rows of ``x``, cycled when there are fewer).
PILOT_ROWS = 16
#: Paths from each starting point of the pilot batch.
PILOT_PER_ROW = 64


@dataclass
class StepChoice:
    """What :func:`choose_steps` chose and why.

    Attributes:
        steps: the chosen count.
        error: ``err`` (module docstring) of half the chosen count against the chosen count.
        error_se: its standard error; the count is accepted when ``error + 2 error_se <= tol``.
        path_error: the pathwise relative error of the same pair (module docstring).
        tol: the tolerance it was held to.
        pilot: ``(rows, per_row)`` of the pilot batch.
        history: ``[(N, err(N), its standard error, path_error(N)), ...]``, each comparing ``N``
            with ``2N`` steps.
        reason: one line for reports and logs.
    """

    steps: int
    error: float
    error_se: float
    path_error: float
    tol: float
    pilot: tuple
    history: list = field(default_factory=list)
    reason: str = ""

    def as_dict(self) -> dict:
        """JSON-ready record."""
        return {
            "steps": self.steps,
            "error": self.error,
            "error_se": self.error_se,
            "path_error": self.path_error,
            "tol": self.tol,
            "pilot": list(self.pilot),
            "history": [[int(n), float(e), float(se), float(p)] for n, e, se, p in self.history],
            "reason": self.reason,
        }


def refine_noise(xi: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Split each step's standard normal in two, keeping the Brownian path (module docstring).

    ``xi`` of shape ``(steps, ...)`` becomes ``(2 steps, ...)`` with rows ``2k, 2k + 1`` equal to
    :math:`(\xi_k \pm \eta_k)/\sqrt 2`, :math:`\eta_k \sim N(0, 1)` from ``generator``; so
    ``(fine[2k] + fine[2k+1]) / sqrt(2) == xi[k]``.

    Example:
        >>> xi = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(0))
        >>> fine = refine_noise(xi, torch.Generator().manual_seed(1))
        >>> fine.shape, torch.allclose((fine[0::2] + fine[1::2]) / 2**0.5, xi)
        (torch.Size([6, 5, 2]), True)
    """
    eta = torch.randn(xi.shape, generator=generator, dtype=xi.dtype, device=xi.device)
    return torch.stack(((xi + eta) / math.sqrt(2.0), (xi - eta) / math.sqrt(2.0)), dim=1).flatten(0, 1)


def law_error(coarse: Tensor, fine: Tensor) -> tuple[float, float]:
    """``err`` of the module docstring for ``(rows, per_row, d)`` end points of the two samplers,
    and its standard error (from the spread of the rows' mean terms)."""
    c, f = coarse.double(), fine.double()
    r, k, d = f.shape
    delta = c - f
    terms = delta.mean(1).square().sum(-1) - delta.var(1).sum(-1) / k  # (rows,): unbiased |E diff|^2
    cov_c, cov_f = torch.cov(c.reshape(-1, d).T).reshape(d, d), torch.cov(f.reshape(-1, d).T).reshape(d, d)
    spread = float(cov_f.trace())
    if not spread > 0:
        return (0.0, 0.0) if bool((c == f).all()) else (math.inf, math.inf)
    zero = f.new_zeros(d)
    err = (float(terms.mean()) + gaussian_w2_squared(zero, cov_c, zero, cov_f)) / spread
    se = float(terms.std() / math.sqrt(r)) / spread if r > 1 else math.inf
    return err, se


def path_error(coarse: Tensor, fine: Tensor) -> float:
    """``E|coarse - fine|^2 / tr Cov(fine)`` over all paths (module docstring)."""
    c, f = coarse.double().flatten(0, -2), fine.double().flatten(0, -2)
    spread = float(f.var(0).sum())
    mse = float((c - f).square().sum(-1).mean())
    return mse / spread if spread > 0 else (0.0 if mse == 0 else math.inf)


def _check_choice_args(tol, start, max_steps, rows, per_row) -> None:
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0.0 < tol < 1.0:
        raise ValueError(f"tol: expected a number in (0, 1), got {tol!r}")
    for name, v, lo in (("start", start, 1), ("max_steps", max_steps, 2), ("rows", rows, 1), ("per_row", per_row, 2)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}: expected an int >= {lo}, got {v!r}")
    if max_steps < 2 * start:
        raise ValueError(f"max_steps: expected at least 2 * start = {2 * start}, got {max_steps}")


def choose_steps(
    integrate: Callable[[Tensor, int, Tensor], Tensor],
    x: Tensor,
    *,
    tol: float = STEPS_TOL,
    start: int = STEPS_START,
    max_steps: int = STEPS_MAX,
    rows: int = PILOT_ROWS,
    per_row: int = PILOT_PER_ROW,
    generator: torch.Generator | None = None,
) -> StepChoice:
    r"""The smallest count ``2N`` (``N = start, 2 start, ...``) with ``err(N) + 2 se <= tol``, ``se`` the
    standard error of ``err(N)`` (module docstring): below ``tol`` with about 97% confidence.

    Args:
        integrate: ``(x, steps, noise) -> end points``: the sampler from the rows of ``x`` driven
            by ``noise``, standard normals of shape ``(steps, n, d)`` (e.g.
            :func:`bridge.samplers.sample_sde` with ``noise``).
        x: starting points ``(n, d)``; the pilot starts from its first ``rows`` rows (cycled if fewer).
        tol: the tolerance on ``err``, in (0, 1); ``100 tol`` is in cBW2-UVP percent.
        start: the first ``N``; the first comparison is ``start`` against ``2 start``.
        max_steps: the largest count returned (returned with its error even if above ``tol``).
        rows, per_row: the pilot batch: ``per_row`` paths from each of ``rows`` starting points.
        generator: the pilot's noise.

    Returns:
        :class:`StepChoice`.

    Example:
        >>> from bridge.samplers import sample_sde
        >>> run = lambda x, n, xi: sample_sde(lambda t, x: -x, x, eps=0.5, steps=n, noise=xi).x
        >>> c = choose_steps(run, torch.zeros(1, 2), generator=torch.Generator().manual_seed(0))
        >>> c.steps, c.error + 2 * c.error_se <= c.tol
        (64, True)
    """
    _check_choice_args(tol, start, max_steps, rows, per_row)
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"x: expected starting points of shape (n, d) with n >= 1, got {tuple(x.shape)}")
    xp = x[torch.arange(rows, device=x.device) % x.shape[0]].repeat_interleave(per_row, dim=0)
    shape = (rows, per_row, x.shape[1])
    xi = torch.randn((start,) + tuple(xp.shape), generator=generator, dtype=xp.dtype, device=xp.device)
    coarse, n, history = integrate(xp, start, xi).reshape(shape), start, []
    while True:
        xi = refine_noise(xi, generator)
        fine = integrate(xp, 2 * n, xi).reshape(shape)
        history.append((n, *law_error(coarse, fine), path_error(coarse, fine)))
        n, coarse = 2 * n, fine
        if history[-1][1] + 2 * history[-1][2] <= tol or 2 * n > max_steps:
            break
    _, err, se, perr = history[-1]
    met = "within" if err + 2 * se <= tol else "not within (max_steps reached)"
    reason = (
        f"{n} steps: the cBW2-UVP of {n // 2} steps against {n} on the same Brownian paths is "
        f"{100 * err:.2g} +- {100 * se:.2g}% ({rows} x {per_row} pilot paths; pathwise {100 * perr:.2g}%), "
        f"{met} 100 tol = {100 * tol:g}%"
    )
    return StepChoice(
        steps=n, error=err, error_se=se, path_error=perr, tol=float(tol), pilot=(rows, per_row), history=history,
        reason=reason,
    )  # fmt: skip
