"""Fit a generative model between two sample files and check it against held-out samples.

Writes two sample files (a Gaussian source and the 8-Gaussians target, ``.npy`` of shape
``(n, 2)``) to a temporary folder, as a user would have them, then learns ``b`` and ``s`` of
the linear interpolant with ``gamma = sqrt(t(1-t))`` (docs/math.md §1-§2), draws ODE (eps = 0) and SDE
(eps = 1) samples (docs/math.md §3) and prints their energy distance to held-out target samples, next
to the noise floor of two independent target sample sets.

    python examples/fit_from_files.py            # ~1 min on one CPU core
    python examples/fit_from_files.py --quick    # a few seconds (CI)

The same from the command line: ``bridge fit --source X0.npy --target X1.npy --out RUN``.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bridge import BrownianGamma, Linear, sample_ode, sample_sde, train_fields
from bridge.data import eight_gaussians, gaussian, load_samples
from bridge.metrics import energy_distance


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny run (CI)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    n, n_test = (2000, 1000) if args.quick else (10000, 2000)
    steps = 150 if args.quick else 1500

    with tempfile.TemporaryDirectory() as tmp:
        src, tgt = Path(tmp) / "source.npy", Path(tmp) / "target.npy"
        np.save(src, gaussian(n, generator=g).numpy())
        np.save(tgt, eight_gaussians(n + n_test, generator=g).numpy())
        x0 = load_samples(src)  # validates shape, NaN/Inf; float32 (n, d)
        x1_all = load_samples(tgt)
    x1, x1_test = x1_all[:n], x1_all[n:]

    interp = Linear(gamma=BrownianGamma())
    t0 = time.perf_counter()
    fit = train_fields(
        interp,
        x0,
        x1,
        fields=("b", "s"),
        steps=steps,
        hidden=128,
        depth=3,
        seed=args.seed,
        log_every=max(1, steps // 5),
        progress=print,
    )
    print(f"trained {fit.steps} steps in {fit.wall_s:.1f} s")

    z = torch.randn(n_test, 2, generator=g)
    with torch.no_grad():
        ode = sample_ode(fit.fields.drift, z, steps=50).x
    sde = sample_sde(fit.fields.forward_drift(1.0), z, eps=1.0, steps=100 if args.quick else 300, generator=g).x
    floor = energy_distance(x1[:n_test], x1_test)
    print(f"energy distance to {n_test} held-out target samples (lower is better):")
    print(f"  ODE eps=0   {energy_distance(ode, x1_test):.4f}")
    print(f"  SDE eps=1   {energy_distance(sde, x1_test):.4f}")
    print(f"  noise floor {floor:.4f}  (training vs held-out target samples)")
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
