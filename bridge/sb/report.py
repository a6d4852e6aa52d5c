r"""Checks of a solved bridge against POT's entropic plan on held-out samples (SPEC §5, §6).

:func:`evaluate_bridge` computes, :func:`write_figures` plots; ``bridge solve`` writes both into
its run directory (``report.json`` and four PNGs). With held-out source points
:math:`x_0^{(i)}` and target points :math:`y_j` (samples only, no closed form):

* marginal quality of the SDE's :math:`X_1` (one forward-SDE sample per :math:`x_0^{(i)}`)
  against the :math:`y_j`: energy distance, Sinkhorn divergence, W2, BW2-UVP (SPEC §6); the
  same numbers for an independent target sample of the same size give the noise floor;
* the learned coupling (``K`` SDE samples per :math:`x_0^{(i)}`) against POT's entropic plan
  :math:`P` between the same :math:`x_0^{(i)}` and :math:`y_j` at ``reg = 4 eps``
  (:func:`bridge.ot.entropic_plan`): cross-covariance, barycentric map
  :math:`T(x_0^{(i)}) = \sum_j P_{ij} y_j / a_i` against the mean of the K samples, and the
  transport cost :math:`\mathbb E|x_0 - x_1|^2` (SPEC §5 (b)); POT's plan on an independent
  target sample gives the reference's own sampling noise;
* the marginals at ``t = 0, 1/4, 1/2, 3/4, 1`` against the SB of the empirical plan, the
  Brownian-bridge mixture :math:`x_t = (1-t)x_0 + t x_1 + \sqrt{2\epsilon t(1-t)}\,z`,
  :math:`(x_0, x_1) \sim P`;
* the kinetic energy :math:`\int_0^1 \mathbb E|u|^2 dt` (from the training history and along
  the SDE paths) and :math:`\mathrm{KL}(P_{SB}\,\|\,W) = \mathrm{KE}/(4\epsilon)` (SPEC §5 (d)).

A Sinkhorn failure (:class:`bridge.ot.ConvergenceError`) is recorded in the report, never
replaced by another plan.
"""

from __future__ import annotations

import io
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .result import BridgeResult

__all__ = ["BridgeEvaluation", "evaluate_bridge", "write_figures", "package_versions", "jsonable", "MARGINAL_TIMES"]

#: Times at which the marginals are compared and plotted.
MARGINAL_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: geomloss blur of the "sharp" Sinkhorn divergence (the one `bridge fit` reports): the matched
#: blur sqrt(2 eps) smooths at the scale of the bridge's noise and sees little beyond the moments.
SHARP_BLUR = 0.05
#: Coupling lines drawn per panel of coupling.png.
COUPLING_LINES = 200


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


def _cpu64(x: Tensor) -> Tensor:
    return x.detach().to(device="cpu", dtype=torch.float64)


def _marginal_scores(x: Tensor, ref: Tensor, blur: float, sd_points: int) -> dict:
    from ..metrics import bw2_uvp, energy_distance, sinkhorn_divergence, w2

    k = min(sd_points, x.shape[0], ref.shape[0])
    return {
        "energy_distance": energy_distance(x, ref),
        "sinkhorn_divergence": sinkhorn_divergence(x[:k], ref[:k], blur=blur),
        "sinkhorn_divergence_sharp": sinkhorn_divergence(x[:k], ref[:k], blur=SHARP_BLUR),
        "w2": w2(x, ref, max_samples=None),
        "bw2_uvp": bw2_uvp(x, ref),
    }


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


