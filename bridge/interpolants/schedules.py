"""Scalar coefficient schedules for interpolants (docs/math.md §1, SI Table 8).

A *schedule* is a function of time ``t in [0, 1]`` together with its time derivative.
Schedules take a tensor ``t`` of any shape and return a tensor of the same shape (or, for
per-dimension schedules, ``t.shape + (d,)``).

gamma schedules additionally give the product ``gamma * gamma_dot`` in closed form: for
``gamma = sqrt(a t (1-t))`` the derivative blows up at the ends but the product
``a (1 - 2t) / 2`` does not (docs/math.md §1).

Example:
    >>> import torch
    >>> g = BrownianGamma(a=1.0)
    >>> t = torch.tensor([0.0, 0.5, 1.0])
    >>> g(t)
    tensor([0.0000, 0.5000, 0.0000])
    >>> g.gamma_gamma_dot(t)
    tensor([ 0.5000,  0.0000, -0.5000])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "Schedule",
    "FunctionSchedule",
    "Constant",
    "LinearUp",
    "LinearDown",
    "CosDown",
    "SinUp",
    "SqrtOneMinusSquare",
    "GammaSchedule",
    "BrownianGamma",
    "QuadraticGamma",
    "SinSquaredGamma",
    "SigmoidGamma",
    "ZeroGamma",
    "FunctionGamma",
    "time_derivative",
]


def time_derivative(fn: Callable[[Tensor], Tensor], t: Tensor, *, create_graph: bool = True) -> Tensor:
    r"""Elementwise time derivative :math:`\partial_t f(t)` of ``fn`` by forward-mode autograd.

    ``fn`` must act elementwise in ``t``: output entry ``[i, ...]`` may depend only on ``t[i]``.
    Its output may have trailing dimensions (per-dimension coefficients). The result stays
    differentiable with respect to any parameters ``fn`` closes over (used by the learnable
    interpolants of docs/math.md §5).

    Args:
        fn: callable ``t -> f(t)``.
        t: times, any shape.
        create_graph: keep the graph for higher derivatives / parameter gradients (only when
            grad mode is on; under ``torch.no_grad()`` the result is detached).

    Returns:
        Tensor with the shape of ``fn(t)``.

    Example:
        >>> import torch
        >>> time_derivative(lambda t: t**3, torch.tensor([1.0, 2.0])).tolist()
        [3.0, 12.0]
    """
    create_graph = create_graph and torch.is_grad_enabled()
    t_req = t.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = fn(t_req)
        if not out.requires_grad:  # constant in t
            return torch.zeros_like(out)
        # double-vjp trick: the jvp of an elementwise map is a vjp with ones, taken per entry
        # when the output has trailing dimensions.
        if out.shape == t_req.shape:
            (g,) = torch.autograd.grad(out.sum(), t_req, create_graph=create_graph)
            return g if create_graph else g.detach()
        u = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, t_req, grad_outputs=u, create_graph=True)
        (jvp,) = torch.autograd.grad(g, u, grad_outputs=torch.ones_like(t_req), create_graph=create_graph)
    return jvp if create_graph else jvp.detach()


class Schedule:
    """A coefficient ``c(t)`` with derivative ``c_dot(t)``.

    Subclasses implement :meth:`value` and, where available in closed form, :meth:`dot`.
    The default :meth:`dot` uses autograd (:func:`time_derivative`).
    """

    def value(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def dot(self, t: Tensor) -> Tensor:
        return time_derivative(self.value, t)

    def __call__(self, t: Tensor) -> Tensor:
        return self.value(t)

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"{type(self).__name__}()"


class FunctionSchedule(Schedule):
    """A user-supplied coefficient ``fn(t)``; derivative ``dfn`` or autograd when ``dfn`` is None.

    Example:
        >>> import torch
        >>> c = FunctionSchedule(lambda t: 1 - t**2)
        >>> c.dot(torch.tensor([0.5])).tolist()
        [-1.0]
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], dfn: Callable[[Tensor], Tensor] | None = None):
        if not callable(fn):
            raise TypeError(f"fn: expected a callable t -> tensor, got {type(fn).__name__}")
        if dfn is not None and not callable(dfn):
            raise TypeError(f"dfn: expected a callable or None, got {type(dfn).__name__}")
        self.fn = fn
        self.dfn = dfn

    def value(self, t: Tensor) -> Tensor:
        return self.fn(t)

    def dot(self, t: Tensor) -> Tensor:
        if self.dfn is not None:
            return self.dfn(t)
        return time_derivative(self.fn, t)


