r"""Gaussian mixtures with exact log-density, score, moments and ancestral sampling (docs/math.md §7).

.. math:: \rho(x) = \sum_{k=1}^K \pi_k\, \mathcal N(x;\, m_k, C_k),
          \qquad \nabla\log\rho(x) = -\sum_k w_k(x)\, C_k^{-1}(x - m_k),

with responsibilities :math:`w_k(x) \propto \pi_k \mathcal N(x; m_k, C_k)` computed in log space.
These are the endpoint densities of the closed-form interpolant oracle
(:class:`~bridge.reference.InterpolantOracle`, SI App. A).

Example:
    >>> import torch
    >>> rho = gaussian([0.0, 0.0], 1.0)
    >>> rho.log_prob(torch.zeros(1, 2, dtype=torch.float64))
    tensor([-1.8379], dtype=torch.float64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["GaussianMixture", "gaussian", "standard_normal"]

_LOG_2PI = math.log(2.0 * math.pi)


def _check_points(x, d: int, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (n, {d}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if x.dim() != 2 or x.shape[1] != d:
        raise ValueError(f"{name}: expected shape (n, {d}), got {tuple(x.shape)}")
    return x


@dataclass(eq=False)
class GaussianMixture:
    r"""A mixture of ``K`` Gaussians in ``R^d``:
    :math:`\rho = \sum_k \pi_k \mathcal N(m_k, C_k)`.

    Attributes:
        weights: mixture weights :math:`\pi`, shape ``(K,)``, positive, summing to 1.
        means: component means :math:`m_k`, shape ``(K, d)``.
        covs: component covariances :math:`C_k`, shape ``(K, d, d)``, symmetric positive definite.

    All three must share one floating dtype and device. Methods evaluate in the dtype and on
    the device of their input ``x``.

    Raises:
        TypeError: a field is not a floating-point tensor, or the dtypes/devices differ.
        ValueError: inconsistent shapes, non-finite entries, weights not positive or not summing
            to 1, or a covariance that is not symmetric positive definite.

    Example:
        >>> import torch
        >>> rho = GaussianMixture(torch.tensor([0.5, 0.5], dtype=torch.float64),
        ...                       torch.tensor([[-1.0], [1.0]], dtype=torch.float64),
        ...                       torch.full((2, 1, 1), 0.25, dtype=torch.float64))
        >>> rho.mean(), rho.cov()
        (tensor([0.], dtype=torch.float64), tensor([[1.2500]], dtype=torch.float64))
        >>> rho.sample(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 1])
    """

    weights: Tensor
    means: Tensor
    covs: Tensor
    _chol: Tensor = field(init=False, repr=False)

    def __post_init__(self):
        for name in ("weights", "means", "covs"):
            v = getattr(self, name)
            if not isinstance(v, Tensor):
                raise TypeError(f"{name}: expected a tensor, got {type(v).__name__}")
            if not v.is_floating_point():
                raise TypeError(f"{name}: expected a floating-point tensor, got {v.dtype}")
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"{name}: contains NaN or Inf")
        w, m, c = self.weights, self.means, self.covs
        if len({w.dtype, m.dtype, c.dtype}) != 1 or len({w.device, m.device, c.device}) != 1:
            raise TypeError(
                f"weights, means, covs: expected one dtype and device, got "
                f"{w.dtype}/{m.dtype}/{c.dtype} on {w.device}/{m.device}/{c.device}"
            )
        if w.dim() != 1 or w.shape[0] == 0:
            raise ValueError(f"weights: expected shape (K,) with K >= 1, got {tuple(w.shape)}")
        K = w.shape[0]
        if m.dim() != 2 or m.shape[0] != K or m.shape[1] == 0:
            raise ValueError(f"means: expected shape ({K}, d) to match weights, got {tuple(m.shape)}")
        d = m.shape[1]
        if c.shape != (K, d, d):
            raise ValueError(f"covs: expected shape ({K}, {d}, {d}), got {tuple(c.shape)}")
        if not bool((w > 0).all()):
            raise ValueError(f"weights: expected positive entries, got {w.tolist()}")
        # rounding of K positive numbers that were normalised in this dtype
        tol = 10 * K * torch.finfo(w.dtype).eps
        if abs(float(w.sum()) - 1.0) > tol:
            raise ValueError(f"weights: expected to sum to 1, got sum {float(w.sum()):.10g}")
        scale = c.abs().amax(dim=(-2, -1), keepdim=True)
        if not bool(((c - c.mT).abs() <= 100 * torch.finfo(c.dtype).eps * scale).all()):
            raise ValueError("covs: expected symmetric matrices")
        L, info = torch.linalg.cholesky_ex(c)
        if bool((info != 0).any()):
            bad = int(torch.nonzero(info)[0, 0])
            raise ValueError(f"covs: component {bad} is not positive definite")
        self._chol = L

    # -- shape -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        """Number of components ``K``."""
        return self.weights.shape[0]

    # -- moments ---------------------------------------------------------------------------
    def mean(self) -> Tensor:
        r""":math:`\mathbb E[x] = \sum_k \pi_k m_k`, shape ``(d,)``.

        Example:
            >>> gaussian([1.0, 1.0], 1.0).mean()
            tensor([1., 1.], dtype=torch.float64)
        """
        return self.weights @ self.means

    def cov(self) -> Tensor:
        r""":math:`\mathrm{Cov}[x] = \sum_k \pi_k (C_k + m_k m_k^\top) - \bar m \bar m^\top`, ``(d, d)``.

        Example:
            >>> gaussian([0.0, 0.0], [1.0, 2.0]).cov()
            tensor([[1., 0.],
                    [0., 2.]], dtype=torch.float64)
        """
        mu = self.mean()
        dm = self.means - mu
        second = self.covs + dm.unsqueeze(-1) * dm.unsqueeze(-2)
        return torch.einsum("k,kij->ij", self.weights, second)

    # -- sampling --------------------------------------------------------------------------
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Ancestral samples: :math:`k \sim \pi`, then :math:`x = m_k + L_k \xi`,
        :math:`L_k L_k^\top = C_k`, :math:`\xi \sim \mathcal N(0, I)`.

        Args:
            n: number of samples (``>= 0``).
            generator: source of randomness.

        Returns:
            Samples of shape ``(n, d)`` in the mixture's dtype and device.

        Example:
            >>> x = standard_normal(3).sample(5, generator=torch.Generator().manual_seed(0))
            >>> x.shape
            torch.Size([5, 3])
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n: expected a non-negative int, got {n!r}")
        w = self.weights
        if self.n_components == 1:
            k = torch.zeros(n, dtype=torch.long, device=w.device)
        else:
            k = (
                torch.multinomial(w, n, replacement=True, generator=generator)
                if n > 0
                else torch.zeros(0, dtype=torch.long, device=w.device)
            )
        xi = torch.randn(n, self.dim, generator=generator, dtype=w.dtype, device=w.device)
        # one (m, d) @ (d, d) product per component, not an (n, d, d) gather of L_k (GBs at d = 128)
        out = torch.empty_like(xi)
        for c in torch.unique(k).tolist():
            rows = k == c
            out[rows] = self.means[c] + xi[rows] @ self._chol[c].mT
        return out

    # -- density ---------------------------------------------------------------------------
    def _component_terms(self, x: Tensor):
        """Per-component log pi_k N(x; m_k, C_k) ``(n, K)`` and ``C_k^{-1}(x - m_k)`` ``(n, K, d)``."""
        x = _check_points(x, self.dim)
        w, m, L = (p.to(dtype=x.dtype, device=x.device) for p in (self.weights, self.means, self._chol))
        diff = (x.unsqueeze(1) - m).unsqueeze(-1)  # (n, K, d, 1)
        y = torch.linalg.solve_triangular(L, diff, upper=False)
        sol = torch.linalg.solve_triangular(L.mT, y, upper=True).squeeze(-1)
        logdet = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        log_comp = torch.log(w) - 0.5 * (y.squeeze(-1).pow(2).sum(-1) + logdet + self.dim * _LOG_2PI)
        return log_comp, sol

    def log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log\rho(x) = \operatorname{logsumexp}_k [\log\pi_k + \log\mathcal N(x; m_k, C_k)]`.

        Args:
            x: points ``(n, d)``.

        Returns:
            ``(n,)``, differentiable in ``x``.

        Example:
            >>> standard_normal(1).log_prob(torch.zeros(1, 1, dtype=torch.float64))
            tensor([-0.9189], dtype=torch.float64)
        """
        log_comp, _ = self._component_terms(x)
        return torch.logsumexp(log_comp, dim=-1)

    def score(self, x: Tensor) -> Tensor:
        r""":math:`\nabla\log\rho(x) = -\sum_k w_k(x)\, C_k^{-1}(x - m_k)`,
        :math:`w = \mathrm{softmax}_k(\log\pi_k + \log\mathcal N(x; m_k, C_k))`.

        Args:
            x: points ``(n, d)``.

        Returns:
            ``(n, d)``.

        Example:
            >>> standard_normal(2).score(torch.ones(1, 2, dtype=torch.float64))
            tensor([[-1., -1.]], dtype=torch.float64)
        """
        log_comp, sol = self._component_terms(x)
        resp = torch.softmax(log_comp, dim=-1)
        return -(resp.unsqueeze(-1) * sol).sum(1)


