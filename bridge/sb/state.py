"""The solver's training state: everything the loop changes, and its checkpoint round trip.

A checkpoint is a pair ``(tensors, meta)`` for :func:`bridge.checkpoint.save_checkpoint`: nested
dicts of tensors (networks, optimisers, random state, the coupling's and the validation's
tensors) and JSON (counters, history, the problem it belongs to). Nothing is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .couplings import Coupling, PairedRows
from .validation import Validation

__all__ = ["STATE_KIND", "TrainState"]

#: ``meta["kind"]`` of a solver checkpoint.
STATE_KIND = "bridge-solve-state"


def _flat_optimizer(opt: torch.optim.Optimizer | None) -> dict[str, Tensor]:
    """An optimizer's state as a flat ``{name: tensor}`` dict (checkpoints hold tensors only)."""
    if opt is None:
        return {}
    out = {}
    for idx, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{idx}.{k}"] = v if isinstance(v, Tensor) else torch.tensor(v)
    return out


def _load_optimizer(opt: torch.optim.Optimizer | None, flat: dict[str, Tensor]) -> None:
    if opt is None:
        return
    sd = opt.state_dict()
    state: dict = {}
    for key, v in flat.items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


@dataclass
class TrainState:
    """The networks, optimisers, coupling and counters of a solve.

    Attributes:
        drift: the inner variable being trained; ``drift_avg``: its moving average (or None).
        interpolant: the outer variable.
        opt_inner, opt_outer: their Adam optimisers (``opt_outer`` None for a fixed interpolant).
        coupling: draws the training pairs (the refinement pool in a refinement round).
        gen: the generator of every training draw.
        step: outer steps taken; ``warm_done``: warm-up steps of the current phase;
            ``n_inner``: inner steps in all (the moving average's warm-up).
        history: the logged records; ``elapsed0``: training seconds of earlier sessions.
        phase: 0 for the max–min, ``k`` in refinement round ``k``; ``phase_start``: the budget
            fraction where it began; ``refine_started``: a record per round.
        validation: the held-out state (None without ``holdout``).
        kl_done, kl_s, kl_finished: the mixture family's start on LightSB's KL objective: its
            steps, the clock when it ended, and whether it has (a checkpoint is only written after).
        stopped_by: ``"steps"``, ``"time_budget"`` or ``"early_stop"``.
    """

    drift: nn.Module
    drift_avg: nn.Module | None
    interpolant: nn.Module
    opt_inner: torch.optim.Optimizer
    opt_outer: torch.optim.Optimizer | None
    coupling: Coupling
    gen: torch.Generator
    step: int = 0
    warm_done: int = 0
    n_inner: int = 0
    history: list = field(default_factory=list)
    elapsed0: float = 0.0
    phase: int = 0
    phase_start: float = 0.0
    refine_started: list = field(default_factory=list)
    validation: Validation | None = None
    kl_done: int = 0
    kl_s: float = 0.0
    kl_finished: bool = False
    stopped_by: str = "steps"

    @property
    def drift_out(self) -> nn.Module:
        """The drift the result returns: the moving average, or the drift itself."""
        return self.drift_avg if self.drift_avg is not None else self.drift

    def to_checkpoint(self, problem: dict, coupling_info: dict, elapsed_s: float) -> tuple[dict, dict]:
        """``(tensors, meta)`` of this state."""
        tensors = {
            "drift": self.drift.state_dict(),
            "interpolant": self.interpolant.state_dict(),
            "opt_inner": _flat_optimizer(self.opt_inner),
            "opt_outer": _flat_optimizer(self.opt_outer),
            "rng": {"generator": self.gen.get_state()},
        }
        if self.phase > 0:
            tensors["refine_pool"] = self.coupling.pool
        elif self.coupling.state():
            tensors["coupling"] = self.coupling.state()
        if self.drift_avg is not None:
            tensors["drift_ema"] = self.drift_avg.state_dict()
        v = self.validation
        if v is not None:
            tensors["validation"] = v.pairs
            if v.best is not None:
                tensors["best_drift"], tensors["best_interpolant"] = v.best
        meta = {
            "kind": STATE_KIND,
            "problem": problem,
            "coupling_info": coupling_info,
            "step": self.step,
            "warmup_done": self.warm_done,
            "inner_done": self.n_inner,
            "history": self.history,
            "elapsed_s": elapsed_s,
            "validation": v.meta() if v is not None else Validation(pairs={}).meta(),
            "refine": {"phase": self.phase, "phase_start": self.phase_start, "started": self.refine_started},
            "kl_start": {"steps": self.kl_done, "s": self.kl_s, "finished": self.kl_finished},
        }
        return tensors, meta

    def load_checkpoint(self, tensors: dict, meta: dict) -> None:
        """Continue from what :meth:`to_checkpoint` wrote (the coupling is restored by the caller)."""
        self.drift.load_state_dict(tensors["drift"])
        self.interpolant.load_state_dict(tensors["interpolant"])
        _load_optimizer(self.opt_inner, tensors["opt_inner"])
        _load_optimizer(self.opt_outer, tensors["opt_outer"])
        self.gen.set_state(tensors["rng"]["generator"])
        if self.drift_avg is not None:
            self.drift_avg.load_state_dict(tensors["drift_ema"])
        self.n_inner, self.step, self.warm_done = int(meta["inner_done"]), int(meta["step"]), int(meta["warmup_done"])
        self.history, self.elapsed0 = list(meta["history"]), float(meta["elapsed_s"])
        kl = meta.get("kl_start") or {"steps": 0, "s": 0.0, "finished": True}  # written before it existed
        self.kl_done, self.kl_s, self.kl_finished = int(kl["steps"]), float(kl["s"]), bool(kl["finished"])
        if self.validation is not None:
            if "best_drift" in tensors:
                self.validation.best = (tensors["best_drift"], tensors["best_interpolant"])
            self.validation.load_meta(meta.get("validation") or {})
        refined = meta.get("refine") or {}
        if refined.get("phase", 0) > 0:
            self.phase, self.phase_start = int(refined["phase"]), float(refined["phase_start"])
            self.refine_started = list(refined["started"])
            self.coupling = PairedRows(tensors["refine_pool"], self.gen)
