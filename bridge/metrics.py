r"""Distances between sample sets (docs/math.md §6): energy distance, Sinkhorn divergence, W2, BW2-UVP,
and the coupling metrics of the SB checks (docs/math.md §5.9): cBW2-UVP, cross-covariance error,
barycentric-map error, kinetic energy.

The distances take ``(n, d)`` and ``(m, d)`` tensors (or NumPy arrays) and return a Python
float; all functions compute in float64 and never track gradients.

* :func:`energy_distance`: :math:`2E|X-Y| - E|X-X'| - E|Y-Y'|` (no OT, O(nm) time, never ``n x m`` memory).
* :func:`sinkhorn_divergence`: geomloss's debiased :math:`S_\varepsilon`, cost :math:`|x-y|^2/2`.
* :func:`w2`: exact 2-Wasserstein distance of the empirical measures (POT's network simplex).
* :func:`bw2_uvp`: Bures-Wasserstein unexplained variance percentage of fitted Gaussians,
  with the closed form :func:`gaussian_w2_squared`.
* :func:`cbw2_uvp`: conditional BW2-UVP of K model samples per test input against the true
  conditional moments (the SB benchmark metric).
* :func:`cross_covariance`, :func:`cross_covariance_error`: a coupling's cross-covariance and its
  relative error against a closed form or a POT plan.
* :func:`barycentric_map_error`: L2-UVP of a coupling's conditional means against a reference map.
* :func:`kinetic_energy`, :func:`compare_kinetic_energy`: :math:`\int E|u|^2 dt` along paths, and
  against a reference with the implied path-space KL.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 2, generator=g, dtype=torch.float64)
    >>> round(w2(x, x + torch.tensor([3.0, 4.0], dtype=torch.float64)), 6)
    5.0
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "energy_distance",
    "sinkhorn_divergence",
    "w2",
    "bw2_uvp",
    "gaussian_w2_squared",
    "cbw2_uvp",
    "cross_covariance",
    "cross_covariance_error",
    "barycentric_map_error",
    "kinetic_energy",
    "KineticEnergyComparison",
    "compare_kinetic_energy",
]


def _as_samples(x, name: str, *, min_rows: int = 1) -> Tensor:
    """Validate a sample set: a 2-D, finite tensor/array with ``min_rows`` rows; return it in float64."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray of shape (n, d), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name}: expected shape (n, d), got {tuple(x.shape)}")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(
            f"{name}: expected at least {min_rows} sample(s) of dimension >= 1, got shape {tuple(x.shape)}"
        )
    if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name}: expected real floating values, got dtype {x.dtype}")
    x = x.detach().to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(f"{name}: NaN or Inf in {bad} of {x.shape[0]} rows")
    return x


def _pair(x, y, names=("x", "y"), *, min_rows: int = 1) -> tuple[Tensor, Tensor]:
    x, y = _as_samples(x, names[0], min_rows=min_rows), _as_samples(y, names[1], min_rows=min_rows)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{names[0]} has dimension {x.shape[1]} but {names[1]} has dimension {y.shape[1]}")
    return x, y.to(x.device)


