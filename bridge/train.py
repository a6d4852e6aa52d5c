r"""Training b and s (or v, eta) for a fixed interpolant (docs/math.md §2).

One network per field, all minimising the sum of their quadratic losses (SI 2.13-2.29) on the
same Monte-Carlo batch ``(t, x0, x1, z)``. Because the losses have disjoint parameters, the sum
is minimised by minimising each. Training stops at ``steps`` or at ``time_budget`` seconds,
whichever comes first; the learning rate follows a cosine decay over that budget.

Example:
    >>> import torch
    >>> from bridge.interpolants import Linear
    >>> g = torch.Generator().manual_seed(0)
    >>> x0, x1 = torch.randn(256, 2, generator=g), torch.randn(256, 2, generator=g) + 2
    >>> res = train_fields(Linear(), x0, x1, fields=("b", "s"), steps=20, hidden=16, log_every=0)
    >>> sorted(res.models), res.steps
    (['b', 's'], 20)
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .distributed import current
from .fields import Fields
from .interpolants.base import Interpolant
from .losses import FULL_T_RANGE, SCORE_T_RANGE, loss_b, loss_eta, loss_s, loss_v, sample_times
from .models import MLP
from .progress import Progress
from .threads import DEFAULT_THREADS, check_threads, torch_threads

__all__ = ["FIELD_SETS", "TrainResult", "train_fields", "check_field_set"]

#: Field combinations that determine a drift (and a score where needed for SDEs).
FIELD_SETS = (("b", "s"), ("b", "eta"), ("v", "s"), ("v", "eta"), ("b",), ("v",), ("eta",), ("s",))

_LOSSES = {"b": loss_b, "s": loss_s, "eta": loss_eta, "v": loss_v}


def ema_update(averaged: nn.Module, model: nn.Module, ema: float, step: int) -> None:
    """One step of the exponential moving average of ``model``'s weights into ``averaged``, with the
    decay warmed up as ``min(ema, (1 + k) / (10 + k))`` at step ``k`` so that the initial weights do
    not linger."""
    decay = min(ema, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for pa, pm in zip(averaged.parameters(), model.parameters(), strict=True):
            pa.lerp_(pm, 1.0 - decay)


def check_field_set(fields, interp: Interpolant) -> tuple[str, ...]:
    """Validate a field combination for an interpolant; returns it as a sorted-by-role tuple."""
    if isinstance(fields, str):
        fields = tuple(f.strip() for f in fields.split(",") if f.strip())
    fields = tuple(fields)
    order = {"b": 0, "v": 1, "s": 2, "eta": 3}
    if any(f not in order for f in fields) or len(set(fields)) != len(fields):
        raise ValueError(f"fields: expected a combination of b, v, s, eta, got {fields!r}")
    fields = tuple(sorted(fields, key=order.get))
    if fields not in FIELD_SETS:
        raise ValueError(
            f"fields: {','.join(fields)} is not a supported combination; use one of "
            + ", ".join(",".join(f) for f in FIELD_SETS)
        )
    noisy = interp.has_latent_noise or interp.one_sided
    if ("s" in fields or "eta" in fields) and not noisy:
        raise ValueError("fields: s and eta need latent noise (gamma > 0) or a one-sided interpolant")
    if fields == ("v",) and interp.has_latent_noise:
        raise ValueError("fields: with gamma > 0, v alone gives no drift; add s or eta (b = v - gamma gamma_dot s)")
    if fields in (("eta",), ("s",)) and not (interp.one_sided or interp.mirror):
        raise ValueError(f"fields: {fields[0]} alone gives a drift only for one-sided or mirror interpolants")
    return fields


@dataclass
class TrainResult:
    """Outcome of :func:`train_fields`.

    Attributes:
        models: the trained networks by field name (EMA weights when ``ema`` was set).
        fields: a :class:`~bridge.fields.Fields` built from them, ready for the samplers.
        history: per logged step: ``step``, ``wall_s``, ``lr`` and the loss of each field.
        steps: optimiser steps taken.
        wall_s: training wall time in seconds.
        stopped_by: "steps" or "time_budget".
    """

    models: dict[str, nn.Module]
    fields: Fields
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    wall_s: float = 0.0
    stopped_by: str = "steps"


def _as_sampler(x, name):
    if isinstance(x, Tensor):
        if x.dim() != 2 or x.shape[0] < 1:
            raise ValueError(f"{name}: expected samples of shape (n, d), got {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: contains NaN or Inf")
        data = x

        def draw(n, generator):
            idx = torch.randint(0, data.shape[0], (n,), generator=generator)
            return data[idx.to(data.device)]

        return draw, data.shape[1], data.dtype, data.device
    if callable(x):
        probe = x(2, None)
        return x, probe.shape[1], probe.dtype, probe.device
    raise TypeError(f"{name}: expected a (n, d) tensor or a callable (n, generator) -> tensor, got {type(x).__name__}")


def train_fields(
    interp: Interpolant,
    x0,
    x1,
    *,
    fields=("b", "s"),
    steps: int = 4000,
    time_budget: float | None = None,
    batch_size: int = 1024,
    lr: float = 3e-3,
    hidden: int = 128,
    depth: int = 4,
    activation: str = "relu",
    ema: float | None = 0.999,
    t_range=FULL_T_RANGE,
    score_t_range=SCORE_T_RANGE,
    antithetic: bool = True,
    seed: int = 0,
    log_every: int = 250,
    progress: Callable[[str], None] | None = None,
    models: dict[str, nn.Module] | None = None,
    threads: int | None = DEFAULT_THREADS,
) -> TrainResult:
    r"""Train the chosen fields of ``interp`` by minimising their quadratic losses (docs/math.md §2).

    .. math::
        \min_{\hat f} \sum_{f \in \text{fields}}
        \mathbb{E}\big[\tfrac12|\hat f(t,x_t)|^2 - \text{target}_f\cdot\hat f(t,x_t)\big]

    Args:
        interp: the (fixed) interpolant.
        x0, x1: source and target: ``(n, d)`` sample tensors (minibatches are drawn with
            replacement) or callables ``(n, generator) -> (n, d)`` for unlimited data. For a
            one-sided interpolant pass ``x0`` as a standard-normal sampler.
        fields: a combination from :data:`FIELD_SETS`, e.g. ``("b", "s")`` or ``"v,eta"``.
        steps: maximum optimiser steps.
        time_budget: maximum wall-clock seconds (None: no limit).
        batch_size: Monte-Carlo batch per step.
        lr: peak Adam learning rate, cosine-decayed to 5% over the step/time budget.
        hidden, depth, activation: the :class:`~bridge.models.MLP` of each field.
        ema: decay of an exponential moving average of the weights, with warm-up
            ``min(ema, (1+k)/(10+k))`` at step k (None to disable).
        t_range: training times for b, v, eta. score_t_range: for s (keeps ``1/gamma`` finite).
        antithetic: use antithetic pairs for b and s (docs/math.md §2).
        seed: seeds the network initialisation and every Monte-Carlo draw.
        log_every: a loss record (in ``history``) and its line every this many steps (0: silent);
            unless silent, a line with the time left every :data:`bridge.progress.EVERY_S` seconds
            between them.
        progress: where progress lines go (default: print to stderr).
        models: optional pre-built networks by field name (e.g. to continue training).
        threads: torch intra-op threads while training, restored afterwards (None: torch's
            setting; :mod:`bridge.threads` says why one).

    Under ``torchrun`` (an initialised process group, :func:`bridge.distributed.current`) every
    process draws its own ``batch_size`` rows per step from its own stream and the gradients are
    averaged: the processes train as one with ``world_size * batch_size`` rows per step. Rank 0's
    clock decides the time budget and the learning rate; only rank 0 prints progress lines; every
    rank returns the same networks.

    Returns:
        :class:`TrainResult`.
    """
    check_threads(threads)
    with torch_threads(threads):
        fields = check_field_set(fields, interp)
        _check_options(steps=steps, time_budget=time_budget, batch_size=batch_size, lr=lr, ema=ema)
        draw0, d0, dtype, device = _as_sampler(x0, "x0")
        draw1, d1, _, _ = _as_sampler(x1, "x1")
        if d0 != d1:
            raise ValueError(f"x0 has dimension {d0} but x1 has dimension {d1}")
        say = progress if progress is not None else (lambda msg: print(msg, file=sys.stderr, flush=True))
        group = current()
        say = say if group.is_main else (lambda msg: None)

        gen = torch.Generator(device="cpu").manual_seed(seed)
        if models is None:
            models = _new_models(
                fields, d0, hidden=hidden, depth=depth, activation=activation, dtype=dtype, device=device, generator=gen
            )
        elif set(models) != set(fields):
            raise ValueError(f"models: expected networks for {fields}, got {tuple(models)}")
        else:  # e.g. a result's moving averages, which are returned with requires_grad off
            models = {f: m.requires_grad_(True) for f, m in models.items()}
        if group.rank > 0:  # the same initial weights on every rank, then each rank's own draws
            gen.manual_seed(group.rank_seed(seed))
        opt = torch.optim.Adam([p for m in models.values() for p in m.parameters()], lr=lr)
        averaged = {f: copy.deepcopy(m).requires_grad_(False) for f, m in models.items()} if ema else None
        batches = _Batches(draw0, draw1, batch_size, t_range, score_t_range, dtype, device, gen)
        log = _LossLog(fields, steps)
        ticker = Progress(steps, "train", say, unit="steps", budget_s=time_budget) if log_every else None
        start = time.perf_counter()
        stopped_by, step = "steps", 0
        for step in range(1, steps + 1):
            elapsed = time.perf_counter() - start
            if group.is_distributed and time_budget is not None:  # rank 0's clock decides for all
                elapsed = group.broadcast_values([elapsed])[0]
            if time_budget is not None and elapsed >= time_budget:
                stopped_by, step = "time_budget", step - 1
                break
            cur_lr = _cosine_lr(lr, step, steps, elapsed, time_budget)
            for grp in opt.param_groups:
                grp["lr"] = cur_lr
            losses = _field_losses(models, fields, interp, batches.draw(), antithetic=antithetic)
            _descend(opt, losses, models, averaged, ema=ema, step=step)
            log.add(losses)
            if log_every and (step % log_every == 0 or step == 1):
                say(log.record(step, time.perf_counter() - start, cur_lr))
                ticker.touch()
            elif ticker is not None:
                ticker.update(step)
        wall = time.perf_counter() - start
        final = averaged if averaged is not None else models
        fl = _trained_fields(interp, final, batches)
        return TrainResult(models=final, fields=fl, history=log.history, steps=step, wall_s=wall, stopped_by=stopped_by)


def _check_options(*, steps, time_budget, batch_size, lr, ema) -> None:
    """Reject out-of-range training options of :func:`train_fields` with a ``ValueError``."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    if time_budget is not None and not (time_budget > 0):
        raise ValueError(f"time_budget: expected a positive number of seconds or None, got {time_budget!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if not (lr > 0):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    if ema is not None and not (0.0 < ema < 1.0):
        raise ValueError(f"ema: expected a number in (0, 1) or None, got {ema!r}")


def _new_models(
    fields: tuple, dim: int, *, hidden, depth, activation, dtype, device, generator
) -> dict[str, nn.Module]:
    """One freshly initialised :class:`~bridge.models.MLP` per field, in the order of ``fields``."""
    return {
        f: MLP(dim, hidden=hidden, depth=depth, activation=activation, generator=generator).to(
            dtype=dtype, device=device
        )
        for f in fields
    }


def _descend(opt, losses: dict, models: dict, averaged: dict | None, *, ema: float | None, step: int) -> None:
    """One optimiser step on the sum of the fields' losses (its gradient averaged over the
    processes, :mod:`bridge.distributed`), then the moving average of the weights."""
    opt.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    current().average_gradients(p for grp in opt.param_groups for p in grp["params"])
    opt.step()
    if averaged is not None:
        for f, m in models.items():
            ema_update(averaged[f], m, ema, step)


def _cosine_lr(lr: float, step: int, steps: int, elapsed: float, time_budget: float | None) -> float:
    """Learning rate at ``step``: cosine decay from ``lr`` to ``0.05 lr`` over the step budget, or
    over the time budget when that is further along."""
    frac = step / steps if time_budget is None else max(step / steps, elapsed / time_budget)
    return lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))


