r"""Benchmark: how close the mixture family's objectives can get from a finite sample.

On a mixture benchmark problem the exact SB is *in* the Gaussian-mixture potential family
(:meth:`bridge.sb.MixturePotential.from_mixture_benchmark`, docs/math.md §5.10), so both of its
objectives have the truth as their population minimiser: LightSB's KL objective
:math:`\mathbb E\log c_v(x_0) - \mathbb E\log v(x_1)` and the bridge-matching (inner) loss of
``solve_bridge`` on the Brownian-bridge interpolant with the independent coupling (docs/math.md
§5.11). With ``n`` training samples per side each objective is minimised by something else, its
*empirical* minimiser. This script starts each objective *at the truth*, minimises it on the
training samples (Adam, cosine decay to zero; the KL objective on the full sample at every step,
the matching loss on large minibatches of independent pairs), and scores where it ends:
cBW2-UVP at the benchmark's test inputs, next to the floor (exact samples) and to the truth.

What it answers: whether an accuracy goal is reachable at a given ``n`` by any optimiser of these
objectives, i.e. whether the remaining error of a fitted model is optimisation or sample size.

Usage::

    python benchmarks/mixture_floor.py --problems mix16-r0.1,mix16-r1 --n-train 10000,100000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import sb as bench  # noqa: E402  (the mixture problems and their scoring)

from bridge.losses import sample_times  # noqa: E402
from bridge.sb import MixturePotential, SBConfig, build_interpolant, lightsb_loss  # noqa: E402
from bridge.sb.objective import inner_loss  # noqa: E402


def _descend(pot: MixturePotential, loss_fn, steps: int, lr: float) -> None:
    opt = torch.optim.Adam(pot.parameters(), lr=lr)
    for k in range(steps):
        for grp in opt.param_groups:
            grp["lr"] = lr * 0.5 * (1 + math.cos(math.pi * k / steps))
        loss = loss_fn(k)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def fit_from_truth(prob, objective: str, args) -> MixturePotential:
    """The truth in float32 (diagonal ``S_k`` when they are, as in the standard instances, the
    family ``solve_bridge`` and LightSB fit by default), then ``args.steps`` Adam steps on ``objective``."""
    truth = MixturePotential.from_mixture_benchmark(prob.ref)
    S = truth.cov_matrix().detach().float()
    diag = S.diagonal(dim1=-2, dim2=-1)
    S = diag if torch.equal(S, torch.diag_embed(diag)) else S
    pot = MixturePotential.from_components(truth.log_weights().exp().float(), truth.means.detach().float(), S, prob.eps)
    x0, x1 = prob.x0_train, prob.x1_train
    g = torch.Generator().manual_seed(args.seed)
    if objective == "kl":
        _descend(pot, lambda k: lightsb_loss(pot, x0, x1), args.steps, args.lr)
        return pot
    interp = build_interpolant(SBConfig(), prob.d, prob.eps)  # the Brownian bridge (its start)
    n = args.batch

    def matching(k):
        a = x0[torch.randint(x0.shape[0], (n,), generator=g)]
        b = x1[torch.randint(x1.shape[0], (n,), generator=g)]
        t = sample_times(n, (1e-3, 1 - 1e-3), generator=g)
        with torch.no_grad():
            s = interp.sample(t, a, b, torch.randn(a.shape, generator=g))
        return inner_loss(pot, s, prob.eps).mean()

    _descend(pot, matching, args.steps, args.lr)
    return pot


def score(prob, pot, args) -> float:
    draw = lambda x, k, gen: pot.sample(x, k, generator=gen)
    return bench.evaluate(prob, draw, args, torch.Generator().manual_seed(args.seed + 11))["cbw2_uvp"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--problems", default="mix16-r0.1,mix16-r1")
    p.add_argument("--n-train", default="10000,100000", help="comma-separated training sizes per side")
    p.add_argument("--steps", type=int, default=1500, help="Adam steps per objective")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's starting rate (cosine decay to zero)")
    p.add_argument("--batch", type=int, default=4096, help="pairs per matching step")
    p.add_argument("--test-points", type=int, default=500)
    p.add_argument("--per-point", type=int, default=500)
    p.add_argument("--seed", type=int, default=0, help="the problem's draws (as benchmarks/sb.py --seed) and the fits")
    p.add_argument("--out", default="benchmarks/results/mixture_floor.json")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in args.problems.split(","):
        for n in (int(v) for v in args.n_train.split(",")):
            pargs = bench.parse_args(["--problems", name, "--n-train", str(n), "--test-points", str(args.test_points),
                                      "--per-point", str(args.per_point), "--seed", str(args.seed)])  # fmt: skip
            prob = bench.build_problem(name, pargs)
            row = {"problem": name, "n_train": n, "floor": bench.floor(prob, pargs)["cbw2_uvp"]}
            truth = MixturePotential.from_mixture_benchmark(prob.ref)
            row["truth"] = score(prob, truth, pargs)
            for objective in ("kl", "matching"):
                t0 = time.perf_counter()
                row[objective] = score(prob, fit_from_truth(prob, objective, args), pargs)
                row[f"{objective}_s"] = round(time.perf_counter() - t0, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
    print("\n| problem | n per side | floor | truth | KL objective's minimiser | matching loss's minimiser |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['problem']} | {r['n_train']} | {r['floor']:.3f} | {r['truth']:.3f} "
            f"| {r['kl']:.3f} | {r['matching']:.3f} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"what": "cBW2-UVP (%) of the objectives' empirical minimisers, started at the truth",
                               "config": vars(args), "rows": rows}, indent=2))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
