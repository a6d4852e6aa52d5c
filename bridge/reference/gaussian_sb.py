r"""Closed-form entropic OT and Schrödinger bridge between two Gaussians (docs/math.md §7).

For :math:`\rho_0 = N(a, A)`, :math:`\rho_1 = N(b, B)` and the paper's ``eps`` (reference
:math:`\sqrt{2\epsilon}\,W`, variance rate :math:`r = 2\epsilon`), the SB of docs/math.md §5 solves

.. math::
    \min_{\pi \in \Pi(\rho_0, \rho_1)} \int |x - y|^2\,d\pi + 2r\,\mathrm{KL}(\pi \,|\, \rho_0\otimes\rho_1)
    \iff
    \min_u \int_0^1 \mathbb E|u(t, X_t)|^2 dt,\ \ dX = u\,dt + \sqrt r\,dW,\ X_0\sim\rho_0,\ X_1\sim\rho_1,

and everything is Gaussian (Janati et al. 2020, Thm. 1 with :math:`\sigma^2 = r`; Bunne et al.
2023, Thm. 3):

.. math::
    D = (4 A^{1/2} B A^{1/2} + r^2 I)^{1/2}, \qquad
    C = \tfrac12 (A^{1/2} D A^{-1/2} - r I), \qquad
    \pi = N\Big(\begin{pmatrix} a \\ b\end{pmatrix}, \begin{pmatrix} A & C \\ C^\top & B\end{pmatrix}\Big).

Derived quantities (all implemented as methods of :class:`GaussianSB`):

* conditional :math:`y | x \sim N(b + C^\top A^{-1}(x - a),\ r A^{-1} C)`; the covariance equals the
  Schur complement :math:`B - C^\top A^{-1} C` because the plan's precision has off-diagonal block
  :math:`-I/r` (the density is :math:`\propto e^{\varphi(x) + \psi(y) + x^\top y / r}`);
* SB marginal (a mixture of Brownian bridges :math:`N((1-t)x_0 + t x_1, r t(1-t) I)`):
  :math:`\mu_t = (1-t)a + tb`,
  :math:`\Sigma_t = (1-t)^2 A + t^2 B + t(1-t)(C + C^\top) + r t(1-t) I`;
* SB drift :math:`u(t, x) = (b - a) + K_t (x - \mu_t)`,
  :math:`K_t = [tB - (1-t)A + (1-t)C^\top - tC - rtI]\,\Sigma_t^{-1}`
  (from :math:`u = \mathbb E[(X_1 - x)/(1-t) \mid X_t = x]`, the bridge drift averaged over the plan);
* score :math:`s = -\Sigma_t^{-1}(x - \mu_t)` and probability-flow velocity :math:`b = u - \epsilon s`;
* costs: :math:`\mathbb E_\pi|x-y|^2 = |a-b|^2 + \operatorname{tr}A + \operatorname{tr}B - 2\operatorname{tr}C`,
  the mutual information :math:`\mathrm{KL}(\pi|\rho_0\otimes\rho_1) = \tfrac12[\log\det B - \log\det(rA^{-1}C)]`,
  the EOT value (POT's objective at ``reg = 4 eps``) and the kinetic energy

  .. math::
      \int_0^1 \mathbb E|u|^2 dt = 2r\,\mathrm{KL}(P_{SB}\|W^r)
      = \mathbb E_\pi|x - y|^2 - r d - r \log\det(A^{-1}C),

  from :math:`\mathrm{KL}(P_{SB}\|W^r) = \mathrm{KL}(\pi \,|\, \rho_0(x) N(y; x, rI))` (the bridges
  agree) and the Gaussian entropies. As :math:`r \to 0` it tends to :math:`W_2^2` (Benamou–Brenier).

Example:
    >>> sb = gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0)
    >>> round(sb.C.item(), 6) == round((5 ** 0.5 - 1) / 2, 6)
    True
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..conventions import check_eps, resolve_eps
from .mixture import GaussianMixture, gaussian

__all__ = ["GaussianSB", "gaussian_sb"]


def _sym_fn(m: Tensor, fn) -> Tensor:
    """``fn`` applied to the eigenvalues of the symmetric matrix ``m``."""
    evals, evecs = torch.linalg.eigh((m + m.mT) / 2)
    return (evecs * fn(evals)) @ evecs.mT


def _time(t, x: Tensor) -> Tensor:
    """``t`` (number, 0-d or ``(n,)`` tensor) as a ``(n, 1, 1)`` or ``()`` tensor in x's dtype/device."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        return t
    if t.shape != (x.shape[0],):
        raise ValueError(f"t: expected a number or shape ({x.shape[0]},) to match x, got {tuple(t.shape)}")
    return t.view(-1, 1, 1)


