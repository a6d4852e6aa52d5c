r"""The CITE-seq single-cell time course in LightSB's protocol: predict an unseen intermediate day.

    python benchmarks/single_cell.py --data DIR                 # ~10+ min: 2 tasks x methods x --budget
    python benchmarks/single_cell.py --data DIR --quick         # a few seconds on subsampled cells (CI)

``DIR`` holds ``full_cite_pcas_50_day_{2,3,4,7}.npy`` (from the ``data/`` folder of the public
LightSB repository, ngushchin/LightSB; nothing here downloads them). Without ``--data``, or when
a file is missing, the script prints one line saying it skips and why, and exits 0.

**Protocol** (Korotin et al., "Light Schrödinger Bridge", ICLR 2024, as in their notebook):

* two tasks, day 2 -> day 4 predicting day 3 at ``t = 1/2``, and day 3 -> day 7 predicting day 4
  at ``t = 1/4``; every method learns from all cells of the two end days (unpaired);
* the cells are divided by one scalar, the mean per-coordinate standard deviation of the three
  days involved; reference process :math:`dX = \sqrt{r}\,dW` with ``r = 0.1`` in those units,
  i.e. the paper's ``eps = r/2 = 0.05`` (:math:`dX = u\,dt + \sqrt{2\epsilon}\,dW`);
* each day-a cell gets one predicted ``x1``; the prediction at ``t`` is the Brownian bridge
  :math:`x_t = (1-t)x_0 + t x_1 + \sqrt{r t(1-t)}\,z`, mapped back to the original units;
* score: the energy distance :math:`E|X-Y| - \tfrac12 E|X-X'| - \tfrac12 E|Y-Y'|` with
  U-statistics (half of :func:`bridge.metrics.energy_distance`'s :math:`\mathcal E^2`, which
  doubles the cross term), all predicted against all real day-b cells.

**Methods** (``--methods``):

* ``bridge``: :func:`bridge.sb.solve_bridge` with the network family (``drift_family="network"``),
  otherwise default settings and ``time_budget=--budget``, except ``coupling="independent"``, what
  ``"auto"`` resolves to here after minutes of Sinkhorn, ``x1`` from
  :meth:`~bridge.sb.BridgeResult.sample`; ``bridge-mixture`` and ``bridge-auto`` the same with
  ``drift_family="mixture"`` and ``"auto"`` (the default: the mixture family's trial and held-out
  test, :mod:`bridge.sb.family`), only where this version of ``bridge`` has the families.
* ``lightsb``: :func:`bridge.sb.fit_lightsb` with the settings of LightSB's single-cell notebook
  (K = 10 diagonal components, means started at target cells, batch 128, 10000 Adam steps at a
  constant 1e-2), capped by ``--budget``; exact conditional samples.
* ``sinkhorn``: POT's discrete entropic plan between the two days' cells
  (:func:`bridge.ot.entropic_plan`: ``ot.sinkhorn(..., reg=4 eps, method="sinkhorn_log")``; its
  marginal error is recorded), ``x1`` drawn from the source cell's row.
* ``independent``: ``x1`` a uniformly drawn target cell (the product coupling), a reference
  that any bridge should beat.

Results go to ``--out`` (JSON: settings, versions, per-task scores and wall times, the means);
the table printed at the end puts the published means beside ours.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from keyvalue import parse_overrides  # noqa: E402

FILES = {day: f"full_cite_pcas_50_day_{day}.npy" for day in (2, 3, 4, 7)}
TASKS = ((2, 3, 4), (3, 4, 7))  # (start day, predicted day, end day)
R = 0.1  # LightSB's epsilon: the reference variance per unit time, in the scaled units
EPS = R / 2  # the paper's eps
#: Published means over the two tasks (LightSB's table, dimension 50): (mean, std or None).
PUBLISHED = {
    "LightSB": (2.31, 0.27),
    "discrete Sinkhorn": (2.34, None),
    "Langevin EOT": (2.39, None),
    "minimax ENOT": (2.44, None),
    "IPF": (3.14, None),
}
METHODS = ("bridge", "bridge-mixture", "bridge-auto", "lightsb", "sinkhorn", "independent")
#: fit_lightsb's options as in LightSB's single-cell notebook.
LIGHTSB = {"n_components": 10, "covariance": "diagonal", "steps": 10_000, "lr": 1e-2, "schedule": "constant"}
LIGHTSB |= {"batch_size": 128}


def missing_files(data: str | None) -> str | None:
    """Why the data cannot be used (``None`` when every file is there)."""
    if not data:
        return "no --data folder given"
    folder = Path(data)
    if not folder.is_dir():
        return f"{folder} is not a folder"
    absent = [name for name in FILES.values() if not (folder / name).is_file()]
    return f"{folder} lacks {', '.join(absent)}" if absent else None


def load_task(data: str, days: tuple[int, int, int], *, max_cells: int | None, seed: int) -> dict:
    """The task's three days, scaled by the protocol's scalar (float32 tensors), and the scalar.

    ``max_cells`` subsamples each day (without replacement) after the scalar is computed."""
    arrays = [np.load(Path(data) / FILES[day]).astype(np.float64) for day in days]
    for day, arr in zip(days, arrays):
        if arr.ndim != 2 or arr.shape[0] < 2 or not np.isfinite(arr).all():
            raise ValueError(f"day {day}: expected a finite (n_cells >= 2, d) array, got shape {arr.shape}")
    scale = float(np.concatenate(arrays).std(axis=0).mean())
    rng = np.random.default_rng(seed)
    out = []
    for arr in arrays:
        if max_cells is not None and arr.shape[0] > max_cells:
            arr = arr[rng.choice(arr.shape[0], max_cells, replace=False)]
        out.append(torch.tensor(arr / scale, dtype=torch.float32))
    x0, xb, x1 = out
    return {"x0": x0, "xb": xb, "x1": x1, "scale": scale, "t": (days[1] - days[0]) / (days[2] - days[0])}


def brownian_bridge(x0, x1, t: float, generator: torch.Generator):
    """The protocol's prediction at ``t``: :math:`(1-t)x_0 + t x_1 + \\sqrt{r t (1-t)}\\,z`."""
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    return (1 - t) * x0 + t * x1 + math.sqrt(R * t * (1 - t)) * z


