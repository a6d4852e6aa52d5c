r"""The Schrödinger-potential drift family: an SB whose potential is a Gaussian mixture (docs/math.md §5.10).

With the reference variance rate :math:`r = 2\epsilon` (the SB is :math:`dX = u\,dt + \sqrt{2\epsilon}\,dW`),
every SB plan has the form :math:`\pi(x_1 \mid x_0) \propto e^{\langle x_0, x_1\rangle / r} v(x_1)` for
an *adjusted potential* :math:`v` (Korotin, Gushchin & Burnaev, "Light Schrödinger Bridge", ICLR
2024, whose :math:`\varepsilon` is our :math:`r`). This module takes

.. math::
    v(y) = \sum_{k=1}^K \alpha_k\, N(y;\, \mu_k,\, r S_k), \qquad \textstyle\sum_k \alpha_k = 1,

so that the forward potential :math:`\varphi_1(y) = e^{|y|^2/(2r)} v(y)` and everything derived from it
stay in closed form (docs/math.md §5.10):

* the normaliser :math:`c(x) = \int e^{\langle x, y\rangle/r} v(y)\,dy
  = \sum_k \alpha_k \exp\big(\tfrac{x^\top S_k x + 2\mu_k^\top x}{2r}\big)`;
* the conditional :math:`x_1 \mid x_0 \sim \sum_k w_k(x_0)\, N(\mu_k + S_k x_0,\ r S_k)`,
  :math:`w_k(x_0) \propto \alpha_k \exp\big(\tfrac{x_0^\top S_k x_0 + 2\mu_k^\top x_0}{2r}\big)`;
* the forward potential at time ``t``, with :math:`A_k(t) = t S_k + (1 - t) I`,

  .. math::
      \varphi_t(x) = \sum_k \frac{\alpha_k}{\sqrt{\det(2\pi r A_k)}}
      \exp\Big(\frac{x^\top A_k^{-1}(S_k - I)\,x + 2 \mu_k^\top A_k^{-1} x - t\,\mu_k^\top A_k^{-1}\mu_k}{2r}\Big);

* the SB drift :math:`u(t, x) = r\nabla\log\varphi_t(x) = \sum_k w_k(t, x)\, A_k^{-1}\big((S_k - I)x + \mu_k\big)`,
  with :math:`w_k(t, x)` the components' shares of :math:`\varphi_t(x)`.

:class:`MixturePotential` holds the parameters (log-weights, means :math:`\mu_k` — LightSB's
:math:`r_k` — and :math:`S_k`, diagonal through log-variances or full through a Cholesky factor
with positive diagonal) and evaluates these in ``x``'s dtype and device. A boolean buffer
``active`` can switch components off (weight zero; :mod:`bridge.sb.prune`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..conventions import check_eps
from ..reference.sb_mixture import _check_count, _check_points

__all__ = ["COVARIANCES", "TIME_BLOCK", "MixtureConditional", "MixturePotential"]

#: The parametrisations of ``S_k``.
COVARIANCES = ("diagonal", "full")

_LOG_2PI = math.log(2.0 * math.pi)
#: :meth:`MixturePotential.sample` works on row blocks whose ``(rows, K, d)`` intermediates stay
#: under this many elements (16 MiB in float32), so that a million inputs do not need gigabytes.
_BLOCK_ELEMENTS = 2**22
#: Rows that share one time: with diagonal :math:`S_k`, :meth:`MixturePotential.drift` evaluates a
#: time shared by contiguous runs of at least this many rows (a number ``t``, or ``(n,)`` times in
#: equal runs, as the solver draws them for this family) by matrix products over the components
#: instead of ``(n, K, d)`` tensors: the same values, several times faster to train.
TIME_BLOCK = 16


@dataclass(eq=False)
class MixtureConditional:
    r"""The Gaussian mixture :math:`x_1 \mid x_0 = x_i \sim \sum_k w_{ik}\, N(m_{ik},\ L_k L_k^\top)`.

    Attributes:
        log_weights: :math:`\log w_{ik}`, ``(n, K)`` (each row sums to one after ``exp``).
        means: :math:`m_{ik} = \mu_k + S_k x_i`, ``(n, K, d)``.
        scale_tril: :math:`L_k = \sqrt r\,\mathrm{chol}(S_k)`, ``(K, d, d)``, lower triangular
            (the covariance :math:`r S_k` does not depend on ``x``).
    """

    log_weights: Tensor
    means: Tensor
    scale_tril: Tensor

    def mean(self) -> Tensor:
        r""":math:`\mathbb E[x_1 \mid x_i] = \sum_k w_{ik} m_{ik}`, ``(n, d)``."""
        return (self.log_weights.exp().unsqueeze(-1) * self.means).sum(1)

    def cov(self) -> Tensor:
        r""":math:`\mathrm{Cov}[x_1 \mid x_i] = \sum_k w_{ik}(L_k L_k^\top + m_{ik} m_{ik}^\top)
        - \bar m_i \bar m_i^\top`, ``(n, d, d)``."""
        w = self.log_weights.exp()
        dm = self.means - self.mean().unsqueeze(1)
        within = torch.einsum("nk,kij->nij", w, self.scale_tril @ self.scale_tril.mT)
        return within + torch.einsum("nk,nki,nkj->nij", w, dm, dm)


class MixturePotential(nn.Module):
    r"""An SB between a source and the target of the plan :math:`\pi(x_1 \mid x_0) \propto
    e^{\langle x_0, x_1\rangle / r} v(x_1)`, :math:`v = \sum_k \alpha_k N(\mu_k, r S_k)` (docs/math.md §5.10).

    Args:
        dim: dimension ``d``.
        n_components: ``K``.
        eps: the paper's eps (:math:`r = 2\epsilon`, the benchmark's and LightSB's epsilon).
        covariance: ``"diagonal"`` (:math:`S_k = \mathrm{diag}(e^{s_k})`) or ``"full"``
            (:math:`S_k = L_k L_k^\top`, ``L_k`` lower triangular with positive diagonal).
        means: optional ``(K, d)`` initial :math:`\mu_k`, e.g. ``K`` target samples (LightSB's
            initialisation); otherwise standard normal draws from ``generator``.
        scale: initial :math:`S_k = \mathrm{scale}\cdot I` (a number > 0).
        generator: randomness of the default means.
        dtype, device: of the parameters (default: those of ``means``, else float32 on the CPU).

    The weights start uniform. As a module, ``potential(t, x)`` is :meth:`drift`.

    Example:
        >>> import torch
        >>> pot = MixturePotential(2, 3, eps=0.5, generator=torch.Generator().manual_seed(0))
        >>> x0 = torch.zeros(4, 2)
        >>> pot.sample(x0, per_point=5).shape, pot.drift(0.5, x0).shape
        (torch.Size([4, 5, 2]), torch.Size([4, 2]))
    """

    def __init__(
        self,
        dim: int,
        n_components: int,
        eps: float,
        *,
        covariance: str = "diagonal",
        means: Tensor | None = None,
        scale: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        d, K = _check_count(dim, "dim"), _check_count(n_components, "n_components")
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance: expected 'diagonal' or 'full', got {covariance!r}")
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not 0 < scale < math.inf:
            raise ValueError(f"scale: expected a finite number > 0, got {scale!r}")
        self.eps, self.covariance, self.dim, self.n_components = check_eps(eps), covariance, d, K
        if means is None:
            dtype = dtype or torch.float32
            means = torch.randn(K, d, generator=generator, dtype=dtype).to(device)
        elif not isinstance(means, Tensor) or not means.is_floating_point() or tuple(means.shape) != (K, d):
            shape = tuple(means.shape) if isinstance(means, Tensor) else type(means).__name__
            raise ValueError(f"means: expected a floating-point tensor of shape ({K}, {d}), got {shape}")
        to = dict(dtype=dtype or means.dtype, device=device if device is not None else means.device)
        self.logits = nn.Parameter(torch.zeros(K, **to))
        self.means = nn.Parameter(means.detach().clone().to(**to))
        log_s = torch.full((K, d), math.log(scale), **to)
        self.raw_cov = nn.Parameter(log_s if covariance == "diagonal" else torch.diag_embed(log_s / 2))
        self.register_buffer("active", torch.ones(K, dtype=torch.bool, device=to["device"]))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # files written before components could be switched off have no mask: all are on
        state_dict.setdefault(prefix + "active", torch.ones_like(self.active))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @classmethod
    def from_components(cls, weights: Tensor, means: Tensor, covs: Tensor, eps: float) -> MixturePotential:
        r"""The potential with the given :math:`\alpha_k` ``(K,)`` (normalised here), :math:`\mu_k`
        ``(K, d)`` and :math:`S_k`: ``(K, d)`` variances (diagonal) or ``(K, d, d)`` SPD matrices
        (full), in their dtype and device.

        Example:
            >>> import torch
            >>> pot = MixturePotential.from_components(torch.ones(1), torch.zeros(1, 2), torch.ones(1, 2), eps=0.5)
            >>> pot.covariance, pot.cov_matrix()[0].diagonal().tolist()
            ('diagonal', [1.0, 1.0])
        """
        if not all(isinstance(v, Tensor) for v in (weights, means, covs)) or means.dim() != 2:
            raise ValueError("weights, means, covs: expected tensors of shapes (K,), (K, d) and (K, d) or (K, d, d)")
        K, d = means.shape
        full = covs.dim() == 3
        positive = bool((weights > 0).all()) and (full or bool((covs > 0).all()))
        if weights.shape != (K,) or covs.shape != ((K, d, d) if full else (K, d)) or not positive:
            raise ValueError(
                f"weights, covs: expected positive weights ({K},) and positive covs ({K}, {d}) or ({K}, {d}, {d}), "
                f"got {tuple(weights.shape)} and {tuple(covs.shape)}"
            )
        pot = cls(d, K, eps, covariance="full" if full else "diagonal", means=means)
        with torch.no_grad():
            pot.logits.copy_(torch.log(weights))
            if full:
                L = torch.linalg.cholesky((covs + covs.mT) / 2)
                pot.raw_cov.copy_(L.tril(-1) + torch.diag_embed(torch.log(L.diagonal(dim1=-2, dim2=-1))))
            else:
                pot.raw_cov.copy_(torch.log(covs))
        return pot

    @classmethod
    def from_mixture_benchmark(cls, bench) -> MixturePotential:
        r"""The exact potential of a mixture benchmark (:func:`bridge.reference.make_mixture_benchmark`),
        full :math:`S_k` (docs/math.md §5.10): its plan is :math:`N(y; x, rI)\,g(y)` with
        :math:`g = \sum_k w_k N(m_k, G_k)`, so :math:`v \propto e^{-|y|^2/(2r)} g` has
        :math:`P_k = (G_k^{-1} + I/r)^{-1}`, :math:`\mu_k = P_k G_k^{-1} m_k`, :math:`S_k = P_k / r`
        and :math:`\alpha_k \propto w_k N(m_k; 0, G_k + rI)`. In the benchmark's dtype.

        Example:
            >>> import torch
            >>> from bridge.reference import make_mixture_benchmark
            >>> bench = make_mixture_benchmark(2, r=1.0, generator=torch.Generator().manual_seed(0))
            >>> MixturePotential.from_mixture_benchmark(bench).n_components
            5
        """
        p, r = bench.potential, bench.r
        G, eye = p.covs, torch.eye(bench.dim, dtype=p.covs.dtype, device=p.covs.device)
        G_inv = torch.linalg.inv(G)
        P = torch.linalg.inv(G_inv + eye / r)
        mu = torch.einsum("kij,kjl,kl->ki", P, G_inv, p.means)
        log_n = torch.distributions.MultivariateNormal(torch.zeros_like(p.means[0]), G + r * eye).log_prob(p.means)
        return cls.from_components(torch.softmax(torch.log(p.weights) + log_n, 0), mu, P / r, bench.eps)

    # -- parameters ------------------------------------------------------------------------
    @property
    def r(self) -> float:
        """The reference variance rate ``2 eps``."""
        return 2.0 * self.eps

    def log_weights(self) -> Tensor:
        r""":math:`\log\alpha_k`, ``(K,)``, normalised over the active components (the others:
        :math:`-\infty`, :mod:`bridge.sb.prune`)."""
        return torch.log_softmax(self.logits.masked_fill(~self.active, -math.inf), dim=0)

    def cov_factor(self) -> Tensor:
        r""":math:`\mathrm{chol}(S_k)`, ``(K, d, d)``, lower triangular with positive diagonal."""
        if self.covariance == "diagonal":
            return torch.diag_embed(torch.exp(self.raw_cov / 2))
        return self.raw_cov.tril(-1) + torch.diag_embed(torch.exp(self.raw_cov.diagonal(dim1=-2, dim2=-1)))

    def cov_matrix(self) -> Tensor:
        r""":math:`S_k`, ``(K, d, d)`` (the components of :math:`v` have covariance :math:`r S_k`)."""
        L = self.cov_factor()
        return L @ L.mT

    def _to(self, x: Tensor, p: Tensor) -> Tensor:
        return p.to(dtype=x.dtype, device=x.device)

    def _spectrum(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        r""":math:`S_k = U_k\,\mathrm{diag}(\lambda_k)\,U_k^\top`: ``lambda`` ``(K, d)`` and ``U`` ``(K, d, d)``
        (None for diagonal :math:`S_k`, whose eigenvectors are the axes), in ``x``'s dtype."""
        if self.covariance == "diagonal":
            return self._to(x, torch.exp(self.raw_cov)), None
        S = self._to(x, self.cov_matrix())
        lam, U = torch.linalg.eigh((S + S.mT) / 2)
        return lam, U

    # -- checks ----------------------------------------------------------------------------
    def _check_x(self, x, name: str = "x") -> Tensor:
        return _check_points(x, self.dim, name)

    def _time(self, t, x: Tensor) -> Tensor:
        """``t`` (a number or a ``(n,)`` tensor in [0, 1]) as a ``()`` or ``(n, 1, 1)`` tensor in x's dtype."""
        if isinstance(t, bool) or not isinstance(t, (numbers.Real, Tensor)):
            raise TypeError(f"t: expected a number or a tensor of shape ({x.shape[0]},), got {type(t).__name__}")
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if tt.dim() == 1 and tt.shape[0] == x.shape[0]:
            tt = tt.view(-1, 1, 1)
        elif tt.dim() != 0:
            raise ValueError(f"t: expected a number or shape ({x.shape[0]},), got {tuple(tt.shape)}")
        if not bool(((tt >= 0) & (tt <= 1)).all()):
            raise ValueError("t: expected values in [0, 1]")
        return tt

    # -- the potentials --------------------------------------------------------------------
    def log_v(self, y: Tensor) -> Tensor:
        r""":math:`\log v(y) = \log\sum_k \alpha_k N(y;\, \mu_k, r S_k)` (the adjusted potential), ``(n,)``.

        Example:
            >>> import torch
            >>> pot = MixturePotential.from_components(torch.ones(1), torch.zeros(1, 1), torch.ones(1, 1), eps=0.5)
            >>> round(pot.log_v(torch.zeros(1, 1)).item(), 4)  # log N(0; 0, 1)
            -0.9189
        """
        y = self._check_x(y, "y")
        diff = y.unsqueeze(1) - self._to(y, self.means)  # (n, K, d)
        if self.covariance == "diagonal":
            log_s = self._to(y, self.raw_cov)
            quad = (diff * diff * torch.exp(-log_s)).sum(-1) / self.r  # (n, K)
            logdet = log_s.sum(-1)  # log det S_k
        else:
            L = self._to(y, self.cov_factor())
            z = torch.linalg.solve_triangular(L, diff.permute(1, 2, 0), upper=False)  # (K, d, n)
            quad = (z * z).sum(1).T / self.r
            logdet = 2.0 * torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)
        log_n = -0.5 * (quad + logdet + self.dim * (_LOG_2PI + math.log(self.r)))
        return torch.logsumexp(self._to(y, self.log_weights()) + log_n, dim=-1)

    def _c_terms(self, x: Tensor) -> Tensor:
        r""":math:`\log\alpha_k + (x^\top S_k x + 2\mu_k^\top x)/(2r)`, ``(n, K)``."""
        if self.covariance == "diagonal":
            quad = (x * x) @ self._to(x, torch.exp(self.raw_cov)).T
        else:
            Ltx = torch.einsum("kji,nj->nki", self._to(x, self.cov_factor()), x)  # L_k^T x
            quad = (Ltx * Ltx).sum(-1)
        lin = x @ self._to(x, self.means).T
        return self._to(x, self.log_weights()) + (quad + 2.0 * lin) / (2.0 * self.r)

    def log_c(self, x: Tensor) -> Tensor:
        r""":math:`\log c(x) = \log\int e^{\langle x, y\rangle/r} v(y)\,dy
        = \log\sum_k \alpha_k \exp\big(\tfrac{x^\top S_k x + 2\mu_k^\top x}{2r}\big)`, ``(n,)``.

        Example:
            >>> import torch
            >>> pot = MixturePotential.from_components(torch.ones(1), torch.zeros(1, 1), torch.ones(1, 1), eps=0.5)
            >>> round(pot.log_c(torch.ones(1, 1)).item(), 4)  # x^2 / (2 r)
            0.5
        """
        return torch.logsumexp(self._c_terms(self._check_x(x)), dim=-1)

    def _phi_terms(self, t, x: Tensor):
        r"""Per component: the log of its share of :math:`\varphi_t(x)` ``(n, K)`` and the gradient
        factor :math:`A_k^{-1}((S_k - I)x + \mu_k)` in eigen-coordinates ``(n, K, d)``, and ``U``."""
        x = self._check_x(x)
        tt = self._time(t, x)
        if self._solves():
            return self._phi_terms_solve(tt, x)
        lam, U = self._spectrum(x)
        mu = self._to(x, self.means)
        if U is None:
            z, rho = x.unsqueeze(1).expand(-1, self.n_components, -1), mu
        else:
            z, rho = torch.einsum("kji,nj->nki", U, x), torch.einsum("kji,kj->ki", U, mu)  # U_k^T x, U_k^T mu_k
        a = tt * lam + (1.0 - tt)  # eigenvalues of A_k(t), (K, d) or (n, K, d)
        r = self.r
        quad = ((lam - 1.0) * z * z + 2.0 * rho * z - tt * rho * rho) / (2.0 * r * a)
        logdet = torch.log(2.0 * math.pi * r * a).sum(-1)
        terms = self._to(x, self.log_weights()) + quad.sum(-1) - 0.5 * logdet
        return terms, ((lam - 1.0) * z + rho) / a, U

    def _solves(self) -> bool:
        """Full :math:`S_k` with their gradient wanted: Cholesky solves, not eigenvectors."""
        return self.covariance == "full" and torch.is_grad_enabled() and self.raw_cov.requires_grad

    def _phi_terms_solve(self, tt: Tensor, x: Tensor):
        r""":meth:`_phi_terms` for full :math:`S_k` through Cholesky solves with :math:`A_k(t)` instead of
        eigenvectors, whose gradient is undefined at repeated eigenvalues (e.g. the start
        :math:`S_k = I`); the gradient factor in ``x``'s coordinates (``U = None``). One time: one
        block of all rows; a time per row: blocks of one row (:meth:`_solve_blocks`)."""
        if tt.dim() == 0:
            terms, g = self._solve_blocks(tt.reshape(1), x)
            return terms[0].T, g[0].permute(2, 0, 1), None
        terms, g = self._solve_blocks(tt.reshape(-1), x)
        return terms[..., 0], g[..., 0], None

    def _solve_blocks(self, tb: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Full :math:`S_k`, one time ``tb[g]`` per block of ``m = n / G`` rows: the log of each
        component's share of :math:`\varphi_t(x)` ``(G, K, m)`` and the gradient factor
        :math:`A_k^{-1}((S_k - I)x + \mu_k)` ``(G, K, d, m)``, with one Cholesky factor of
        :math:`A_k(t_g) = t_g S_k + (1 - t_g) I` per block and component, solving for all the
        block's rows at once."""
        G, d, m = tb.shape[0], x.shape[1], x.shape[0] // tb.shape[0]
        S, mu = self._to(x, self.cov_matrix()), self._to(x, self.means)  # (K, d, d), (K, d)
        tg = tb.to(x.dtype).view(G, 1, 1, 1)
        L = torch.linalg.cholesky(tg * S + (1.0 - tg) * torch.eye(d, dtype=x.dtype, device=x.device))
        xt = x.view(G, m, d).mT.unsqueeze(1)  # (G, 1, d, m)
        sx = torch.einsum("kij,gjm->gkim", S, xt[:, 0]) - xt  # (S_k - I) x, (G, K, d, m)
        mu_c = mu.unsqueeze(-1)  # (K, d, 1)
        rhs = torch.cat([sx + mu_c, xt.expand_as(sx), mu_c.expand(G, -1, -1, -1)], dim=-1)
        sol = torch.cholesky_solve(rhs, L)  # A^{-1} y, A^{-1} x, A^{-1} mu
        g, ax, amu = sol[..., :m], sol[..., m : 2 * m], sol[..., 2 * m :]
        quad = (sx * ax).sum(2) + 2.0 * (mu_c * ax).sum(2) - tg.view(G, 1, 1) * (mu_c * amu).sum(2)  # (G, K, m)
        logdet = 2.0 * torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1) + d * math.log(2.0 * math.pi * self.r)
        terms = self._to(x, self.log_weights()).view(1, -1, 1) + quad / (2.0 * self.r) - 0.5 * logdet.unsqueeze(-1)
        return terms, g

    def log_phi(self, t, x: Tensor) -> Tensor:
        r"""The forward potential :math:`\log\varphi_t(x)`, :math:`\varphi_t(x) = \int N(y;\, x, r(1-t)I)\,
        e^{|y|^2/(2r)} v(y)\,dy` (docs/math.md §5.10), ``(n,)``; ``t`` a number or ``(n,)`` in [0, 1].

        It solves :math:`\partial_t\varphi + \epsilon\Delta\varphi = 0`, with
        :math:`\varphi_1(y) = e^{|y|^2/(2r)} v(y)` and
        :math:`\varphi_0(x) = (2\pi r)^{-d/2} e^{-|x|^2/(2r)} c(x)`.

        Example:
            >>> import torch
            >>> pot = MixturePotential.from_components(torch.ones(1), torch.zeros(1, 1), torch.ones(1, 1), eps=0.5)
            >>> round(pot.log_phi(1.0, torch.zeros(1, 1)).item(), 4)  # log v(0)
            -0.9189
        """
        terms, _, _ = self._phi_terms(t, x)
        return torch.logsumexp(terms, dim=-1)

    def drift(self, t, x: Tensor) -> Tensor:
        r"""The SB drift :math:`u(t, x) = r\nabla_x\log\varphi_t(x) = \sum_k w_k(t, x)\,A_k^{-1}((S_k - I)x + \mu_k)`,
        :math:`A_k = tS_k + (1-t)I` (docs/math.md §5.10), in closed form; ``(n, d)``.

        ``t`` is a number or a ``(n,)`` tensor in [0, 1] (the samplers' ``drift(t, x)``); the drift
        is finite on all of [0, 1].

        Example:
            >>> import torch
            >>> pot = MixturePotential.from_components(torch.ones(1), torch.ones(1, 1), torch.ones(1, 1), eps=0.5)
            >>> pot.drift(0.3, torch.zeros(1, 1)).tolist()  # A^{-1} mu = 1 for S = 1
            [[1.0]]
        """
        blocks = self._time_blocks(t, x)
        if blocks is not None:
            return self._drift_blocks(blocks, x)
        terms, g, U = self._phi_terms(t, x)
        w = torch.softmax(terms, dim=-1).unsqueeze(-1)
        if U is not None:
            g = torch.einsum("kij,nkj->nki", U, g)
        return (w * g).sum(1)

    def _time_blocks(self, t, x: Tensor) -> Tensor | None:
        """``(G,)`` times when ``t`` is one time, or ``(n,)`` times in ``G`` contiguous equal runs of
        one length >= :data:`TIME_BLOCK`, and ``S_k`` is diagonal or solved for (training); else
        None (the per-row path)."""
        x = self._check_x(x)
        tt = self._time(t, x)
        if self.covariance != "diagonal" and not self._solves():
            return None
        if tt.dim() == 0:
            return tt.reshape(1)
        flat = tt.reshape(-1)
        other = flat != flat[0]
        run = int(other.int().argmax()) if bool(other.any()) else flat.shape[0]  # the first run's length
        if run < TIME_BLOCK or flat.shape[0] % run:
            return None
        runs = flat.view(-1, run)
        return runs[:, 0] if bool((runs == runs[:, :1]).all()) else None

    def _drift_blocks(self, tb: Tensor, x: Tensor) -> Tensor:
        r""":meth:`drift` for diagonal :math:`S_k = \mathrm{diag}(\lambda_k)` and one time ``tb[g]`` per
        block of rows: with :math:`a_k = t\lambda_k + 1 - t`, the component terms are
        :math:`\sum_j \big[\tfrac{\lambda_{kj} - 1}{2ra_{kj}} x_j^2 + \tfrac{\mu_{kj}}{ra_{kj}} x_j
        - \tfrac{t\mu_{kj}^2}{2ra_{kj}} - \tfrac12\log(2\pi r a_{kj})\big] + \log\alpha_k` and
        :math:`u = x \odot \sum_k w_k \tfrac{\lambda_k - 1}{a_k} + \sum_k w_k \tfrac{\mu_k}{a_k}`:
        matrix products of ``(rows, d)`` by ``(d, K)`` and ``(rows, K)`` by ``(K, d)`` per block.
        Full :math:`S_k`: :meth:`_drift_blocks_full`."""
        if self.covariance == "full":
            return self._drift_blocks_full(tb, x)
        G, (n, d), r = tb.shape[0], x.shape, self.r
        lam, mu = self._to(x, torch.exp(self.raw_cov)), self._to(x, self.means)  # (K, d)
        tg = tb.to(x.dtype).view(G, 1, 1)
        inv_a = 1.0 / (tg * lam + (1.0 - tg))  # (G, K, d)
        slope, shift = (lam - 1.0) * inv_a, mu * inv_a  # u's factors per component
        const = -(tg.view(G, 1) * (mu * shift).sum(-1)) / (2.0 * r)
        const = const + 0.5 * torch.log(inv_a / (2.0 * math.pi * r)).sum(-1) + self._to(x, self.log_weights())
        xb = x.view(G, n // G, d)
        terms = (xb * xb) @ (slope / (2.0 * r)).mT + xb @ (shift / r).mT + const.unsqueeze(1)
        w = torch.softmax(terms, dim=-1)  # (G, rows, K)
        return (xb * (w @ slope) + w @ shift).reshape(n, d)

    def _drift_blocks_full(self, tb: Tensor, x: Tensor) -> Tensor:
        """:meth:`drift` for full :math:`S_k` and one time ``tb[g]`` per block of rows
        (:meth:`_solve_blocks`: ``G K`` factorisations, not one per row)."""
        terms, g = self._solve_blocks(tb, x)
        w = torch.softmax(terms, dim=1).unsqueeze(2)  # (G, K, 1, m)
        return (w * g).sum(1).mT.reshape(x.shape)

    def forward(self, t, x: Tensor) -> Tensor:
        """:meth:`drift` (the models' calling convention ``net(t, x)``)."""
        return self.drift(t, x)

    # -- the plan --------------------------------------------------------------------------
    def conditional(self, x0: Tensor) -> MixtureConditional:
        r"""The law of :math:`x_1 \mid x_0`: :math:`\sum_k w_k(x_0)\,N(\mu_k + S_k x_0,\ r S_k)` with
        :math:`w_k(x_0) \propto \alpha_k \exp((x_0^\top S_k x_0 + 2\mu_k^\top x_0)/(2r))`.

        Example:
            >>> import torch
            >>> half = torch.full((1, 1), 0.5)
            >>> pot = MixturePotential.from_components(torch.ones(1), torch.zeros(1, 1), half, eps=0.5)
            >>> cond = pot.conditional(torch.ones(1, 1))
            >>> round(cond.mean().item(), 4), round(cond.cov().item(), 4)  # S x0, r S
            (0.5, 0.5)
        """
        x = self._check_x(x0, "x0")
        S = self._to(x, self.cov_matrix())
        means = self._to(x, self.means) + torch.einsum("kij,nj->nki", S, x)
        scale = math.sqrt(self.r) * self._to(x, self.cov_factor())
        return MixtureConditional(self.conditional_log_weights(x), means, scale)

    def conditional_log_weights(self, x0: Tensor) -> Tensor:
        r""":math:`\log w_k(x_0)`, ``(n, K)``: the components' shares of :math:`x_1 \mid x_0` (:meth:`conditional`)."""
        return torch.log_softmax(self._c_terms(self._check_x(x0, "x0")), dim=-1)

    def _draw_block(self, x: Tensor, per: int, generator) -> Tensor:
        """``per`` exact samples of ``x1 | x0`` for each row of ``x``: ``(n, per, d)``."""
        n, d = x.shape
        w = torch.softmax(self._c_terms(x), dim=-1)
        comp = torch.multinomial(w, per, replacement=True, generator=generator)  # (n, per)
        xi = torch.randn(n, per, d, generator=generator, dtype=x.dtype, device=x.device)
        mu = self._to(x, self.means)
        if self.covariance == "diagonal":
            s = self._to(x, torch.exp(self.raw_cov))[comp]  # (n, per, d)
            return mu[comp] + s * x.unsqueeze(1) + torch.sqrt(self.r * s) * xi
        L = self._to(x, self.cov_factor())
        out = torch.empty_like(xi)
        for k in range(self.n_components):
            mask = comp == k
            if bool(mask.any()):
                rows = x.unsqueeze(1).expand(n, per, d)[mask]
                out[mask] = mu[k] + (rows @ L[k]) @ L[k].T + math.sqrt(self.r) * xi[mask] @ L[k].T
        return out

    @torch.no_grad()
    def sample(self, x0: Tensor, per_point: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Exact samples of :math:`x_1 \mid x_0` (:meth:`conditional`): ``per_point`` per row, ``(n, per_point, d)``;
        ``generator`` lives on ``x0``'s device. Rows are drawn in blocks whose ``(rows, K, d)``
        intermediates stay small, so any number of inputs fits in memory.

        Example:
            >>> import torch
            >>> pot = MixturePotential(2, 4, eps=0.5, generator=torch.Generator().manual_seed(0))
            >>> pot.sample(torch.zeros(3, 2), per_point=2, generator=torch.Generator().manual_seed(1)).shape
            torch.Size([3, 2, 2])
        """
        x = self._check_x(x0, "x0")
        per = _check_count(per_point, "per_point")
        rows = max(1, _BLOCK_ELEMENTS // (max(per, self.n_components) * self.dim))
        return torch.cat([self._draw_block(x[s : s + rows], per, generator) for s in range(0, x.shape[0], rows)])

    @torch.no_grad()
    def sample_at(self, t, x0: Tensor, per_point: int = 1, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Exact samples of :math:`X_t \mid X_0 = x_0`: :math:`x_1` from :meth:`sample`, then the
        Brownian bridge of the reference, :math:`X_t \sim N((1-t)x_0 + t x_1,\ r t(1-t) I)`;
        ``t`` a number or ``(n,)`` in [0, 1]; ``(n, per_point, d)``.

        Example:
            >>> import torch
            >>> pot = MixturePotential(2, 4, eps=0.5, generator=torch.Generator().manual_seed(0))
            >>> x0 = torch.zeros(3, 2)
            >>> torch.equal(pot.sample_at(0.0, x0, per_point=2)[:, 0], x0)
            True
        """
        x = self._check_x(x0, "x0")
        tt = self._time(t, x)  # () or (n, 1, 1): broadcasts over (n, per_point, d)
        return brownian_bridge_point(tt, x, self.sample(x, per_point, generator=generator), self.r, generator)


def brownian_bridge_point(tt: Tensor, x0: Tensor, x1: Tensor, r: float, generator: torch.Generator | None) -> Tensor:
    r""":math:`X_t \sim N((1-t)x_0 + t x_1,\ r t(1-t) I)`, the reference's Brownian bridge from ``x0``
    ``(n, d)`` to each of its endpoints ``x1`` ``(n, per_point, d)``; ``tt`` a ``()`` or ``(n, 1, 1)``
    tensor (:meth:`MixturePotential._time`); ``(n, per_point, d)``."""
    z = torch.randn(x1.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return (1 - tt) * x0.unsqueeze(1) + tt * x1 + torch.sqrt(r * tt * (1 - tt)) * z
