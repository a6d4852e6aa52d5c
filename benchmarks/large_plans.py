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

Prints a table and writes ``benchmarks/results/large_plans_d{d}_{n}.json``. Run:

    OMP_NUM_THREADS=1 python benchmarks/large_plans.py               # 10^4 comparison and 10^5
    OMP_NUM_THREADS=1 python benchmarks/large_plans.py --quick       # 3000 and 20000: ~1 min
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
    from bridge.reference.gaussian_sb import gaussian_sb

    g = torch.Generator().manual_seed(seed)

    def spd():
        q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        return q @ torch.diag(0.5 + torch.rand(d, generator=g, dtype=torch.float64)) @ q.T

    A, B, b = spd(), spd(), torch.ones(d, dtype=torch.float64)
    sb = gaussian_sb(torch.zeros(d, dtype=torch.float64), A, b, B, eps=eps)
    x0 = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(A).T
    x1 = b + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(B).T
    return x0, x1, sb.C


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


def in_child(spec: dict, what: str) -> dict:
    """Run ``what`` ("solve" / "half") for ``spec`` in a fresh process; its JSON result."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    cmd = [sys.executable, __file__, "--child", what, json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT.parent, check=True)
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
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child[1])
        print(json.dumps(one_run(spec) if args.child[0] == "solve" else half_sweep(spec)))
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
