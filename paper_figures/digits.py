r"""Images with one-sided and mirror interpolants on scikit-learn's 8x8 digits (SI Sec. 7.3).

The paper trains U-Nets on Oxford Flowers at 128x128; that is far beyond a CPU, so this figure
uses the 1,797 8x8 digits that ship with scikit-learn (an optional dependency: ``pip install
scikit-learn``). Pixels (0..16) are scaled to [-1, 1] by ``p / 8 - 1``; every distance below is
the Euclidean norm in R^64 in those units.

* **One-sided** interpolants (rho0 = N(0, I), SI 4.19): linear ``x_t = (1-t) z + t x1`` and trig
  ``x_t = cos(pi t/2) z + sin(pi t/2) x1``. For each we learn ``b`` and ``eta`` (two MLPs) and
  sample the forward SDE ``dX = (b + eps s) dt + sqrt(2 eps) dW`` with ``s = -eta / alpha`` for
  eps in {0 (ODE), 1, 2, 4}: integrate to ``t = 0.97`` and take one denoising step
  ``E[x1 | x_t] = (x_t - alpha eta) / beta`` (docs/math.md §3). From one latent start z, repeated SDE
  runs give different digits; their spread (the mean pairwise distance) measures diversity.
* **Mirror** interpolant (rho0 = rho1, ``x_t = x1 + gamma z``, ``gamma = sqrt(t(1-t))``): learn
  ``eta`` only, ``b = gamma_dot eta``. Started at a held-out digit, the ODE returns it (the flow
  runs up to ``gamma = 1/2`` and back down the same path). The paper's SDE at eps = 10 returns a
  new image near the input; here we measure how far the SDE moves and whether the digit keeps
  its class (a logistic-regression classifier), for eps in {0.3, 1, 3, 10}.
* **Memorisation check**: the nearest-neighbour (NN) distance of samples to the training set,
  against that of held-out test digits to the training set. Copies of training digits would
  have NN distances far below the test digits'.

The score ``-eta / alpha`` makes the SDE stiff where ``alpha -> 0`` (rate ``eps / alpha^2``), so
the time grid is refined geometrically towards the singular end: every piece has uniform steps
with ``rate * dt <= courant`` (:func:`time_pieces`).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

from paper_figures._common import COLORS, eps_color, main_for

NAME = "digits"
PAPER = "Figs. 15-17 (SI Sec. 7.3), stand-in data"

SKLEARN_MISSING = (
    "error: paper_figures.digits needs scikit-learn (an optional dependency for figures): "
    'pip install scikit-learn, or pip install -e ".[figures]"'
)

EPS_ONE_SIDED = (0.0, 1.0, 2.0, 4.0)
EPS_DIVERSITY_EXTRA = (0.1, 0.3)  # not in the paper: where the diversity curve rises
EPS_MIRROR = 10.0  # the paper's setting; the findings use it
EPS_MIRROR_SWEEP = (0.3, 1.0, 3.0, 10.0)  # also shown, to see how far the SDE moves with eps
T_MAX_ONE_SIDED = 0.97  # integrate to here, then one denoising step (the paper's setting)
T_MIN_MIRROR = 1e-3  # the mirror flow runs on [t_min, 1 - t_min]: b = gamma_dot eta is singular at 0, 1
MODEL_LABELS = {"linear": "one-sided linear", "trig": "one-sided trig"}
MODEL_COLORS = {"linear": "#d62728", "trig": "#17becf"}
# eps in {2, 4} are not in the shared palette (which covers 0, 0.5, 1, 2.5): two colours unused there
_EXTRA_EPS_COLORS = {2.0: "#9467bd", 4.0: "#8c564b"}


def _eps_col(eps: float) -> str:
    return _EXTRA_EPS_COLORS.get(float(eps)) or eps_color(eps)


# ----------------------------------------------------------------------------------------------
# helpers (tested in tests/test_paper_figures_digits.py)


def require_sklearn():
    """Import scikit-learn or exit with a one-line message naming the install command."""
    try:
        import sklearn
    except ImportError:
        raise SystemExit(SKLEARN_MISSING) from None
    return sklearn


def scale_pixels(p: np.ndarray) -> np.ndarray:
    """Digits pixels 0..16 -> [-1, 1] (``p / 8 - 1``), float32."""
    return (np.asarray(p, dtype=np.float64) / 8.0 - 1.0).astype(np.float32)


def load_digits_split(n_test: int, seed: int):
    """scikit-learn's digits scaled to [-1, 1], split at random into train and held-out test.

    Returns:
        ``(x_train, y_train, x_test, y_test)``; images flattened to ``(n, 64)``.
    """
    require_sklearn()
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = scale_pixels(d.data), d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def nearest_neighbours(queries: np.ndarray, reference: np.ndarray, *, chunk: int = 2048):
    """Euclidean distance from each query to its nearest reference point, and that point's index.

    Args:
        queries: ``(m, d)``; reference: ``(n, d)``.

    Returns:
        ``(dist, index)``, each ``(m,)``.
    """
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1] or len(r) == 0:
        raise ValueError(f"queries, reference: expected (m, d) and (n, d) with n >= 1, got {q.shape} and {r.shape}")
    r2 = (r * r).sum(1)
    dist, idx = np.empty(len(q)), np.empty(len(q), dtype=np.int64)
    for i in range(0, len(q), chunk):
        qi = q[i : i + chunk]
        d2 = (qi * qi).sum(1)[:, None] - 2.0 * qi @ r.T + r2[None, :]
        j = d2.argmin(1)
        idx[i : i + chunk] = j
        # recompute the winning distance directly: the expanded form loses digits for close points
        dist[i : i + chunk] = np.linalg.norm(qi - r[j], axis=1)
    return dist, idx


def mean_pairwise_distance(groups: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance over the ``K (K-1) / 2`` pairs within each group.

    Args:
        groups: ``(S, K, d)``, ``K >= 2`` samples per group (e.g. SDE runs from one start).

    Returns:
        ``(S,)``.
    """
    g = np.asarray(groups, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] < 2:
        raise ValueError(f"groups: expected shape (S, K, d) with K >= 2, got {g.shape}")
    diff = np.linalg.norm(g[:, :, None, :] - g[:, None, :, :], axis=-1)
    k = g.shape[1]
    iu = np.triu_indices(k, 1)
    return diff[:, iu[0], iu[1]].mean(1)


