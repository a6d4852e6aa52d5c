r"""The inner variable: the drift ``u(t, x)`` of ``dX = u dt + sqrt(2 eps) dW`` and its forms.

:func:`build_drift` makes one of the forms of docs/math.md §5 from small MLPs: the drift itself
(``"u"``), an endpoint predictor (``"endpoint"``, :class:`EndpointDrift`) or a velocity network and
a denoiser (``"b,eta"``, ``"v,eta"``, ``"w,eta"``, :class:`TwoNetDrift`), each optionally the
gradient of a scalar network (:class:`~bridge.models.GradientField`); or, with
``drift_family="mixture"``, the Schrödinger-potential mixture :class:`~bridge.sb.MixturePotential`
(docs/math.md §5.10), whose drift is in closed form.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..interpolants.base import Interpolant, bcast
from ..models import MLP, GradientField
from .auto import mixture_covariance
from .config import SBConfig
from .potential import MixturePotential

__all__ = ["EndpointDrift", "TwoNetDrift", "build_drift", "mixture_drift"]


class EndpointDrift(nn.Module):
    r"""``u(t, x) = (D(t, x) - x) / (1 - t)``: the drift through an endpoint predictor ``D``.

    For the Brownian-bridge interpolant the SB drift is exactly this with
    ``D = E[x_1 | x_t = x]`` (docs/math.md §5: ``(x_1 - x_t)/(1 - t)`` is the conditional drift), so the
    ``1/(1-t)`` stiffness near ``t = 1`` is analytic instead of learned. Any drift can be written
    this way (``D = x + (1-t) u``).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        # the solver trains on t <= 1 - t_min; a sampler's last stage may ask for t = 1
        return (self.net(t, x) - x) / (1.0 - t).clamp_min(1e-3).unsqueeze(-1)


class TwoNetDrift(nn.Module):
    r"""The two-network forms (docs/math.md §5): a velocity network and the denoiser ``eta_z = E[z | x_t]``
    learned apart, ``u = b_F = b + eps s`` with ``s = -eta_z / gamma`` (docs/math.md §2).

    The drift's regression target is ``d/dt I + c z`` with ``c = gamma_dot - eps / gamma``
    (docs/math.md §5). The velocity network learns ``E[d/dt I + kappa z | x_t]`` and
    ``u = velocity + (c - kappa) eta_z``, for one of three splits of ``c``:

    * ``"b"``: ``kappa = gamma_dot``: the velocity network is ``b`` (docs/math.md §2), ``u = b - eps eta_z / gamma``;
    * ``"v"``: ``kappa = 0``: it is ``v = E[d/dt I | x_t]``, and ``u = v + c eta_z``;
    * ``"w"``: ``kappa = c / 2``: each network carries half of ``c``.

    The denoiser's target ``z`` has unit variance at every ``t``; the ``z`` in the velocity's target
    and the factor ``c - kappa`` on ``eta_z`` both carry regression noise into ``u``. With
    ``gamma_0 = sqrt(2 eps t(1-t))``, ``c = (gamma gamma_dot - eps) / gamma = -2 eps t / gamma``:
    it vanishes like ``t^{1/2}`` at ``t = 0`` and blows up like ``(1-t)^{-1/2}`` at ``t = 1``,
    whereas ``gamma_dot`` blows up at both ends. Near either end the target's two noises are nearly
    independent (``Var(z | x_t) ~ 1``), so the noise reaching ``u`` is about
    ``kappa^2 + (c - kappa)^2``, smallest at ``kappa = c / 2``: ``"w"``. ``"b"`` is close to that
    at ``t -> 1`` (``gamma_dot ~ c / 2``) but adds ``2 gamma_dot^2 ~ eps / t`` at ``t -> 0``, where
    the drift becomes the difference of two large, noisy estimates; ``"v"`` is the reverse.
    The measured effect of the split is in benchmarks/README.md.

    The networks are evaluated at ``t`` clamped to ``[t_min, 1 - t_min]`` (``gamma`` vanishes at
    the ends). Call :meth:`bind` with the interpolant (for ``gamma``) and eps before use.
    """

    SPLITS = ("b", "v", "w")

    def __init__(self, b: nn.Module, eta: nn.Module, t_min: float, split: str = "b"):
        super().__init__()
        if split not in self.SPLITS:
            raise ValueError(f"split: expected one of {', '.join(self.SPLITS)}, got {split!r}")
        self.split = split
        setattr(self, split, b)  # a module: state-dict keys "b.*", "v.*" or "w.*" name what it learns
        self.eta = eta
        self.t_min = float(t_min)
        self._interp = None
        self.eps = None

    @property
    def first(self) -> nn.Module:
        """The velocity network (``b``, ``v`` or ``w``: ``split``)."""
        return getattr(self, self.split)

    def bind(self, interpolant: Interpolant, eps: float) -> TwoNetDrift:
        object.__setattr__(self, "_interp", interpolant)  # not a submodule: no duplicate parameters
        self.eps = float(eps)
        return self

    def _clamp(self, t: Tensor) -> Tensor:
        return t.clamp(self.t_min, 1.0 - self.t_min)

    def coefficients(self, t: Tensor) -> dict[str, Tensor]:
        """``gamma``, ``gamma_dot``, ``c = gamma_dot - eps / gamma`` and ``kappa`` at ``t`` (float64,
        detached: the networks are the inner variable, held fixed when the outer step moves gamma)."""
        it, t = self._interp, t.to(torch.float64)
        # a sampler's step passes one time for all rows: evaluate the curves once, then broadcast
        one = t.dim() == 1 and t.numel() > 1 and bool((t == t[0]).all())
        ts = t[:1] if one else t
        with torch.no_grad():
            g = it.gamma(ts)
            c = (it.gamma_gamma_dot(ts) - self.eps) / g  # finite where gamma > 0
            gd = c + self.eps / g
            kappa = {"b": gd, "v": torch.zeros_like(c), "w": 0.5 * c}[self.split]
        out = {"gamma": g, "gamma_dot": gd, "c": c, "kappa": kappa}
        return {k: v.expand(t.shape[0], *v.shape[1:]) for k, v in out.items()} if one else out

    def score(self, t: Tensor, x: Tensor) -> Tensor:
        """``s(t, x) = -eta_z(t, x) / gamma(t)``."""
        t = self._clamp(t)
        return -self.eta(t, x) / bcast(self.coefficients(t)["gamma"].to(x.dtype), x)

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """The interpolant's drift ``b(t, x)`` (the probability-flow ODE's velocity)."""
        t = self._clamp(t)
        if self.split == "b":
            return self.b(t, x)
        k = self.coefficients(t)
        return self.first(t, x) + bcast((k["gamma_dot"] - k["kappa"]).to(x.dtype), x) * self.eta(t, x)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        t = self._clamp(t)
        if self.split == "b":
            return self.b(t, x) + self.eps * self.score(t, x)
        k = self.coefficients(t)
        return self.first(t, x) + bcast((k["c"] - k["kappa"]).to(x.dtype), x) * self.eta(t, x)


