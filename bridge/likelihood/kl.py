r"""The two sides of the KL bound for SDE models (docs/math.md §4, SI Thm 2.4, 2.49).

For the forward SDE model with drift :math:`\hat b_F = \hat b + \epsilon\hat s` and constant
:math:`\epsilon > 0`, write :math:`u = \nabla\log(\rho/\hat\rho)`. The two Fokker–Planck
equations give

.. math:: \frac{d}{dt}\mathrm{KL}(\rho_t\,\|\,\hat\rho_t)
    = \mathbb E[(b - \hat b)\cdot u] + \epsilon\,\mathbb E[(s - \hat s)\cdot u] - \epsilon\,\mathbb E|u|^2
    \le \frac1{2\epsilon}\mathbb E|b - \hat b|^2 + \frac\epsilon2\mathbb E|s - \hat s|^2

(Young's inequality on each product, each with half of :math:`\epsilon\mathbb E|u|^2`), so with
the excess losses :math:`\mathcal E_f = \tfrac12\int_0^1\mathbb E|\hat f - f|^2dt` of docs/math.md §2,

.. math:: \mathrm{KL}(\rho_1\,\|\,\hat\rho_1) \le \frac{\mathcal E_b}{\epsilon} + \epsilon\,\mathcal E_s
    = \frac1{2\epsilon}\int_0^1\mathbb E|\hat b - b|^2dt + \frac\epsilon2\int_0^1\mathbb E|\hat s - s|^2dt,

minimised by :math:`\epsilon^* = \sqrt{\mathcal E_b/\mathcal E_s}` (SI 2.49), where it equals
:math:`2\sqrt{\mathcal E_b\mathcal E_s}`. The bound is sometimes written
:math:`\frac1{2\epsilon}\mathcal E_b + \frac\epsilon2\mathcal E_s`: that reads the losses without
the factor 1/2 (:math:`\int\mathbb E|\hat f - f|^2`); with the excess of docs/math.md §2 it is a
factor 2 too small, and it fails, e.g., for :math:`\rho_0 = \rho_1 = N(0, 1)` with the trig
interpolant and constant errors :math:`\hat b - b = \epsilon\delta`, :math:`\hat s - s = \delta`
(the likelihood tests check the closed form there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..interpolants.base import Interpolant

__all__ = ["ExcessLoss", "excess_loss", "training_loss", "KLBoundReport", "kl_bound_report"]

Field = Callable[[Tensor, Tensor], Tensor]


@dataclass
class ExcessLoss:
    """An excess loss :math:`\\tfrac12\\int_0^1\\mathbb E|\\hat f - f|^2 dt` (or a stand-in).

    Attributes:
        value: the estimate.
        stderr: its Monte-Carlo standard error (or the spread of the training-loss values).
        is_excess: True for a true excess loss (exact fields known); False for a training-loss
            value, which is the excess plus the unknown constant :math:`\\min L = -\\tfrac12\\int\\mathbb E|f|^2`.
        note: how it was obtained.
    """

    value: float
    stderr: float
    is_excess: bool
    note: str


def excess_loss(
    f_hat: Field,
    f_star: Field,
    interp: Interpolant,
    x0: Tensor,
    x1: Tensor,
    *,
    t_range=(0.0, 1.0),
    generator: torch.Generator | None = None,
) -> ExcessLoss:
    r"""Monte-Carlo estimate of :math:`\tfrac12\int_0^1\mathbb E|\hat f(t, x_t) - f^*(t, x_t)|^2dt`
    (docs/math.md §2), with :math:`t \sim U[t_{min}, t_{max}]`, :math:`x_t = I(t, x_0, x_1) + \gamma(t)z`
    drawn from the pairs ``(x0[i], x1[i])`` and fresh ``z``; the integral is the mean times
    ``t_max - t_min``.

    Example:
        >>> import torch
        >>> from bridge.interpolants import Linear
        >>> x = torch.zeros(100, 2, dtype=torch.float64)
        >>> excess_loss(lambda t, x: x + 1, lambda t, x: x, Linear(), x, x).value
        1.0
    """
    if not isinstance(interp, Interpolant):
        raise TypeError(f"interp: expected an Interpolant, got {type(interp).__name__}")
    for name, f in (("f_hat", f_hat), ("f_star", f_star)):
        if not callable(f):
            raise TypeError(f"{name}: expected a callable f(t, x), got {type(f).__name__}")
    if not (isinstance(x0, Tensor) and isinstance(x1, Tensor)) or x0.shape != x1.shape or x0.dim() != 2:
        raise ValueError("x0, x1: expected two tensors of the same shape (n, d)")
    lo, hi = float(t_range[0]), float(t_range[1])
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"t_range: expected 0 <= t_min < t_max <= 1, got {t_range!r}")
    n = x0.shape[0]
    with torch.no_grad():
        t = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=x0.dtype, device=x0.device)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        xt = interp.x_t(t, x0, x1, z)
        per = 0.5 * (f_hat(t, xt) - f_star(t, xt)).pow(2).sum(-1) * (hi - lo)
    se = float(per.std() / math.sqrt(n)) if n > 1 else math.nan
    return ExcessLoss(float(per.mean()), se, True, f"1/2 E|f^ - f*|^2 over {n} draws of (t, x_t)")


def training_loss(values, *, note: str = "training loss") -> ExcessLoss:
    """A training-loss value with its spread, standing in for an excess loss when the exact
    field is unknown: the mean of the last logged losses and their standard deviation over the
    square root of their number. Not an excess (``is_excess=False``), so no bound is computed.

    Example:
        >>> training_loss([-1.02, -0.98, -1.0]).value
        -1.0
    """
    v = torch.as_tensor(list(values), dtype=torch.float64)
    if v.numel() == 0 or not bool(torch.isfinite(v).all()):
        raise ValueError("values: expected a non-empty sequence of finite loss values")
    se = float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else math.nan
    return ExcessLoss(float(v.mean()), se, False, note)


@dataclass
class KLBoundReport:
    """Both sides of the bound of SI Thm 2.4 for one eps (see the module notes for the constant).

    Attributes:
        eps: the diffusion level of the SDE model.
        excess_b, excess_s: the excess losses of ``b^`` and ``s^`` (:class:`ExcessLoss`).
        kl, kl_stderr: measured :math:`\\mathrm{KL}(\\rho_1\\|\\hat\\rho_1)` and its standard error
            (over points; it includes the per-point Monte-Carlo noise), or NaN if not measured.
        bound: :math:`\\mathcal E_b/\\epsilon + \\epsilon\\mathcal E_s` (NaN without true excesses).
        bound_stderr: its standard error from those of the excesses.
        eps_star: :math:`\\sqrt{\\mathcal E_b/\\mathcal E_s}` (SI 2.49).
        bound_at_eps_star: :math:`2\\sqrt{\\mathcal E_b\\mathcal E_s}`.
        holds: ``kl <= bound + 3 * (kl_stderr + bound_stderr)`` when both are known, else None.
    """

    eps: float
    excess_b: ExcessLoss
    excess_s: ExcessLoss
    kl: float
    kl_stderr: float
    bound: float
    bound_stderr: float
    eps_star: float
    bound_at_eps_star: float
    holds: bool | None


def kl_bound_report(
    *,
    eps: float,
    excess_b: ExcessLoss,
    excess_s: ExcessLoss,
    log_rho1: Tensor | None = None,
    log_model: Tensor | None = None,
) -> KLBoundReport:
    r"""Report :math:`\mathrm{KL}(\rho_1\|\hat\rho_1) = \mathbb E_{\rho_1}[\log\rho_1 - \log\hat\rho_1]`
    against the bound :math:`\mathcal E_b/\epsilon + \epsilon\mathcal E_s` (SI Thm 2.4) and the best
    eps (SI 2.49).

    Args:
        eps: diffusion level ``> 0`` of the SDE model.
        excess_b, excess_s: from :func:`excess_loss` (or :func:`training_loss`).
        log_rho1: :math:`\log\rho_1(x_i)` at samples ``x_i ~ rho1``, ``(n,)``.
        log_model: the model's log-density at the same points, ``(n,)``, e.g. the ``log_density``
            of :func:`feynman_kac_log_density` (its biases raise the measured KL).

    Example:
        >>> import torch
        >>> r = kl_bound_report(eps=0.5, excess_b=ExcessLoss(0.02, 0.0, True, ""),
        ...                     excess_s=ExcessLoss(0.08, 0.0, True, ""))
        >>> round(r.bound, 3), round(r.eps_star, 3), round(r.bound_at_eps_star, 3)
        (0.08, 0.5, 0.08)
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0 < eps < math.inf):
        raise ValueError(f"eps: expected a finite number > 0, got {eps!r}")
    for name, e in (("excess_b", excess_b), ("excess_s", excess_s)):
        if not isinstance(e, ExcessLoss):
            raise TypeError(f"{name}: expected an ExcessLoss (excess_loss, training_loss), got {type(e).__name__}")
    kl = kl_se = math.nan
    if (log_rho1 is None) != (log_model is None):
        raise ValueError("log_rho1, log_model: give both (to measure the KL) or neither")
    if log_rho1 is not None:
        if not (isinstance(log_rho1, Tensor) and isinstance(log_model, Tensor)) or log_rho1.shape != log_model.shape:
            raise ValueError("log_rho1, log_model: expected two tensors of the same shape (n,)")
        diff = (log_rho1 - log_model).double()
        kl = float(diff.mean())
        kl_se = float(diff.std() / math.sqrt(diff.numel())) if diff.numel() > 1 else math.nan
    eb, es = excess_b.value, excess_s.value
    if excess_b.is_excess and excess_s.is_excess:
        bound = eb / eps + eps * es
        bound_se = math.hypot(excess_b.stderr / eps, eps * excess_s.stderr)
        eps_star = math.sqrt(eb / es) if es > 0 else math.inf
        at_star = 2.0 * math.sqrt(max(eb, 0.0) * max(es, 0.0))
    else:
        bound = bound_se = eps_star = at_star = math.nan
    holds = None
    if math.isfinite(kl) and math.isfinite(bound):
        holds = kl <= bound + 3.0 * (kl_se + bound_se)
    return KLBoundReport(float(eps), excess_b, excess_s, kl, kl_se, bound, bound_se, eps_star, at_star, holds)
