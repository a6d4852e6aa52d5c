r"""Where eps sits against the data's scale (docs/math.md §7, §8).

The bridge's endpoints follow the entropic plan with POT's ``reg = 4 eps`` on squared distances.
Two measurements place a given eps, and :func:`eps_scale` makes both:

* **Against the spread: (nearly) the independent coupling.** Between Gaussians :math:`N(a, A)`
  and :math:`N(b, B)` the plan's canonical correlations (of ``x0`` and ``x1`` after whitening each)
  are, from the closed form of docs/math.md §7,

  .. math:: \rho_k = \sqrt{1 + (\epsilon / s_k)^2} - \epsilon / s_k
            = \frac{1}{\sqrt{1 + (\epsilon / s_k)^2} + \epsilon / s_k},

  where :math:`s_k^2` are the eigenvalues of :math:`AB` (in 1-D the cross-covariance is
  :math:`\sqrt{AB + \epsilon^2} - \epsilon`). The largest, :math:`\rho_{\max}` at
  :math:`s = \sqrt{\lambda_{\max}(AB)}`, bounds how much any linear statistic of ``x1`` depends on
  ``x0``; it falls like :math:`s / (2\epsilon)`. The means do not enter: a shift changes the
  cost by terms of ``x0`` or ``x1`` alone, which the potentials absorb. With the sample
  covariances in place of ``A``, ``B`` this is exact for Gaussian data and the natural scale for
  any other. Below :data:`RHO_INDEPENDENT` the plan is almost :math:`\rho_0 \otimes \rho_1`.
* **Against the sample spacing: (nearly) the OT map.** Between ``m`` samples per side, row ``i``
  of the plan spreads over the targets whose cost is within about ``reg`` of its best partner's.
  Once ``reg`` is below the cost gaps between neighbouring partners, every row sits on one point:
  the plan is the unregularised OT assignment of the samples. The median row effective sample
  size :math:`1/\sum_j \pi(j \mid i)^2` of the plan between ``m`` samples per side measures
  this directly; below :data:`ROW_ESS_OT` the rows are (nearly) single points. (Unlike the spread,
  the spacing depends on ``m``: more samples resolve a smaller eps.)

Both use a fixed, evenly spaced subset of the rows: no random draws.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x0, x1 = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g) + 3
    >>> [eps_scale(x0, x1, eps).verdict for eps in (1e-6, 0.5, 1e3)]
    ['ot', 'entropic', 'independent']
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

__all__ = ["ROW_ESS_OT", "RHO_INDEPENDENT", "EpsScale", "eps_scale", "gaussian_plan_correlation"]

#: The plan counts as (nearly) independent when no linear statistic of ``x1`` correlates with
#: ``x0`` by more than this (:math:`\rho_{\max}`; reached at eps of about 10 times the spread).
RHO_INDEPENDENT = 0.05
#: The plan counts as (nearly) the OT assignment of the samples when a row's median effective
#: sample size is below this: most of each row's mass on one partner.
ROW_ESS_OT = 2.0
#: Samples per side that the measurements use at most.
SCALE_POINTS = 500


def gaussian_plan_correlation(eps: float, s: float) -> float:
    r""":math:`\rho = 1 / (\sqrt{1 + (\epsilon/s)^2} + \epsilon/s)`: the canonical correlation of the
    entropic plan between Gaussians along a direction of scale ``s`` (module docstring); 0 for
    ``s = 0``.

    Example:
        >>> round(gaussian_plan_correlation(0.5, 1.0), 4)  # 1-D, A = B = 1, r = 2 eps = 1: (sqrt 5 - 1)/2
        0.618
    """
    if s <= 0:
        return 0.0
    q = eps / s
    return 1.0 / (math.sqrt(1.0 + q * q) + q)


@dataclass(frozen=True)
class EpsScale:
    """What :func:`eps_scale` measured.

    Attributes:
        eps: the paper's eps; ``reg = 4 eps`` is POT's.
        reg: POT's regularisation ``4 eps``.
        spread: :math:`s = \\sqrt{\\lambda_{\\max}(\\mathrm{Cov}(x_0)\\,\\mathrm{Cov}(x_1))}`.
        correlation: :math:`\\rho_{\\max}` of the Gaussian plan at this eps and spread.
        points: samples per side of the plan whose rows were measured.
        row_ess: the median row effective sample size of that plan.
        verdict: ``"independent"``, ``"ot"`` or ``"entropic"`` (neither).
        message: what the verdict means, or None for ``"entropic"``.
    """

    eps: float
    reg: float
    spread: float
    correlation: float
    points: int
    row_ess: float
    verdict: str
    message: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def _subset(x: Tensor, m: int) -> Tensor:
    """``m`` evenly spaced rows of ``x`` (all of them if it has fewer), on the CPU in float64."""
    x = x.detach().to(device="cpu", dtype=torch.float64)
    if x.shape[0] <= m:
        return x
    return x[torch.linspace(0, x.shape[0] - 1, m, dtype=torch.float64).round().long()]


def _spread(a: Tensor, b: Tensor) -> float:
    """:math:`\\sqrt{\\lambda_{\\max}(\\Sigma_a \\Sigma_b)}` as the largest singular value of
    :math:`X_a X_b^T / \\sqrt{(n_a - 1)(n_b - 1)}` with centred rows (an ``n_a x n_b`` matrix)."""
    xa, xb = a - a.mean(0), b - b.mean(0)
    k = xa @ xb.T / math.sqrt((a.shape[0] - 1) * (b.shape[0] - 1))
    return float(torch.linalg.matrix_norm(k, ord=2))


def _row_ess(a: Tensor, b: Tensor, eps: float) -> float:
    from ..ot import minibatch_log_plan

    # the rows are exact after each half-step; a loose column marginal is enough to count their spread
    rows = minibatch_log_plan(a, b, eps, tol=1e-2, max_iter=50).log_plan.softmax(dim=1)
    return float((1.0 / rows.pow(2).sum(dim=1)).median())


def eps_scale(x0: Tensor, x1: Tensor, eps: float, *, points: int = SCALE_POINTS) -> EpsScale:
    """Place ``eps`` against the spread and the sample spacing of ``x0`` and ``x1`` (module
    docstring): is the bridge (nearly) the independent coupling, or (nearly) the OT map?

    Args:
        x0, x1: source and target samples ``(n, d)``, ``n >= 2``.
        eps: the paper's eps.
        points: samples per side used at most (evenly spaced rows).

    Returns:
        :class:`EpsScale`.
    """
    a, b = _subset(x0, points), _subset(x1, points)
    s = _spread(a, b)
    rho = gaussian_plan_correlation(eps, s)
    ess = _row_ess(a, b, eps)
    m, reg = min(a.shape[0], b.shape[0]), 4.0 * eps
    if rho < RHO_INDEPENDENT:
        verdict = "independent"
        message = (
            f"eps = {eps:g} is {eps / s:.3g} times the data's scale s = {s:.3g} (s^2 the largest eigenvalue of "
            f"Cov(x0) Cov(x1)): the bridge's plan is almost the independent coupling (for Gaussian data no linear "
            f"statistic of x1 correlates with x0 by more than {rho:.2g}), so the bridge barely depends on x0; "
            f"an eps of the order of s or below gives one that does"
            if s > 0
            else "x0 or x1 is a single point: every coupling, at any eps, is the independent one"
        )
    elif ess < ROW_ESS_OT:
        verdict = "ot"
        message = (
            f"eps = {eps:g} (POT reg = 4 eps = {reg:g}) is below the spacing of the samples: between {m} samples "
            f"per side a row of the entropic plan sits on {ess:.3g} points (median effective sample size), so "
            f"the plan is (nearly) the unregularised OT assignment of the samples and the bridge practically the "
            f"OT map at their resolution; a larger eps gives a plan whose rows spread"
        )
    else:
        verdict, message = "entropic", None
    return EpsScale(float(eps), reg, s, rho, m, ess, verdict, message)
