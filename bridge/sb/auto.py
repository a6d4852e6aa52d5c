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
* The mixture family (docs/math.md §5.11) resolves all of these without looking at the data: the
  independent coupling (bridge matching restricted to SB drifts recovers the SB from any
  coupling, and this one needs no plan), no refinement round, and its own learning rates
  (:data:`LEARNING_RATES`: a fixed interpolant, ``lr_outer = 0``, and a faster drift rate for its
  few, well-scaled parameters); benchmarks/README.md measures each against the alternative.
* ``lr_inner``, ``lr_outer``: the drift family's rates, :data:`LEARNING_RATES`; the mixture
  family's drift after a KL start, :data:`LR_AFTER_KL_START`.
* ``mixture_covariance`` (the mixture family): full :math:`S_k` up to dimension
  :data:`FULL_COVARIANCE_MAX_DIM`, diagonal above. A Gaussian target rotated against the axes is
  one full component but needs many diagonal ones, and the held-out test of ``drift_family="auto"``
  sees the marginal, not the coupling (benchmarks/README.md §23: gauss10's cross-covariance error
  5.1% diagonal, 2.9% full); full :math:`S_k` cost :math:`O(d^3)` per component and step, 6x the
  diagonal ones' time at d = 5 and 24x at d = 16.
* ``kl_share`` (the mixture family): :data:`KL_SHARE` of the training on LightSB's KL objective
  before bridge matching from dimension :data:`KL_START_MIN_DIM` on, none below. There
  matching's noisy gradients converge too slowly from LightSB's start for a time budget; the KL
  fit is a start in the right basin, and matching then moves to its own minimiser, which is the
  better estimator (benchmarks/README.md §24).

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

__all__ = [
    "AUTO_MIN_ROW_ESS",
    "FULL_COVARIANCE_MAX_DIM",
    "KL_SHARE",
    "KL_START_MIN_DIM",
    "LR_AFTER_KL_START",
    "LEARNING_RATES",
    "AutoChoices",
    "kl_share",
    "learning_rates",
    "mixture_covariance",
    "resolve_auto",
]

#: ``coupling="auto"`` keeps entropic plans only if a first plan's rows spread over at least this
#: many target points (median row effective sample size).
AUTO_MIN_ROW_ESS = 10.0
#: ``lr_inner="auto"``, ``lr_outer="auto"``: ``(lr_inner, lr_outer)`` per drift family. The mixture
#: family keeps the Brownian-bridge interpolant (``lr_outer = 0``, docs/math.md §5.11).
LEARNING_RATES = {"network": (2e-3, 1e-3), "mixture": (1e-2, 0.0)}
#: ``mixture_covariance="auto"``: full ``S_k`` up to this dimension, diagonal above.
FULL_COVARIANCE_MAX_DIM = 10
#: ``kl_share="auto"``: the mixture family's share of the training on LightSB's KL objective ...
KL_SHARE = 1.0 / 3.0
#: ... from this dimension on (none below).
KL_START_MIN_DIM = 32
#: ``lr_inner="auto"`` of the mixture family after a KL start: matching refines a fit that is
#: already close, and a smaller rate keeps its gradient noise from undoing it.
LR_AFTER_KL_START = 3e-3


@dataclass(frozen=True)
class AutoChoices:
    """What the ``"auto"`` settings resolved to, and why.

    Attributes:
        coupling: ``"independent"``, ``"paired"``, ``"minibatch"`` or ``"sinkhorn"``.
        gradient_drift: whether the drift networks are gradients of scalar networks.
        refine_rounds: rounds of coupling refinement after the max–min.
        lr_inner, lr_outer: the learning rates.
        reasons: ``{setting: reason}`` for each setting that was ``"auto"``.
        plan: the first plan's record (``plan_size``, ``plan_row_ess_median``, ``plan_wall_s``)
            when ``coupling="auto"`` looked at one; empty otherwise.
        mixture_covariance: the mixture family's ``S_k`` (None for the network family: left as given).
        kl_share: the mixture family's share of the training on LightSB's KL objective (None for
            the network family: left as given, and ignored).
    """

    coupling: str
    gradient_drift: bool
    refine_rounds: int
    lr_inner: float
    lr_outer: float
    reasons: dict = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    mixture_covariance: str | None = None
    kl_share: float | None = None

    def apply(self, cfg: SBConfig) -> SBConfig:
        """``cfg`` with every setting as chosen (no ``"auto"`` left)."""
        return replace(
            cfg,
            coupling=self.coupling,
            gradient_drift=self.gradient_drift,
            refine_rounds=self.refine_rounds,
            lr_inner=self.lr_inner,
            lr_outer=self.lr_outer,
            mixture_covariance=self.mixture_covariance or cfg.mixture_covariance,
            kl_share=cfg.kl_share if self.kl_share is None else self.kl_share,
        )


