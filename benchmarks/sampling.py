"""Exact sampling of a mixture-family bridge against its SDE: time and agreement.

A :class:`bridge.sb.BridgeResult` whose drift is a :class:`bridge.sb.MixturePotential` (``K``
components, diagonal ``S_k``, random parameters) draws ``n x per_point`` samples of ``x1`` twice:
exactly (``method="exact"``, the closed-form conditional, docs/math.md §5.10) and by integrating the
SDE (``method="sde"``, stochastic Heun on the end-refined grid). It prints the wall time of each,
their ratio, and how far apart the two samples are: the largest per-coordinate difference of the
pooled means and of the pooled variances, in standard errors of that difference.

    python benchmarks/sampling.py                       # d = 16, 1000 points x 100, 100 SDE steps
    python benchmarks/sampling.py --d 2 --steps 500 --out /tmp/sampling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from bridge.sb import BridgeResult, MixturePotential, SBConfig, build_interpolant


def mixture_result(d: int, k: int, eps: float, seed: int) -> BridgeResult:
    """A result holding a random ``k``-component diagonal mixture potential in ``d`` dimensions."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.rand(k, generator=g) + 0.1
    means = 2.0 * torch.randn(k, d, generator=g)
    covs = 0.3 + torch.rand(k, d, generator=g)
    pot = MixturePotential.from_components(weights, means, covs, eps=eps)
    cfg = SBConfig(drift_family="mixture", n_components=k)
    return BridgeResult(drift_net=pot, interpolant=build_interpolant(cfg, d, eps), eps=eps, config=cfg)


def timed(fn) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def z_scores(a: torch.Tensor, b: torch.Tensor) -> dict:
    """The largest |difference| of pooled means and variances over coordinates, in standard errors."""
    a, b = a.reshape(-1, a.shape[-1]).double(), b.reshape(-1, b.shape[-1]).double()
    out = {}
    for name, f in (("mean", lambda x: x), ("var", lambda x: (x - x.mean(0)) ** 2)):
        fa, fb = f(a), f(b)
        se = (fa.var(0) / fa.shape[0] + fb.var(0) / fb.shape[0]).sqrt()
        out[f"max_z_{name}"] = float(((fa.mean(0) - fb.mean(0)).abs() / se).max())
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--k", type=int, default=50, help="mixture components")
    p.add_argument("--eps", type=float, default=0.5)
    p.add_argument("--n", type=int, default=1000, help="source points")
    p.add_argument("--per-point", type=int, default=100)
    p.add_argument("--steps", type=int, default=100, help="SDE steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "sampling.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = mixture_result(args.d, args.k, args.eps, args.seed)
    x0 = torch.randn(args.n, args.d, generator=torch.Generator().manual_seed(args.seed + 1))
    g = torch.Generator().manual_seed(args.seed + 2)
    exact, t_exact = timed(lambda: res.sample(x0, per_point=args.per_point, method="exact", generator=g))
    sde, t_sde = timed(lambda: res.sample(x0, per_point=args.per_point, steps=args.steps, method="sde", generator=g))
    record = {
        "args": vars(args),
        "exact_s": round(t_exact, 4),
        "sde_s": round(t_sde, 4),
        "speedup": round(t_sde / t_exact, 1),
        **{k: round(v, 2) for k, v in z_scores(exact, sde).items()},
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    print(f"{'method':8s} {'wall s':>8s}  (d={args.d}, K={args.k}, {args.n} x {args.per_point} samples)")
    print(f"{'exact':8s} {t_exact:8.3f}")
    print(f"{'sde':8s} {t_sde:8.3f}  ({args.steps} Heun steps, end-refined grid)")
    print(
        f"speed-up {record['speedup']}x; exact vs SDE: max |z| of means {record['max_z_mean']}, "
        f"of variances {record['max_z_var']}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    main()
