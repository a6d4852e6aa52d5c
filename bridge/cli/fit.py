"""``bridge fit``: learn the fields of a fixed interpolant, sample them, score the samples.

``bridge fit --source NAME|FILE --target NAME|FILE --out DIR`` trains b plus s (or eta, v) for
a fixed interpolant (docs/math.md §2), samples with the ODE and the SDE at a few eps
(docs/math.md §3) and writes a checkpoint (read back by :func:`bridge.fit_run.load_fit_run`),
the samples, ``metrics.json`` and ``samples.png`` to DIR. Under ``torchrun --nproc_per_node=N``
the N processes train together (:mod:`bridge.distributed`) and rank 0 alone samples and writes.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..fit_run import FIT_CHECKPOINT, FIT_RUN_KIND
from ..interpolants import GAMMAS, INTERPOLANTS, make_interpolant
from ..models.mlp import ACTIVATIONS
from ..train import FIELD_SETS
from .args import eps_list, positive_float, positive_int
from .common import DATA_HELP, load_pair, log, prepare_out, recorded_arguments, require_device
from .errors import UsageError, user_input

__all__ = ["ETA_SAMPLING_T_RANGE", "ONE_SIDED_DENOISE_T", "SINKHORN_POINTS", "add_parser", "run"]

#: Points used for the Sinkhorn divergence (geomloss on CPU is O(n^2) per iteration; 1500 points
#: take a few seconds). The energy distance uses all held-out points.
SINKHORN_POINTS = 1500
#: Sampling t-range for models whose score comes from eta (s = -eta/gamma is undefined at
#: gamma = 0): the paper's [1e-4, 1 - 1e-4].
ETA_SAMPLING_T_RANGE = (1e-4, 1.0 - 1e-4)
#: One-sided models with eta: integrate to this t, then take the denoising step
#: E[x1 | x_t] = (x - alpha eta) / beta (the paper's 0.97).
ONE_SIDED_DENOISE_T = 0.97
#: Blur of the Sinkhorn divergence in the metrics.
SINKHORN_BLUR = 0.05


def add_parser(sub, parents=()) -> None:
    """The ``fit`` subcommand and its options."""
    f = sub.add_parser(
        "fit",
        parents=list(parents),
        help="train a generative model between two distributions (fixed interpolant)",
        description="Train b and s (or eta, v) for a fixed interpolant between SOURCE and TARGET, "
        "sample with the ODE and the SDE, and write a checkpoint, metrics.json and "
        "samples.png.",
    )
    f.add_argument("--source", default="gaussian", help=f"{DATA_HELP} (default: gaussian)")
    f.add_argument("--target", default="checkerboard", help=f"{DATA_HELP} (default: checkerboard)")
    f.add_argument("--out", required=True, help="output directory (created if needed)")
    f.add_argument("--interpolant", default="linear", choices=tuple(INTERPOLANTS))
    f.add_argument(
        "--gamma",
        default="brownian",
        choices=tuple(GAMMAS),
        help="latent noise: brownian = sqrt(a t(1-t)), quadratic = a t(1-t), sin2, sigmoid, zero",
    )
    f.add_argument("--gamma-scale", type=positive_float, default=1.0, help="the a in gamma (default 1)")
    sets = " | ".join(",".join(s) for s in FIELD_SETS)
    f.add_argument("--fields", default="b,s", help=f"fields to learn: {sets}")
    # defaults: the best of a small sweep (architecture, batch, lr) at equal wall time on gaussian -> checkerboard
    f.add_argument("--steps", type=positive_int, default=4000, help="training steps (default 4000)")
    f.add_argument("--time-budget", type=positive_float, default=None, help="training wall-clock cap in seconds")
    f.add_argument("--batch-size", type=positive_int, default=1024)
    f.add_argument("--lr", type=positive_float, default=3e-3, help="peak Adam learning rate (cosine decay)")
    f.add_argument("--hidden", type=positive_int, default=128)
    f.add_argument("--depth", type=positive_int, default=4, help="hidden layers per network")
    f.add_argument("--activation", default="relu", choices=tuple(ACTIVATIONS))
    f.add_argument("--n-train", type=positive_int, default=20000, help="samples drawn from a built-in data set")
    f.add_argument("--n-test", type=positive_int, default=4000, help="held-out samples for the metrics")
    f.add_argument(
        "--eps",
        type=eps_list,
        default=[0.5, 1.0, 2.5],
        help="SDE diffusion levels (paper's eps; diffusion sqrt(2 eps) dW), comma separated (default 0.5,1,2.5)",
    )
    f.add_argument("--sample-steps", type=positive_int, default=500, help="SDE steps (ODE uses a fifth, min 50)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    f.add_argument("--quiet", action="store_true", help="no progress output")


@dataclass
class _Samples:
    """What the samplers produced: samples and wall times by name, and the runs that diverged."""

    x_start: object
    t_range: tuple[float, float]
    samples: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)

    def record(self, args, name: str, what: str, draw) -> None:
        """Run ``draw()`` as sample set ``name``; a diverging sampler is recorded, not raised."""
        t0 = time.perf_counter()
        try:
            self.samples[name] = draw()
        except FloatingPointError as exc:
            self.failures[name] = str(exc)
            log(args, f"[fit] {what}: diverged ({exc}); try more --sample-steps")
            return
        self.timing[name] = time.perf_counter() - t0
        log(args, f"[fit] {what}: {self.timing[name]:.1f}s")


def run(args) -> int:
    """``bridge fit``: train, save the checkpoint, sample, score, plot (under ``torchrun``, every
    rank trains and rank 0 alone does the rest)."""
    import torch

    from ..distributed import current

    require_device(args.device)
    interp, fields = _check_model(args)
    group = current()
    args.quiet = args.quiet or not group.is_main  # progress lines from rank 0 only
    if not group.is_main:  # and its warnings: the other ranks' would repeat them
        warnings.filterwarnings("ignore")
    out = prepare_out(args.out) if group.is_main else Path(args.out)
    gen = torch.Generator().manual_seed(args.seed)
    t_start = time.perf_counter()
    data = load_pair(args.source, args.target, args.n_train, args.n_test, gen)
    device = torch.device(args.device)
    log(
        args,
        f"[fit] {args.source} -> {args.target}: d={data.x0_train.shape[1]}, {data.x0_train.shape[0]}/"
        f"{data.x1_train.shape[0]} training samples, {interp!r}, fields {','.join(fields)}",
    )
    res = _train(args, interp, fields, data, device)
    if not group.is_main:
        return 0
    _save_checkpoint(args, out, res, fields, data.x0_train.shape[1])
    drawn = _sample(args, res.fields, interp, fields, data, gen, device)
    metrics = _score(args, drawn, data, device)
    _write_results(args, out, drawn, metrics, res, t_start)
    _plot_fit(
        out / "samples.png",
        data.x1_test,
        data.x0_test if not interp.one_sided else drawn.x_start.cpu(),
        drawn.samples,
        metrics,
        title=f"{args.source} -> {args.target}  ({args.interpolant}, gamma={args.gamma}, fields {','.join(fields)})",
    )
    _summarise(args, drawn, metrics, out)
    return 0


def _check_model(args):
    """The interpolant and the field set, checked against each other and against the data."""
    from ..data import is_standard_normal
    from ..train import check_field_set

    interp = make_interpolant(args.interpolant, args.gamma, args.gamma_scale)
    with user_input(ValueError):
        fields = check_field_set(args.fields, interp)
        gaussian_source = is_standard_normal(args.source)
    if interp.one_sided and not gaussian_source:
        raise UsageError(
            f"--source: a one-sided interpolant uses x0 ~ N(0, I); pass --source gaussian (or gaussian:D), "
            f"got {args.source!r}"
        )
    if interp.mirror and args.source != args.target:
        raise UsageError(
            "--source/--target: the mirror interpolant maps a distribution to itself; pass the same data for both"
        )
    return interp, fields


def _train(args, interp, fields, data, device):
    from ..train import train_fields

    return train_fields(
        interp,
        data.x0_train.to(device),
        data.x1_train.to(device),
        fields=fields,
        steps=args.steps,
        time_budget=args.time_budget,
        batch_size=args.batch_size,
        lr=args.lr,
        hidden=args.hidden,
        depth=args.depth,
        activation=args.activation,
        seed=args.seed,
        log_every=0 if args.quiet else max(1, args.steps // 10),
        progress=lambda m: log(args, m),
        threads=None,  # the command's --threads, set for the whole command by bridge.cli.app
    )


def _save_checkpoint(args, out: Path, res, fields, d: int) -> None:
    """The networks' weights and the metadata :func:`bridge.fit_run.load_fit_run` rebuilds them from."""
    from .. import __version__
    from ..checkpoint import save_checkpoint

    meta = {
        "kind": FIT_RUN_KIND,
        "bridge_version": __version__,
        "interpolant": {"name": args.interpolant, "gamma": args.gamma, "gamma_scale": args.gamma_scale},
        "fields": list(fields),
        "model": {f: m.config for f, m in res.models.items()},
        "dim": d,
        "source": args.source,
        "target": args.target,
        "seed": args.seed,
        "train": {
            "steps": res.steps,
            "wall_s": res.wall_s,
            "stopped_by": res.stopped_by,
            "batch_size": args.batch_size,
            "lr": args.lr,
        },
        "x1_mean": res.fields.x1_mean.tolist() if res.fields.x1_mean is not None else None,
        "history": res.history,
    }
    save_checkpoint(out / FIT_CHECKPOINT, {f: m.state_dict() for f, m in res.models.items()}, meta)
    log(
        args,
        f"[fit] trained {res.steps} steps in {res.wall_s:.1f}s ({res.stopped_by}); "
        f"checkpoint -> {out / FIT_CHECKPOINT}",
    )


