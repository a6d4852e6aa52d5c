r"""LightSB: fitting the Gaussian-mixture potential family by its KL objective (docs/math.md §5.10).

For the plans :math:`\pi_\theta(x_1 \mid x_0) = e^{\langle x_0, x_1\rangle / r} v_\theta(x_1) / c_\theta(x_0)`
of :class:`~bridge.sb.MixturePotential` (:math:`r = 2\epsilon`), Korotin, Gushchin & Burnaev
("Light Schrödinger Bridge", ICLR 2024, Thm. 3.1) show

.. math::
    \mathrm{KL}(\pi^\star \,\|\, \pi_\theta) = \mathcal L(\theta) + \text{const}, \qquad
    \mathcal L(\theta) = \mathbb E_{x_0 \sim \rho_0} \log c_\theta(x_0)
        - \mathbb E_{x_1 \sim \rho_1} \log v_\theta(x_1),

which needs only samples of the two marginals, not of the plan :math:`\pi^\star`: the SB plan
is :math:`\pi^\star(x_1 \mid x_0) \propto e^{\langle x_0, x_1\rangle/r} v^\star(x_1)` for some
:math:`v^\star`, so :math:`\log \pi^\star(x_0, x_1) - \log\pi_\theta(x_0, x_1)` is
:math:`\log v^\star(x_1) - \log c^\star(x_0) + \log c_\theta(x_0) - \log v_\theta(x_1)` plus
:math:`\log\rho_0(x_0)` terms that cancel. :func:`fit_lightsb` minimises :func:`lightsb_loss`
by Adam on minibatches, as the paper's Algorithm 1.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..conventions import check_eps
from ..threads import DEFAULT_THREADS, torch_threads
from .couplings import check_samples
from .potential import COVARIANCES, MixturePotential

__all__ = ["LIGHTSB_BATCH", "LIGHTSB_LR", "LightSBResult", "cosine_factor", "fit_lightsb", "lightsb_loss"]

#: The learning-rate schedules of :func:`fit_lightsb`.
SCHEDULES = ("cosine", "constant")
#: Progress lines of :func:`fit_lightsb`: every tenth of the steps, and at least every 30 s.
LOG_LINES = 10
LOG_SECONDS = 30.0
#: :func:`fit_lightsb`'s default learning rate and rows per side and step (LightSB's benchmark runs).
LIGHTSB_LR = 1e-2
LIGHTSB_BATCH = 128


def lightsb_loss(potential: MixturePotential, x0: Tensor, x1: Tensor) -> Tensor:
    r"""LightSB's objective on one batch (docs/math.md §5.10), a 0-d tensor:

    .. math:: \frac1N\sum_i \log c_\theta(x_0^i) - \frac1M\sum_j \log v_\theta(x_1^j).

    In expectation it is :math:`\mathrm{KL}(\pi^\star\|\pi_\theta)` up to a constant of the
    problem; ``x0`` and ``x1`` are independent samples of the two marginals (no pairing needed).

    Example:
        >>> import torch
        >>> from bridge.sb import MixturePotential
        >>> pot = MixturePotential(2, 3, eps=0.5, generator=torch.Generator().manual_seed(0))
        >>> lightsb_loss(pot, torch.randn(8, 2), torch.randn(8, 2)).shape
        torch.Size([])
    """
    return potential.log_c(x0).mean() - potential.log_v(x1).mean()


@dataclass(eq=False)
class LightSBResult:
    r"""A fitted :class:`~bridge.sb.MixturePotential` and how it was fitted.

    Attributes:
        potential: the fitted potential (its :meth:`~bridge.sb.MixturePotential.sample`,
            :meth:`~bridge.sb.MixturePotential.drift`, ... are the learned bridge).
        steps: Adam steps taken.
        stopped_by: ``"steps"`` or ``"time_budget"``.
        train_s: wall-clock seconds of training.
        history: ``{"step", "loss", "elapsed_s"}`` records (every tenth of the steps).
        settings: the options as used (for reports).
    """

    potential: MixturePotential
    steps: int
    stopped_by: str
    train_s: float
    history: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def sample(self, x0: Tensor, per_point: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Exact samples of :math:`x_1 \mid x_0` of the fitted plan, ``(n, per_point, d)``."""
        return self.potential.sample(x0, per_point, generator=generator)


