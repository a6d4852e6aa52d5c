"""The run directory of ``bridge fit``, read back: its checkpoint rebuilt into :class:`~bridge.fields.Fields`.

A fit run stores tensors and JSON only (:func:`~bridge.checkpoint.save_checkpoint`): the
weights of each learned field's :class:`~bridge.models.MLP` and metadata naming the interpolant
by its registry names (:func:`~bridge.interpolants.make_interpolant`), the networks'
configurations and the training record. Nothing is unpickled when it is read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint
from .fields import Fields
from .interpolants import make_interpolant
from .models import MLP

__all__ = ["FIT_RUN_KIND", "FIT_CHECKPOINT", "load_fit_run"]

#: ``meta["kind"]`` of a fit run's checkpoint.
FIT_RUN_KIND = "fit"
#: The checkpoint's file name inside the run directory.
FIT_CHECKPOINT = "checkpoint.pt"


def load_fit_run(run_dir, *, map_location="cpu") -> tuple[Fields, dict]:
    """Rebuild the :class:`~bridge.fields.Fields` of a ``bridge fit`` run from its checkpoint.

    Only tensors and JSON are read (``torch.load(weights_only=True)``); the interpolant is
    rebuilt from its registry names.

    Args:
        run_dir: the run directory (it holds ``checkpoint.pt``).
        map_location: device the networks are loaded onto.

    Returns:
        ``(fields, meta)``: the fields (networks in eval mode) and the run's metadata.

    Raises:
        FileNotFoundError: ``run_dir`` is not a directory.
        CheckpointError: no loadable checkpoint, not a fit run, or weights that do not match the
            recorded network configuration.

    Example:
        >>> # fields, meta = load_fit_run("runs/default"); fields.drift(t, x)
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run_dir: {run} is not a directory")
    state, meta = load_checkpoint(run / FIT_CHECKPOINT, map_location=map_location)
    if meta.get("kind") != FIT_RUN_KIND:
        raise CheckpointError(f"{run}: not a `bridge fit` run (kind={meta.get('kind')!r})")
    try:
        spec = meta["interpolant"]
        interp = make_interpolant(spec["name"], spec["gamma"], spec["gamma_scale"])
        configs = {f: dict(meta["model"][f]) for f in meta["fields"]}
    except KeyError as exc:
        raise CheckpointError(f"{run}: the run's metadata has no entry {exc}") from None
    nets = {f: _load_net(run, f, cfg, state, map_location) for f, cfg in configs.items()}
    x1_mean = torch.tensor(meta["x1_mean"]) if meta.get("x1_mean") is not None else None
    return Fields(interp, x1_mean=x1_mean, **nets), meta


def _load_net(run: Path, field: str, cfg: dict, state: dict, map_location) -> MLP:
    """The network of ``field`` built from its recorded configuration, with its weights."""
    out_dim = cfg.pop("out_dim")
    net = MLP(cfg.pop("dim"), out_dim=out_dim, **cfg)
    try:
        net.load_state_dict(state[field])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{run}: weights of field {field!r} do not match its configuration") from exc
    return net.to(map_location).eval()
