r"""The max–min objective (docs/math.md §5, SI 3.39) and the inner loss of each drift form.

.. math::
    \max_{\hat I}\ \min_{\hat u}\ \mathbb{E}\Big[\tfrac12|\hat u(t,\hat x_t)|^2
        - \big(\partial_t \hat I + (\dot\gamma - \epsilon/\gamma) z\big)\cdot \hat u(t,\hat x_t)\Big],
    \qquad \hat x_t = \hat I(t,x_0,x_1) + \gamma(t) z,

with ``x0, x1`` from a coupling, ``z`` independent and ``t ~ U[t_min, 1 - t_min]``. For a fixed
interpolant the inner minimiser is ``u = b_F = b + eps s`` and the inner value is
``-1/2 int E|b_F|^2``; the outer max therefore minimises the kinetic energy over the interpolant
family, and at the optimum ``u`` is the bridge's drift (SI Thm 3.10).

Both are evaluated with antithetic pairs: the ``(gamma_dot - eps/gamma) z`` term is odd in ``z``
and multiplies ``u(x+) - u(x-) = O(gamma)``, so its variance stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..interpolants.base import Interpolant, InterpolantSample, bcast
from ..losses import quadratic_loss
from .drifts import TwoNetDrift

__all__ = ["inner_loss", "sb_objective"]


def sb_objective(
    u: Callable[[Tensor, Tensor], Tensor],
    interp: Interpolant,
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    t: Tensor,
    z: Tensor,
) -> Tensor:
    r"""Per-sample max–min objective (SI 3.39) with antithetic pairs, shape ``(n,)``.

    .. math:: \tfrac12|u(t,x_t)|^2 - (\partial_t I + (\dot\gamma - \epsilon/\gamma) z)\cdot u(t,x_t)

    Example:
        >>> import torch
        >>> from bridge.interpolants import Linear
        >>> x = torch.randn(8, 1)
        >>> sb_objective(lambda t, y: -y, Linear(), x, x + 1, 0.5, t=torch.full((8,), 0.5),
        ...              z=torch.randn(8, 1)).shape
        torch.Size([8])
    """
    return _objective(u, interp.sample(t, x0, x1, z), eps)


def _objective(u, s: InterpolantSample, eps: float) -> Tensor:
    # even part d/dt I; odd part (gamma_dot - eps / gamma) z, flipped at the antithetic point
    return quadratic_loss(u, s, s.drift_even, s.drift_odd - eps / s.noise_scale * s.noise, antithetic=True)


def inner_loss(net, s: InterpolantSample, eps: float, *, endpoint: bool = False) -> Tensor:
    """The inner loss per sample (antithetic pairs) of the drift ``net`` on interpolant samples ``s``.

    A :class:`~bridge.sb.TwoNetDrift` minimises ``L_velocity + L_eta`` (docs/math.md §2: the same
    minimisers as ``L_b + eps^2 L_s``, the score through ``eta``; splits ``"v"``, ``"w"``: the
    velocity's target is ``d/dt I + kappa z``); every other drift the objective itself. The
    endpoint form (``endpoint=True``) weights it by ``(1-t)^2``: the same pointwise minimiser,
    turned into the regression of ``D`` on ``x_t + (1-t) * target``, whose variance stays bounded
    as ``t -> 1``.
    """
    if isinstance(net, TwoNetDrift):
        if net.split == "b":
            odd = s.drift_odd
        else:  # kappa z
            odd = bcast(net.coefficients(s.t)["kappa"].to(s.noise.dtype), s.noise) * s.noise
        per = quadratic_loss(net.first, s, s.drift_even, odd, antithetic=True)
        per = per + quadratic_loss(net.eta, s, torch.zeros_like(s.noise), s.noise, antithetic=True)
    else:
        per = _objective(net, s, eps)
    if endpoint:
        per = per * (1.0 - s.t).pow(2)
    return per
