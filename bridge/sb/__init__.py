"""The Schrödinger-bridge max–min solver (SPEC §5)."""

from .result import BridgeResult, sde_times
from .solver import SBConfig, sb_objective, solve_bridge

__all__ = ["BridgeResult", "SBConfig", "sb_objective", "sde_times", "solve_bridge"]
