"""The Schrödinger-bridge max–min solver (docs/math.md §5), as small parts:

* :mod:`~bridge.sb.config`: :class:`SBConfig`, checked when built, and the name registries;
* :mod:`~bridge.sb.auto`: every ``"auto"`` setting resolved in one place, with its reason;
* :mod:`~bridge.sb.couplings`: how training pairs are drawn;
* :mod:`~bridge.sb.drifts`, :mod:`~bridge.sb.interpolant`: the inner and outer variables;
* :mod:`~bridge.sb.objective`: the max–min objective and the inner losses;
* :mod:`~bridge.sb.state`, :mod:`~bridge.sb.validation`, :mod:`~bridge.sb.refine`: the training
  state and its checkpoint, early stopping, coupling refinement;
* :mod:`~bridge.sb.solver`: :func:`solve_bridge`, the loop;
* :mod:`~bridge.sb.result`, :mod:`~bridge.sb.sde`: the learned bridge and its SDE;
* :mod:`~bridge.sb.potential`, :mod:`~bridge.sb.lightsb`: the Gaussian-mixture potential family
  with its closed-form drift and exact conditional, and LightSB's fit of it;
* :mod:`~bridge.sb.corrected`, :mod:`~bridge.sb.corrected_fit`: that mixture times a learned factor
  :math:`e^{f}`, sampled by importance resampling, and its fit by the same KL objective.
"""

from .auto import AutoChoices, resolve_auto
from .config import COUPLINGS, DRIFT_FAMILIES, DRIFT_FORMS, INTERPOLANTS, MIXTURE_COVARIANCES, SBConfig
from .corrected import CorrectedPotential, Correction, ImportanceDraws
from .corrected_fit import CorrectedResult, corrected_loss, fit_corrected
from .drifts import EndpointDrift, TwoNetDrift, build_drift
from .interpolant import build_interpolant
from .lightsb import LightSBResult, fit_lightsb, lightsb_loss
from .objective import sb_objective
from .potential import MixtureConditional, MixturePotential
from .result import BridgeResult
from .sde import end_grid_sde, forward_sde, sde_times
from .solver import CheckpointMismatchError, solve_bridge

__all__ = [
    "AutoChoices",
    "BridgeResult",
    "COUPLINGS",
    "CheckpointMismatchError",
    "CorrectedPotential",
    "CorrectedResult",
    "Correction",
    "DRIFT_FAMILIES",
    "DRIFT_FORMS",
    "EndpointDrift",
    "INTERPOLANTS",
    "ImportanceDraws",
    "LightSBResult",
    "MIXTURE_COVARIANCES",
    "MixtureConditional",
    "MixturePotential",
    "SBConfig",
    "TwoNetDrift",
    "build_drift",
    "build_interpolant",
    "corrected_loss",
    "end_grid_sde",
    "fit_corrected",
    "fit_lightsb",
    "forward_sde",
    "lightsb_loss",
    "resolve_auto",
    "sb_objective",
    "sde_times",
    "solve_bridge",
]
