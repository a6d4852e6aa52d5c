"""The Schrödinger-bridge max–min solver (docs/math.md §5)."""

from .result import BridgeResult, end_grid_sde, sde_times
from .solver import (
    COUPLINGS,
    DRIFT_FORMS,
    INTERPOLANTS,
    CheckpointMismatchError,
    EndpointDrift,
    SBConfig,
    TwoNetDrift,
    build_drift,
    build_interpolant,
    sb_objective,
    solve_bridge,
)

__all__ = [
    "BridgeResult",
    "COUPLINGS",
    "CheckpointMismatchError",
    "DRIFT_FORMS",
    "EndpointDrift",
    "INTERPOLANTS",
    "SBConfig",
    "TwoNetDrift",
    "build_drift",
    "build_interpolant",
    "end_grid_sde",
    "sb_objective",
    "sde_times",
    "solve_bridge",
]