def evaluate_bridge(
    result: BridgeResult,
    x0: Tensor,
    x1: Tensor,
    *,
    x1_floor: Tensor | None = None,
    per_point: int = 16,
    sde_steps: int = 500,
    sinkhorn_points: int = 1000,
    generator: torch.Generator | None = None,
    progress: Callable[[str], None] | None = None,
) -> BridgeEvaluation:
    r"""Check a solved bridge against POT's entropic plan on held-out samples (module docstring).

    Args:
        result: the solved bridge.
        x0: held-out source points ``(n, d)``; the SDE starts here.
        x1: held-out target points ``(m, d)``.
        x1_floor: optional independent target points (e.g. training ones), ideally ``m`` of
            them: the same metrics for them give the noise floor of the marginal metrics and of
            the POT reference.
        per_point: ``K`` SDE samples per source point for the coupling metrics (``>= 1``).
        sde_steps: Heun steps of the SDE (:meth:`BridgeResult.sample`).
        sinkhorn_points: points per side for the Sinkhorn divergences (geomloss is O(n^2)).
        generator: randomness of the SDE (on the drift's device); the POT-plan draws use a CPU
            generator seeded from it.
        progress: where progress lines go (default: nowhere).

    Returns:
        :class:`BridgeEvaluation`. ``metrics`` holds ``marginal`` (model and noise floor),
        ``marginals_by_t`` (energy distance between the SDE's and the reference's marginals),
        ``coupling`` (cross-covariances and their relative error, barycentric-map L2-UVP,
        transport costs, reference floor) and ``kinetic`` (history and path estimates, KL).

    Example:
        >>> # ev = evaluate_bridge(result, x0_test, x1_test, per_point=16); ev.metrics["coupling"]
    """
    from ..conventions import EntropicSettings, sb_kl_from_kinetic_energy
    from ..metrics import barycentric_map_error, cross_covariance, cross_covariance_error, kinetic_energy
    from ..ot import ConvergenceError, entropic_plan

    if isinstance(per_point, bool) or not isinstance(per_point, int) or per_point < 1:
        raise ValueError(f"per_point: expected a positive int, got {per_point!r}")
    say = progress if progress is not None else (lambda m: None)
    start = time.perf_counter()
    eps = float(result.eps)
    es = EntropicSettings.from_eps(eps)
    param = next(result.drift_net.parameters())
    device, dtype = param.device, param.dtype
    gen = generator if generator is not None else torch.Generator(device=device)
    cpu_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device)))
    a, b = _cpu64(x0), _cpu64(x1)
    n, d = a.shape
    tr_cov = float(torch.cov(b.T).trace()) if d > 1 else float(b.var())
    errors: dict = {}
    settings = {
        "entropic": es.as_dict(),
        "pot": {
            "function": "ot.sinkhorn",
            "method": "sinkhorn_log",
            "reg": es.pot_reg,
            "cost": "ot.dist (squared Euclidean)",
            "tol_marginal_l1": 1e-6,
            "points": [n, int(b.shape[0])],
        },
        "geomloss": {
            "loss": 'SamplesLoss("sinkhorn", p=2, debias=True)',
            "blur": es.geomloss_blur,
            "blur_sharp": SHARP_BLUR,
            "scaling": 0.9,
            "points": min(sinkhorn_points, n, int(b.shape[0])),
        },
        "sde": {
            "solver": "StochasticHeun",
            "steps": sde_steps,
            "grid": "end-refined t = 1 - (1 - s)^2 for the coupling samples; uniform for the paths",
            "per_point": per_point,
            "points": n,
        },
    }
    metrics: dict = {"target_cov_trace": tr_cov}
    ev = BridgeEvaluation(metrics=metrics, settings=settings, errors=errors, x0=a, x1=b)

    # --- the learned SDE: one path per point (marginals, kinetic energy), K end points per point
    say(f"[solve] evaluation: SDE from {n} held-out points, {sde_steps} Heun steps, 1 + {per_point} samples each")
    idx = [round(t * sde_steps) for t in MARGINAL_TIMES]
    ev.times = tuple(k / sde_steps for k in idx)
    xs = x0.detach().to(device=device, dtype=dtype)
    try:
        end, traj = result.sample(xs, per_point=1, steps=sde_steps, generator=gen, trajectory=True, grid="uniform")
        ys = result.sample(xs, per_point=per_point, steps=sde_steps, generator=gen)
    except FloatingPointError as exc:
        errors["sde"] = f"the SDE diverged ({exc}); try more SDE steps"
        say(f"[solve] evaluation: {errors['sde']}")
        ys = None
    if ys is not None:
        traj = traj[:, :, 0]
        ev.model_x1 = _cpu64(end[:, 0])
        ev.model_marginals = _cpu64(traj[idx])
        grid = torch.linspace(0.0, 1.0, sde_steps + 1, dtype=dtype, device=device)
        ev.kinetic_path = kinetic_energy(result.drift, traj, grid)
        ys = _cpu64(ys)
    kin = _history_kinetic(result.history, eps)
    kin["path"] = ev.kinetic_path
    kin["kl_path"] = sb_kl_from_kinetic_energy(ev.kinetic_path, eps) if ev.kinetic_path is not None else None
    kin["what"] = (
        "int_0^1 E|u|^2 dt: 'last'/'mean_last_quarter' from the training history (interpolant samples), "
        "'path' along the SDE from the held-out source (trapezoid on the SDE grid); KL(P_SB || W) = KE / (4 eps)"
    )
    metrics["kinetic"] = kin

    # --- marginal quality of X_1
    say("[solve] evaluation: marginal metrics (energy distance, Sinkhorn divergence, W2, BW2-UVP)")
    marginal: dict = {"model": None, "noise_floor": None}
    if ev.model_x1 is not None:
        marginal["model"] = _marginal_scores(ev.model_x1, b, es.geomloss_blur, sinkhorn_points)
    if x1_floor is not None:
        floor = _cpu64(x1_floor)[: b.shape[0]]
        marginal["noise_floor"] = _marginal_scores(floor, b, es.geomloss_blur, sinkhorn_points)
        marginal["noise_floor_what"] = f"{floor.shape[0]} training target samples vs the held-out target samples"
    metrics["marginal"] = marginal

    # --- the reference: POT's entropic plan on the held-out samples
    say(f"[solve] evaluation: POT entropic plan on {n} x {b.shape[0]} points, reg = 4 eps = {es.pot_reg:g}")
    t_ref = time.perf_counter()
    try:
        plan = entropic_plan(a, b, eps)
    except ConvergenceError as exc:
        plan = None
        errors["reference"] = str(exc)
        say(f"[solve] evaluation: no POT reference: {exc}")
    coupling: dict = {"available": plan is not None}
    if plan is not None:
        settings["pot"].update(marginal_error=plan.marginal_error, iterations=plan.n_iter)
        c_ref = plan.cross_covariance()
        t_map = plan.barycentric_map()
        coupling["pot_cross_covariance"] = c_ref.tolist()
        coupling["pot_transport_cost"] = plan.transport_cost()
        ev.reference_x1 = plan.conditional_sample(a, 1, generator=cpu_gen)[:, 0]
        z = torch.randn((len(idx),) + tuple(a.shape), generator=cpu_gen, dtype=torch.float64)
        ev.reference_marginals = torch.stack(
            [
                (1 - t) * a + t * ev.reference_x1 + math.sqrt(2 * eps * t * (1 - t)) * z[k]
                for k, t in enumerate(ev.times)
            ]
        )
        if ys is not None:
            coupling["model_cross_covariance"] = cross_covariance(a, ys).tolist()
            try:
                coupling["cross_covariance_rel_error"] = cross_covariance_error(a, ys, c_ref)
            except ValueError:  # a zero reference (e.g. independent plan at huge eps)
                coupling["cross_covariance_rel_error"] = None
            coupling["barycentric_map_l2_uvp"] = barycentric_map_error(ys, t_map, tr_cov, unbiased=per_point >= 2)
            coupling["barycentric_map_l2_uvp_raw"] = barycentric_map_error(ys, t_map, tr_cov)
            coupling["model_transport_cost"] = float(((ys - a[:, None]) ** 2).sum(-1).mean())
        coupling["what"] = (
            "learned coupling (x0, K SDE samples) vs POT's plan on the same held-out x0 and target samples; "
            "barycentric_map_l2_uvp = 100 mean|mean_k x1_ik - T(x0_i)|^2 / tr Cov(target), minus the K-sample "
            "noise (unbiased; '_raw' without)"
        )
        if x1_floor is not None:
            floor = _cpu64(x1_floor)[: b.shape[0]]
            try:
                plan_f = entropic_plan(a, floor, eps)
                ref_norm = float(torch.linalg.matrix_norm(c_ref))
                c_f = plan_f.cross_covariance()
                coupling["reference_floor"] = {
                    "cross_covariance_rel_error": float(torch.linalg.matrix_norm(c_f - c_ref)) / ref_norm
                    if ref_norm > 0
                    else None,
                    "barycentric_map_l2_uvp": barycentric_map_error(plan_f.barycentric_map(), t_map, tr_cov),
                    "transport_cost": plan_f.transport_cost(),
                    "what": "POT's plan from the same x0 to an independent target sample of the same size, "
                    "against the reference: the reference's own sampling noise",
                }
            except ConvergenceError as exc:
                coupling["reference_floor"] = {"error": str(exc)}
    settings["pot"]["wall_s"] = time.perf_counter() - t_ref
    metrics["coupling"] = coupling

    # --- marginals in time against the Brownian-bridge mixture of the plan
    by_t = None
    if ev.model_marginals is not None and ev.reference_marginals is not None:
        from ..metrics import energy_distance

        by_t = {
            f"{t:g}": energy_distance(ev.model_marginals[k], ev.reference_marginals[k]) for k, t in enumerate(ev.times)
        }
    metrics["marginals_by_t"] = {
        "energy_distance": by_t,
        "what": "squared energy distance between the SDE's X_t and the Brownian-bridge mixture of POT's plan "
        "x_t = (1-t) x0 + t x1 + sqrt(2 eps t(1-t)) z, from the same held-out x0",
    }
    ev.wall_s = time.perf_counter() - start
    return ev