@dataclass
class _Batch:
    """One Monte-Carlo batch: endpoints, latent noise, times for b / v / eta and times for s."""

    x0: Tensor
    x1: Tensor
    z: Tensor
    t: Tensor
    t_score: Tensor


@dataclass
class _Batches:
    """Draws the Monte-Carlo batches of :func:`train_fields`, all from one CPU generator."""

    draw0: Callable
    draw1: Callable
    size: int
    t_range: tuple
    score_t_range: tuple
    dtype: torch.dtype
    device: torch.device
    generator: torch.Generator

    def draw(self) -> _Batch:
        n, g, dtype, device = self.size, self.generator, self.dtype, self.device
        xa = self.draw0(n, g).to(device)
        xb = self.draw1(n, g).to(device)
        z = torch.randn(xa.shape, generator=g, dtype=dtype).to(device)
        t = sample_times(n, self.t_range, generator=g, dtype=dtype).to(device)
        t_score = sample_times(n, self.score_t_range, generator=g, dtype=dtype).to(device)
        return _Batch(xa, xb, z, t, t_score)


def _field_losses(models: dict[str, nn.Module], fields: tuple, interp: Interpolant, batch: _Batch, *, antithetic: bool):
    """The batch-mean loss of each field's network, in the order of ``fields`` (antithetic pairs
    for b and s if asked); a dict of scalar tensors."""
    losses = {}
    for f in fields:
        t = batch.t_score if f == "s" else batch.t
        anti = antithetic and f in ("b", "s")
        loss = _LOSSES[f](models[f], interp, batch.x0, batch.x1, t=t, z=batch.z, antithetic=anti, t_range=(0.0, 1.0))
        losses[f] = loss.mean()
    return losses


