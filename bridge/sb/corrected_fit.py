r"""Fitting the corrected potential :math:`v = v_{\mathrm{mix}} e^f` by LightSB's KL objective (docs/math.md §5.14).

LightSB's identity (docs/math.md §5.10) holds for any positive :math:`v`, not only mixtures:

.. math::
    \mathrm{KL}(\pi^\star \,\|\, \pi_v) = \mathbb E_{x_0 \sim \rho_0} \log c_v(x_0)
        - \mathbb E_{x_1 \sim \rho_1} \log v(x_1) + \text{const}.

:func:`fit_corrected` first fits the mixture alone (:func:`~bridge.sb.fit_lightsb`), then the
correction :math:`f` (and, with ``mixture_lr > 0``, the mixture with it) on this objective, with
:math:`\log c_v` estimated by :meth:`~bridge.sb.CorrectedPotential.log_c_estimate`.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..threads import DEFAULT_THREADS, torch_threads
from .corrected import CorrectedPotential, Correction
from .lightsb import LightSBResult, check_pair, fit_lightsb, minibatch_adam
from .potential import MixturePotential

__all__ = ["CorrectedResult", "corrected_loss", "fit_corrected"]


#: The estimates of :math:`\log c` that :func:`fit_corrected` can train on.
ESTIMATORS = ("bound", "log_mean")


def corrected_loss(
    potential: CorrectedPotential,
    x0: Tensor,
    x1: Tensor,
    draws: int = 16,
    *,
    normaliser: nn.Module | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The KL objective on one batch, a 0-d tensor (docs/math.md §5.14):

    .. math:: \frac1N\sum_i \widehat{\log c}(x_0^i) - \frac1M\sum_j \big[\log v_{\mathrm{mix}}(x_1^j) + f(x_1^j)\big],

    :math:`\widehat{\log c}` the upper bound :meth:`~bridge.sb.CorrectedPotential.log_c_bound` with
    :math:`a = ` ``normaliser(x0)`` (a module mapping ``(n, d)`` to ``(n,)``), or, without a
    normaliser, the log of the stratified mean
    (:meth:`~bridge.sb.CorrectedPotential.log_c_estimate`); ``draws`` per row.
    With :math:`f = 0` (and :math:`a = 0`) it equals :func:`~bridge.sb.lightsb_loss`.

    Example:
        >>> import torch
        >>> from bridge.sb import MixturePotential, lightsb_loss
        >>> mix = MixturePotential(2, 3, eps=0.5, generator=torch.Generator().manual_seed(0))
        >>> x0, x1 = torch.randn(8, 2), torch.randn(8, 2)
        >>> torch.allclose(corrected_loss(CorrectedPotential(mix), x0, x1), lightsb_loss(mix, x0, x1))
        True
    """
    if normaliser is None:
        log_c = potential.log_c_estimate(x0, draws, generator=generator)
    else:
        log_c = potential.log_c_bound(x0, normaliser(x0), draws, generator=generator)
    return log_c.mean() - potential.log_v(x1).mean()


