r"""Conversions between the fields of an interpolant (docs/math.md §2-§3).

Pure functions of values:

* :func:`b_from_v_s`: ``b = v - gamma gamma_dot s`` (SI 2.27)
* :func:`s_from_eta` / :func:`eta_from_s`: ``s = -eta / c`` with ``c = gamma`` (``alpha``
  one-sided) (SI 2.14, 4.20). Our ``eta`` is ``+E[z | x_t]``, the paper's sign.
* :func:`forward_drift` / :func:`backward_drift`: ``b_F = b + eps s``, ``b_B = b - eps s``
  (SI 2.33-2.35)
* :func:`one_sided_b_from_eta`: ``b = (beta_dot/beta) x + (alpha_dot - alpha beta_dot/beta) eta``
  with the ``t = 0`` limit ``alpha_dot(0) x + beta_dot(0) E[x1]`` (SI 4.19-4.20)
* :func:`mirror_b_from_eta`: ``b = gamma_dot eta``
* :func:`denoise_one_sided`: ``E[x1 | x_t] = (x_t - alpha eta) / beta``

and :class:`Fields`, which bundles learned (or exact) callables into the drift, score and
forward/backward drifts the samplers take.

``eps`` may be a number or a callable ``t -> tensor``; the diffusion is ``sqrt(2 eps) dW``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .interpolants.base import Interpolant, SpatiallyLinearInterpolant, bcast

__all__ = [
    "b_from_v_s",
    "s_from_eta",
    "eta_from_s",
    "forward_drift",
    "backward_drift",
    "one_sided_b_from_eta",
    "mirror_b_from_eta",
    "denoise_one_sided",
    "eps_value",
    "Fields",
]

Field = Callable[[Tensor, Tensor], Tensor]


def eps_value(eps, t: Tensor, x: Tensor) -> Tensor:
    """Evaluate a diffusion level ``eps`` (number or callable of t) as a tensor that broadcasts
    with ``x``. Raises ValueError on a negative or non-finite value."""
    if callable(eps):
        e = eps(t)
        e = e if isinstance(e, Tensor) else x.new_tensor(float(e))
        if e.dim() > 0:
            e = bcast(e, x)
        if not bool(torch.isfinite(e).all()) or bool((e < 0).any()):
            raise ValueError("eps: the callable returned a negative or non-finite value")
        return e
    e = float(eps)
    if not math.isfinite(e) or e < 0:
        raise ValueError(f"eps: expected a finite number >= 0, got {eps!r}")
    return x.new_tensor(e)


def b_from_v_s(v: Tensor, s: Tensor, gamma_gamma_dot: Tensor) -> Tensor:
    """``b = v - gamma gamma_dot s`` (SI 2.27). ``gamma_gamma_dot`` has the shape of ``t``."""
    return v - bcast(gamma_gamma_dot, v) * s


def s_from_eta(eta: Tensor, noise_scale: Tensor) -> Tensor:
    """``s = -eta / c`` (SI 2.14); ``c = gamma``, or ``alpha`` one-sided (SI 4.20)."""
    return -eta / bcast(noise_scale, eta)


def eta_from_s(s: Tensor, noise_scale: Tensor) -> Tensor:
    """``eta = -c s``, the inverse of :func:`s_from_eta`."""
    return -bcast(noise_scale, s) * s


def forward_drift(b: Tensor, s: Tensor, eps: Tensor | float) -> Tensor:
    """``b_F = b + eps s`` (SI 2.33)."""
    return b + eps * s


def backward_drift(b: Tensor, s: Tensor, eps: Tensor | float) -> Tensor:
    """``b_B = b - eps s`` (SI 2.35)."""
    return b - eps * s


def one_sided_b_from_eta(
    interp: SpatiallyLinearInterpolant, t: Tensor, x: Tensor, eta: Tensor, *, x1_mean: Tensor | None = None
) -> Tensor:
    r"""Drift of a one-sided interpolant from its denoiser (SI 4.19-4.20):

    .. math:: b(t,x) = \frac{\dot\beta}{\beta} x + \Big(\dot\alpha - \frac{\alpha\dot\beta}{\beta}\Big)\eta(t,x),

    and, where ``beta(t) = 0`` (t = 0), the finite limit ``alpha_dot(0) x + beta_dot(0) E[x1]``,
    which needs ``x1_mean``. Near ``t = 0`` the first form divides a small difference by a small
    ``beta``: in float32 expect relative errors of order ``1e-7 / beta(t)``; use float64 there
    if that matters.

    Args:
        interp: a one-sided spatially linear interpolant.
        t: ``(n,)``; x, eta: ``(n, d)``.
        x1_mean: ``E[x1]``, shape ``(d,)``; needed only when some ``t`` has ``beta(t) = 0``.
    """
    if not getattr(interp, "one_sided", False):
        raise ValueError(f"interp: expected a one-sided interpolant, got {interp!r}")
    a, b = bcast(interp.alpha(t), x), bcast(interp.beta(t), x)
    ad, bd = bcast(interp.alpha_dot(t), x), bcast(interp.beta_dot(t), x)
    at_zero = b == 0
    if bool(at_zero.any()):
        if x1_mean is None:
            raise ValueError("x1_mean: needed to evaluate the one-sided drift at t = 0 (beta = 0)")
        safe_b = torch.where(at_zero, torch.ones_like(b), b)
        ratio = bd / safe_b
        general = ratio * x + (ad - a * ratio) * eta
        limit = ad * x + bd * x1_mean.to(dtype=x.dtype, device=x.device)
        return torch.where(at_zero, limit, general)
    ratio = bd / b
    return ratio * x + (ad - a * ratio) * eta


def mirror_b_from_eta(interp: Interpolant, t: Tensor, eta: Tensor) -> Tensor:
    """``b = gamma_dot eta`` for the mirror interpolant (docs/math.md §2)."""
    return bcast(interp.gamma_dot(t), eta) * eta


def denoise_one_sided(interp: SpatiallyLinearInterpolant, t: Tensor, x: Tensor, eta: Tensor) -> Tensor:
    """``E[x1 | x_t = x] = (x - alpha eta) / beta`` (docs/math.md §3, final denoising step)."""
    return (x - bcast(interp.alpha(t), x) * eta) / bcast(interp.beta(t), x)


@dataclass
class Fields:
    """Learned or exact fields of one interpolant, combined into what samplers need.

    Give any of ``b``, ``v``, ``s``, ``eta`` (callables ``f(t, x)``); the drift is ``b`` if
    given, else ``v - gamma gamma_dot s`` (SI 2.27), else the one-sided/mirror drift from
    ``eta`` (docs/math.md §2). The score is ``s`` if given, else ``-eta / noise_scale``.

    Example:
        >>> import torch
        >>> from bridge.interpolants import Linear
        >>> f = Fields(Linear(), b=lambda t, x: -x, s=lambda t, x: -x)
        >>> f.forward_drift(0.5)(torch.zeros(3), torch.ones(3, 2))[0]
        tensor([-1.5000, -1.5000])
    """

    interpolant: Interpolant
    b: Field | None = None
    v: Field | None = None
    s: Field | None = None
    eta: Field | None = None
    x1_mean: Tensor | None = None

    def __post_init__(self):
        if not isinstance(self.interpolant, Interpolant):
            raise TypeError(f"interpolant: expected an Interpolant, got {type(self.interpolant).__name__}")
        for name in ("b", "v", "s", "eta"):
            f = getattr(self, name)
            if f is not None and not callable(f):
                raise TypeError(f"{name}: expected a callable f(t, x) or None, got {type(f).__name__}")

    @property
    def has_drift(self) -> bool:
        it = self.interpolant
        return (
            self.b is not None
            or (self.v is not None and (self.has_score or not it.has_latent_noise))
            or (self.eta is not None and (it.one_sided or it.mirror))
        )

    @property
    def has_score(self) -> bool:
        it = self.interpolant
        return self.s is not None or (self.eta is not None and (it.has_latent_noise or it.one_sided))

    def drift(self, t: Tensor, x: Tensor) -> Tensor:
        """The probability-flow drift ``b(t, x)`` (SI 2.10)."""
        it = self.interpolant
        if self.b is not None:
            return self.b(t, x)
        if self.v is not None:
            if not it.has_latent_noise:
                return self.v(t, x)
            if self.has_score:
                return b_from_v_s(self.v(t, x), self.score(t, x), it.gamma_gamma_dot(t))
        if self.eta is not None and it.one_sided:
            return one_sided_b_from_eta(it, t, x, self.eta(t, x), x1_mean=self.x1_mean)
        if self.eta is not None and it.mirror:
            return mirror_b_from_eta(it, t, self.eta(t, x))
        raise ValueError(
            "fields: no drift available; give b, or v with s/eta, or eta for a one-sided/mirror interpolant"
        )

    def score(self, t: Tensor, x: Tensor) -> Tensor:
        """The score ``s(t, x) = grad log rho(t, x)`` (SI 2.14).

        From ``eta`` it is ``-eta / gamma``, undefined (NaN) where ``gamma = 0`` (t = 0 and 1 for
        two-sided interpolants): sample SDEs on a t-range inside (0, 1) there, or learn ``s``.
        """
        if self.s is not None:
            return self.s(t, x)
        if self.has_score:
            return s_from_eta(self.eta(t, x), self.interpolant.noise_scale(t))
        raise ValueError("fields: no score available; give s, or eta with gamma > 0 or a one-sided interpolant")

    def denoiser(self, t: Tensor, x: Tensor) -> Tensor:
        """``eta(t, x) = E[noise | x_t = x]``, given or from the score (``eta = -c s``)."""
        if self.eta is not None:
            return self.eta(t, x)
        return eta_from_s(self.score(t, x), self.interpolant.noise_scale(t))

    def x1_estimate(self, t: Tensor, x: Tensor) -> Tensor:
        """``E[x1 | x_t = x] = (x - alpha eta) / beta`` for a one-sided interpolant: the final
        denoising step of docs/math.md §3 (pass it as ``denoise=`` to the samplers)."""
        if not getattr(self.interpolant, "one_sided", False):
            raise ValueError("x1_estimate: defined here for one-sided interpolants only")
        return denoise_one_sided(self.interpolant, t, x, self.denoiser(t, x))

    def forward_drift(self, eps) -> Field:
        """``b_F = b + eps s`` as a callable (SI 2.33); ``eps`` a number or function of t."""
        return lambda t, x: self._drift_eps(t, x, eps, +1.0)

    def backward_drift(self, eps) -> Field:
        """``b_B = b - eps s`` as a callable (SI 2.35)."""
        return lambda t, x: self._drift_eps(t, x, eps, -1.0)

    def _drift_eps(self, t, x, eps, sign):
        e = eps_value(eps, t, x)
        if not callable(eps) and float(eps) == 0.0:
            return self.drift(t, x)
        it = self.interpolant
        if self.b is None and self.v is not None and it.has_latent_noise and self.has_score:
            # b = v - gamma gamma_dot s: evaluate the score once for both terms
            s = self.score(t, x)
            return b_from_v_s(self.v(t, x), s, it.gamma_gamma_dot(t)) + sign * e * s
        return self.drift(t, x) + sign * e * self.score(t, x)
