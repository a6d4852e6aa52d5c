"""What ``bridge solve`` writes into its run directory: ``report.json`` and four figures.

The numbers come from :func:`~bridge.sb.evaluation.evaluate_bridge` (the solved bridge against
POT's entropic plan on held-out samples), the figures from
:func:`~bridge.sb.figures.write_figures`; :func:`jsonable` and :func:`package_versions` make the
JSON record. The names a report needs are importable from here.
"""

from __future__ import annotations

import math
import platform

import torch
from torch import Tensor

from .evaluation import MARGINAL_TIMES, BridgeEvaluation, evaluate_bridge
from .figures import FIGURES, plot_coefficients, plot_coupling, plot_history, plot_marginals, write_figures

__all__ = [
    "BridgeEvaluation",
    "evaluate_bridge",
    "write_figures",
    "package_versions",
    "jsonable",
    "MARGINAL_TIMES",
    "FIGURES",
    "plot_coupling",
    "plot_marginals",
    "plot_coefficients",
    "plot_history",
]


def package_versions() -> dict:
    """Versions of python, bridge, torch, numpy, POT, geomloss and matplotlib (None if absent).

    Example:
        >>> sorted(package_versions())
        ['bridge', 'geomloss', 'matplotlib', 'numpy', 'pot', 'python', 'torch']
    """
    from importlib import metadata

    from .. import __version__

    out = {"python": platform.python_version(), "bridge": __version__, "torch": torch.__version__}
    for key, dist in (("numpy", "numpy"), ("pot", "pot"), ("geomloss", "geomloss"), ("matplotlib", "matplotlib")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def jsonable(obj):
    """Nested dicts/lists/tensors/floats as strict JSON values (NaN and Inf become None).

    Example:
        >>> jsonable({"w2": torch.tensor(0.5), "kl": float("nan"), 1: (torch.tensor([1.0, 2.0]),)})
        {'w2': 0.5, 'kl': None, '1': [[1.0, 2.0]]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    try:
        v = float(obj)
    except (TypeError, ValueError):
        return str(obj)
    return v if math.isfinite(v) else None