@dataclass(eq=False)
class GaussianSB:
    r"""The entropic OT plan / Schrödinger bridge between :math:`N(a, A)` and :math:`N(b, B)` (docs/math.md §7).

    Build it with :func:`gaussian_sb`. All tensors share the dtype and device of the inputs;
    methods taking ``x`` evaluate in its dtype and device.

    Attributes:
        a, A: source mean ``(d,)`` and covariance ``(d, d)``.
        b, B: target mean and covariance.
        eps: the paper's eps; ``r = 2 eps`` is the reference variance rate.
        D: :math:`(4 A^{1/2} B A^{1/2} + r^2 I)^{1/2}`, ``(d, d)``.
        C: the cross-covariance :math:`\mathrm{Cov}(x_0, x_1) = \tfrac12(A^{1/2} D A^{-1/2} - rI)`.

    Example:
        >>> import torch
        >>> sb = gaussian_sb([0.0, 0.0], [1.0, 2.0], [1.0, -1.0], [[2.0, 0.5], [0.5, 1.0]], eps=0.5)
        >>> sb.plan_cov().shape, sb.drift(0.5, torch.zeros(3, 2, dtype=torch.float64)).shape
        (torch.Size([4, 4]), torch.Size([3, 2]))
    """

    a: Tensor
    A: Tensor
    b: Tensor
    B: Tensor
    eps: float
    D: Tensor = field(init=False)
    C: Tensor = field(init=False)

    def __post_init__(self):
        self.eps = check_eps(self.eps)
        d = self.a.shape[0] if self.a.dim() == 1 else -1
        if d < 1 or self.b.shape != (d,) or self.A.shape != (d, d) or self.B.shape != (d, d):
            raise ValueError(
                f"a, A, b, B: expected shapes (d,), (d, d), (d,), (d, d), got {tuple(self.a.shape)}, "
                f"{tuple(self.A.shape)}, {tuple(self.b.shape)}, {tuple(self.B.shape)}; use gaussian_sb() to build one"
            )
        r = self.r
        d = self.dim
        eye = torch.eye(d, dtype=self.A.dtype, device=self.A.device)
        A_half = _sym_fn(self.A, torch.sqrt)
        A_mhalf = _sym_fn(self.A, torch.rsqrt)
        self.D = _sym_fn(4.0 * A_half @ self.B @ A_half + r * r * eye, torch.sqrt)
        self.C = 0.5 * (A_half @ self.D @ A_mhalf - r * eye)
        self._A_mhalf = A_mhalf

    # -- basic -----------------------------------------------------------------------------
    @property
    def r(self) -> float:
        """Reference variance rate ``2 eps``."""
        return 2.0 * self.eps

    @property
    def dim(self) -> int:
        """Dimension ``d``."""
        return self.a.shape[0]

    def _eye(self) -> Tensor:
        return torch.eye(self.dim, dtype=self.A.dtype, device=self.A.device)

    # -- the static plan -------------------------------------------------------------------
    def plan_mean(self) -> Tensor:
        """Mean ``(a, b)`` of the plan, shape ``(2d,)``."""
        return torch.cat([self.a, self.b])

    def plan_cov(self) -> Tensor:
        r"""Covariance :math:`\begin{pmatrix} A & C \\ C^\top & B \end{pmatrix}` of the plan, ``(2d, 2d)``.

        Example:
            >>> gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).plan_cov()
            tensor([[1.0000, 0.6180],
                    [0.6180, 1.0000]], dtype=torch.float64)
        """
        top = torch.cat([self.A, self.C], dim=1)
        bottom = torch.cat([self.C.mT, self.B], dim=1)
        return torch.cat([top, bottom], dim=0)

    def conditional_mean(self, x: Tensor) -> Tensor:
        r""":math:`\mathbb E[x_1 | x_0 = x] = b + C^\top A^{-1}(x - a)` (the barycentric map), ``(n, d)``.

        Example:
            >>> import torch
            >>> sb = gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0)
            >>> sb.conditional_mean(torch.ones(1, 1, dtype=torch.float64))
            tensor([[0.6180]], dtype=torch.float64)
        """
        x = self._check_x(x)
        gain = torch.linalg.solve(self.A.to(x), self.C.to(x))  # A^{-1} C
        return self.b.to(x) + (x - self.a.to(x)) @ gain

    def conditional_cov(self) -> Tensor:
        r""":math:`\mathrm{Cov}[x_1 | x_0] = r A^{-1} C`, symmetric, ``(d, d)``.

        Computed as :math:`\tfrac r2 (A^{-1/2} D A^{-1/2} - r A^{-1})`, which is symmetric by
        construction and keeps full relative precision for small ``r`` (the Schur complement
        :math:`B - C^\top A^{-1} C` is the same matrix, with a cancellation when ``r`` is small).

        Example:
            >>> gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).conditional_cov()  # (sqrt 5 - 1)/2
            tensor([[0.6180]], dtype=torch.float64)
        """
        r = self.r
        inner = self._A_mhalf @ self.D @ self._A_mhalf - r * torch.linalg.inv(self.A)
        out = 0.5 * r * inner
        return (out + out.mT) / 2

    # -- sampling --------------------------------------------------------------------------
    def sample_plan(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` pairs ``(x0, x1)`` from the plan, each ``(n, d)``.

        Example:
            >>> sb = gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0)
            >>> x0, x1 = sb.sample_plan(4, generator=torch.Generator().manual_seed(0))
            >>> x0.shape, x1.shape
            (torch.Size([4, 1]), torch.Size([4, 1]))
        """
        _check_n(n)
        L = torch.linalg.cholesky(self.plan_cov())
        xi = torch.randn(n, 2 * self.dim, generator=generator, dtype=self.A.dtype, device=self.A.device)
        z = self.plan_mean() + xi @ L.mT
        return z[:, : self.dim], z[:, self.dim :]

    def sample_conditional(self, x: Tensor, k: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``k`` samples of ``x1 | x0 = x`` for each row of ``x``: shape ``(n, k, d)``.

        Example:
            >>> sb = gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0)
            >>> sb.sample_conditional(torch.zeros(2, 1, dtype=torch.float64), 5).shape
            torch.Size([2, 5, 1])
        """
        x = self._check_x(x)
        _check_n(k, "k")
        L = torch.linalg.cholesky(self.conditional_cov()).to(x)
        xi = torch.randn(x.shape[0], k, self.dim, generator=generator, dtype=x.dtype, device=x.device)
        return self.conditional_mean(x).unsqueeze(1) + xi @ L.mT

    def sample_marginal(self, t: float, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        r"""``n`` samples of the SB marginal at time ``t``, by the Brownian-bridge construction
        :math:`X_t = (1-t)x_0 + t x_1 + \sqrt{r t(1-t)}\,z`, :math:`(x_0, x_1) \sim \pi`.

        Example:
            >>> gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).sample_marginal(0.5, 3).shape
            torch.Size([3, 1])
        """
        t = _check_t(t)
        x0, x1 = self.sample_plan(n, generator=generator)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        return (1 - t) * x0 + t * x1 + math.sqrt(self.r * t * (1 - t)) * z

    # -- the dynamic bridge ----------------------------------------------------------------
    def marginal_mean(self, t) -> Tensor:
        r""":math:`\mu_t = (1-t) a + t b`; ``t`` a number (``(d,)``) or ``(n,)`` tensor (``(n, d)``).

        Example:
            >>> gaussian_sb(0.0, 1.0, 2.0, 1.0, r=1.0).marginal_mean(0.25)
            tensor([0.5000], dtype=torch.float64)
        """
        t = torch.as_tensor(t, dtype=self.a.dtype, device=self.a.device)
        tt = t.unsqueeze(-1) if t.dim() == 1 else t
        return (1 - tt) * self.a + tt * self.b

    def marginal_cov(self, t) -> Tensor:
        r""":math:`\Sigma_t = (1-t)^2 A + t^2 B + t(1-t)(C + C^\top) + r t(1-t) I`; ``(d, d)`` or ``(n, d, d)``.

        Example:
            >>> gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).marginal_cov(0.5)  # (1 + 1 + 2C + 1)/4
            tensor([[1.0590]], dtype=torch.float64)
        """
        t = torch.as_tensor(t, dtype=self.A.dtype, device=self.A.device)
        tt = t.view(-1, 1, 1) if t.dim() == 1 else t
        return (1 - tt) ** 2 * self.A + tt**2 * self.B + tt * (1 - tt) * (self.C + self.C.mT + self.r * self._eye())

    def _gain(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``K_t`` and ``Sigma_t`` for ``t`` of shape ``()`` or ``(n, 1, 1)``."""
        A, B, C = self.A, self.B, self.C
        num = t * B - (1 - t) * A + (1 - t) * C.mT - t * C - self.r * t * self._eye()
        sigma = (1 - t) ** 2 * A + t**2 * B + t * (1 - t) * (C + C.mT + self.r * self._eye())
        # K = num Sigma^{-1}  <=>  K^T = Sigma^{-1} num^T (Sigma symmetric)
        K = torch.linalg.solve(sigma, num.mT).mT
        return K, sigma

    def drift(self, t, x: Tensor) -> Tensor:
        r"""SB drift :math:`u(t, x) = (b - a) + K_t (x - \mu_t)` (docs/math.md §7), ``(n, d)``.

        The forward SDE :math:`dX = u\,dt + \sqrt{2\epsilon}\,dW` from :math:`X_0 \sim N(a, A)`
        has marginals :math:`N(\mu_t, \Sigma_t)` and :math:`(X_0, X_1) \sim \pi`. Its signature
        is the samplers' ``drift(t, x)``: ``t`` a number or a ``(n,)`` tensor, ``t`` in ``[0, 1]``.

        Example:
            >>> import torch
            >>> sb = gaussian_sb(0.0, 1.0, 2.0, 1.0, r=1.0)
            >>> sb.drift(torch.zeros(1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
            tensor([[2.]], dtype=torch.float64)
        """
        x = self._check_x(x)
        tt = _time(t, x)
        K, _ = self._gain(tt.to(self.A))
        mu = (1 - tt.squeeze(-1)) * self.a.to(x) + tt.squeeze(-1) * self.b.to(x)
        diff = (x - mu).unsqueeze(-1)
        return (self.b - self.a).to(x) + (K.to(x) @ diff).squeeze(-1)

    def score(self, t, x: Tensor) -> Tensor:
        r"""Score of the SB marginal, :math:`\nabla \log \rho_t(x) = -\Sigma_t^{-1}(x - \mu_t)`, ``(n, d)``.

        Example:
            >>> import torch
            >>> gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).score(0.0, torch.ones(1, 1, dtype=torch.float64))
            tensor([[-1.]], dtype=torch.float64)
        """
        x = self._check_x(x)
        tt = _time(t, x)
        _, sigma = self._gain(tt.to(self.A))
        mu = (1 - tt.squeeze(-1)) * self.a.to(x) + tt.squeeze(-1) * self.b.to(x)
        diff = (x - mu).unsqueeze(-1)
        sigma = sigma.to(x).expand(x.shape[0], self.dim, self.dim)
        return -torch.linalg.solve(sigma, diff).squeeze(-1)

    def velocity(self, t, x: Tensor) -> Tensor:
        r"""Probability-flow velocity :math:`b = u - \epsilon s` of the SB marginals (SI 2.33): the ODE
        :math:`\dot X = b(t, X)` from :math:`\rho_0` has the same marginals as the SB, ``(n, d)``.

        Example:
            >>> import torch
            >>> gaussian_sb(0.0, 1.0, 2.0, 1.0, r=1.0).velocity(0.5, torch.ones(1, 1, dtype=torch.float64))
            tensor([[2.]], dtype=torch.float64)
        """
        return self.drift(t, x) - self.eps * self.score(t, x)

    # -- costs -----------------------------------------------------------------------------
    def transport_cost(self) -> float:
        r"""The plan's transport cost :math:`\mathbb E_\pi|x_0 - x_1|^2
        = |a - b|^2 + \operatorname{tr} A + \operatorname{tr} B - 2 \operatorname{tr} C`.

        Example:
            >>> round(gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).transport_cost(), 6)  # 3 - sqrt 5
            0.763932
        """
        return float(
            ((self.a - self.b) ** 2).sum() + torch.trace(self.A) + torch.trace(self.B) - 2 * torch.trace(self.C)
        )

    def _logdet_AinvC(self) -> float:
        # A^{-1} C = 1/2 (A^{-1/2} D A^{-1/2} - r A^{-1}) is symmetric positive definite
        m = self.conditional_cov() / self.r
        return float(torch.linalg.slogdet(m)[1])

    def mutual_information(self) -> float:
        r""":math:`\mathrm{KL}(\pi \,|\, \rho_0 \otimes \rho_1) = \tfrac12[\log\det B - \log\det(r A^{-1} C)]`.

        Example:
            >>> round(gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).mutual_information(), 6)  # -log(1 - C^2)/2
            0.240606
        """
        return 0.5 * (float(torch.linalg.slogdet(self.B)[1]) - self.dim * math.log(self.r) - self._logdet_AinvC())

    def entropic_ot_value(self) -> float:
        r"""The EOT value in POT's convention at ``reg = 4 eps = 2r``:
        :math:`\mathbb E_\pi|x-y|^2 + 2r\,\mathrm{KL}(\pi\,|\,\rho_0\otimes\rho_1)`; geomloss's
        (cost :math:`|x-y|^2/2`, ``blur = sqrt(2 eps)``, ``debias=False``) is half of it.

        Example:
            >>> round(gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).entropic_ot_value(), 6)
            1.245144
        """
        return self.transport_cost() + 2.0 * self.r * self.mutual_information()

    def kl_to_reference(self) -> float:
        r""":math:`\mathrm{KL}(P_{SB} \,\|\, W^r) = \mathbb E_\pi|x-y|^2/(2r) - d/2 - \tfrac12\log\det(A^{-1}C)`,
        the reference :math:`\sqrt r\,W` started from :math:`\rho_0`.

        Example:
            >>> round(gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).kl_to_reference(), 6)
            0.122572
        """
        return self.transport_cost() / (2.0 * self.r) - 0.5 * self.dim - 0.5 * self._logdet_AinvC()

    def kinetic_energy(self) -> float:
        r""":math:`\int_0^1 \mathbb E|u(t, X_t)|^2 dt = 2r\,\mathrm{KL}(P_{SB}\|W^r)
        = \mathbb E_\pi|x-y|^2 - r d - r\log\det(A^{-1}C)` (docs/math.md §5.9 (d) with :math:`4\epsilon = 2r`).

        Example:
            >>> round(gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0).kinetic_energy(), 6)
            0.245144
        """
        return 2.0 * self.r * self.kl_to_reference()

    # -- helpers ---------------------------------------------------------------------------
    def _check_x(self, x) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise TypeError(f"x: expected a floating-point tensor of shape (n, {self.dim}), got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (n, {self.dim}), got {tuple(x.shape)}")
        return x


def _check_n(n, name: str = "n") -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name}: expected a positive int, got {n!r}")


def _check_t(t) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"t: expected a number in [0, 1], got {t!r}")
    return float(t)


def _parse_gaussian(mean, cov, name_m: str, name_c: str, like: Tensor | None) -> GaussianMixture:
    """``N(mean, cov)`` via :func:`~bridge.reference.gaussian`, with errors naming our arguments."""
    if isinstance(mean, numbers.Real) and not isinstance(mean, bool):
        mean = [float(mean)]
    if like is not None and isinstance(mean, Tensor) and mean.is_floating_point():
        mean = mean.to(like)
    try:
        return gaussian(mean, cov)
    except (TypeError, ValueError) as err:
        msg = str(err)
        for old, new in (("mean:", f"{name_m}:"), ("covs:", f"{name_c}:"), ("cov:", f"{name_c}:")):
            if msg.startswith(old):
                msg = new + msg[len(old) :]
                break
        raise type(err)(msg) from None


def gaussian_sb(mean0, cov0, mean1, cov1, *, eps=None, r=None) -> GaussianSB:
    r"""The Gaussian entropic OT plan / SB between :math:`N(a, A)` and :math:`N(b, B)` (docs/math.md §7).

    Args:
        mean0, cov0: source mean ``a`` and covariance ``A``. A mean is a number (``d = 1``) or a
            ``(d,)`` tensor/array; a covariance is a number (``c I``), a ``(d,)`` diagonal or a
            ``(d, d)`` symmetric positive definite matrix (as :func:`~bridge.reference.gaussian`).
        mean1, cov1: target mean ``b`` and covariance ``B``.
        eps: the paper's eps (diffusion :math:`\sqrt{2\epsilon}\,dW`), or
        r: the reference variance rate ``2 eps`` of docs/math.md §7 (give exactly one).

    Returns:
        :class:`GaussianSB`, in the dtype of ``mean0`` if it is a floating tensor, else float64.

    Raises:
        ValueError: mismatched dimensions, a covariance that is not SPD, or a bad eps/r.

    Example:
        >>> sb = gaussian_sb(0.0, 1.0, 0.0, 1.0, r=1.0)  # 1-D sanity value of docs/math.md §7
        >>> sb.C
        tensor([[0.6180]], dtype=torch.float64)
    """
    e = resolve_eps(eps=eps, r=r)
    g0 = _parse_gaussian(mean0, cov0, "mean0", "cov0", None)
    g1 = _parse_gaussian(mean1, cov1, "mean1", "cov1", g0.means)
    if g1.dim != g0.dim:
        raise ValueError(f"mean1: dimension {g1.dim} does not match the source dimension {g0.dim}")
    m0 = g0.means[0]
    dt, dev = m0.dtype, m0.device
    return GaussianSB(
        a=m0,
        A=g0.covs[0],
        b=g1.means[0].to(dtype=dt, device=dev),
        B=g1.covs[0].to(dtype=dt, device=dev),
        eps=e,
    )