def time_pieces(breaks, rate, courant: float, max_dt: float = math.inf) -> list[tuple[float, float, int]]:
    """Pieces ``(a, b, steps)`` covering ``breaks[0] -> breaks[-1]`` with uniform steps per piece.

    Each piece gets the fewest steps with ``rate(t) * dt <= courant`` at both of its ends (the
    largest rate on the piece when ``rate`` is monotone or convex there, as ``eps / alpha(t)^2``
    is), so a stiff end gets small steps without paying for them elsewhere.

    Args:
        breaks: increasing times.
        rate: ``t -> float >= 0``, the stiffness (the drift's largest decay rate) at ``t``.
        courant: the largest ``rate * dt`` allowed (about 1 for Heun's stability).
        max_dt: the largest step allowed anywhere (accuracy where the stiffness is small).
    """
    breaks = [float(b) for b in breaks]
    if len(breaks) < 2 or any(b <= a for a, b in zip(breaks, breaks[1:])):
        raise ValueError(f"breaks: expected at least two increasing times, got {breaks}")
    if not courant > 0:
        raise ValueError(f"courant: expected a positive number, got {courant!r}")
    out = []
    for a, b in zip(breaks, breaks[1:]):
        r = max(float(rate(a)), float(rate(b)), 0.0)
        n = max(1, math.ceil((b - a) * r / courant - 1e-9), math.ceil((b - a) / max_dt - 1e-9))
        out.append((a, b, n))
    return out


def geometric_breaks(near: float, far: float, end: float, ratio: float = math.sqrt(2.0)) -> list[float]:
    """Increasing times from ``near`` to ``far`` (either order) whose distances to a stiff end
    ``end`` (outside the interval) form a geometric sequence with ratio at most ``ratio``.

    Example: ``geometric_breaks(0.97, 0.0, end=1.0, ratio=2)`` has distances 0.03, ..., 1 to t = 1.
    """
    d0, d1 = abs(near - end), abs(far - end)
    if not (0 < d0 < d1) or (near - end) * (far - end) <= 0:
        raise ValueError(
            f"near, far, end: expected end outside [near, far] and nearer to near, got {near}, {far}, {end}"
        )
    n = max(1, math.ceil(math.log(d1 / d0) / math.log(ratio) - 1e-9))
    sign = 1.0 if near > end else -1.0
    ts = [end + sign * d for d in np.geomspace(d0, d1, n + 1)]
    ts[0], ts[-1] = near, far
    return sorted(ts)


def mosaic(images: np.ndarray, cols: int, pad: float = np.nan) -> np.ndarray:
    """Tile ``(n, 64)`` images into one ``(rows*9 - 1, cols*9 - 1)`` array, separated by ``pad``."""
    n = len(images)
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * 9 - 1, cols * 9 - 1), pad)
    for k, im in enumerate(np.asarray(images)):
        i, j = divmod(k, cols)
        out[i * 9 : i * 9 + 8, j * 9 : j * 9 + 8] = np.asarray(im).reshape(8, 8)
    return out


# ----------------------------------------------------------------------------------------------
# sampling


def _integrate(fields, x, *, eps: float, pieces, generator):
    """Run the ODE (eps = 0, Heun) or forward SDE (stochastic Heun) over consecutive pieces."""
    from bridge.samplers import Heun, StochasticHeun, sample_ode, sample_sde

    if eps == 0.0:
        for a, b, n in pieces:
            x = sample_ode(fields.drift, x, t0=a, t1=b, steps=n, solver=Heun()).x
        return x
    drift = fields.forward_drift(eps)
    for a, b, n in pieces:
        x = sample_sde(drift, x, eps=eps, t0=a, t1=b, steps=n, solver=StochasticHeun(), generator=generator).x
    return x