def energy_distance(x: Tensor, y: Tensor, *, unbiased: bool = False, backend: str = "auto") -> float:
    r"""Squared energy distance between two sample sets.

    .. math::
        \mathcal E^2(P, Q) = 2\,E|X - Y| - E|X - X'| - E|Y - Y'|, \qquad X, X' \sim P,\ Y, Y' \sim Q,

    with Euclidean norms; it is 0 iff ``P = Q`` and equals the MMD^2 of the distance kernel.

    * ``unbiased=False`` (default, V-statistic): the energy distance of the two *empirical*
      measures, all pairs averaged (including ``i = j``). Always ``>= 0``. In 1-D it equals
      ``scipy.stats.energy_distance(x, y) ** 2`` (scipy returns the square root).
    * ``unbiased=True`` (U-statistic): the within-set means skip ``i = j`` (divide by
      ``n(n-1)``), an unbiased estimate of :math:`\mathcal E^2(P, Q)`; it can be slightly negative.

    The three sums of pairwise distances never hold an ``n x m`` array
    (:func:`bridge.energy.distance_sum`): up to :data:`bridge.energy.EXACT_PAIRS` pairs exactly, in
    float64 row blocks of ~4M distances; beyond, in float32 tiles of matrix products (each sum's
    choice by its own size, ``backend="auto"``).

    Args:
        x: ``(n, d)`` samples of P.
        y: ``(m, d)`` samples of Q.
        unbiased: use the U-statistic (needs ``n, m >= 2``).
        backend: ``"auto"``, ``"exact"`` or ``"tiled"`` (:func:`bridge.energy.energy_backend`).

    Returns:
        The squared energy distance (not its square root), a float.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0]])
        >>> energy_distance(x, x + 1.0)  # 2*(1/4)(1+0+2+1) - 1/2 - 1/2
        1.0
    """
    from .energy import distance_sum, energy_backend

    energy_backend(1, 1, backend=backend)  # checks the name before any work
    x, y = _pair(x, y, min_rows=2 if unbiased else 1)
    n, m = x.shape[0], y.shape[0]
    xy = distance_sum(x, y, backend=backend) / (n * m)
    xx_pairs, yy_pairs = (n * (n - 1), m * (m - 1)) if unbiased else (n * n, m * m)
    xx = distance_sum(x, x, backend=backend) / xx_pairs
    yy = distance_sum(y, y, backend=backend) / yy_pairs
    return float(2 * xy - xx - yy)


def sinkhorn_divergence(x: Tensor, y: Tensor, *, blur: float = 0.05, scaling: float = 0.9) -> float:
    r"""Debiased Sinkhorn divergence (geomloss ``SamplesLoss("sinkhorn", p=2, debias=True)``).

    .. math::
        S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
            - \tfrac12 \mathrm{OT}_\varepsilon(\alpha, \alpha) - \tfrac12 \mathrm{OT}_\varepsilon(\beta, \beta),
        \qquad
        \mathrm{OT}_\varepsilon(\alpha, \beta) = \min_{\pi \in \Pi(\alpha, \beta)}
            \int \tfrac12 |x - y|^2 \, d\pi + \varepsilon\, \mathrm{KL}(\pi \,|\, \alpha \otimes \beta),

    with :math:`\varepsilon = \text{blur}^2` and uniform weights on the samples. Note geomloss's
    cost convention: **half** the squared distance, so as ``blur -> 0``,
    :math:`S_\varepsilon \to W_2^2 / 2` (not :math:`W_2^2`). :math:`S_\varepsilon \ge 0`, with
    equality iff the measures agree.

    geomloss solves the dual by epsilon-scaling: the temperature decreases from the data diameter
    squared to ``blur^2`` by factors ``scaling^2``, with one Sinkhorn step each. ``scaling``
    closer to 1 is more accurate and slower: against a fully converged solver we measured
    relative errors up to ~1e-3 at 0.9, ~1e-4 at 0.95 and ~1e-6 at 0.99 (unit-scale data, blur
    0.5-1). Time is O(nm) per step and the number of steps grows like
    ``log(diameter / blur) / log(1 / scaling)``; memory is O(nm) without KeOps.
    geomloss is imported here, lazily.

    Args:
        x: ``(n, d)`` samples.
        y: ``(m, d)`` samples.
        blur: length scale :math:`\sqrt\varepsilon` (same units as ``x``), ``> 0``.
        scaling: epsilon-scaling ratio in ``(0, 1)``.

    Returns:
        :math:`S_\varepsilon(x, y)`, a float (units of squared length).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(100, 2, generator=g, dtype=torch.float64)
        >>> abs(sinkhorn_divergence(x, x)) < 1e-8
        True
    """
    blur, scaling = float(blur), float(scaling)
    if not (math.isfinite(blur) and blur > 0):
        raise ValueError(f"blur: expected a finite number > 0, got {blur!r}")
    if not 0 < scaling < 1:
        raise ValueError(f"scaling: expected a number in (0, 1), got {scaling!r}")
    x, y = _pair(x, y)
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, debias=True)
    with torch.no_grad():
        return float(loss(x, y))


