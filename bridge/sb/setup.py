"""Setting up a solve: the problem's checks and record, the checkpoint to resume from, the
networks and the coupling with its ``"auto"`` choices."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
from torch import Tensor, nn

from ..checkpoint import load_checkpoint
from ..interpolants.base import Interpolant
from ..interpolants.learnable import NeuralInterpolant
from .auto import AutoChoices, kl_share, learning_rates, mixture_covariance, resolve_auto
from .config import SBConfig
from .couplings import Coupling, check_samples, make_coupling, restore_coupling
from .drifts import TwoNetDrift, build_drift
from .interpolant import build_interpolant
from .scale import eps_scale

__all__ = [
    "CheckpointMismatchError",
    "check_problem",
    "couple",
    "drift_nets",
    "eps_scale_record",
    "prepare_interpolant",
    "problem_record",
    "read_checkpoint",
    "spare_drift",
]

#: The settings a resumed run may change (the rest must match the checkpoint's).
RESUMABLE_CHANGES = ("time_budget", "threads", "log_every", "outer_steps", "patience")
#: The settings of the mixture drift family (left out of the problem record of a network-family solve).
MIXTURE_SETTINGS = ("drift_family", "n_components", "mixture_covariance", "kl_share")


class CheckpointMismatchError(ValueError):
    """``resume=True`` found a checkpoint of another problem (data, eps or solver settings)."""


def check_problem(x0, x1, eps) -> float:
    eps_f = float(eps)
    if not (math.isfinite(eps_f) and eps_f > 0):
        raise ValueError(f"eps: expected a finite number > 0, got {eps!r}")
    check_samples(x0, "x0")
    check_samples(x1, "x1")
    if x0.shape[1] != x1.shape[1]:
        raise ValueError(f"x0 has dimension {x0.shape[1]} but x1 has dimension {x1.shape[1]}")
    return eps_f


def problem_record(x0: Tensor, x1: Tensor, eps: float, cfg: SBConfig) -> dict:
    """What a checkpoint must match to be resumed: sizes, eps, the settings as given (the learning
    rates, the mixture's covariance and KL share as resolved, so that checkpoints written before they
    could be ``"auto"`` still match), the data."""
    lr_inner, lr_outer, _ = learning_rates(cfg, x0.shape[1])
    config = {k: v for k, v in cfg.to_dict().items() if k not in RESUMABLE_CHANGES}
    config |= {k: v for k, v in (("lr_inner", lr_inner), ("lr_outer", lr_outer)) if k in config}
    if config["drift_family"] == "network":  # checkpoints written before the mixture family still match
        for k in MIXTURE_SETTINGS:
            del config[k]
    else:  # as resolved: checkpoints written before it could be "auto" still match
        config["mixture_covariance"] = mixture_covariance(cfg, x0.shape[1])[0]
        share = kl_share(cfg, x0.shape[1])[0]
        if share:  # none: as checkpoints written before it existed
            config["kl_share"] = share
        else:
            del config["kl_share"]
    h = hashlib.sha256()
    for x in (x0, x1):
        h.update(str((tuple(x.shape), str(x.dtype))).encode())
        h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return {"d": x0.shape[1], "eps": eps, "n0": x0.shape[0], "n1": x1.shape[0], "config": config} | {
        "data_sha256": h.hexdigest()
    }


def read_checkpoint(ckpt: Path | None, problem: dict):
    """``(tensors, meta)`` of a checkpoint of this problem, or None when there is none."""
    if ckpt is None or not ckpt.is_file():
        return None
    tensors, meta = load_checkpoint(ckpt)
    if meta.get("problem") != problem:
        raise CheckpointMismatchError(
            f"{ckpt}: checkpoint is from another problem (data, eps or config); remove it or set resume=False"
        )
    return tensors, meta


def prepare_interpolant(interpolant, cfg: SBConfig, d: int, eps: float, gen, dtype, device) -> nn.Module:
    if interpolant is None:
        interpolant = build_interpolant(cfg, d, eps, gen)
        if isinstance(interpolant, NeuralInterpolant):
            interpolant.net.to(dtype=dtype)  # N_phi sees the data (the Fourier weights stay float64)
    if not (isinstance(interpolant, nn.Module) and isinstance(interpolant, Interpolant)):
        raise TypeError(f"interpolant: expected a learnable Interpolant (nn.Module), got {type(interpolant).__name__}")
    return interpolant.to(device)


def spare_drift(cfg: SBConfig, d: int, interpolant, eps: float, dtype, device) -> nn.Module:
    """A drift of ``cfg``'s shape that only holds weights (the moving average, the best state)."""
    net = build_drift(cfg, d, eps=eps).to(dtype=dtype, device=device).requires_grad_(False)
    return net.bind(interpolant, eps) if isinstance(net, TwoNetDrift) else net


def drift_nets(cfg: SBConfig, d: int, interpolant, eps: float, dtype, device, gen, x1: Tensor | None = None):
    """``(drift, its moving average or None, the inner optimiser)``, the drift drawn from ``gen``
    (the mixture family's means at rows of the training targets ``x1``)."""
    net = build_drift(cfg, d, gen, x1=x1, eps=eps).to(dtype=dtype, device=device)
    if isinstance(net, TwoNetDrift):
        net.bind(interpolant, eps)
    avg = None
    if cfg.ema is not None:  # the returned drift: a moving average of the drift's weights
        avg = spare_drift(cfg, d, interpolant, eps, dtype, device)
        avg.load_state_dict(net.state_dict())
    return net, avg, torch.optim.Adam(net.parameters(), lr=cfg.lr_inner)


def couple(cfg: SBConfig, x0, x1, eps: float, gen, say, restored) -> tuple[AutoChoices, Coupling, dict]:
    """The ``"auto"`` choices, the coupling and its record; a resumed run's from its checkpoint."""
    if restored is not None:
        info = restored[1]["coupling_info"]
        choices = resolve_auto(cfg, x0, x1, eps, gen, say=say, coupling=info["coupling"])
        tensors = restored[0].get("coupling", {})
        return choices, restore_coupling(choices.coupling, tensors, x0, x1, eps, cfg, gen), info
    choices = resolve_auto(cfg, x0, x1, eps, gen, say=say)
    coupling, info = make_coupling(choices.coupling, x0, x1, eps, cfg, gen, say)
    if cfg.coupling == "auto":
        info = info | {"requested": "auto"} | choices.plan | {"reason": choices.reasons["coupling"]}
    return choices, coupling, info


def eps_scale_record(x0: Tensor, x1: Tensor, eps: float, say) -> dict:
    """Where ``eps`` sits against the training data's scale (:func:`bridge.sb.scale.eps_scale`; no
    random draws), with a warning line when the bridge is (nearly) the independent coupling or the
    OT map there; the record the result keeps in ``coupling["eps_scale"]``."""
    scale = eps_scale(x0, x1, eps)
    if scale.message is not None:
        say(f"[solve] warning: {scale.message}")
    return scale.as_dict()
