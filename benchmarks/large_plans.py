"""Entropic plans at 10^4 and 10^5 points per side: POT's dense solver against the chunked one.

The problem: ``x0 ~ N(0, A)``, ``x1 ~ N(b, B)`` in d = 16 (``A``, ``B`` fixed random SPD
matrices with eigenvalues in [0.5, 1.5], ``b = (1, ..., 1)``), eps = 0.5 (POT reg = 2), where
:func:`bridge.reference.gaussian_sb.gaussian_sb` gives the population plan's cross-covariance ``C``.

* at ``--compare-n`` points per side (default 10^4): POT's dense plan (``bridge.ot.entropic_plan``)
  and the chunked solver in float64 and float32, each in its own process (so that its peak
  resident memory, ``ru_maxrss``, is its own): wall time, sweeps, marginal L1 error, peak memory,
  the largest entry difference of the cross-covariance from POT's, and its relative error
  ``|C_hat - C|_F / |C|_F`` against the closed form;
* at ``--n`` points per side (default 10^5): the chunked solver alone, after one timed
  half-sweep (an ``f`` update over all ``n x n`` pairs) that sizes the run: if the estimate
  exceeds ``--max-minutes`` only the half-sweep is measured and the extrapolated time is reported.

Prints a table and writes ``benchmarks/results/large_plans_d{d}_{n}.json``.

``--report N`` instead runs the whole reference check of ``bridge solve``'s report
(:func:`bridge.sb.evaluation.evaluate_bridge`) at ``N`` held-out points per side of the same
problem, in a child process: the bridge is the closed-form SB drift (nothing trained; its SDE in
float32 like a trained network), ``K = 16`` SDE samples per point, 100 steps, and an independent
target sample of ``FLOOR_SETS x N`` points for the noise floors (its largest use). It records the
wall time of each stage (the progress lines), the peak resident memory (``ru_maxrss``) and the
settings the evaluation chose (plan backend and dtype, energy-distance backend); it writes
``benchmarks/results/report_check_d{d}_{N}.json``. Run:

    OMP_NUM_THREADS=1 python benchmarks/large_plans.py               # 10^4 comparison and 10^5
    OMP_NUM_THREADS=1 python benchmarks/large_plans.py --quick       # 3000 and 20000: ~1 min
    OMP_NUM_THREADS=1 python benchmarks/large_plans.py --report 100000 --reference-tol 1e-4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent


def problem(n: int, d: int, eps: float, seed: int):
    """``(x0, x1, C)``: samples of the two Gaussians and the closed-form cross-covariance."""
    x0, x1, sb = gaussian_problem(n, d, eps, seed)
    return x0, x1, sb.C


def gaussian_problem(n: int, d: int, eps: float, seed: int):
    """``(x0, x1, sb)``: samples of the two Gaussians and their closed-form bridge (``GaussianSB``)."""
    from bridge.reference.gaussian_sb import gaussian_sb

    g = torch.Generator().manual_seed(seed)

    def spd():
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        return q @ torch.diag(0.5 + torch.rand(d, generator=g, dtype=torch.float64)) @ q.T

    A, B, b = spd(), spd(), torch.ones(d, dtype=torch.float64)
    sb = gaussian_sb(torch.zeros(d, dtype=torch.float64), A, b, B, eps=eps)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(A).T
    x1 = b + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(B).T
    return x0, x1, sb


def peak_mb() -> float:
    """Peak resident memory of this process (``ru_maxrss``, KiB on Linux) in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def one_run(spec: dict) -> dict:
    """One solve in this process: ``spec`` = n, d, eps, seed, solver ("pot" / "chunked"), dtype, tol."""
    from bridge.ot import entropic_plan
    from bridge.ot_online import chunked_sinkhorn

    torch.set_num_threads(spec["threads"])
    x0, x1, C = problem(spec["n"], spec["d"], spec["eps"], spec["seed"])
    base_mb = peak_mb()
    t0 = time.perf_counter()
    if spec["solver"] == "pot":
        plan = entropic_plan(x0, x1, spec["eps"], tol=spec["tol"], check=False)
        sweeps = plan.n_iter
    else:
        dtype = getattr(torch, spec["dtype"])
        plan = chunked_sinkhorn(x0, x1, spec["eps"], dtype=dtype, tol=spec["tol"], max_iter=2000, check=False)
        sweeps = plan.scaling_sweeps + plan.n_iter
    solve_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    cc = plan.cross_covariance().double()
    out = {
        **spec,
        "solve_s": round(solve_s, 2),
        "cross_covariance_s": round(time.perf_counter() - t1, 2),
        "sweeps": sweeps,
        "scaling_sweeps": plan.scaling_sweeps,
        "marginal_error": plan.marginal_error,
        "peak_mb": round(peak_mb(), 1),
        "peak_mb_before_solve": round(base_mb, 1),
        "cross_covariance_rel_error": float(torch.linalg.matrix_norm(cc - C) / torch.linalg.matrix_norm(C)),
        "cross_covariance": cc.tolist(),
    }
    return out