def _one_sided_pieces(interp, eps: float, courant: float, max_dt: float):
    """Grid on [0, 0.97]: stiffness ``|alpha_dot / alpha| + eps / alpha^2`` (drift + eps * score)."""

    def rate(t):
        tt = torch.tensor([t], dtype=torch.float64)
        a, ad = float(interp.alpha(tt)), float(interp.alpha_dot(tt))
        return abs(ad) / a + eps / a**2

    return time_pieces(geometric_breaks(T_MAX_ONE_SIDED, 0.0, end=1.0), rate, courant, max_dt)


def _mirror_pieces(interp, eps: float, courant: float, max_dt: float):
    """Grid on [t_min, 1 - t_min], symmetric about 1/2: stiffness ``|gamma_dot/gamma| + eps/gamma^2``."""

    def rate(t):
        tt = torch.tensor([t], dtype=torch.float64)
        g, gd = float(interp.gamma(tt)), float(interp.gamma_dot(tt))
        return abs(gd) / g + eps / g**2

    left = geometric_breaks(T_MIN_MIRROR, 0.5, end=0.0)
    right = [1.0 - t for t in reversed(left[:-1])]
    return time_pieces(left + right, rate, courant, max_dt)


# ----------------------------------------------------------------------------------------------
# compute


def _config(quick: bool) -> dict:
    if quick:
        return dict(
            n_test=360,
            hidden=128,
            depth=3,
            train_steps=250,
            mirror_steps=250,
            batch=256,
            lr=2e-3,
            ema=0.99,
            n_samples=120,
            starts=6,
            per_start=4,
            mirror_inputs=24,
            mirror_runs=3,
            courant=1.0,
            max_dt=0.05,
        )
    return dict(
        n_test=360,
        hidden=256,
        depth=3,
        train_steps=3000,
        mirror_steps=3000,
        batch=256,
        lr=2e-3,
        ema=0.999,
        n_samples=360,
        starts=16,
        per_start=8,
        mirror_inputs=120,
        mirror_runs=4,
        courant=0.5,
        max_dt=0.01,
    )


