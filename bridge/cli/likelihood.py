"""``bridge likelihood``: the per-point negative log-likelihood of data under a run's model.

``bridge likelihood --run DIR --data NAME|FILE --out DIR`` evaluates the ODE or SDE model of a
``bridge fit`` run, or the SDE of a ``bridge solve`` run (docs/math.md §4), and writes
``nll.npy``, ``nll_stderr.npy`` and ``summary.json``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

from ..likelihood.divergence import PROBE_DISTRIBUTIONS
from ..samplers import ODE_SOLVERS, SDE_SOLVERS
from .args import positive_float, positive_int
from .common import log, prepare_out, require_device
from .errors import UsageError, user_input
from .fit import ETA_SAMPLING_T_RANGE

__all__ = ["ONE_SIDED_T_MAX", "add_parser", "run"]

#: One-sided models with eta: s = -eta / alpha (and alpha_dot for the VP schedule) are singular at
#: t = 1, where alpha = 0; the likelihood paths start at this t instead (ETA_SAMPLING_T_RANGE's cut).
ONE_SIDED_T_MAX = ETA_SAMPLING_T_RANGE[1]
#: The solver used when ``--solver`` is not given.
DEFAULT_SOLVER = "heun"


def add_parser(sub, parents=()) -> None:
    """The ``likelihood`` subcommand and its options."""
    p = sub.add_parser(
        "likelihood",
        parents=list(parents),
        help="negative log-likelihood of data under a fit or solve run's ODE or SDE model",
        description="Per-point negative log-likelihood (nats) of data points under the ODE or SDE model "
        "of a `bridge fit` run, or the SDE of a `bridge solve` run (docs/math.md §4; Feynman-Kac only, since a "
        "solve learns u = b + eps s and not b and s apart). Writes nll.npy, nll_stderr.npy and summary.json to "
        "OUT. Needs a run whose source has a known density: --source gaussian (or gaussian:D), N(0, I) in the "
        "run's dimension.",
    )
    p.add_argument("--run", required=True, help="directory of a `bridge fit` or `bridge solve` run")
    p.add_argument(
        "--data",
        required=True,
        help="points: .npy/.npz/.csv file of shape (n, d), or a built-in name (gaussian: N(0, I) in the run's "
        "dimension, gaussian:D) to draw --n points from",
    )
    p.add_argument("--out", required=True, help="output directory (created if needed)")
    p.add_argument("--n", type=positive_int, default=1000, help="points drawn when --data is a built-in name")
    _add_estimator_options(p)
    p.add_argument("--batch-size", type=positive_int, default=500, help="points per batch (default 500)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _add_estimator_options(p) -> None:
    """The model (ODE or SDE), the estimator, and how it integrates."""
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
    p.add_argument("--probes", type=positive_int, default=4, help="Hutchinson probes per point (default 4)")
    p.add_argument("--distribution", default="rademacher", choices=PROBE_DISTRIBUTIONS, help="probe law")
    p.add_argument("--paths", type=positive_int, default=16, help="SDE paths per point (default 16)")
    p.add_argument(
        "--eps",
        type=positive_float,
        default=None,
        help="SDE diffusion level (paper's eps; default 1 for `bridge fit` runs, the solve's eps for "
        "`bridge solve` runs)",
    )
    p.add_argument("--steps", type=positive_int, default=100, help="time steps (fixed-step solvers; default 100)")
    p.add_argument(
        "--solver",
        default=None,
        help=f"ODE: {', '.join(ODE_SOLVERS)} (default {DEFAULT_SOLVER}); "
        f"SDE: {', '.join(SDE_SOLVERS)} (default {DEFAULT_SOLVER})",
    )
    p.add_argument("--rtol", type=positive_float, default=1e-4, help="relative tolerance of --solver rk45")
    p.add_argument("--atol", type=positive_float, default=1e-5, help="absolute tolerance of --solver rk45")


def run(args) -> int:
    """``bridge likelihood``: load the run and the data, estimate the NLL per point, write it."""
    import numpy as np
    import torch

    from ..checkpoint import atomic_write_text

    require_device(args.device)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    solver_name, solver = _solver(args)
    t_start = time.perf_counter()
    fields, meta = _load_model(args, device)
    d, learned = int(meta["dim"]), list(meta["fields"])
    x = _load_data(args, d, dtype)
    out = prepare_out(args.out)
    _cast_fields(fields, dtype, device)
    t_range = _t_range(fields, learned)
    est = _estimate(args, fields, x, d, solver, solver_name, t_range, device, dtype)
    wall = time.perf_counter() - t_start
    np.save(out / "nll.npy", est["nll"].numpy())
    np.save(out / "nll_stderr.npy", est["nll_se"].numpy())
    summary = _summary(args, est, meta, learned, d, solver_name, t_range, wall)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    log(
        args,
        f"[likelihood] NLL {summary['nll_nats']:.4f} nats ({summary['nll_bits_per_dim']:.4f} bits/dim) "
        f"+- {summary['stderr_nats'] or float('nan'):.4f}; {wall:.1f}s; wrote nll.npy, summary.json to {out}",
    )
    return 0


def _solver(args):
    """``(name, solver)`` from ``--solver`` for ``--method`` (:data:`ODE_SOLVERS` or :data:`SDE_SOLVERS`)."""
    table = ODE_SOLVERS if args.method == "ode" else SDE_SOLVERS
    name = args.solver or DEFAULT_SOLVER
    if name not in table:
        raise UsageError(f"--solver: expected one of {', '.join(table)} for --method {args.method}, got {name!r}")
    if name == "rk45":
        return name, table[name](rtol=args.rtol, atol=args.atol)
    return name, table[name]()


def _load_model(args, device):
    """The run's fields and metadata, checked to define the requested model; sets ``args.eps``."""
    from ..fit_run import FIT_CHECKPOINT, load_fit_run

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise UsageError(f"--run: {run_dir} is not a directory")
    if (run_dir / "bridge.pt").is_file() and not (run_dir / FIT_CHECKPOINT).is_file():
        fields, meta = _load_solve_run(args, device)
    else:
        with user_input():
            fields, meta = load_fit_run(run_dir, map_location=device)
        args.eps = 1.0 if args.eps is None else args.eps
    learned = list(meta["fields"])
    _check_source_density(meta)
    if not fields.has_drift:
        raise UsageError(f"--run: the run's fields ({','.join(learned)}) give no drift b")
    if args.method == "sde" and not fields.has_score:
        raise UsageError(
            f"--method sde: the SDE model needs the score s (learned s or eta), and this run learned only "
            f"{','.join(learned)}; use --method ode"
        )
    return fields, meta