class Constant(Schedule):
    """``c(t) = c`` (used by the mirror interpolant, ``beta = 1``, ``alpha = 0``)."""

    def __init__(self, c: float):
        self.c = float(c)

    def value(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.c)

    def dot(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)


class LinearDown(Schedule):
    """``alpha(t) = 1 - t``."""

    def value(self, t):
        return 1.0 - t

    def dot(self, t):
        return -torch.ones_like(t)


class LinearUp(Schedule):
    """``beta(t) = t``."""

    def value(self, t):
        return t

    def dot(self, t):
        return torch.ones_like(t)


class CosDown(Schedule):
    """``alpha(t) = cos(pi t / 2)``."""

    def value(self, t):
        # sin(pi (1-t) / 2) equals cos(pi t / 2) and is exactly 0 at t = 1 in floating point
        return torch.sin(0.5 * math.pi * (1.0 - t))

    def dot(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)


class SinUp(Schedule):
    """``beta(t) = sin(pi t / 2)``."""

    def value(self, t):
        return torch.sin(0.5 * math.pi * t)

    def dot(self, t):
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)


class SqrtOneMinusSquare(Schedule):
    """``alpha(t) = sqrt(1 - t^2)`` (one-sided VP). Its derivative ``-t / sqrt(1-t^2)`` is
    singular at ``t = 1``; sample and train on ``t <= t_max < 1``."""

    def value(self, t):
        return torch.sqrt(torch.clamp(1.0 - t * t, min=0.0))

    def dot(self, t):
        return -t / torch.sqrt(1.0 - t * t)


class GammaSchedule(Schedule):
    """A latent-noise schedule: ``gamma(0) = gamma(1) = 0`` and ``gamma >= 0``.

    Adds :meth:`gamma_gamma_dot`, the product ``gamma * gamma_dot``, which subclasses give in a
    closed form that is finite at the endpoints (docs/math.md §1).
    """

    def gamma_gamma_dot(self, t: Tensor) -> Tensor:
        return self.value(t) * self.dot(t)

    @property
    def is_zero(self) -> bool:
        return False


class BrownianGamma(GammaSchedule):
    r"""``gamma(t) = sqrt(a t (1 - t))``.

    .. math:: \dot\gamma = \frac{a(1-2t)}{2\gamma}, \qquad \gamma\dot\gamma = \frac{a(1-2t)}{2}.

    ``gamma_dot`` is infinite at ``t in {0, 1}``; the product is not.

    Args:
        a: positive scale. ``a = 2 eps`` gives the Brownian bridge of a ``sqrt(2 eps) W``
           reference (docs/math.md §5).
    """

    def __init__(self, a: float = 1.0):
        if not (isinstance(a, (int, float)) and math.isfinite(a) and a > 0):
            raise ValueError(f"a: expected a positive finite number, got {a!r}")
        self.a = float(a)

    def value(self, t):
        return torch.sqrt(torch.clamp(self.a * t * (1.0 - t), min=0.0))

    def dot(self, t):
        return 0.5 * self.a * (1.0 - 2.0 * t) / self.value(t)

    def gamma_gamma_dot(self, t):
        return 0.5 * self.a * (1.0 - 2.0 * t)

    def __repr__(self):
        return f"BrownianGamma(a={self.a})"


