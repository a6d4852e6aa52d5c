r"""Stochastic interpolants :math:`x_t = I(t, x_0, x_1) + \gamma(t) z` (docs/math.md §1, SI 2.1).

Conventions used throughout ``bridge``:

* data are batch-first ``(n, d)``; times ``t`` have shape ``(n,)``;
* a coefficient such as ``alpha(t)`` has the shape of ``t`` (scalar coefficient) or
  ``t.shape + (d,)`` (per-dimension coefficient); :func:`bcast` lines it up with ``x``;
* the *noise* of an interpolant is ``z`` for two-sided and mirror interpolants and ``x0`` for
  one-sided ones (there ``x0 ~ N(0, I)`` plays the role of ``z`` and ``gamma = 0``); the
  denoiser ``eta`` always means ``E[noise | x_t]`` and the score is ``s = -eta / noise_scale``
  with ``noise_scale = gamma`` (two-sided, mirror) or ``alpha`` (one-sided), SI 2.14 / 4.20.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .schedules import GammaSchedule, Schedule, ZeroGamma, time_derivative

__all__ = ["bcast", "InterpolantSample", "Interpolant", "SpatiallyLinearInterpolant"]


def bcast(c: Tensor, x: Tensor) -> Tensor:
    """Line up a coefficient ``c`` (shape of ``t`` or ``t.shape + (d,)``) with data ``x``.

    Example:
        >>> import torch
        >>> bcast(torch.ones(4), torch.zeros(4, 3)).shape
        torch.Size([4, 1])
    """
    if c.dim() == x.dim():
        return c
    if c.dim() == x.dim() - 1:
        return c.unsqueeze(-1)
    if c.dim() == 0:
        return c
    raise ValueError(f"coefficient of shape {tuple(c.shape)} does not line up with data of shape {tuple(x.shape)}")


def _check_t(t: Tensor, x: Tensor) -> Tensor:
    if not isinstance(t, Tensor):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.shape != x.shape[:1]:
        raise ValueError(f"t: expected shape ({x.shape[0]},) to match x, got {tuple(t.shape)}")
    return t


@dataclass
class InterpolantSample:
    """One Monte-Carlo draw of an interpolant, with its antithetic partner (docs/math.md §2).

    Each regression target is split into a part that is even and a part that is odd in the
    noise, so that the antithetic partner (noise -> -noise) has target ``even - odd``.

    Attributes:
        t: times, ``(n,)``.
        x0, x1: endpoint samples, ``(n, d)``.
        noise: ``z`` (or ``x0`` for one-sided interpolants), ``(n, d)``.
        noise_scale: ``gamma`` (or ``alpha`` one-sided), broadcastable to ``(n, d)``.
        xt: ``I + gamma z`` (one-sided: ``alpha x0 + beta x1``), ``(n, d)``.
        xt_anti: the antithetic partner ``I - gamma z`` (one-sided: ``-alpha x0 + beta x1``),
            or None when there is no noise to flip (gamma = 0, two-sided).
        drift_even, drift_odd: target of b, ``d/dt I + gamma_dot z`` (SI 2.10) = even + odd.
        velocity_even, velocity_odd: target of v, ``d/dt I`` (SI 2.27) = even + odd.
    """

    t: Tensor
    x0: Tensor
    x1: Tensor
    noise: Tensor
    noise_scale: Tensor
    xt: Tensor
    xt_anti: Tensor | None
    drift_even: Tensor
    drift_odd: Tensor
    velocity_even: Tensor
    velocity_odd: Tensor


class Interpolant:
    r"""Base class: :math:`x_t = I(t,x_0,x_1) + \gamma(t) z` with ``I(0)=x0``, ``I(1)=x1``.

    Subclasses implement :meth:`interpolate`; :meth:`interpolate_dot` defaults to autograd in
    ``t``. ``gamma`` is a :class:`~bridge.interpolants.schedules.GammaSchedule`.
    """

    one_sided: bool = False
    mirror: bool = False

    def __init__(self, gamma: GammaSchedule):
        if not isinstance(gamma, GammaSchedule):
            raise TypeError(f"gamma: expected a GammaSchedule, got {type(gamma).__name__}")
        self.gamma_schedule = gamma

    # -- gamma ---------------------------------------------------------------------------
    def gamma(self, t: Tensor) -> Tensor:
        return self.gamma_schedule.value(t)

    def gamma_dot(self, t: Tensor) -> Tensor:
        return self.gamma_schedule.dot(t)

    def gamma_gamma_dot(self, t: Tensor) -> Tensor:
        """``gamma * gamma_dot`` in closed form (finite at the ends, docs/math.md §1)."""
        return self.gamma_schedule.gamma_gamma_dot(t)

    @property
    def has_latent_noise(self) -> bool:
        return not self.gamma_schedule.is_zero

    # -- I -------------------------------------------------------------------------------
    def interpolate(self, t: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
        raise NotImplementedError

    def interpolate_dot(self, t: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
        """``d/dt I(t, x0, x1)``; autograd unless a subclass gives it in closed form."""
        t = _check_t(t, x0)
        return time_derivative(lambda s: self.interpolate(s, x0, x1), t)

    def noise_scale(self, t: Tensor) -> Tensor:
        """The coefficient ``c`` in ``s = -eta / c``: ``gamma`` here, ``alpha`` one-sided."""
        return self.gamma(t)

    def x_t(self, t: Tensor, x0: Tensor, x1: Tensor, z: Tensor) -> Tensor:
        """``x_t = I(t, x0, x1) + gamma(t) z`` (SI 2.1)."""
        t = _check_t(t, x0)
        return self.interpolate(t, x0, x1) + bcast(self.gamma(t), x0) * z

    def sample(
        self, t: Tensor, x0: Tensor, x1: Tensor, z: Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> InterpolantSample:
        """Draw ``x_t`` and its antithetic partner, with what the losses need (docs/math.md §2).

        Args:
            t: times ``(n,)``.
            x0, x1: endpoint samples ``(n, d)``.
            z: latent noise ``(n, d)``; drawn from ``generator`` when None.

        Example:
            >>> import torch
            >>> from bridge.interpolants import Linear
            >>> s = Linear().sample(torch.rand(5), torch.randn(5, 2), torch.randn(5, 2))
            >>> s.xt.shape, s.xt_anti.shape
            (torch.Size([5, 2]), torch.Size([5, 2]))
        """
        _check_pair(x0, x1)
        t = _check_t(t, x0)
        if z is None:
            z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        I = self.interpolate(t, x0, x1)
        dI = self.interpolate_dot(t, x0, x1)
        g = bcast(self.gamma(t), x0)
        gd = _finite_or_zero(bcast(self.gamma_dot(t), x0))
        anti = I - g * z if self.has_latent_noise else None
        return InterpolantSample(
            t=t,
            x0=x0,
            x1=x1,
            noise=z,
            noise_scale=g,
            xt=I + g * z,
            xt_anti=anti,
            drift_even=dI,
            drift_odd=gd * z,
            velocity_even=dI,
            velocity_odd=torch.zeros_like(dI),
        )


def _finite_or_zero(c: Tensor) -> Tensor:
    """Set the noise coefficient's derivative to 0 where it is infinite.

    That happens only at the ends for sqrt-type schedules (``gamma = sqrt(a t(1-t))`` at t = 0,
    1; ``alpha = sqrt(1-t^2)`` at t = 1), where the noise coefficient itself is 0. There the odd
    target term multiplies ``f(x+) - f(x-) = 0`` in the antithetic loss and its limit is finite;
    without this, ``inf * 0`` would turn a measure-zero draw of ``t`` into a NaN loss.
    """
    return torch.where(torch.isfinite(c), c, torch.zeros_like(c))


def _check_pair(x0: Tensor, x1: Tensor) -> None:
    if not isinstance(x0, Tensor) or not isinstance(x1, Tensor):
        raise TypeError(f"x0, x1: expected tensors, got {type(x0).__name__} and {type(x1).__name__}")
    if x0.dim() != 2 or x1.dim() != 2:
        raise ValueError(f"x0, x1: expected shape (n, d), got {tuple(x0.shape)} and {tuple(x1.shape)}")
    if x0.shape != x1.shape:
        raise ValueError(f"x0, x1: shapes differ, {tuple(x0.shape)} vs {tuple(x1.shape)}")


class SpatiallyLinearInterpolant(Interpolant):
    r"""``I = alpha(t) x0 + beta(t) x1`` (SI 4.1) with any schedules alpha, beta, gamma.

    ``alpha`` and ``beta`` may return per-dimension coefficients of shape ``t.shape + (d,)``.

    Args:
        alpha, beta: :class:`Schedule` objects (or plain callables ``t -> tensor``; their
            derivatives then come from autograd).
        gamma: a :class:`GammaSchedule`.
        one_sided: x0 ~ N(0, I) is the noise and gamma must be zero (SI 4.19).
        mirror: rho0 = rho1 and ``I = x1`` (alpha = 0, beta = 1).

    Example:
        >>> import torch
        >>> from bridge.interpolants import SpatiallyLinearInterpolant, FunctionSchedule, BrownianGamma
        >>> it = SpatiallyLinearInterpolant(FunctionSchedule(lambda t: 1 - t),
        ...                                 FunctionSchedule(lambda t: t), BrownianGamma())
        >>> it.alpha_dot(torch.tensor([0.3]))
        tensor([-1.])
    """

    def __init__(
        self, alpha, beta, gamma: GammaSchedule | None = None, *, one_sided: bool = False, mirror: bool = False
    ):
        from .schedules import FunctionSchedule

        super().__init__(gamma if gamma is not None else ZeroGamma())
        if not isinstance(alpha, Schedule):
            alpha = FunctionSchedule(alpha)
        if not isinstance(beta, Schedule):
            beta = FunctionSchedule(beta)
        if one_sided and self.has_latent_noise:
            raise ValueError("gamma: a one-sided interpolant uses x0 ~ N(0, I) as its noise; expected ZeroGamma")
        if one_sided and mirror:
            raise ValueError("one_sided and mirror cannot both be set")
        self.alpha_schedule, self.beta_schedule = alpha, beta
        self.one_sided, self.mirror = bool(one_sided), bool(mirror)

    def alpha(self, t):
        return self.alpha_schedule.value(t)

    def beta(self, t):
        return self.beta_schedule.value(t)

    def alpha_dot(self, t):
        return self.alpha_schedule.dot(t)

    def beta_dot(self, t):
        return self.beta_schedule.dot(t)

    def noise_scale(self, t):
        return self.alpha(t) if self.one_sided else self.gamma(t)

    def interpolate(self, t, x0, x1):
        t = _check_t(t, x0)
        return bcast(self.alpha(t), x0) * x0 + bcast(self.beta(t), x1) * x1

    def interpolate_dot(self, t, x0, x1):
        t = _check_t(t, x0)
        return bcast(self.alpha_dot(t), x0) * x0 + bcast(self.beta_dot(t), x1) * x1

    def sample(self, t, x0, x1, z=None, *, generator=None):
        if not self.one_sided:
            return super().sample(t, x0, x1, z, generator=generator)
        # One-sided (SI 4.19): x0 ~ N(0, I) is the noise. The antithetic partner flips x0,
        # which is valid because N(0, I) is symmetric.
        _check_pair(x0, x1)
        t = _check_t(t, x0)
        a, b = bcast(self.alpha(t), x0), bcast(self.beta(t), x1)
        ad, bd = _finite_or_zero(bcast(self.alpha_dot(t), x0)), bcast(self.beta_dot(t), x1)
        even, odd = bd * x1, ad * x0
        return InterpolantSample(
            t=t,
            x0=x0,
            x1=x1,
            noise=x0,
            noise_scale=a,
            xt=a * x0 + b * x1,
            xt_anti=-a * x0 + b * x1,
            drift_even=even,
            drift_odd=odd,
            velocity_even=even,
            velocity_odd=odd,
        )

    def __repr__(self):
        kind = ", one_sided=True" if self.one_sided else ", mirror=True" if self.mirror else ""
        return (
            f"{type(self).__name__}(alpha={self.alpha_schedule!r}, beta={self.beta_schedule!r}, "
            f"gamma={self.gamma_schedule!r}{kind})"
        )