def _sampling_window(fl, interp, fields):
    """``(t0, t1, denoise)``: where the samplers integrate, and the final denoising step, if any.

    A score from eta is -eta/gamma, undefined where gamma = 0: sample inside (0, 1) (two-sided:
    t = 0 and 1; one-sided: alpha = 0 at t = 1 only, so integrate to 0.97 and denoise).
    """
    if "eta" in fields and interp.one_sided:
        return 0.0, ONE_SIDED_DENOISE_T, fl.x1_estimate
    if "eta" in fields:
        return (*ETA_SAMPLING_T_RANGE, None)
    return 0.0, 1.0, None


def _sample(args, fl, interp, fields, data, gen, device) -> _Samples:
    """ODE samples, and SDE samples at each ``--eps`` when a score was learned."""
    import torch

    from ..samplers import Heun, StochasticHeun, sample_ode, sample_sde

    x_start = data.x0_test.to(device)
    if interp.one_sided:
        x_start = torch.randn(data.x1_test.shape, generator=gen).to(device)
    ode_steps = max(50, args.sample_steps // 5)
    t0s, t1s, denoise = _sampling_window(fl, interp, fields)
    drawn = _Samples(x_start=x_start, t_range=(t0s, t1s))

    def ode():
        say = _steps_progress(args, ode_steps, "ODE steps")
        return sample_ode(
            fl.drift, x_start, t0=t0s, t1=t1s, steps=ode_steps, solver=Heun(), denoise=denoise, progress=say
        ).x

    def sde(eps):
        return sample_sde(
            fl.forward_drift(eps),
            x_start,
            eps=eps,
            t0=t0s,
            t1=t1s,
            steps=args.sample_steps,
            solver=StochasticHeun(),
            generator=gen,
            denoise=denoise,
            progress=_steps_progress(args, args.sample_steps, f"SDE steps (eps={eps:g})"),
        ).x

    with torch.no_grad():
        if fl.has_drift:
            drawn.record(args, "ode", f"ODE, {ode_steps} Heun steps", ode)
        if fl.has_drift and fl.has_score:
            for eps in args.eps:
                what = f"SDE eps={eps:g}, {args.sample_steps} Heun steps"
                drawn.record(args, f"sde_eps{eps:g}", what, lambda eps=eps: sde(eps))
        else:
            log(args, "[fit] no score learned: skipping the SDE")
    return drawn


def _steps_progress(args, steps: int, unit: str):
    """The samplers' ``(done, total)`` callback: a ``[fit]`` line with the time left every
    :data:`bridge.progress.EVERY_S` seconds."""
    from ..progress import Progress

    return Progress(steps, "fit", lambda m: log(args, m), unit=unit).part(0, steps)


def _score(args, drawn: _Samples, data, device) -> dict:
    """Energy distance and Sinkhorn divergence of each sample set (and of the noise floor) to the
    held-out target. The floor scores as many training targets as the samples have rows (both
    estimates are biased by the sample sizes, so only equal sizes compare)."""
    import torch

    from ..metrics import energy_distance, sinkhorn_divergence

    ref = data.x1_test.to(device).float()
    n_model = drawn.x_start.shape[0]
    floor_x = data.x1_train[:n_model].to(device)
    n_sd = min(SINKHORN_POINTS, ref.shape[0])
    metrics = {
        "held_out_target": int(ref.shape[0]),
        "sampling_t_range": list(drawn.t_range),
        "energy_distance": {"what": "squared energy distance (V-statistic)", "points": int(ref.shape[0])},
        "sinkhorn_divergence": {
            "what": f"geomloss debiased, p=2 (cost |x-y|^2/2), blur={SINKHORN_BLUR}",
            "points": int(n_sd),
        },
    }

    def score(x):
        x = x.float()
        if not bool(torch.isfinite(x).all()):
            return {"energy_distance": None, "sinkhorn_divergence": None, "finite": False}
        return {
            "energy_distance": float(energy_distance(x, ref)),
            "sinkhorn_divergence": float(sinkhorn_divergence(x[:n_sd], ref[:n_sd], blur=SINKHORN_BLUR)),
            "finite": True,
        }

    metrics["noise_floor"] = score(floor_x)
    metrics["noise_floor"]["what"] = (
        f"{floor_x.shape[0]} training target samples vs the {ref.shape[0]} held-out target samples: the sizes "
        "the samples are scored at"
    )
    sizes = {name: [n_model, int(ref.shape[0])] for name in (*drawn.failures, *drawn.samples)}
    metrics["sizes"] = {**sizes, "noise_floor": [int(floor_x.shape[0]), int(ref.shape[0])]}
    for name, msg in drawn.failures.items():
        metrics[name] = {"energy_distance": None, "sinkhorn_divergence": None, "finite": False, "error": msg}
    for name, x in drawn.samples.items():
        metrics[name] = score(x)
        metrics[name]["sample_wall_s"] = drawn.timing[name]
    return metrics


def _write_results(args, out: Path, drawn: _Samples, metrics: dict, res, t_start: float) -> None:
    """The samples as ``.npy`` files and ``metrics.json`` (with wall times, options, versions)."""
    import numpy as np
    import torch

    from .. import __version__
    from ..checkpoint import atomic_write_text

    for name, x in drawn.samples.items():
        np.save(out / f"samples_{name}.npy", x.detach().cpu().float().numpy())
    np.save(out / "samples_start.npy", drawn.x_start.detach().cpu().float().numpy())
    metrics["train_wall_s"] = res.wall_s
    metrics["total_wall_s"] = time.perf_counter() - t_start
    metrics["config"] = recorded_arguments(args)
    metrics["distributed"] = _distributed_record(args.batch_size)
    metrics["versions"] = {"bridge": __version__, "torch": torch.__version__, "python": platform.python_version()}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))


