"""The samplers' solvers by name (the names ``bridge likelihood --solver`` takes and records).

Example:
    >>> from bridge.samplers.registry import ODE_SOLVERS, SDE_SOLVERS
    >>> ODE_SOLVERS["heun"]().order, sorted(SDE_SOLVERS)
    (2, ['euler-maruyama', 'heun'])
"""

from __future__ import annotations

from types import MappingProxyType

from .ode import RK4, RK45, Euler, Heun
from .sde import EulerMaruyama, StochasticHeun

__all__ = ["ODE_SOLVERS", "SDE_SOLVERS"]

#: ODE solvers by name: ``name -> class`` (``"rk45"`` is adaptive and takes ``rtol``, ``atol``).
ODE_SOLVERS = MappingProxyType({"euler": Euler, "heun": Heun, "rk4": RK4, "rk45": RK45})
#: SDE solvers by name: ``name -> class``.
SDE_SOLVERS = MappingProxyType({"euler-maruyama": EulerMaruyama, "heun": StochasticHeun})
