"""``bridge solve``: the Schrödinger bridge between two data sets, checked against POT.

``bridge solve --source SRC --target TGT --eps EPS --out RUN_DIR`` learns the bridge by max–min
over interpolants (docs/math.md §5) with :func:`bridge.sb.solve_bridge`, checks it against POT's
entropic plan on held-out samples (:mod:`bridge.sb.report`) and writes the run directory
:data:`RUN_FILES`. Rerunning with the same ``--out`` resumes from ``state.pt``. Under
``torchrun --nproc_per_node=N`` the N processes train together (:mod:`bridge.distributed`) and
rank 0 alone writes the run directory, evaluates and prints.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..sb import COUPLINGS, DRIFT_FAMILIES, DRIFT_FORMS, INTERPOLANTS, MIXTURE_COVARIANCES, SBConfig
from ..sb.evaluation import SDE_STEPS
from ..threads import DEFAULT_THREADS
from .args import (
    fraction_or_auto,
    holdout_fraction,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    refine_rounds,
    steps_or_auto,
)
from .common import DATA_HELP, load_pair, log, prepare_out, recorded_arguments, require_device
from .errors import UsageError, in_command_terms, user_input

__all__ = ["CHECKPOINT_EVERY", "CLI_COUPLINGS", "RUN_FILES", "add_parser", "run"]

#: The run directory of `bridge solve` (docs/commands.md).
RUN_FILES = {
    "run.json": "the inputs: data, eps, seed, training-data fingerprint (checked on resume)",
    "state.pt": "training state, written every 30 s and at the end; a rerun with the same --out resumes from it",
    "state.mixture-trial.pt": "with --drift-family auto, when the held-out test rejected the mixture: its trial, "
    "compared with the networks at the end (also on resume)",
    "bridge.pt": "the solved bridge (BridgeResult.save; read by `bridge sample` and BridgeResult.load)",
    "report.json": "checks against POT's entropic plan on held-out samples, settings, timings, history",
    "coupling.png": "x0 -> x1 lines: learned SDE vs POT's plan",
    "marginals.png": "marginals at t = 0, 1/4, 1/2, 3/4, 1: learned SDE vs the Brownian-bridge mixture of POT's plan",
    "coefficients.png": "alpha, beta, gamma of the learned interpolant",
    "history.png": "max–min objective and kinetic energy per outer step",
}
#: Seconds between checkpoints of `bridge solve`.
CHECKPOINT_EVERY = 30.0
#: The couplings ``--coupling`` offers: all of :data:`bridge.sb.COUPLINGS` but ``"paired"``, since
#: the command draws and holds out the source and target rows independently, so row i of one is
#: no partner of row i of the other.
CLI_COUPLINGS = tuple(c for c in COUPLINGS if c != "paired")
#: ``--option`` (argparse dest) -> :class:`bridge.sb.SBConfig` field, for the solver settings.
CONFIG_FIELDS = {
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
    "drift_family": "drift_family",
    "n_components": "n_components",
    "mixture_covariance": "mixture_covariance",
    "kl_share": "kl_share",
    "min_component_count": "min_component_count",
}
#: ``--gradient-drift`` values -> ``SBConfig.gradient_drift``.
GRADIENT_DRIFT = {"auto": "auto", "on": True, "off": False}


def add_parser(sub, parents=()) -> None:
    """The ``solve`` subcommand and its options."""
    p = sub.add_parser(
        "solve",
        parents=list(parents),
        help="solve the Schrödinger bridge between two distributions (max-min over interpolants)",
        description="Learn the Schrödinger bridge dX = u dt + sqrt(2 eps) dW from SOURCE to TARGET by max-min "
        "over interpolants (docs/math.md §5), then check its coupling against POT's entropic plan (reg = 4 eps) "
        "on held-out samples. RUN_DIR gets bridge.pt, state.pt, run.json, report.json, coupling.png, "
        "marginals.png, coefficients.png and history.png. Rerunning with the same --out resumes from state.pt.",
    )
    _add_problem_options(p)
    _add_evaluation_options(p.add_argument_group("data and evaluation"))
    _add_solver_options(p.add_argument_group("solver settings (default: those of bridge.sb.SBConfig)"))


def _add_problem_options(p) -> None:
    p.add_argument("--source", required=True, metavar="SRC", help=DATA_HELP)
    p.add_argument("--target", required=True, metavar="TGT", help=DATA_HELP)
    p.add_argument(
        "--eps",
        required=True,
        metavar="EPS",
        type=positive_float,
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
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="hard wall-clock cap on training in seconds, earlier sessions of a resumed run included; "
        "the result so far is saved and evaluated",
    )
    p.add_argument(
        "--steps", type=positive_int, default=None, metavar="N", help="outer steps (default: SBConfig.outer_steps)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seeds the data, the solver and the evaluation")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _add_evaluation_options(t) -> None:
    t.add_argument("--n-train", type=positive_int, default=20000, help="training samples drawn from a built-in set")
    t.add_argument(
        "--eval-points",
        type=positive_int,
        default=1000,
        help="held-out points per side for report.json (from a file: at most a quarter of its rows; default 1000)",
    )
    t.add_argument(
        "--eval-per-point", type=positive_int, default=16, help="K SDE samples per held-out source point (default 16)"
    )
    t.add_argument(
        "--sde-steps",
        type=steps_or_auto,
        default=SDE_STEPS,
        help="stochastic Heun steps of the evaluation's SDE, on the end-refined grid, or auto: chosen on a pilot "
        f"batch from a measured error, recorded in report.json (default {SDE_STEPS})",
    )
    t.add_argument(
        "--max-memory",
        type=positive_int,
        default=None,
        metavar="MB",
        help="the report's reference plans hold their float64 n x m matrix (POT's solver) while it fits in MB, "
        "and are solved from their potentials beyond (default 256: bridge.ot_backend.DENSE_PLAN_BYTES)",
    )


def _add_solver_options(g) -> None:
    g.add_argument(
        "--coupling",
        default=None,
        choices=CLI_COUPLINGS,
        help="how (x0, x1) pairs are drawn (default auto: minibatch plans, or independent when a plan cannot "
        "resolve the conditional law)",
    )
    g.add_argument(
        "--drift-form",
        default=None,
        choices=DRIFT_FORMS,
        help="how the drift is learned (default w,eta: a velocity and a denoiser network)",
    )
    g.add_argument("--plan-size", type=positive_int, default=None, help="points per side of the Sinkhorn coupling")
    g.add_argument("--batch-size", type=positive_int, default=None, help="Monte-Carlo batch per step")
    g.add_argument("--warmup-steps", type=nonnegative_int, default=None, help="inner steps before the first outer one")
    g.add_argument("--inner-steps", type=positive_int, default=None, help="inner steps per outer step")
    g.add_argument(
        "--interpolant",
        default=None,
        choices=INTERPOLANTS,
        help="learned interpolant: linear with Fourier coefficients, or (1-t) x0 + t x1 + t(1-t) N(t, x0, x1)",
    )
    g.add_argument("--hidden", type=positive_int, default=None, help="width of the drift MLP")
    g.add_argument("--depth", type=positive_int, default=None, help="hidden layers of the drift MLP")
    g.add_argument("--log-every", type=nonnegative_int, default=None, help="history record every N outer steps")
    g.add_argument(
        "--gradient-drift",
        default=None,
        choices=tuple(GRADIENT_DRIFT),
        help="learn the drift as the x-gradient of a scalar network, as the SB drift is (slower per step; "
        "default auto: on with the independent coupling)",
    )
    _add_stopping_options(g)
    _add_mixture_options(g)


def _add_mixture_options(g) -> None:
    g.add_argument(
        "--drift-family",
        default=None,
        choices=DRIFT_FAMILIES,
        help="the drift's family: MLPs of --drift-form (network), a Gaussian-mixture Schrödinger "
        "potential with a closed-form drift and exact sampling (mixture), or (default) auto: the mixture "
        "when a test on held-out samples cannot tell its samples from the target's, else network",
    )
    g.add_argument(
        "--n-components", type=positive_int, default=None, metavar="K", help="mixture components (default 50)"
    )
    g.add_argument(
        "--mixture-covariance",
        default=None,
        choices=MIXTURE_COVARIANCES,
        help="the mixture components' covariances (default auto: full up to dimension 10, diagonal above)",
    )
    g.add_argument(
        "--kl-share",
        type=fraction_or_auto,
        default=None,
        metavar="{auto,FRAC}",
        help="share of the mixture family's training spent first on LightSB's KL objective, before bridge "
        "matching (default auto: 1/3 from dimension 32 on, 0 below)",
    )
    g.add_argument(
        "--min-component-count",
        type=nonnegative_float,
        default=None,
        metavar="N",
        help="switch off the mixture components that account for fewer than N of the training sources' "
        "predicted targets (default 1; 0 keeps them all)",
    )


def _add_stopping_options(g) -> None:
    g.add_argument(
        "--holdout",
        type=holdout_fraction,
        default=None,
        metavar="FRAC",
        help="share of the training samples held out to pick the best state (early stopping; default 0: none)",
    )
    g.add_argument(
        "--patience",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --holdout: stop after N validations without a better state (default: train to the budget)",
    )
    g.add_argument(
        "--refine-rounds",
        type=refine_rounds,
        default=None,
        metavar="{auto,N}",
        help="rounds of coupling refinement after the max-min: train on pairs from the learned SDE "
        "(default auto: 1 with the independent coupling, 0 with plans)",
    )


def sb_config(args) -> SBConfig:
    """The :class:`bridge.sb.SBConfig` of the given solver options (the others keep its defaults)."""
    given = {field: getattr(args, arg) for arg, field in CONFIG_FIELDS.items() if getattr(args, arg) is not None}
    if "gradient_drift" in given:
        given["gradient_drift"] = GRADIENT_DRIFT[given["gradient_drift"]]
    with user_input():
        return SBConfig(seed=args.seed, threads=getattr(args, "threads", DEFAULT_THREADS), **given)


def _fingerprint(*xs) -> str:
    import hashlib

    h = hashlib.sha256()
    for x in xs:
        h.update(str(tuple(x.shape)).encode())
        h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class _Session:
    """One invocation of `bridge solve` on its run directory."""

    out: Path
    inputs: dict
    cfg: SBConfig
    resuming: bool
    t_start: float
    resume_lines: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.out / "state.pt"


def run(args) -> int:
    """``bridge solve``: load the data, solve (or resume), save, evaluate, report (under
    ``torchrun``, every rank trains and rank 0 alone does the rest)."""
    import torch

    from ..distributed import current

    require_device(args.device)
    group = current()
    args.quiet = args.quiet or not group.is_main  # progress lines from rank 0 only
    if not group.is_main:  # and its warnings: the other ranks' would repeat them
        warnings.filterwarnings("ignore")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} exists and is not a directory")
    t_start = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    data = load_pair(args.source, args.target, args.n_train, args.eval_points, gen, test_option="--eval-points")
    cfg = sb_config(args)
    if group.is_main:
        prepare_out(args.out)  # locked from here on: one command per run directory
    session = _Session(out, _problem(args, data), cfg, (out / "state.pt").is_file(), t_start)
    if group.is_main:
        _start(args, session, data)
    device = torch.device(args.device)
    res = _train(args, session, data, device)
    if not group.is_main:
        return 0
    session.timings["training_s"] = res.wall_s
    session.timings["this_session_data_and_training_s"] = time.perf_counter() - t_start
    res.save(out / "bridge.pt")
    log(
        args,
        f"[solve] trained {res.steps} outer steps ({res.stopped_by}), {res.wall_s:.1f}s of training in all; "
        f"saved {out / 'bridge.pt'}",
    )
    t_eval = time.perf_counter()
    ev, figures = _evaluate(args, res, data, out, device)
    _advice_in_flags(ev)
    session.timings["evaluation_s"] = time.perf_counter() - t_eval
    _write_report(args, session, res, ev, figures)
    _summarise(args, ev, out)
    return 0


def _advice_in_flags(ev) -> None:
    """The evaluation's error messages (the warnings and report.json show them) with the library's
    advice worded in flags, or left out where no flag sets what it names."""
    ev.errors = {what: in_command_terms(msg) for what, msg in ev.errors.items()}
    floor = ev.metrics.get("coupling", {}).get("reference_floor")
    if isinstance(floor, dict) and "error" in floor:
        floor["error"] = in_command_terms(floor["error"])


def _problem(args, data) -> dict:
    """``run.json``: what the run solves (checked when it is resumed)."""
    return {
        "kind": "bridge-solve-run",
        "source": args.source,
        "target": args.target,
        "eps": args.eps,
        "dim": data.x0_train.shape[1],
        "seed": args.seed,
        "n_train": [data.x0_train.shape[0], data.x1_train.shape[0]],
        "n_eval": [data.x0_test.shape[0], data.x1_test.shape[0]],
        "train_sha256": _fingerprint(data.x0_train, data.x1_train),
    }


def _start(args, session: _Session, data) -> None:
    """Check a resumed run's inputs, create the run directory, write ``run.json`` (new runs)."""
    from ..checkpoint import atomic_write_text

    out = session.out
    if session.resuming:
        _check_resume(out, session.inputs)
    with user_input(OSError):
        out.mkdir(parents=True, exist_ok=True)
    if not session.resuming:
        atomic_write_text(out / "run.json", json.dumps(session.inputs, indent=2))
    log(
        args,
        f"[solve] {args.source} -> {args.target}: d={data.x0_train.shape[1]}, eps={args.eps:g}, "
        f"{data.x0_train.shape[0]}/{data.x1_train.shape[0]} training and {data.x0_test.shape[0]}/"
        f"{data.x1_test.shape[0]} held-out samples, {session.cfg.outer_steps} outer steps"
        + (f", time budget {args.time_budget:g}s" if args.time_budget else "")
        + (f"; resuming from {session.state}" if session.resuming else ""),
    )


