r"""Why does the SB solver land where it does? Splits its cBW2-UVP on one benchmark problem into parts
(the interpolant family, the optimisation, the estimator variance, or the SDE discretisation).

On a problem of ``benchmarks/sb.py`` (same data, test inputs and floor), it measures:

* ``exact``: the **exact** SB drift (:meth:`SBMixtureBenchmark.drift` /
  :meth:`GaussianSB.drift`, docs/math.md §7) through the same stochastic Heun SDE at each of ``--steps``:
  what the discretisation alone costs, with no learning at all.
* ``learned``: :func:`bridge.sb.solve_bridge` with the default settings and ``--budget``, its
  SDE at each of ``--steps``: the discretisation of the learned drift.
* ``oracle``: the same solver and budget, but trained on ``--oracle-pairs`` (default ``n_train``)
  pairs drawn from the **exact plan** (``SBConfig(coupling="paired")``) instead of Sinkhorn plans
  between independent samples: what the coupling's finite-sample bias costs. A fixed set of pairs
  has one partner per ``x0``; in high dimension ``n_train`` of them are too few to learn the
  conditional mean from, so also run it with many more pairs (e.g. 200000) for the limit. The
  gap between this and the exact drift is the learning itself (network, optimiser, estimator
  variance within the budget).
* ``budget``: the default solver at each of ``--budgets`` (seconds; the full ``--budget`` comes
  from ``learned``): whether more training still helps, i.e. whether the budget is the limit.
* ``sf2m``: SF2M (``benchmarks/sb.py``'s, torchcfm when importable) at each of ``--budgets``
  and ``--budget``, for the same curve.

On the Gaussian problems, every solver row also has the learned drift's error against the exact
SB drift (:func:`drift_errors`): its mean square along the exact marginals (overall and for
``t < 0.1`` and ``t > 0.9``), and the cross-covariance error of its SDE against the exact drift's
on the *same* Brownian increments (``CRN``), which removes the sampling noise that dominates the
plain cross-covariance error at these sizes.

``--bridge-set KEY=VALUE`` changes the solver's settings in every part that runs it (the oracle
keeps ``coupling="paired"``).

Usage::

    python benchmarks/sb_diagnose.py --problem mix16-r1 --budget 300 --budgets 75,150
    python benchmarks/sb_diagnose.py --problem gauss2 --budget 120 --parts learned --steps 100 \
        --bridge-set drift_form=b,eta
    python benchmarks/sb_diagnose.py --quick     # smoke run (a few seconds per part)

Prints a markdown table (cBW2-UVP, its excess over the floor) and writes JSON (default
``benchmarks/results/sb_diagnose.json``, rewritten after every part). One CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import sb as bench  # noqa: E402  (the benchmark's problems, scoring and peers)

from bridge.metrics import cross_covariance  # noqa: E402
from bridge.samplers import StochasticHeun, sample_sde  # noqa: E402
from bridge.sb import end_grid_sde, solve_bridge  # noqa: E402

PARTS = ("exact", "learned", "oracle", "budget", "sf2m")
QUICK = dict(
    problem="mix2-r1", budget=6.0, budgets="3", steps="10,20", main_steps=20, n_train=2000, test_points=40, per_point=40
)


def _numbers(text: str, name: str, kind=float) -> list:
    """Comma-separated positive numbers of ``kind`` (int or float); exits with a one-line error."""
    try:
        vals = [kind(s) for s in text.split(",") if s.strip()]
    except ValueError:
        vals = []
    if not vals or min(vals) <= 0:
        raise SystemExit(f"--{name}: expected comma-separated positive {kind.__name__}s, got {text!r}")
    return vals


def _bench_args(args, **over) -> argparse.Namespace:
    """The namespace ``benchmarks/sb.py``'s helpers read, for this problem and these sizes."""
    ns = bench.parse_args(
        [
            "--problems", args.problem, "--budget", str(args.budget), "--n-train", str(args.n_train),
            "--test-points", str(args.test_points), "--per-point", str(args.per_point),
            "--cov-points", str(args.cov_points), "--seed", str(args.seed), "--threads", "1",
            "--sf2m-impl", args.sf2m_impl,
            *(a for item in args.bridge_set for a in ("--bridge-set", item)),
        ]
    )  # fmt: skip
    ns.grid = args.grid
    for k, v in over.items():
        setattr(ns, k, v)
    return ns


