"""Draw ``docs/figures/bridge.png``: a Schrödinger bridge between two 2-D sample sets.

Solves the bridge from 8 Gaussians to two moons at eps = 0.1 with :func:`bridge.solve_bridge`
(60 s of training on one CPU thread), then draws the source and target samples and a few
forward-SDE paths ``dX = u dt + sqrt(2 eps) dW`` of the learned drift from chosen starting points.

    python docs/figures/make_bridge_png.py                # ~1.5 min on one CPU core
    python docs/figures/make_bridge_png.py --budget 10    # a quick, rougher picture
"""

import argparse
import time
from pathlib import Path

import torch

from bridge import SBConfig, solve_bridge
from bridge.data import eight_gaussians, moons


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=60.0, help="training seconds")
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).with_name("bridge.png")))
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    x0, x1 = eight_gaussians(4000, generator=g), moons(4000, generator=g)

    t0 = time.perf_counter()
    result = solve_bridge(x0, x1, eps=args.eps, config=SBConfig(time_budget=args.budget, seed=args.seed, log_every=0))
    print(f"solved: {result.steps} outer steps in {time.perf_counter() - t0:.0f} s")

    starts = x0[:24]
    _, paths = result.sample(starts, per_point=1, steps=100, generator=g, trajectory=True)
    paths = paths[:, :, 0, :]  # (steps + 1, n, 2)
    draw(x0[:1500], x1[:1500], paths, args.eps, args.out)
    print("wrote", args.out, f"({Path(args.out).stat().st_size / 1024:.0f} KB)")


def draw(x0, x1, paths, eps, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.8), dpi=100)
    ax.scatter(x0[:, 0], x0[:, 1], s=2, c="tab:blue", alpha=0.35, label=r"source $\rho_0$ (8 Gaussians)")
    ax.scatter(x1[:, 0], x1[:, 1], s=2, c="tab:orange", alpha=0.35, label=r"target $\rho_1$ (moons)")
    for i in range(paths.shape[1]):
        ax.plot(paths[:, i, 0], paths[:, i, 1], lw=0.7, c="k", alpha=0.7)
    ax.scatter(paths[0, :, 0], paths[0, :, 1], s=10, c="k", marker="o", zorder=3)
    ax.scatter(paths[-1, :, 0], paths[-1, :, 1], s=14, c="k", marker="x", zorder=3, label="SDE paths (o start, x end)")
    title = rf"learned Schrödinger bridge, $dX = u\,dt + \sqrt{{2\epsilon}}\,dW$, $\epsilon = {eps:g}$"
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, markerscale=2, frameon=False)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


if __name__ == "__main__":
    main()