def energy_score(pred, real) -> float:
    """The protocol's energy distance (U-statistics), ``E|X-Y| - E|X-X'|/2 - E|Y-Y'|/2``."""
    from bridge.metrics import energy_distance

    return energy_distance(pred.double(), real.double(), unbiased=True) / 2


# ----------------------------------------------------------------------------------------------
# methods: each returns (x1 predicted for every source cell, a dict of details)


def has_mixture_family() -> bool:
    from bridge.sb import SBConfig

    return "drift_family" in {f.name for f in fields(SBConfig)}


def run_bridge(task, args, g, *, family: str = "network"):
    from bridge.sb import SBConfig, solve_bridge

    # coupling="auto" resolves to "independent" on these cells (its first Sinkhorn plan at reg = 0.2
    # does not converge) after minutes of Sinkhorn iterations outside the budget; name it directly.
    extra = {"coupling": "independent"} | ({"drift_family": family} if has_mixture_family() else {})
    cfg = SBConfig(time_budget=args.budget, seed=args.seed, threads=1, **extra)
    if args.quick:
        cfg = SBConfig(time_budget=args.budget, seed=args.seed, threads=1, outer_steps=20, warmup_steps=10,
                       plan_size=200, log_every=10, refine_rounds=0, **extra)  # fmt: skip
    cfg = replace(cfg, **args.bridge_set)
    res = solve_bridge(task["x0"], task["x1"], EPS, config=cfg, progress=args.say)
    x1 = res.sample(task["x0"], per_point=1, steps=args.sde_steps, generator=g)[:, 0]
    info = {"outer_steps": res.steps, "stopped_by": res.stopped_by, "sampling": res.sampling_method()}
    info |= {"sde_steps": args.sde_steps} if info["sampling"] == "sde" else {}
    coupling = {k: v for k, v in res.coupling.items() if isinstance(v, (str, int, float, bool))}
    return x1, info | {"coupling": coupling, "choices": res.choices, "family": getattr(res, "family", {})}