def _score(prob, draw, ns, seed) -> dict:
    out = bench.evaluate(prob, draw, ns, torch.Generator().manual_seed(seed))
    return {k: v for k, v in out.items() if k in ("cbw2_uvp", "cross_cov_error", "sample_s", "cov_sample_s")}


def exact_part(prob, args, ns) -> list[dict]:
    rows = []
    for steps in args.steps:

        def draw(x, k, gen, steps=steps):
            xk = x.repeat_interleave(k, dim=0)
            drift, eps = (
                (prob.ref.drift, prob.eps) if args.grid == "uniform" else end_grid_sde(prob.ref.drift, prob.eps)
            )
            res = sample_sde(drift, xk, eps=eps, steps=steps, solver=StochasticHeun(), generator=gen)
            return res.x.reshape(x.shape[0], k, prob.d)

        row = {"part": "exact", "what": "exact SB drift", "sde_steps": steps, "sde_grid": args.grid}
        rows.append(row | _score(prob, draw, ns, 101))
        bench.say(f"[exact] {steps} steps ({args.grid} grid): cBW2-UVP {rows[-1]['cbw2_uvp']:.3f}%")
    return rows


def _solve(prob, ns, x0, x1, **cfg_over):
    cfg = replace(bench.bridge_config(ns), **cfg_over)
    t0 = time.perf_counter()
    res = solve_bridge(x0, x1, prob.eps, config=cfg, progress=lambda m: bench.say(f"  {m}"))
    return res, time.perf_counter() - t0, cfg


def drift_errors(prob, res, steps: int) -> dict:
    """Gaussian problems: the learned drift against the exact SB drift (:meth:`GaussianSB.drift`).

    * ``drift_mse``: ``E|u - u*|^2`` at 100 times in ``[0.005, 0.995]``, 2000 points each from the
      exact SB marginal at that time (:meth:`GaussianSB.sample_marginal`), averaged over the times
      (``(1 / 4 eps)`` times it is the path-space KL of Girsanov's theorem); also over ``t < 0.1``
      and ``t > 0.9`` alone.
    * ``crn_cross_cov_error``: the relative Frobenius distance between the cross-covariances of the
      learned and of the exact drift's SDE (stochastic Heun, ``steps`` steps), both from the
      cross-covariance inputs with the *same* Brownian increments, so that sampling noise cancels
      and what is left is the drift's own error.
    """
    ref, u = prob.ref, res.drift_net
    g = torch.Generator().manual_seed(5)
    ts = torch.linspace(0.005, 0.995, 100, dtype=torch.float64)
    errs = []
    with torch.no_grad():
        for t in ts.tolist():
            x = ref.sample_marginal(t, 2000, generator=g)
            tt = torch.full((x.shape[0],), t)
            errs.append(float((u(tt, x.to(bench.TRAIN_DT)).double() - ref.drift(t, x)).pow(2).sum(-1).mean()))
        errs = torch.tensor(errs)
        xc = prob.x_cov
        common = dict(eps=prob.eps, steps=steps, solver=StochasticHeun())
        learned = lambda t, x: u(t.to(bench.TRAIN_DT), x.to(bench.TRAIN_DT)).double()
        y_l = sample_sde(learned, xc, generator=torch.Generator().manual_seed(9), **common).x
        y_e = sample_sde(ref.drift, xc, generator=torch.Generator().manual_seed(9), **common).x
    c_l, c_e = cross_covariance(xc, y_l), cross_covariance(xc, y_e)
    return {
        "drift_mse": float(errs.mean()),
        "drift_mse_t_below_0.1": float(errs[ts < 0.1].mean()),
        "drift_mse_t_above_0.9": float(errs[ts > 0.9].mean()),
        "crn_cross_cov_error": float(torch.linalg.matrix_norm(c_l - c_e) / torch.linalg.matrix_norm(prob.C)),
    }


