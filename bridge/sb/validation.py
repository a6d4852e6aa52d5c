"""Validation on held-out samples and early stopping (``SBConfig.holdout``, docs/tuning.md).

A random ``holdout`` share of each side is held out. Its points get pairs from the training's
coupling, drawn once with their times and noise. Every ``val_every`` outer steps the inner loss of
the returned drift on them is compared with that of the best state so far, both under the current
interpolant ``I``: the inner loss is ``1/2 E|u - u*_I|^2`` plus a term of ``I`` alone, so the
comparison ranks drifts by their distance to the held-out conditional drift ``u*_I``, and a drift
that fits the training points' atoms loses it. Losses of different steps are not comparable (the
outer loop raises the term of ``I``). The result is the last state unless the best state beats it
by more than :data:`VAL_NOISE_Z` standard errors of the difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from ..losses import sample_times
from .config import SBConfig
from .couplings import make_coupling

__all__ = ["VAL_NOISE_Z", "VAL_SEED_OFFSET", "Validation", "split_holdout", "validation_pairs"]

#: The held-out split and the validation set come from their own generator, seeded with
#: ``seed + VAL_SEED_OFFSET``, so that they never shift the training draws.
VAL_SEED_OFFSET = 7919
#: The last state is returned unless the best state's held-out loss is lower by more than this many
#: standard errors of their difference.
VAL_NOISE_Z = 2.0


def split_holdout(x0: Tensor, x1: Tensor, cfg: SBConfig, gen: torch.Generator):
    """``(x0_train, x1_train, held_out)``: a random ``cfg.holdout`` share of each side held out
    (``held_out = (x0_val, x1_val)``, or None when ``holdout == 0``). ``"paired"`` data keep
    their rows together."""
    if cfg.holdout == 0:
        return x0, x1, None
    n0, n1 = x0.shape[0], x1.shape[0]
    m0, m1 = round(cfg.holdout * n0), round(cfg.holdout * n1)
    if min(m0, m1, n0 - m0, n1 - m1) < 2:
        raise ValueError(
            f"holdout: {cfg.holdout:g} of {n0} and {n1} samples leaves fewer than 2 points to train or to "
            "validate on; change holdout or give more samples"
        )
    p0 = torch.randperm(n0, generator=gen).to(x0.device)
    p1 = p0 if cfg.coupling == "paired" and n0 == n1 else torch.randperm(n1, generator=gen).to(x1.device)
    return x0[p0[m0:]], x1[p1[m1:]], (x0[p0[:m0]], x1[p1[:m1]])


def validation_pairs(held_out, eps: float, coupling: str, cfg: SBConfig, gen: torch.Generator, dtype, device):
    """``cfg.val_size`` pairs of the held-out points from the coupling ``coupling``, with their
    times and noise: ``{"x0", "x1", "t", "z"}``, drawn once."""
    v0, v1 = held_out
    n = min(cfg.batch_size, v0.shape[0], v1.shape[0])  # minibatch plans: as large as the held-out data allow
    vcfg = replace(cfg, coupling=coupling, time_budget=None, batch_size=n)
    draw, _ = make_coupling(coupling, v0, v1, eps, vcfg, gen, lambda m: None)
    xa, xb, left = [], [], cfg.val_size
    while left > 0:
        a, b = draw(min(n, left))
        xa.append(a)
        xb.append(b)
        left -= a.shape[0]
    a, b = torch.cat(xa), torch.cat(xb)
    t = sample_times(a.shape[0], (cfg.t_min, 1.0 - cfg.t_min), generator=gen, dtype=dtype).to(device)
    z = torch.randn(a.shape, generator=gen, dtype=dtype).to(device)
    return {"x0": a, "x1": b, "t": t, "z": z}


def _clone_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@dataclass
class Validation:
    """The validation set, the best state so far and the curve.

    Attributes:
        pairs: the validation set ``{"x0", "x1", "t", "z"}`` (:func:`validation_pairs`).
        best: the best state's ``(drift weights, interpolant weights)``.
        best_step, best_loss: its outer step and held-out loss.
        since_best: validations since the last new best.
        curve: one record per validation.
    """

    pairs: dict
    best: tuple | None = None
    best_step: int | None = None
    best_loss: float | None = None
    since_best: int = 0
    curve: list = field(default_factory=list)

    def reset(self, pairs: dict) -> None:
        """A new validation set (a refinement round's); the best state is forgotten."""
        self.pairs, self.best, self.best_step, self.best_loss, self.since_best = pairs, None, None, None, 0

    def evaluate(self, drift, interpolant, loss, spare, step: int, wall_s: float) -> dict:
        """Compare ``drift`` with the best state so far under the current ``interpolant``;
        ``loss(net, s)`` is the inner loss per sample and ``spare()`` a drift that can hold the
        best state's weights. The better one becomes (or stays) the best. Returns the record."""
        vs = self.pairs
        with torch.no_grad():
            s = interpolant.sample(vs["t"], vs["x0"], vs["x1"], vs["z"])
            per = loss(drift, s)
            value, held, se = float(per.mean()), None, None
            if self.best is not None:
                other = spare()
                other.load_state_dict(self.best[0])
                diff = per - loss(other, s)
                held, se = value - float(diff.mean()), float(diff.std() / math.sqrt(diff.numel()))
        rec = {"step": step, "val_loss": value, "best_val_loss": held, "diff_se": se, "wall_s": round(wall_s, 3)}
        self.curve.append(rec)
        if math.isfinite(value) and (held is None or not math.isfinite(held) or value < held):
            self.best = (_clone_state(drift), _clone_state(interpolant))
            self.best_step, self.best_loss, self.since_best = step, value, 0
        else:
            self.since_best += 1
        return rec

    def returned_step(self, step: int) -> int:
        """The last state (``step``), trained longest at the lowest learning rate, unless the best
        one is better by more than the comparison's noise."""
        last = self.curve[-1]
        if self.best_step != step and not last["val_loss"] - last["best_val_loss"] <= VAL_NOISE_Z * last["diff_se"]:
            return self.best_step
        return step

    def meta(self) -> dict:
        """The JSON part of a checkpoint (the tensors are ``pairs`` and ``best``)."""
        return {
            "best_step": self.best_step,
            "best_loss": self.best_loss,
            "since_best": self.since_best,
            "curve": self.curve,
        }

    def load_meta(self, meta: dict) -> None:
        for key in ("best_step", "best_loss", "since_best", "curve"):
            if key in meta:
                setattr(self, key, meta[key])
