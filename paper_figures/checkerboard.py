r"""2-D checkerboard: the probability-flow ODE against the SDE for several gamma (SI Sec. 7.1).

Source :math:`\rho_0 = N(0, I_2)`, target :math:`\rho_1` = the checkerboard of
:func:`bridge.data.checkerboard`; linear interpolant
:math:`x_t = (1-t) x_0 + t x_1 + \gamma(t) z` with one model per
:math:`\gamma \in \{0, \sqrt{t(1-t)}, t(1-t), \sin^2(\pi t)\}`. Each model learns ``v`` and ``s``
with separate networks, and the drift is :math:`b = v - \gamma\dot\gamma s` (SI 2.27). Samples come
from the ODE (``eps = 0``, Heun) and from the SDE :math:`dX = (b + \epsilon s)dt + \sqrt{2\epsilon}dW`
(``eps`` in {0.5, 1, 2.5}, stochastic Heun), all from the same ``x0`` draws.

``gamma = 0``: the score loss needs ``gamma > 0`` (its target is ``-z / gamma``), so that model
learns ``v`` only (``b = v``) and is sampled with the ODE only.

Metric (the paper's): the mean and variance over held-out target samples ``x ~ rho1`` of

.. math:: |\log \rho_1(x) - \log \hat\rho_1(x)|,

with :math:`\hat\rho_1` a Gaussian KDE of the model's samples (fixed isotropic bandwidth
``h``, evaluated on a fine grid by linear binning and a Gaussian filter; see
:func:`binned_kde`) and :math:`\log\rho_1 = -\log 32` on the support (:func:`checkerboard_log_density`).
It is evaluated only at target samples, where :math:`\rho_1 > 0`. The same KDE applied to
fresh samples of the true :math:`\rho_1` gives the floor of the metric at this sample size and
bandwidth (edge smoothing plus KDE noise).

Scaled down from the paper (4 x 512 ReLU nets, 7000 Adam steps, 300,000 samples) to fit about
10 minutes of one CPU thread; ``record["config"]`` lists what was used.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bridge.data import checkerboard, gaussian
from bridge.fields import b_from_v_s, forward_drift
from bridge.interpolants import Linear
from bridge.samplers import Heun, StochasticHeun, sample_ode, sample_sde
from bridge.train import train_fields

from ._common import COLORS, GAMMA_COLORS, GAMMA_LABELS, GAMMAS, main_for

NAME = "checkerboard"
PAPER = "Figs. 9-10 (SI Sec. 7.1)"

EPSILONS = (0.0, 0.5, 1.0, 2.5)
#: The model on which the SDE step size is halved: checks the paper's finding that a larger eps needs
#: smaller steps (SI Sec. 7.1).
STEP_STUDY_GAMMA = "sqrt(t(1-t))"

#: The checkerboard: 8 squares of side 2 in [-4, 4]^2, density 1/32 on each.
BOARD_HALF_WIDTH = 4.0
SQUARE_SIDE = 2.0
LOG_DENSITY_ON_SUPPORT = -math.log(32.0)
#: Lower clamp of the KDE before the log (a density this small at a target point counts as a
#: miss of about log(1/32 / 1e-6) = 10.4 nats); the record counts how often it binds.
KDE_FLOOR = 1e-6


def config(quick: bool) -> dict:
    """Experiment settings (the paper's, scaled down; see the module docstring)."""
    if quick:
        return dict(
            hidden=32, depth=3, activation="relu", train_steps=150, batch_size=256, lr=2e-3, ema=0.99,
            n_samples=3000, n_eval=3000, ode_steps=20, sde_steps=30, bandwidth=0.3, bins_per_h=6,
            n_step_study=1000,
        )  # fmt: skip
    return dict(
        hidden=128, depth=3, activation="relu", train_steps=2500, batch_size=1000, lr=2e-3, ema=0.999,
        n_samples=20000, n_eval=20000, ode_steps=100, sde_steps=200, bandwidth=0.15, bins_per_h=6,
        n_step_study=2000,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The exact target density and the KDE metric
# --------------------------------------------------------------------------------------------


def checkerboard_log_density(x: np.ndarray) -> np.ndarray:
    r"""Exact log-density of :func:`bridge.data.checkerboard`.

    The generator draws :math:`u_1 \sim U[-2, 2)`, :math:`u_2 = U[0,1) - 2B + (\lfloor u_1\rfloor \bmod 2)`
    and returns :math:`2u`, so :math:`\lfloor u_1\rfloor + \lfloor u_2\rfloor` is even, with each of the
    8 unit cells equally likely and uniform inside. Hence

    .. math::
        \rho_1(x) = \tfrac{1}{32}\,\mathbb 1\{x \in [-4, 4)^2,\
                    \lfloor x_1/2\rfloor + \lfloor x_2/2\rfloor \text{ even}\}.

    Args:
        x: points, shape ``(n, 2)``.

    Returns:
        ``(n,)``: ``-log 32`` on the support, ``-inf`` off it.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x: expected shape (n, 2), got {x.shape}")
    inside = np.all((x >= -BOARD_HALF_WIDTH) & (x < BOARD_HALF_WIDTH), axis=1)
    cells = np.floor(x / SQUARE_SIDE).astype(np.int64).sum(axis=1)
    on = inside & (cells % 2 == 0)
    return np.where(on, LOG_DENSITY_ON_SUPPORT, -np.inf)


def binned_kde(samples: np.ndarray, *, bandwidth: float, lo: float, hi: float, bins: int):
    r"""Gaussian KDE on a regular grid, by linear binning and a Gaussian filter.

    .. math:: \hat\rho(y) = \frac1n \sum_{i=1}^n \frac{1}{2\pi h^2} e^{-|y - x_i|^2 / (2h^2)},

    evaluated at the nodes ``lo + k (hi - lo) / (bins - 1)`` of each axis. Each sample's unit
    mass is split among its 4 nearest nodes (linear binning), and the node masses are smoothed
    by a sampled Gaussian of standard deviation ``h / dx`` nodes, truncated at 5 h. Samples
    outside ``[lo, hi]^2`` are dropped but still count in ``n``: place the grid at least 5 h
    beyond the points where the KDE is used. With ``dx <= h / 5`` the binning changes the
    kernel variance by at most ``dx^2 / 3`` relative to ``h^2`` (under 2 %).

    Args:
        samples: ``(n, 2)`` points.
        bandwidth: kernel standard deviation ``h`` (same on both axes).
        lo, hi: grid range on both axes.
        bins: nodes per axis.

    Returns:
        ``(density, nodes)``: ``density[i, j]`` at ``(nodes[i], nodes[j])`` (first axis = x1),
        shape ``(bins, bins)``; ``nodes`` shape ``(bins,)``.
    """
    from scipy.ndimage import gaussian_filter

    x = np.asarray(samples, dtype=float)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] < 1:
        raise ValueError(f"samples: expected shape (n, 2) with n >= 1, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples: contains NaN or Inf")
    if not (bandwidth > 0):
        raise ValueError(f"bandwidth: expected a positive number, got {bandwidth!r}")
    nodes = np.linspace(lo, hi, bins)
    dx = nodes[1] - nodes[0]
    g = (x - lo) / dx  # fractional node coordinates
    keep = np.all((g >= 0) & (g <= bins - 1), axis=1)
    g = g[keep]
    i0 = np.minimum(np.floor(g).astype(np.int64), bins - 2)
    f = g - i0
    mass = np.zeros((bins, bins))
    for di in (0, 1):
        wi = f[:, 0] if di else 1.0 - f[:, 0]
        for dj in (0, 1):
            wj = f[:, 1] if dj else 1.0 - f[:, 1]
            np.add.at(mass, (i0[:, 0] + di, i0[:, 1] + dj), wi * wj)
    dens = gaussian_filter(mass, sigma=bandwidth / dx, mode="constant", truncate=5.0)
    return dens / (x.shape[0] * dx * dx), nodes


def kde_log_density(samples: np.ndarray, points: np.ndarray, *, bandwidth: float, bins_per_h: int = 6) -> np.ndarray:
    """``log`` of the Gaussian KDE of ``samples`` at ``points`` (:func:`binned_kde` on a grid
    5 h beyond the points, read off by bilinear interpolation), clamped below at
    :data:`KDE_FLOOR`. Returns ``(m,)``."""
    from scipy.ndimage import map_coordinates

    p = np.asarray(points, dtype=float)
    lo, hi = float(p.min()) - 5 * bandwidth, float(p.max()) + 5 * bandwidth
    bins = int(math.ceil((hi - lo) / (bandwidth / bins_per_h))) + 1
    dens, nodes = binned_kde(samples, bandwidth=bandwidth, lo=lo, hi=hi, bins=bins)
    coords = ((p - lo) / (nodes[1] - nodes[0])).T
    vals = map_coordinates(dens, coords, order=1, mode="nearest")
    return np.log(np.maximum(vals, KDE_FLOOR))


def log_density_errors(samples: np.ndarray, targets: np.ndarray, *, bandwidth: float, bins_per_h: int = 6):
    r"""``|log rho1(x) - log rho^1(x)|`` at each target sample ``x`` (the paper's metric, whose
    mean and variance are reported), with ``rho^1`` the KDE of ``samples``.

    Returns:
        ``(errors (m,), n_floored)``: the errors, and how many KDE values hit :data:`KDE_FLOOR`.

    Raises:
        ValueError: if a target point lies off the support (``rho1 = 0``: the metric is undefined).
    """
    log_true = checkerboard_log_density(targets)
    if not np.all(np.isfinite(log_true)):
        raise ValueError("targets: every point must lie in the checkerboard's support (rho1 > 0)")
    log_kde = kde_log_density(samples, targets, bandwidth=bandwidth, bins_per_h=bins_per_h)
    return np.abs(log_true - log_kde), int(np.sum(log_kde <= math.log(KDE_FLOOR) + 1e-12))


# --------------------------------------------------------------------------------------------
# Training and sampling
# --------------------------------------------------------------------------------------------


def _sampler(fn):
    return lambda n, generator: fn(n, generator=generator)


def _train(gamma_name: str, cfg: dict, seed: int, log):
    interp = Linear(gamma=GAMMAS[gamma_name]())
    fields = ("v",) if gamma_name == "zero" else ("v", "s")
    res = train_fields(
        interp,
        _sampler(gaussian),
        _sampler(checkerboard),
        fields=fields,
        steps=cfg["train_steps"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        hidden=cfg["hidden"],
        depth=cfg["depth"],
        activation=cfg["activation"],
        ema=cfg["ema"],
        seed=seed,
        log_every=max(cfg["train_steps"] // 4, 1),
        progress=lambda m: log(f"  {gamma_name}: {m}"),
    )
    return interp, res


def _drift(interp, models: dict, eps: float):
    """``b_F = v + (eps - gamma gamma_dot) s`` with one evaluation of each network (``b = v``
    when there is no score network)."""
    v_net, s_net = models["v"], models.get("s")
    if s_net is None:
        return lambda t, x: v_net(t, x)

    def drift(t, x):
        s = s_net(t, x)
        return forward_drift(b_from_v_s(v_net(t, x), s, interp.gamma_gamma_dot(t)), s, eps)

    return drift


@torch.no_grad()
def _sample(interp, models, eps: float, x0: torch.Tensor, cfg: dict, seed: int, chunk: int = 2048) -> np.ndarray:
    drift = _drift(interp, models, eps)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for xc in x0.split(chunk):
        if eps == 0.0:
            r = sample_ode(drift, xc, steps=cfg["ode_steps"], solver=Heun())
        else:
            r = sample_sde(drift, xc, eps=eps, steps=cfg["sde_steps"], solver=StochasticHeun(), generator=gen)
        out.append(r.x)
    return torch.cat(out).numpy()


@torch.no_grad()
def _step_study(interp, models, eps: float, x0: torch.Tensor, steps: int, seed: int, targets, cfg) -> dict:
    """The SDE with ``steps`` and ``steps // 2`` stochastic-Heun steps driven by the same Brownian
    path (coarse increments = sums of pairs of fine ones): the mean pathwise gap between the two
    end points, and the metric of each. A larger gap means the step size matters more."""
    drift = _drift(interp, models, eps)
    gen = torch.Generator().manual_seed(seed)
    xi = torch.randn((steps,) + tuple(x0.shape), generator=gen, dtype=x0.dtype)
    fine = sample_sde(drift, x0, eps=eps, steps=steps, solver=StochasticHeun(), noise=xi).x
    coarse_xi = (xi[0::2] + xi[1::2]) / math.sqrt(2.0)
    coarse = sample_sde(drift, x0, eps=eps, steps=steps // 2, solver=StochasticHeun(), noise=coarse_xi).x
    h, bph = cfg["bandwidth"], cfg["bins_per_h"]
    return {
        "steps": [steps // 2, steps],
        "pathwise_gap": float((fine - coarse).norm(dim=1).mean()),
        "metric_coarse": float(log_density_errors(coarse.numpy(), targets, bandwidth=h, bins_per_h=bph)[0].mean()),
        "metric_fine": float(log_density_errors(fine.numpy(), targets, bandwidth=h, bins_per_h=bph)[0].mean()),
    }


def compute(args, log):
    cfg = config(args.quick)
    h, bph = cfg["bandwidth"], cfg["bins_per_h"]
    g_data = torch.Generator().manual_seed(args.seed + 1000)
    x0 = gaussian(cfg["n_samples"], generator=g_data)
    targets = checkerboard(cfg["n_eval"], generator=g_data).double().numpy()
    true_samples = checkerboard(cfg["n_samples"], generator=g_data).double().numpy()

    # the floor: the same KDE on fresh samples of the true rho1
    floor_err, _ = log_density_errors(true_samples, targets, bandwidth=h, bins_per_h=bph)
    # a second independent true sample set: how much the metric moves from sample noise alone
    repeat = checkerboard(cfg["n_samples"], generator=g_data).double().numpy()
    floor_rep = log_density_errors(repeat, targets, bandwidth=h, bins_per_h=bph)[0].mean()
    log(f"floor (true samples): mean {floor_err.mean():.4f} var {floor_err.var():.4f}; repeat {floor_rep:.4f}")

    names = list(GAMMAS)
    mean = np.full((len(names), len(EPSILONS)), np.nan)
    var = np.full_like(mean, np.nan)
    n_floored = np.zeros(mean.shape, dtype=np.int64)
    samples = np.full((len(names), len(EPSILONS), cfg["n_samples"], 2), np.nan, dtype=np.float32)
    train_s, sample_s, losses, step_study = {}, {}, {}, {}
    for gi, name in enumerate(names):
        t0 = time.perf_counter()
        interp, res = _train(name, cfg, args.seed + gi, log)
        train_s[name] = round(time.perf_counter() - t0, 1)
        losses[name] = {k: v for k, v in res.history[-1].items() if k.startswith("loss_")}
        t0 = time.perf_counter()
        for ei, eps in enumerate(EPSILONS):
            if eps > 0 and "s" not in res.models:
                continue  # gamma = 0: no score, so no SDE
            x1 = _sample(interp, res.models, eps, x0, cfg, seed=args.seed + 100 * gi + ei)
            err, nf = log_density_errors(x1, targets, bandwidth=h, bins_per_h=bph)
            samples[gi, ei] = x1
            mean[gi, ei], var[gi, ei], n_floored[gi, ei] = err.mean(), err.var(), nf
            log(f"  {name} eps={eps}: mean {err.mean():.4f} var {err.var():.4f} (floored {nf})")
        sample_s[name] = round(time.perf_counter() - t0, 1)
        if name == STEP_STUDY_GAMMA:
            xs = x0[: cfg["n_step_study"]]
            for eps in (EPSILONS[1], EPSILONS[-1]):
                step_study[f"eps={eps}"] = st = _step_study(
                    interp, res.models, eps, xs, cfg["sde_steps"], args.seed + 7, targets, cfg
                )
                log(f"  step study eps={eps}: {st}")

    # images: the KDE on the plotting window, for every sample set and the true samples
    lo, hi = -BOARD_HALF_WIDTH - 0.5, BOARD_HALF_WIDTH + 0.5
    bins = int(math.ceil((hi - lo) / (h / 2))) + 1
    images = np.zeros((len(names), len(EPSILONS), bins, bins), dtype=np.float32)
    for gi in range(len(names)):
        for ei in range(len(EPSILONS)):
            if np.isfinite(mean[gi, ei]):
                images[gi, ei] = binned_kde(samples[gi, ei], bandwidth=h, lo=lo, hi=hi, bins=bins)[0]
    true_image, nodes = binned_kde(true_samples, bandwidth=h, lo=lo, hi=hi, bins=bins)

    record = {
        "config": {
            **cfg,
            "gammas": names,
            "eps": list(EPSILONS),
            "interpolant": "linear: x_t = (1-t) x0 + t x1 + gamma(t) z",
            "fields": "v and s, separate networks; b = v - gamma gamma_dot s; gamma = 0: v only (ODE only)",
            "ode_solver": "Heun",
            "sde_solver": "StochasticHeun",
            "kde": f"Gaussian, fixed isotropic bandwidth h = {h}, binned on a grid of spacing h/{bph}",
            "kde_floor": KDE_FLOOR,
            "train_lr_schedule": "bridge.train.train_fields: cosine decay to 5% of lr, EMA of weights",
            "paper": "4x512 ReLU nets, Adam 2e-3 halved every 1500 of 7000 steps, 300,000 samples",
        },
        "metric": "mean and variance over held-out target samples of |log rho1(x) - log rho^1(x)|",
        "floor": {"mean": float(floor_err.mean()), "var": float(floor_err.var())},
        "floor_repeat": {
            "mean": float(floor_rep),
            "note": "a second true sample set; its difference to floor"
            " shows the metric's noise from the finite sample alone",
        },
        "results": {
            name: {
                f"eps={eps}": (
                    {"mean": float(mean[gi, ei]), "var": float(var[gi, ei]), "n_floored": int(n_floored[gi, ei])}
                    if np.isfinite(mean[gi, ei])
                    else None
                )
                for ei, eps in enumerate(EPSILONS)
            }
            for gi, name in enumerate(names)
        },
        "final_losses": losses,
        "train_s": train_s,
        "sample_s": sample_s,
        "step_study": {"gamma": STEP_STUDY_GAMMA, **step_study},
    }
    record.update(_findings(names, mean, var, cfg["n_eval"]))
    lo_eps, hi_eps = (f"eps={e}" for e in (EPSILONS[1], EPSILONS[-1]))
    record["findings"]["a larger eps needs smaller steps (halving the SDE steps moves the end points more)"] = bool(
        step_study[hi_eps]["pathwise_gap"] > step_study[lo_eps]["pathwise_gap"]
    )
    record["notes"] = _notes(names, mean, var, record, cfg)
    arrays = {
        "mean": mean,
        "var": var,
        "images": images,
        "true_image": true_image.astype(np.float32),
        "nodes": nodes,
        "floor": np.array([floor_err.mean(), floor_err.var()]),
    }
    return arrays, record


def _findings(names, mean, var, n_eval) -> dict:
    """The paper's claims, measured; gamma = 0 has no SDE and enters only the ODE comparison."""
    ode = {n: mean[i, 0] for i, n in enumerate(names)}
    noisy = [n for n in names if n != "zero"]
    sde_beats = {n: bool(np.all(mean[names.index(n), 1:] < ode[n])) for n in noisy}
    # gap = ODE error minus the best SDE error (> 0: some SDE is better); the claim that the gap
    # is smallest for sqrt(t(1-t)) is read as "its ODE and best SDE are closest": smallest |gap|
    gap = {n: float(ode[n] - np.min(mean[names.index(n), 1:])) for n in noisy}
    smallest = min(gap, key=lambda n: abs(gap[n]))
    # spread of each mean from the finite set of target points alone; not included: the noise of
    # the model's finite sample (see the record's floor_repeat) and of its training
    se = {n: float(np.sqrt(var[i, 0] / n_eval)) for i, n in enumerate(names)}
    findings = {
        "every SDE beats the ODE (all gamma > 0, all eps > 0)": all(sde_beats.values()),
        **{f"every SDE beats the ODE, gamma = {n}": v for n, v in sde_beats.items()},
        "ODE-SDE gap |ODE - best SDE| is smallest for gamma = sqrt(t(1-t))": smallest == "sqrt(t(1-t))",
        "with eps = 0, gamma = sqrt(t(1-t)) beats gamma = 0": bool(ode["sqrt(t(1-t))"] < ode["zero"]),
    }
    return {
        "findings": findings,
        "gap_ode_minus_best_sde": gap,
        "smallest_abs_gap": smallest,
        "ode_mean_target_standard_error": se,
    }


def _notes(names, mean, var, record, cfg) -> list[str]:
    """Plain-language reading of the numbers, written from them (so a rerun rewrites it)."""
    fl, rep = record["floor"]["mean"], record["floor_repeat"]["mean"]
    notes = [
        "gamma = 0: the score loss has target -z/gamma, so s cannot be learned from this interpolant; "
        "that model learns v only, b = v, and is sampled with the ODE only.",
        f"Noise scale: the metric of two independent true sample sets of size {cfg['n_samples']} is "
        f"{fl:.3f} and {rep:.3f} (one draw of its sample noise: {abs(fl - rep):.3f}); each model is also a "
        "single training seed, so differences of this order between runs are not resolved.",
    ]
    for i, n in enumerate(names):
        if n == "zero":
            continue
        ode, sde = mean[i, 0], mean[i, 1:]
        worse = [f"eps={e:g}: {m:.4f}" for e, m in zip(EPSILONS[1:], sde) if m >= ode]
        if worse:
            text = f"gamma = {n}: the SDE does not beat the ODE ({ode:.4f}) at " + ", ".join(worse)
            text += f" (largest excess {max(sde) - ode:+.4f})."
            if ode == np.nanmin(mean[:, 0]):
                others = ", ".join(f"{mean[j, 0]:.4f}" for j in range(len(names)) if j != i)
                text += f" Its ODE is the best ODE of all ({ode:.4f} against {others})."
            notes.append(text)
    rising = [n for i, n in enumerate(names) if n != "zero" and np.all(np.diff(mean[i, 1:]) > 0)]
    if rising:
        notes.append(
            "The SDE error rises from eps = 0.5 to 2.5 for gamma = " + ", ".join(rising) + ". The SDE drift "
            "b + eps s multiplies the error of the learned s by eps; with the scaled-down networks that is a "
            "plausible cause, not tested here."
        )
    lower_var = [n for i, n in enumerate(names) if n != "zero" and var[i, 1] < var[i, 0]]
    if lower_var:
        notes.append(
            "The variance of the error is lower at eps = 0.5 than with the ODE for gamma = "
            + ", ".join(lower_var)
            + "."
        )
    g = record["gap_ode_minus_best_sde"]
    notes.append(
        "Gap = ODE error - best SDE error: "
        + ", ".join(f"{n} {v:+.4f}" for n, v in g.items())
        + "; the finding uses |gap| (the ODE and the best SDE are closest)."
    )
    return notes


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def plot(arrays, record, out_dir) -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    names, eps_list = record["config"]["gammas"], record["config"]["eps"]
    mean, var = arrays["mean"], arrays["var"]
    nodes = arrays["nodes"]
    ext = (nodes[0], nodes[-1], nodes[0], nodes[-1])
    vmax = 2.0 / 32.0
    suffix = "_quick" if record.get("quick") else ""
    h = record["config"]["bandwidth"]

    # Fig. 9: KDE images, gamma x eps, with the target in the first column
    fig, axes = plt.subplots(len(names), len(eps_list) + 1, figsize=(2.6 * (len(eps_list) + 1), 2.7 * len(names)))
    for gi, name in enumerate(names):
        for ei, eps in enumerate(eps_list):
            ax = axes[gi, ei + 1]
            if np.isfinite(mean[gi, ei]):
                im = ax.imshow(
                    arrays["images"][gi, ei].T, origin="lower", extent=ext, cmap="viridis", vmin=0, vmax=vmax
                )
                kind = "ODE" if eps == 0 else "SDE"
                ax.set_title(f"{kind} $\\epsilon$={eps:g}\nerr {mean[gi, ei]:.3f} (var {var[gi, ei]:.3f})", fontsize=8)
            else:
                ax.text(0.5, 0.5, "no SDE:\ns needs $\\gamma > 0$", ha="center", va="center", fontsize=9)
                ax.set_title(f"SDE $\\epsilon$={eps:g}", fontsize=8)
                ax.set_facecolor("#eeeeee")
            ticks = [-4, 0, 4] if np.isfinite(mean[gi, ei]) else []
            ax.set_xticks(ticks)
            ax.set_yticks(ticks)
            ax.tick_params(labelsize=7)
            if ei == 0:
                ax.set_ylabel(GAMMA_LABELS[name] + "\n$x_2$", fontsize=9)
            if gi == len(names) - 1:
                ax.set_xlabel("$x_1$", fontsize=8)
    axes[0, 0].imshow(arrays["true_image"].T, origin="lower", extent=ext, cmap="viridis", vmin=0, vmax=vmax)
    fl = record["floor"]
    axes[0, 0].set_title(
        f"target $\\rho_1$ (KDE of true samples)\nerr {fl['mean']:.3f} (var {fl['var']:.3f})", fontsize=8
    )
    axes[0, 0].set_ylabel("$x_2$", fontsize=8)
    axes[0, 0].tick_params(labelsize=7)
    for gi in range(1, len(names)):
        axes[gi, 0].axis("off")
    axes[1, 0].text(
        0.0,
        0.9,
        "err = mean over $x\\sim\\rho_1$ of\n$|\\log\\rho_1(x) - \\log\\hat\\rho_1(x)|$,\n"
        f"$\\hat\\rho_1$: Gaussian KDE, h = {h:g}\n(variance in brackets)",
        transform=axes[1, 0].transAxes,
        va="top",
        fontsize=8,
    )
    fig.suptitle(
        "Checkerboard from N(0, I): KDE of generated samples (rows: $\\gamma$; columns: ODE / SDE $\\epsilon$)"
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    cax = fig.add_axes([0.04, 0.12, 0.13, 0.015])
    fig.colorbar(im, cax=cax, orientation="horizontal", label="density")
    p1 = out_dir / f"{NAME}_kde{suffix}.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)

    # Fig. 10: the metric against eps
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    eps_arr = np.asarray(eps_list, dtype=float)
    for gi, name in enumerate(names):
        ok = np.isfinite(mean[gi])
        label = GAMMA_LABELS[name] + (" (ODE only)" if ok.sum() == 1 else "")
        style = dict(color=GAMMA_COLORS[name], label=label, marker="o")
        for ax, vals in zip(axes, (mean, var)):
            ax.plot(eps_arr[ok], vals[gi][ok], **style)
            if ok.sum() == 1:  # an ODE-only model: its level across the panel, for comparison
                ax.axhline(vals[gi][ok][0], color=GAMMA_COLORS[name], ls=":", lw=1)
    for ax, key in zip(axes, ("mean", "var")):
        ax.axhline(fl[key], color=COLORS["floor"], ls="--", label="true samples (KDE floor)")
        ax.set_xlabel("$\\epsilon$ (0 = ODE)")
        ax.set_xticks(eps_arr)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean of $|\\log\\rho_1 - \\log\\hat\\rho_1|$ (nats)")
    axes[1].set_ylabel("variance of $|\\log\\rho_1 - \\log\\hat\\rho_1|$ (nats$^2$)")
    axes[0].set_title("mean over target samples")
    axes[1].set_title("variance over target samples")
    axes[0].legend(fontsize=8)
    fig.suptitle("Checkerboard: KDE log-density error of ODE ($\\epsilon$ = 0) and SDE samples")
    fig.tight_layout()
    p2 = out_dir / f"{NAME}_error{suffix}.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


if __name__ == "__main__":
    main_for(sys.modules[__name__])