def _check_options(opts: dict) -> None:
    for name in ("n_components", "batch_size"):
        v = opts[name]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    if opts["covariance"] not in COVARIANCES:
        raise ValueError(f"covariance: expected 'diagonal' or 'full', got {opts['covariance']!r}")
    if opts["schedule"] not in SCHEDULES:
        raise ValueError(f"schedule: expected 'cosine' or 'constant', got {opts['schedule']!r}")
    steps = opts["steps"]
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1):
        raise ValueError(f"steps: expected None or a positive int, got {steps!r}")
    for name in ("time_budget", "lr", "init_scale"):
        v = opts[name]
        if v is None and name == "time_budget":
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < math.inf:
            raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
    if steps is None and opts["time_budget"] is None:
        raise ValueError("steps, time_budget: expected at least one of them, got neither")


def _initial_potential(x1: Tensor, eps: float, opts: dict, gen) -> MixturePotential:
    r"""LightSB's start: the means at ``K`` distinct random target samples (with repeats when
    ``K > n``), :math:`S_k = \mathrm{init\_scale}\cdot I`, uniform weights."""
    n, K = x1.shape[0], opts["n_components"]
    idx = torch.randperm(n, generator=gen)[:K] if n >= K else torch.randint(0, n, (K,), generator=gen)
    return MixturePotential(
        x1.shape[1], K, eps, covariance=opts["covariance"], means=x1[idx.to(x1.device)], scale=opts["init_scale"]
    )


def check_pair(x0: Tensor, x1: Tensor, eps) -> float:
    """``eps`` as a float, after checking it and the two sample sets ``(n0, d)``, ``(n1, d)``."""
    eps = check_eps(eps)
    check_samples(x0, "x0")
    check_samples(x1, "x1")
    if x0.shape[1] != x1.shape[1]:
        raise ValueError(f"x0 has dimension {x0.shape[1]} but x1 has dimension {x1.shape[1]}")
    return eps


def fit_lightsb(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    n_components: int = 50,
    covariance: str = "diagonal",
    steps: int | None = 10_000,
    time_budget: float | None = None,
    lr: float = LIGHTSB_LR,
    schedule: str = "cosine",
    batch_size: int = LIGHTSB_BATCH,
    init_scale: float = 1.0,
    generator: torch.Generator | None = None,
    threads: int | None = DEFAULT_THREADS,
    progress: Callable[[str], None] | None = None,
) -> LightSBResult:
    r"""Fit the SB between the samples ``x0 ~ rho0`` and ``x1 ~ rho1`` in the Gaussian-mixture
    potential family (LightSB, Korotin et al. 2024, Algorithm 1; docs/math.md §5.10):

    .. math::
        \min_\theta\ \mathbb E_{x_0} \log c_\theta(x_0) - \mathbb E_{x_1} \log v_\theta(x_1)

    by Adam on independent minibatches of ``batch_size`` rows per side, drawn with replacement.
    The defaults are those of LightSB's benchmark runs (``K = 50`` diagonal components, means
    started at target samples, :math:`S_k = I`, batch 128, 10000 steps) except the learning rate:
    one ``lr`` for every parameter, decayed to 0 along a cosine (``schedule="cosine"``); LightSB
    keeps it constant (``"constant"``), and the minibatch noise then stays in the fit to the end.

    Args:
        x0, x1: ``(n0, d)``, ``(n1, d)`` finite samples of the two marginals (unpaired).
        eps: the paper's eps (:math:`r = 2\epsilon` is LightSB's epsilon).
        n_components: ``K``.
        covariance: ``"diagonal"`` or ``"full"`` :math:`S_k`.
        steps: Adam steps (None: the time budget alone decides).
        time_budget: wall-clock seconds (None: the steps alone decide); the first limit reached
            ends the fit, and the cosine follows whichever is further along.
        lr: Adam's (initial) learning rate.
        schedule: ``"cosine"`` or ``"constant"``.
        batch_size: rows per side per step.
        init_scale: the initial :math:`S_k = \mathrm{init\_scale}\cdot I`.
        generator: randomness of the initial means and of the minibatches (a CPU generator:
            the indices are drawn on the CPU, then moved to the data's device).
        threads: torch CPU threads during the fit (None: leave torch's setting).
        progress: where the progress lines go (default stderr).

    Returns:
        :class:`LightSBResult`, the potential in ``x0``'s dtype and device.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g) + 2
        >>> res = fit_lightsb(x0, x1, 0.5, n_components=4, steps=50, generator=g, progress=lambda m: None)
        >>> res.steps, res.sample(x0[:3], per_point=2).shape
        (50, torch.Size([3, 2, 2]))
    """
    eps = check_pair(x0, x1, eps)
    opts = dict(n_components=n_components, covariance=covariance, steps=steps, time_budget=time_budget, lr=lr)
    opts |= dict(schedule=schedule, batch_size=batch_size, init_scale=init_scale)
    _check_options(opts)
    say = progress if progress is not None else (lambda m: print(m, file=sys.stderr, flush=True))
    x1 = x1.to(x0)
    with torch_threads(threads):
        pot = _initial_potential(x1, eps, opts, generator)
        return _train(pot, x0, x1, opts | {"eps": eps}, generator, say)


