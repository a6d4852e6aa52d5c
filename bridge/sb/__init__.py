"""The Schrödinger-bridge max–min solver (SPEC §5)."""

from .result import BridgeResult
from .solver import SBConfig, sb_objective, solve_bridge

__all__ = ["BridgeResult", "SBConfig", "sb_objective", "solve_bridge"]
