r"""Benchmark: Sinkhorn runs that cannot converge, stopped early (docs/math.md §5.12).

    python benchmarks/sinkhorn_give_up.py --data DIR    # CITE-seq days 2 and 4, as `bridge solve` reads them (~10 min)
    python benchmarks/sinkhorn_give_up.py               # a synthetic 50-dimensional stand-in (~10 min)
    python benchmarks/sinkhorn_give_up.py --quick       # a few seconds (CI)

``bridge solve --eps 0.05`` on the unscaled CITE-seq cells (``DIR`` holds
``full_cite_pcas_50_day_{2,4}.npy``) makes two Sinkhorn runs that cannot converge: at
``reg = 4 eps = 0.2`` against squared distances of ~10^3 a plan's rows sit on single cells. This
script repeats both, with the early stop of :mod:`bridge.convergence` and without it:

1. the first plan of ``coupling="auto"`` (:func:`bridge.ot.entropic_potentials`, annealed start,
   ``plan_size`` points per side, ``PLAN_SWEEPS`` sweeps at most, accepted at ten times
   ``plan_tol``), also with the cost matrix recomputed every sweep as before it was kept;
2. the evaluation's reference (:func:`bridge.ot.entropic_plan`, POT, 1000 held-out points per
   side, tolerance 1e-6, 10000 iterations at most): with ``check=True`` it gives up, with
   ``check=False`` it runs every iteration.

Without ``--data`` the points are Gaussian with the cells' scale (standard deviation 4 in 50
dimensions). Prints a table and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import bridge.ot as bot
from bridge.ot import ConvergenceError, entropic_plan, entropic_potentials
from bridge.sb import SBConfig
from bridge.sb.couplings import PLAN_SWEEPS

EPS = 0.05


def points(args) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Source and target points in float32, as ``bridge solve`` loads them, and where they came from."""
    if args.data:
        d = Path(args.data)
        x0, x1 = (np.load(d / f"full_cite_pcas_50_day_{k}.npy") for k in (2, 4))
        return torch.from_numpy(x0).float(), torch.from_numpy(x1).float(), "CITE-seq days 2 and 4 (--data)"
    g = torch.Generator().manual_seed(0)
    x0, x1 = 4 * torch.randn(6000, 50, generator=g), 4 * torch.randn(6000, 50, generator=g) + 1
    return x0, x1, "Gaussian, standard deviation 4, d = 50"


def first_plan(a: torch.Tensor, b: torch.Tensor, give_up: bool, keep_cost: bool) -> dict:
    """The coupling's first plan as :func:`bridge.sb.couplings._solve_plan` builds it."""
    tol, cached = SBConfig().plan_tol, bot._CACHED_COST_ELEMENTS
    bot._CACHED_COST_ELEMENTS = cached if keep_cost else 0
    try:
        t0 = time.perf_counter()
        pots = entropic_potentials(
            a, b, EPS, start="anneal", tol=tol, max_iter=PLAN_SWEEPS, check=False,
            give_up_above=10 * tol if give_up else None,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
    finally:
        bot._CACHED_COST_ELEMENTS = cached
    return {"sweeps": pots.n_iter, "s": round(seconds, 2), "marginal_error": pots.marginal_error}


def reference(a: torch.Tensor, b: torch.Tensor, give_up: bool, max_iter: int) -> dict:
    """The evaluation's POT plan: ``check=True`` gives up early; ``check=False`` runs to ``max_iter``."""
    t0 = time.perf_counter()
    try:
        plan = entropic_plan(a, b, EPS, max_iter=max_iter, check=give_up)
        out = {"iterations": plan.n_iter, "marginal_error": plan.marginal_error}
    except ConvergenceError as exc:
        out = {"iterations": int(str(exc).split(" after ")[1].split(" ")[0]), "error": str(exc)}
    return out | {"s": round(time.perf_counter() - t0, 2)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="folder with full_cite_pcas_50_day_{2,4}.npy")
    p.add_argument("--quick", action="store_true", help="small plans and fewer iterations (CI)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/sinkhorn_give_up.json")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    x0, x1, source = points(args)
    plan_n, ref_n, ref_iter = (256, 200, 2000) if args.quick else (SBConfig().plan_size, 1000, 10_000)
    g = torch.Generator().manual_seed(0)
    a, b = x0[torch.randperm(x0.shape[0], generator=g)[:plan_n]], x1[torch.randperm(x1.shape[0], generator=g)[:plan_n]]
    ra, rb = x0[-ref_n:].double(), x1[-ref_n:].double()
    rows = {
        "first plan: early stop, cost kept (now)": first_plan(a, b, True, True),
        "first plan: every sweep, cost kept": first_plan(a, b, False, True),
        "first plan: every sweep, cost recomputed (before)": first_plan(a, b, False, False),
        "reference: early stop (now)": reference(ra, rb, True, ref_iter),
        "reference: every iteration (before)": reference(ra, rb, False, ref_iter),
    }
    print(f"\n{source}; eps = {EPS}; first plan {plan_n} points per side, reference {ref_n}")
    print("| run | iterations | seconds |\n|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r.get('sweeps', r.get('iterations'))} | {r['s']:.1f} |")
    record = {
        "what": "Sinkhorn runs that cannot converge, with and without the early stop (bridge.convergence)",
        "data": source,
        "eps": EPS,
        "quick": args.quick,
        "threads": args.threads,
        "runs": rows,
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