@dataclass(eq=False)
class CorrectedResult:
    r"""A fitted :class:`~bridge.sb.CorrectedPotential` and how it was fitted.

    Attributes:
        potential: the fitted potential (mixture and correction).
        mixture_fit: the first stage, :func:`~bridge.sb.fit_lightsb`'s result (its potential is
            the start of ``potential.mixture``; with ``mixture_lr > 0`` they differ afterwards).
        steps: Adam steps of the second stage.
        stopped_by: ``"steps"`` or ``"time_budget"`` (second stage).
        train_s: wall-clock seconds of the second stage.
        history: ``{"step", "loss", "elapsed_s"}`` records of the second stage.
        settings: the options as used.
        proposals: the SIR proposals per draw that :meth:`sample` uses by default.
        normaliser: the learned :math:`a(x_0) \approx \log\mathbb E_{q_{\mathrm{mix}}} e^f` of the bound
            (``estimator="bound"``), else None.
    """

    potential: CorrectedPotential
    mixture_fit: LightSBResult | None
    steps: int
    stopped_by: str
    train_s: float
    history: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    proposals: int = 64
    normaliser: nn.Module | None = None

    def sample(
        self,
        x0: Tensor,
        per_point: int = 1,
        time: float | Tensor | None = None,
        *,
        proposals: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""Draws of :math:`x_1 \mid x_0` (``time=None``) or of :math:`X_t \mid x_0` (``time=t``) of the fitted
        plan, by sampling-importance-resampling (:meth:`~bridge.sb.CorrectedPotential.sample`),
        ``(n, per_point, d)``."""
        m = self.proposals if proposals is None else proposals
        if time is None:
            return self.potential.sample(x0, per_point, proposals=m, generator=generator)
        return self.potential.sample_at(time, x0, per_point, proposals=m, generator=generator)

    def effective_sample_size(self, x0: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """The SIR draws' effective sample size per row of ``x0`` (out of :attr:`proposals`), ``(n,)``."""
        draws = self.potential.importance_draws(x0, self.proposals, generator=generator)
        return draws.effective_sample_size()


def _check_options(opts: dict) -> None:
    for name in ("batch_size", "draws", "proposals", "hidden", "depth"):
        v = opts[name]
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    steps = opts["steps"]
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1):
        raise ValueError(f"steps: expected None or a positive int, got {steps!r}")
    for name, lo in (("time_budget", 0.0), ("lr", 0.0), ("mixture_lr", None)):
        v = opts[name]
        if v is None and name == "time_budget":
            continue
        bad = isinstance(v, bool) or not isinstance(v, numbers.Real) or not -math.inf < v < math.inf
        if bad or v < 0 or (lo is not None and v <= lo):
            raise ValueError(f"{name}: expected a finite number {'> 0' if lo is not None else '>= 0'}, got {v!r}")
    if steps is None and opts["time_budget"] is None:
        raise ValueError("steps, time_budget: expected at least one of them, got neither")
    if opts["estimator"] not in ESTIMATORS:
        raise ValueError(f"estimator: expected 'bound' or 'log_mean', got {opts['estimator']!r}")


def _first_stage(x0, x1, eps, mixture, mixture_options, generator, threads, say):
    """The mixture to correct and the first stage's result: ``mixture`` as given (and None), or
    :func:`fit_lightsb`'s fit."""
    if isinstance(mixture, LightSBResult):
        mixture = mixture.potential
    if isinstance(mixture, MixturePotential):
        if mixture.dim != x0.shape[1] or mixture.eps != eps:
            raise ValueError(
                f"mixture: expected a potential of dimension {x0.shape[1]} and eps {eps}, "
                f"got {mixture.dim} and {mixture.eps}"
            )
        return mixture, None
    if mixture is not None:
        raise TypeError(f"mixture: expected None, a MixturePotential or a LightSBResult, got {type(mixture).__name__}")
    opts = {"steps": 10_000} | dict(mixture_options or {})
    first = fit_lightsb(x0, x1, eps, generator=generator, threads=threads, progress=say, **opts)
    return first.potential, first