def _lr_factor(schedule: str, step: int, elapsed: float, steps: int | None, budget: float | None) -> float:
    """The learning rate's factor: 1, or the cosine at the fraction of the run done (steps or time)."""
    if schedule == "constant":
        return 1.0
    return cosine_factor(max(step / steps if steps else 0.0, elapsed / budget if budget else 0.0))


def cosine_factor(done: float) -> float:
    """A learning rate's factor along a cosine from 1 to 0 over the fraction ``done`` of a run
    (0 past its end)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))


def _train(pot: MixturePotential, x0: Tensor, x1: Tensor, opts: dict, gen, say) -> LightSBResult:
    """The Adam loop of :func:`fit_lightsb` until the steps or the time budget run out."""
    opt = torch.optim.Adam([{"params": list(pot.parameters()), "lr": opts["lr"], "base": opts["lr"]}])
    step, stopped_by, history, train_s = minibatch_adam(
        opt, lambda a, b: lightsb_loss(pot, a, b), x0, x1, opts, gen, say, "lightsb"
    )
    pot.eval()
    return LightSBResult(pot, step, stopped_by, train_s, history, opts)


def minibatch_adam(opt, loss_of, x0: Tensor, x1: Tensor, opts: dict, gen, say, tag: str):
    """Steps of ``opt`` on ``loss_of(x0[i0], x1[i1])`` over independent minibatches of
    ``opts["batch_size"]`` rows per side (drawn with replacement from ``gen``), until
    ``opts["steps"]`` or ``opts["time_budget"]`` runs out; each parameter group's rate is its
    ``"base"`` times :func:`_lr_factor` of ``opts["schedule"]`` (cosine when absent). A record and
    a ``[tag]`` line about :data:`LOG_LINES` times per run and at least every :data:`LOG_SECONDS`.

    Returns:
        ``(steps taken, stopped_by, history, seconds)``.
    """
    steps, budget, bs = opts["steps"], opts["time_budget"], opts["batch_size"]
    schedule = opts.get("schedule", "cosine")
    t0 = time.perf_counter()
    step, history, stopped_by, last_log = 0, [], "steps", t0
    while steps is None or step < steps:
        elapsed = time.perf_counter() - t0
        if budget is not None and elapsed >= budget:
            stopped_by = "time_budget"
            break
        for group in opt.param_groups:
            group["lr"] = group["base"] * _lr_factor(schedule, step, elapsed, steps, budget)
        i0 = torch.randint(0, x0.shape[0], (bs,), generator=gen).to(x0.device)
        i1 = torch.randint(0, x1.shape[0], (bs,), generator=gen).to(x1.device)
        loss = loss_of(x0[i0], x1[i1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        now = time.perf_counter()
        if step == steps or (steps and step % max(1, steps // LOG_LINES) == 0) or now - last_log > LOG_SECONDS:
            last_log = now
            history.append({"step": step, "loss": float(loss.detach()), "elapsed_s": now - t0})
            say(f"[{tag}] step {step}  loss {history[-1]['loss']:.4f}  {history[-1]['elapsed_s']:.1f}s")
    return step, stopped_by, history, time.perf_counter() - t0
