"""The result of :func:`~bridge.sb.solver.solve_bridge`: the learned coupling, drift and interpolant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from ..interpolants.base import Interpolant

__all__ = ["BridgeResult"]


@dataclass
class BridgeResult:
    """A solved Schrödinger bridge (SPEC §5).

    Attributes:
        drift_net: the learned SB drift ``u(t, x)`` (``dX = u dt + sqrt(2 eps) dW``).
        interpolant: the learned interpolant (outer variable).
        eps: the paper's eps.
        history: per logged outer step: objective, kinetic-energy estimate, inner gap, wall time.
        steps, wall_s, stopped_by: outer steps taken, training wall time, "steps" or "time_budget".
        config: the :class:`~bridge.sb.solver.SBConfig` used.
    """

    drift_net: nn.Module
    interpolant: Interpolant
    eps: float
    history: list = field(default_factory=list)
    steps: int = 0
    wall_s: float = 0.0
    stopped_by: str = "steps"
    config: object = None
    coupling: dict = field(default_factory=dict)

    def drift(self, t: Tensor, x: Tensor) -> Tensor:
        """The SB drift ``u(t, x)``."""
        return self.drift_net(t, x)

    def sample(
        self,
        x0: Tensor,
        *,
        per_point: int = 1,
        steps: int = 500,
        generator: torch.Generator | None = None,
        trajectory: bool = False,
    ):
        """The learned coupling: ``per_point`` forward-SDE samples of ``x1`` for each row of ``x0``.

        Integrates ``dX = u dt + sqrt(2 eps) dW`` from ``t = 0`` to 1 with Heun's method.

        Returns:
            ``(n, per_point, d)`` tensor (and the trajectory ``(steps+1, n, per_point, d)`` when
            ``trajectory``).
        """
        from ..samplers import StochasticHeun, sample_sde

        if not isinstance(per_point, int) or per_point < 1:
            raise ValueError(f"per_point: expected a positive int, got {per_point!r}")
        n, d = x0.shape
        x = x0.repeat_interleave(per_point, dim=0)
        with torch.no_grad():
            res = sample_sde(
                self.drift,
                x,
                eps=self.eps,
                steps=steps,
                solver=StochasticHeun(),
                generator=generator,
                trajectory=trajectory,
            )
        out = res.x.reshape(n, per_point, d)
        if trajectory:
            return out, res.trajectory.reshape(-1, n, per_point, d)
        return out

    def coefficient_curves(self, t: Tensor) -> dict[str, Tensor]:
        """alpha, beta, gamma of the learned interpolant on the times ``t`` (spatially linear ones)."""
        it = self.interpolant
        with torch.no_grad():
            out = {"t": t, "gamma": it.gamma(t)}
            if hasattr(it, "alpha"):
                out.update(alpha=it.alpha(t), beta=it.beta(t))
        return out

    def config_dict(self) -> dict:
        return asdict(self.config) if self.config is not None else {}