@dataclass
class _LossLog:
    """Each field's loss averaged over the steps since the last logged one, and the logged records."""

    fields: tuple
    steps: int
    running: dict = field(default_factory=dict)
    n: int = 0
    history: list = field(default_factory=list)

    def add(self, losses: dict) -> None:
        for f in self.fields:
            self.running[f] = self.running.get(f, 0.0) + float(losses[f].detach())
        self.n += 1

    def record(self, step: int, wall_s: float, lr: float) -> str:
        """Append the averages to ``history``, start new ones, and return the progress line."""
        means = {f: self.running[f] / self.n for f in self.fields}
        rec = {"step": step, "wall_s": round(wall_s, 3), "lr": lr}
        rec.update({f"loss_{f}": v for f, v in means.items()})
        self.history.append(rec)
        self.running, self.n = {}, 0
        return (
            f"[train] step {step:>6d}/{self.steps}  "
            + "  ".join(f"L_{f}={v:+.4f}" for f, v in means.items())
            + f"  lr={lr:.2e}  {rec['wall_s']:.1f}s"
        )


def _trained_fields(interp: Interpolant, final: dict[str, nn.Module], batches: _Batches) -> Fields:
    """The trained networks, in eval mode, as :class:`~bridge.fields.Fields`; a one-sided
    interpolant also gets the target mean ``x1_mean`` (from a fresh draw of the target)."""
    for m in final.values():
        m.eval()
    fl = Fields(interp, **final)
    if getattr(interp, "one_sided", False):
        with torch.no_grad():
            n = min(10_000, 4 * batches.size)
            fl.x1_mean = batches.draw1(n, batches.generator).to(batches.device).mean(0)
    return fl
