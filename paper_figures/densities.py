r"""Intermediate densities of the linear interpolant: latent noise removes spurious modes (Sec. 4.3, Fig. 6).

For :math:`x_t = (1-t) x_0 + t x_1 + \gamma(t) z` with independent :math:`x_0 \sim \rho_0`,
:math:`x_1 \sim \rho_1` (Gaussian mixtures) and :math:`z \sim N(0, I)`, the marginal
:math:`\rho(t)` is a mixture of :math:`K_0 K_1` Gaussians (SI App. A), evaluated exactly by
:class:`bridge.reference.InterpolantOracle`; no training. With :math:`\gamma = 0` the
components sit at every :math:`(1-t) m_{0i} + t m_{1j}`, so :math:`\rho(t)` can have more modes
than either endpoint. The latent term convolves the :math:`\gamma = 0` density with
:math:`N(0, \gamma^2 I)`, which merges them (Sec. 4.3).

Two pairs:

* 1-D: :math:`\rho_0 = \tfrac12 N(-2, 0.3^2) + \tfrac12 N(2, 0.3^2)`,
  :math:`\rho_1 = \tfrac12 N(-1, 0.3^2) + \tfrac12 N(1, 0.3^2)`;
* 2-D (the image rows): two modes on the first axis, :math:`(\pm1, 0)`, to two modes on the
  second, :math:`(0, \pm1)`, all with covariance :math:`0.2^2 I`;

for :math:`\gamma \in \{0, \sqrt{t(1-t)}, t(1-t), \sin^2(\pi t)\}`.

Key numbers: the number of local maxima (modes) of :math:`\rho(t)` on a fine grid, per
:math:`\gamma` and :math:`t` (:func:`count_modes_1d`, :func:`count_modes_2d`), and the largest
:math:`|\log\rho(t, x) - \log\rho_{0/1}(x)|` at :math:`t = 0, 1` on the grid.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from bridge.interpolants import Linear
from bridge.reference import GaussianMixture, InterpolantOracle

from ._common import GAMMA_COLORS, GAMMA_LABELS, GAMMAS, main_for

NAME = "densities"
PAPER = "Fig. 6 (Sec. 4.3)"

T_SHOW = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Grid points whose density is below this fraction of the grid's maximum are not counted as
#: modes: far in the tails exp(log rho) underflows and the grid sees only rounding.
MODE_FLOOR = 1e-8
#: Endpoint check: the oracle's rho(0), rho(1) must equal rho0, rho1 to rounding (float64).
ENDPOINT_TOL = 1e-10


def config(quick: bool) -> dict:
    """Grid sizes; the densities are exact, so ``--quick`` only coarsens the grids."""
    if quick:
        return dict(n_grid_1d=1001, n_grid_2d=81, n_t_fine=21, half_width_1d=4.0, half_width_2d=2.5)
    return dict(n_grid_1d=4001, n_grid_2d=241, n_t_fine=101, half_width_1d=4.0, half_width_2d=2.5)


def _mixture(means, std: float) -> GaussianMixture:
    m = torch.as_tensor(means, dtype=torch.float64)
    k, d = m.shape
    covs = (std**2) * torch.eye(d, dtype=torch.float64).expand(k, d, d).clone()
    return GaussianMixture(torch.full((k,), 1.0 / k, dtype=torch.float64), m, covs)


def pair_1d() -> tuple[GaussianMixture, GaussianMixture]:
    """The 1-D pair: two modes at +-2 to two modes at +-1, std 0.3."""
    return _mixture([[-2.0], [2.0]], 0.3), _mixture([[-1.0], [1.0]], 0.3)


def pair_2d() -> tuple[GaussianMixture, GaussianMixture]:
    """The 2-D pair: modes (+-1, 0) to modes (0, +-1), covariance 0.2^2 I."""
    return _mixture([[-1.0, 0.0], [1.0, 0.0]], 0.2), _mixture([[0.0, -1.0], [0.0, 1.0]], 0.2)


def count_modes_1d(p: np.ndarray, *, floor: float = MODE_FLOOR) -> int:
    """Number of local maxima of a density sampled on a uniform 1-D grid.

    A mode is a change of the slope's sign from + to - (flat steps skipped, so a plateau
    counts once); maxima below ``floor * max(p)`` and at the grid's ends are not counted.

    Example:
        >>> x = np.linspace(-4, 4, 801)
        >>> count_modes_1d(np.exp(-((x - 1.5) ** 2) / 2) + np.exp(-((x + 1.5) ** 2) / 2))
        2
    """
    p = np.asarray(p, dtype=float)
    if p.ndim != 1 or p.size < 3:
        raise ValueError(f"p: expected a 1-D array of at least 3 values, got shape {p.shape}")
    idx = np.flatnonzero(np.diff(p))  # steps where p changes; the slope there is sign(diff)
    if idx.size < 2:
        return 0
    sign = np.sign(np.diff(p)[idx])
    peak = (sign[:-1] > 0) & (sign[1:] < 0)  # rise at idx[k], fall at idx[k + 1]: top at idx[k] + 1
    tops = idx[:-1][peak] + 1
    return int((p[tops] > floor * p.max()).sum())


def count_modes_2d(p: np.ndarray, *, floor: float = MODE_FLOOR) -> int:
    """Number of local maxima of a density sampled on a 2-D grid (8-neighbourhood).

    A grid point is a mode if it is strictly above its 4 neighbours that come earlier in
    row-major order and at least as high as the 4 that come later, so that two equal neighbouring
    points (a maximum halfway between grid points) count once. Maxima on the border or below
    ``floor * max(p)`` are not counted.

    Example:
        >>> g = np.linspace(-3, 3, 121)
        >>> X, Y = np.meshgrid(g, g)
        >>> count_modes_2d(np.exp(-((X - 1.5) ** 2 + Y**2) / 0.5) + np.exp(-((X + 1.5) ** 2 + Y**2) / 0.5))
        2
    """
    p = np.asarray(p, dtype=float)
    if p.ndim != 2 or min(p.shape) < 3:
        raise ValueError(f"p: expected a 2-D array of at least 3 x 3 values, got shape {p.shape}")
    c = p[1:-1, 1:-1]
    ok = c > floor * p.max()
    n0, n1 = p.shape
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            nb = p[1 + di : n0 - 1 + di, 1 + dj : n1 - 1 + dj]
            ok &= (c > nb) if (di, dj) < (0, 0) else (c >= nb)
    return int(ok.sum())


def _densities(oracle: InterpolantOracle, times, pts: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return np.stack([oracle.log_density(float(t), pts).exp().numpy() for t in times])


def compute(args, log):
    cfg = config(args.quick)
    t_show = np.array(T_SHOW)
    t_fine = np.linspace(0.0, 1.0, cfg["n_t_fine"])
    names = list(GAMMAS)

    r0, r1 = pair_1d()
    x1d = np.linspace(-cfg["half_width_1d"], cfg["half_width_1d"], cfg["n_grid_1d"])
    pts1 = torch.tensor(x1d[:, None])
    g2 = np.linspace(-cfg["half_width_2d"], cfg["half_width_2d"], cfg["n_grid_2d"])
    X, Y = np.meshgrid(g2, g2, indexing="xy")  # rows: second coordinate, columns: first
    pts2 = torch.tensor(np.stack([X.ravel(), Y.ravel()], axis=1))
    q0, q1 = pair_2d()
    ends = {"1d": (r0.log_prob(pts1).numpy(), r1.log_prob(pts1).numpy())}
    ends["2d"] = (q0.log_prob(pts2).numpy(), q1.log_prob(pts2).numpy())

    dens1d = np.empty((len(names), t_show.size, x1d.size))
    modes1d = np.empty((len(names), t_fine.size), dtype=np.int64)
    dens2d = np.empty((len(names), t_show.size, g2.size, g2.size))
    modes2d = np.empty((len(names), t_fine.size), dtype=np.int64)
    endpoint_err = {}
    for gi, name in enumerate(names):
        interp = Linear(gamma=GAMMAS[name]())
        o1 = InterpolantOracle(interp, r0, r1)
        o2 = InterpolantOracle(interp, q0, q1)
        fine1 = _densities(o1, t_fine, pts1)
        modes1d[gi] = [count_modes_1d(p) for p in fine1]
        dens1d[gi] = _densities(o1, t_show, pts1)
        fine2 = _densities(o2, t_fine, pts2).reshape(t_fine.size, g2.size, g2.size)
        modes2d[gi] = [count_modes_2d(p) for p in fine2]
        dens2d[gi] = _densities(o2, t_show, pts2).reshape(t_show.size, g2.size, g2.size)
        errs = []
        for key, o, pts in (("1d", o1, pts1), ("2d", o2, pts2)):
            with torch.no_grad():
                for t, ref in zip((0.0, 1.0), ends[key]):
                    errs.append(float(np.abs(o.log_density(t, pts).numpy() - ref).max()))
        endpoint_err[name] = max(errs)
        log(f"{name:>14}: 1-D modes at t={list(T_SHOW)}: {[int(modes1d[gi][_at(t_fine, t)]) for t in T_SHOW]}")

    def table(modes):
        return {n: {f"{t:g}": int(modes[i][_at(t_fine, t)]) for t in T_SHOW} for i, n in enumerate(names)}

    z, s = names.index("zero"), names.index("sqrt(t(1-t))")
    mid = _at(t_fine, 0.5)
    findings, notes = {}, []
    for key, modes in (("1-D", modes1d), ("2-D", modes2d)):
        end_modes = max(modes[z][0], modes[z][-1])
        findings[f"{key}: gamma=0 has spurious intermediate modes (more modes at t=0.5 than at t=0, 1)"] = bool(
            modes[z][mid] > end_modes
        )
        findings[
            f"{key}: latent noise removes spurious intermediate modes (gamma=sqrt(t(1-t)): "
            "no more modes than gamma=0 at t=0.5, strictly fewer at some t)"
        ] = bool(modes[s][mid] <= modes[z][mid] and (modes[s] < modes[z]).any())
        more = [
            f"{n} at t={t_fine[j]:.2f} ({modes[i][j]} > {modes[z][j]})"
            for i, n in enumerate(names)
            for j in range(t_fine.size)
            if modes[i][j] > modes[z][j]
        ]
        if more:
            notes.append(f"{key}: gamma > 0 with more modes than gamma = 0: " + "; ".join(more[:6]))
    worst = max(endpoint_err.values())
    findings["marginals at t=0 and t=1 equal rho0 and rho1 (every gamma)"] = bool(worst < ENDPOINT_TOL)
    q = names.index("t(1-t)")
    if modes1d[q][mid] >= modes1d[z][mid]:
        notes.append(
            f"1-D: gamma = t(1-t) keeps {modes1d[q][mid]} modes at t=0.5 (gamma=0: {modes1d[z][mid]}); "
            "it is 0.25 there against 0.5 for sqrt(t(1-t)), too little noise to merge modes 1.0 apart"
        )

    arrays = dict(
        x_1d=x1d,
        grid_2d=g2,
        t_show=t_show,
        t_fine=t_fine,
        density_1d=dens1d,
        density_2d=dens2d,
        modes_1d=modes1d,
        modes_2d=modes2d,
        rho0_1d=np.exp(ends["1d"][0]),
        rho1_1d=np.exp(ends["1d"][1]),
    )
    record = dict(
        config={
            **cfg,
            "gammas": names,
            "t_show": list(T_SHOW),
            "pair_1d": "rho0 = 1/2 N(-2, 0.3^2) + 1/2 N(2, 0.3^2); rho1 = 1/2 N(-1, 0.3^2) + 1/2 N(1, 0.3^2)",
            "pair_2d": "rho0 = 1/2 N((-1, 0), 0.2^2 I) + 1/2 N((1, 0), 0.2^2 I); "
            "rho1 = 1/2 N((0, -1), 0.2^2 I) + 1/2 N((0, 1), 0.2^2 I)",
            "interpolant": "linear, x_t = (1-t) x0 + t x1 + gamma(t) z, independent coupling",
            "mode_floor": MODE_FLOOR,
        },
        modes_1d_at=table(modes1d),
        modes_2d_at=table(modes2d),
        max_modes_1d={n: int(modes1d[i].max()) for i, n in enumerate(names)},
        max_modes_2d={n: int(modes2d[i].max()) for i, n in enumerate(names)},
        endpoint_max_abs_log_density_error=endpoint_err,
        findings=findings,
        notes=notes,
    )
    return arrays, record


def _modes_text(k: int) -> str:
    return f"{k} mode" + ("" if k == 1 else "s")


def _at(grid: np.ndarray, t: float) -> int:
    return int(np.argmin(np.abs(grid - t)))


def plot(arrays, record, out_dir) -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    stem = NAME + ("_quick" if record.get("quick") else "")
    names = record["config"]["gammas"]
    t_show, t_fine = arrays["t_show"], arrays["t_fine"]
    x = arrays["x_1d"]

    # 1-D: rho(t) per gamma at the shown times, then the mode count against t
    fig = plt.figure(figsize=(16, 7.5))
    gs = fig.add_gridspec(2, t_show.size, height_ratios=[1.25, 1.0], hspace=0.38, wspace=0.25, top=0.86)
    top = arrays["density_1d"].max()
    for j, t in enumerate(t_show):
        ax = fig.add_subplot(gs[0, j])
        k = int(np.argmin(np.abs(t_fine - t)))
        for i, n in enumerate(names):
            ax.plot(x, arrays["density_1d"][i, j], color=GAMMA_COLORS[n], lw=1.6, label=GAMMA_LABELS[n])
            ax.text(
                0.03 + 0.1 * i,
                0.96,
                str(int(arrays["modes_1d"][i, k])),
                color=GAMMA_COLORS[n],
                fontsize=10,
                fontweight="bold",
                transform=ax.transAxes,
                va="top",
            )
        ax.text(0.45, 0.96, "modes", fontsize=8, transform=ax.transAxes, va="top", color="0.3")
        if t in (0.0, 1.0):
            ref = arrays["rho0_1d"] if t == 0.0 else arrays["rho1_1d"]
            ax.plot(x, ref, "k:", lw=1.4, label=r"exact $\rho_0$ (t = 0), $\rho_1$ (t = 1)")
        ax.set_title(f"t = {t:g}")
        ax.set_xlabel("x")
        ax.set_ylim(0, 1.2 * top)
        if j == 0:
            ax.set_ylabel(r"$\rho(t, x)$")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=5, fontsize=10, bbox_to_anchor=(0.5, 0.955))
    ax = fig.add_subplot(gs[1, :])
    for i, n in enumerate(names):
        ax.step(
            t_fine,
            arrays["modes_1d"][i] + 0.06 * (i - 1.5),
            where="mid",
            color=GAMMA_COLORS[n],
            lw=1.8,
            label=GAMMA_LABELS[n],
        )
    ax.set_xlabel("t")
    ax.set_ylabel("number of modes of ρ(t)\n(offset slightly per γ)")
    ax.set_yticks(range(0, int(arrays["modes_1d"].max()) + 2))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, ncol=4, loc="upper center")
    ax.set_title("modes of the exact ρ(t) on the grid (1-D pair)")
    fig.suptitle(
        "Linear interpolant between two 1-D Gaussian mixtures: latent noise γ(t)z merges the spurious "
        "intermediate modes of γ = 0",
        fontsize=12,
    )
    p1 = out_dir / f"{stem}_1d.png"
    fig.savefig(p1, dpi=110, bbox_inches="tight")
    plt.close(fig)

    # 2-D: rows gamma, columns t, each panel normalised to its own maximum
    g = arrays["grid_2d"]
    ext = (g[0], g[-1], g[0], g[-1])
    fig, axes = plt.subplots(len(names), t_show.size, figsize=(2.6 * t_show.size, 2.6 * len(names)), squeeze=False)
    for i, n in enumerate(names):
        for j, t in enumerate(t_show):
            ax = axes[i, j]
            p = arrays["density_2d"][i, j]
            k = int(np.argmin(np.abs(t_fine - t)))
            ax.imshow(p / p.max(), origin="lower", extent=ext, cmap="viridis", vmin=0, vmax=1)
            ax.text(
                0.04,
                0.94,
                _modes_text(int(arrays["modes_2d"][i, k])),
                color="w",
                fontsize=8,
                transform=ax.transAxes,
                va="top",
            )
            if i == 0:
                ax.set_title(f"t = {t:g}")
            if j == 0:
                ax.set_ylabel(GAMMA_LABELS[n] + "\n" + r"$x_2$")
            else:
                ax.set_yticks([])
            if i == len(names) - 1:
                ax.set_xlabel(r"$x_1$")
            else:
                ax.set_xticks([])
    fig.suptitle(
        r"2-D pair: $\rho(t)$ (each panel scaled to its maximum); $\rho_0$: modes $(\pm1, 0)$, "
        r"$\rho_1$: modes $(0, \pm1)$",
        fontsize=11,
    )
    fig.tight_layout()
    p2 = out_dir / f"{stem}_2d.png"
    fig.savefig(p2, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [p1, p2]


if __name__ == "__main__":
    main_for(sys.modules[__name__])
