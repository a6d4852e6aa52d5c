r"""A Schrödinger potential that can do more than a mixture: a mixture times a learned factor (docs/math.md §5.14).

With :math:`r = 2\epsilon`, every SB plan is :math:`\pi(x_1 \mid x_0) \propto e^{\langle x_0, x_1\rangle/r} v(x_1)`
for an adjusted potential :math:`v` (docs/math.md §5.10). :class:`~bridge.sb.MixturePotential` takes
:math:`v` a Gaussian mixture :math:`v_{\mathrm{mix}}`; this module multiplies it by a positive factor,

.. math::
    v(y) = v_{\mathrm{mix}}(y)\, e^{f(y)},

with :math:`f` a scalar network (:class:`Correction`, last layer zero at the start, so that
:math:`v = v_{\mathrm{mix}}`). With :math:`q_{\mathrm{mix}}(\cdot \mid x_0)` the mixture's exact conditional,

* the conditional is the tilt :math:`\pi(x_1 \mid x_0) \propto q_{\mathrm{mix}}(x_1 \mid x_0)\, e^{f(x_1)}`,
  sampled by sampling-importance-resampling from ``proposals`` draws of :math:`q_{\mathrm{mix}}`
  (:meth:`CorrectedPotential.sample`; biased by :math:`O(1/M)`, docs/math.md §5.14);
* the normaliser is :math:`\log c(x_0) = \log c_{\mathrm{mix}}(x_0) + \log \mathbb E_{y \sim
  q_{\mathrm{mix}}(\cdot\mid x_0)} e^{f(y)}`, the second term estimated by Monte Carlo stratified over
  the mixture's components (:meth:`CorrectedPotential.log_c_estimate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..models import MLP
from ..reference.sb_mixture import _check_count
from .potential import MixturePotential, brownian_bridge_point

__all__ = ["Correction", "CorrectedPotential", "ImportanceDraws"]

#: :meth:`CorrectedPotential.sample` works on row blocks whose ``(rows, per_point, proposals, d)``
#: proposals stay under this many elements (16 MiB in float32).
_BLOCK_ELEMENTS = 2**22


class Correction(nn.Module):
    r"""A scalar network :math:`f: \mathbb R^d \to \mathbb R`, ``f(y)`` of shape ``(n,)``, that starts at 0.

    An :class:`~bridge.models.MLP` without time input (it is evaluated at ``t = 0``) whose last
    layer's weights and bias are zero, so that :math:`f \equiv 0` until trained.

    Args:
        dim: ``d``.
        hidden, depth, activation: of the MLP.
        generator: draws the hidden layers' initial weights.

    Example:
        >>> import torch
        >>> f = Correction(2, hidden=16, generator=torch.Generator().manual_seed(0))
        >>> f(torch.randn(3, 2)).tolist()
        [0.0, 0.0, 0.0]
    """

    def __init__(
        self,
        dim: int,
        *,
        hidden: int = 64,
        depth: int = 2,
        activation: str = "silu",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.net = MLP(dim, hidden=hidden, depth=depth, activation=activation, frequencies=0, out_dim=1,
                       generator=generator)  # fmt: skip
        last = self.net.net[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()

    def forward(self, y: Tensor) -> Tensor:
        return self.net(y.new_zeros(()), y).squeeze(-1)


@dataclass(eq=False)
class ImportanceDraws:
    r"""Weighted draws of the tilted law :math:`q_{\mathrm{mix}}(\cdot\mid x_i)\,e^{f}`: ``M`` proposals per row.

    Attributes:
        proposals: ``(n, M, d)`` draws of :math:`q_{\mathrm{mix}}(\cdot \mid x_i)`.
        log_weights: :math:`f` at the proposals, ``(n, M)`` (unnormalised).
    """

    proposals: Tensor
    log_weights: Tensor

    def effective_sample_size(self) -> Tensor:
        r"""Kish's :math:`(\sum_j w_j)^2 / \sum_j w_j^2` per row, ``(n,)``, between 1 and ``M``."""
        lw = self.log_weights
        return torch.exp(2.0 * torch.logsumexp(lw, -1) - torch.logsumexp(2.0 * lw, -1))