def fit_corrected(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    mixture: MixturePotential | LightSBResult | None = None,
    mixture_options: dict | None = None,
    steps: int | None = 5_000,
    time_budget: float | None = None,
    lr: float = 1e-3,
    mixture_lr: float = 0.0,
    batch_size: int = 256,
    draws: int = 16,
    estimator: str = "bound",
    proposals: int = 64,
    hidden: int = 64,
    depth: int = 2,
    generator: torch.Generator | None = None,
    threads: int | None = DEFAULT_THREADS,
    progress: Callable[[str], None] | None = None,
) -> CorrectedResult:
    r"""Fit the SB between ``x0 ~ rho0`` and ``x1 ~ rho1`` with the potential :math:`v = v_{\mathrm{mix}} e^f`
    (docs/math.md §5.14):

    .. math::
        \min_{f\,(,\,v_{\mathrm{mix}})}\ \mathbb E_{x_0} \widehat{\log c}(x_0)
            - \mathbb E_{x_1}\big[\log v_{\mathrm{mix}}(x_1) + f(x_1)\big]

    in two stages: the mixture alone (:func:`~bridge.sb.fit_lightsb`, with ``mixture_options``,
    default 10000 steps), unless ``mixture`` is given; then Adam on minibatches of
    ``batch_size`` rows per side for the correction (learning rate ``lr``) and, when
    ``mixture_lr > 0``, the mixture's parameters with it (``0``: the mixture stays frozen), both
    decayed along a cosine over ``steps`` or ``time_budget``.

    Args:
        x0, x1: ``(n0, d)``, ``(n1, d)`` finite samples of the two marginals (unpaired).
        eps: the paper's eps.
        mixture: a fitted :class:`~bridge.sb.MixturePotential` or
            :class:`~bridge.sb.LightSBResult` to start from (copied, never changed), or None.
        mixture_options: :func:`~bridge.sb.fit_lightsb` options of the first stage.
        steps, time_budget: of the second stage (the first limit reached ends it).
        lr, mixture_lr: Adam's initial rates of the correction and of the mixture.
        batch_size: rows per side per step.
        draws: draws of :math:`q_{\mathrm{mix}}(\cdot \mid x_0)` per row in the estimate of :math:`\log c`,
            stratified over the components (:meth:`~bridge.sb.CorrectedPotential.log_mean_exp_f`).
        estimator: ``"bound"``: train on the upper bound of
            :meth:`~bridge.sb.CorrectedPotential.log_c_bound` with :math:`a(x_0)` a second network
            trained with :math:`f` (an unbiased estimate of an upper bound of the objective);
            ``"log_mean"``: on the log of the stratified Monte Carlo mean, which is biased low and can
            let :math:`f` grow spikes that the draws miss (docs/math.md §5.14).
        proposals: SIR proposals per draw of the result's :meth:`~CorrectedResult.sample`.
        hidden, depth: of the correction's MLP (:class:`~bridge.sb.Correction`).
        generator: randomness of both stages (a CPU generator).
        threads: torch CPU threads during the fit (None: leave torch's setting).
        progress: where the progress lines go (default stderr).

    Returns:
        :class:`CorrectedResult`.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x0, x1 = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g) + 2
        >>> res = fit_corrected(x0, x1, 0.5, mixture_options={"n_components": 2, "steps": 20}, steps=20,
        ...                     generator=g, progress=lambda m: None)
        >>> res.steps, res.sample(x0[:3], per_point=2).shape
        (20, torch.Size([3, 2, 2]))
    """
    eps = check_pair(x0, x1, eps)
    opts = dict(steps=steps, time_budget=time_budget, lr=lr, mixture_lr=mixture_lr, batch_size=batch_size)
    opts |= dict(draws=draws, estimator=estimator, proposals=proposals, hidden=hidden, depth=depth)
    _check_options(opts)
    say = progress if progress is not None else (lambda m: print(m, file=sys.stderr, flush=True))
    x1 = x1.to(x0)
    with torch_threads(threads):
        start, first = _first_stage(x0, x1, eps, mixture, mixture_options, generator, threads, say)
        mix = MixturePotential.from_components(
            start.log_weights().exp().detach(), start.means.detach(), _covs(start), eps
        ).to(dtype=x0.dtype, device=x0.device)
        corr = Correction(x0.shape[1], hidden=hidden, depth=depth, generator=generator)
        pot = CorrectedPotential(mix, corr.to(dtype=x0.dtype, device=x0.device))
        res = _train(pot, x0, x1, opts | {"eps": eps}, generator, say)
        res.mixture_fit = first
        return res


def _covs(mix: MixturePotential) -> Tensor:
    """:math:`S_k` in the form :meth:`MixturePotential.from_components` takes: ``(K, d)`` or ``(K, d, d)``."""
    if mix.covariance == "diagonal":
        return torch.exp(mix.raw_cov).detach()
    return mix.cov_matrix().detach()


def _train(pot: CorrectedPotential, x0: Tensor, x1: Tensor, opts: dict, gen, say) -> CorrectedResult:
    """The second stage's Adam loop until the steps or the time budget run out."""
    norm = None
    if opts["estimator"] == "bound":
        norm = Correction(x0.shape[1], hidden=opts["hidden"], depth=opts["depth"], generator=gen)
        norm = norm.to(dtype=x0.dtype, device=x0.device)
    params = list(pot.correction.parameters()) + (list(norm.parameters()) if norm is not None else [])
    groups = [{"params": params, "lr": opts["lr"], "base": opts["lr"]}]
    frozen = opts["mixture_lr"] == 0
    pot.mixture.requires_grad_(not frozen)
    if not frozen:
        groups.append({"params": list(pot.mixture.parameters()), "lr": opts["mixture_lr"], "base": opts["mixture_lr"]})
    opt = torch.optim.Adam(groups)

    def loss_of(a, b):
        return corrected_loss(pot, a, b, opts["draws"], normaliser=norm, generator=gen)

    step, stopped_by, history, train_s = minibatch_adam(opt, loss_of, x0, x1, opts, gen, say, "corrected")
    pot.eval()
    return CorrectedResult(pot, None, step, stopped_by, train_s, history, opts, opts["proposals"], norm)