def half_sweep(spec: dict) -> dict:
    """Time one ``f`` update over all ``n x n`` pairs at temperature ``reg`` (in this process)."""
    from bridge.ot import BLOCK_BYTES, TILE_BYTES
    from bridge.ot_online import _side, _softmin, _tiles

    torch.set_num_threads(spec["threads"])
    x0, x1, _ = problem(spec["n"], spec["d"], spec["eps"], spec["seed"])
    dtype = getattr(torch, spec["dtype"])
    src, dst = _side(x0.to(dtype)), _side(x1.to(dtype))
    tiles = _tiles(x0.shape[0], x1.shape[0], src.x.element_size(), min(BLOCK_BYTES, TILE_BYTES))
    t0 = time.perf_counter()
    _softmin(torch.zeros_like(dst.sq), dst, src, 4 * spec["eps"], tiles)
    return {**spec, "half_sweep_s": round(time.perf_counter() - t0, 2), "peak_mb": round(peak_mb(), 1)}


class ClosedFormDrift(torch.nn.Module):
    """The Gaussian SB's drift as a network would be: float32 in and out (one float32 parameter
    sets the sampler's dtype), the closed form in float64 at the one time of each call."""

    def __init__(self, sb):
        super().__init__()
        self.sb, self.dtype_of = sb, torch.nn.Parameter(torch.zeros(1))

    def forward(self, t, x):
        return self.sb.drift(float(t.reshape(-1)[0]), x.double()).to(x.dtype)


def report_check(spec: dict) -> dict:
    """The whole evaluation of ``bridge solve`` (``evaluate_bridge``) at ``spec["n"]`` points per
    side, in this process: wall time per stage, peak memory, the settings it chose."""
    from bridge.sb import BridgeResult, SBConfig, build_interpolant
    from bridge.sb.evaluation import FLOOR_SETS, evaluate_bridge

    torch.set_num_threads(spec["threads"])
    n, d, eps = spec["n"], spec["d"], spec["eps"]
    x0, x1, sb = gaussian_problem((1 + FLOOR_SETS) * n, d, eps, spec["seed"])
    x0, x1, floor = x0[:n].clone(), x1[:n].clone(), x1[n:].clone()
    cfg = SBConfig(drift_form="u")
    res = BridgeResult(drift_net=ClosedFormDrift(sb), interpolant=build_interpolant(cfg, d, eps), eps=eps, config=cfg)
    base_mb, t0, stages = peak_mb(), time.perf_counter(), []

    def say(line: str) -> None:
        stages.append({"s": round(time.perf_counter() - t0, 1), "peak_mb": round(peak_mb(), 1), "line": line})
        print(f"{stages[-1]['s']:8.1f}s {stages[-1]['peak_mb']:8.0f} MB  {line}", file=sys.stderr, flush=True)

    ev = evaluate_bridge(
        res, x0, x1, x1_floor=floor, reference_tol=spec["reference_tol"], generator=torch.Generator().manual_seed(1),
        progress=say,
    )  # fmt: skip
    coupling, marginal = ev.metrics["coupling"], ev.metrics["marginal"]
    return {
        **spec,
        "wall_s": round(time.perf_counter() - t0, 1),
        "peak_mb": round(peak_mb(), 1),
        "peak_mb_before_check": round(base_mb, 1),
        "stages": stages,
        "settings": ev.settings,
        "errors": ev.errors,
        "cross_covariance_rel_error_model_vs_pot": coupling.get("cross_covariance_rel_error"),
        "pot_cross_covariance_rel_error_vs_closed_form": float(
            torch.linalg.matrix_norm(torch.tensor(coupling["pot_cross_covariance"], dtype=torch.float64) - sb.C)
            / torch.linalg.matrix_norm(sb.C)
        )
        if coupling.get("available")
        else None,
        "reference_floor": coupling.get("reference_floor"),
        "energy_distance_model": (marginal["model"] or {}).get("energy_distance"),
        "energy_distance_floor": (marginal["noise_floor"] or {}).get("energy_distance"),
        "energy_distance_by_t": ev.metrics["marginals_by_t"]["energy_distance"],
    }