def _distributed_record(batch_size: int) -> dict:
    """``world_size``, the backend and why, and the global batch (every process's rows per step)."""
    from ..distributed import current

    group = current()
    return group.record() | {"batch_size_per_process": batch_size, "global_batch": group.world_size * batch_size}


def _summarise(args, drawn: _Samples, metrics: dict, out: Path) -> None:
    for name in list(drawn.failures) + list(drawn.samples):
        m = metrics[name]
        if m["finite"]:
            log(
                args,
                f"[fit] {name:>12s}: energy distance {m['energy_distance']:.4f}, "
                f"Sinkhorn divergence {m['sinkhorn_divergence']:.4f}",
            )
        else:
            log(args, f"[fit] {name:>12s}: samples contain NaN/Inf (try more --sample-steps)")
    nf = metrics["noise_floor"]
    log(
        args,
        f"[fit] {'noise floor':>12s}: energy distance {nf['energy_distance']:.4f}, "
        f"Sinkhorn divergence {nf['sinkhorn_divergence']:.4f}",
    )
    log(args, f"[fit] wrote {out / 'metrics.json'} and {out / 'samples.png'} ({metrics['total_wall_s']:.0f}s in all)")


def _plot_fit(path, target, source, samples, metrics, title) -> None:
    """One scatter (or histogram in 1-D) panel per sample set, next to the source and the target."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..checkpoint import atomic_write_bytes

    panels = [("source", source, None), ("target (held out)", target, None)]
    panels += [(name, x, metrics[name]) for name, x in samples.items()]
    ncol = len(panels)
    fig, axes = plt.subplots(1, ncol, figsize=(3.0 * ncol, 3.9), squeeze=False)
    tgt = target.detach().cpu().float().numpy()
    lo, hi = tgt[:, :2].min(0), tgt[:, :2].max(0)
    pad = 0.15 * (hi - lo)
    for ax, (name, x, m) in zip(axes[0], panels):
        _plot_panel(ax, name, x.detach().cpu().float().numpy(), m, lo - pad, hi + pad)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))  # room for the title above the panels' three-line titles
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _plot_panel(ax, name: str, x, m, lo, hi) -> None:
    color = "C0" if m is None else "C1"
    if x.shape[1] >= 2:
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4, color=color, rasterized=True)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("coordinate 1")
        ax.set_ylabel("coordinate 2")
    else:
        ax.hist(x[:, 0], bins=60, density=True, color=color)
        ax.set_xlabel("x")
        ax.set_ylabel("density")
    label = name.replace("sde_eps", "SDE eps=").replace("ode", "ODE")
    if m is not None and m.get("finite"):
        label += f"\nenergy distance {m['energy_distance']:.3f}\nSinkhorn divergence {m['sinkhorn_divergence']:.3f}"
    ax.set_title(label, fontsize=9)
    ax.set_aspect("equal" if x.shape[1] >= 2 else "auto")
