"""The settings of :func:`~bridge.sb.solve_bridge`, checked when they are built.

Why each setting matters and when to change it: ``docs/tuning.md``; the mathematics of the
couplings, drift forms and refinement: ``docs/math.md`` §5; measurements: ``benchmarks/README.md``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..threads import DEFAULT_THREADS
from .potential import COVARIANCES

__all__ = ["COUPLINGS", "DRIFT_FAMILIES", "DRIFT_FORMS", "INTERPOLANTS", "MIXTURE_COVARIANCES", "SBConfig"]

#: How training pairs ``(x0, x1)`` are drawn (:mod:`bridge.sb.couplings`); ``"auto"`` is resolved
#: by :func:`bridge.sb.auto.resolve_auto`.
COUPLINGS = ("auto", "minibatch", "sinkhorn", "independent", "paired")
#: The outer variable's families (:func:`bridge.sb.build_interpolant`).
INTERPOLANTS = ("fourier", "neural")
#: The inner variable's forms (:func:`bridge.sb.build_drift`).
DRIFT_FORMS = ("u", "endpoint", "b,eta", "v,eta", "w,eta")
#: The inner variable's families: MLP drifts of a :data:`DRIFT_FORMS` form (``"network"``), the
#: Schrödinger-potential mixture :class:`~bridge.sb.MixturePotential` (``"mixture"``, docs/math.md §5.10-5.11),
#: or ``"auto"``: the mixture when a test on held-out samples accepts it, else the networks
#: (:mod:`bridge.sb.family`, docs/math.md §5.15).
DRIFT_FAMILIES = ("auto", "network", "mixture")
#: The mixture family's parametrisations of ``S_k`` (:data:`bridge.sb.potential.COVARIANCES`), or
#: ``"auto"``: full in low dimension, diagonal above (:func:`bridge.sb.auto.mixture_covariance`).
MIXTURE_COVARIANCES = ("auto",) + COVARIANCES


@dataclass
class SBConfig:
    """Settings of :func:`~bridge.sb.solve_bridge`; the defaults work without tuning.

    Six settings may be ``"auto"``. ``drift_family`` is decided by a test on held-out samples
    (:mod:`bridge.sb.family`); ``coupling``, ``gradient_drift``, ``refine_rounds``, ``lr_inner`` and
    ``lr_outer`` from the data and the drift family by :func:`bridge.sb.auto.resolve_auto`. The
    result records what was chosen and why. A bad value
    raises ``ValueError`` (or ``TypeError``) when the config is built.

    Attributes:
        outer_steps: outer (ascent) steps on the interpolant.
        inner_steps: inner (descent) steps on the drift per outer step (K in docs/math.md §5).
        warmup_steps: inner steps before the first outer step (and at the start of each refinement round).
        batch_size: Monte-Carlo batch per step (times two with the antithetic partner).
        lr_inner: Adam learning rate of the drift, cosine-decayed to 5% over the budget; ``"auto"``:
            the drift family's (:data:`bridge.sb.auto.LEARNING_RATES`).
        lr_outer: Adam learning rate of the interpolant, decayed the same way (0: interpolant fixed);
            ``"auto"``: the drift family's.
        hidden: width of each drift MLP.
        depth: hidden layers of each drift MLP.
        interpolant: the outer variable's family, one of :data:`INTERPOLANTS`.
        n_modes: Fourier modes of the interpolant's coefficients (and of the gamma factor).
        diagonal: per-dimension Fourier coefficients (``"fourier"`` only).
        learn_gamma: learn a factor ``exp(sum c_k sin(k pi t))`` on ``gamma_0 = sqrt(2 eps t(1-t))``.
        t_min: training times are drawn from ``[t_min, 1 - t_min]``.
        time_budget: wall-clock cap on training in seconds (None: none).
        log_every: a progress line every this many outer steps (0: silent).
        seed: seeds the networks' initialisation and every Monte-Carlo draw.
        threads: torch intra-op threads while solving, restored afterwards (None: torch's setting;
            :mod:`bridge.threads` says why one).
        drift_form: how the drift is parametrised, one of :data:`DRIFT_FORMS` (docs/math.md §5).
        coupling: how pairs are drawn, one of :data:`COUPLINGS` (docs/math.md §5).
        plan_size: points per side of each fixed Sinkhorn plan, and of ``"auto"``'s first plan.
        plan_count: at most this many fixed plans on disjoint subsets of the data.
        plan_tol: accepted L1 marginal error of the fixed plans (ten times more stops the solve).
        minibatch_tol: accepted L1 marginal error of the minibatch plans.
        neural_hidden: width of ``N_phi`` for ``interpolant="neural"``.
        neural_depth: hidden layers of ``N_phi`` for ``interpolant="neural"``.
        ema: decay of a moving average of the drift's weights, which the result returns (None: none).
        holdout: fraction of each side held out for validation and early stopping (0: none).
        val_size: validation pairs (each with its antithetic partner).
        val_every: outer steps between validations (and one at the end).
        patience: with ``holdout``, stop after this many validations without a new best (None: never).
        gradient_drift: each drift network is the gradient of a scalar network: True, False or ``"auto"``.
        refine_rounds: rounds of coupling refinement after the max–min: an int >= 0 or ``"auto"``.
        refine_share: share of the budget that the refinement rounds get together.
        refine_pairs: pairs drawn from the learned SDE per refinement round.
        refine_sde_steps: SDE steps per refinement pair.
        drift_family: the inner variable's family, one of :data:`DRIFT_FAMILIES` (docs/math.md §5.11,
            §5.15); ``"auto"`` tests the mixture family on held-out samples (:mod:`bridge.sb.family`).
        n_components: ``K``, the mixture family's components (its means start at ``K`` training target samples).
        mixture_covariance: the mixture family's ``S_k``, one of :data:`MIXTURE_COVARIANCES`
            (``"auto"``: full up to dimension :data:`~bridge.sb.auto.FULL_COVARIANCE_MAX_DIM`).
        kl_share: the mixture family's share of the training (of the time budget, or of the inner
            steps) spent first on LightSB's KL objective (docs/math.md §5.16), before bridge
            matching starts from its fit; a number in [0, 1) (0: none) or ``"auto"``
            (:func:`bridge.sb.auto.kl_share`). The network family ignores it.
        min_component_count: the mixture family's returned potential switches off the components
            that account for fewer than this many of the training sources' predicted targets
            (docs/math.md §5.17, :mod:`bridge.sb.prune`; 0: keeps them all).

    Example:
        >>> SBConfig(time_budget=60).coupling
        'auto'
        >>> SBConfig(coupling="sometimes")
        Traceback (most recent call last):
        ...
        ValueError: coupling: expected one of auto, minibatch, sinkhorn, independent, paired, got 'sometimes'
    """

    outer_steps: int = 1000
    inner_steps: int = 10
    warmup_steps: int = 100
    batch_size: int = 256
    lr_inner: float | str = "auto"
    lr_outer: float | str = "auto"
    hidden: int = 128
    depth: int = 3
    interpolant: str = "fourier"
    n_modes: int = 6
    diagonal: bool = True
    learn_gamma: bool = True
    t_min: float = 1e-3
    time_budget: float | None = None
    log_every: int = 200
    seed: int = 0
    threads: int | None = DEFAULT_THREADS
    drift_form: str = "w,eta"
    coupling: str = "auto"
    plan_size: int = 2048
    plan_count: int = 4
    plan_tol: float = 1e-3
    minibatch_tol: float = 1e-2
    neural_hidden: int = 64
    neural_depth: int = 2
    ema: float | None = 0.999
    holdout: float = 0.0
    val_size: int = 8192
    val_every: int = 50
    patience: int | None = None
    gradient_drift: bool | str = "auto"
    refine_rounds: int | str = "auto"
    refine_share: float = 0.5
    refine_pairs: int = 100_000
    refine_sde_steps: int = 25
    drift_family: str = "auto"
    n_components: int = 50
    mixture_covariance: str = "auto"
    kl_share: float | str = "auto"
    min_component_count: float = 1.0

    def __post_init__(self) -> None:
        _check_ints(self)
        _check_numbers(self)
        _check_choices(self)

    def to_dict(self) -> dict:
        """The settings as a plain dict (what results and checkpoints store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SBConfig:
        """A config from a stored dict; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        values = {"drift_family": "network"} | dict(values)  # stored before the families: networks
        return cls(**{k: v for k, v in values.items() if k in known})


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


#: (field, smallest value) of the int settings; None: the value may also be None
_INT_FIELDS = (
    ("outer_steps", 0),
    ("inner_steps", 1),
    ("warmup_steps", 0),
    ("batch_size", 1),
    ("hidden", 1),
    ("depth", 1),
    ("n_modes", 0),
    ("log_every", 0),
    ("plan_size", 2),
    ("neural_hidden", 1),
    ("neural_depth", 1),
    ("val_size", 1),
    ("val_every", 1),
    ("refine_pairs", 2),
    ("refine_sde_steps", 1),
    ("n_components", 1),
)


def _check_ints(cfg: SBConfig) -> None:
    for name, low in _INT_FIELDS:
        v = getattr(cfg, name)
        if not _is_int(v) or v < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {v!r}")
    if not _is_int(cfg.seed):
        raise TypeError(f"seed: expected an int, got {cfg.seed!r}")
    if not _is_int(cfg.plan_count) or cfg.plan_count < 1:
        raise ValueError(f"plan_count: expected an int >= 1, got {cfg.plan_count!r}")
    for name in ("threads", "patience"):
        v = getattr(cfg, name)
        if v is not None and (not _is_int(v) or v < 1):
            raise ValueError(f"{name}: expected None or an int >= 1, got {v!r}")


def _check_numbers(cfg: SBConfig) -> None:
    for name in ("lr_inner", "lr_outer"):
        v = getattr(cfg, name)
        if v != "auto" and (not _is_number(v) or v < 0):
            raise ValueError(f"{name}: expected 'auto' or a number >= 0, got {v!r}")
    if not _is_number(cfg.t_min) or not 0 < cfg.t_min < 0.5:
        raise ValueError(f"t_min: expected a number in (0, 0.5), got {cfg.t_min!r}")
    if cfg.time_budget is not None and (not _is_number(cfg.time_budget) or cfg.time_budget <= 0):
        raise ValueError(f"time_budget: expected None or a number > 0 (seconds), got {cfg.time_budget!r}")
    for name in ("plan_tol", "minibatch_tol"):
        v = getattr(cfg, name)
        if not _is_number(v) or not 0 < v < 1:
            raise ValueError(f"{name}: expected a number in (0, 1), got {v!r}")
    if cfg.ema is not None and (not _is_number(cfg.ema) or not 0.0 < cfg.ema < 1.0):
        raise ValueError(f"ema: expected None or a number in (0, 1), got {cfg.ema!r}")
    if not _is_number(cfg.holdout) or not 0 <= cfg.holdout < 1:
        raise ValueError(f"holdout: expected a fraction in [0, 1), got {cfg.holdout!r}")
    if cfg.kl_share != "auto" and (not _is_number(cfg.kl_share) or not 0 <= cfg.kl_share < 1):
        raise ValueError(f"kl_share: expected 'auto' or a fraction in [0, 1), got {cfg.kl_share!r}")
    if not _is_number(cfg.min_component_count) or cfg.min_component_count < 0:
        raise ValueError(f"min_component_count: expected a number >= 0, got {cfg.min_component_count!r}")
    if not _is_number(cfg.refine_share) or not 0 < cfg.refine_share < 1:
        raise ValueError(f"refine_share: expected a fraction in (0, 1), got {cfg.refine_share!r}")


def _check_choices(cfg: SBConfig) -> None:
    for name, allowed in (
        ("coupling", COUPLINGS),
        ("interpolant", INTERPOLANTS),
        ("drift_form", DRIFT_FORMS),
        ("drift_family", DRIFT_FAMILIES),
        ("mixture_covariance", MIXTURE_COVARIANCES),
    ):
        v = getattr(cfg, name)
        if v not in allowed:
            raise ValueError(f"{name}: expected one of {', '.join(allowed)}, got {v!r}")
    g = cfg.gradient_drift
    if not (isinstance(g, bool) or g == "auto"):
        raise ValueError(f"gradient_drift: expected True, False or 'auto', got {g!r}")
    if cfg.drift_family == "mixture":
        _check_mixture(cfg)
    r = cfg.refine_rounds
    if r != "auto" and (not _is_int(r) or r < 0):
        raise ValueError(f"refine_rounds: expected 'auto' or an int >= 0, got {r!r}")
    for name in ("diagonal", "learn_gamma"):
        if not isinstance(getattr(cfg, name), bool):
            raise TypeError(f"{name}: expected True or False, got {getattr(cfg, name)!r}")


def _check_mixture(cfg: SBConfig) -> None:
    """The mixture family is trained with the u-form objective and its drift is a gradient by
    construction: ``drift_form`` and ``gradient_drift`` do not apply and may not ask otherwise."""
    default_form = SBConfig.__dataclass_fields__["drift_form"].default
    if cfg.drift_form != default_form:
        raise ValueError(
            f"drift_form: does not apply to drift_family='mixture' (trained with the u-form objective); "
            f"leave it at {default_form!r}, got {cfg.drift_form!r}"
        )
    if cfg.gradient_drift is True:
        raise ValueError(
            "gradient_drift: does not apply to drift_family='mixture' (its drift is a gradient by construction); "
            "expected False or 'auto', got True"
        )