def run_lightsb(task, args, g):
    from bridge.sb import fit_lightsb

    opts = dict(LIGHTSB) | ({"steps": 200} if args.quick else {})
    res = fit_lightsb(task["x0"], task["x1"], EPS, time_budget=args.budget, generator=g, threads=1,
                      progress=args.say, **opts)  # fmt: skip
    x1 = res.potential.sample(task["x0"], per_point=1, generator=g)[:, 0]
    return x1, {"train_steps": res.steps, "stopped_by": res.stopped_by, "settings": res.settings}


def run_sinkhorn(task, args, g):
    """The entropic plan (reg = 4 eps) between up to ``--sinkhorn-cells`` training cells per side,
    then ``x1`` for every source cell drawn from its row, pi(y_j | x) ~ exp((g_j - |x - y_j|^2) / reg)."""
    from bridge.ot import entropic_potentials

    x0, x1 = task["x0"].double(), task["x1"].double()
    k = args.sinkhorn_cells
    x0s = x0[torch.randperm(x0.shape[0], generator=g)[:k]]
    x1s = x1[torch.randperm(x1.shape[0], generator=g)[:k]]
    pot = entropic_potentials(x0s, x1s, EPS, start="anneal", max_iter=args.sinkhorn_iter, tol=1e-3, check=False)
    x1_pred = pot.conditional_sample(x0, 1, generator=g)[:, 0]
    info = {"reg": 4 * EPS, "cells_per_side": [x0s.shape[0], x1s.shape[0]], "marginal_error_l1": pot.marginal_error}
    return x1_pred.float(), info | {"n_iter": pot.n_iter, "converged_at_tol_1e-3": pot.converged}


def run_independent(task, args, g):
    idx = torch.randint(task["x1"].shape[0], (task["x0"].shape[0],), generator=g)
    return task["x1"][idx], {}


RUNNERS = {
    "bridge": run_bridge,
    "bridge-mixture": lambda task, args, g: run_bridge(task, args, g, family="mixture"),
    "bridge-auto": lambda task, args, g: run_bridge(task, args, g, family="auto"),
    "lightsb": run_lightsb,
    "sinkhorn": run_sinkhorn,
    "independent": run_independent,
}


def run_method(name, task, args) -> dict:
    """Train, predict at the task's ``t`` and score one method (errors are recorded, not raised)."""
    g = torch.Generator().manual_seed(args.seed + 7)
    t0 = time.perf_counter()
    try:
        x1, info = RUNNERS[name](task, args, g)
    except Exception as err:  # one failing method must not lose the others' results
        return {"error": f"{type(err).__name__}: {err}"}
    train_s = time.perf_counter() - t0
    x1 = x1.to(task["x0"].dtype)
    pred = brownian_bridge(task["x0"], x1, task["t"], g)
    score = energy_score(pred * task["scale"], task["xb"] * task["scale"])
    end = energy_score(x1 * task["scale"], task["x1"] * task["scale"])  # the end day, seen in training
    return {"energy": score, "end_energy": end, "wall_s": time.perf_counter() - t0, "train_s": train_s} | info


# ----------------------------------------------------------------------------------------------
# command line


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="folder with full_cite_pcas_50_day_{2,3,4,7}.npy")
    p.add_argument("--quick", action="store_true", help="300 cells per day, tiny budgets (CI)")
    p.add_argument("--budget", type=float, default=None, help="training seconds per method per task (120; quick 3)")
    p.add_argument("--methods", default=None, help=f"comma-separated, from {', '.join(METHODS)} (default: all)")
    p.add_argument("--max-cells", type=int, default=None, help="subsample each day to this many cells")
    p.add_argument("--sde-steps", type=int, default=500, help="SDE steps of the bridge's sampler")
    p.add_argument(
        "--sinkhorn-iter", type=int, default=None, help="Sinkhorn refinement sweeps at most (1000; quick 100)"
    )
    p.add_argument("--sinkhorn-cells", type=int, default=3000, help="cells per side in the discrete plan")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--bridge-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="SBConfig field for the bridge methods (JSON value), e.g. outer_steps=200; repeatable",
    )
    p.add_argument("--out", default=None, help="JSON file (default: none written)")
    args = p.parse_args(argv)
    from bridge.sb import SBConfig

    args.bridge_set = parse_overrides(args.bridge_set, set(SBConfig.__dataclass_fields__), "--bridge-set", p.error)
    args.budget = args.budget if args.budget is not None else (3.0 if args.quick else 120.0)
    args.max_cells = args.max_cells if args.max_cells is not None else (300 if args.quick else None)
    args.sinkhorn_iter = args.sinkhorn_iter or (100 if args.quick else 1000)
    if args.quick:
        args.sde_steps = min(args.sde_steps, 50)
    default = [m for m in METHODS if m not in ("bridge-mixture", "bridge-auto") or has_mixture_family()]
    args.methods = args.methods.split(",") if args.methods else default
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f"--methods: unknown {', '.join(bad)}; expected some of {', '.join(METHODS)}")
    if {"bridge-mixture", "bridge-auto"} & set(args.methods) and not has_mixture_family():
        p.error("--methods: bridge-mixture and bridge-auto need SBConfig(drift_family=...), which this bridge lacks")
    return args


