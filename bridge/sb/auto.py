"""Every ``"auto"`` setting of :class:`~bridge.sb.SBConfig`, decided in one place, with its reason.

* ``coupling``: the median row effective sample size (ESS) ``1 / sum_j pi(y_j | x_i)^2`` of a
  first entropic plan between ``plan_size`` points of each side decides. Rows that spread over at
  least :data:`AUTO_MIN_ROW_ESS` target points resolve the conditional law, and fresh minibatch
  plans are drawn (``"minibatch"``). Rows on (nearly) single points make a plan a finite-sample
  matching rather than draws from the bridge's plan: the independent coupling, the paper's
  max–min (``"independent"``).
* ``gradient_drift``: on with the independent coupling, where the linear interpolant between
  independent pairs carries "stirring" that a gradient drift removes; off with plans, whose path
  starts at their bridge (docs/math.md §5).
  The mixture family (``drift_family="mixture"``) resolves it to False: its drift is already a
  gradient.
* ``refine_rounds``: one round of coupling refinement with the independent coupling, none with
  plans.

The choices, not ``"auto"``, are what :class:`~bridge.sb.BridgeResult`, ``bridge.pt`` and
``report.json`` record (:meth:`AutoChoices.apply`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from ..progress import Progress
from .config import SBConfig
from .couplings import PLAN_SWEEPS, first_plan

__all__ = ["AUTO_MIN_ROW_ESS", "AutoChoices", "resolve_auto"]

#: ``coupling="auto"`` keeps entropic plans only if a first plan's rows spread over at least this
#: many target points (median row effective sample size).
AUTO_MIN_ROW_ESS = 10.0


@dataclass(frozen=True)
class AutoChoices:
    """What the ``"auto"`` settings resolved to, and why.

    Attributes:
        coupling: ``"independent"``, ``"paired"``, ``"minibatch"`` or ``"sinkhorn"``.
        gradient_drift: whether the drift networks are gradients of scalar networks.
        refine_rounds: rounds of coupling refinement after the max–min.
        reasons: ``{setting: reason}`` for each setting that was ``"auto"``.
        plan: the first plan's record (``plan_size``, ``plan_row_ess_median``, ``plan_wall_s``)
            when ``coupling="auto"`` looked at one; empty otherwise.
    """

    coupling: str
    gradient_drift: bool
    refine_rounds: int
    reasons: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)

    def apply(self, cfg: SBConfig) -> SBConfig:
        """``cfg`` with every setting as chosen (no ``"auto"`` left)."""
        return replace(
            cfg, coupling=self.coupling, gradient_drift=self.gradient_drift, refine_rounds=self.refine_rounds
        )


def resolve_auto(
    cfg: SBConfig,
    x0: Tensor,
    x1: Tensor,
    eps: float,
    generator: torch.Generator,
    *,
    say=lambda m: None,
    coupling: str | None = None,
) -> AutoChoices:
    """Resolve ``cfg``'s ``"auto"`` settings on the training samples.

    Args:
        cfg: the settings as given.
        x0, x1: the training samples.
        eps: the bridge's eps.
        generator: draws the first plan's subsets (the draws the Sinkhorn coupling would make).
        say: where the decision is announced.
        coupling: the coupling already chosen (a resumed run's), which is then not decided again.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(64, 2, generator=g)
        >>> c = resolve_auto(SBConfig(plan_size=32), x, x + 1, 1.0, g)
        >>> c.coupling, c.gradient_drift, c.refine_rounds
        ('minibatch', False, 0)
    """
    reasons: dict[str, str] = {}
    plan: dict = {}
    if coupling is None:
        coupling = cfg.coupling
        if coupling == "auto":
            coupling, reasons["coupling"], plan = _auto_coupling(cfg, x0, x1, eps, generator, say)
    gradient = cfg.gradient_drift
    if gradient == "auto" and cfg.drift_family == "mixture":
        gradient = False
        reasons["gradient_drift"] = "off: the mixture family's drift is a gradient by construction"
    elif gradient == "auto":
        gradient = coupling == "independent"
        reasons["gradient_drift"] = f"{'on' if gradient else 'off'} with the {coupling} coupling"
        if gradient:
            say("[solve] independent coupling: the drift is learned as a gradient field (gradient_drift='auto')")
    rounds = cfg.refine_rounds
    if rounds == "auto":
        rounds = 1 if coupling == "independent" else 0
        reasons["refine_rounds"] = f"{rounds} with the {coupling} coupling"
    return AutoChoices(coupling, bool(gradient), int(rounds), reasons, plan)


def _auto_coupling(cfg: SBConfig, x0: Tensor, x1: Tensor, eps: float, gen: torch.Generator, say):
    """``(choice, reason, record)`` from the first plan's median row ESS."""
    from ..ot import ConvergenceError

    say(f"[solve] coupling 'auto': an entropic plan between up to {cfg.plan_size} points per side decides")
    t0 = time.perf_counter()
    ticker = Progress(PLAN_SWEEPS, "solve", say, unit="Sinkhorn sweeps (at most) of the first plan")
    try:
        first, wall_s = first_plan(x0, x1, eps, cfg, gen, progress=lambda it, total: ticker.update(it))
    except ConvergenceError as exc:  # no plan to judge by: the coupling that needs none
        what = str(exc).split(";")[0]  # the measurement, without the advice to change settings
        reason = f"the first Sinkhorn plan did not converge at eps = {eps:g} ({what})"
        say(f"[solve] {reason}; using the independent coupling (the paper's max-min), which needs no plan")
        return (
            "independent",
            reason,
            {"plan_size": [cfg.plan_size] * 2, "plan_wall_s": round(time.perf_counter() - t0, 3)},
        )
    ess, (k0, k1) = first.row_ess, (first.a.shape[0], first.b.shape[0])
    head = f"[solve] Sinkhorn plan on {k0} x {k1} points at eps = {eps:g}:"
    if ess < AUTO_MIN_ROW_ESS:
        choice = "independent"
        reason = f"median row effective sample size {ess:.3g} of a Sinkhorn plan < {AUTO_MIN_ROW_ESS}"
        say(
            f"{head} a row's mass sits on {ess:.1f} target points (median effective sample size < "
            f"{AUTO_MIN_ROW_ESS}), too few to resolve the conditional law; using the independent coupling "
            "(the paper's max-min) instead"
        )
    else:
        choice = "minibatch"
        reason = f"median row effective sample size {ess:.3g} of a Sinkhorn plan >= {AUTO_MIN_ROW_ESS}"
        say(
            f"{head} a row's mass spreads over {ess:.1f} target points; using fresh minibatch plans of "
            f"{cfg.batch_size} x {cfg.batch_size} points"
        )
    record = {"plan_size": [k0, k1], "plan_row_ess_median": ess, "plan_wall_s": round(wall_s, 3)}
    return choice, reason, record