def _subsample(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    idx = torch.randperm(x.shape[0], generator=generator, device=device)[:k]
    return x[idx.to(x.device)]


def w2(x: Tensor, y: Tensor, *, max_samples: int | None = 5000, generator: torch.Generator | None = None) -> float:
    r"""Exact 2-Wasserstein distance between the empirical measures of two sample sets.

    .. math::
        W_2(\hat\mu, \hat\nu) = \Big(\min_{P \in \Pi(a, b)} \sum_{ij} P_{ij} |x_i - y_j|^2\Big)^{1/2},
        \qquad a = \mathbf 1_n / n,\ b = \mathbf 1_m / m,

    solved by POT's network simplex (``ot.emd2`` on ``ot.dist``, the squared Euclidean cost),
    with the square root taken at the end (docs/math.md §6).

    The solver is roughly cubic in n; a set with more than ``max_samples`` rows is therefore
    replaced by a random subset of ``max_samples`` rows (without replacement, drawn with
    ``generator``) and a ``UserWarning`` says so. Subsampling adds a positive bias of the
    order of the empirical-measure rate (~ ``sqrt(log n / n)`` in 2-D).

    Args:
        x: ``(n, d)`` samples.
        y: ``(m, d)`` samples.
        max_samples: largest set solved exactly; ``None`` never subsamples.
        generator: source of randomness for subsampling.

    Returns:
        :math:`W_2`, a float (units of length).

    Raises:
        ValueError: invalid input, or the solver stopped before optimality.

    Example:
        >>> import torch
        >>> w2(torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0], [2.0]]))
        2.0
    """
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise ValueError(f"max_samples: expected a positive int or None, got {max_samples!r}")
    x, y = _pair(x, y)
    if max_samples is not None and max(x.shape[0], y.shape[0]) > max_samples:
        warnings.warn(
            f"w2: subsampling {x.shape[0]} x {y.shape[0]} samples to at most {max_samples} each "
            "(set max_samples=None to solve the full problem)",
            UserWarning,
            stacklevel=2,
        )
        x = _subsample(x, max_samples, generator) if x.shape[0] > max_samples else x
        y = _subsample(y, max_samples, generator) if y.shape[0] > max_samples else y
    import ot

    xn, yn = x.cpu().numpy(), y.cpu().numpy()
    a = np.full(xn.shape[0], 1.0 / xn.shape[0])
    b = np.full(yn.shape[0], 1.0 / yn.shape[0])
    cost = ot.dist(xn, yn)  # squared Euclidean
    num_iter = max(100_000, 20 * xn.shape[0] * yn.shape[0])  # POT's default 1e5 is too few beyond n ~ 1000
    with warnings.catch_warnings():  # a non-optimal exit is reported below as an error instead
        warnings.simplefilter("ignore", UserWarning)
        value, log = ot.emd2(a, b, cost, numItermax=num_iter, log=True)
    if log.get("warning") is not None:
        raise ValueError(f"w2: the exact OT solver did not reach optimality ({log['warning']})")
    return math.sqrt(max(float(value), 0.0))


def _psd_sqrt(s: Tensor) -> Tensor:
    """Symmetric PSD square root by eigendecomposition (negative rounding eigenvalues -> 0)."""
    evals, evecs = torch.linalg.eigh((s + s.mT) / 2)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.mT


def _check_gaussian(m, s, name_m: str, name_s: str) -> tuple[Tensor, Tensor]:
    m = torch.as_tensor(m, dtype=torch.float64)
    s = torch.as_tensor(s, dtype=torch.float64).to(m.device)
    if m.dim() != 1:
        raise ValueError(f"{name_m}: expected a mean vector of shape (d,), got {tuple(m.shape)}")
    d = m.shape[0]
    if s.shape != (d, d):
        raise ValueError(f"{name_s}: expected a covariance of shape ({d}, {d}), got {tuple(s.shape)}")
    if not (bool(torch.isfinite(m).all()) and bool(torch.isfinite(s).all())):
        raise ValueError(f"{name_m}/{name_s}: NaN or Inf in the Gaussian parameters")
    return m, s


def gaussian_w2_squared(m1: Tensor, S1: Tensor, m2: Tensor, S2: Tensor) -> float:
    r"""Squared 2-Wasserstein distance between two Gaussians (Bures-Wasserstein formula).

    .. math::
        W_2^2\big(N(m_1, S_1), N(m_2, S_2)\big) = |m_1 - m_2|^2 + B^2(S_1, S_2),\qquad
        B^2(S_1, S_2) = \operatorname{tr} S_1 + \operatorname{tr} S_2
            - 2 \operatorname{tr}\big(S_1^{1/2} S_2 S_1^{1/2}\big)^{1/2}.

    Both square roots are of symmetric PSD matrices, taken by eigendecomposition in float64
    (eigenvalues below 0 from rounding are set to 0), so singular covariances are fine.

    Args:
        m1, m2: means, shape ``(d,)``.
        S1, S2: covariances, shape ``(d, d)``, symmetric PSD.

    Returns:
        :math:`W_2^2`, a float ``>= 0``.

    Example:
        >>> import torch
        >>> gaussian_w2_squared(torch.zeros(1), torch.eye(1), torch.ones(1), 4 * torch.eye(1))  # 1 + (2-1)^2
        2.0
    """
    m1, S1 = _check_gaussian(m1, S1, "m1", "S1")
    m2, S2 = _check_gaussian(m2, S2, "m2", "S2")
    if m1.shape != m2.shape:
        raise ValueError(f"m1 has dimension {m1.shape[0]} but m2 has dimension {m2.shape[0]}")
    m2, S2 = m2.to(m1.device), S2.to(m1.device)
    root1 = _psd_sqrt(S1)
    inner = root1 @ ((S2 + S2.mT) / 2) @ root1
    cross = torch.linalg.eigvalsh((inner + inner.mT) / 2).clamp_min(0).sqrt().sum()
    bures = (torch.trace(S1) + torch.trace(S2) - 2 * cross).clamp_min(0)
    return float(((m1 - m2) ** 2).sum() + bures)


def bw2_uvp(x_model: Tensor, x_ref: Tensor) -> float:
    r"""Bures-Wasserstein unexplained variance percentage (BW2-UVP, docs/math.md §6).

    .. math::
        \mathrm{BW_2\text{-}UVP} = 100\, \frac{|m_p - m_q|^2 + B^2(S_p, S_q)}{\operatorname{tr} S_q},

    where :math:`(m_p, S_p)` and :math:`(m_q, S_q)` are the sample means and covariances
    (``torch.cov``, divisor ``n - 1``) of ``x_model`` and ``x_ref``, and ``B^2`` is the Bures
    term of :func:`gaussian_w2_squared`. It is the W2^2 between the fitted Gaussians as a
    percentage of the reference's total variance (0 = moments match; 100 = as far off as
    collapsing onto the reference mean).

    Args:
        x_model: ``(n, d)`` model samples, ``n >= 2``.
        x_ref: ``(m, d)`` reference samples, ``m >= 2``, with non-zero total variance.

    Returns:
        BW2-UVP in percent, a float.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(500, 3, generator=g, dtype=torch.float64)
        >>> bw2_uvp(x, x) < 1e-8
        True
    """
    x, y = _pair(x_model, x_ref, ("x_model", "x_ref"), min_rows=2)
    mp, Sp = x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])
    mq, Sq = y.mean(0), torch.cov(y.T).reshape(y.shape[1], y.shape[1])
    total_var = float(torch.trace(Sq))
    if total_var <= 0:
        raise ValueError("x_ref: all samples are identical (zero total variance); BW2-UVP is undefined")
    return 100.0 * gaussian_w2_squared(mp, Sp, mq, Sq) / total_var