# ----------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------
def _save(fig, path) -> None:
    import matplotlib.pyplot as plt

    from ..checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _coords_note(d: int) -> str:
    return f" (first 2 of {d} coordinates)" if d > 2 else ""


def _limits(*xs):
    both = torch.cat([x[:, :2] for x in xs if x is not None])
    lo, hi = both.amin(0), both.amax(0)
    pad = 0.08 * (hi - lo).clamp_min(1e-9)
    return (lo - pad).tolist(), (hi + pad).tolist()


def plot_coupling(ev: BridgeEvaluation, path, *, eps: float) -> None:
    """``coupling.png``: lines ``x0 -> x1`` for the learned SDE and POT's plan, side by side."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    d = ev.x0.shape[1]
    panels = [
        ("learned bridge: x0 -> one SDE sample", ev.model_x1),
        (f"POT entropic plan, reg = 4 eps = {4 * eps:g}", ev.reference_x1),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), squeeze=False, sharex=True, sharey=True)
    k = min(COUPLING_LINES, ev.x0.shape[0])
    x0 = ev.x0[:k]
    for ax, (title, x1) in zip(axes[0], panels):
        ax.set_title(title, fontsize=10)
        if x1 is None:
            ax.text(0.5, 0.5, "not available (see report.json)", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        x1 = x1[:k]
        if d == 1:
            ax.scatter(x0[:, 0], x1[:, 0], s=6, alpha=0.6, color="C2", label="pairs (x0, x1)")
            ax.set_xlabel("$x_0$")
            ax.set_ylabel("$x_1$")
        else:
            lo, hi = _limits(ev.x0, ev.x1, ev.model_x1, ev.reference_x1)
            segments = torch.stack([x0[:, :2], x1[:, :2]], dim=1).numpy()
            ax.add_collection(
                LineCollection(segments, colors="0.6", linewidths=0.5, alpha=0.6, zorder=1, label="x0 -> x1")
            )
            ax.scatter(x0[:, 0], x0[:, 1], s=6, color="C0", label="x0 (held-out source)", zorder=2)
            ax.scatter(x1[:, 0], x1[:, 1], s=6, color="C1", label="x1", zorder=2)
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_xlabel("coordinate 1")
            ax.set_ylabel("coordinate 2")
        ax.legend(fontsize=8, loc="best")
        ax.label_outer()  # shared axes: the y labels once, on the left
    fig.suptitle(
        f"coupling: {k} of {ev.x0.shape[0]} held-out source points, eps = {eps:g}{_coords_note(d)}", fontsize=11
    )
    fig.tight_layout()
    _save(fig, path)


def plot_marginals(ev: BridgeEvaluation, path, *, eps: float) -> None:
    """``marginals.png``: the SDE's marginals against the Brownian-bridge mixture of POT's plan."""
    import matplotlib.pyplot as plt

    d, nt = ev.x0.shape[1], len(ev.times)
    fig, axes = plt.subplots(1, nt, figsize=(3.1 * nt, 3.4), squeeze=False)
    ed = (ev.metrics.get("marginals_by_t") or {}).get("energy_distance") or {}
    have = [x for x in (ev.model_marginals, ev.reference_marginals) if x is not None]
    if d >= 2 and have:
        lo, hi = _limits(*(x.reshape(-1, d) for x in have))
    for k, (ax, t) in enumerate(zip(axes[0], ev.times)):
        series = [
            ("reference (POT plan + Brownian bridge)", ev.reference_marginals, "C0"),
            ("learned SDE", ev.model_marginals, "C1"),
        ]
        for label, xs, color in series:
            if xs is None:
                continue
            x = xs[k]
            if d == 1:
                ax.hist(x[:, 0].numpy(), bins=40, density=True, histtype="step", color=color, label=label)
            else:
                ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.35, color=color, label=label, rasterized=True)
        if d == 1:
            ax.set_xlabel("x")
            ax.set_ylabel("density")
        else:
            ax.set_xlim(lo[0], hi[0])
            ax.set_ylim(lo[1], hi[1])
            ax.set_xlabel("coordinate 1")
            ax.set_ylabel("coordinate 2")
        title = f"t = {t:.2f}"
        if f"{t:g}" in ed:
            title += f"\nenergy dist. {ed[f'{t:g}']:.3g}"
        ax.set_title(title, fontsize=9)
    if not have:
        axes[0][0].text(0.5, 0.5, "no samples (see report.json)", ha="center", transform=axes[0][0].transAxes)
    fig.suptitle(f"marginals of the learned SDE vs the SB of POT's plan, eps = {eps:g}{_coords_note(d)}", fontsize=11)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:  # below the panels, where it covers no data
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8, markerscale=3, frameon=False)
    fig.tight_layout(rect=(0, 0.07 if handles else 0, 1, 1))
    _save(fig, path)


def plot_coefficients(result: BridgeResult, path, *, points: int = 101) -> None:
    """``coefficients.png``: alpha, beta, gamma of the learned interpolant against t."""
    import matplotlib.pyplot as plt

    t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    param = next(result.interpolant.parameters(), None)  # evaluate where the coefficients live (CUDA runs)
    curves = result.coefficient_curves(t.to(param.device) if param is not None else t)
    eps = float(result.eps)
    base = {
        "alpha": (1 - t, "1 - t"),
        "beta": (t, "t"),
        "gamma": ((2 * eps * t * (1 - t)).sqrt(), "sqrt(2 eps t(1-t))"),
    }
    names = [k for k in ("alpha", "beta", "gamma") if k in curves]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        y = curves[name].detach().cpu().double()
        y = y.reshape(points, -1)
        if y.shape[1] == 1:
            ax.plot(t, y[:, 0], color="C1", label="learned")
        else:
            for j in range(y.shape[1]):
                ax.plot(t, y[:, j], color="C1", lw=0.8, alpha=0.5, label="learned, per dimension" if j == 0 else None)
            ax.plot(t, y.mean(1), color="C3", lw=1.5, label="mean over dimensions")
        ref, ref_label = base[name]
        ax.plot(t, ref, "k--", lw=1, label=f"start: {ref_label}")
        ax.set_xlabel("t")
        ax.set_ylabel(name)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"learned interpolant coefficients, eps = {eps:g}", fontsize=11)
    fig.tight_layout()
    _save(fig, path)


def plot_history(history: list, path, *, kinetic_path: float | None = None, refine_starts: list | None = None) -> None:
    """``history.png``: objective and kinetic-energy estimate against the outer step, with the
    start of each coupling-refinement round (``BridgeResult.coupling["refine"]["started"]``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
    recs = [r for r in history if isinstance(r, dict) and "step" in r]
    steps = [r["step"] for r in recs]
    ax0, ax1 = axes[0]
    if recs:
        ax0.plot(steps, [r["objective"] for r in recs], color="C0", marker=".", label="max-min objective")
        ax1.plot(steps, [r["kinetic"] for r in recs], color="C1", marker=".", label="int E|u|^2 dt (batch estimate)")
        ax1.plot(steps, [-2 * r["objective"] for r in recs], "C0--", lw=1, label="-2 x objective")
    else:
        for ax in (ax0, ax1):
            ax.text(0.5, 0.5, "no logged outer steps", ha="center", va="center", transform=ax.transAxes)
    if kinetic_path is not None:
        ax1.axhline(kinetic_path, color="k", ls=":", lw=1, label="along the final SDE's paths")
    for k, r in enumerate(refine_starts or []):  # SBConfig.refine_rounds: the coupling changes here
        for ax in (ax0, ax1):
            ax.axvline(r["step"] + 0.5, color="0.5", ls="--", lw=1, label="refinement round" if k == 0 else None)
    ax0.set_xlabel("outer step")
    ax0.set_ylabel("objective")
    ax0.set_title("objective (SI 3.39)", fontsize=10)
    ax1.set_xlabel("outer step")
    ax1.set_ylabel("kinetic energy")
    ax1.set_title("kinetic energy", fontsize=10)
    for ax in (ax0, ax1):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    _save(fig, path)


FIGURES = ("coupling.png", "marginals.png", "coefficients.png", "history.png")


def write_figures(ev: BridgeEvaluation, result: BridgeResult, out_dir) -> list[str]:
    """Write the four PNGs of :data:`FIGURES` into ``out_dir`` (atomically); returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    out = Path(out_dir)
    eps = float(result.eps)
    plot_coupling(ev, out / "coupling.png", eps=eps)
    plot_marginals(ev, out / "marginals.png", eps=eps)
    plot_coefficients(result, out / "coefficients.png")
    refine_starts = (result.coupling or {}).get("refine", {}).get("started")
    plot_history(result.history, out / "history.png", kinetic_path=ev.kinetic_path, refine_starts=refine_starts)
    return list(FIGURES)


# ----------------------------------------------------------------------------------------
# report helpers
# ----------------------------------------------------------------------------------------
def package_versions() -> dict:
    """Versions of python, bridge, torch, numpy, POT, geomloss and matplotlib (None if absent)."""
    from importlib import metadata

    from .. import __version__

    out = {"python": platform.python_version(), "bridge": __version__, "torch": torch.__version__}
    for key, dist in (("numpy", "numpy"), ("pot", "pot"), ("geomloss", "geomloss"), ("matplotlib", "matplotlib")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def jsonable(obj):
    """Nested dicts/lists/tensors/floats as strict JSON values (NaN and Inf become None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    try:
        v = float(obj)
    except (TypeError, ValueError):
        return str(obj)
    return v if math.isfinite(v) else None
