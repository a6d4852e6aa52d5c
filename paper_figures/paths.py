r"""Deterministic against stochastic paths: the spread grows with eps, the marginals do not change (Sec. 4.3, Fig. 7).

A 1-D mixture-to-mixture linear interpolant :math:`x_t = (1-t) x_0 + t x_1 + \sqrt{t(1-t)}\,z`
with its exact fields from :class:`bridge.reference.InterpolantOracle` (no training):
:math:`\rho_0 = \tfrac12 N(-1.5, 0.4^2) + \tfrac12 N(1.5, 0.4^2)`,
:math:`\rho_1 = \tfrac13\sum_{m \in \{-2.5, 0, 2.5\}} N(m, 0.3^2)`. The generative processes

.. math:: dX_t = b(t, X_t)\,dt \quad(\epsilon = 0), \qquad
          dX_t = (b + \epsilon s)(t, X_t)\,dt + \sqrt{2\epsilon}\,dW_t \quad (\epsilon > 0)

(SI 2.32-2.33) share the marginals :math:`\rho(t)` for every :math:`\epsilon`; only the paths
differ. From one starting point :math:`x_0` the ODE gives one path and the SDE an ensemble whose
spread :math:`\mathrm{Var}(X_1 \mid x_0)` grows with :math:`\epsilon`. From many
:math:`x_0 \sim \rho_0`, the law of :math:`X_t` is :math:`\rho(t)` for each :math:`\epsilon`; we
test it at :math:`t = 0.5` and :math:`t = 1` with a one-sample Kolmogorov–Smirnov test against the
exact mixture CDF (:func:`mixture_cdf_1d`), at level 0.01 Bonferroni-corrected over the tests.
Samplers: Heun (ODE) and stochastic Heun (SDE) on a uniform grid, as in the paper.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from bridge.interpolants import BrownianGamma, Linear
from bridge.reference import GaussianMixture, InterpolantOracle
from bridge.samplers import Heun, StochasticHeun, sample_ode, sample_sde

from ._common import COLORS, eps_color, main_for

NAME = "paths"
PAPER = "Fig. 7 (Sec. 4.3)"

EPSILONS = (0.0, 0.5, 1.0, 2.5)
#: The single starting point of the ensembles (the centre of the right mode of rho0).
X0 = 1.5
#: Family-wise level of the Kolmogorov–Smirnov marginal tests (Bonferroni over eps x times).
KS_ALPHA = 0.01
KS_TIMES = (0.5, 1.0)


def config(quick: bool) -> dict:
    """Sizes: ``n_paths`` SDE paths from the one ``x0``, ``n_marginal`` draws ``x0 ~ rho0``."""
    if quick:
        return dict(steps=120, n_paths=400, n_marginal=1000, n_show=25, n_bg_t=101, n_bg_x=301, half_width=4.5)
    return dict(steps=400, n_paths=4000, n_marginal=8000, n_show=40, n_bg_t=201, n_bg_x=601, half_width=4.5)


def _mixture_1d(weights, means, std: float) -> GaussianMixture:
    k = len(means)
    return GaussianMixture(
        torch.tensor(weights, dtype=torch.float64),
        torch.tensor(means, dtype=torch.float64)[:, None],
        torch.full((k, 1, 1), std**2, dtype=torch.float64),
    )


def endpoints() -> tuple[GaussianMixture, GaussianMixture]:
    """The pair: two modes at +-1.5 (std 0.4) to three modes at -2.5, 0, 2.5 (std 0.3)."""
    return _mixture_1d([0.5, 0.5], [-1.5, 1.5], 0.4), _mixture_1d([1 / 3, 1 / 3, 1 / 3], [-2.5, 0.0, 2.5], 0.3)


def mixture_cdf_1d(mixture: GaussianMixture, x) -> np.ndarray:
    r"""CDF of a 1-D Gaussian mixture, :math:`F(x) = \sum_k \pi_k \Phi((x - m_k)/\sigma_k)`.

    Example:
        >>> rho = _mixture_1d([0.5, 0.5], [-1.0, 1.0], 0.5)
        >>> float(mixture_cdf_1d(rho, 0.0))
        0.5
    """
    if mixture.dim != 1:
        raise ValueError(f"mixture: expected a 1-D mixture, got dimension {mixture.dim}")
    w = mixture.weights.double().numpy()
    m = mixture.means[:, 0].double().numpy()
    sd = np.sqrt(mixture.covs[:, 0, 0].double().numpy())
    x = np.asarray(x, dtype=float)
    return (w * stats.norm.cdf((x[..., None] - m) / sd)).sum(-1)


def compute(args, log):
    cfg = config(args.quick)
    rho0, rho1 = endpoints()
    oracle = InterpolantOracle(Linear(gamma=BrownianGamma()), rho0, rho1)
    fields = oracle.fields()
    steps = cfg["steps"]
    gen = torch.Generator().manual_seed(args.seed)
    x_single = torch.full((cfg["n_paths"], 1), X0, dtype=torch.float64)
    x_many = rho0.sample(cfg["n_marginal"], generator=gen)
    k_mid = int(round(0.5 * steps))

    var_t, x1_single, show, x1_many, xmid_many = [], [], [], [], []
    n1 = cfg["n_paths"]
    for eps in EPSILONS:
        # the ensemble from one x0 and the draws x0 ~ rho0 in one batch (rows 0..n1-1: the ensemble)
        x_all = torch.cat([x_single[:1] if eps == 0.0 else x_single, x_many])
        with torch.no_grad():
            if eps == 0.0:
                res = sample_ode(fields.drift, x_all, steps=steps, solver=Heun(), trajectory=True)
                traj_single = res.trajectory[:, :1, 0].expand(-1, n1)
                many = res.trajectory[:, 1:, 0]
            else:
                res = sample_sde(
                    fields.forward_drift(eps),
                    x_all,
                    eps=eps,
                    steps=steps,
                    solver=StochasticHeun(),
                    generator=gen,
                    trajectory=True,
                )
                traj_single, many = res.trajectory[:, :n1, 0], res.trajectory[:, n1:, 0]
        one = res
        t_grid = one.t.numpy()
        var_t.append(traj_single.var(dim=1).numpy())
        x1_single.append(traj_single[-1].numpy())
        show.append(traj_single[:, : cfg["n_show"]].T.numpy())
        x1_many.append(many[-1].numpy())
        xmid_many.append(many[k_mid].numpy())
        log(f"eps={eps:g}: Var(X1 | x0={X0}) = {var_t[-1][-1]:.4f}")
    var_t = np.stack(var_t)
    x1_single, x1_many, xmid_many = np.stack(x1_single), np.stack(x1_many), np.stack(xmid_many)

    # marginal tests: KS of X_t (from x0 ~ rho0) against the exact rho(t), t = 0.5 and 1
    n_tests = len(EPSILONS) * len(KS_TIMES)
    ks_stat = np.empty((len(EPSILONS), len(KS_TIMES)))
    ks_p = np.empty_like(ks_stat)
    for j, (t, samples) in enumerate(zip(KS_TIMES, (xmid_many, x1_many))):
        rho_t = oracle.marginal(float(t_grid[k_mid]) if t == 0.5 else 1.0)
        for i in range(len(EPSILONS)):
            res = stats.kstest(samples[i], lambda x, r=rho_t: mixture_cdf_1d(r, x))
            ks_stat[i, j], ks_p[i, j] = res.statistic, res.pvalue
    ks_crit = float(stats.kstwo.ppf(1.0 - KS_ALPHA / n_tests, cfg["n_marginal"]))

    # spread from one x0 with its standard error (normal-theory: Var * sqrt(2 / (M - 1)))
    M = cfg["n_paths"]
    v1 = var_t[:, -1]
    v1_se = v1 * np.sqrt(2.0 / (M - 1))
    increasing = bool(np.all(np.diff(v1) > 0))
    separated = bool(np.all(np.diff(v1) > 2.0 * np.hypot(v1_se[1:], v1_se[:-1])))

    # background: the exact rho(t, x) (the same for every eps)
    bg_t = np.linspace(0.0, 1.0, cfg["n_bg_t"])
    bg_x = np.linspace(-cfg["half_width"], cfg["half_width"], cfg["n_bg_x"])
    pts = torch.tensor(bg_x[:, None])
    with torch.no_grad():
        bg = np.stack([oracle.log_density(float(t), pts).exp().numpy() for t in bg_t], axis=1)  # (x, t)
        rho1_x = rho1.log_prob(pts).exp().numpy()
    rho1_mean, rho1_var = float(rho1.mean()[0]), float(rho1.cov()[0, 0])

    findings = {
        "spread grows with eps (Var(X1 | x0) strictly increasing over eps = 0, 0.5, 1, 2.5)": increasing,
        f"marginals do not change with eps (KS of X_0.5 and X_1 from x0 ~ rho0 against the exact rho(t): "
        f"all p > {KS_ALPHA}/{n_tests}, n = {cfg['n_marginal']})": bool(np.all(ks_p > KS_ALPHA / n_tests)),
    }
    notes = [
        f"Var(X1 | x0) steps larger than 2 combined standard errors: {separated}",
        f"KS critical distance at family-wise level {KS_ALPHA}: {ks_crit:.4f} (largest measured {ks_stat.max():.4f})",
    ]
    arrays = dict(
        eps=np.array(EPSILONS),
        t=t_grid,
        var_t=var_t,
        x1_single=x1_single,
        paths_show=np.stack(show),
        x1_many=x1_many,
        xmid_many=xmid_many,
        ks_stat=ks_stat,
        ks_p=ks_p,
        bg_t=bg_t,
        bg_x=bg_x,
        bg_density=bg,
        rho1_x=rho1_x,
    )
    record = dict(
        config={
            **cfg,
            "eps": list(EPSILONS),
            "x0": X0,
            "interpolant": "linear, gamma = sqrt(t(1-t)), exact fields (InterpolantOracle)",
            "rho0": "1/2 N(-1.5, 0.4^2) + 1/2 N(1.5, 0.4^2)",
            "rho1": "1/3 [N(-2.5, 0.3^2) + N(0, 0.3^2) + N(2.5, 0.3^2)]",
            "samplers": "Heun (ODE), StochasticHeun (SDE), uniform steps",
            "ks_alpha_familywise": KS_ALPHA,
            "ks_times": list(KS_TIMES),
        },
        var_x1_given_x0={f"{e:g}": float(v) for e, v in zip(EPSILONS, v1)},
        var_x1_given_x0_stderr={f"{e:g}": float(v) for e, v in zip(EPSILONS, v1_se)},
        ks_statistic={
            f"{e:g}": {f"t={t:g}": float(ks_stat[i, j]) for j, t in enumerate(KS_TIMES)} for i, e in enumerate(EPSILONS)
        },
        ks_pvalue={
            f"{e:g}": {f"t={t:g}": float(ks_p[i, j]) for j, t in enumerate(KS_TIMES)} for i, e in enumerate(EPSILONS)
        },
        ks_critical=ks_crit,
        x1_mean={f"{e:g}": float(x1_many[i].mean()) for i, e in enumerate(EPSILONS)},
        x1_var={f"{e:g}": float(x1_many[i].var()) for i, e in enumerate(EPSILONS)},
        rho1_mean=rho1_mean,
        rho1_var=rho1_var,
        findings=findings,
        notes=notes,
    )
    return arrays, record


def plot(arrays, record, out_dir) -> list[Path]:
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm

    out_dir = Path(out_dir)
    stem = NAME + ("_quick" if record.get("quick") else "")
    eps, t = arrays["eps"], arrays["t"]
    bg_t, bg_x, bg = arrays["bg_t"], arrays["bg_x"], arrays["bg_density"]
    ext = (bg_t[0], bg_t[-1], bg_x[0], bg_x[-1])
    x0 = record["config"]["x0"]

    fig = plt.figure(figsize=(17, 9))
    gs = fig.add_gridspec(2, len(eps), height_ratios=[1.3, 1.0], hspace=0.35, wspace=0.22)
    for i, e in enumerate(eps):
        ax = fig.add_subplot(gs[0, i])
        ax.imshow(bg, origin="lower", extent=ext, aspect="auto", cmap="Greys", norm=PowerNorm(0.5, 0, bg.max()))
        for path in arrays["paths_show"][i]:
            ax.plot(t, path, color=eps_color(e), lw=0.7, alpha=0.7)
        ax.plot(t, arrays["paths_show"][0][0], color="k", ls="--", lw=1.4, label="ODE path (ε = 0)")
        ax.plot([0], [x0], "o", color="k", ms=6, label=f"x₀ = {x0:g}")
        v = record["var_x1_given_x0"][f"{e:g}"]
        what = (
            "ODE: one path"
            if e == 0
            else f"SDE: {arrays['paths_show'].shape[1]} of {record['config']['n_paths']} paths"
        )
        ax.set_title(f"ε = {e:g} ({what})\nVar(X₁ | x₀) = {v:.3f}", fontsize=10)
        ax.set_xlabel("t")
        if i == 0:
            ax.set_ylabel("x   (grey: exact ρ(t, x), the same for every ε)")
        ax.set_ylim(bg_x[0], bg_x[-1])
        ax.legend(fontsize=8, loc="lower left")

    # endpoint law from many x0 ~ rho0 against the exact rho1
    ax = fig.add_subplot(gs[1, 0:2])
    bins = np.linspace(bg_x[0], bg_x[-1], 91)
    for i, e in enumerate(eps):
        p = record["ks_pvalue"][f"{e:g}"]["t=1"]
        ax.hist(
            arrays["x1_many"][i],
            bins=bins,
            density=True,
            histtype="step",
            color=eps_color(e),
            lw=1.4,
            label=f"ε = {e:g}: X₁ from x₀ ~ ρ₀ (KS p = {p:.2f})",
        )
    ax.plot(bg_x, arrays["rho1_x"], color=COLORS["reference"], lw=2.2, ls="--", label="exact ρ₁")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title(f"marginal at t = 1 from {record['config']['n_marginal']} starting points: unchanged by ε")
    ax.set_ylim(0, 1.45 * ax.get_ylim()[1])
    ax.legend(fontsize=8, ncol=2, loc="upper center")

    ax = fig.add_subplot(gs[1, 2])
    for i, e in enumerate(eps):
        ax.plot(t, arrays["var_t"][i], color=eps_color(e), lw=1.8, label=f"ε = {e:g}")
    ax.axhline(record["rho1_var"], color=COLORS["floor"], ls=":", lw=1.2, label="Var under ρ₁")
    ax.set_xlabel("t")
    ax.set_ylabel(f"Var(X_t | X_0 = {x0:g})")
    ax.set_title("spread of the paths from one x₀")
    ax.legend(fontsize=8)

    ax = fig.add_subplot(gs[1, 3])
    width = 0.35
    pos = np.arange(len(eps))
    for j, tk in enumerate(record["config"]["ks_times"]):
        ax.bar(
            pos + (j - 0.5) * width,
            arrays["ks_stat"][:, j],
            width,
            color=[eps_color(e) for e in eps],
            alpha=0.5 + 0.5 * j,
            edgecolor="k",
            label=f"t = {tk:g}" + (" (light)" if j == 0 else " (dark)"),
        )
    ax.axhline(record["ks_critical"], color="k", ls="--", lw=1.2, label="critical value (level 0.01, Bonferroni)")
    ax.set_xticks(pos, [f"ε = {e:g}" for e in eps])
    ax.set_ylim(0, 1.6 * record["ks_critical"])
    ax.set_ylabel("KS distance to the exact ρ(t)")
    ax.set_title("marginal test of X_t, x₀ ~ ρ₀")
    ax.legend(fontsize=8, loc="upper center")
    fig.suptitle(
        "Same marginals, different paths: the ODE and SDEs with exact fields of a linear interpolant "
        r"($\gamma = \sqrt{t(1-t)}$) between 1-D mixtures",
        fontsize=12,
    )
    p = out_dir / f"{stem}.png"
    fig.savefig(p, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [p]


if __name__ == "__main__":
    main_for(sys.modules[__name__])