def recorded_argv(argv) -> list[str]:
    """The command line as recorded, the data folder written ``DIR`` (it is the user's path)."""
    items = list(sys.argv[1:] if argv is None else argv)
    return ["DIR" if i and items[i - 1] == "--data" else a.replace(a[7:], "DIR") if a.startswith("--data=") else a
            for i, a in enumerate(items)]  # fmt: skip


def versions() -> dict:
    import ot

    from bridge import __version__

    return {"bridge": __version__, "torch": torch.__version__, "numpy": np.__version__, "pot": ot.__version__,
            "python": platform.python_version(), "platform": platform.platform()}  # fmt: skip


def table(record: dict) -> str:
    """Per-task energies, the mean and the wall times, then the published means."""
    tasks = record["tasks"]
    head = " | ".join(f"{t['name']} (s)" for t in tasks)
    lines = [
        f"| method | {' | '.join(t['name'] for t in tasks)} | mean | {head} |",
        "|---|" + "---|" * (2 * len(tasks) + 1),
    ]
    for name, mean in record["means"].items():
        res = [t["methods"][name] for t in tasks]
        energies = " | ".join(f"{r['energy']:.3f}" if "energy" in r else "error" for r in res)
        walls = " | ".join(f"{r['wall_s']:.0f}" if "wall_s" in r else "-" for r in res)
        lines.append(f"| {name} (here) | {energies} | {'-' if mean is None else f'{mean:.3f}'} | {walls} |")
    for name, (mean, std) in PUBLISHED.items():
        pm = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
        lines.append(f"| {name} (published) |" + " |" * len(tasks) + f" {pm} |" + " |" * len(tasks))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    why = missing_files(args.data)
    if why is not None:
        print(f"benchmarks/single_cell.py: skipped, {why}")
        return 0
    args.say = lambda m: print(f"  {m}", flush=True)
    torch.set_num_threads(1)
    record = {"protocol": "LightSB (ICLR 2024) single-cell, dim 50", "r": R, "eps": EPS, "seed": args.seed,
              "budget_s": args.budget, "quick": args.quick, "max_cells": args.max_cells, "bridge_set": args.bridge_set,
              "lightsb_settings": LIGHTSB, "versions": versions(), "argv": recorded_argv(argv),
              "tasks": []}  # fmt: skip
    for days in TASKS:
        task = load_task(args.data, days, max_cells=args.max_cells, seed=args.seed)
        name = f"{days[0]}->{days[2]} (day {days[1]}, t={task['t']:g})"
        rec = {"name": name, "days": days, "t": task["t"], "scale": task["scale"], "methods": {}}
        rec["cells"] = {f"day {d}": int(task[k].shape[0]) for d, k in zip(days, ("x0", "xb", "x1"))}
        record["tasks"].append(rec)
        for method in args.methods:
            print(f"== {name}: {method}", flush=True)
            rec["methods"][method] = res = run_method(method, task, args)
            print(
                f"   {method}: "
                + (f"energy {res['energy']:.3f}, {res['wall_s']:.0f} s" if "energy" in res else res["error"])
            )
            if args.out:
                Path(args.out).write_text(json.dumps(record, indent=2, default=str))  # partial results survive a stop
    record["means"] = {
        m: (sum(t["methods"][m]["energy"] for t in record["tasks"]) / len(TASKS)
            if all("energy" in t["methods"][m] for t in record["tasks"]) else None)
        for m in args.methods
    }  # fmt: skip
    print(table(record))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