def build_drift(
    cfg: SBConfig,
    d: int,
    generator: torch.Generator | None = None,
    *,
    x1: Tensor | None = None,
    eps: float | None = None,
) -> nn.Module:
    """The inner variable ``u(t, x)`` of ``cfg.drift_form``: an MLP with SiLU activations (smooth,
    for the SDE), used directly (``"u"``) or through :class:`EndpointDrift` or :class:`TwoNetDrift`.
    With ``cfg.gradient_drift is True`` each MLP is a scalar ``V`` and the field is ``grad_x V``
    (:class:`~bridge.models.GradientField`); the combinations the forms make of such fields are
    gradients as well (``x = grad |x|^2/2`` in the endpoint form, scalar coefficients in ``t``
    in the two-network forms). ``"auto"`` builds plain MLPs (it is resolved before the solver
    builds the drift it trains).

    With ``cfg.drift_family == "mixture"`` it is :func:`mixture_drift` (``eps`` required; ``x1``,
    the training targets, for the initial means); the network family ignores ``x1`` and ``eps``
    and draws from ``generator`` exactly what it drew before the mixture family existed.

    Example:
        >>> net = build_drift(SBConfig(hidden=8, depth=1, drift_form="u"), 2)
        >>> net(torch.rand(5), torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    if cfg.drift_family == "mixture":
        return mixture_drift(cfg, d, eps, x1, generator)

    def mlp():
        if cfg.gradient_drift is not True:
            return MLP(d, hidden=cfg.hidden, depth=cfg.depth, activation="silu", generator=generator)
        scalar = MLP(d, hidden=cfg.hidden, depth=cfg.depth, activation="silu", out_dim=1, generator=generator)
        return GradientField(scalar)

    net = mlp()
    if cfg.drift_form.endswith(",eta"):
        eta = mlp()
        return TwoNetDrift(net, eta, cfg.t_min, split=cfg.drift_form[0])
    return net if cfg.drift_form == "u" else EndpointDrift(net)


def mixture_drift(cfg: SBConfig, d: int, eps: float | None, x1: Tensor | None, generator=None) -> MixturePotential:
    """The mixture family's start (LightSB's): ``cfg.n_components`` means at distinct random rows of
    the training targets ``x1`` (with repeats when there are fewer rows; drawn from ``generator``),
    :math:`S_k = I`, uniform weights, ``cfg.mixture_covariance`` (``"auto"`` resolved by
    :func:`bridge.sb.auto.mixture_covariance`). Without ``x1`` the means are zeros
    and nothing is drawn: a drift that only holds weights loaded later (a moving average, a saved result).

    Example:
        >>> pot = mixture_drift(SBConfig(drift_family="mixture", n_components=3), 2, 0.5, torch.randn(10, 2))
        >>> pot(torch.rand(4), torch.randn(4, 2)).shape
        torch.Size([4, 2])
    """
    if eps is None:
        raise ValueError("eps: the mixture drift family needs the bridge's eps, got None")
    K = cfg.n_components
    if x1 is None:
        means = torch.zeros(K, d)
    else:
        n = x1.shape[0]
        idx = torch.randperm(n, generator=generator)[:K] if n >= K else torch.randint(0, n, (K,), generator=generator)
        means = x1.detach()[idx.to(x1.device)]
    return MixturePotential(d, K, eps, covariance=mixture_covariance(cfg, d)[0], means=means)
