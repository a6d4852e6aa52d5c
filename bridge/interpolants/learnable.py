r"""Learnable interpolants, the outer variable of the Schrödinger-bridge max–min (docs/math.md §5).

Boundary conditions hold by construction for every parameter value, and every coefficient and
time derivative is differentiable with respect to the parameters.

* :class:`FourierInterpolant`: scalar (``dim=None``) or per-dimension (``dim=d``) coefficients

  .. math::
      \alpha(t) = 1 - t + \sum_{k=1}^K a_k \sin(k\pi t), \qquad
      \beta(t) = t + \sum_{k=1}^K b_k \sin(k\pi t),

  optionally with ``gamma(t) = gamma_0(t) exp(sum_k c_k sin(k pi t))``. ``sin(k pi t)``
  vanishes at both ends, so ``alpha(0) = beta(1) = 1`` and ``alpha(1) = beta(0) = 0`` exactly.
  The derivatives are closed-form sums, exact and cheap (the tests check them against autograd).
* :class:`NeuralInterpolant`: ``I = (1-t) x0 + t x1 + t(1-t) N_phi(t, x0, x1)``, the rich family
  of SI Thm 3.10; ``d/dt I`` comes from forward-mode autograd (``torch.func.jvp``) and stays
  differentiable in ``phi``.

Both are :class:`torch.nn.Module` s, so ``interp.parameters()`` is what the outer (ascent)
optimiser updates.

Example:
    >>> import torch
    >>> interp = FourierInterpolant(n_modes=3, dim=2)
    >>> with torch.no_grad():
    ...     _ = interp.a.normal_()
    >>> t = torch.tensor([0.0, 1.0])
    >>> interp.alpha(t).tolist()
    [[1.0, 1.0], [0.0, 0.0]]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import Interpolant, SpatiallyLinearInterpolant, _check_pair, _check_t, bcast
from .schedules import BrownianGamma, GammaSchedule, Schedule

__all__ = ["FourierInterpolant", "NeuralInterpolant", "FourierGamma"]


def _sin_basis(t: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """``sin(k pi t)`` and its t-derivative ``k pi cos(k pi t)``, shape ``t.shape + (K,)``.

    ``sin(k pi t)`` is evaluated as ``sin(k pi min(t, 1-t)) * (+-1)`` so that it is exactly 0
    at t = 1 in floating point (``sin(k pi)`` is not).
    """
    tt = t.unsqueeze(-1)
    kpi = math.pi * k.to(t.dtype)
    # for t > 1/2: sin(k pi t) = (-1)^(k+1) sin(k pi (1-t)), i.e. a sign flip for even k
    flip = (tt > 0.5) & (k.remainder(2) == 0)
    s = torch.sin(kpi * torch.where(tt > 0.5, 1.0 - tt, tt))  # where, not minimum: no autograd tie at 1/2
    s = torch.where(flip, -s, s)
    return s, kpi * torch.cos(kpi * tt)


class _FourierCoefficient(Schedule):
    """``base(t) + sum_k w_k sin(k pi t)``; ``w`` of shape ``(K,)`` or ``(K, d)``."""

    def __init__(self, base: Schedule, weights: Tensor, k: Tensor):
        self.base, self.w, self.k = base, weights, k

    def _combine(self, basis: Tensor) -> Tensor:
        # basis: t.shape + (K,); w: (K,) -> t.shape, or (K, d) -> t.shape + (d,)
        return basis @ self.w.to(basis.dtype)

    def value(self, t):
        s, _ = _sin_basis(t, self.k)
        extra = self._combine(s)
        base = self.base.value(t)
        return (base.unsqueeze(-1) if extra.dim() > base.dim() else base) + extra

    def dot(self, t):
        _, c = _sin_basis(t, self.k)
        extra = self._combine(c)
        base = self.base.dot(t)
        return (base.unsqueeze(-1) if extra.dim() > base.dim() else base) + extra


class FourierGamma(GammaSchedule):
    r"""``gamma(t) = gamma_0(t) exp(h(t))``, ``h = sum_k c_k sin(k pi t)`` (docs/math.md §5).

    .. math:: \gamma\dot\gamma = e^{2h}\big(\gamma_0\dot\gamma_0 + \gamma_0^2 \dot h\big),

    finite wherever ``gamma_0 gamma_0_dot`` is. ``c`` has shape ``(K,)`` or ``(K, d)``.
    """

    def __init__(self, gamma0: GammaSchedule, weights: Tensor, k: Tensor):
        self.gamma0, self.w, self.k = gamma0, weights, k

    def _h(self, t):
        s, c = _sin_basis(t, self.k)
        w = self.w.to(t.dtype)
        return s @ w, c @ w

    def _lift(self, base, like):
        return base.unsqueeze(-1) if like.dim() > base.dim() else base

    def value(self, t):
        h, _ = self._h(t)
        return self._lift(self.gamma0.value(t), h) * torch.exp(h)

    def dot(self, t):
        h, hd = self._h(t)
        g0, g0d = self._lift(self.gamma0.value(t), h), self._lift(self.gamma0.dot(t), h)
        return torch.exp(h) * (g0d + g0 * hd)

    def gamma_gamma_dot(self, t):
        h, hd = self._h(t)
        g0, gg0 = self._lift(self.gamma0.value(t), h), self._lift(self.gamma0.gamma_gamma_dot(t), h)
        return torch.exp(2 * h) * (gg0 + g0 * g0 * hd)


class FourierInterpolant(nn.Module, SpatiallyLinearInterpolant):
    """Spatially linear interpolant with learnable Fourier coefficients (docs/math.md §5).

    Args:
        n_modes: number of sine modes ``K`` for alpha and beta (and gamma when learned).
        dim: None for scalar coefficients, or ``d`` for per-dimension (diagonal) ones — needed
            when the two covariances do not commute (docs/math.md §5).
        gamma: the base schedule ``gamma_0`` (default ``BrownianGamma()``, ``sqrt(t(1-t))``).
        learn_gamma: multiply ``gamma_0`` by a learnable ``exp(sum_k c_k sin(k pi t))``.

    Parameters start at zero: the plain linear interpolant ``(1-t) x0 + t x1 + gamma_0 z``.
    """

    def __init__(
        self, n_modes: int = 6, *, dim: int | None = None, gamma: GammaSchedule | None = None, learn_gamma: bool = False
    ):
        if not isinstance(n_modes, int) or isinstance(n_modes, bool) or n_modes < 1:
            raise ValueError(f"n_modes: expected an int >= 1, got {n_modes!r}")
        if dim is not None and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
            raise ValueError(f"dim: expected None (scalar coefficients) or an int >= 1, got {dim!r}")
        gamma0 = gamma if gamma is not None else BrownianGamma()
        if not isinstance(gamma0, GammaSchedule):
            raise TypeError(f"gamma: expected a GammaSchedule, got {type(gamma0).__name__}")
        nn.Module.__init__(self)
        shape = (n_modes,) if dim is None else (n_modes, dim)
        self.a = nn.Parameter(torch.zeros(shape, dtype=torch.float64))
        self.b = nn.Parameter(torch.zeros(shape, dtype=torch.float64))
        self.c = nn.Parameter(torch.zeros(shape, dtype=torch.float64)) if learn_gamma else None
        self.register_buffer("k", torch.arange(1, n_modes + 1), persistent=False)
        from .schedules import LinearDown, LinearUp

        gamma_s = FourierGamma(gamma0, self.c, self.k) if learn_gamma else gamma0
        SpatiallyLinearInterpolant.__init__(
            self,
            _FourierCoefficient(LinearDown(), self.a, self.k),
            _FourierCoefficient(LinearUp(), self.b, self.k),
            gamma_s,
        )
        self.n_modes, self.dim, self.learn_gamma, self.gamma0 = n_modes, dim, learn_gamma, gamma0

    def _apply(self, fn, recurse=True):
        # keep the schedule objects pointing at the (possibly moved/cast) parameters
        out = super()._apply(fn, recurse)
        self.alpha_schedule.w, self.beta_schedule.w = self.a, self.b
        self.alpha_schedule.k = self.beta_schedule.k = self.k
        if self.learn_gamma:
            self.gamma_schedule.w, self.gamma_schedule.k = self.c, self.k
        return out

    def extra_repr(self) -> str:
        return f"n_modes={self.n_modes}, dim={self.dim}, learn_gamma={self.learn_gamma}, gamma0={self.gamma0!r}"

    __repr__ = nn.Module.__repr__


class NeuralInterpolant(nn.Module, Interpolant):
    r"""``I(t, x0, x1) = (1-t) x0 + t x1 + t(1-t) N_phi(t, x0, x1)`` (docs/math.md §5, SI Thm 3.10).

    Args:
        dim: data dimension ``d``.
        gamma: the latent-noise schedule (default ``BrownianGamma()``).
        hidden, depth: size of the MLP ``N_phi`` (input ``(t-embedding, x0, x1)``, output ``d``).
        generator: draws the initial weights; the last layer starts at zero, so the interpolant
            starts as the linear one.
        learn_gamma: multiply ``gamma`` by a learnable ``exp(sum_k c_k sin(k pi t))`` (as in
            :class:`FourierInterpolant`; ``c`` starts at zero).
        n_modes: sine modes of that factor.

    ``d/dt I = x1 - x0 + (1-2t) N + t(1-t) d/dt N`` with ``d/dt N`` by ``torch.func.jvp``.

    Example:
        >>> import torch
        >>> it = NeuralInterpolant(2, hidden=16, depth=1)
        >>> x0, x1 = torch.randn(4, 2), torch.randn(4, 2)
        >>> bool(torch.equal(it.interpolate(torch.ones(4), x0, x1), x1))
        True
    """

    def __init__(
        self,
        dim: int,
        *,
        gamma: GammaSchedule | None = None,
        hidden: int = 64,
        depth: int = 2,
        generator: torch.Generator | None = None,
        learn_gamma: bool = False,
        n_modes: int = 6,
    ):
        from ..models import MLP

        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim: expected an int >= 1, got {dim!r}")
        if not isinstance(n_modes, int) or isinstance(n_modes, bool) or n_modes < 1:
            raise ValueError(f"n_modes: expected an int >= 1, got {n_modes!r}")
        gamma0 = gamma if gamma is not None else BrownianGamma()
        if not isinstance(gamma0, GammaSchedule):
            raise TypeError(f"gamma: expected a GammaSchedule, got {type(gamma0).__name__}")
        nn.Module.__init__(self)
        self.c = nn.Parameter(torch.zeros(n_modes, dtype=torch.float64)) if learn_gamma else None
        self.register_buffer("k", torch.arange(1, n_modes + 1), persistent=False)
        Interpolant.__init__(self, FourierGamma(gamma0, self.c, self.k) if learn_gamma else gamma0)
        self.dim, self.learn_gamma, self.gamma0 = dim, learn_gamma, gamma0
        self.net = MLP(2 * dim, out_dim=dim, hidden=hidden, depth=depth, activation="silu", generator=generator)
        with torch.no_grad():
            last = self.net.net[-1]
            last.weight.zero_()
            last.bias.zero_()

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)  # keep the gamma factor pointing at the moved/cast parameter
        if self.learn_gamma:
            self.gamma_schedule.w, self.gamma_schedule.k = self.c, self.k
        return out

    def _n(self, t: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
        return self.net(t, torch.cat([x0, x1], dim=-1))

    def interpolate(self, t, x0, x1):
        t = _check_t(t, x0)
        tt = bcast(t, x0)
        # (1 - t) x0 + t x1 is exact at both ends; t (1 - t) N vanishes there exactly
        return (1.0 - tt) * x0 + tt * x1 + tt * (1.0 - tt) * self._n(t, x0, x1)

    def interpolate_dot(self, t, x0, x1):
        t = _check_t(t, x0)
        n, dn = torch.func.jvp(lambda s: self._n(s, x0, x1), (t,), (torch.ones_like(t),))
        tt = bcast(t, x0)
        return x1 - x0 + (1.0 - 2.0 * tt) * n + tt * (1.0 - tt) * dn

    def sample(self, t, x0, x1, z=None, *, generator=None):
        _check_pair(x0, x1)
        if x0.shape[1] != self.dim:
            raise ValueError(f"x0: expected dimension {self.dim}, got {x0.shape[1]}")
        return Interpolant.sample(self, t, x0, x1, z, generator=generator)

    __repr__ = nn.Module.__repr__
