r"""The Schrödinger bridge by max–min over learned interpolants (SPEC §5, SI 3.39).

.. math::
    \max_{\hat I}\ \min_{\hat u}\ \mathbb{E}\Big[\tfrac12|\hat u(t,\hat x_t)|^2
        - \big(\partial_t \hat I + (\dot\gamma - \epsilon/\gamma) z\big)\cdot \hat u(t,\hat x_t)\Big],
    \qquad \hat x_t = \hat I(t,x_0,x_1) + \gamma(t) z,

with ``x0, x1, z`` independent and ``t ~ U[t_min, 1 - t_min]``. For a fixed interpolant the inner
minimiser is ``u = b_F = b + eps s`` and the inner value is ``-1/2 int E|b_F|^2``; the outer max
therefore minimises the kinetic energy over the interpolant family, and at the optimum ``u`` is
the SB drift of ``dX = u dt + sqrt(2 eps) dW`` (SI Thm 3.10).

The loss is evaluated with antithetic pairs (SPEC §5): the ``(gamma_dot - eps/gamma) z`` term is
odd in ``z`` and multiplies ``u(x+) - u(x-) = O(gamma)``, so its variance stays bounded.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..interpolants.base import Interpolant
from ..interpolants.learnable import FourierInterpolant
from ..interpolants.schedules import BrownianGamma
from ..losses import quadratic_loss, sample_times
from ..models import MLP

__all__ = ["SBConfig", "sb_objective", "solve_bridge"]


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


def _objective(u, s, eps: float) -> Tensor:
    # even part d/dt I; odd part (gamma_dot - eps / gamma) z, flipped at the antithetic point
    return quadratic_loss(u, s, s.drift_even, s.drift_odd - eps / s.noise_scale * s.noise, antithetic=True)


@dataclass
class SBConfig:
    """Settings of :func:`solve_bridge` (all have defaults that work on small problems).

    Attributes:
        outer_steps: outer (ascent) steps on the interpolant.
        inner_steps: inner (descent) steps on ``u`` per outer step (SPEC §5: K).
        warmup_steps: inner steps before the first outer step.
        batch_size: Monte-Carlo batch per step (times two with the antithetic partner).
        lr_inner, lr_outer: Adam learning rates, cosine-decayed to 5% over the budget.
        hidden, depth: the MLP for ``u``.
        n_modes: Fourier modes of the default interpolant.
        diagonal: per-dimension Fourier coefficients (needed for non-commuting covariances).
        learn_gamma: learn a factor ``exp(sum c_k sin(k pi t))`` on ``gamma_0 = sqrt(2 eps t(1-t))``.
        t_min: times are drawn from ``[t_min, 1 - t_min]`` (the ``eps/gamma`` term).
        time_budget: wall-clock cap in seconds (None: none).
        log_every: progress line every this many outer steps (0: silent).
    """

    outer_steps: int = 2000
    inner_steps: int = 3
    warmup_steps: int = 300
    batch_size: int = 1024
    lr_inner: float = 1e-3
    lr_outer: float = 1e-3
    hidden: int = 64
    depth: int = 2
    n_modes: int = 6
    diagonal: bool = True
    learn_gamma: bool = True
    t_min: float = 1e-3
    time_budget: float | None = None
    log_every: int = 200
    seed: int = 0


def _sampler(x: Tensor, name: str):
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected samples of shape (n, d) with n >= 2, got {shape}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or Inf")
    return lambda n, g: x[torch.randint(0, x.shape[0], (n,), generator=g).to(x.device)]


def solve_bridge(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    interpolant: nn.Module | None = None,
    config: SBConfig | None = None,
    progress: Callable[[str], None] | None = None,
):
    r"""Solve the Schrödinger bridge between samples ``x0`` and ``x1`` by max–min (SPEC §5).

    Args:
        x0, x1: source and target samples ``(n, d)`` (the sizes may differ).
        eps: the paper's eps (diffusion ``sqrt(2 eps) dW``), ``> 0``.
        interpolant: a learnable interpolant (an ``nn.Module`` :class:`Interpolant`); default a
            :class:`FourierInterpolant` with ``gamma_0 = sqrt(2 eps t(1-t))``.
        config: :class:`SBConfig`.
        progress: where progress lines go (default stderr).

    Returns:
        :class:`~bridge.sb.result.BridgeResult`.
    """
    from .result import BridgeResult

    cfg = config if config is not None else SBConfig()
    eps = float(eps)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a finite number > 0, got {eps!r}")
    draw0, draw1 = _sampler(x0, "x0"), _sampler(x1, "x1")
    if x0.shape[1] != x1.shape[1]:
        raise ValueError(f"x0 has dimension {x0.shape[1]} but x1 has dimension {x1.shape[1]}")
    d, dtype, device = x0.shape[1], x0.dtype, x0.device
    say = progress if progress is not None else (lambda m: print(m, file=sys.stderr, flush=True))
    gen = torch.Generator().manual_seed(cfg.seed)
    if interpolant is None:
        interpolant = FourierInterpolant(
            cfg.n_modes, dim=d if cfg.diagonal else None, gamma=BrownianGamma(a=2.0 * eps), learn_gamma=cfg.learn_gamma
        )
    if not (isinstance(interpolant, nn.Module) and isinstance(interpolant, Interpolant)):
        raise TypeError(f"interpolant: expected a learnable Interpolant (nn.Module), got {type(interpolant).__name__}")
    interpolant = interpolant.to(device)
    u = MLP(d, hidden=cfg.hidden, depth=cfg.depth, activation="silu", generator=gen).to(dtype=dtype, device=device)
    opt_in = torch.optim.Adam(u.parameters(), lr=cfg.lr_inner)
    outer_params = [p for p in interpolant.parameters() if p.requires_grad]
    opt_out = torch.optim.Adam(outer_params, lr=cfg.lr_outer) if outer_params else None
    t_range = (cfg.t_min, 1.0 - cfg.t_min)

    def batch():
        xa, xb = draw0(cfg.batch_size, gen), draw1(cfg.batch_size, gen)
        t = sample_times(cfg.batch_size, t_range, generator=gen, dtype=dtype).to(device)
        z = torch.randn(xa.shape, generator=gen, dtype=dtype).to(device)
        return xa, xb, t, z

    def inner_step():
        xa, xb, t, z = batch()
        with torch.no_grad():  # the interpolant is held fixed in the inner step
            s = interpolant.sample(t, xa, xb, z)
        loss = _objective(u, s, eps).mean()
        opt_in.zero_grad(set_to_none=True)
        loss.backward()
        opt_in.step()
        return float(loss.detach())

    start = time.perf_counter()
    for _ in range(cfg.warmup_steps):
        inner_step()
    history = []
    stopped_by = "steps"
    step = 0
    for step in range(1, cfg.outer_steps + 1):
        elapsed = time.perf_counter() - start
        if cfg.time_budget is not None and elapsed >= cfg.time_budget:
            stopped_by, step = "time_budget", step - 1
            break
        frac = (
            step / cfg.outer_steps
            if cfg.time_budget is None
            else max(step / cfg.outer_steps, elapsed / cfg.time_budget)
        )
        decay = 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0)))
        for grp in opt_in.param_groups:
            grp["lr"] = cfg.lr_inner * decay
        first = last = 0.0
        for k in range(cfg.inner_steps):
            val = inner_step()
            first, last = (val, val) if k == 0 else (first, val)
        if opt_out is not None:
            for grp in opt_out.param_groups:
                grp["lr"] = cfg.lr_outer * decay
            xa, xb, t, z = batch()
            obj = sb_objective(u, interpolant, xa, xb, eps, t=t, z=z).mean()
            opt_out.zero_grad(set_to_none=True)
            (-obj).backward()  # ascent on the interpolant
            opt_out.step()
            value = float(obj.detach())
        else:
            value = last
        if cfg.log_every and (step % cfg.log_every == 0 or step == 1):
            with torch.no_grad():
                xa, xb, t, z = batch()
                s = interpolant.sample(t, xa, xb, z)
                kinetic = float(u(s.t, s.xt).pow(2).sum(-1).mean())
            rec = {
                "step": step,
                "objective": value,
                "kinetic": kinetic,
                "inner_gap": first - last,
                "wall_s": round(time.perf_counter() - start, 3),
            }
            history.append(rec)
            say(
                f"[solve] outer {step:>6d}/{cfg.outer_steps}  objective {value:+.4f}  "
                f"kinetic {kinetic:.4f}  inner gap {first - last:+.2e}  {rec['wall_s']:.1f}s"
            )
    wall = time.perf_counter() - start
    u.eval()
    return BridgeResult(
        drift_net=u,
        interpolant=interpolant,
        eps=eps,
        history=history,
        steps=step,
        wall_s=wall,
        stopped_by=stopped_by,
        config=cfg,
    )