class CorrectedPotential(nn.Module):
    r"""The SB plan :math:`\pi(x_1 \mid x_0) \propto e^{\langle x_0, x_1\rangle/r} v_{\mathrm{mix}}(x_1) e^{f(x_1)}`
    (docs/math.md §5.14).

    Args:
        mixture: the Gaussian-mixture potential :math:`v_{\mathrm{mix}}` (e.g. fitted by
            :func:`~bridge.sb.fit_lightsb`); held as a submodule, so its parameters train too
            unless frozen.
        correction: :math:`f`, a module mapping ``(n, d)`` to ``(n,)``; default a
            :class:`Correction` (zero at the start), drawn from ``generator``.
        generator: draws the default correction's weights.

    Example:
        >>> import torch
        >>> from bridge.sb import MixturePotential
        >>> mix = MixturePotential(2, 3, eps=0.5, generator=torch.Generator().manual_seed(0))
        >>> pot = CorrectedPotential(mix)
        >>> x0 = torch.zeros(4, 2)
        >>> torch.equal(pot.log_v(x0), mix.log_v(x0)), pot.sample(x0, per_point=5).shape
        (True, torch.Size([4, 5, 2]))
    """

    def __init__(
        self,
        mixture: MixturePotential,
        correction: nn.Module | None = None,
        *,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if not isinstance(mixture, MixturePotential):
            raise TypeError(f"mixture: expected a MixturePotential, got {type(mixture).__name__}")
        if correction is not None and not isinstance(correction, nn.Module):
            raise TypeError(
                f"correction: expected an nn.Module mapping (n, d) to (n,), got {type(correction).__name__}"
            )
        self.mixture = mixture
        self.correction = correction if correction is not None else Correction(mixture.dim, generator=generator)
        p = next(iter(mixture.parameters()))
        self.correction.to(dtype=p.dtype, device=p.device)

    @property
    def dim(self) -> int:
        return self.mixture.dim

    @property
    def eps(self) -> float:
        return self.mixture.eps

    @property
    def r(self) -> float:
        """The reference variance rate ``2 eps``."""
        return self.mixture.r

    def f(self, y: Tensor) -> Tensor:
        r"""The correction :math:`f(y)`, ``(n,)``."""
        out = self.correction(self.mixture._check_x(y, "y"))
        if out.shape != y.shape[:1]:
            raise ValueError(f"correction: expected an output of shape ({y.shape[0]},), got {tuple(out.shape)}")
        return out

    def log_v(self, y: Tensor) -> Tensor:
        r""":math:`\log v(y) = \log v_{\mathrm{mix}}(y) + f(y)`, ``(n,)``."""
        return self.mixture.log_v(y) + self.f(y)

    def log_mean_exp_f(self, x0: Tensor, draws: int = 16, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Stratified estimate of :math:`\log Z(x_0)`, ``(n,)``,
        :math:`Z(x_0) = \mathbb E_{y \sim q_{\mathrm{mix}}(\cdot\mid x_0)} e^{f(y)}`:

        .. math::
            \log \frac1M \sum_{j=1}^M e^{f(y_j)}, \qquad
            y_j = \mu_{k_j} + S_{k_j} x_0 + \sqrt r\, \mathrm{chol}(S_{k_j})\, \xi_j,\ \ \xi_j \sim N(0, I),

        with ``M = draws`` components :math:`k_j` chosen by systematic sampling from the
        conditional's weights :math:`w_k(x_0)` (one uniform offset :math:`U` per row,
        :math:`k_j = F^{-1}((j - 1 + U)/M)`): every component gets :math:`\lfloor M w_k\rfloor` or
        :math:`\lceil M w_k\rceil` draws, so the choice of components adds almost no variance, and
        the cost is ``M`` evaluations of :math:`f` per row whatever ``K``. The mean inside the log is
        unbiased for :math:`Z`; the log of it is biased low by about :math:`\mathrm{Var}/(2Z^2)`
        (docs/math.md §5.14). The draws are reparameterised, and the weights enter through
        :math:`w_{k_j} / \mathrm{sg}(w_{k_j})` (1 in value), so gradients reach every mixture parameter.
        """
        fy = self._stratified_f(x0, draws, generator)
        return torch.logsumexp(fy, dim=-1) - math.log(fy.shape[-1])

    def _stratified_f(self, x0: Tensor, draws: int, generator) -> Tensor:
        r""":math:`f(y_j) + \log w_{k_j} - \mathrm{sg}(\log w_{k_j})` ``(n, M)`` at the ``M`` systematic draws
        :math:`y_j` of :math:`q_{\mathrm{mix}}(\cdot \mid x_0)` (:meth:`log_mean_exp_f`)."""
        x = self.mixture._check_x(x0, "x0")
        M = _check_count(draws, "draws")
        cond = self.mixture.conditional(x)
        (n, K, d) = cond.means.shape
        offset = torch.rand(n, 1, generator=generator, dtype=x.dtype, device=x.device)
        u = (torch.arange(M, dtype=x.dtype, device=x.device) + offset) / M
        cdf = torch.cumsum(cond.log_weights.detach().exp(), dim=-1)
        comp = torch.searchsorted(cdf, u).clamp_(max=K - 1)  # (n, M)
        means = torch.gather(cond.means, 1, comp.unsqueeze(-1).expand(n, M, d))
        xi = torch.randn(n, M, d, generator=generator, dtype=x.dtype, device=x.device)
        if self.mixture.covariance == "diagonal":  # scale_tril is diagonal: no (n, M, d, d) gather
            y = means + cond.scale_tril.diagonal(dim1=-2, dim2=-1)[comp] * xi
        else:
            y = means + torch.einsum("nmef,nmf->nme", cond.scale_tril[comp], xi)
        log_w = torch.gather(cond.log_weights, 1, comp)
        return self.f(y.reshape(-1, d)).view(n, M) + log_w - log_w.detach()

    def log_c_estimate(self, x0: Tensor, draws: int = 16, *, generator: torch.Generator | None = None) -> Tensor:
        r""":math:`\log c(x_0) = \log c_{\mathrm{mix}}(x_0) + \log\mathbb E_{q_{\mathrm{mix}}(\cdot\mid x_0)} e^{f}`,
        ``(n,)``, the second term by :meth:`log_mean_exp_f` (a Monte Carlo estimate, biased low;
        exact when :math:`f` is constant)."""
        return self.mixture.log_c(x0) + self.log_mean_exp_f(x0, draws, generator=generator)

    def log_c_bound(
        self, x0: Tensor, a: Tensor, draws: int = 16, *, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""An unbiased estimate of an upper bound of :math:`\log c(x_0)`, ``(n,)``, for any ``a`` ``(n,)``:

        .. math::
            \log c(x_0) \le \log c_{\mathrm{mix}}(x_0) + a - 1
                + e^{-a}\,\mathbb E_{q_{\mathrm{mix}}(\cdot\mid x_0)} e^{f},

        from :math:`\log z \le z e^{-a} + a - 1` (equality at :math:`a = \log z`), with the
        expectation by the stratified mean of :meth:`log_mean_exp_f` (``draws`` per row), unbiased. Unlike the log of a
        Monte Carlo mean, minimising it over :math:`f` cannot profit from the estimator's bias
        (docs/math.md §5.14); ``a`` should not depend on the draws (e.g. a network of ``x0``).

        Example:
            >>> import torch
            >>> from bridge.sb import MixturePotential
            >>> pot = CorrectedPotential(MixturePotential(2, 3, eps=0.5, generator=torch.Generator().manual_seed(0)))
            >>> x0 = torch.randn(4, 2)
            >>> torch.allclose(pot.log_c_bound(x0, torch.zeros(4)), pot.mixture.log_c(x0))  # f = 0, a = 0: tight
            True
        """
        fy = self._stratified_f(x0, draws, generator)
        if not isinstance(a, Tensor) or a.shape != fy.shape[:1]:
            raise ValueError(f"a: expected a tensor of shape ({fy.shape[0]},), got {getattr(a, 'shape', a)!r}")
        mean = torch.exp(fy - a.view(-1, 1)).mean(dim=-1)
        return self.mixture.log_c(x0) + a - 1.0 + mean

    @torch.no_grad()
    def importance_draws(self, x0: Tensor, proposals: int = 64, *, generator: torch.Generator | None = None):
        r""":class:`ImportanceDraws`: ``proposals`` exact draws of :math:`q_{\mathrm{mix}}(\cdot\mid x_0)` per row
        and their log-weights :math:`f`; its ``effective_sample_size()`` says how far the tilt moves
        the law (``proposals`` when :math:`f` is flat on them)."""
        x = self.mixture._check_x(x0, "x0")
        M = _check_count(proposals, "proposals")
        y = self.mixture.sample(x, M, generator=generator)
        return ImportanceDraws(y, self.f(y.reshape(-1, self.dim)).view(x.shape[0], M))

    def _sir_block(self, x: Tensor, per: int, M: int, generator) -> Tensor:
        """``per`` independent SIR draws per row of ``x``, each from its own ``M`` proposals: ``(n, per, d)``."""
        n, d = x.shape
        rows = x.repeat_interleave(per, dim=0)  # (n per, d)
        draws = self.importance_draws(rows, M, generator=generator)
        pick = torch.multinomial(torch.softmax(draws.log_weights, -1), 1, generator=generator)  # (n per, 1)
        y = torch.gather(draws.proposals, 1, pick.unsqueeze(-1).expand(-1, 1, d))
        return y.view(n, per, d)

    @torch.no_grad()
    def sample(
        self, x0: Tensor, per_point: int = 1, *, proposals: int = 64, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""Draws of :math:`x_1 \mid x_0 \propto q_{\mathrm{mix}}(x_1\mid x_0)\,e^{f(x_1)}` by
        sampling-importance-resampling, ``(n, per_point, d)``.

        Each of the ``per_point`` draws of a row is independent: ``proposals`` fresh draws
        :math:`y_j` of :math:`q_{\mathrm{mix}}(\cdot\mid x_0)`, then one of them with probability
        :math:`\propto e^{f(y_j)}`. The draws' law tends to the tilted conditional as ``proposals``
        grows (bias :math:`O(1/M)`, docs/math.md §5.14); with :math:`f` constant it is exact.
        ``per_point * proposals`` evaluations of :math:`f` per row, in row blocks.

        Example:
            >>> import torch
            >>> from bridge.sb import MixturePotential
            >>> pot = CorrectedPotential(MixturePotential(2, 3, eps=0.5, generator=torch.Generator().manual_seed(0)))
            >>> pot.sample(torch.zeros(3, 2), per_point=2, proposals=8).shape
            torch.Size([3, 2, 2])
        """
        x = self.mixture._check_x(x0, "x0")
        per = _check_count(per_point, "per_point")
        M = _check_count(proposals, "proposals")
        rows = max(1, _BLOCK_ELEMENTS // (per * M * max(self.dim, self.mixture.n_components)))
        return torch.cat([self._sir_block(x[s : s + rows], per, M, generator) for s in range(0, x.shape[0], rows)])

    @torch.no_grad()
    def sample_at(
        self, t, x0: Tensor, per_point: int = 1, *, proposals: int = 64, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""Draws of :math:`X_t \mid X_0 = x_0`: :math:`x_1` from :meth:`sample`, then the reference's Brownian
        bridge :math:`N((1-t)x_0 + t x_1,\ r t(1-t) I)`; ``t`` a number or ``(n,)`` in [0, 1];
        ``(n, per_point, d)``.

        Example:
            >>> import torch
            >>> from bridge.sb import MixturePotential
            >>> pot = CorrectedPotential(MixturePotential(2, 3, eps=0.5, generator=torch.Generator().manual_seed(0)))
            >>> x0 = torch.zeros(3, 2)
            >>> torch.equal(pot.sample_at(0.0, x0, per_point=2, proposals=4)[:, 0], x0)
            True
        """
        x = self.mixture._check_x(x0, "x0")
        tt = self.mixture._time(t, x)
        x1 = self.sample(x, per_point, proposals=proposals, generator=generator)
        return brownian_bridge_point(tt, x, x1, self.r, generator)