class QuadraticGamma(GammaSchedule):
    """``gamma(t) = a t (1 - t)``, ``gamma_dot = a (1 - 2t)``."""

    def __init__(self, a: float = 1.0):
        if not (isinstance(a, (int, float)) and math.isfinite(a) and a > 0):
            raise ValueError(f"a: expected a positive finite number, got {a!r}")
        self.a = float(a)

    def value(self, t):
        return self.a * t * (1.0 - t)

    def dot(self, t):
        return self.a * (1.0 - 2.0 * t)

    def __repr__(self):
        return f"QuadraticGamma(a={self.a})"


class SinSquaredGamma(GammaSchedule):
    """``gamma(t) = sin^2(pi t)``, ``gamma_dot = pi sin(2 pi t)``."""

    def value(self, t):
        # symmetric about 1/2; evaluating at min(t, 1-t) makes gamma(1) exactly 0
        return torch.sin(math.pi * torch.minimum(t, 1.0 - t)) ** 2

    def dot(self, t):
        return math.pi * torch.sin(2.0 * math.pi * t)


class SigmoidGamma(GammaSchedule):
    r"""A smooth sigmoid bump (SI Table 8):

    .. math:: \gamma(t) = \sigma(f(t-\tfrac12)+1) - \sigma(f(t-\tfrac12)-1)
                          - \sigma(-\tfrac f2+1) + \sigma(-\tfrac f2-1)

    which vanishes at both ends for any sharpness ``f > 0``, is symmetric about ``t = 1/2``
    and is flat in the middle for large ``f``.
    """

    def __init__(self, f: float = 10.0):
        if not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0):
            raise ValueError(f"f: expected a positive finite number, got {f!r}")
        self.f = float(f)

    def _bump(self, u):
        return torch.sigmoid(u + 1.0) - torch.sigmoid(u - 1.0)

    def value(self, t):
        # symmetric about 1/2: evaluating at min(t, 1-t) and subtracting the same expression at
        # t = 0 makes gamma(0) = gamma(1) = 0 exactly in floating point
        u = self.f * (torch.minimum(t, 1.0 - t) - 0.5)
        return self._bump(u) - self._bump(torch.full_like(t, -0.5 * self.f))

    def dot(self, t):
        u = self.f * (t - 0.5)
        sp = lambda v: torch.sigmoid(v) * (1.0 - torch.sigmoid(v))  # noqa: E731
        return self.f * (sp(u + 1.0) - sp(u - 1.0))

    def __repr__(self):
        return f"SigmoidGamma(f={self.f})"


class ZeroGamma(GammaSchedule):
    """``gamma = 0``: a deterministic interpolant (allowed for b-only / v-only models)."""

    def value(self, t):
        return torch.zeros_like(t)

    def dot(self, t):
        return torch.zeros_like(t)

    def gamma_gamma_dot(self, t):
        return torch.zeros_like(t)

    @property
    def is_zero(self) -> bool:
        return True


class FunctionGamma(GammaSchedule):
    """A user-supplied gamma. ``dfn`` (gamma_dot) and ``ggdot`` (gamma * gamma_dot) are taken
    from autograd when not given. Give ``ggdot`` in closed form when gamma_dot is singular at
    the ends (as for ``sqrt``-type schedules).

    Example:
        >>> import torch
        >>> g = FunctionGamma(lambda t: 2 * t * (1 - t))
        >>> g.dot(torch.tensor([0.0])).tolist()
        [2.0]
    """

    def __init__(self, fn, dfn=None, ggdot=None):
        if not callable(fn):
            raise TypeError(f"fn: expected a callable t -> tensor, got {type(fn).__name__}")
        self.fn, self.dfn, self.ggdot = fn, dfn, ggdot

    def value(self, t):
        return self.fn(t)

    def dot(self, t):
        return self.dfn(t) if self.dfn is not None else time_derivative(self.fn, t)

    def gamma_gamma_dot(self, t):
        if self.ggdot is not None:
            return self.ggdot(t)
        return self.value(t) * self.dot(t)