def learning_rates(cfg: SBConfig, d: int | None = None) -> tuple[float, float, dict]:
    """``(lr_inner, lr_outer, reasons)``: the rates as given, each ``"auto"`` one the drift family's;
    for the mixture family in dimension ``d`` after a KL start (:func:`kl_share`), the drift's
    rate :data:`LR_AFTER_KL_START`.

    Example:
        >>> learning_rates(SBConfig(drift_family="mixture", lr_inner=0.003))
        (0.003, 0.0, {'lr_outer': '0 for the mixture family'})
        >>> learning_rates(SBConfig(drift_family="mixture"), 64)[0]
        0.003
    """
    if cfg.drift_family not in LEARNING_RATES:
        raise ValueError(f"drift_family: {cfg.drift_family!r} is decided by solve_bridge (bridge.sb.family) first")
    family = LEARNING_RATES[cfg.drift_family]
    after_kl = cfg.drift_family == "mixture" and d is not None and kl_share(cfg, d)[0] > 0
    rates, reasons = [], {}
    for name, default in zip(("lr_inner", "lr_outer"), family):
        value = getattr(cfg, name)
        if value == "auto" and name == "lr_inner" and after_kl:
            value = LR_AFTER_KL_START
            reasons[name] = f"{value:g} for the mixture family after its KL start"
        elif value == "auto":
            value = default
            reasons[name] = f"{default:g} for the {cfg.drift_family} family"
        rates.append(float(value))
    return rates[0], rates[1], reasons


def mixture_covariance(cfg: SBConfig, d: int) -> tuple[str, str | None]:
    """``(covariance, reason)``: the mixture family's ``S_k`` as given (reason None), or what
    ``"auto"`` chooses in dimension ``d``.

    Example:
        >>> mixture_covariance(SBConfig(), 5)[0], mixture_covariance(SBConfig(), 16)[0]
        ('full', 'diagonal')
    """
    if cfg.mixture_covariance != "auto":
        return cfg.mixture_covariance, None
    if d <= FULL_COVARIANCE_MAX_DIM:
        return "full", f"full in dimension {d} <= {FULL_COVARIANCE_MAX_DIM}"
    return "diagonal", f"diagonal in dimension {d} > {FULL_COVARIANCE_MAX_DIM} (full S_k cost O(d^3) per step)"


def kl_share(cfg: SBConfig, d: int) -> tuple[float, str | None]:
    """``(share, reason)``: the mixture family's share of the training on LightSB's KL objective
    as given (reason None), or what ``"auto"`` chooses in dimension ``d``.

    Example:
        >>> kl_share(SBConfig(), 16)[0], round(kl_share(SBConfig(), 64)[0], 3)
        (0.0, 0.333)
    """
    if cfg.kl_share != "auto":
        return float(cfg.kl_share), None
    if d >= KL_START_MIN_DIM:
        return (
            KL_SHARE,
            f"{KL_SHARE:.3g} in dimension {d} >= {KL_START_MIN_DIM} (LightSB's KL objective, then matching)",
        )
    return 0.0, f"0 in dimension {d} < {KL_START_MIN_DIM} (bridge matching from LightSB's start)"


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
    """Resolve ``cfg``'s ``"auto"`` settings on the training samples, for its drift family
    (``"network"`` or ``"mixture"``: :func:`~bridge.sb.solve_bridge` decides ``"auto"`` first).

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
        >>> c = resolve_auto(SBConfig(drift_family="network", plan_size=32), x, x + 1, 1.0, g)
        >>> c.coupling, c.gradient_drift, c.refine_rounds
        ('minibatch', False, 0)
    """
    lr_inner, lr_outer, reasons = learning_rates(cfg, x0.shape[1])
    plan: dict = {}
    mixture = cfg.drift_family == "mixture"
    if coupling is None:
        coupling = cfg.coupling
        if coupling == "auto" and mixture:
            coupling = "independent"
            reasons["coupling"] = "independent for the mixture family (SB-drift matching needs no plan)"
        elif coupling == "auto":
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
    if rounds == "auto" and mixture:
        rounds = 0
        reasons["refine_rounds"] = "0 for the mixture family (its drift is already an SB's)"
    elif rounds == "auto":
        rounds = 1 if coupling == "independent" else 0
        reasons["refine_rounds"] = f"{rounds} with the {coupling} coupling"
    covariance = share = None
    if mixture:
        covariance, why = mixture_covariance(cfg, x0.shape[1])
        if why is not None:
            reasons["mixture_covariance"] = why
        share, why = kl_share(cfg, x0.shape[1])
        if why is not None:
            reasons["kl_share"] = why
    return AutoChoices(coupling, bool(gradient), int(rounds), lr_inner, lr_outer, reasons, plan, covariance, share)


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