def _check_source_density(meta) -> None:
    """Refuse a run whose source density is unknown: the estimators need log rho0, and the one
    source with a known density is ``gaussian`` (``gaussian:D``), N(0, I_d) in the run's dimension
    (runs before ``gaussian:D`` recorded ``gaussian`` and dimension 2: the same rule reads them)."""
    from ..data import is_standard_normal

    source = meta.get("source")
    try:
        known = is_standard_normal(source)
    except ValueError:
        known = False
    if not known:
        raise UsageError(
            f"--run: the log-likelihood needs the source's density, and this run's source {source!r} is a sample "
            f"set of unknown density; fit the run with --source gaussian (N(0, I) in any dimension) to compute it"
        )


class _SolveRunFields:
    """The fields of a `bridge solve` run for the likelihood estimators: the SB drift ``u`` is the
    forward drift ``b_F = b + eps s`` at the solve's eps (docs/math.md §5), so it is passed as the
    drift with a zero score at that eps; ``b`` and ``s`` separately are not learned."""

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


def _load_solve_run(args, device):
    """Fields and metadata of a `bridge solve` run, or a one-line reason why the requested
    estimator cannot use it."""
    from ..sb import BridgeResult

    run_dir = Path(args.run)
    if args.method == "ode":
        raise UsageError(
            "--method ode: the ODE needs the probability-flow drift b, and `bridge solve` learns only the SB "
            "drift u = b + eps s (docs/math.md §5); use --method sde --estimator fk"
        )
    if args.estimator == "ito":
        raise UsageError(
            "--estimator ito: the backward-Ito estimator needs the score s on its own, and `bridge solve` "
            "learns only u = b + eps s; use --estimator fk"
        )
    with user_input():
        result = BridgeResult.load(run_dir / "bridge.pt", map_location=device)
    if args.eps is not None and not math.isclose(args.eps, result.eps, rel_tol=1e-12):
        raise UsageError(
            f"--eps: the bridge's drift belongs to its eps {result.eps:g}; omit --eps or pass {result.eps:g}"
        )
    args.eps = result.eps
    try:
        inputs = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        inputs = {}
    meta = {
        "dim": result.dim,
        "fields": ["u"],
        "source": inputs.get("source"),
        "sde_model": f"the solved bridge's SDE dX = u dt + sqrt(2 eps) dW, eps {result.eps:g}",
    }
    return _SolveRunFields(result), meta


def _load_data(args, d: int, dtype):
    """The points of ``--data`` (a file, or ``--n`` draws of a built-in set, a plain ``gaussian`` in
    the run's dimension), of the run's dimension."""
    import torch

    from ..data import resolve_samples

    gen = torch.Generator().manual_seed(args.seed)
    with user_input():
        x = resolve_samples(args.data, args.n, dim=d, generator=gen, dtype=dtype)
    if x.shape[1] != d:
        raise UsageError(f"--data: {args.data} has dimension {x.shape[1]} but the run's model has dimension {d}")
    return x