def _classifier(x_train, y_train):
    """Multinomial logistic regression on the training digits: a digit-likeness proxy."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        clf = LogisticRegression(max_iter=3000, C=1.0)
        clf.fit(x_train, y_train)
    return clf


def _train(interp, x0, x1, fields, *, cfg, steps, seed, log):
    from bridge.train import train_fields

    return train_fields(
        interp,
        x0,
        x1,
        fields=fields,
        steps=steps,
        batch_size=cfg["batch"],
        lr=cfg["lr"],
        hidden=cfg["hidden"],
        depth=cfg["depth"],
        activation="silu",
        ema=cfg["ema"],
        seed=seed,
        log_every=max(1, steps // 4),
        progress=lambda m: log(m),
    )


def compute(args, log):
    require_sklearn()
    from bridge.interpolants import BrownianGamma, Mirror, OneSidedLinear, OneSidedTrig

    cfg = _config(args.quick)
    seed = int(args.seed)
    x_tr, y_tr, x_te, y_te = load_digits_split(cfg["n_test"], seed)
    log(f"digits: {len(x_tr)} train, {len(x_te)} held-out test, 64-D, pixels in [-1, 1]")
    xt_tr = torch.from_numpy(x_tr)
    clf = _classifier(x_tr, y_tr)
    test_acc = float(clf.score(x_te, y_te))
    nn_test, _ = nearest_neighbours(x_te, x_tr)
    arrays: dict[str, np.ndarray] = {
        "train_examples": x_tr[:40],
        "test_nn_dist": nn_test.astype(np.float32),
    }
    test_conf = float(clf.predict_proba(x_te).max(1).mean())
    near_copy_thr = float(np.quantile(nn_test, 0.05))
    record: dict = {
        "config": {
            **cfg,
            "data": "sklearn digits 8x8 (1797 images), pixels p/8 - 1 in [-1, 1]",
            "split": f"{len(x_tr)} train / {len(x_te)} held-out test (random, seed {seed})",
            "eps_one_sided": list(EPS_ONE_SIDED),
            "eps_diversity": sorted(set(EPS_ONE_SIDED) | set(EPS_DIVERSITY_EXTRA)),
            "eps_mirror": EPS_MIRROR,
            "eps_mirror_sweep": list(EPS_MIRROR_SWEEP),
            "t_max_one_sided": T_MAX_ONE_SIDED,
            "t_range_mirror": [T_MIN_MIRROR, 1 - T_MIN_MIRROR],
            "fields_one_sided": ["b", "eta"],
            "fields_mirror": ["eta"],
            "model": f"MLP {cfg['depth']} hidden layers x {cfg['hidden']}, SiLU, Fourier time embedding",
            "solver": "Heun (ODE) / stochastic Heun (SDE), geometric grid with rate*dt <= courant",
            "scale_down": (
                "paper: Oxford Flowers 128x128, U-Net, EMA 0.9999; here: 8x8 digits, MLP, "
                f"{cfg['train_steps']} Adam steps, EMA {cfg['ema']}"
            ),
        },
        "test": {
            "classifier_accuracy": test_acc,
            "classifier_confidence": test_conf,
            "nn_dist_mean": float(nn_test.mean()),
            "nn_dist_median": float(np.median(nn_test)),
            "pairwise_spread": float(mean_pairwise_distance(x_te[None])[0]),
            "near_copy_threshold_q05": near_copy_thr,
        },
        "one_sided": {},
        "notes": [],
    }
    log(f"held-out test digits: NN distance to train {nn_test.mean():.3f} (mean); classifier acc {test_acc:.3f}")

    g_data = torch.Generator().manual_seed(seed + 7)
    draw_normal = lambda n, gen: torch.randn(n, 64, generator=gen)  # noqa: E731
    for k, (name, interp) in enumerate((("linear", OneSidedLinear()), ("trig", OneSidedTrig()))):
        log(f"training {MODEL_LABELS[name]} (b, eta): {cfg['train_steps']} steps")
        res = _train(
            interp, draw_normal, xt_tr, ("b", "eta"), cfg=cfg, steps=cfg["train_steps"], seed=seed + k, log=log
        )
        fields = res.fields
        z_free = torch.randn(cfg["n_samples"], 64, generator=g_data)
        z_start = torch.randn(cfg["starts"], 64, generator=g_data)
        z_rep = z_start.repeat_interleave(cfg["per_start"], 0)
        out: dict = {"train_wall_s": round(res.wall_s, 1), "final_loss": res.history[-1] if res.history else None}
        for eps in sorted(set(EPS_ONE_SIDED) | set(EPS_DIVERSITY_EXTRA)):
            main = eps in EPS_ONE_SIDED  # the extra eps only run the starts of the diversity curve
            pieces = _one_sided_pieces(interp, eps, cfg["courant"], cfg["max_dt"])
            gen = torch.Generator().manual_seed(seed + 1000 * k + int(100 * eps))
            with torch.no_grad():
                x0 = torch.cat([z_free, z_rep]) if main else z_rep
                x = _integrate(fields, x0, eps=eps, pieces=pieces, generator=gen)
                t_end = x.new_full((x.shape[0],), T_MAX_ONE_SIDED)
                x1 = fields.x1_estimate(t_end, x).numpy()
            if not np.isfinite(x1).all():
                raise FloatingPointError(f"{name}, eps={eps}: non-finite samples")
            groups = x1[-len(z_rep) :].reshape(cfg["starts"], cfg["per_start"], 64)
            div = mean_pairwise_distance(groups)
            key = f"{name}_eps{eps:g}"
            arrays[f"{key}_groups"] = groups.astype(np.float32)
            arrays[f"{key}_diversity"] = div.astype(np.float32)
            o = out[f"eps={eps:g}"] = {
                "steps": int(sum(p[2] for p in pieces)),
                "diversity_mean": float(div.mean()),
                "diversity_se": float(div.std(ddof=1) / math.sqrt(len(div))),
            }
            if not main:
                log(f"{name} eps={eps:g}: {o['steps']} steps, diversity {o['diversity_mean']:.3f}")
                continue
            samples = x1[: cfg["n_samples"]]
            nn_s, nn_i = nearest_neighbours(samples, x_tr)
            proba = clf.predict_proba(samples)
            counts = np.bincount(proba.argmax(1), minlength=10)
            arrays[f"{key}_samples"] = samples.astype(np.float32)
            arrays[f"{key}_nn_dist"] = nn_s.astype(np.float32)
            arrays[f"{key}_nn_index"] = nn_i
            arrays[f"{key}_nn_image"] = x_tr[nn_i[:12]]
            o.update(
                {
                    "nn_dist_mean": float(nn_s.mean()),
                    "nn_ratio_to_test": float(nn_s.mean() / nn_test.mean()),
                    "near_copy_fraction": float((nn_s < near_copy_thr).mean()),
                    # the ceiling of diversity: the spread of samples from independent starts
                    "independent_spread": float(mean_pairwise_distance(samples[None])[0]),
                    "classifier_confidence": float(proba.max(1).mean()),
                    "classes_covered": int((counts >= 0.02 * len(samples)).sum()),
                    "pixel_range": [float(samples.min()), float(samples.max())],
                    "samples_with_a_pixel_beyond_3": float((np.abs(samples) > 3.0).any(1).mean()),
                }
            )
            log(
                f"{name} eps={eps:g}: {o['steps']} steps, NN {o['nn_dist_mean']:.3f} "
                f"(x{o['nn_ratio_to_test']:.2f} test), copies {o['near_copy_fraction']:.3f}, "
                f"diversity {o['diversity_mean']:.3f} (independent {o['independent_spread']:.3f}), "
                f"conf {o['classifier_confidence']:.3f}"
            )
        record["one_sided"][name] = out

    # -- mirror -----------------------------------------------------------------------------
    interp = Mirror(BrownianGamma(1.0))
    log(f"training mirror (eta): {cfg['mirror_steps']} steps")
    res = _train(interp, xt_tr, xt_tr, ("eta",), cfg=cfg, steps=cfg["mirror_steps"], seed=seed + 5, log=log)
    fields = res.fields
    n_in, runs = cfg["mirror_inputs"], cfg["mirror_runs"]
    x_in = torch.from_numpy(x_te[:n_in])
    y_in = y_te[:n_in]
    with torch.no_grad():
        ode_pieces = _mirror_pieces(interp, 0.0, cfg["courant"], cfg["max_dt"])
        ode = _integrate(fields, x_in, eps=0.0, pieces=ode_pieces, generator=None).numpy()
    x_in = x_in.numpy()
    rec_err = np.linalg.norm(ode - x_in, axis=1)
    nn_in, _ = nearest_neighbours(x_in, x_tr)
    # typical distance from an input to a random training digit (how far "far" is)
    rng = np.random.default_rng(seed)
    rand_dist = np.linalg.norm(x_in[:, None, :] - x_tr[rng.integers(0, len(x_tr), (n_in, 50))], axis=-1)
    arrays.update(
        mirror_input=x_in.astype(np.float32),
        mirror_label=y_in,
        mirror_ode=ode.astype(np.float32),
        mirror_rec_err=rec_err.astype(np.float32),
    )
    record["mirror"] = {
        "train_wall_s": round(res.wall_s, 1),
        "ode_steps": int(sum(p[2] for p in ode_pieces)),
        "ode_reconstruction_error_mean": float(rec_err.mean()),
        "ode_reconstruction_error_max": float(rec_err.max()),
        "ode_error_over_input_nn_dist": float(rec_err.mean() / nn_in.mean()),
        "input_nn_dist_to_train_mean": float(nn_in.mean()),
        "input_to_random_train_digit_mean": float(rand_dist.mean()),
        "sde": {},
    }
    for j, eps in enumerate(EPS_MIRROR_SWEEP):
        gen = torch.Generator().manual_seed(seed + 999 + j)
        pieces = _mirror_pieces(interp, eps, cfg["courant"], cfg["max_dt"])
        with torch.no_grad():
            xs = _integrate(fields, torch.from_numpy(x_in).repeat(runs, 1), eps=eps, pieces=pieces, generator=gen)
            t_end = xs.new_full((xs.shape[0],), 1.0 - T_MIN_MIRROR)
            # final denoising step, as for the one-sided models: E[x1 | x_t] = x_t - gamma eta
            sde = (xs - interp.gamma(t_end)[:, None] * fields.eta(t_end, xs)).numpy()
        if not np.isfinite(sde).all():
            raise FloatingPointError(f"mirror, eps={eps}: non-finite samples")
        sde = sde.reshape(runs, n_in, 64).transpose(1, 0, 2)  # (input, run, 64)
        flat = sde.reshape(-1, 64)
        move = np.linalg.norm(sde - x_in[:, None, :], axis=-1)  # (input, run)
        nn_sde, nn_sde_i = nearest_neighbours(flat, x_tr)
        pred_sde = clf.predict(flat).reshape(n_in, runs)
        spread = mean_pairwise_distance(sde) if runs >= 2 else np.zeros(n_in)
        arrays[f"mirror_sde_eps{eps:g}"] = sde.astype(np.float32)
        arrays[f"mirror_move_eps{eps:g}"] = move.astype(np.float32)
        if eps == EPS_MIRROR:
            arrays["mirror_sde_nn_image"] = x_tr[nn_sde_i.reshape(n_in, runs)[:, 0]]
        o = record["mirror"]["sde"][f"eps={eps:g}"] = {
            "steps": int(sum(p[2] for p in pieces)),
            "distance_to_input_mean": float(move.mean()),
            "nn_dist_to_train_mean": float(nn_sde.mean()),
            "spread_between_runs_mean": float(spread.mean()),
            "same_class_fraction": float((pred_sde == y_in[:, None]).mean()),
            "classifier_confidence": float(clf.predict_proba(flat).max(1).mean()),
            "pixel_range": [float(flat.min()), float(flat.max())],
            "outputs_with_a_pixel_beyond_3": float((np.abs(flat) > 3.0).any(1).mean()),
        }
        log(
            f"mirror SDE eps={eps:g}: {o['steps']} steps, moves {o['distance_to_input_mean']:.3f} "
            f"(random digit {rand_dist.mean():.3f}), same class {o['same_class_fraction']:.2f}, "
            f"conf {o['classifier_confidence']:.2f}, NN {o['nn_dist_to_train_mean']:.3f}"
        )
    m = record["mirror"]
    log(
        f"mirror: ODE error {m['ode_reconstruction_error_mean']:.4f} "
        f"(input NN dist {m['input_nn_dist_to_train_mean']:.3f})"
    )
    record["findings"] = _findings(record)
    return arrays, record


def _mirror_check(m: dict, o: dict, test_nn: float) -> tuple[bool, bool]:
    """(new, nearby) for the mirror SDE outputs ``o`` (see ``record['criteria']``)."""
    d = o["distance_to_input_mean"]
    new = d > 5 * m["ode_reconstruction_error_mean"] and d > 0.25 * test_nn
    near = d < m["input_to_random_train_digit_mean"] and o["same_class_fraction"] >= 0.5
    return bool(new), bool(near)


def _diversity_grows(points: list[dict], z: float = 2.0) -> bool:
    """Diversity grows with eps: it rises from the first eps to the last by more than ``z``
    standard errors, and no step down between neighbouring eps exceeds ``z`` standard errors
    (flat within noise is allowed: once the runs from one start are as spread as independent
    samples it cannot grow further)."""
    d = [p["diversity_mean"] for p in points]
    se = [p["diversity_se"] for p in points]
    rises = d[-1] - d[0] > z * math.hypot(se[0], se[-1])
    no_drop = all(b - a > -z * math.hypot(sa, sb) for a, b, sa, sb in zip(d, d[1:], se, se[1:]))
    return bool(rises and no_drop)


def _findings(record) -> dict:
    """The paper's claims, with the criteria stated in ``record['criteria']``."""
    notes = record["notes"]
    os_ = record["one_sided"]
    test_nn = record["test"]["nn_dist_mean"]
    div_ok, mem_ok = True, True
    for name, out in os_.items():
        inc = _diversity_grows([out[f"eps={e:g}"] for e in EPS_ONE_SIDED])
        div_ok &= inc
        divs = [out[f"eps={e:g}"]["diversity_mean"] for e in EPS_ONE_SIDED]
        out["diversity_strictly_increasing_means"] = all(b > a for a, b in zip(divs, divs[1:]))
        sat = (
            out[f"eps={EPS_ONE_SIDED[1]:g}"]["diversity_mean"] / out[f"eps={EPS_ONE_SIDED[1]:g}"]["independent_spread"]
        )
        out["diversity_over_independent_spread_at_first_sde_eps"] = sat
        if sat > 0.9:
            notes.append(
                f"{name}: at eps={EPS_ONE_SIDED[1]:g} the runs from one start already spread {sat:.2f} x as much as "
                "samples from independent starts: beyond it diversity is saturated and the curve is flat within noise"
            )
        if not inc:
            curve = {k: round(v["diversity_mean"], 3) for k, v in out.items() if k.startswith("eps=")}
            ceil = {f"eps={e:g}": round(out[f"eps={e:g}"]["independent_spread"], 3) for e in EPS_ONE_SIDED}
            notes.append(
                f"{name}: diversity does not grow over eps {list(EPS_ONE_SIDED)} (criteria): {curve}; "
                f"the spread of samples from independent starts is {ceil}"
            )
        for e in EPS_ONE_SIDED:
            o = out[f"eps={e:g}"]
            ok = o["nn_ratio_to_test"] >= 0.8 and o["near_copy_fraction"] <= 0.15
            mem_ok &= ok
            if not ok:
                notes.append(
                    f"{name} eps={e:g}: samples close to training digits: NN ratio {o['nn_ratio_to_test']:.2f}, "
                    f"near-copy fraction {o['near_copy_fraction']:.2f}"
                )
    m = record["mirror"]
    ode_ok = m["ode_error_over_input_nn_dist"] < 0.1
    if not ode_ok:
        notes.append(f"mirror ODE error is {m['ode_error_over_input_nn_dist']:.2f} of the input's NN distance")
    checks = {e: _mirror_check(m, o, test_nn) for e, o in m["sde"].items()}
    new, near = checks[f"eps={EPS_MIRROR:g}"]
    o = m["sde"][f"eps={EPS_MIRROR:g}"]
    if not (new and near):
        held = [e for e, (a, b) in checks.items() if a and b]
        notes.append(
            f"mirror SDE at eps={EPS_MIRROR:g}: moves {o['distance_to_input_mean']:.3f} from the input (a random "
            f"training digit is {m['input_to_random_train_digit_mean']:.3f} away), same class "
            f"{o['same_class_fraction']:.2f}: new={new}, nearby={near}; the criterion holds at {held or 'no eps'} "
            "of the sweep"
        )
    record["criteria"] = {
        "diversity grows with eps": "mean pairwise distance of SDE runs from one start: eps = 4 above eps = 0 by "
        "more than 2 standard errors (over starts), and no drop between neighbouring eps in 0, 1, 2, 4 larger than 2 "
        "standard errors; both models (the strict ordering of the means is recorded per model)",
        "samples not memorised": "for every model and eps: mean NN distance to train >= 0.8 x the test digits', "
        "and at most 15% of samples closer than the 5% quantile of the test digits' NN distances",
        "mirror ODE returns the input": "mean |ODE(x) - x| < 0.1 x mean NN distance of the inputs to the training set",
        "mirror SDE returns a nearby new sample": f"at eps = {EPS_MIRROR:g}: mean |SDE(x) - x| > 5 x the ODE error and "
        "> 0.25 x test NN distance (new), "
        "< the mean distance to a random training digit and the classifier keeps the input's label >= 50% (nearby)",
    }
    return {
        "diversity grows with eps": bool(div_ok),
        "samples not memorised": bool(mem_ok),
        "mirror ODE returns the input": bool(ode_ok),
        "mirror SDE returns a nearby new sample": bool(new and near),
    }


