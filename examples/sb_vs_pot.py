"""Solve a Schrödinger bridge between two 2-D sample sets and compare it with POT's entropic plan.

8 Gaussians -> moons at eps = 0.1 (POT ``reg = 4 eps``, docs/math.md §5). ``solve_bridge`` learns the
SB drift by max–min over the interpolant (docs/math.md §5); ``evaluate_bridge`` then draws forward-SDE
samples from held-out source points and compares the learned coupling with POT's
``sinkhorn_log`` plan between the same held-out points: cross-covariance, barycentric map
(L2-UVP), transport cost, with POT's plan on an independent target sample as the noise floor.
The figures (coupling lines, marginals at several t, coefficients, history) go to ``--out``.

    python examples/sb_vs_pot.py                 # ~1 min on one CPU core
    python examples/sb_vs_pot.py --quick         # a few seconds (CI)

The same from the command line: ``bridge solve --source 8gaussians --target moons --eps 0.1 --out RUN``.
"""

import argparse
import time
from pathlib import Path

import torch

from bridge.data import eight_gaussians, moons
from bridge.sb import SBConfig, solve_bridge
from bridge.sb.report import evaluate_bridge, write_figures


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run (CI)")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--out", default="runs/example_sb_vs_pot", help="folder for the PNGs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    n, n_test = (2000, 300) if args.quick else (4000, 400)
    x0, x1 = eight_gaussians(n + n_test, generator=g), moons(2 * n_test + n, generator=g)
    x0_train, x0_test = x0[:n], x0[n:]
    x1_train, x1_test, x1_floor = x1[:n], x1[n : n + n_test], x1[n + n_test :]

    if args.quick:
        cfg = SBConfig(outer_steps=30, warmup_steps=30, log_every=10, plan_size=800, seed=args.seed)
    else:
        cfg = SBConfig(outer_steps=200, plan_size=1024, plan_count=2, log_every=50, seed=args.seed)
    t0 = time.perf_counter()
    res = solve_bridge(x0_train, x1_train, args.eps, config=cfg, progress=print)
    print(f"solved: {res.steps} outer steps in {time.perf_counter() - t0:.1f} s")

    t1 = time.perf_counter()
    ev = evaluate_bridge(
        res,
        x0_test,
        x1_test,
        x1_floor=x1_floor,
        per_point=4 if args.quick else 16,
        sde_steps=50 if args.quick else 100,
        sinkhorn_points=300 if args.quick else 1000,
        generator=g,
        progress=print,
    )
    print(f"evaluated in {time.perf_counter() - t1:.1f} s")
    c = ev.metrics["coupling"]
    floor = c.get("reference_floor", {})
    print(f"learned coupling vs POT's plan on {n_test} held-out points (floor: POT's plan to another target sample)")
    print(f"  {'':<28} {'bridge':>8} {'floor':>8}")
    for key, label in [
        ("cross_covariance_rel_error", "cross-covariance rel. error"),
        ("barycentric_map_l2_uvp", "barycentric map L2-UVP (%)"),
    ]:
        print(f"  {label:<28} {c.get(key, float('nan')):8.4f} {floor.get(key, float('nan')):8.4f}")
    print(f"  transport cost E|x0-x1|^2: bridge {c['model_transport_cost']:.4f}, POT {c['pot_transport_cost']:.4f}")
    for name in write_figures(ev, res, args.out):
        print("wrote", Path(args.out) / name)


if __name__ == "__main__":
    main()
