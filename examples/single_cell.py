"""Predict an unseen day of a single-cell time course: the bridge from day 2 to day 4 at t = 1/2.

The CITE-seq cells (50 principal components per cell, days 2, 3, 4, 7) are the files
``full_cite_pcas_50_day_{2,3,4}.npy`` of the public LightSB repository's ``data/`` folder; pass
their folder with ``--data`` (nothing here downloads them). In LightSB's protocol the cells are
divided by one scalar (the mean per-coordinate standard deviation of the three days), the
bridge is learned from day 2 to day 4 at ``eps = 0.05`` in those units (reference variance
``r = 2 eps = 0.1``), and day 3 is predicted at ``t = 1/2`` by the Brownian bridge between each
day-2 cell and its predicted day-4 cell, ``(x0 + x1)/2 + sqrt(r/4) z``. The score is the energy
distance ``E|X-Y| - E|X-X'|/2 - E|Y-Y'|/2`` (U-statistics) to the real day-3 cells, in the
original units; the figure shows predicted and real day-3 cells in the first two PCs.

    python examples/single_cell.py --data DIR            # ~3 min on one CPU core, all cells
    python examples/single_cell.py --data DIR --quick    # ~15 s, 500 cells per day (CI)

Without ``--data``, or when the folder lacks the files, it prints one line saying so and exits 0.
``benchmarks/single_cell.py`` runs both tasks of the protocol against LightSB and POT.
"""

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bridge.metrics import energy_distance
from bridge.sb import SBConfig, solve_bridge

DAYS = (2, 3, 4)
EPS = 0.05  # the paper's eps in the scaled units (LightSB's epsilon r = 2 eps = 0.1)


def load(folder: Path, max_cells: int | None, g: torch.Generator):
    """Days 2, 3, 4 divided by the protocol's scalar (float32), and the scalar."""
    arrays = [np.load(folder / f"full_cite_pcas_50_day_{day}.npy").astype(np.float64) for day in DAYS]
    scale = float(np.concatenate(arrays).std(axis=0).mean())
    out = []
    for arr in arrays:
        x = torch.tensor(arr / scale, dtype=torch.float32)
        out.append(x[torch.randperm(x.shape[0], generator=g)[:max_cells]] if max_cells else x)
    return (*out, scale)


def plot(pred, real, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(real[:, 0], real[:, 1], s=2, alpha=0.4, label="real day 3")
    ax.scatter(pred[:, 0], pred[:, 1], s=2, alpha=0.4, label="predicted day 3 (t = 1/2)")
    ax.set(xlabel="PC 1", ylabel="PC 2", title="CITE-seq day 3 from the day 2 -> day 4 bridge")
    ax.legend(markerscale=5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="folder with full_cite_pcas_50_day_{2,3,4}.npy")
    p.add_argument("--quick", action="store_true", help="500 cells per day, a few seconds of training (CI)")
    p.add_argument("--budget", type=float, default=120.0, help="training seconds (full run)")
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "bridge_single_cell"), help="figure folder")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    names = [f"full_cite_pcas_50_day_{day}.npy" for day in DAYS]
    folder = Path(args.data) if args.data else None
    absent = [n for n in names if folder is None or not (folder / n).is_file()]
    if absent:
        why = "no --data folder given" if folder is None else f"{folder} lacks {', '.join(absent)}"
        print(f"examples/single_cell.py: skipped, {why}")
        return 0
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    x0, x3, x4, scale = load(folder, 500 if args.quick else None, g)
    print(f"cells: day 2 {len(x0)}, day 3 {len(x3)}, day 4 {len(x4)}; scale {scale:.3f}; eps {EPS}")
    # coupling="auto" would end at "independent" on these cells (its first Sinkhorn plan at reg = 0.2
    # does not converge), after minutes of Sinkhorn outside the budget: name it directly.
    if args.quick:
        cfg = SBConfig(outer_steps=30, warmup_steps=20, refine_rounds=0, log_every=10, seed=args.seed)
    else:
        cfg = SBConfig(time_budget=args.budget, seed=args.seed)
    cfg = dataclasses.replace(cfg, coupling="independent")
    t0 = time.perf_counter()
    res = solve_bridge(x0, x4, EPS, config=cfg, progress=print)
    print(f"solved: {res.steps} outer steps in {time.perf_counter() - t0:.1f} s")
    x1 = res.sample(x0, per_point=1, steps=50 if args.quick else 500, generator=g)[:, 0]
    z = torch.randn(x0.shape, generator=g)
    pred = (0.5 * (x0 + x1) + math.sqrt(2 * EPS * 0.25) * z) * scale  # the Brownian bridge at t = 1/2
    real = x3 * scale
    energy = energy_distance(pred.double(), real.double(), unbiased=True) / 2  # E|X-Y| - E|X-X'|/2 - E|Y-Y'|/2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot(pred.numpy(), real.numpy(), out / "single_cell_day3.png")
    print(f"energy distance to the real day-3 cells: {energy:.3f} (LightSB's protocol; published LightSB 2.31)")
    print(f"figure: {out / 'single_cell_day3.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