# ----------------------------------------------------------------------------------------------
# plot


def _show(ax, img, title=None):
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("gray_r").copy()
    cmap.set_bad("white")
    ax.imshow(np.ma.masked_invalid(img), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)


def plot(arrays, record, out_dir) -> list[Path]:
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    stem = NAME + ("_quick" if record.get("quick") else "")
    paths = []
    models = list(record["one_sided"])
    eps_list = [float(e) for e in record["config"]["eps_one_sided"]]

    # 1. sample grids per model and eps
    fig, axes = plt.subplots(
        len(models), len(eps_list) + 1, figsize=(2.3 * (len(eps_list) + 1), 3.0 * len(models) + 0.6)
    )
    axes = np.atleast_2d(axes)
    for i, name in enumerate(models):
        _show(axes[i, 0], mosaic(arrays["train_examples"][:25], 5), "training digits")
        axes[i, 0].set_ylabel(MODEL_LABELS.get(name, name), fontsize=9)
        for j, e in enumerate(eps_list):
            o = record["one_sided"][name][f"eps={e:g}"]
            _show(
                axes[i, j + 1],
                mosaic(arrays[f"{name}_eps{e:g}_samples"][:25], 5),
                f"{'ODE' if e == 0 else 'SDE'} eps={e:g}\nconf {o['classifier_confidence']:.2f}",
            )
    for i, name in enumerate(models):
        axes[i, 0].set_yticks([])
        axes[i, 0].set_ylabel(MODEL_LABELS.get(name, name), fontsize=10)
    fig.suptitle(
        "One-sided interpolants (learn b, eta): samples from independent starts z\n"
        "(integrate to t = 0.97, one denoising step; conf = mean top-class probability of a logistic classifier)",
        fontsize=10,
    )
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_samples.png")
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)

    # 2. diversity from the same start: mosaics and the curve
    div_list = [float(e) for e in record["config"].get("eps_diversity", eps_list)]
    rows = min(4, arrays[f"{models[0]}_eps{eps_list[0]:g}_groups"].shape[0])
    per = min(arrays[f"{models[0]}_eps{eps_list[0]:g}_groups"].shape[1], 6)
    fig = plt.figure(figsize=(0.38 * per * len(div_list) + 5.5, 2.3 * len(models) + 0.8))
    gs = fig.add_gridspec(len(models), len(div_list) + 1, width_ratios=[1] * len(div_list) + [2.6])
    for i, name in enumerate(models):
        for j, e in enumerate(div_list):
            ax = fig.add_subplot(gs[i, j])
            g = arrays[f"{name}_eps{e:g}_groups"][:rows, :per]
            _show(ax, mosaic(g.reshape(-1, 64), per), f"{name}, eps={e:g}")
    ax = fig.add_subplot(gs[:, -1])
    for name in models:
        o = record["one_sided"][name]
        ax.errorbar(
            div_list,
            [o[f"eps={e:g}"]["diversity_mean"] for e in div_list],
            yerr=[o[f"eps={e:g}"]["diversity_se"] for e in div_list],
            marker="o",
            color=MODEL_COLORS.get(name, "k"),
            label=f"{MODEL_LABELS.get(name, name)}: runs from one z",
        )
        ax.plot(
            eps_list,
            [o[f"eps={e:g}"]["independent_spread"] for e in eps_list],
            ls="--",
            marker="x",
            color=MODEL_COLORS.get(name, "k"),
            alpha=0.6,
            label=f"{MODEL_LABELS.get(name, name)}: independent z",
        )
    ax.axhline(record["test"]["pairwise_spread"], color="k", ls="-.", lw=0.8, label="test digits: pairwise")
    ax.axhline(record["test"]["nn_dist_mean"], color=COLORS["floor"], ls=":", label="test digits: to nearest train")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlim(-0.02, max(div_list) * 1.3)
    ax.set_xlabel("eps (diffusion sqrt(2 eps) dW; linear below 0.1)")
    ax.set_ylabel("mean pairwise L2 distance (pixels in [-1, 1])")
    ax.set_title("diversity: spread of samples", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.suptitle(f"Each row of a mosaic: one latent start z, {per} independent SDE runs (ODE: identical)", fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_diversity.png")
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)

    # 3. nearest training neighbours and NN-distance distributions
    fig = plt.figure(figsize=(13, 2.5 * len(models) + 0.6))
    gs = fig.add_gridspec(len(models), 3, width_ratios=[1.4, 1.4, 1.7])
    e_show = eps_list[-1] if len(eps_list) > 1 else eps_list[0]
    hi = max(float(arrays[k].max()) for k in arrays if k.endswith("_nn_dist")) * 1.02
    bins = np.linspace(0, hi, 45)
    for i, name in enumerate(models):
        for j, e in enumerate((0.0, e_show)):
            ax = fig.add_subplot(gs[i, j])
            s = arrays[f"{name}_eps{e:g}_samples"][:8]
            nn = arrays[f"{name}_eps{e:g}_nn_image"][:8]
            _show(ax, mosaic(np.concatenate([s, nn]), 8), f"{MODEL_LABELS.get(name, name)}, eps={e:g}")
            ax.set_yticks([3.5, 12.5])
            ax.set_yticklabels(["sample", "nearest\ntrain digit"], fontsize=8)
            ax.tick_params(left=False)
        ax = fig.add_subplot(gs[i, 2])
        ax.hist(
            arrays["test_nn_dist"], bins=bins, density=True, histtype="step", color="k", lw=1.8, label="held-out test"
        )
        for e in eps_list:
            ax.hist(
                arrays[f"{name}_eps{e:g}_nn_dist"],
                bins=bins,
                density=True,
                histtype="step",
                color=_eps_col(e),
                label=f"samples eps={e:g}",
            )
        ax.set_xlabel("L2 distance to nearest training digit (pixels in [-1, 1])")
        ax.set_ylabel("density")
        ax.set_title(MODEL_LABELS.get(name, name), fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(
        "Memorisation check: distance to the nearest training digit, samples against held-out test digits", fontsize=10
    )
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_neighbours.png")
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)

    # 4. mirror
    m = record["mirror"]
    sweep = [float(e) for e in record["config"]["eps_mirror_sweep"]]
    e_main = float(record["config"]["eps_mirror"])
    n_show = min(10, arrays["mirror_input"].shape[0])
    rows = [arrays["mirror_input"][:n_show], arrays["mirror_ode"][:n_show]]
    labels = ["input (held out)", "ODE output"]
    for e in sweep:
        sde = arrays[f"mirror_sde_eps{e:g}"][:n_show]
        runs = range(sde.shape[1]) if e == e_main else range(1)
        rows += [sde[:, r] for r in runs]
        labels += [f"SDE eps={e:g}" + (f", run {r + 1}" if e == e_main else "") for r in runs]
    rows.append(arrays["mirror_sde_nn_image"][:n_show])
    labels.append(f"NN of eps={e_main:g} run 1")
    fig = plt.figure(figsize=(1.0 * n_show + 6.5, 0.8 * len(rows) + 1.2))
    gs = fig.add_gridspec(2, 2, width_ratios=[n_show * 0.9, 4.2])
    ax = fig.add_subplot(gs[:, 0])
    _show(ax, mosaic(np.concatenate(rows), n_show))
    ax.set_yticks([3.5 + 9 * r for r in range(len(rows))])
    ax.set_yticklabels(labels, fontsize=8)
    ax.tick_params(left=False)
    ax.set_title(
        f"Mirror interpolant x_t = x1 + sqrt(t(1-t)) z (learn eta; b = gamma_dot eta)\n"
        f"ODE error {m['ode_reconstruction_error_mean']:.3f}; input to its nearest training digit "
        f"{m['input_nn_dist_to_train_mean']:.2f}",
        fontsize=9,
    )
    d = [m["sde"][f"eps={e:g}"]["distance_to_input_mean"] for e in sweep]
    spread = [m["sde"][f"eps={e:g}"]["spread_between_runs_mean"] for e in sweep]
    ax = fig.add_subplot(gs[0, 1])
    ax.plot(sweep, d, "o-", color=COLORS["sde"], label="SDE output to input")
    ax.plot(sweep, spread, "s--", color=COLORS["sde"], alpha=0.6, label="between SDE runs")
    ax.axhline(m["ode_reconstruction_error_mean"], color=COLORS["ode"], label="ODE output to input")
    ax.axhline(m["input_nn_dist_to_train_mean"], color=COLORS["floor"], ls=":", label="input to nearest train digit")
    ax.axhline(m["input_to_random_train_digit_mean"], color="k", ls="--", lw=0.8, label="input to random train digit")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.15 * max(max(d), max(spread), m["input_to_random_train_digit_mean"]))
    ax.set_xlabel("eps")
    ax.set_ylabel("mean L2 distance\n(pixels in [-1, 1])")
    ax.set_title("how far the SDE moves", fontsize=9)
    ax.legend(fontsize=6.5, loc="lower right")
    ax = fig.add_subplot(gs[1, 1])
    ax.plot(sweep, [m["sde"][f"eps={e:g}"]["same_class_fraction"] for e in sweep], "o-", color=COLORS["sde"])
    ax.set_xscale("log")
    ax.axhline(0.1, color=COLORS["floor"], ls=":", label="chance (10 classes)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=6.5)
    ax.set_xlabel("eps")
    ax.set_ylabel("SDE output keeps the\ninput's class (fraction)")
    fig.tight_layout()
    paths.append(out_dir / f"{stem}_mirror.png")
    fig.savefig(paths[-1], dpi=130)
    plt.close(fig)
    return paths


if __name__ == "__main__":
    main_for(sys.modules[__name__])
