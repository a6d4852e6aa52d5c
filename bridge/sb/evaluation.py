r"""Checks of a solved bridge against POT's entropic plan on held-out samples (docs/math.md §5, §6).

With held-out source points :math:`x_0^{(i)}` and target points :math:`y_j` (samples only, no
closed form), :func:`evaluate_bridge` computes:

* marginal quality of the SDE's :math:`X_1` (one forward-SDE sample per :math:`x_0^{(i)}`, ``n``
  points) against the ``m`` points :math:`y_j`: energy distance, Sinkhorn divergence, W2, BW2-UVP
  (docs/math.md §6); the noise floor is the same numbers for independent target samples of the
  model's size ``n`` against the same :math:`y_j`, i.e. what a perfect model scores. Each of
  these estimates is biased by the sample sizes, so only equal sizes compare, and one draw is
  about as noisy as its mean, so the floor is the mean over :data:`FLOOR_SETS` disjoint sets,
  with their spread (the model's one draw varies about as much);
* the learned coupling (``K`` SDE samples per :math:`x_0^{(i)}`) against POT's entropic plan
  :math:`P` between the same :math:`x_0^{(i)}` and :math:`y_j` at ``reg = 4 eps``
  (:func:`bridge.ot.entropic_plan`): cross-covariance, barycentric map
  :math:`T(x_0^{(i)}) = \sum_j P_{ij} y_j / a_i` against the mean of the K samples, and the
  transport cost :math:`\mathbb E|x_0 - x_1|^2` (docs/math.md §5 (b)); POT's plan on an
  independent target sample gives the reference's own sampling noise. The L2-UVP has the
  K-sample noise of the means subtracted; it is a share of variance, so a value below 0 (the map
  is closer than K samples resolve) is reported as 0 with the unclipped value in a note;
* the marginals at ``t = 0, 1/4, 1/2, 3/4, 1`` against the SB of the empirical plan, the
  Brownian-bridge mixture :math:`x_t = (1-t)x_0 + t x_1 + \sqrt{2\epsilon t(1-t)}\,z`,
  :math:`(x_0, x_1) \sim P`;
* the kinetic energy :math:`\int_0^1 \mathbb E|u|^2 dt` (from the training history and along
  the SDE paths) and :math:`\mathrm{KL}(P_{SB}\,\|\,W) = \mathrm{KE}/(4\epsilon)` (docs/math.md
  §5 (d)).

A Sinkhorn failure (:class:`bridge.ot.ConvergenceError`) is recorded in the evaluation, never
replaced by another plan; so is a diverging SDE.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .result import BridgeResult

__all__ = ["BridgeEvaluation", "evaluate_bridge", "FLOOR_SETS", "MARGINAL_TIMES", "REFERENCE_TOL", "SDE_STEPS"]

#: Times at which the marginals are compared and plotted.
MARGINAL_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: geomloss blur of the "sharp" Sinkhorn divergence (the one `bridge fit` reports): the matched
#: blur sqrt(2 eps) smooths at the scale of the bridge's noise and sees little beyond the moments.
SHARP_BLUR = 0.05
#: Disjoint independent target sets (each of the model's size) whose scores are averaged into the
#: noise floor, their standard deviation giving its spread: one set's energy distance or W2
#: varies about as much as its mean (8 Gaussians, 1000 points), so a floor from one draw can sit
#: far above or below what a perfect model scores.
FLOOR_SETS = 5
#: Points per side of the exact W2 (POT's network simplex, roughly cubic in the points): the first
#: this many of the model's and of the target's points, so that evaluations on up to 10^5 held-out
#: points (whose entropic reference plan is solved in blocks, :mod:`bridge.ot_backend`) finish.
W2_POINTS = 5000
#: Stochastic Heun steps of the evaluation's SDE, on the end-refined grid: 100 is where the
#: benchmarks sample (benchmarks/README.md §5.9); docs/commands.md gives the cost and the error.
SDE_STEPS = 100
#: L1 marginal error accepted of POT's reference plans. A plan solved from its potentials
#: (``bridge.ot_backend``'s "chunked" backend) is solved in float32 when the tolerance is at least
#: :data:`bridge.sb.couplings.FLOAT32_TOL` (the coupling's rule), else in float64.
REFERENCE_TOL = 1e-6
#: Memory of the paths the evaluation's SDE integrates at once (:meth:`BridgeResult.sample`'s
#: ``max_bytes``, estimated by :func:`bridge.sb.sde.path_bytes`): 256 MiB, which holds every path of
#: the default evaluation at once; at 10^5 held-out points x 16 samples a network's activations
#: would take gigabytes.
SDE_BYTES = 2**28


@dataclass
class BridgeEvaluation:
    """What :func:`evaluate_bridge` computed: JSON-ready numbers and the arrays behind the figures.

    Attributes:
        metrics: the numbers (nested dicts of floats / None), see :func:`evaluate_bridge`.
        settings: the POT / geomloss / SDE settings used (``bridge.conventions`` names).
        errors: what failed (``"reference"``: the POT plan, ``"sde"``: the sampler), as text.
        x0, x1: held-out source ``(n, d)`` and target ``(m, d)`` points (CPU, float64).
        model_x1: one SDE sample per row of ``x0``, ``(n, d)`` (None if the SDE failed).
        reference_x1: one partner per row of ``x0`` drawn from POT's plan (None if it failed).
        times: the marginal times actually used (grid points of the SDE).
        model_marginals, reference_marginals: ``(len(times), n, d)`` or None.
        kinetic_path: kinetic energy along the SDE paths (None if the SDE failed).
        wall_s: evaluation time.
    """

    metrics: dict
    settings: dict
    errors: dict
    x0: Tensor
    x1: Tensor
    model_x1: Tensor | None = None
    reference_x1: Tensor | None = None
    times: tuple = MARGINAL_TIMES
    model_marginals: Tensor | None = None
    reference_marginals: Tensor | None = None
    kinetic_path: float | None = None
    wall_s: float = 0.0
    extra: dict = field(default_factory=dict)


def evaluate_bridge(
    result: BridgeResult,
    x0: Tensor,
    x1: Tensor,
    *,
    x1_floor: Tensor | None = None,
    per_point: int = 16,
    sde_steps: int | str = SDE_STEPS,
    sinkhorn_points: int = 1000,
    reference_tol: float = REFERENCE_TOL,
    plan_memory: int | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[str], None] | None = None,
) -> BridgeEvaluation:
    r"""Check a solved bridge against POT's entropic plan on held-out samples (module docstring).

    Args:
        result: the solved bridge.
        x0: held-out source points ``(n, d)``; the SDE starts here.
        x1: held-out target points ``(m, d)``.
        x1_floor: optional independent target points (e.g. the training ones), ideally at least
            ``FLOOR_SETS * n`` and ``m`` of them: disjoint sets of ``n`` give the noise floor of
            the marginal metrics, the first ``m`` that of the POT reference. With fewer than
            ``n`` the floor is at a smaller size, which ``metrics["marginal"]["sizes"]`` shows.
        per_point: ``K`` SDE samples per source point for the coupling metrics (``>= 1``).
        sde_steps: Heun steps of the SDE on the end-refined grid (:meth:`BridgeResult.sample`), or
            ``"auto"``: :meth:`BridgeResult.choose_steps` on ``x0`` (drawn from ``generator``
            first; its record in ``settings["sde"]["steps_choice"]``).
        sinkhorn_points: points per side for the Sinkhorn divergences (geomloss is O(n^2)).
        reference_tol: L1 marginal error accepted of POT's reference plans (:data:`REFERENCE_TOL`).
        plan_memory: bytes of the one float64 ``n x m`` matrix a reference plan may hold before
            it is solved from its potentials (:func:`bridge.ot_backend.plan_backend`; None:
            :data:`bridge.ot_backend.DENSE_PLAN_BYTES`).
        generator: randomness of the SDE (on the drift's device); the POT-plan draws use a CPU
            generator seeded from it.
        progress: where progress lines go (default: nowhere): one per stage and, inside the
            long ones, a line with the time left every :data:`bridge.progress.EVERY_S` seconds.

    Returns:
        :class:`BridgeEvaluation`. ``metrics`` holds ``marginal`` (model and noise floor),
        ``marginals_by_t`` (energy distance between the SDE's and the reference's marginals),
        ``coupling`` (cross-covariances and their relative error, barycentric-map L2-UVP,
        transport costs, reference floor) and ``kinetic`` (history and path estimates, KL).

    Example:
        >>> import torch
        >>> from bridge import SBConfig, solve_bridge
        >>> g = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 2
        >>> cfg = SBConfig(outer_steps=4, inner_steps=1, warmup_steps=2, batch_size=32, hidden=8, depth=2, log_every=0)
        >>> result = solve_bridge(x0[:150], x1[:150], eps=0.5, config=cfg)
        >>> ev = evaluate_bridge(result, x0[150:], x1[150:], per_point=2, sde_steps=20, sinkhorn_points=50)
        >>> sorted(ev.metrics["coupling"])[:3], ev.model_marginals.shape
        (['available', 'barycentric_map_l2_uvp', 'barycentric_map_l2_uvp_raw'], torch.Size([5, 50, 2]))
    """
    from ..conventions import EntropicSettings

    if isinstance(per_point, bool) or not isinstance(per_point, int) or per_point < 1:
        raise ValueError(f"per_point: expected a positive int, got {per_point!r}")
    if isinstance(reference_tol, bool) or not isinstance(reference_tol, (int, float)) or not reference_tol > 0:
        raise ValueError(f"reference_tol: expected a number > 0, got {reference_tol!r}")
    if plan_memory is not None and (
        isinstance(plan_memory, bool) or not isinstance(plan_memory, int) or plan_memory < 1
    ):
        raise ValueError(f"plan_memory: expected a positive int (bytes) or None, got {plan_memory!r}")
    say = progress if progress is not None else (lambda m: None)
    start = time.perf_counter()
    eps = float(result.eps)
    es = EntropicSettings.from_eps(eps)
    gen = generator if generator is not None else torch.Generator(device=_drift_parameter(result).device)
    cpu_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device)))
    a, b = _cpu64(x0), _cpu64(x1)
    floor = _cpu64(x1_floor) if x1_floor is not None else None
    sde_steps, choice = _resolve_sde_steps(result, x0, sde_steps, gen)
    settings = _settings(
        es, a.shape[0], b.shape[0], sde_steps=sde_steps, per_point=per_point, sinkhorn_points=sinkhorn_points
    )
    settings["pot"].update(tol_marginal_l1=float(reference_tol), memory_budget=plan_memory)
    if choice is not None:
        settings["sde"]["steps_choice"] = choice.as_dict()
    ev = BridgeEvaluation(metrics={"target_cov_trace": _cov_trace(b)}, settings=settings, errors={}, x0=a, x1=b)

    ys = _sample_model(ev, result, x0, steps=sde_steps, per_point=per_point, generator=gen, say=say)
    ev.metrics["kinetic"] = _kinetic_metrics(result.history, ev.kinetic_path, eps)
    say("[solve] evaluation: marginal metrics (energy distance, Sinkhorn divergence, W2, BW2-UVP)")
    ev.metrics["marginal"] = _marginal_metrics(
        ev.model_x1, b, _floor_sets(floor, a.shape[0]), blur=es.geomloss_blur, points=sinkhorn_points, say=say
    )
    ref_floor = floor[: b.shape[0]] if floor is not None else None
    ev.metrics["coupling"] = _coupling_metrics(
        ev, ys, ref_floor, eps=eps, per_point=per_point, generator=cpu_gen, say=say
    )
    say("[solve] evaluation: energy distances of the marginals to the SB of the plan at t = 0, 1/4, 1/2, 3/4, 1")
    ev.metrics["marginals_by_t"] = _marginals_by_t(ev)
    say("[solve] evaluation: done")
    ev.wall_s = time.perf_counter() - start
    return ev


def _cpu64(x: Tensor) -> Tensor:
    return x.detach().to(device="cpu", dtype=torch.float64)


def _drift_parameter(result: BridgeResult) -> Tensor:
    """A parameter of the drift network: where (device) and in what dtype the SDE runs."""
    return next(result.drift_net.parameters())


def _cov_trace(x: Tensor) -> float:
    r""":math:`\mathrm{tr}\,\mathrm{Cov}(x)` of samples ``(m, d)``, the scale of the UVP metrics."""
    return float(torch.cov(x.T).trace()) if x.shape[1] > 1 else float(x.var())


def _settings(es, n: int, m: int, *, sde_steps: int, per_point: int, sinkhorn_points: int) -> dict:
    """The POT / geomloss / energy-distance / SDE settings of an evaluation with ``n`` source and
    ``m`` target points."""
    from ..energy import energy_backend

    energy = energy_backend(n, int(m))
    return {
        "entropic": es.as_dict(),
        "pot": {
            "function": "ot.sinkhorn",
            "method": "sinkhorn_log",
            "reg": es.pot_reg,
            "cost": "ot.dist (squared Euclidean)",
            "tol_marginal_l1": 1e-6,
            "points": [n, int(m)],
        },
        "geomloss": {
            "loss": 'SamplesLoss("sinkhorn", p=2, debias=True)',
            "blur": es.geomloss_blur,
            "blur_sharp": SHARP_BLUR,
            "scaling": 0.9,
            "points": min(sinkhorn_points, n, int(m)),
        },
        "w2": {"function": "ot.emd2 (exact)", "points": [min(W2_POINTS, n), min(W2_POINTS, int(m))]},
        "energy": {
            "function": "bridge.energy.distance_sum (V-statistic; each of its three sums by its own size)",
            "backend": energy.name,
            "backend_reason": energy.reason,
            "points": [n, int(m)],
        },
        "sde": {
            "solver": "StochasticHeun",
            "steps": sde_steps,
            "grid": "end-refined t = 1 - (1 - s)^2; the marginals are taken at the grid times nearest "
            "to t = 0, 1/4, 1/2, 3/4, 1",
            "per_point": per_point,
            "points": n,
        },
    }


# ----------------------------------------------------------------------------------------
# the learned SDE
# ----------------------------------------------------------------------------------------
def _resolve_sde_steps(result: BridgeResult, x0: Tensor, steps, gen: torch.Generator):
    """``sde_steps`` as a count, and the :class:`~bridge.samplers.steps.StepChoice` of ``"auto"``
    (:meth:`BridgeResult.choose_steps` on the held-out source) or None."""
    if steps != "auto":
        return steps, None
    param = _drift_parameter(result)
    choice = result.choose_steps(x0.detach().to(device=param.device, dtype=param.dtype), generator=gen)
    return choice.steps, choice


def _sample_model(
    ev: BridgeEvaluation,
    result: BridgeResult,
    x0: Tensor,
    *,
    steps: int,
    per_point: int,
    generator: torch.Generator,
    say: Callable[[str], None],
) -> Tensor | None:
    """Run the learned SDE from the held-out source ``x0`` on the end-refined grid: one path per
    point (fills ``ev.times``, the grid times nearest to :data:`MARGINAL_TIMES`, ``ev.model_x1``,
    ``ev.model_marginals``, ``ev.kinetic_path``), then ``per_point`` end points per point, returned
    as ``(n, K, d)`` on the CPU in float64. A diverging SDE is recorded in ``ev.errors["sde"]`` and
    gives None. Progress lines count the samples."""
    from ..metrics import kinetic_energy
    from ..progress import Progress
    from .sde import sde_times

    n = x0.shape[0]
    say(f"[solve] evaluation: SDE from {n} held-out points, {steps} Heun steps, 1 + {per_point} samples each")
    grid = sde_times(steps, "end")
    idx = [int((grid - t).abs().argmin()) for t in MARGINAL_TIMES]
    ev.times = tuple(float(grid[k]) for k in idx)
    param = _drift_parameter(result)
    xs = x0.detach().to(device=param.device, dtype=param.dtype)
    done = Progress((1 + per_point) * n, "solve", say, unit="evaluation SDE samples")
    try:
        end, traj = result.sample(
            xs, per_point=1, steps=steps, generator=generator, trajectory=True, max_bytes=SDE_BYTES,
            progress=done.part(0, n),
        )  # fmt: skip
        ys = result.sample(
            xs, per_point=per_point, steps=steps, generator=generator, max_bytes=SDE_BYTES,
            progress=done.part(n, per_point * n),
        )  # fmt: skip
    except FloatingPointError as exc:
        ev.errors["sde"] = f"the SDE diverged ({exc}); try more SDE steps"
        say(f"[solve] evaluation: {ev.errors['sde']}")
        return None
    traj = traj[:, :, 0]
    ev.model_x1 = _cpu64(end[:, 0])
    ev.model_marginals = _cpu64(traj[idx])
    ev.kinetic_path = kinetic_energy(result.drift, traj, grid.to(dtype=param.dtype, device=param.device))
    return _cpu64(ys)


def _history_kinetic(history: list, eps: float) -> dict:
    from ..conventions import sb_kl_from_kinetic_energy

    vals = [float(r["kinetic"]) for r in history if isinstance(r, dict) and "kinetic" in r]
    vals = [v for v in vals if math.isfinite(v)]
    if not vals:
        return {"last": None, "mean_last_quarter": None, "kl_last": None, "records": 0}
    tail = vals[-max(1, len(vals) // 4) :]
    mean_tail = sum(tail) / len(tail)
    return {
        "last": vals[-1],
        "mean_last_quarter": mean_tail,
        "kl_last": sb_kl_from_kinetic_energy(vals[-1], eps),
        "kl_mean_last_quarter": sb_kl_from_kinetic_energy(mean_tail, eps),
        "records": len(vals),
    }


def _kinetic_metrics(history: list, kinetic_path: float | None, eps: float) -> dict:
    """Kinetic energy from the training history and along the SDE's paths, with their KL."""
    from ..conventions import sb_kl_from_kinetic_energy

    kin = _history_kinetic(history, eps)
    kin["path"] = kinetic_path
    kin["kl_path"] = sb_kl_from_kinetic_energy(kinetic_path, eps) if kinetic_path is not None else None
    kin["what"] = (
        "int_0^1 E|u|^2 dt: 'last'/'mean_last_quarter' from the training history (interpolant samples), "
        "'path' along the SDE from the held-out source (trapezoid on the end-refined SDE grid); "
        "KL(P_SB || W) = KE / (4 eps)"
    )
    return kin


# ----------------------------------------------------------------------------------------
# marginals
# ----------------------------------------------------------------------------------------
def _energy(x: Tensor, ref: Tensor, ref_mean: Tensor | None = None) -> float:
    r"""Squared energy distance :math:`2E|X-Y| - E|X-X'| - E|Y-Y'|` of the empirical measures
    (:func:`bridge.metrics.energy_distance`), given ``ref_mean`` :math:`= E|Y-Y'|` where it is
    already known: the held-out target's, the same for the model and every floor set (at 10^5
    points one such term is 10^10 distances)."""
    from ..energy import distance_sum

    n, m = x.shape[0], ref.shape[0]
    ref_mean = distance_sum(ref, ref) / (m * m) if ref_mean is None else ref_mean
    return float(2 * distance_sum(x, ref) / (n * m) - distance_sum(x, x) / (n * n) - ref_mean)


def _marginal_scores(x: Tensor, ref: Tensor, blur: float, sd_points: int, ref_mean: Tensor) -> dict:
    from ..metrics import bw2_uvp, sinkhorn_divergence, w2

    k = min(sd_points, x.shape[0], ref.shape[0])
    return {
        "energy_distance": _energy(x, ref, ref_mean),
        "sinkhorn_divergence": sinkhorn_divergence(x[:k], ref[:k], blur=blur),
        "sinkhorn_divergence_sharp": sinkhorn_divergence(x[:k], ref[:k], blur=SHARP_BLUR),
        "w2": w2(x[:W2_POINTS], ref[:W2_POINTS], max_samples=None),
        "bw2_uvp": bw2_uvp(x, ref),
    }


def _floor_sets(pool: Tensor | None, n: int) -> list:
    """Up to :data:`FLOOR_SETS` disjoint sets of ``n`` rows of ``pool`` (all of it, if it has fewer)."""
    if pool is None or pool.shape[0] == 0:
        return []
    if pool.shape[0] < n:
        return [pool]
    return [pool[k * n : (k + 1) * n] for k in range(min(FLOOR_SETS, pool.shape[0] // n))]


def _marginal_metrics(model_x1: Tensor | None, x1: Tensor, floor_sets: list, *, blur: float, points: int, say):
    """Scores of the SDE's :math:`X_1` against the held-out target ``x1`` (``model``) and the noise
    floor: the same scores for each independent target set of ``floor_sets``, their mean
    (``noise_floor``), standard deviation (``noise_floor_spread``) and count; ``sizes`` gives the
    ``[rows, m]`` of each side."""
    from ..energy import distance_sum
    from ..progress import Progress

    m = x1.shape[0]
    marginal: dict = {"model": None, "noise_floor": None, "sizes": {}}
    done = Progress(1 + len(floor_sets), "solve", say, unit="evaluation sample sets scored")
    ref_mean = distance_sum(x1, x1) / (m * m)  # E|Y - Y'| of the held-out target, once
    if model_x1 is not None:
        marginal["model"] = _marginal_scores(model_x1, x1, blur, points, ref_mean)
        marginal["sizes"]["model"] = [model_x1.shape[0], m]
    done.update(1)
    scores = []
    for k, x in enumerate(floor_sets):
        scores.append(_marginal_scores(x, x1, blur, points, ref_mean))
        done.update(2 + k)
    if scores:
        vals = {k: torch.tensor([s[k] for s in scores], dtype=torch.float64) for k in scores[0]}
        marginal["noise_floor"] = {k: float(v.mean()) for k, v in vals.items()}
        marginal["noise_floor_spread"] = {k: float(v.std()) if len(scores) > 1 else None for k, v in vals.items()}
        marginal["noise_floor_sets"] = len(scores)
        marginal["sizes"]["noise_floor"] = [floor_sets[0].shape[0], m]
    marginal["what"] = (
        f"'model': one SDE sample X_1 per held-out x0, scored against the {m} held-out target samples; one draw, "
        "which varies from draw to draw about as much as 'noise_floor_spread'. 'noise_floor': the mean (spread: "
        "standard deviation) over disjoint sets of training target samples of the model's size, each scored "
        "against the same held-out samples: what a model that samples the target itself scores at these sizes"
    )
    return marginal


def _marginals_by_t(ev: BridgeEvaluation) -> dict:
    """Energy distance between the SDE's :math:`X_t` and the Brownian-bridge mixture of the plan."""
    by_t = None
    if ev.model_marginals is not None and ev.reference_marginals is not None:
        by_t = {
            f"{t:g}": _energy(ev.model_marginals[k], ev.reference_marginals[k]) for k, t in enumerate(MARGINAL_TIMES)
        }
    return {
        "energy_distance": by_t,
        "times": {f"{t:g}": grid_t for t, grid_t in zip(MARGINAL_TIMES, ev.times)},
        "what": "squared energy distance between the SDE's X_t and the Brownian-bridge mixture of POT's plan "
        "x_t = (1-t) x0 + t x1 + sqrt(2 eps t(1-t)) z, from the same held-out x0, at the SDE grid time nearest "
        "to each t ('times')",
    }


# ----------------------------------------------------------------------------------------
# the coupling against POT's plan
# ----------------------------------------------------------------------------------------
def _coupling_metrics(
    ev: BridgeEvaluation,
    ys: Tensor | None,
    floor: Tensor | None,
    *,
    eps: float,
    per_point: int,
    generator: torch.Generator,
    say: Callable[[str], None],
) -> dict:
    """POT's entropic plan between the held-out ``ev.x0`` and ``ev.x1`` (fills ``ev.reference_x1``,
    ``ev.reference_marginals`` and the plan's settings), the learned coupling ``ys`` ``(n, K, d)``
    against it and, when ``floor`` is given, the plan's own sampling noise. A Sinkhorn failure is
    recorded in ``ev.errors["reference"]`` and leaves ``{"available": False}``."""
    from ..ot import ConvergenceError
    from ..ot_backend import plan_backend, solve_plan
    from .couplings import FLOAT32_TOL

    a, b, pot = ev.x0, ev.x1, ev.settings["pot"]
    backend = plan_backend(a.shape[0], b.shape[0], memory_budget=pot["memory_budget"])
    tol = pot["tol_marginal_l1"]
    dtype = torch.float32 if backend.name == "chunked" and tol >= FLOAT32_TOL else torch.float64
    plan_kw = {"tol": tol, "memory_budget": pot["memory_budget"], "dtype": dtype}
    pot.update(backend=backend.name, backend_reason=backend.reason, dtype=str(dtype).removeprefix("torch."))
    if backend.name == "chunked":  # same problem and tolerance, solved from the potentials only
        pot.update(function="bridge.ot_online.chunked_sinkhorn", method="blockwise log-domain Sinkhorn, eps-scaling")
    say(
        f"[solve] evaluation: entropic plan on {a.shape[0]} x {b.shape[0]} points, reg = 4 eps = {pot['reg']:g} "
        f"({backend.name}: {backend.reason})"
    )
    t_ref = time.perf_counter()
    try:
        plan = solve_plan(a, b, eps, **plan_kw)
    except ConvergenceError as exc:
        plan = None
        ev.errors["reference"] = str(exc)
        say(f"[solve] evaluation: no POT reference: {exc}")
    coupling: dict = {"available": plan is not None}
    if plan is not None:
        pot.update(marginal_error=plan.marginal_error, iterations=plan.n_iter)
        c_ref, t_map, tr_cov = plan.cross_covariance(), plan.barycentric_map(), ev.metrics["target_cov_trace"]
        coupling["pot_cross_covariance"] = c_ref.tolist()
        coupling["pot_transport_cost"] = plan.transport_cost()
        ev.reference_x1 = plan.conditional_sample(a, 1, generator=generator)[:, 0]
        ev.reference_marginals = _bridge_mixture(a, ev.reference_x1, ev.times, eps, generator)
        if ys is not None:
            coupling.update(_coupling_scores(a, ys, c_ref, t_map, tr_cov, unbiased=per_point >= 2))
        coupling["what"] = (
            "learned coupling (x0, K SDE samples) vs POT's plan on the same held-out x0 and target samples; "
            "barycentric_map_l2_uvp = 100 mean|mean_k x1_ik - T(x0_i)|^2 / tr Cov(target), minus the K-sample "
            "noise tr Cov_i / K (unbiased: '_unclipped'), and 0 where that falls below 0; '_raw' without the "
            "noise subtracted"
        )
        if floor is not None:
            coupling["reference_floor"] = _reference_floor(a, floor, eps, c_ref, t_map, tr_cov, plan_kw)
    pot["wall_s"] = time.perf_counter() - t_ref
    return coupling


def _bridge_mixture(x0: Tensor, x1: Tensor, times: tuple, eps: float, generator: torch.Generator) -> Tensor:
    r"""Marginals of the SB of a coupling ``(x0, x1)`` at ``times``, ``(len(times), n, d)``:
    :math:`x_t = (1-t) x_0 + t x_1 + \sqrt{2\epsilon t(1-t)}\,z` with one ``z`` per time."""
    z = torch.randn((len(times),) + tuple(x0.shape), generator=generator, dtype=torch.float64)
    return torch.stack([(1 - t) * x0 + t * x1 + math.sqrt(2 * eps * t * (1 - t)) * z[k] for k, t in enumerate(times)])


def _coupling_scores(x0: Tensor, ys: Tensor, c_ref: Tensor, t_map: Tensor, tr_cov: float, *, unbiased: bool) -> dict:
    """The learned coupling (``ys``: ``(n, K, d)`` SDE samples per row of ``x0``) against the plan's
    cross-covariance ``c_ref`` and barycentric map ``t_map``."""
    from ..metrics import barycentric_map_error, cross_covariance, cross_covariance_error

    scores: dict = {"model_cross_covariance": cross_covariance(x0, ys).tolist()}
    try:
        scores["cross_covariance_rel_error"] = cross_covariance_error(x0, ys, c_ref)
    except ValueError:  # a zero reference (e.g. independent plan at huge eps)
        scores["cross_covariance_rel_error"] = None
    scores.update(_l2_uvp(barycentric_map_error(ys, t_map, tr_cov, unbiased=unbiased)))
    scores["barycentric_map_l2_uvp_raw"] = barycentric_map_error(ys, t_map, tr_cov)
    scores["model_transport_cost"] = float(((ys - x0[:, None]) ** 2).sum(-1).mean())
    return scores


def _l2_uvp(value: float) -> dict:
    """The barycentric-map L2-UVP (in %) as the report gives it: a share of unexplained variance,
    so never below 0. With the K-sample noise subtracted the estimate can fall below 0 when the
    learned map is closer to the reference than K samples resolve; then 0 is given and a note
    keeps the unclipped value."""
    out = {"barycentric_map_l2_uvp": max(value, 0.0), "barycentric_map_l2_uvp_unclipped": value}
    if value < 0:
        out["barycentric_map_l2_uvp_note"] = (
            f"the estimate with the noise of the K-sample means subtracted was {value:.3g}%, below 0: the learned "
            "map is closer to POT's than K samples per point can resolve. An L2-UVP is a share of variance, so "
            "0 is reported; more samples per point resolve it"
        )
    return out


def _reference_floor(
    x0: Tensor, floor: Tensor, eps: float, c_ref: Tensor, t_map: Tensor, tr_cov: float, plan_kw: dict
) -> dict:
    """POT's plan from ``x0`` to the independent target sample ``floor`` against the reference
    (cross-covariance ``c_ref``, barycentric map ``t_map``), solved as the reference was
    (``plan_kw``: tolerance, memory budget, dtype): the reference's own sampling noise."""
    from ..metrics import barycentric_map_error
    from ..ot import ConvergenceError
    from ..ot_backend import solve_plan

    try:
        plan_f = solve_plan(x0, floor, eps, **plan_kw)
    except ConvergenceError as exc:
        return {"error": str(exc)}
    ref_norm = float(torch.linalg.matrix_norm(c_ref))
    c_f = plan_f.cross_covariance()
    return {
        "cross_covariance_rel_error": float(torch.linalg.matrix_norm(c_f - c_ref)) / ref_norm if ref_norm > 0 else None,
        "barycentric_map_l2_uvp": barycentric_map_error(plan_f.barycentric_map(), t_map, tr_cov),
        "transport_cost": plan_f.transport_cost(),
        "what": "POT's plan from the same x0 to an independent target sample of the same size, "
        "against the reference: the reference's own sampling noise",
    }