def _bridge_rows(part, what, prob, res, train_s, cfg, ns, steps_list) -> list[dict]:
    rows = []
    for steps in steps_list:
        draw = lambda x, k, gen, s=steps: res.sample(x, per_point=k, steps=s, generator=gen, grid=ns.grid)
        row = {"part": part, "what": what, "budget_s": cfg.time_budget, "train_s": train_s, "sde_steps": steps}
        row |= {"sde_grid": ns.grid, "validation_best_step": res.validation.get("best_step")}
        row |= {"outer_steps": res.steps, "coupling": res.coupling["coupling"]} | _score(prob, draw, ns, 103)
        if prob.kind == "gauss":
            row |= drift_errors(prob, res, steps)
        rows.append(row)
        extra = ""
        if "drift_mse" in row:
            extra = f", drift MSE {row['drift_mse']:.4f}, CRN cross-cov err {100 * row['crn_cross_cov_error']:.2f}%"
        bench.say(f"[{part}] {what}, {steps} steps: cBW2-UVP {row['cbw2_uvp']:.3f}%{extra}")
    return rows


def learned_part(prob, args, ns) -> list[dict]:
    res, train_s, cfg = _solve(prob, ns, prob.x0_train, prob.x1_train)
    return _bridge_rows("learned", "bridge (default)", prob, res, train_s, cfg, ns, args.steps)


def oracle_part(prob, args, ns) -> list[dict]:
    g = torch.Generator().manual_seed(args.seed + 1009)
    n = args.oracle_pairs or args.n_train
    x0, x1 = (x.to(bench.TRAIN_DT) for x in prob.ref.sample_plan(n, generator=g))
    res, train_s, cfg = _solve(prob, ns, x0, x1, coupling="paired")
    return _bridge_rows("oracle", f"bridge on {n} exact-plan pairs", prob, res, train_s, cfg, ns, [args.main_steps])


def budget_part(prob, args, ns) -> list[dict]:
    rows = []
    for b in args.budgets:
        res, train_s, cfg = _solve(prob, ns, prob.x0_train, prob.x1_train, time_budget=b)
        rows += _bridge_rows("budget", f"bridge, {b:g} s", prob, res, train_s, cfg, ns, [args.main_steps])
    return rows


def sf2m_part(prob, args, ns) -> list[dict]:
    rows = []
    for b in [*args.budgets, args.budget]:
        out = bench.run_sf2m(prob, _bench_args(args, budget=b, sde_steps=args.main_steps))
        row = {"part": "sf2m", "what": f"SF2M, {b:g} s", "budget_s": b, "train_s": out["train_s"]}
        row |= {"sde_steps": args.main_steps, "train_steps": out["train_steps"]}
        row |= {"implementation": out["implementation"]}
        row |= {k: out[k] for k in ("cbw2_uvp", "cross_cov_error", "sample_s") if k in out}
        rows.append(row)
        bench.say(f"[sf2m] {b:g} s: cBW2-UVP {row['cbw2_uvp']:.3f}%")
    return rows


RUNNERS = dict(exact=exact_part, learned=learned_part, oracle=oracle_part, budget=budget_part, sf2m=sf2m_part)


