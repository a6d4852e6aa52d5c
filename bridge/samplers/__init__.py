"""ODE and SDE samplers for the generative processes of docs/math.md §3; each solver declares its order."""

from .ode import RK4, RK45, Euler, Heun, ODEResult, sample_ode
from .registry import ODE_SOLVERS, SDE_SOLVERS
from .sde import EulerMaruyama, SDEResult, StochasticHeun, sample_sde

__all__ = [
    "Euler",
    "Heun",
    "RK4",
    "RK45",
    "ODEResult",
    "sample_ode",
    "EulerMaruyama",
    "StochasticHeun",
    "SDEResult",
    "sample_sde",
    "ODE_SOLVERS",
    "SDE_SOLVERS",
]
