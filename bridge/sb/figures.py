"""The four figures of a solved bridge: ``bridge solve`` writes them next to ``report.json``.

:func:`write_figures` draws, from a :class:`~bridge.sb.evaluation.BridgeEvaluation` and the
:class:`~bridge.sb.result.BridgeResult` it checked, the learned coupling against POT's plan
(``coupling.png``), the marginals in time (``marginals.png``), the learned interpolant's
coefficients (``coefficients.png``) and the training history (``history.png``). matplotlib is
imported where a figure is drawn.
"""

from __future__ import annotations

import io

import torch

from .evaluation import MARGINAL_TIMES, BridgeEvaluation
from .result import BridgeResult

__all__ = ["FIGURES", "write_figures", "plot_coupling", "plot_marginals", "plot_coefficients", "plot_history"]

#: The files :func:`write_figures` writes.
FIGURES = ("coupling.png", "marginals.png", "coefficients.png", "history.png")
#: Coupling lines drawn per panel of coupling.png.
COUPLING_LINES = 200


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
        key = f"{MARGINAL_TIMES[k]:g}" if k < len(MARGINAL_TIMES) else None  # report.json's nominal t
        if key in ed:
            title += f"\nenergy distance {ed[key]:.3g}"
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
    """``history.png``: the max–min objective and the kinetic-energy estimate per outer step, with
    the start of each coupling-refinement round (``BridgeResult.coupling["refine"]["started"]``)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), squeeze=False)
    recs = [r for r in history if isinstance(r, dict) and "step" in r]
    steps = [r["step"] for r in recs]
    ax0, ax1 = axes[0]
    if recs:
        ax0.plot(steps, [r["objective"] for r in recs], color="C0", marker=".", label="on one training batch")
        ax1.plot(steps, [r["kinetic"] for r in recs], color="C1", marker=".", label="on one training batch")
        ax1.plot(steps, [-2 * r["objective"] for r in recs], "C0--", lw=1, label="−2 × max–min objective")
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
    ax0.set_title("max–min objective", fontsize=10)
    ax1.set_xlabel("outer step")
    ax1.set_ylabel("∫ E|u|² dt")
    ax1.set_title("kinetic energy of the drift", fontsize=10)
    records = f" ({len(recs)} records, one every {steps[-1] - steps[-2]} steps)" if len(recs) > 2 else ""
    fig.suptitle(f"max–min objective and kinetic energy per outer step{records}", fontsize=11)
    for ax in (ax0, ax1):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    _save(fig, path)


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