def table(rec: dict) -> str:
    f = rec["floor"]
    has_cov = "cross_cov_error" in f
    head = "| part | what | train (s) | SDE steps | cBW2-UVP (%) | − floor |"
    head += " cross-cov err (%) | drift MSE (t<0.1 / t>0.9) | CRN cross-cov err (%) |" if has_cov else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    cov = f" {100 * f['cross_cov_error']:.2f} | — | — |" if has_cov else ""
    lines.append(f"| floor | exact conditional samples | — | — | {f['cbw2_uvp']:.3f} | — |{cov}")
    for r in rec["rows"]:
        tr = f"{r['train_s']:.1f}" if r.get("train_s") is not None else "—"
        cov = ""
        if has_cov:
            cov = f" {100 * r['cross_cov_error']:.2f} |" if "cross_cov_error" in r else " — |"
            if "drift_mse" in r:
                cov += (
                    f" {r['drift_mse']:.4f} ({r['drift_mse_t_below_0.1']:.4f} / {r['drift_mse_t_above_0.9']:.4f}) |"
                    f" {100 * r['crn_cross_cov_error']:.2f} |"
                )
            else:
                cov += " — | — |"
        lines.append(
            f"| {r['part']} | {r['what']} | {tr} | {r['sde_steps']} | {r['cbw2_uvp']:.3f} | "
            f"{r['cbw2_uvp'] - f['cbw2_uvp']:+.3f} |{cov}"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    p.add_argument("--problem", default=None, help="one benchmarks/sb.py problem (default mix16-r1)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--budget", type=float, default=None, help="training seconds of the main runs (default 300)")
    p.add_argument("--budgets", default=None, help="shorter budgets for the budget/sf2m parts (default 75,150)")
    p.add_argument("--steps", default=None, help="SDE step counts for exact/learned (default 25,50,100,200)")
    p.add_argument(
        "--grid",
        choices=("end", "uniform"),
        default="end",
        help="SDE time grid of every part: end-refined t = 1 - (1-s)^2 (BridgeResult.sample's default) or uniform",
    )
    p.add_argument("--main-steps", type=int, default=None, help="SDE steps of the other parts (default 100)")
    p.add_argument("--n-train", type=int, default=None, help="training samples per side (default 10000)")
    p.add_argument("--oracle-pairs", type=int, default=None, help="exact-plan pairs of the oracle (default n_train)")
    p.add_argument("--test-points", type=int, default=None, help="test inputs (default 200)")
    p.add_argument("--per-point", type=int, default=None, help="samples per test input (default 200)")
    p.add_argument("--cov-points", type=int, default=20_000, help="Gaussian problems: inputs for the cross-covariance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sf2m-impl", choices=("auto", "torchcfm", "own"), default="auto", help="as in benchmarks/sb.py")
    p.add_argument(
        "--bridge-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="SBConfig field of the solver runs, as in benchmarks/sb.py (e.g. coupling=independent); repeatable",
    )
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "sb_diagnose.json"))
    args = p.parse_args(argv)
    full = dict(problem="mix16-r1", budget=300.0, budgets="75,150", steps="25,50,100,200", n_train=10_000)
    full |= dict(test_points=200, per_point=200, main_steps=100)
    for key, val in (QUICK if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, val)
    args.steps, args.budgets = _numbers(args.steps, "steps", int), _numbers(args.budgets, "budgets")
    args.parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    bad = [s for s in args.parts if s not in PARTS]
    if bad:
        p.error(f"--parts: unknown {', '.join(bad)}; expected a subset of {', '.join(PARTS)}")
    if args.oracle_pairs is not None and args.oracle_pairs < 2:
        p.error("--oracle-pairs: expected at least 2")
    if not args.budget > 0 or args.main_steps < 1:
        p.error("--budget and --main-steps: expected positive values")
    bench.parse_problem(args.problem)
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)
    ns = _bench_args(args, sde_steps=args.main_steps)
    bench.warm_up()
    prob = bench.build_problem(args.problem, ns)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rec = {
        "what": "where the SB solver's cBW2-UVP comes from (benchmarks/sb_diagnose.py)",
        "config": {k: v for k, v in vars(args).items()},
        "problem": {"name": args.problem, "d": prob.d, "eps": prob.eps, "r": 2 * prob.eps},
        "bridge_defaults": asdict(bench.bridge_config(ns)),
        "versions": bench.versions(),
        "floor": bench.floor(prob, ns),
        "rows": [],
    }
    bench.say(f"[floor] cBW2-UVP {rec['floor']['cbw2_uvp']:.3f}%")
    for part in args.parts:
        rec["rows"] += RUNNERS[part](prob, args, ns)
        out.write_text(json.dumps(rec, indent=2, default=str))
    print(table(rec))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
