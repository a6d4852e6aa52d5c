r"""Per-sample quadratic losses for b, s, eta and v (docs/math.md §2, SI 2.13, 2.16, 2.19, 2.29).

Each loss has the form

.. math:: L[f] = \mathbb{E}\big[\tfrac12 |f(t, x_t)|^2 - \mathrm{target} \cdot f(t, x_t)\big],

whose unique minimiser is ``f* = E[target | x_t]`` and whose excess is
``L[f] - L[f*] = 1/2 E|f - f*|^2``. Targets:

=========  ====================================  ==========
field      target                                SI
=========  ====================================  ==========
b          ``d/dt I + gamma_dot z``              2.13
s          ``-z / gamma``                        2.16
eta        ``z``                                 2.19
v          ``d/dt I``                            2.29
=========  ====================================  ==========

(one-sided interpolants: ``z`` is ``x0`` and ``gamma`` is ``alpha``.)

**Antithetic pairs.** With ``antithetic=True`` each sample is evaluated at ``x+ = I + gamma z``
and ``x- = I - gamma z`` with the odd part of the target flipped at ``x-``, and the two are
averaged. Written as ``1/4(|f+|^2 + |f-|^2) - 1/2 even.(f+ + f-) - 1/2 odd.(f+ - f-)``, the
``1/gamma`` and ``gamma_dot`` terms multiply ``f+ - f- = O(gamma)`` and have bounded variance.
It is on by default for b and s (docs/math.md §2 says why) and off for eta and v, which have no
singular term.

All losses return shape ``(n,)``; take ``.mean()`` for a training objective.

Example:
    >>> import torch
    >>> from bridge.interpolants import Linear
    >>> g = torch.Generator().manual_seed(0)
    >>> b = lambda t, x: torch.zeros_like(x)
    >>> loss_b(b, Linear(), torch.randn(8, 2), torch.randn(8, 2), generator=g).shape
    torch.Size([8])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .interpolants.base import Interpolant, InterpolantSample

__all__ = ["sample_times", "quadratic_loss", "loss_b", "loss_s", "loss_eta", "loss_v", "SCORE_T_RANGE", "FULL_T_RANGE"]

Field = Callable[[Tensor, Tensor], Tensor]

#: Training t-range for the score: the paper's [2e-4, 1 - 2e-4] (SI Sec. 7.3), which keeps
#: the ``1/gamma`` factor of L_s finite.
SCORE_T_RANGE = (2e-4, 1.0 - 2e-4)
#: The full interval, used for b, v and eta.
FULL_T_RANGE = (0.0, 1.0)


def _check_t_range(t_range) -> tuple[float, float]:
    try:
        lo, hi = float(t_range[0]), float(t_range[1])
    except (TypeError, IndexError, ValueError):
        raise TypeError(f"t_range: expected a pair (t_min, t_max), got {t_range!r}") from None
    if not (0.0 <= lo < hi <= 1.0) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"t_range: expected 0 <= t_min < t_max <= 1, got ({lo}, {hi})")
    return lo, hi


def sample_times(
    n: int, t_range=FULL_T_RANGE, *, generator: torch.Generator | None = None, dtype=torch.float32, device=None
) -> Tensor:
    """``t ~ U[t_min, t_max]``, shape ``(n,)``.

    Example:
        >>> import torch
        >>> t = sample_times(4, (0.1, 0.2), generator=torch.Generator().manual_seed(0))
        >>> bool(((t >= 0.1) & (t <= 0.2)).all())
        True
    """
    lo, hi = _check_t_range(t_range)
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=dtype, device=device)


def quadratic_loss(f: Field, sample: InterpolantSample, even: Tensor, odd: Tensor, *, antithetic: bool) -> Tensor:
    r"""``1/2 |f|^2 - target . f`` per sample, with target ``even + odd`` at ``x+`` and
    ``even - odd`` at ``x-`` when ``antithetic`` (docs/math.md §2).

    Both points go through ``f`` in one batched call.
    """
    if antithetic and sample.xt_anti is not None:
        n = sample.xt.shape[0]
        out = f(torch.cat([sample.t, sample.t]), torch.cat([sample.xt, sample.xt_anti]))
        _check_out(out, sample.xt, 2 * n)
        fp, fm = out[:n], out[n:]
        quad = 0.25 * (fp.pow(2).sum(-1) + fm.pow(2).sum(-1))
        lin = 0.5 * (even * (fp + fm)).sum(-1) + 0.5 * (odd * (fp - fm)).sum(-1)
        return quad - lin
    out = f(sample.t, sample.xt)
    _check_out(out, sample.xt, sample.xt.shape[0])
    return 0.5 * out.pow(2).sum(-1) - ((even + odd) * out).sum(-1)


def _check_out(out, x, n):
    if not isinstance(out, Tensor) or out.shape != (n, x.shape[1]):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"model output: expected shape ({n}, {x.shape[1]}), got {shape}")


def _draw(interp: Interpolant, x0, x1, t, z, t_range, generator) -> InterpolantSample:
    if not isinstance(interp, Interpolant):
        raise TypeError(f"interp: expected an Interpolant, got {type(interp).__name__}")
    if t is None:
        t = sample_times(x0.shape[0], t_range, generator=generator, dtype=x0.dtype, device=x0.device)
    return interp.sample(t, x0, x1, z, generator=generator)


def loss_b(
    b: Field,
    interp: Interpolant,
    x0: Tensor,
    x1: Tensor,
    *,
    t: Tensor | None = None,
    z: Tensor | None = None,
    generator: torch.Generator | None = None,
    t_range=FULL_T_RANGE,
    antithetic: bool = True,
) -> Tensor:
    r"""Drift loss (SI 2.13): :math:`\tfrac12|b(t,x_t)|^2 - (\partial_t I + \dot\gamma z)\cdot b(t,x_t)`.

    Args:
        b: model ``b(t, x)``; ``t`` is ``(n,)``, ``x`` is ``(n, d)``.
        interp: the interpolant.
        x0, x1: samples ``(n, d)`` from the coupling (independent by default).
        t, z: fixed times ``(n,)`` and noise ``(n, d)``; drawn from ``generator`` when None.
        t_range: ``(t_min, t_max)`` for drawn times.
        antithetic: average over ``+z`` and ``-z`` (docs/math.md §2); needed for a singular ``gamma_dot``.

    Returns:
        Per-sample loss, shape ``(n,)``. Minimiser: ``b = E[d/dt I + gamma_dot z | x_t]``.
    """
    s = _draw(interp, x0, x1, t, z, t_range, generator)
    return quadratic_loss(b, s, s.drift_even, s.drift_odd, antithetic=antithetic)


def loss_v(
    v: Field,
    interp: Interpolant,
    x0: Tensor,
    x1: Tensor,
    *,
    t: Tensor | None = None,
    z: Tensor | None = None,
    generator: torch.Generator | None = None,
    t_range=FULL_T_RANGE,
    antithetic: bool = False,
) -> Tensor:
    r"""Velocity loss (SI 2.29): :math:`\tfrac12|v(t,x_t)|^2 - \partial_t I\cdot v(t,x_t)`.

    Minimiser ``v = E[d/dt I | x_t]``; then ``b = v - gamma gamma_dot s`` (SI 2.27).
    Arguments as :func:`loss_b`; returns ``(n,)``.
    """
    s = _draw(interp, x0, x1, t, z, t_range, generator)
    return quadratic_loss(v, s, s.velocity_even, s.velocity_odd, antithetic=antithetic)


def loss_eta(
    eta: Field,
    interp: Interpolant,
    x0: Tensor,
    x1: Tensor,
    *,
    t: Tensor | None = None,
    z: Tensor | None = None,
    generator: torch.Generator | None = None,
    t_range=FULL_T_RANGE,
    antithetic: bool = False,
) -> Tensor:
    r"""Denoiser loss (SI 2.19): :math:`\tfrac12|\eta(t,x_t)|^2 - z\cdot\eta(t,x_t)`.

    Sign convention: ``eta = +E[z | x_t]`` (the paper's), so ``s = -eta / gamma``. For one-sided
    interpolants ``z`` is ``x0`` and ``s = -eta / alpha``. Arguments as :func:`loss_b`.
    """
    s = _draw(interp, x0, x1, t, z, t_range, generator)
    zero = torch.zeros_like(s.noise)
    return quadratic_loss(eta, s, zero, s.noise, antithetic=antithetic)


def loss_s(
    score: Field,
    interp: Interpolant,
    x0: Tensor,
    x1: Tensor,
    *,
    t: Tensor | None = None,
    z: Tensor | None = None,
    generator: torch.Generator | None = None,
    t_range=SCORE_T_RANGE,
    antithetic: bool = True,
) -> Tensor:
    r"""Score loss (SI 2.16): :math:`\tfrac12|s(t,x_t)|^2 + \gamma^{-1} z\cdot s(t,x_t)`.

    The ``1/gamma`` term needs the antithetic pair (on by default) and a t-range that avoids
    ``gamma = 0`` (default :data:`SCORE_T_RANGE`). Arguments as :func:`loss_b`.
    """
    if not interp.one_sided and not interp.has_latent_noise:
        raise ValueError("interp: the score loss needs latent noise (gamma > 0) or a one-sided interpolant")
    s = _draw(interp, x0, x1, t, z, t_range, generator)
    zero = torch.zeros_like(s.noise)
    return quadratic_loss(score, s, zero, -s.noise / s.noise_scale, antithetic=antithetic)