def _check_resume(out: Path, inputs: dict) -> None:
    """Refuse to resume ``state.pt`` on other data or another eps than ``run.json`` records."""
    if not (out / "run.json").is_file():
        return
    try:
        before = json.loads((out / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        before = {}
    if before.get("train_sha256") not in (None, inputs["train_sha256"]) or before.get("eps") != inputs["eps"]:
        raise UsageError(
            f"--out: {out / 'state.pt'} was trained on other data or another eps (see {out / 'run.json'}); "
            f"use a fresh --out or remove {out / 'state.pt'}"
        )


def _train(args, session: _Session, data, device):
    """:func:`bridge.sb.solve_bridge`, resuming from and checkpointing to ``state.pt``.

    The solver raises ``ValueError`` for input it cannot use (house style; e.g. a ``--holdout``
    that leaves too few points), ``ConvergenceError`` when POT's plan fails at this eps and
    ``FloatingPointError`` when training diverges: all are reported as bad input, one line. A
    checkpoint of another problem or config is refused.
    """
    from ..checkpoint import CheckpointError
    from ..ot import ConvergenceError
    from ..sb import CheckpointMismatchError, solve_bridge

    state = session.state

    def progress(msg):
        if "resumed" in msg:
            session.resume_lines.append(msg)
        log(args, msg)

    try:
        res = solve_bridge(
            data.x0_train.to(device),
            data.x1_train.to(device),
            args.eps,
            config=session.cfg,
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
        raise UsageError(f"--out: {state} {why}; use a fresh --out or remove {state}") from exc
    except (ValueError, ConvergenceError, FloatingPointError) as exc:
        raise UsageError(str(exc)) from exc
    return res


def _evaluate(args, res, data, out: Path, device):
    """The solved bridge against POT's plan on the held-out samples, and the figures."""
    import torch

    from ..sb.report import evaluate_bridge, write_figures

    ev = evaluate_bridge(
        res,
        data.x0_test.to(device),
        data.x1_test,
        x1_floor=data.x1_train,  # disjoint sets of the model's size give the noise floor
        per_point=args.eval_per_point,
        sde_steps=args.sde_steps,
        plan_memory=None if args.max_memory is None else args.max_memory * 2**20,
        generator=torch.Generator(device=device).manual_seed(args.seed),
        progress=lambda m: log(args, m),
    )
    log(args, "[solve] evaluation: figures")
    return ev, write_figures(ev, res, out)


def _write_report(args, session: _Session, res, ev, figures) -> None:
    """``report.json``: the problem, the checks, the training record, timings and versions."""
    from ..checkpoint import atomic_write_text
    from ..sb.report import jsonable, package_versions

    report = {
        "kind": "bridge-solve-report",
        "problem": {k: v for k, v in session.inputs.items() if k != "kind"},
        "settings": ev.settings,
        "metrics": ev.metrics,
        "errors": ev.errors,
        "not_computed": {
            "cbw2_uvp": "needs the true conditional law of x1 given x0 (a closed form); samples only here",
            "kde_kl": "docs/math.md §6's KDE-KL has no implementation in bridge.metrics yet",
        },
        "training": {
            "outer_steps_done": res.steps,
            "stopped_by": res.stopped_by,
            "training_s_all_sessions": res.wall_s,
            "resumed": session.resuming,
            "resume_log": session.resume_lines[0] if session.resume_lines else None,
            "coupling": res.coupling,
            "config": res.config.to_dict(),  # the settings used, every "auto" resolved
            "auto_choices": res.choices,  # why each "auto" setting was resolved as it was
            "family": res.family,  # drift_family="auto": the mixture family's test (bridge.sb.family)
            "history": res.history,
            "validation": res.validation,
        },
        "sde_steps": ev.settings["sde"]["steps"],  # what "auto" chose: settings.sde.steps_choice
        "timings": {**session.timings, "total_s": time.perf_counter() - session.t_start},
        "seed": args.seed,
        "device": args.device,
        "distributed": _distributed_record(session.cfg),
        "versions": package_versions(),
        "arguments": recorded_arguments(args),
        "files": {
            name: RUN_FILES[name]
            for name in ("run.json", "state.pt", *_trial(session), "bridge.pt", "report.json", *figures)
        },
    }
    atomic_write_text(session.out / "report.json", json.dumps(jsonable(report), indent=2))


def _trial(session) -> tuple[str, ...]:
    """The rejected mixture trial's file, where the solve left one."""
    name = "state.mixture-trial.pt"
    return (name,) if (session.out / name).is_file() else ()


def _distributed_record(cfg: SBConfig) -> dict:
    """``world_size``, the backend and why, and the global batch (every process's rows per step)."""
    from ..distributed import current

    group, n = current(), cfg.batch_size
    return group.record() | {"batch_size_per_process": n, "global_batch": group.world_size * n}


def _summarise(args, ev, out: Path) -> None:
    """The checks in a few lines on stderr."""

    def fmt(v, spec=".4g"):
        return "n/a" if v is None else format(v, spec)

    marg = ev.metrics["marginal"]
    mod, floor, spread = (marg.get(k) or {} for k in ("model", "noise_floor", "noise_floor_spread"))

    def vs_floor(key, unit=""):
        sd = f" ± {fmt(spread[key], '.2g')}{unit}" if spread.get(key) is not None else ""
        return f"{fmt(mod.get(key))}{unit} (floor {fmt(floor.get(key))}{unit}{sd})"

    log(
        args,
        f"[solve] X_1 vs held-out target: energy distance {vs_floor('energy_distance')}, W2 {vs_floor('w2')}, "
        f"BW2-UVP {vs_floor('bw2_uvp', '%')}",
    )
    cp = ev.metrics["coupling"]
    if cp.get("available"):
        log(
            args,
            f"[solve] coupling vs POT: cross-covariance rel. error {fmt(cp.get('cross_covariance_rel_error'))}, "
            f"barycentric-map L2-UVP {fmt(cp.get('barycentric_map_l2_uvp'))}%, transport cost "
            f"{fmt(cp.get('model_transport_cost'))} vs {fmt(cp.get('pot_transport_cost'))}",
        )
    for what, msg in ev.errors.items():
        log(args, f"[solve] warning: {what}: {msg}")
    kin = ev.metrics["kinetic"]
    log(
        args,
        f"[solve] kinetic energy {fmt(kin.get('path'))} along the SDE, {fmt(kin.get('last'))} in the last history "
        f"record; KL(P || W) = KE / (4 eps) = {fmt(kin.get('kl_path'))}. Wrote {out / 'report.json'} and the figures",
    )