def _cast_fields(fields, dtype, device) -> None:
    """The networks (and the target mean) in the estimate's dtype."""
    if isinstance(fields, _SolveRunFields):
        fields.to(dtype)
    for name in ("b", "v", "s", "eta"):
        net = getattr(fields, name, None)
        if net is not None:
            net.to(dtype=dtype)
    if getattr(fields, "x1_mean", None) is not None:
        fields.x1_mean = fields.x1_mean.to(dtype=dtype, device=device)


def _t_range(fields, learned) -> tuple[float, float]:
    """Fields from eta are singular where the noise scale vanishes (s = -eta / gamma at t = 0, 1;
    -eta / alpha at t = 1 one-sided; gamma_dot eta for the mirror): stay inside, as `bridge fit` does."""
    if "eta" in learned and hasattr(fields, "interpolant"):
        return (0.0, ONE_SIDED_T_MAX) if fields.interpolant.one_sided else ETA_SAMPLING_T_RANGE
    return (0.0, 1.0)


def _estimate(args, fields, x, d: int, solver, solver_name: str, t_range, device, dtype) -> dict:
    """Log-densities of the points batch by batch: ``nll``, its Monte-Carlo ``nll_se``, the
    Feynman-Kac extras and the evaluations per point."""
    import torch

    from ..likelihood import Exact, Hutchinson, backward_ito_log_density, feynman_kac_log_density, ode_log_density
    from ..progress import Progress
    from ..reference import standard_normal

    div = Exact() if args.divergence == "exact" else Hutchinson(args.probes, distribution=args.distribution)
    log_rho0 = standard_normal(d, dtype=dtype, device=device).log_prob
    gen = torch.Generator(device=device).manual_seed(args.seed)
    common = dict(log_rho0=log_rho0, divergence=div, solver=solver, steps=args.steps, t_range=t_range, generator=gen)
    log(args, f"[likelihood] {x.shape[0]} points, d={d}, {args.method} ({solver_name}), {div!r}, t in {t_range}")
    logp, se, extra, nfe = [], [], {"jensen": [], "bias": [], "ess": []}, 0
    progress = Progress(x.shape[0], "likelihood", lambda m: log(args, m), unit="points")
    for i0 in range(0, x.shape[0], args.batch_size):
        xb = x[i0 : i0 + args.batch_size].to(device)
        common["progress"] = progress.part(i0, xb.shape[0])  # step by step inside the batch
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
            raise UsageError(f"--steps: the integration diverged ({exc})") from None
        logp.append(r.log_density.detach().cpu().double())
        se.append(r.stderr.detach().cpu().double())
        nfe = r.nfe
    return {"nll": -torch.cat(logp), "nll_se": torch.cat(se), "extra": extra, "nfe": nfe}


def _finite_or_none(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _summary(args, est: dict, meta: dict, learned, d: int, solver_name: str, t_range, wall: float) -> dict:
    """``summary.json``: the mean NLL with its standard errors, and how it was computed."""
    import torch

    from .. import __version__

    nll, nll_se = est["nll"], est["nll_se"]
    n = nll.shape[0]
    ode = args.method == "ode"
    summary = {
        "nll_nats": float(nll.mean()),
        "nll_bits_per_dim": float(nll.mean()) / (d * math.log(2.0)),
        "stderr_nats": _finite_or_none(nll.std() / math.sqrt(n)) if n > 1 else None,
        "stderr_what": "standard error of the mean NLL over the points (includes the per-point Monte-Carlo noise)",
        "mc_stderr_nats": _finite_or_none(nll_se.pow(2).sum().sqrt() / n),
        "method": args.method,
        "estimator": None if ode else args.estimator,
        "model": "ODE (probability flow)"
        if ode
        else meta.get("sde_model", f"forward SDE (b + eps s), eps {args.eps:g}"),
        "divergence": args.divergence,
        "probes": args.probes if args.divergence == "hutchinson" else None,
        "paths": None if ode else args.paths,
        "eps": None if ode else args.eps,
        "solver": solver_name,
        "steps": args.steps if solver_name != "rk45" else None,
        "rk45_tolerances": {"rtol": args.rtol, "atol": args.atol} if solver_name == "rk45" else None,
        "nfe_per_point": est["nfe"],
        "t_range": list(t_range),
        "source_density": f"N(0, I_{d}) (the run's source {meta.get('source')!r})",
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
        extra = est["extra"]
        summary["jensen_nll_nats"] = float(-torch.cat(extra["jensen"]).mean())
        summary["jensen_what"] = "mean of the per-point Jensen upper bounds on the NLL (SI 2.67)"
        summary["fk_bias_nats"] = _finite_or_none(-torch.cat(extra["bias"]).mean())
        summary["fk_ess_median"] = float(torch.cat(extra["ess"]).median())
    if t_range != (0.0, 1.0):
        summary["t_range_note"] = "rho0 = N(0, I) stands in for rho(t_min); the score is singular outside t_range"
    return summary
