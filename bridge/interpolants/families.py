"""The interpolant families of docs/math.md §1 (SI Sec. 4, Table 8).

| family | alpha | beta | gamma |
|---|---|---|---|
| :class:`Linear` | 1-t | t | any (default sqrt(t(1-t))) |
| :class:`Trig` | sqrt(1-gamma^2) cos(pi t/2) | sqrt(1-gamma^2) sin(pi t/2) | any gamma < 1 |
| :class:`EncoderDecoder` | cos^2(pi t) on [0,1/2) | cos^2(pi t) on (1/2,1] | sin^2(pi t) |
| :class:`OneSidedLinear` / :class:`OneSidedTrig` / :class:`OneSidedVP` | 1-t / cos / sqrt(1-t^2) | t / sin / t | 0 |
| :class:`Mirror` | 0 | 1 | any (default sqrt(t(1-t))) |

Example:
    >>> import torch
    >>> interp = Linear(gamma=BrownianGamma())
    >>> interp.x_t(torch.tensor([0.0]), torch.ones(1, 2), torch.zeros(1, 2), torch.randn(1, 2))
    tensor([[1., 1.]])
"""

from __future__ import annotations

import math

import torch

from .base import SpatiallyLinearInterpolant
from .schedules import (
    BrownianGamma,
    Constant,
    CosDown,
    GammaSchedule,
    LinearDown,
    LinearUp,
    Schedule,
    SinSquaredGamma,
    SinUp,
    SqrtOneMinusSquare,
    ZeroGamma,
)

__all__ = ["Linear", "Trig", "EncoderDecoder", "OneSidedLinear", "OneSidedTrig", "OneSidedVP", "Mirror"]


class Linear(SpatiallyLinearInterpolant):
    """``x_t = (1-t) x0 + t x1 + gamma(t) z`` (SI Table 8, row "linear")."""

    def __init__(self, gamma: GammaSchedule | None = None):
        super().__init__(LinearDown(), LinearUp(), gamma if gamma is not None else BrownianGamma())

    def __repr__(self):
        return f"Linear(gamma={self.gamma_schedule!r})"


class _TrigCoefficient(Schedule):
    r"""``c(t) = sqrt(1 - gamma^2) h(t)`` with ``h = cos(pi t/2)`` or ``sin(pi t/2)``.

    .. math:: \dot c = -\frac{\gamma\dot\gamma}{\sqrt{1-\gamma^2}} h + \sqrt{1-\gamma^2}\,\dot h,

    stable at the ends because ``gamma * gamma_dot`` is taken in closed form.
    """

    def __init__(self, gamma: GammaSchedule, h: Schedule):
        self.gamma, self.h = gamma, h

    def value(self, t):
        return torch.sqrt(1.0 - self.gamma(t) ** 2) * self.h(t)

    def dot(self, t):
        root = torch.sqrt(1.0 - self.gamma(t) ** 2)
        return -self.gamma.gamma_gamma_dot(t) / root * self.h(t) + root * self.h.dot(t)


class Trig(SpatiallyLinearInterpolant):
    """``alpha = sqrt(1-gamma^2) cos(pi t/2)``, ``beta = sqrt(1-gamma^2) sin(pi t/2)``.

    Requires ``gamma < 1`` on [0, 1] (checked on a grid at construction).
    """

    def __init__(self, gamma: GammaSchedule | None = None):
        gamma = gamma if gamma is not None else BrownianGamma()
        if not isinstance(gamma, GammaSchedule):
            raise TypeError(f"gamma: expected a GammaSchedule, got {type(gamma).__name__}")
        gmax = float(gamma(torch.linspace(0, 1, 1001, dtype=torch.float64)).max())
        if not gmax < 1.0:
            raise ValueError(f"gamma: the trig interpolant needs gamma(t) < 1 on [0, 1], got max {gmax:.4g}")
        super().__init__(_TrigCoefficient(gamma, CosDown()), _TrigCoefficient(gamma, SinUp()), gamma)

    def __repr__(self):
        return f"Trig(gamma={self.gamma_schedule!r})"


class _HalfCos2(Schedule):
    """``cos^2(pi t)`` on one half of [0, 1] and 0 on the other (encoder-decoder)."""

    def __init__(self, first_half: bool):
        self.first_half = first_half

    def _mask(self, t):
        return (t < 0.5) if self.first_half else (t > 0.5)

    def value(self, t):
        return torch.where(self._mask(t), torch.cos(math.pi * t) ** 2, torch.zeros_like(t))

    def dot(self, t):
        return torch.where(self._mask(t), -math.pi * torch.sin(2.0 * math.pi * t), torch.zeros_like(t))


class EncoderDecoder(SpatiallyLinearInterpolant):
    """Encoder-decoder: x0 is fully encoded into noise at t = 1/2, then decoded into x1
    (SI Table 8): ``alpha = cos^2(pi t) 1[t < 1/2]``, ``beta = cos^2(pi t) 1[t > 1/2]``,
    ``gamma = sin^2(pi t)``."""

    def __init__(self):
        super().__init__(_HalfCos2(True), _HalfCos2(False), SinSquaredGamma())

    def __repr__(self):
        return "EncoderDecoder()"


class OneSidedLinear(SpatiallyLinearInterpolant):
    """``x_t = (1-t) x0 + t x1`` with ``x0 ~ N(0, I)`` (SI 4.19)."""

    def __init__(self):
        super().__init__(LinearDown(), LinearUp(), ZeroGamma(), one_sided=True)

    def __repr__(self):
        return "OneSidedLinear()"


class OneSidedTrig(SpatiallyLinearInterpolant):
    """``x_t = cos(pi t/2) x0 + sin(pi t/2) x1`` with ``x0 ~ N(0, I)``."""

    def __init__(self):
        super().__init__(CosDown(), SinUp(), ZeroGamma(), one_sided=True)

    def __repr__(self):
        return "OneSidedTrig()"


class OneSidedVP(SpatiallyLinearInterpolant):
    """``x_t = sqrt(1-t^2) x0 + t x1`` with ``x0 ~ N(0, I)`` (variance preserving).

    ``alpha_dot`` is singular at t = 1: use a sampling/training ``t_max < 1``.
    """

    def __init__(self):
        super().__init__(SqrtOneMinusSquare(), LinearUp(), ZeroGamma(), one_sided=True)

    def __repr__(self):
        return "OneSidedVP()"


class Mirror(SpatiallyLinearInterpolant):
    """``x_t = x1 + gamma(t) z`` for rho0 = rho1 (SI Sec. 4, mirror). ``x0`` is ignored.

    With a perfect denoiser the ODE returns its input, and the SDE returns a new sample near
    it; ``b = gamma_dot * eta`` (docs/math.md §2).
    """

    def __init__(self, gamma: GammaSchedule | None = None):
        gamma = gamma if gamma is not None else BrownianGamma()
        if gamma.is_zero:
            raise ValueError("gamma: the mirror interpolant needs latent noise, got ZeroGamma")
        super().__init__(Constant(0.0), Constant(1.0), gamma, mirror=True)

    def __repr__(self):
        return f"Mirror(gamma={self.gamma_schedule!r})"
