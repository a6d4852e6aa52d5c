"""The ``bridge`` command line (also ``python -m bridge``).

Subcommands:

* ``bridge fit --source NAME|FILE --target NAME|FILE --out DIR``: train b plus s (or eta, v) for a
  fixed interpolant, then sample with the ODE and the SDE at a few eps, and write a checkpoint,
  ``metrics.json`` and ``samples.png`` to DIR.
* ``bridge likelihood --run DIR --data NAME|FILE --out DIR``: the per-point negative
  log-likelihood of data under a fit run's ODE or SDE model (SPEC §4), written to
  ``nll.npy`` and ``summary.json``.
* ``bridge solve --source SRC --target TGT --eps EPS --out RUN_DIR``: the Schrödinger bridge by
  max–min over interpolants (SPEC §5), checked against POT's entropic plan on held-out samples;
  writes ``bridge.pt``, ``state.pt`` (resume), ``run.json``, ``report.json`` and four PNGs.
* ``bridge sample --run RUN_DIR --source X0.npy --per-point K --out Y.npy``: K forward-SDE
  samples of x1 for each row of X0 from a solved bridge, as float32 ``(n, K, d)``.

This module is the only place with name -> object tables (interpolants, gamma schedules,
solvers). Every user error ends in one line on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser", "make_interpolant", "load_fit_run", "INTERPOLANTS", "GAMMAS"]

EXIT_USAGE = 2
#: Points used for the Sinkhorn divergence in `bridge fit` (geomloss on CPU is O(n^2) per
#: iteration; 1500 points take a few seconds). The energy distance uses all held-out points.
SINKHORN_POINTS = 1500
#: Sampling t-range for models whose score comes from eta (s = -eta/gamma is undefined at
#: gamma = 0): the paper's [1e-4, 1 - 1e-4] (EXPERIMENTS.md, 128-D mixture).
ETA_SAMPLING_T_RANGE = (1e-4, 1.0 - 1e-4)
#: One-sided models with eta: integrate to this t, then take the denoising step
#: E[x1 | x_t] = (x - alpha eta) / beta (the paper's 0.97, EXPERIMENTS.md).
ONE_SIDED_DENOISE_T = 0.97


def _gammas():
    from ..interpolants import BrownianGamma, QuadraticGamma, SigmoidGamma, SinSquaredGamma, ZeroGamma

    return {
        "brownian": lambda a: BrownianGamma(a=a),  # sqrt(a t(1-t))
        "quadratic": lambda a: QuadraticGamma(a=a),  # a t(1-t)
        "sin2": lambda a: SinSquaredGamma(),
        "sigmoid": lambda a: SigmoidGamma(),
        "zero": lambda a: ZeroGamma(),
    }


def _interpolants():
    from .. import interpolants as I

    return {
        "linear": lambda g: I.Linear(g),
        "trig": lambda g: I.Trig(g),
        "encoder-decoder": lambda g: I.EncoderDecoder(),
        "one-sided-linear": lambda g: I.OneSidedLinear(),
        "one-sided-trig": lambda g: I.OneSidedTrig(),
        "one-sided-vp": lambda g: I.OneSidedVP(),
        "mirror": lambda g: I.Mirror(g),
    }


GAMMAS = ("brownian", "quadratic", "sin2", "sigmoid", "zero")
INTERPOLANTS = ("linear", "trig", "encoder-decoder", "one-sided-linear", "one-sided-trig", "one-sided-vp", "mirror")


def make_interpolant(name: str, gamma: str = "brownian", gamma_scale: float = 1.0):
    """Build an interpolant from its command-line names (e.g. ``"linear"``, ``"brownian"``)."""
    if name not in INTERPOLANTS:
        raise ValueError(f"--interpolant: expected one of {', '.join(INTERPOLANTS)}, got {name!r}")
    if gamma not in GAMMAS:
        raise ValueError(f"--gamma: expected one of {', '.join(GAMMAS)}, got {gamma!r}")
    if name.startswith("one-sided"):
        gamma = "zero"
    return _interpolants()[name](_gammas()[gamma](gamma_scale))


def load_fit_run(run_dir, *, map_location="cpu"):
    """Rebuild the :class:`~bridge.fields.Fields` of a ``bridge fit`` run from its checkpoint.

    Only tensors and JSON are read (``torch.load(weights_only=True)``); the interpolant is
    rebuilt from its command-line names.

    Returns:
        ``(fields, meta)``: the fields (networks in eval mode) and the run's metadata.

    Example:
        >>> # fields, meta = load_fit_run("runs/default"); fields.drift(t, x)
    """
    import torch

    from ..checkpoint import CheckpointError, load_checkpoint
    from ..fields import Fields
    from ..models import MLP

    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"--run: {run} is not a directory")
    state, meta = load_checkpoint(run / "checkpoint.pt", map_location=map_location)
    if meta.get("kind") != "fit":
        raise CheckpointError(f"{run}: not a `bridge fit` run (kind={meta.get('kind')!r})")
    spec = meta["interpolant"]
    interp = make_interpolant(spec["name"], spec["gamma"], spec["gamma_scale"])
    nets = {}
    for f in meta["fields"]:
        cfg = dict(meta["model"][f])
        out_dim = cfg.pop("out_dim")
        net = MLP(cfg.pop("dim"), out_dim=out_dim, **cfg)
        try:
            net.load_state_dict(state[f])
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{run}: weights of field {f!r} do not match its configuration") from exc
        nets[f] = net.to(map_location).eval()
    x1_mean = torch.tensor(meta["x1_mean"]) if meta.get("x1_mean") is not None else None
    return Fields(interp, x1_mean=x1_mean, **nets), meta


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no multi-line usage dump)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {s!r}")
    return v


def _positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _holdout_fraction(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {s!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {s!r}")
    return v


def _refine_rounds(s):
    if s == "auto":
        return s
    try:
        v = int(s)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an int >= 0, got {s!r}")
    return v


def _nonnegative_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {s!r}")
    return v


def _eps_list(s):
    out = []
    for part in s.split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers > 0, got {s!r}") from None
        if not (math.isfinite(v) and v > 0):
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers > 0, got {s!r}")
        out.append(v)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bridge", description="Stochastic interpolants and Schrödinger bridges.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    f = sub.add_parser(
        "fit",
        help="train a generative model between two distributions (fixed interpolant)",
        description="Train b and s (or eta, v) for a fixed interpolant between SOURCE and TARGET, "
        "sample with the ODE and the SDE, and write a checkpoint, metrics.json and "
        "samples.png.",
    )
    f.add_argument(
        "--source", default="gaussian", help="built-in data set name or .npy/.npz/.csv file (default: gaussian)"
    )
    f.add_argument("--target", default="checkerboard", help="built-in data set name or file (default: checkerboard)")
    f.add_argument("--out", required=True, help="output directory (created if needed)")
    f.add_argument("--interpolant", default="linear", choices=INTERPOLANTS)
    f.add_argument(
        "--gamma",
        default="brownian",
        choices=GAMMAS,
        help="latent noise: brownian = sqrt(a t(1-t)), quadratic = a t(1-t), sin2, sigmoid, zero",
    )
    f.add_argument("--gamma-scale", type=_positive_float, default=1.0, help="the a in gamma (default 1)")
    f.add_argument("--fields", default="b,s", help="fields to learn: b,s | b,eta | v,s | v,eta | b | v | eta")
    # defaults: the best of a small sweep (architecture, batch, lr) at equal wall time on gaussian -> checkerboard
    f.add_argument("--steps", type=_positive_int, default=4000, help="training steps (default 4000)")
    f.add_argument("--time-budget", type=_positive_float, default=None, help="training wall-clock cap in seconds")
    f.add_argument("--batch-size", type=_positive_int, default=1024)
    f.add_argument("--lr", type=_positive_float, default=3e-3, help="peak Adam learning rate (cosine decay)")
    f.add_argument("--hidden", type=_positive_int, default=128)
    f.add_argument("--depth", type=_positive_int, default=4, help="hidden layers per network")
    f.add_argument("--activation", default="relu", choices=("relu", "silu", "gelu", "tanh"))
    f.add_argument("--n-train", type=_positive_int, default=20000, help="samples drawn from a built-in data set")
    f.add_argument("--n-test", type=_positive_int, default=4000, help="held-out samples for the metrics")
    f.add_argument(
        "--eps",
        type=_eps_list,
        default=[0.5, 1.0, 2.5],
        help="SDE diffusion levels (paper's eps; diffusion sqrt(2 eps) dW), comma separated (default 0.5,1,2.5)",
    )
    f.add_argument("--sample-steps", type=_positive_int, default=500, help="SDE steps (ODE uses a fifth, min 50)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    f.add_argument("--quiet", action="store_true", help="no progress output")
    _add_likelihood_parser(sub)
    _add_solve_parser(sub)
    _add_sample_parser(sub)
    return p


def _fail(prog: str, msg: str) -> int:
    msg = " ".join(str(msg).split())
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    prog = f"bridge {args.command}"
    try:
        if args.command == "fit":
            return cmd_fit(args)
        if args.command == "likelihood":
            return cmd_likelihood(args)
        if args.command == "solve":
            return cmd_solve(args)
        if args.command == "sample":
            return cmd_sample(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        return _fail(prog, str(exc))
    except RuntimeError as exc:  # e.g. CUDA not available
        return _fail(prog, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return EXIT_USAGE


# ----------------------------------------------------------------------------------------
# bridge fit
# ----------------------------------------------------------------------------------------
def _log(args, msg):
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


def _prepare_out(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out: {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _load_pair(source, target, n_train, n_test, gen):
    """Source and target samples (built-in names or files), each split into train and held-out rows."""
    from ..data import DATASETS, check_same_dim, resolve_samples, split_train_test

    n_total = n_train + n_test
    x0 = resolve_samples(source, n_total, generator=gen)
    x1 = resolve_samples(target, n_total, generator=gen)
    check_same_dim(x0, x1, names=(f"--source {source}", f"--target {target}"))
    for name, x in (("--source", x0), ("--target", x1)):
        if x.shape[0] < 4:
            raise ValueError(f"{name}: need at least 4 samples to hold some out for testing, got {x.shape[0]}")
    # built-in sets were drawn at n_train + n_test; from a file hold out at most a quarter
    n_test0 = n_test if source in DATASETS else min(n_test, x0.shape[0] // 4)
    n_test1 = n_test if target in DATASETS else min(n_test, x1.shape[0] // 4)
    x0_tr, x0_te = split_train_test(x0, n_test0, generator=gen)
    x1_tr, x1_te = split_train_test(x1, n_test1, generator=gen)
    return x0_tr, x0_te, x1_tr, x1_te


def cmd_fit(args) -> int:
    import numpy as np
    import torch

    from .. import __version__
    from ..checkpoint import atomic_write_text, save_checkpoint
    from ..metrics import energy_distance, sinkhorn_divergence
    from ..samplers import Heun, StochasticHeun, sample_ode, sample_sde
    from ..train import check_field_set, train_fields

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda requested but torch reports no CUDA device")
    interp = make_interpolant(args.interpolant, args.gamma, args.gamma_scale)
    fields = check_field_set(args.fields, interp)
    if interp.one_sided and args.source != "gaussian":
        raise ValueError(
            f"--source: a one-sided interpolant uses x0 ~ N(0, I); pass --source gaussian, got {args.source!r}"
        )
    if interp.mirror and args.source != args.target:
        raise ValueError(
            "--source/--target: the mirror interpolant maps a distribution to itself; pass the same data for both"
        )
    out = _prepare_out(args.out)
    gen = torch.Generator().manual_seed(args.seed)
    t_start = time.perf_counter()
    x0_tr, x0_te, x1_tr, x1_te = _load_pair(args.source, args.target, args.n_train, args.n_test, gen)
    d = x0_tr.shape[1]
    device = torch.device(args.device)
    _log(
        args,
        f"[fit] {args.source} -> {args.target}: d={d}, {x0_tr.shape[0]}/{x1_tr.shape[0]} training samples, "
        f"{interp!r}, fields {','.join(fields)}",
    )

    res = train_fields(
        interp,
        x0_tr.to(device),
        x1_tr.to(device),
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
        progress=lambda m: _log(args, m),
    )
    meta = {
        "kind": "fit",
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
    save_checkpoint(out / "checkpoint.pt", {f: m.state_dict() for f, m in res.models.items()}, meta)
    _log(
        args,
        f"[fit] trained {res.steps} steps in {res.wall_s:.1f}s ({res.stopped_by}); "
        f"checkpoint -> {out / 'checkpoint.pt'}",
    )

    # --- sampling -----------------------------------------------------------------------
    fl = res.fields
    x_start = x0_te.to(device)
    if interp.one_sided:
        x_start = torch.randn(x1_te.shape, generator=gen).to(device)
    ode_steps = max(50, args.sample_steps // 5)
    # a score from eta is -eta/gamma, undefined where gamma = 0: sample inside (0, 1) then
    # (two-sided: t = 0 and 1; one-sided: alpha = 0 at t = 1 only)
    t0s, t1s, denoise = 0.0, 1.0, None
    if "eta" in fields and interp.one_sided:
        # the paper's recipe with eta (EXPERIMENTS.md, images): integrate to 0.97, then denoise
        t1s, denoise = ONE_SIDED_DENOISE_T, fl.x1_estimate
    elif "eta" in fields:
        t0s, t1s = ETA_SAMPLING_T_RANGE
    metrics_t_range = [t0s, t1s]
    samples, timing = {}, {}
    failures = {}

    def run(name, what, fn):
        t0 = time.perf_counter()
        try:
            samples[name] = fn()
        except FloatingPointError as exc:  # the sampler diverged: record it, keep the other results
            failures[name] = str(exc)
            _log(args, f"[fit] {what}: diverged ({exc}); try more --sample-steps")
            return
        timing[name] = time.perf_counter() - t0
        _log(args, f"[fit] {what}: {timing[name]:.1f}s")

    with torch.no_grad():
        if fl.has_drift:
            run(
                "ode",
                f"ODE, {ode_steps} Heun steps",
                lambda: (
                    sample_ode(fl.drift, x_start, t0=t0s, t1=t1s, steps=ode_steps, solver=Heun(), denoise=denoise).x
                ),
            )
        if fl.has_drift and fl.has_score:
            for eps in args.eps:
                run(
                    f"sde_eps{eps:g}",
                    f"SDE eps={eps:g}, {args.sample_steps} Heun steps",
                    lambda eps=eps: (
                        sample_sde(
                            fl.forward_drift(eps),
                            x_start,
                            eps=eps,
                            t0=t0s,
                            t1=t1s,
                            steps=args.sample_steps,
                            solver=StochasticHeun(),
                            generator=gen,
                            denoise=denoise,
                        ).x
                    ),
                )
        else:
            _log(args, "[fit] no score learned: skipping the SDE")

    # --- metrics ------------------------------------------------------------------------
    ref = x1_te.to(device).float()
    floor_x = x1_tr[: ref.shape[0]].to(device)
    n_sd = min(SINKHORN_POINTS, ref.shape[0])
    metrics = {
        "held_out_target": int(ref.shape[0]),
        "sampling_t_range": metrics_t_range,
        "energy_distance": {"what": "squared energy distance (V-statistic)", "points": int(ref.shape[0])},
        "sinkhorn_divergence": {"what": "geomloss debiased, p=2 (cost |x-y|^2/2), blur=0.05", "points": int(n_sd)},
    }

    def score(x):
        x = x.float()
        if not bool(torch.isfinite(x).all()):
            return {"energy_distance": None, "sinkhorn_divergence": None, "finite": False}
        return {
            "energy_distance": float(energy_distance(x, ref)),
            "sinkhorn_divergence": float(sinkhorn_divergence(x[:n_sd], ref[:n_sd], blur=0.05)),
            "finite": True,
        }

    metrics["noise_floor"] = score(floor_x)
    metrics["noise_floor"]["what"] = "training target samples vs held-out target samples (same size)"
    for name, msg in failures.items():
        metrics[name] = {"energy_distance": None, "sinkhorn_divergence": None, "finite": False, "error": msg}
    for name, x in samples.items():
        metrics[name] = score(x)
        metrics[name]["sample_wall_s"] = timing[name]
        np_path = out / f"samples_{name}.npy"
        np.save(np_path, x.detach().cpu().float().numpy())
    np.save(out / "samples_start.npy", x_start.detach().cpu().float().numpy())
    metrics["train_wall_s"] = res.wall_s
    metrics["total_wall_s"] = time.perf_counter() - t_start
    metrics["config"] = {k: v for k, v in vars(args).items() if k not in ("command",)}
    metrics["versions"] = {"bridge": __version__, "torch": torch.__version__, "python": platform.python_version()}
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    _plot_fit(
        out / "samples.png",
        x1_te,
        x0_te if not interp.one_sided else x_start.cpu(),
        samples,
        metrics,
        title=f"{args.source} -> {args.target}  ({args.interpolant}, gamma={args.gamma}, fields {','.join(fields)})",
    )
    for name in list(failures) + list(samples):
        m = metrics[name]
        if m["finite"]:
            _log(
                args,
                f"[fit] {name:>12s}: energy distance {m['energy_distance']:.4f}, "
                f"Sinkhorn divergence {m['sinkhorn_divergence']:.4f}",
            )
        else:
            _log(args, f"[fit] {name:>12s}: samples contain NaN/Inf (try more --sample-steps)")
    nf = metrics["noise_floor"]
    _log(
        args,
        f"[fit] {'noise floor':>12s}: energy distance {nf['energy_distance']:.4f}, "
        f"Sinkhorn divergence {nf['sinkhorn_divergence']:.4f}",
    )
    _log(args, f"[fit] wrote {out / 'metrics.json'} and {out / 'samples.png'} ({metrics['total_wall_s']:.0f}s in all)")
    return 0


def _plot_fit(path, target, source, samples, metrics, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..checkpoint import atomic_write_bytes

    panels = [("source", source, None), ("target (held out)", target, None)]
    panels += [(name, x, metrics[name]) for name, x in samples.items()]
    ncol = len(panels)
    fig, axes = plt.subplots(1, ncol, figsize=(3.0 * ncol, 3.3), squeeze=False)
    tgt = target.detach().cpu().float().numpy()
    lo, hi = tgt[:, :2].min(0), tgt[:, :2].max(0)
    pad = 0.15 * (hi - lo)
    for ax, (name, x, m) in zip(axes[0], panels):
        x = x.detach().cpu().float().numpy()
        if x.shape[1] >= 2:
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4, color="C0" if m is None else "C1", rasterized=True)
            ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
            ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
        else:
            ax.hist(x[:, 0], bins=60, density=True, color="C0" if m is None else "C1")
            ax.set_xlabel("$x$")
            ax.set_ylabel("density")
        label = name.replace("sde_eps", "SDE eps=").replace("ode", "ODE")
        if m is not None and m.get("finite"):
            label += f"\nED={m['energy_distance']:.3f}  SD={m['sinkhorn_divergence']:.3f}"
        ax.set_title(label, fontsize=9)
        ax.set_aspect("equal" if x.shape[1] >= 2 else "auto")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------------------------
# bridge likelihood
# ----------------------------------------------------------------------------------------
#: Solvers by name for `bridge likelihood` (ODE and SDE).
ODE_SOLVERS = ("euler", "heun", "rk4", "rk45")
SDE_SOLVERS = ("euler-maruyama", "heun")
#: One-sided models with eta: s = -eta / alpha (and alpha_dot for the VP schedule) are singular at
#: t = 1, where alpha = 0; the likelihood paths start at this t instead (ETA_SAMPLING_T_RANGE's cut).
ONE_SIDED_T_MAX = ETA_SAMPLING_T_RANGE[1]


def _add_likelihood_parser(sub) -> None:
    p = sub.add_parser(
        "likelihood",
        help="negative log-likelihood of data under a fit or solve run's ODE or SDE model",
        description="Per-point negative log-likelihood (nats) of data points under the ODE or SDE model "
        "of a `bridge fit` run, or the SDE of a `bridge solve` run (SPEC §4; Feynman-Kac only, since a solve "
        "learns u = b + eps s and not b and s apart). Writes nll.npy, nll_stderr.npy and summary.json to OUT. "
        "Needs a run whose source has a known density (--source gaussian, N(0, I)).",
    )
    p.add_argument("--run", required=True, help="directory of a `bridge fit` or `bridge solve` run")
    p.add_argument("--data", required=True, help="points: .npy/.npz/.csv file of shape (n, d), or a built-in name")
    p.add_argument("--out", required=True, help="output directory (created if needed)")
    p.add_argument("--n", type=_positive_int, default=1000, help="points drawn when --data is a built-in name")
    p.add_argument(
        "--method",
        default="ode",
        choices=("ode", "sde"),
        help="ode: probability flow, integrated backward (exact density of the ODE model); "
        "sde: the forward-SDE model at --eps (needs a score)",
    )
    p.add_argument(
        "--estimator",
        default="ito",
        choices=("ito", "fk"),
        help="SDE estimator: ito = backward Itô (low variance; exact if s is the model's score, else an NLL "
        "upper bound), fk = Feynman-Kac (consistent as --paths grows; also reports the Jensen bound)",
    )
    p.add_argument("--divergence", default="exact", choices=("exact", "hutchinson"))
    p.add_argument("--probes", type=_positive_int, default=4, help="Hutchinson probes per point (default 4)")
    p.add_argument("--distribution", default="rademacher", choices=("rademacher", "gaussian"), help="probe law")
    p.add_argument("--paths", type=_positive_int, default=16, help="SDE paths per point (default 16)")
    p.add_argument(
        "--eps",
        type=_positive_float,
        default=None,
        help="SDE diffusion level (paper's eps; default 1 for `bridge fit` runs, the solve's eps for "
        "`bridge solve` runs)",
    )
    p.add_argument("--steps", type=_positive_int, default=100, help="time steps (fixed-step solvers; default 100)")
    p.add_argument(
        "--solver",
        default=None,
        help=f"ODE: {', '.join(ODE_SOLVERS)} (default heun); SDE: {', '.join(SDE_SOLVERS)} (default heun)",
    )
    p.add_argument("--rtol", type=_positive_float, default=1e-4, help="relative tolerance of --solver rk45")
    p.add_argument("--atol", type=_positive_float, default=1e-5, help="absolute tolerance of --solver rk45")
    p.add_argument("--batch-size", type=_positive_int, default=500, help="points per batch (default 500)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _likelihood_solver(args):
    from ..samplers import RK4, RK45, Euler, EulerMaruyama, Heun, StochasticHeun

    if args.method == "ode":
        table = {"euler": Euler, "heun": Heun, "rk4": RK4, "rk45": RK45}
        name = args.solver or "heun"
    else:
        table = {"euler-maruyama": EulerMaruyama, "heun": StochasticHeun}
        name = args.solver or "heun"
    if name not in table:
        raise ValueError(f"--solver: expected one of {', '.join(table)} for --method {args.method}, got {name!r}")
    if name == "rk45":
        return name, RK45(rtol=args.rtol, atol=args.atol)
    return name, table[name]()


def _finite_or_none(v):
    v = float(v)
    return v if math.isfinite(v) else None


class _SolveRunFields:
    """The fields of a `bridge solve` run for the likelihood estimators: the SB drift ``u`` is the
    forward drift ``b_F = b + eps s`` at the solve's eps (SPEC §5), so it is passed as the drift
    with a zero score at that eps; ``b`` and ``s`` separately are not learned."""

    has_drift = True
    has_score = True

    def __init__(self, result):
        self.result = result

    def drift(self, t, x):
        return self.result.drift(t, x)

    @staticmethod
    def score(t, x):
        return x.new_zeros(x.shape)

    def to(self, dtype):
        self.result.drift_net.to(dtype=dtype)
        return self


def _load_solve_run_for_likelihood(args, device):
    """Fields and metadata of a `bridge solve` run, or a one-line reason why the requested
    estimator cannot use it."""
    from ..sb import BridgeResult

    run_dir = Path(args.run)
    if args.method == "ode":
        raise ValueError(
            "--method ode: the ODE needs the probability-flow drift b, and `bridge solve` learns only the SB "
            "drift u = b + eps s (SPEC §5); use --method sde --estimator fk"
        )
    if args.estimator == "ito":
        raise ValueError(
            "--estimator ito: the backward-Ito estimator needs the score s on its own, and `bridge solve` "
            "learns only u = b + eps s; use --estimator fk"
        )
    result = BridgeResult.load(run_dir / "bridge.pt", map_location=device)
    if args.eps is not None and not math.isclose(args.eps, result.eps, rel_tol=1e-12):
        raise ValueError(
            f"--eps: the bridge's drift belongs to its eps {result.eps:g}; omit --eps or pass {result.eps:g}"
        )
    args.eps = result.eps
    try:
        inputs = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        inputs = {}
    fields = _SolveRunFields(result)
    meta = {
        "dim": result.dim,
        "fields": ["u"],
        "source": inputs.get("source"),
        "sde_model": f"the solved bridge's SDE dX = u dt + sqrt(2 eps) dW, eps {result.eps:g}",
    }
    return fields, meta


def cmd_likelihood(args) -> int:
    import numpy as np
    import torch

    from .. import __version__
    from ..checkpoint import atomic_write_text
    from ..data import resolve_samples
    from ..likelihood import (
        Exact,
        Hutchinson,
        backward_ito_log_density,
        feynman_kac_log_density,
        ode_log_density,
    )
    from ..reference import standard_normal

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda requested but torch reports no CUDA device")
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    solver_name, solver = _likelihood_solver(args)
    t_start = time.perf_counter()
    run_dir = Path(args.run)
    if (run_dir / "bridge.pt").is_file() and not (run_dir / "checkpoint.pt").is_file():
        fields, meta = _load_solve_run_for_likelihood(args, device)
    else:
        fields, meta = load_fit_run(args.run, map_location=device)
        args.eps = 1.0 if args.eps is None else args.eps
    d, learned = int(meta["dim"]), list(meta["fields"])
    if meta.get("source") != "gaussian":
        raise ValueError(
            f"--run: the log-density needs log rho0, so a source with a known density; this run's source is "
            f"{meta.get('source')!r} (samples only); only runs fitted with --source gaussian (N(0, I)) qualify"
        )
    if not fields.has_drift:
        raise ValueError(f"--run: the run's fields ({','.join(learned)}) give no drift b")
    if args.method == "sde" and not fields.has_score:
        raise ValueError(
            f"--method sde: the SDE model needs the score s (learned s or eta), and this run learned only "
            f"{','.join(learned)}; use --method ode"
        )
    gen = torch.Generator(device=device).manual_seed(args.seed)
    x = resolve_samples(args.data, args.n, generator=torch.Generator().manual_seed(args.seed), dtype=dtype)
    if x.shape[1] != d:
        raise ValueError(f"--data: {args.data} has dimension {x.shape[1]} but the run's model has dimension {d}")
    out = _prepare_out(args.out)

    if isinstance(fields, _SolveRunFields):
        fields.to(dtype)
    for name in ("b", "v", "s", "eta"):
        net = getattr(fields, name, None)
        if net is not None:
            net.to(dtype=dtype)
    if getattr(fields, "x1_mean", None) is not None:
        fields.x1_mean = fields.x1_mean.to(dtype=dtype, device=device)
    # fields from eta are singular where the noise scale vanishes (s = -eta / gamma at t = 0, 1;
    # -eta / alpha at t = 1 one-sided; gamma_dot eta for the mirror): stay inside, as `bridge fit` does
    t_range = (0.0, 1.0)
    if "eta" in learned and hasattr(fields, "interpolant"):
        t_range = (0.0, ONE_SIDED_T_MAX) if fields.interpolant.one_sided else ETA_SAMPLING_T_RANGE
    if args.divergence == "exact":
        div = Exact()
    else:
        div = Hutchinson(args.probes, distribution=args.distribution)
    log_rho0 = standard_normal(d, dtype=dtype, device=device).log_prob
    common = dict(log_rho0=log_rho0, divergence=div, solver=solver, steps=args.steps, t_range=t_range, generator=gen)
    _log(args, f"[likelihood] {x.shape[0]} points, d={d}, {args.method} ({solver_name}), {div!r}, t in {t_range}")

    logp, se, extra, nfe = [], [], {"jensen": [], "bias": [], "ess": []}, 0
    for i0 in range(0, x.shape[0], args.batch_size):
        xb = x[i0 : i0 + args.batch_size].to(device)
        try:
            if args.method == "ode":
                r = ode_log_density(fields.drift, xb, **common)
            elif args.estimator == "ito":
                r = backward_ito_log_density(fields.drift, fields.score, xb, eps=args.eps, paths=args.paths, **common)
            else:
                r = feynman_kac_log_density(fields.drift, fields.score, xb, eps=args.eps, paths=args.paths, **common)
                extra["jensen"].append(r.jensen.cpu())
                extra["bias"].append(r.bias.cpu())
                extra["ess"].append(r.ess.cpu())
        except FloatingPointError as exc:
            raise ValueError(f"--steps: the integration diverged ({exc})") from None
        logp.append(r.log_density.detach().cpu().double())
        se.append(r.stderr.detach().cpu().double())
        nfe = r.nfe
        _log(args, f"[likelihood] {min(i0 + args.batch_size, x.shape[0])}/{x.shape[0]} points")
    nll, nll_se = -torch.cat(logp), torch.cat(se)
    n = nll.shape[0]
    wall = time.perf_counter() - t_start
    np.save(out / "nll.npy", nll.numpy())
    np.save(out / "nll_stderr.npy", nll_se.numpy())
    summary = {
        "nll_nats": float(nll.mean()),
        "nll_bits_per_dim": float(nll.mean()) / (d * math.log(2.0)),
        "stderr_nats": _finite_or_none(nll.std() / math.sqrt(n)) if n > 1 else None,
        "stderr_what": "standard error of the mean NLL over the points (includes the per-point Monte-Carlo noise)",
        "mc_stderr_nats": _finite_or_none(nll_se.pow(2).sum().sqrt() / n),
        "method": args.method,
        "estimator": None if args.method == "ode" else args.estimator,
        "model": "ODE (probability flow)"
        if args.method == "ode"
        else meta.get("sde_model", f"forward SDE (b + eps s), eps {args.eps:g}"),
        "divergence": args.divergence,
        "probes": args.probes if args.divergence == "hutchinson" else None,
        "paths": args.paths if args.method == "sde" else None,
        "eps": args.eps if args.method == "sde" else None,
        "solver": solver_name,
        "steps": args.steps if solver_name != "rk45" else None,
        "rk45_tolerances": {"rtol": args.rtol, "atol": args.atol} if solver_name == "rk45" else None,
        "nfe_per_point": nfe,
        "t_range": list(t_range),
        "source_density": f"N(0, I_{d}) (the run's source 'gaussian')",
        "n_points": n,
        "dim": d,
        "run": str(args.run),
        "data": str(args.data),
        "fields": learned,
        "dtype": args.dtype,
        "device": args.device,
        "seed": args.seed,
        "wall_s": wall,
        "versions": {"bridge": __version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    if args.method == "sde" and args.estimator == "fk":
        summary["jensen_nll_nats"] = float(-torch.cat(extra["jensen"]).mean())
        summary["jensen_what"] = "mean of the per-point Jensen upper bounds on the NLL (SI 2.67)"
        summary["fk_bias_nats"] = _finite_or_none(-torch.cat(extra["bias"]).mean())
        summary["fk_ess_median"] = float(torch.cat(extra["ess"]).median())
    if t_range != (0.0, 1.0):
        summary["t_range_note"] = "rho0 = N(0, I) stands in for rho(t_min); the score is singular outside t_range"
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    _log(
        args,
        f"[likelihood] NLL {summary['nll_nats']:.4f} nats ({summary['nll_bits_per_dim']:.4f} bits/dim) "
        f"+- {summary['stderr_nats'] or float('nan'):.4f}; {wall:.1f}s; wrote nll.npy, summary.json to {out}",
    )
    return 0


# ----------------------------------------------------------------------------------------
# bridge solve / bridge sample
# ----------------------------------------------------------------------------------------
#: The run directory of `bridge solve` (README "Solving a bridge").
RUN_FILES = {
    "run.json": "the inputs: data, eps, seed, training-data fingerprint (checked on resume)",
    "state.pt": "training state, written every 30 s and at the end; a rerun with the same --out resumes from it",
    "bridge.pt": "the solved bridge (BridgeResult.save; read by `bridge sample` and BridgeResult.load)",
    "report.json": "checks against POT's entropic plan on held-out samples, settings, timings, history",
    "coupling.png": "x0 -> x1 lines: learned SDE vs POT's plan",
    "marginals.png": "marginals at t = 0, 1/4, 1/2, 3/4, 1: learned SDE vs the Brownian-bridge mixture of POT's plan",
    "coefficients.png": "alpha, beta, gamma of the learned interpolant",
    "history.png": "objective and kinetic energy against the outer step",
}
#: SDE trajectories integrated at once by `bridge sample` (rows x samples per row).
SAMPLE_CHUNK = 65536
#: Seconds between checkpoints of `bridge solve`.
CHECKPOINT_EVERY = 30.0


def _add_solve_parser(sub) -> None:
    p = sub.add_parser(
        "solve",
        help="solve the Schrödinger bridge between two distributions (max-min over interpolants)",
        description="Learn the Schrödinger bridge dX = u dt + sqrt(2 eps) dW from SOURCE to TARGET by max-min "
        "over interpolants (SPEC §5), then check its coupling against POT's entropic plan (reg = 4 eps) on "
        "held-out samples. RUN_DIR gets bridge.pt, state.pt, run.json, report.json, coupling.png, marginals.png, "
        "coefficients.png and history.png. Rerunning with the same --out resumes from state.pt.",
    )
    p.add_argument(
        "--source", required=True, metavar="SRC", help="built-in data set name or .npy/.npz/.csv file of shape (n, d)"
    )
    p.add_argument(
        "--target", required=True, metavar="TGT", help="built-in data set name or .npy/.npz/.csv file of shape (n, d)"
    )
    p.add_argument(
        "--eps",
        required=True,
        metavar="EPS",
        type=_positive_float,
        help="the paper's eps > 0: the bridge's diffusion is sqrt(2 eps) dW (POT reg = 4 eps, geomloss blur = "
        "sqrt(2 eps)); small eps approaches optimal transport",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="RUN_DIR",
        help="run directory (created if needed; an existing state.pt is resumed)",
    )
    p.add_argument(
        "--time-budget",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="hard wall-clock cap on training in seconds, earlier sessions of a resumed run included; "
        "the result so far is saved and evaluated",
    )
    p.add_argument(
        "--steps", type=_positive_int, default=None, metavar="N", help="outer steps (default: SBConfig.outer_steps)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seeds the data, the solver and the evaluation")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quiet", action="store_true", help="no progress output")
    t = p.add_argument_group("data and evaluation")
    t.add_argument("--n-train", type=_positive_int, default=20000, help="training samples drawn from a built-in set")
    t.add_argument(
        "--eval-points",
        type=_positive_int,
        default=1000,
        help="held-out points per side for report.json (from a file: at most a quarter of its rows; default 1000)",
    )
    t.add_argument(
        "--eval-per-point", type=_positive_int, default=16, help="K SDE samples per held-out source point (default 16)"
    )
    t.add_argument("--sde-steps", type=_positive_int, default=500, help="Heun steps of the SDE (default 500)")
    g = p.add_argument_group("solver settings (default: those of bridge.sb.SBConfig)")
    g.add_argument(
        "--coupling",
        default=None,
        choices=("auto", "minibatch", "sinkhorn", "independent"),
        help="how (x0, x1) pairs are drawn (default auto: minibatch plans, or independent when a plan cannot "
        "resolve the conditional law)",
    )
    g.add_argument(
        "--drift-form",
        default=None,
        choices=("w,eta", "b,eta", "v,eta", "u", "endpoint"),
        help="how the drift is learned (default w,eta: a velocity and a denoiser network)",
    )
    g.add_argument("--plan-size", type=_positive_int, default=None, help="points per side of the Sinkhorn coupling")
    g.add_argument("--batch-size", type=_positive_int, default=None, help="Monte-Carlo batch per step")
    g.add_argument("--warmup-steps", type=_nonnegative_int, default=None, help="inner steps before the first outer one")
    g.add_argument("--inner-steps", type=_positive_int, default=None, help="inner steps per outer step")
    g.add_argument(
        "--interpolant",
        default=None,
        choices=("fourier", "neural"),
        help="learned interpolant: linear with Fourier coefficients, or (1-t) x0 + t x1 + t(1-t) N(t, x0, x1)",
    )
    g.add_argument("--hidden", type=_positive_int, default=None, help="width of the drift MLP")
    g.add_argument("--depth", type=_positive_int, default=None, help="hidden layers of the drift MLP")
    g.add_argument("--log-every", type=_nonnegative_int, default=None, help="history record every N outer steps")
    g.add_argument(
        "--gradient-drift",
        default=None,
        choices=("auto", "on", "off"),
        help="learn the drift as the x-gradient of a scalar network, as the SB drift is (slower per step; "
        "default auto: on with the independent coupling)",
    )
    g.add_argument(
        "--holdout",
        type=_holdout_fraction,
        default=None,
        metavar="FRAC",
        help="share of the training samples held out to pick the best state (early stopping; default 0: none)",
    )
    g.add_argument(
        "--patience",
        type=_positive_int,
        default=None,
        metavar="N",
        help="with --holdout: stop after N validations without a better state (default: train to the budget)",
    )
    g.add_argument(
        "--refine-rounds",
        type=_refine_rounds,
        default=None,
        metavar="{auto,N}",
        help="rounds of coupling refinement after the max-min: train on pairs from the learned SDE "
        "(default auto: 1 with the independent coupling, 0 with plans)",
    )


def _add_sample_parser(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="sample the learned coupling of a `bridge solve` run",
        description="K forward-SDE samples of x1 for each row of X0 from a solved bridge (RUN_DIR/bridge.pt), "
        "written as a float32 array of shape (n, K, d) to Y.npy (atomically).",
    )
    p.add_argument("--run", required=True, metavar="RUN_DIR", help="directory of a `bridge solve` run")
    p.add_argument(
        "--source", required=True, metavar="X0.npy", help="starting points x0: .npy/.npz/.csv file of shape (n, d)"
    )
    p.add_argument(
        "--per-point", required=True, type=_positive_int, metavar="K", help="samples of x1 per row of the source"
    )
    p.add_argument("--out", required=True, metavar="Y.npy", help="output .npy file (float32, shape (n, K, d))")
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=500,
        metavar="N",
        help="Heun steps of the SDE, uniform in s with t = 1 - (1-s)^2 (default 500)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="N")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _sb_config(args):
    from ..sb import SBConfig

    names = {
        "steps": "outer_steps",
        "time_budget": "time_budget",
        "coupling": "coupling",
        "plan_size": "plan_size",
        "batch_size": "batch_size",
        "warmup_steps": "warmup_steps",
        "inner_steps": "inner_steps",
        "interpolant": "interpolant",
        "drift_form": "drift_form",
        "hidden": "hidden",
        "depth": "depth",
        "log_every": "log_every",
        "holdout": "holdout",
        "patience": "patience",
        "gradient_drift": "gradient_drift",
        "refine_rounds": "refine_rounds",
    }
    given = {field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg) is not None}
    if "gradient_drift" in given:
        given["gradient_drift"] = {"auto": "auto", "on": True, "off": False}[given["gradient_drift"]]
    return SBConfig(seed=args.seed, **given)


def _fingerprint(*xs) -> str:
    import hashlib

    h = hashlib.sha256()
    for x in xs:
        h.update(str(tuple(x.shape)).encode())
        h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cmd_solve(args) -> int:
    import dataclasses

    import torch

    from ..checkpoint import CheckpointError, atomic_write_text
    from ..sb.report import evaluate_bridge, jsonable, package_versions, write_figures
    from ..sb import CheckpointMismatchError, solve_bridge

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda requested but torch reports no CUDA device")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out: {out} exists and is not a directory")
    t_start = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    x0_tr, x0_te, x1_tr, x1_te = _load_pair(args.source, args.target, args.n_train, args.eval_points, gen)
    cfg = _sb_config(args)
    d, device = x0_tr.shape[1], torch.device(args.device)
    inputs = {
        "kind": "bridge-solve-run",
        "source": args.source,
        "target": args.target,
        "eps": args.eps,
        "dim": d,
        "seed": args.seed,
        "n_train": [x0_tr.shape[0], x1_tr.shape[0]],
        "n_eval": [x0_te.shape[0], x1_te.shape[0]],
        "train_sha256": _fingerprint(x0_tr, x1_tr),
    }
    state = out / "state.pt"
    resuming = state.is_file()
    if resuming and (out / "run.json").is_file():
        try:
            before = json.loads((out / "run.json").read_text())
        except (OSError, json.JSONDecodeError):
            before = {}
        if before.get("train_sha256") not in (None, inputs["train_sha256"]) or before.get("eps") != args.eps:
            raise ValueError(
                f"--out: {state} was trained on other data or another eps (see {out / 'run.json'}); "
                f"use a fresh --out or remove {state}"
            )
    out.mkdir(parents=True, exist_ok=True)
    if not resuming:
        atomic_write_text(out / "run.json", json.dumps(inputs, indent=2))
    _log(
        args,
        f"[solve] {args.source} -> {args.target}: d={d}, eps={args.eps:g}, {x0_tr.shape[0]}/{x1_tr.shape[0]} "
        f"training and {x0_te.shape[0]}/{x1_te.shape[0]} held-out samples, {cfg.outer_steps} outer steps"
        + (f", time budget {args.time_budget:g}s" if args.time_budget else "")
        + (f"; resuming from {state}" if resuming else ""),
    )
    resume_lines = []

    def progress(msg):
        if "resumed" in msg:
            resume_lines.append(msg)
        _log(args, msg)

    try:
        res = solve_bridge(
            x0_tr.to(device),
            x1_tr.to(device),
            args.eps,
            config=cfg,
            progress=progress,
            checkpoint=state,
            checkpoint_every=CHECKPOINT_EVERY,
            resume=True,
        )
    except (CheckpointError, CheckpointMismatchError) as exc:
        why = (
            "is not a loadable checkpoint"
            if isinstance(exc, CheckpointError)
            else "is from another problem or config (data, eps or solver settings differ)"
        )
        raise ValueError(f"--out: {state} {why}; use a fresh --out or remove {state}") from None
    session_s = time.perf_counter() - t_start
    res.save(out / "bridge.pt")
    _log(
        args,
        f"[solve] trained {res.steps} outer steps ({res.stopped_by}), {res.wall_s:.1f}s of training in all; "
        f"saved {out / 'bridge.pt'}",
    )

    t_eval = time.perf_counter()
    ev = evaluate_bridge(
        res,
        x0_te.to(device),
        x1_te,
        x1_floor=x1_tr[: x1_te.shape[0]],
        per_point=args.eval_per_point,
        sde_steps=args.sde_steps,
        generator=torch.Generator(device=device).manual_seed(args.seed),
        progress=lambda m: _log(args, m),
    )
    _log(args, "[solve] evaluation: figures")
    figures = write_figures(ev, res, out)
    eval_s = time.perf_counter() - t_eval
    report = {
        "kind": "bridge-solve-report",
        "problem": {k: v for k, v in inputs.items() if k != "kind"},
        "settings": ev.settings,
        "metrics": ev.metrics,
        "errors": ev.errors,
        "not_computed": {
            "cbw2_uvp": "needs the true conditional law of x1 given x0 (a closed form); samples only here",
            "kde_kl": "SPEC §6's KDE-KL has no implementation in bridge.metrics yet",
        },
        "training": {
            "outer_steps_done": res.steps,
            "stopped_by": res.stopped_by,
            "training_s_all_sessions": res.wall_s,
            "resumed": resuming,
            "resume_log": resume_lines[0] if resume_lines else None,
            "coupling": res.coupling,
            "config": dataclasses.asdict(cfg),
            "history": res.history,
            "validation": res.validation,
        },
        "sde_steps": args.sde_steps,
        "timings": {
            "training_s": res.wall_s,
            "this_session_data_and_training_s": session_s,
            "evaluation_s": eval_s,
            "total_s": time.perf_counter() - t_start,
        },
        "seed": args.seed,
        "device": args.device,
        "versions": package_versions(),
        "arguments": {k: v for k, v in vars(args).items() if k != "command"},
        "files": {name: RUN_FILES[name] for name in ("run.json", "state.pt", "bridge.pt", "report.json", *figures)},
    }
    atomic_write_text(out / "report.json", json.dumps(jsonable(report), indent=2))
    _summarise_solve(args, ev, out)
    return 0


def _summarise_solve(args, ev, out) -> None:
    fmt = lambda v, spec=".4g": "n/a" if v is None else format(v, spec)
    mod = ev.metrics["marginal"]["model"] or {}
    floor = ev.metrics["marginal"]["noise_floor"] or {}
    _log(
        args,
        f"[solve] X_1 vs held-out target: energy distance {fmt(mod.get('energy_distance'))} "
        f"(floor {fmt(floor.get('energy_distance'))}), W2 {fmt(mod.get('w2'))} (floor {fmt(floor.get('w2'))}), "
        f"BW2-UVP {fmt(mod.get('bw2_uvp'))}%",
    )
    cp = ev.metrics["coupling"]
    if cp.get("available"):
        _log(
            args,
            f"[solve] coupling vs POT: cross-covariance rel. error {fmt(cp.get('cross_covariance_rel_error'))}, "
            f"barycentric-map L2-UVP {fmt(cp.get('barycentric_map_l2_uvp'))}%, transport cost "
            f"{fmt(cp.get('model_transport_cost'))} vs {fmt(cp.get('pot_transport_cost'))}",
        )
    for what, msg in ev.errors.items():
        _log(args, f"[solve] warning: {what}: {msg}")
    kin = ev.metrics["kinetic"]
    _log(
        args,
        f"[solve] kinetic energy {fmt(kin.get('path'))} along the SDE, {fmt(kin.get('last'))} in the last history "
        f"record; KL(P || W) = KE / (4 eps) = {fmt(kin.get('kl_path'))}. Wrote {out / 'report.json'} and the figures",
    )


def _write_npy_atomic(path: Path, shape, fill) -> None:
    """Create ``path`` as a float32 ``.npy`` of ``shape`` filled by ``fill(array)``, atomically.

    The array is a memory map on a temporary file next to ``path`` (memory stays bounded),
    moved into place with ``os.replace`` only when ``fill`` returns; on any error the temporary
    file is removed and ``path`` is untouched.
    """
    import os

    import numpy as np

    from ..checkpoint import make_temp_beside

    tmp = make_temp_beside(path)
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(shape))
        fill(arr)
        arr.flush()
        del arr
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cmd_sample(args) -> int:
    import torch

    from ..data import load_samples
    from ..sb import BridgeResult

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device: cuda requested but torch reports no CUDA device")
    run = Path(args.run)
    if not run.is_dir():
        raise FileNotFoundError(f"--run: {run} is not a directory")
    if not (run / "bridge.pt").is_file():
        raise FileNotFoundError(f"--run: {run} has no bridge.pt (not a finished `bridge solve` run)")
    out = Path(args.out)
    if out.is_dir():
        raise IsADirectoryError(f"--out: {out} is a directory; expected the path of a .npy file")
    if out.suffix.lower() != ".npy":
        raise ValueError(f"--out: expected a file name ending in .npy, got {str(out)!r}")
    device = torch.device(args.device)
    res = BridgeResult.load(run / "bridge.pt", map_location=device)
    x0 = load_samples(args.source)
    d = res.dim
    if x0.shape[1] != d:
        raise ValueError(f"--source: {args.source} has dimension {x0.shape[1]} but the run's bridge has dimension {d}")
    n, k = x0.shape[0], args.per_point
    dtype = next(res.drift_net.parameters()).dtype
    gen = torch.Generator(device=device).manual_seed(args.seed)
    rows = max(1, SAMPLE_CHUNK // k)
    k_chunk = min(k, SAMPLE_CHUNK)
    t_start = time.perf_counter()
    _log(args, f"[sample] {n} points x {k} samples, d={d}, eps={res.eps:g}, {args.steps} Heun steps (end-refined grid)")
    out.parent.mkdir(parents=True, exist_ok=True)

    def fill(arr):
        last = time.perf_counter()
        for i in range(0, n, rows):
            xb = x0[i : i + rows].to(device=device, dtype=dtype)
            for j in range(0, k, k_chunk):
                kk = min(k_chunk, k - j)
                try:
                    y = res.sample(xb, per_point=kk, steps=args.steps, generator=gen)
                except FloatingPointError as exc:
                    raise ValueError(f"--steps: the SDE diverged ({exc}); try more --steps") from None
                arr[i : i + xb.shape[0], j : j + kk] = y.detach().cpu().float().numpy()
            done = min(i + rows, n)
            if done == n or time.perf_counter() - last > 5.0:
                last = time.perf_counter()
                _log(args, f"[sample] {done}/{n} points, {last - t_start:.1f}s")

    _write_npy_atomic(out, (n, k, d), fill)
    _log(args, f"[sample] wrote {out}: float32 array of shape ({n}, {k}, {d}) in {time.perf_counter() - t_start:.1f}s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
