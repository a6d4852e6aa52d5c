"""The Schrödinger-bridge max–min solver (SPEC §5)."""

from .result import BridgeResult, end_grid_sde, sde_times
from .solver import SBConfig, sb_objective, solve_bridge

__all__ = ["BridgeResult", "SBConfig", "end_grid_sde", "sb_objective", "sde_times", "solve_bridge"]
