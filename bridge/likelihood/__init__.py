r"""Likelihood of ODE and SDE models (docs/math.md §4).

* :func:`divergence` with :class:`Exact` or :class:`Hutchinson`: :math:`\nabla\cdot f` per point,
  with a standard error.
* :func:`ode_log_density` / :func:`ode_sample_log_density`: the ODE model's
  :math:`\log\hat\rho(1, x)` at data points (backward) or at generated samples (forward),
  SI 2.52-2.53.
* :func:`feynman_kac_log_density` (with the Jensen bound, SI 2.65-2.67) and
  :func:`backward_ito_log_density`: the SDE model's log-density.
* :func:`kl_bound_report` with :func:`excess_loss`: both sides of SI Thm 2.4 and eps* (SI 2.49).

Every estimate is per point with a Monte-Carlo standard error; the NLL is ``-log_density``.

Example:
    >>> import torch
    >>> from bridge.interpolants import Linear
    >>> from bridge.reference import InterpolantOracle, gaussian, standard_normal
    >>> from bridge.samplers import RK4
    >>> oracle = InterpolantOracle(Linear(), standard_normal(2), gaussian([1.0, 0.0], 0.5))
    >>> x1 = torch.zeros(3, 2, dtype=torch.float64)
    >>> r = ode_log_density(oracle.fields().drift, x1, log_rho0=standard_normal(2).log_prob, solver=RK4(), steps=20)
    >>> torch.allclose(r.log_density, oracle.rho1.log_prob(x1), atol=1e-6)
    True
"""

from .divergence import DEFAULT_MAX_ROWS, DivergenceResult, Exact, Hutchinson, divergence
from .kl import ExcessLoss, KLBoundReport, excess_loss, kl_bound_report, training_loss
from .ode import ODELogDensity, ode_log_density, ode_sample_log_density
from .sde import BackwardItoLogDensity, FeynmanKacLogDensity, backward_ito_log_density, feynman_kac_log_density

__all__ = [
    "divergence",
    "Exact",
    "Hutchinson",
    "DivergenceResult",
    "DEFAULT_MAX_ROWS",
    "ode_log_density",
    "ode_sample_log_density",
    "ODELogDensity",
    "feynman_kac_log_density",
    "backward_ito_log_density",
    "FeynmanKacLogDensity",
    "BackwardItoLogDensity",
    "excess_loss",
    "training_loss",
    "ExcessLoss",
    "kl_bound_report",
    "KLBoundReport",
]