def gaussian(mean, cov) -> GaussianMixture:
    r"""A single Gaussian :math:`\mathcal N(m, C)` as a one-component mixture.

    Args:
        mean: ``(d,)`` tensor or array-like. Its dtype is used if it is a floating tensor,
            float64 otherwise.
        cov: a number (``c I``), a ``(d,)`` diagonal, or a ``(d, d)`` matrix.

    Example:
        >>> g = gaussian([0.0, 1.0], [1.0, 4.0])
        >>> g.covs[0]
        tensor([[1., 0.],
                [0., 4.]], dtype=torch.float64)
    """
    if isinstance(mean, Tensor) and mean.is_floating_point():
        m = mean
    else:
        try:
            m = torch.as_tensor(mean, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"mean: expected a (d,) tensor or array-like, got {type(mean).__name__}") from None
    if m.dim() != 1 or m.shape[0] == 0:
        raise ValueError(f"mean: expected shape (d,), got {tuple(m.shape)}")
    d = m.shape[0]
    try:
        c = torch.as_tensor(cov, dtype=m.dtype, device=m.device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"cov: expected a number, (d,) or (d, d), got {type(cov).__name__}") from None
    if c.dim() == 0:
        c = c * torch.eye(d, dtype=m.dtype, device=m.device)
    elif c.shape == (d,):
        c = torch.diag(c)
    elif c.shape != (d, d):
        raise ValueError(f"cov: expected a number, shape ({d},) or ({d}, {d}), got {tuple(c.shape)}")
    return GaussianMixture(torch.ones(1, dtype=m.dtype, device=m.device), m.unsqueeze(0), c.unsqueeze(0))


def standard_normal(d: int, dtype: torch.dtype = torch.float64, device=None) -> GaussianMixture:
    r""":math:`\mathcal N(0, I_d)`, the noise of one-sided interpolants (SI 4.19).

    Example:
        >>> standard_normal(2).cov()
        tensor([[1., 0.],
                [0., 1.]], dtype=torch.float64)
    """
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d: expected a positive int, got {d!r}")
    return gaussian(torch.zeros(d, dtype=dtype, device=device), 1.0)