def run_report(args) -> None:
    """``--report N``: :func:`report_check` in a child process; prints its summary, writes its JSON."""
    spec = {"n": args.report, "d": args.d, "eps": args.eps, "seed": args.seed, "threads": args.threads}
    spec["reference_tol"] = args.reference_tol
    load_at_start = os.getloadavg()
    out = in_child(spec, "report", stderr=None)
    pot, energy = out["settings"]["pot"], out["settings"]["energy"]
    print(f"reference check at {args.report} points per side: {out['wall_s']:.0f} s, peak {out['peak_mb']:.0f} MB")
    print(f"  plans: {pot['backend']} ({pot['dtype']}, tol {pot['tol_marginal_l1']:g}); energy: {energy['backend']}")
    for st in out["stages"]:
        print(f"  {st['s']:8.1f}s {st['peak_mb']:8.0f} MB  {st['line'][:110]}")
    record = {
        "benchmark": "report_check",
        "command": "python benchmarks/large_plans.py " + " ".join(sys.argv[1:]),
        "problem": f"N(0, A) -> N(1, B) in d = {args.d}, A, B random SPD (eigenvalues in [0.5, 1.5]), eps = {args.eps}",
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "run": out,
    }
    path = ROOT / "results" / f"report_check_d{args.d}_{args.report}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT.parent)}")


def in_child(spec: dict, what: str, stderr=subprocess.PIPE) -> dict:
    """Run ``what`` ("solve" / "half" / "report") for ``spec`` in a fresh process; its JSON result
    (``stderr=None``: the child's progress lines go to this process's stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    cmd = [sys.executable, __file__, "--child", what, json.dumps(spec)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=ROOT.parent, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = f"{'n':>7} {'solver':>8} {'dtype':>7} {'wall s':>8} {'sweeps':>7} {'marg. err':>9} {'peak MB':>8} "
    head += f"{'|C-C_pot|':>10} {'C rel.err':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        diff = r.get("max_abs_diff_from_pot")
        lines.append(
            f"{r['n']:>7} {r['solver']:>8} {r.get('dtype', 'float64'):>7} {r['solve_s']:>8.1f} {r['sweeps']:>7} "
            f"{r['marginal_error']:>9.1e} {r['peak_mb']:>8.0f} {'-' if diff is None else f'{diff:.1e}':>10} "
            f"{r['cross_covariance_rel_error']:>9.4f}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000, help="points per side of the large plan")
    p.add_argument("--compare-n", type=int, default=10_000, help="points per side of the dense-vs-chunked run")
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--eps", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="of the large run")
    p.add_argument("--tol", type=float, default=1e-4, help="marginal L1 tolerance of the large run")
    p.add_argument("--max-minutes", type=float, default=15.0, help="skip the large solve if estimated longer")
    p.add_argument("--quick", action="store_true", help="--n 20000 --compare-n 3000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--report", type=int, default=None, metavar="N", help="the report's whole check at N per side")
    p.add_argument("--reference-tol", type=float, default=1e-6, help="--report: the reference plans' tolerance")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child[1])
        work = {"solve": one_run, "half": half_sweep, "report": report_check}[args.child[0]]
        print(json.dumps(work(spec)))
        return
    if args.report is not None:
        run_report(args)
        return
    if args.quick:
        args.n, args.compare_n = 20_000, 3000
    load_at_start = os.getloadavg()
    common = {"d": args.d, "eps": args.eps, "seed": args.seed, "threads": args.threads}
    rows = []
    small = dict(common, n=args.compare_n)
    for solver, dtype, tol in (("pot", "float64", 1e-6), ("chunked", "float64", 1e-6), ("chunked", "float32", 1e-4)):
        rows.append(in_child(dict(small, solver=solver, dtype=dtype, tol=tol), "solve"))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    c_pot = torch.tensor(rows[0]["cross_covariance"])
    for r in rows:
        r["max_abs_diff_from_pot"] = float((torch.tensor(r["cross_covariance"]) - c_pot).abs().max())
    large = dict(common, n=args.n, solver="chunked", dtype=args.dtype, tol=args.tol)
    half = in_child(large, "half")
    sweeps_expected = rows[-1]["sweeps"] if args.dtype == "float32" else rows[1]["sweeps"]
    estimate_s = half["half_sweep_s"] * 2 * (sweeps_expected + 2)  # + the final g and the cross-covariance pass
    minutes = estimate_s / 60
    print(f"n = {args.n}: one half-sweep {half['half_sweep_s']:.1f}s; ~{sweeps_expected} sweeps -> ~{minutes:.1f} min")
    big = in_child(large, "solve") if estimate_s <= 60 * args.max_minutes else None
    if big is not None:
        rows.append(big)
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    record = {
        "benchmark": "large_plans",
        "command": "python benchmarks/large_plans.py " + " ".join(sys.argv[1:]),
        "problem": f"N(0, A) -> N(1, B) in d = {args.d}, A, B random SPD (eigenvalues in [0.5, 1.5]), eps = {args.eps}",
        "threads": args.threads,
        "load_average_at_start": load_at_start,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "compare": rows[:3],
        "large_half_sweep": half,
        "large_estimate_s": round(estimate_s, 1),
        "large": big,
    }
    out = ROOT / "results" / f"large_plans_d{args.d}_{args.n}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT.parent)}")


if __name__ == "__main__":
    main()