# --------------------------------------------------------------------------------------------
# Coupling metrics (docs/math.md §5.9 checks, §6): cBW2-UVP, cross-covariance, barycentric map, kinetic energy
# --------------------------------------------------------------------------------------------


def _as_tensor(x, name: str, ndim: int, shape_text: str) -> Tensor:
    """A finite float64 tensor of rank ``ndim`` from a tensor or array (detached)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor or numpy.ndarray of shape {shape_text}, got {type(x).__name__}"
        )
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"{name}: expected real floating values, got dtype {x.dtype}")
    if x.dim() != ndim:
        raise ValueError(f"{name}: expected shape {shape_text}, got {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or Inf")
    return x


def _positive_float(v, name: str) -> float:
    if isinstance(v, Tensor) and v.dim() == 0:
        v = float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a number > 0, got {type(v).__name__}")
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
    return v


def _batched_psd_sqrt(s: Tensor) -> Tensor:
    """Symmetric PSD square roots of a batch ``(..., d, d)`` (negative rounding eigenvalues -> 0)."""
    evals, evecs = torch.linalg.eigh((s + s.mT) / 2)
    return (evecs * evals.clamp_min(0).sqrt().unsqueeze(-2)) @ evecs.mT


def _batched_bures_squared(S1: Tensor, S2: Tensor) -> Tensor:
    """``B^2(S1, S2)`` for batches of covariances ``(N, d, d)``, shape ``(N,)``."""
    root = _batched_psd_sqrt(S1)
    inner = root @ ((S2 + S2.mT) / 2) @ root
    cross = torch.linalg.eigvalsh((inner + inner.mT) / 2).clamp_min(0).sqrt().sum(-1)
    trace = lambda s: torch.diagonal(s, dim1=-2, dim2=-1).sum(-1)
    return (trace(S1) + trace(S2) - 2 * cross).clamp_min(0)


def cbw2_uvp(model_samples, true_means, true_covs, target_cov_trace) -> float:
    r"""Conditional Bures-Wasserstein UVP (docs/math.md §6), the standard SB benchmark metric.

    .. math::
        \mathrm{cBW_2\text{-}UVP} = \frac{100}{\operatorname{tr}\mathrm{Cov}(\rho_1)}\,
            \frac1N \sum_{i=1}^N \Big(|\hat m_i - m_i|^2 + B^2(\hat S_i, S_i)\Big),

    where :math:`(\hat m_i, \hat S_i)` are the sample mean and covariance (divisor ``K - 1``) of
    the ``K`` model samples of :math:`x_1 \mid x_0 = x_i`, :math:`(m_i, S_i)` the true conditional
    moments and ``B`` the Bures term of :func:`gaussian_w2_squared`. It equals Gushchin et al.'s
    (2023) definition (their factors 1/2 cancel). Exact samples do not give 0: the mean term
    contributes :math:`\operatorname{tr} S_i / K` and the Bures term about
    :math:`(d+1)\operatorname{tr} S_i / (4K)` (isotropic :math:`S_i`, large ``K``), a noise floor of
    :math:`\approx 100\,(1 + (d+1)/4)\,\overline{\operatorname{tr} S_i} / (K\operatorname{tr}\mathrm{Cov}\rho_1)`
    percent; use ``K`` in the hundreds and quote the floor with the result.

    Args:
        model_samples: ``(N, K, d)``, ``K >= 2`` samples per test input.
        true_means: ``(N, d)``.
        true_covs: ``(N, d, d)``, symmetric PSD.
        target_cov_trace: :math:`\operatorname{tr}\mathrm{Cov}(\rho_1) > 0`.

    Returns:
        cBW2-UVP in percent, a float.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> y = torch.randn(10, 400, 2, generator=g, dtype=torch.float64)
        >>> round(cbw2_uvp(y, torch.zeros(10, 2), torch.eye(2).expand(10, 2, 2), 2.0), 1)  # floor ~ 0.44
        0.6
    """
    y = _as_tensor(model_samples, "model_samples", 3, "(N, K, d)")
    N, K, d = y.shape
    if K < 2 or N < 1 or d < 1:
        raise ValueError(f"model_samples: expected N >= 1 inputs with K >= 2 samples each, got shape {tuple(y.shape)}")
    m = _as_tensor(true_means, "true_means", 2, f"({N}, {d})")
    S = _as_tensor(true_covs, "true_covs", 3, f"({N}, {d}, {d})")
    if m.shape != (N, d):
        raise ValueError(f"true_means: expected shape ({N}, {d}) to match model_samples, got {tuple(m.shape)}")
    if S.shape != (N, d, d):
        raise ValueError(f"true_covs: expected shape ({N}, {d}, {d}) to match model_samples, got {tuple(S.shape)}")
    total = _positive_float(target_cov_trace, "target_cov_trace")
    m, S = m.to(y.device), S.to(y.device)
    m_hat = y.mean(1)
    dy = y - m_hat.unsqueeze(1)
    S_hat = dy.mT @ dy / (K - 1)
    per_point = ((m_hat - m) ** 2).sum(-1) + _batched_bures_squared(S_hat, S)
    return 100.0 * float(per_point.mean()) / total


def _pairs(x0, x1) -> tuple[Tensor, Tensor]:
    """Flatten a coupling given as ``x0 (n, d)`` with ``x1 (n, d)`` or ``(n, K, d)`` into pairs."""
    a = _as_tensor(x0, "x0", 2, "(n, d)")
    if isinstance(x1, (Tensor, np.ndarray)) and x1.ndim == 3:
        b = _as_tensor(x1, "x1", 3, "(n, K, d)")
        if b.shape[0] != a.shape[0] or b.shape[2] != a.shape[1]:
            raise ValueError(
                f"x1: expected shape ({a.shape[0]}, K, {a.shape[1]}) to pair with x0, got {tuple(b.shape)}"
            )
        K = b.shape[1]
        return a.repeat_interleave(K, 0), b.reshape(-1, b.shape[2]).to(a.device)
    b = _as_tensor(x1, "x1", 2, "(n, d) or (n, K, d)")
    if b.shape != a.shape:
        raise ValueError(f"x1: expected shape {tuple(a.shape)} to pair with x0, got {tuple(b.shape)}")
    return a, b.to(a.device)


def cross_covariance(x0, x1) -> Tensor:
    r"""Cross-covariance of a coupling given by pairs, :math:`\frac1M\sum (x_0 - \bar x_0)(x_1 - \bar x_1)^\top`.

    Args:
        x0: ``(n, d)`` inputs.
        x1: ``(n, d)`` partners, or ``(n, K, d)``: ``K`` partners of each input (e.g. K SDE samples
            from each x0, docs/math.md §5); all ``M = nK`` pairs count equally (divisor ``M``).

    Returns:
        ``(d, d)`` float64 tensor (rows: x0 coordinates; columns: x1 coordinates).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [2.0]])
        >>> cross_covariance(x, 3 * x)
        tensor([[3.]], dtype=torch.float64)
    """
    a, b = _pairs(x0, x1)
    ac, bc = a - a.mean(0), b - b.mean(0)
    return ac.T @ bc / a.shape[0]


def cross_covariance_error(x0, x1, reference) -> float:
    r"""Relative Frobenius error of a coupling's cross-covariance (docs/math.md §5.9 (a), (b)):
    :math:`\|\widehat C - C\|_F / \|C\|_F`.

    Args:
        x0, x1: the coupling, as in :func:`cross_covariance`.
        reference: ``(d, d)``: the closed form (:attr:`bridge.reference.GaussianSB.C`) or a POT
            plan's (:meth:`bridge.ot.EntropicPlanResult.cross_covariance`); non-zero.

    Returns:
        The relative error, a float (0.02 = 2%).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [2.0]])
        >>> cross_covariance_error(x, 3 * x, torch.tensor([[2.0]]))
        0.5
    """
    c_hat = cross_covariance(x0, x1)
    d = c_hat.shape[0]
    ref = _as_tensor(reference, "reference", 2, f"({d}, {d})").to(c_hat.device)
    if ref.shape != (d, d):
        raise ValueError(f"reference: expected shape ({d}, {d}), got {tuple(ref.shape)}")
    norm = float(torch.linalg.matrix_norm(ref))
    if norm == 0:
        raise ValueError("reference: is the zero matrix; the relative error is undefined")
    return float(torch.linalg.matrix_norm(c_hat - ref)) / norm


def barycentric_map_error(model_samples, reference_map, target_cov_trace, *, unbiased: bool = False) -> float:
    r"""L2-UVP of a coupling's barycentric map against a reference map (docs/math.md §5.9 (b)).

    .. math::
        100\,\frac{\frac1n\sum_i |\hat T(x_i) - T(x_i)|^2}{\operatorname{tr}\mathrm{Cov}(\rho_1)},
        \qquad \hat T(x_i) = \frac1K\sum_k y_{ik},

    with :math:`T` e.g. POT's :math:`T(x_i) = \sum_j P_{ij} y_j / a_i`
    (:meth:`bridge.ot.EntropicPotentials.barycentric_map`) or the exact conditional mean. The
    mean of ``K`` samples is noisy: :math:`\mathbb E|\hat T - T_{model}|^2 = \operatorname{tr} S_i / K`.
    ``unbiased=True`` subtracts the estimate :math:`\operatorname{tr}\hat S_i / K` per point
    (divisor ``K - 1`` in :math:`\hat S_i`), which removes that term in expectation (the result
    can then be slightly negative).

    Args:
        model_samples: ``(n, K, d)`` samples per input, or ``(n, d)`` model means.
        reference_map: ``(n, d)`` reference values :math:`T(x_i)`.
        target_cov_trace: :math:`\operatorname{tr}\mathrm{Cov}(\rho_1) > 0`, the normaliser.
        unbiased: subtract the sampling noise of the means (needs ``(n, K, d)`` with ``K >= 2``).

    Returns:
        The L2-UVP in percent, a float.

    Example:
        >>> import torch
        >>> y = torch.tensor([[[1.0], [3.0]]])  # one input, two samples: mean 2
        >>> barycentric_map_error(y, torch.tensor([[1.0]]), 4.0)  # 100 * 1 / 4
        25.0
        >>> barycentric_map_error(y, torch.tensor([[1.0]]), 4.0, unbiased=True)  # minus var 2 / K 2
        0.0
    """
    ref = _as_tensor(reference_map, "reference_map", 2, "(n, d)")
    total = _positive_float(target_cov_trace, "target_cov_trace")
    if isinstance(model_samples, (Tensor, np.ndarray)) and model_samples.ndim == 3:
        y = _as_tensor(model_samples, "model_samples", 3, "(n, K, d)").to(ref.device)
        means, K = y.mean(1), y.shape[1]
    else:
        if unbiased:
            raise ValueError("unbiased: needs model_samples of shape (n, K, d) with K >= 2, got model means (n, d)")
        y = None
        means = _as_tensor(model_samples, "model_samples", 2, "(n, K, d) or (n, d)").to(ref.device)
    if means.shape != ref.shape:
        raise ValueError(f"model_samples: {tuple(means.shape)} means do not match reference_map {tuple(ref.shape)}")
    sq = ((means - ref) ** 2).sum(-1)
    if unbiased:
        if K < 2:
            raise ValueError(f"unbiased: needs K >= 2 samples per input, got K = {K}")
        sq = sq - y.var(1, correction=1).sum(-1) / K
    return 100.0 * float(sq.mean()) / total


def kinetic_energy(drift, paths, times) -> float:
    r"""Kinetic energy :math:`\int_0^1 \mathbb E|u(t, X_t)|^2 dt` of a drift along sampled paths.

    Trapezoidal rule in time over the grid of ``times`` with the sample mean over paths at
    each time (e.g. ``sample_sde(..., trajectory=True)``: ``paths = res.trajectory``,
    ``times = res.t``). Error: O(dt^2) for the quadrature plus the Monte-Carlo error; the drift
    is evaluated without gradients. Compare with the closed form
    (:meth:`bridge.reference.GaussianSB.kinetic_energy`) via :func:`compare_kinetic_energy`.

    Args:
        drift: callable ``u(t, x)`` with ``t`` of shape ``(n,)`` and ``x`` of shape ``(n, d)``.
        paths: ``(T + 1, n, d)`` states at the grid times.
        times: ``(T + 1,)`` increasing times.

    Returns:
        The kinetic energy, a float.

    Example:
        >>> import torch
        >>> paths = torch.zeros(11, 5, 2, dtype=torch.float64)
        >>> kinetic_energy(lambda t, x: torch.ones_like(x), paths, torch.linspace(0, 1, 11))
        2.0
    """
    if not callable(drift):
        raise TypeError(f"drift: expected a callable u(t, x), got {type(drift).__name__}")
    if not isinstance(paths, Tensor) or not paths.is_floating_point():
        raise TypeError(f"paths: expected a floating-point tensor of shape (T + 1, n, d), got {type(paths).__name__}")
    if paths.dim() != 3 or paths.shape[0] < 2:
        raise ValueError(f"paths: expected shape (T + 1, n, d) with T >= 1, got {tuple(paths.shape)}")
    t = torch.as_tensor(times, dtype=paths.dtype, device=paths.device)
    if t.shape != (paths.shape[0],):
        raise ValueError(f"times: expected shape ({paths.shape[0]},) to match paths, got {tuple(t.shape)}")
    if not bool((t[1:] > t[:-1]).all()):
        raise ValueError("times: expected strictly increasing values")
    with torch.no_grad():
        energy = torch.stack(
            [(drift(t[k].expand(paths.shape[1]), paths[k]) ** 2).sum(-1).mean() for k in range(paths.shape[0])]
        ).to(torch.float64)
    dt = (t[1:] - t[:-1]).to(torch.float64)
    return float((0.5 * (energy[1:] + energy[:-1]) * dt).sum())


@dataclass(frozen=True)
class KineticEnergyComparison:
    r"""A kinetic-energy estimate against a reference (docs/math.md §5.9 (d)).

    Attributes:
        estimate: :math:`\int_0^1 \mathbb E|\hat u|^2 dt`.
        reference: the closed form or another estimate.
        relative_error: ``(estimate - reference) / reference`` (signed; the SB minimises it, so
            an admissible bridge has ``>= 0`` up to estimation error).
        kl_estimate: :math:`\mathrm{KL}(P \,\|\, W^{2\epsilon}) = \text{estimate} / (4\epsilon)`.
        kl_reference: ``reference / (4 eps)``.
    """

    estimate: float
    reference: float
    relative_error: float
    kl_estimate: float
    kl_reference: float


def compare_kinetic_energy(estimate, reference, *, eps) -> KineticEnergyComparison:
    r"""Compare kinetic energies and the path-space relative entropies they imply,
    :math:`\mathrm{KL}(P \,\|\, W) = \frac{1}{4\epsilon}\int \mathbb E|u|^2 dt` (:mod:`bridge.conventions`).

    Example:
        >>> compare_kinetic_energy(1.1, 1.0, eps=0.5).relative_error
        0.10000000000000009
    """
    from .conventions import sb_kl_from_kinetic_energy

    est, ref = float(estimate), _positive_float(reference, "reference")
    return KineticEnergyComparison(
        estimate=est,
        reference=ref,
        relative_error=(est - ref) / ref,
        kl_estimate=sb_kl_from_kinetic_energy(est, eps),
        kl_reference=sb_kl_from_kinetic_energy(ref, eps),
    )
