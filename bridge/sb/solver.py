r"""The Schrödinger bridge by max–min over learned interpolants (SPEC §5, SI 3.39).

.. math::
    \max_{\hat I}\ \min_{\hat u}\ \mathbb{E}\Big[\tfrac12|\hat u(t,\hat x_t)|^2
        - \big(\partial_t \hat I + (\dot\gamma - \epsilon/\gamma) z\big)\cdot \hat u(t,\hat x_t)\Big],
    \qquad \hat x_t = \hat I(t,x_0,x_1) + \gamma(t) z,

with ``x0, x1, z`` independent and ``t ~ U[t_min, 1 - t_min]``. For a fixed interpolant the inner
minimiser is ``u = b_F = b + eps s`` and the inner value is ``-1/2 int E|b_F|^2``; the outer max
therefore minimises the kinetic energy over the interpolant family, and at the optimum ``u`` is
the SB drift of ``dX = u dt + sqrt(2 eps) dW`` (SI Thm 3.10).

The loss is evaluated with antithetic pairs (SPEC §5): the ``(gamma_dot - eps/gamma) z`` term is
odd in ``z`` and multiplies ``u(x+) - u(x-) = O(gamma)``, so its variance stays bounded.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from ..interpolants.base import Interpolant, bcast
from ..interpolants.learnable import FourierInterpolant, NeuralInterpolant
from ..interpolants.schedules import BrownianGamma
from ..losses import quadratic_loss, sample_times
from ..models import MLP, GradientField
from ..train import ema_update

__all__ = ["CheckpointMismatchError", "SBConfig", "build_drift", "build_interpolant", "sb_objective", "solve_bridge"]


def sb_objective(
    u: Callable[[Tensor, Tensor], Tensor],
    interp: Interpolant,
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    t: Tensor,
    z: Tensor,
) -> Tensor:
    r"""Per-sample max–min objective (SI 3.39) with antithetic pairs, shape ``(n,)``.

    .. math:: \tfrac12|u(t,x_t)|^2 - (\partial_t I + (\dot\gamma - \epsilon/\gamma) z)\cdot u(t,x_t)

    Example:
        >>> import torch
        >>> from bridge.interpolants import Linear
        >>> x = torch.randn(8, 1)
        >>> sb_objective(lambda t, y: -y, Linear(), x, x + 1, 0.5, t=torch.full((8,), 0.5),
        ...              z=torch.randn(8, 1)).shape
        torch.Size([8])
    """
    return _objective(u, interp.sample(t, x0, x1, z), eps)


def _objective(u, s, eps: float) -> Tensor:
    # even part d/dt I; odd part (gamma_dot - eps / gamma) z, flipped at the antithetic point
    return quadratic_loss(u, s, s.drift_even, s.drift_odd - eps / s.noise_scale * s.noise, antithetic=True)


@dataclass
class SBConfig:
    """Settings of :func:`solve_bridge` (all have defaults that work on small problems).

    The defaults come from measurements on the mixture benchmark (d = 16, r = 1, 90 s of training
    on one CPU thread, cBW2-UVP on 200 x 200 test samples, floor 0.80%; ``python
    benchmarks/sb.py --problems mix16-r1 --budget 90 --test-points 200 --per-point 200``):
    ``u``-form with a 64x2 MLP, batch 1024, 3 inner steps: 5.8%; the same with a 128x3 MLP:
    2.2% after 1500 outer steps; 128x3, batch 256, 10 inner steps, lr 2e-3: 3.1%; the same in the
    two-network form (``"b,eta"``): 1.9%. The outer steps change little with the Sinkhorn
    coupling (5.8% with them, 6.3% without, 64x2), which starts at the empirical SB; they matter
    with ``coupling="independent"``.

    Attributes:
        outer_steps: outer (ascent) steps on the interpolant.
        holdout: fraction of each side's samples held out for validation (0: none). The held-out
            points get pairs from the same coupling as training (resolved by ``"auto"``), drawn
            once with their times and noise. Every ``val_every`` outer steps the inner loss of
            the returned (averaged) drift on them is compared with that of the best state so
            far, both under the current interpolant, and the better one is kept. The result is
            the last state unless the best state beats it by more than ``VAL_NOISE_Z`` = 2
            standard errors of the difference (then the best state's drift and interpolant);
            ``BridgeResult.validation`` has the curve and ``returned_step``.
            Under one interpolant ``I`` the inner loss is ``1/2 E|u - u*_I|^2`` plus a term of
            ``I`` alone, so the comparison ranks drifts by their distance to the held-out
            conditional drift ``u*_I``: a drift that fits the training points' atoms loses it.
            The loss values of different steps are not comparable (the outer loop raises that
            term). Measured (README, "Early stopping"): after 900 s it took the mixture
            benchmark at d = 16, r = 0.1 from 10.95% to 5.97% cBW2-UVP (best state: step 1250
            of 3627); at 300 s, on six benchmark problems, it found nothing worth undoing and
            the held-out tenth of the data cost up to 0.03 points, hence off by default.
        val_size: validation pairs (each with its antithetic partner).
        val_every: outer steps between validation evaluations (and one at the end).
        patience: with ``holdout``, stop after this many evaluations without a new best
            (``stopped_by == "early_stop"``; None: train to the budget).
        inner_steps: inner (descent) steps on ``u`` per outer step (SPEC §5: K).
        warmup_steps: inner steps before the first outer step.
        batch_size: Monte-Carlo batch per step (times two with the antithetic partner).
        lr_inner, lr_outer: Adam learning rates, cosine-decayed to 5% over the budget.
        hidden, depth: the MLP for ``u``.
        interpolant: the outer variable (:func:`build_interpolant`): ``"fourier"``, spatially
            linear with learnable Fourier coefficients (:class:`~bridge.interpolants.FourierInterpolant`),
            or ``"neural"``, ``(1-t) x0 + t x1 + t(1-t) N_phi(t, x0, x1)``
            (:class:`~bridge.interpolants.NeuralInterpolant`, an MLP of ``neural_hidden`` x
            ``neural_depth``), which can bend paths the spatially linear family cannot.
        n_modes: Fourier modes of the interpolant's coefficients (and of the gamma factor).
        diagonal: per-dimension Fourier coefficients (needed for non-commuting covariances;
            ``"fourier"`` only).
        learn_gamma: learn a factor ``exp(sum c_k sin(k pi t))`` on ``gamma_0 = sqrt(2 eps t(1-t))``.
        neural_hidden, neural_depth: size of ``N_phi`` for ``interpolant="neural"``.
        t_min: times are drawn from ``[t_min, 1 - t_min]`` (the ``eps/gamma`` term).
        time_budget: wall-clock cap in seconds (None: none). Longer is not always better: on
            10000 samples per side the solver overfits them (on the mixture benchmark at d = 16,
            r = 0.1: cBW2-UVP 4.8% / 6.0% / 10.9% after 100 / 300 / 900 s, 3.0% after 300 s on
            50000 samples; README, "Hard problems"). ``holdout`` turns on early stopping.
        log_every: progress line every this many outer steps (0: silent).
        seed: seeds the networks' initialisation and every Monte-Carlo draw.
        drift_form: ``"u"``: the MLP is ``u``; ``"endpoint"``: ``u = (D - x)/(1 - t)`` with the
            MLP as ``D`` (:class:`EndpointDrift`), inner loss weighted by ``(1-t)^2``; the
            two-network forms (:class:`TwoNetDrift`; also give ``b`` and the score): a velocity
            network and the denoiser ``eta_z``, split as ``"b,eta"`` (``u = b - eps eta_z / gamma``),
            ``"v,eta"`` or ``"w,eta"`` (default: the velocity carries half of ``u``'s noise
            coefficient, the split with the least regression noise at both ends). Measured on
            the Gaussian d = 2 benchmark problem (120 s; ``benchmarks/sb_diagnose.py --problem
            gauss2 --budget 120 --parts learned --steps 100 --test-points 200 --per-point 200
            --cov-points 20000``, ``--bridge-set`` for the variants): the mean squared error
            against the exact SB drift along the exact marginals is 0.0089 with ``"b,eta"``
            and 0.0066 with ``"w,eta"``, the cross-covariance error against the exact drift on
            the same Brownian increments 1.56% and 1.20%; on mix16-r1 (120 s, 200 x 200, floor
            0.80%, ``coupling="sinkhorn"``): cBW2-UVP 1.60% and 1.33%.
        gradient_drift: each drift network is the ``x``-gradient of a scalar network
            (:class:`~bridge.models.GradientField`): True, False, or ``"auto"`` (default): True
            when the coupling is (or ``"auto"`` resolves to) ``"independent"``, False with
            plans, where the path starts at the plan's SB and the measured gain was mixed (see
            below). The resolved value is in ``BridgeResult.config``. The SB drift is a
            gradient, ``2 eps grad log phi_t`` with the forward Schrödinger potential, so this
            excludes nothing at the saddle point. Under any other interpolant the inner
            minimiser becomes the ``L^2(rho_t)`` projection of ``b_F`` onto gradients. The
            projection has the same marginals, because the remainder ``w`` has
            ``div(rho_t w) = 0``. It stirs mass along the marginals, which moves the coupling
            but not ``rho_t``. Of all drifts with these marginals, the gradient one has the
            least kinetic energy. So the inner value is minus half the action of the
            interpolant's marginal path, and the outer max minimises that action: the dynamic
            form of the SB. What is removed is the stirring that a non-SB interpolant's ``b_F``
            carries into the coupling, e.g. the linear interpolant's with independent
            ``x0, x1``. The price is a double backward per step: about 1.5x the time per outer
            step and 1.8x per SDE step. Measured with ``benchmarks/sb.py ... --bridge-set
            gradient_drift=true`` against the same run without (README, "Hard problems"),
            cBW2-UVP, 300 s unless noted: mixture d = 16, r = 0.1 (independent coupling,
            500 x 500 test samples) 5.90% -> 3.09%; d = 64, r = 0.1 (independent, 200 x 200)
            8.44% -> 6.25%; d = 16, r = 1 (minibatch plans, 120 s, 200 x 200, floor 0.80%)
            1.27% -> 0.97%; d = 2, r = 0.1 (minibatch plans, 200 x 200, floor 0.088%)
            0.162% -> 0.171%, with 482 outer steps against 729.
        ema: decay of an exponential moving average of the drift's weights over the inner steps
            (warmed up as ``min(ema, (1+k)/(10+k))``); the result's drift is the average (None:
            the last iterate). The same gauss2 runs: 0.0080 and 2.67% without, 0.0066 and 1.20%
            with.
        threads: torch intra-op threads while solving (restored afterwards; None: leave torch's
            setting). The default 1 is deliberate: the solver's tensors are small (a batch of a
            few thousand rows through a small MLP), and on a busy 2-core machine torch's
            default 2 threads made one outer step ~10x slower (41 ms -> ~400 ms at d = 16)
            because the threads wait for each other.
        coupling: how ``(x0, x1)`` pairs are drawn (SPEC §5, "Couplings"): ``"independent"``
            (the paper's max–min); ``"minibatch"``: for every batch, a fresh entropic plan at the
            same eps between ``batch_size`` random training points of each side
            (:func:`bridge.ot.minibatch_log_plan`) and for each drawn ``x0`` a partner from its
            row (SF2M's coupling, Tong et al. 2024); ``"sinkhorn"``: from ``plan_count`` fixed
            entropic plans between ``plan_size`` training points of each side (annealed log-domain
            Sinkhorn, :func:`bridge.ot.entropic_potentials`). With an entropic plan, the linear
            interpolant and ``gamma = sqrt(2 eps t(1-t))`` (the default's starting point) the path
            *is* the SB of that plan; the outer loop then only has to remove its finite-sample
            bias. The drift learned from fixed plans is biased: on the same gauss2 runs its
            cross-covariance error against the exact drift is 2.65%, from minibatch plans 1.20%,
            from 10000 pairs of the exact plan 1.11%. A minibatch plan costs a Sinkhorn solve per
            batch, which is slow at small eps: on mix2-r0.1 (eps = 0.05, 300 s) the fixed plans
            were better (cBW2-UVP 0.084% against 0.134%).
            ``"auto"`` (default): ``"minibatch"``, unless the rows of a first plan between
            ``plan_size`` points of each side put their mass on fewer than
            ``AUTO_MIN_ROW_ESS = 10`` target points (median effective sample size
            ``1 / sum_j pi(y_j | x_i)^2``); then a plan is a finite-sample matching, not the
            bridge's plan, and ``"independent"`` is used (logged, and recorded in
            ``BridgeResult.coupling``). Measured on the mixture benchmark at d = 16, r = 0.1
            (eps = 0.05, 300 s, ``benchmarks/sb.py`` / ``benchmarks/sb_diagnose.py``): the 2048-point
            plan's median row ESS is about 2 and its out-of-sample conditional means are 34% off
            (cBW2-UVP of POT's plan 32%); with it the solver reached 14.3% cBW2-UVP, with the
            independent coupling 6.0%, and with pairs from the exact plan 5.4%. With 1024-point
            plans, mix64-r0.1 has a median row ESS of 1.2 (switched as well), the other
            benchmark problems 16-1000 (mixtures at d = 2 for r = 0.1, 1, 10 and at d = 16, 64
            for r = 1, 10; Gaussians d = 5, 10).
            ``"paired"``: row ``i`` of ``x0`` and of ``x1`` is a pair, e.g. draws from a known
            plan (the benchmark's oracle coupling, which isolates the plan's finite-sample bias)
            or aligned data; the max–min then learns the interpolant between those pairs.
        plan_size: training points per side in the Sinkhorn coupling and in ``"auto"``'s first
            plan (the plan costs ``plan_size^2`` memory and time).
        plan_count: at most this many independent plans on disjoint subsets of ``plan_size``
            points per side (as many as the data fill), so that the coupling sees up to
            ``plan_count * plan_size`` training points. Measured on the Gaussian d = 5 benchmark
            problem (10000 points per side, 60 s): one plan 0.935% cBW2-UVP and 3.9%
            cross-covariance error, four plans 0.672% and 3.0% (floor 0.556% and 2.65%; SF2M
            0.680% and 3.7%), although the four plans took 32 s of the 60.
        plan_tol: accepted L1 marginal error of those plans (ten times more stops the solve).
        minibatch_tol: the same for the minibatch plans. Looser, because a minibatch plan is
            only sampled from, once per row, and its error against the bridge's plan is the
            minibatch's sampling error: a marginal error of 1e-2 moves at most 0.5% of a
            partner's probability. On mix2-r0.1 (eps = 0.05, 256 points per side) 1e-2 halves
            the Sinkhorn passes of 1e-3 (40 against 81; each plan also starts warm from the
            previous one's potential, :func:`bridge.ot.minibatch_log_plan`).
        refine_rounds: rounds of *coupling refinement* after the max–min (0: none). Each round
            draws ``refine_pairs`` pairs ``(x0, x1)``: ``x0`` from the training samples (with
            replacement) and ``x1`` from the learned SDE started there (``refine_sde_steps``
            end-grid Heun steps). Then it resets the interpolant to the one the solve started
            from (the Brownian bridge of the reference process, for the default families) and
            continues training on those pairs (the ``"paired"`` coupling), with a new warm-up
            and learning-rate schedule. This is one step of iterative Markovian fitting (Shi et
            al. 2023, "Diffusion Schrödinger bridge matching"; Peluchetti 2023): the drift
            learned on Brownian bridges between the pairs of a coupling is its Markovian
            projection, whose coupling is closer to the SB's, and the SB is its fixed point. It
            lifts the limit of the independent coupling, where a spatially linear interpolant
            between independent ``x0, x1`` cannot reach the bridge's marginal path, so the
            max–min's coupling is not the bridge's. On the mixture benchmark at d = 16, r = 0.1
            (eps = 0.05, 200 x 200 test samples, floor 0.244%), a drift trained for 300 s on
            10^6 pairs of the exact plan reached 0.51% cBW2-UVP and the max–min 3.2-3.4%. At the
            issue's sizes (300 s in all, 10000 samples per side, 500 x 500, floor 0.098%) one
            round took it from 3.15% to 1.04%, two rounds gave 1.12% (README, "Hard
            problems"). ``"auto"`` (default): 1 with the independent coupling, 0 with plans,
            whose path already starts at their SB.
        refine_share: share of the budget (``time_budget`` or ``outer_steps``, whichever ends
            first) that the rounds get, split evenly between them; the max–min gets the rest.
            The time to draw the pairs counts against the round's share.
        refine_pairs: pairs drawn per round (their ``x1`` cost ``refine_sde_steps`` drift
            evaluations each).
        refine_sde_steps: SDE steps per refinement pair.
    """

    outer_steps: int = 1000
    inner_steps: int = 10
    warmup_steps: int = 100
    batch_size: int = 256
    lr_inner: float = 2e-3
    lr_outer: float = 1e-3
    hidden: int = 128
    depth: int = 3
    interpolant: str = "fourier"
    n_modes: int = 6
    diagonal: bool = True
    learn_gamma: bool = True
    t_min: float = 1e-3
    time_budget: float | None = None
    log_every: int = 200
    seed: int = 0
    threads: int | None = 1
    drift_form: str = "w,eta"
    coupling: str = "auto"
    plan_size: int = 2048
    plan_count: int = 4
    plan_tol: float = 1e-3
    minibatch_tol: float = 1e-2
    neural_hidden: int = 64
    neural_depth: int = 2
    ema: float | None = 0.999
    holdout: float = 0.0
    val_size: int = 8192
    val_every: int = 50
    patience: int | None = None
    gradient_drift: bool | str = "auto"
    refine_rounds: int | str = "auto"
    refine_share: float = 0.5
    refine_pairs: int = 100_000
    refine_sde_steps: int = 25


COUPLINGS = ("auto", "minibatch", "sinkhorn", "independent", "paired")
INTERPOLANTS = ("fourier", "neural")


class CheckpointMismatchError(ValueError):
    """``resume=True`` found a checkpoint of another problem (data, eps or solver settings)."""


def _data_digest(x0: Tensor, x1: Tensor) -> str:
    h = hashlib.sha256()
    for x in (x0, x1):
        h.update(str((tuple(x.shape), str(x.dtype))).encode())
        h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


PLAN_BUDGET_SHARE = 0.25  # with a time budget, stop adding plans once they would take more than this share
#: ``coupling="auto"`` keeps the Sinkhorn plans only if the first plan's rows spread over at least this
#: many target points (median of ``1 / sum_j pi(y_j | x_i)^2``); see :class:`SBConfig`.
AUTO_MIN_ROW_ESS = 10.0
#: ``gradient_drift="auto"`` draws the gradient drift's initial weights from ``seed + GRADIENT_SEED_OFFSET``
GRADIENT_SEED_OFFSET = 104729


def _pair_sampler(x0: Tensor, x1: Tensor, eps: float, cfg: SBConfig, gen: torch.Generator, say):
    """``draw(n) -> (x0, x1)`` pairs from the configured coupling, and a record of how.

    With ``cfg.time_budget`` set, plans after the first are only built while the plans so far,
    plus one more at their average cost, stay within ``PLAN_BUDGET_SHARE`` of the budget (the
    plan time counts against the budget), so that training keeps most of it."""
    if cfg.coupling == "independent":
        draw0, draw1 = _sampler(x0, "x0"), _sampler(x1, "x1")
        return (lambda n: (draw0(n, gen), draw1(n, gen))), {"coupling": "independent"}
    if cfg.coupling == "paired":
        if x0.shape[0] != x1.shape[0]:
            raise ValueError(
                f"coupling='paired' takes row i of x0 and x1 as a pair: expected as many rows, got {x0.shape[0]} "
                f"and {x1.shape[0]}"
            )

        return _PairedRows({"x0": x0, "x1": x1}, gen), {"coupling": "paired"}
    if cfg.coupling == "minibatch":
        info = {
            "coupling": "minibatch",
            "minibatch_size": cfg.batch_size,
            "plan_solver": "bridge.ot.minibatch_log_plan",
            "plan_tol": cfg.minibatch_tol,
            "warm_start": True,
        }
        if not (isinstance(cfg.minibatch_tol, (int, float)) and 0 < cfg.minibatch_tol < 1):
            raise ValueError(f"minibatch_tol: expected a number in (0, 1), got {cfg.minibatch_tol!r}")
        return _MinibatchPairs(x0, x1, eps, cfg.minibatch_tol, gen), info
    from ..ot import ConvergenceError, entropic_potentials

    t0 = time.perf_counter()
    count = cfg.plan_count
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"plan_count: expected an int >= 1, got {count!r}")
    count = max(1, min(count, min(x0.shape[0], x1.shape[0]) // cfg.plan_size))  # only as many as the data fill
    k0 = min(cfg.plan_size, x0.shape[0] // count)
    k1 = min(cfg.plan_size, x1.shape[0] // count)
    if min(k0, k1) < 2:
        raise ValueError(f"plan_count: {count} plans leave fewer than 2 points per plan; lower it")
    perm0 = torch.randperm(x0.shape[0], generator=gen).to(x0.device)
    perm1 = torch.randperm(x1.shape[0], generator=gen).to(x1.device)
    As, Bs, cdfs, errs, iters = [], [], [], [], []
    budget, limited = cfg.time_budget, False
    ess = None
    for k in range(count):  # disjoint subsets: together they use count * plan_size points per side
        spent = time.perf_counter() - t0
        if k > 0 and budget is not None and spent * (k + 1) / k > PLAN_BUDGET_SHARE * budget:
            limited = True
            break
        a = x0[perm0[k * k0 : (k + 1) * k0]]
        b = x1[perm1[k * k1 : (k + 1) * k1]]
        # a sampler needs the plan's rows, not a certificate: 1e-3 of the mass misplaced is far below
        # the finite-sample bias; a plan that is grossly off stops the solve (never a silent fallback)
        pots = entropic_potentials(a, b, eps, start="anneal", tol=cfg.plan_tol, max_iter=300, check=False)
        if not pots.marginal_error <= 10 * cfg.plan_tol:
            raise ConvergenceError(
                f"Sinkhorn coupling: marginal error {pots.marginal_error:.3g} after {pots.n_iter} sweeps at "
                f"eps = {eps:g}; use a smaller plan_size or coupling='independent'"
            )
        # row i of the plan, normalised: pi(y_j | x_i); sampled by inverting its CDF
        rows = pots.log_conditional(a).softmax(dim=1)
        if k == 0:
            ess = float((1.0 / rows.pow(2).sum(dim=1)).median())
            if cfg.coupling == "auto":
                return _auto_choice(x0, x1, eps, ess, k0, k1, time.perf_counter() - t0, gen, say, cfg)
        cdfs.append(_row_cdf(rows).to(torch.float32 if a.dtype != torch.float64 else torch.float64))
        As.append(a)
        Bs.append(b)
        errs.append(pots.marginal_error)
        iters.append(pots.n_iter)
    a, b, cdf = torch.stack(As), torch.stack(Bs), torch.stack(cdfs)
    count = len(As)
    info = {
        "coupling": "sinkhorn",
        "requested": cfg.coupling,
        "plan_size": [k0, k1],
        "plan_count": count,
        "plan_count_limited_by_time_budget": limited,
        "plan_solver": f"bridge.ot.entropic_potentials(start={pots.solver!r})",
        "plan_marginal_error": max(errs),
        "plan_row_ess_median": ess,
        "plan_iterations": max(iters),
        "plan_wall_s": round(time.perf_counter() - t0, 3),
    }
    say(
        f"[solve] Sinkhorn coupling: {count} plan(s) on {k0} x {k1} points, marginal error <= {max(errs):.1e}, "
        f"{info['plan_wall_s']:.1f}s"
        + (f" (fewer plans: they would take > {PLAN_BUDGET_SHARE:.0%} of the time budget)" if limited else "")
    )
    if budget is not None and info["plan_wall_s"] >= budget:
        warnings.warn(
            f"solve_bridge: the Sinkhorn coupling took {info['plan_wall_s']:.3g}s, the whole time budget of "
            f"{budget:g}s: no training step will run; raise time_budget or lower plan_size",
            RuntimeWarning,
            stacklevel=3,
        )

    return _PlanPairs(a, b, cdf, gen), info


def _auto_choice(x0, x1, eps, ess, k0, k1, wall_s, gen, say, cfg):
    """``coupling="auto"``: the first plan's median row ESS decides. Rows that spread over at least
    ``AUTO_MIN_ROW_ESS`` targets resolve the conditional law: fresh minibatch plans
    (``"minibatch"``). Rows on (nearly) single target points make the plan a finite-sample matching
    rather than draws from the bridge's plan: the independent coupling, the paper's max-min."""
    if ess < AUTO_MIN_ROW_ESS:
        choice = "independent"
        reason = f"median row effective sample size {ess:.3g} of a Sinkhorn plan < {AUTO_MIN_ROW_ESS}"
        say(
            f"[solve] Sinkhorn plan on {k0} x {k1} points at eps = {eps:g}: a row's mass sits on {ess:.1f} target "
            f"points (median effective sample size < {AUTO_MIN_ROW_ESS}), too few to resolve the conditional law; "
            "using the independent coupling (the paper's max-min) instead"
        )
    else:
        choice = "minibatch"
        reason = f"median row effective sample size {ess:.3g} of a Sinkhorn plan >= {AUTO_MIN_ROW_ESS}"
        say(
            f"[solve] Sinkhorn plan on {k0} x {k1} points at eps = {eps:g}: a row's mass spreads over {ess:.1f} "
            f"target points; using fresh minibatch plans of {cfg.batch_size} x {cfg.batch_size} points"
        )
    draw, info = _pair_sampler(x0, x1, eps, replace(cfg, coupling=choice), gen, say)
    info = info | {
        "requested": "auto",
        "plan_size": [k0, k1],
        "plan_row_ess_median": ess,
        "plan_wall_s": round(wall_s, 3),
        "reason": reason,
    }
    return draw, info


def _row_cdf(rows: Tensor) -> Tensor:
    """Row-wise CDFs of the non-negative rows of a plan, each ending at exactly 1."""
    cdf = rows.cumsum(dim=1)
    return cdf / cdf[:, -1:]


def _draw_from_rows(cdf: Tensor, gen: torch.Generator) -> Tensor:
    """One column index per row, drawn from the row's distribution given as its CDF (inversion)."""
    v = torch.rand(cdf.shape[0], 1, generator=gen, dtype=cdf.dtype).to(cdf.device)
    return torch.searchsorted(cdf, v).squeeze(1).clamp_(max=cdf.shape[1] - 1)


class _PlanPairs:
    """Draws ``(x0, x1)`` pairs from a discrete plan given by its row-normalised CDF."""

    def __init__(self, a: Tensor, b: Tensor, cdf: Tensor, gen: torch.Generator):
        self.a, self.b, self.cdf, self.gen = a, b, cdf, gen
        self.tensors = {"a": a, "b": b, "cdf": cdf}

    def __call__(self, n: int):
        count, k0, _ = self.cdf.shape
        p = torch.randint(0, count, (n,), generator=self.gen).to(self.a.device)
        i = torch.randint(0, k0, (n,), generator=self.gen).to(self.a.device)
        return self.a[p, i], self.b[p, _draw_from_rows(self.cdf[p, i], self.gen)]


class _PairedRows:
    """Random rows of paired samples ``pool = {"x0", "x1"}``: the ``"paired"`` coupling, and the
    refinement rounds' pairs (kept in the checkpoint)."""

    def __init__(self, pool: dict[str, Tensor], gen: torch.Generator):
        self.pool, self.gen = pool, gen

    def __call__(self, n: int):
        x0 = self.pool["x0"]
        i = torch.randint(0, x0.shape[0], (n,), generator=self.gen).to(x0.device)
        return x0[i], self.pool["x1"][i]


class _MinibatchPairs:
    """A fresh entropic plan at the same eps between ``n`` random training points of each side for
    every draw (:func:`bridge.ot.minibatch_log_plan`), and for row ``i`` a partner ``j ~ P(j | i)``
    (so each drawn ``x0`` appears once): the minibatch coupling of SF2M (Tong et al. 2024). Each
    plan's Sinkhorn starts warm from the previous plan's source potential; that state
    (``tensors``) is checkpointed, so a resumed run draws the same pairs."""

    def __init__(self, x0: Tensor, x1: Tensor, eps: float, tol: float, gen: torch.Generator):
        self.x0, self.x1, self.eps, self.tol, self.gen = x0, x1, eps, tol, gen
        self.tensors: dict = {}  # {"x_prev", "f_prev"} once a plan was solved

    def __call__(self, n: int):
        from ..ot import ConvergenceError, minibatch_log_plan

        a = self.x0[torch.randint(0, self.x0.shape[0], (n,), generator=self.gen).to(self.x0.device)]
        b = self.x1[torch.randint(0, self.x1.shape[0], (n,), generator=self.gen).to(self.x1.device)]
        warm = (self.tensors["x_prev"], self.tensors["f_prev"]) if self.tensors else None
        plan = minibatch_log_plan(a, b, self.eps, tol=self.tol, max_iter=300, warm=warm)
        if not plan.marginal_error <= 10 * self.tol:
            raise ConvergenceError(
                f"minibatch coupling: marginal error {plan.marginal_error:.3g} of a {n} x {n} plan at "
                f"eps = {self.eps:g}; use coupling='independent' or 'sinkhorn'"
            )
        self.tensors = {"x_prev": a, "f_prev": plan.potential}
        return a, b[_draw_from_rows(_row_cdf(plan.log_plan.softmax(dim=1)), self.gen)]


def _sampler(x: Tensor, name: str):
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[0] < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected samples of shape (n, d) with n >= 2, got {shape}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: contains NaN or Inf")
    return lambda n, g: x[torch.randint(0, x.shape[0], (n,), generator=g).to(x.device)]


#: The held-out split and the validation set come from their own generator, seeded with
#: ``seed + VAL_SEED_OFFSET``, so that they never shift the training draws.
VAL_SEED_OFFSET = 7919
#: The last state is returned unless the best state's held-out loss is lower by more than this many
#: standard errors of their difference (see ``SBConfig.holdout``).
VAL_NOISE_Z = 2.0


def _check_validation_settings(cfg: SBConfig) -> None:
    h = cfg.holdout
    if isinstance(h, bool) or not isinstance(h, int | float) or not 0 <= h < 1:
        raise ValueError(f"holdout: expected a fraction in [0, 1), got {h!r}")
    for name in ("val_size", "val_every"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    p = cfg.patience
    if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p < 1):
        raise ValueError(f"patience: expected None or an int >= 1, got {p!r}")


def _split_holdout(x0: Tensor, x1: Tensor, cfg: SBConfig, gen: torch.Generator):
    """``(x0_train, x1_train, held_out)``: a random ``cfg.holdout`` share of each side held out
    (``held_out = (x0_val, x1_val)``, or None when ``holdout == 0``). ``"paired"`` data keep
    their rows together."""
    if cfg.holdout == 0:
        return x0, x1, None
    n0, n1 = x0.shape[0], x1.shape[0]
    m0, m1 = round(cfg.holdout * n0), round(cfg.holdout * n1)
    if min(m0, m1, n0 - m0, n1 - m1) < 2:
        raise ValueError(
            f"holdout: {cfg.holdout:g} of {n0} and {n1} samples leaves fewer than 2 points to train or to "
            "validate on; change holdout or give more samples"
        )
    p0 = torch.randperm(n0, generator=gen).to(x0.device)
    p1 = p0 if cfg.coupling == "paired" and n0 == n1 else torch.randperm(n1, generator=gen).to(x1.device)
    return x0[p0[m0:]], x1[p1[m1:]], (x0[p0[:m0]], x1[p1[:m1]])


def _validation_set(held_out, eps: float, coupling: str, cfg: SBConfig, gen: torch.Generator, dtype, device):
    """``cfg.val_size`` pairs of the held-out points from the training's coupling, with their
    times and noise: ``{"x0", "x1", "t", "z"}``, drawn once."""
    v0, v1 = held_out
    n = min(cfg.batch_size, v0.shape[0], v1.shape[0])  # minibatch plans: as large as the held-out data allow
    vcfg = replace(cfg, coupling=coupling, time_budget=None, batch_size=n)
    draw, _ = _pair_sampler(v0, v1, eps, vcfg, gen, lambda m: None)
    xa, xb, left = [], [], cfg.val_size
    while left > 0:
        a, b = draw(min(n, left))
        xa.append(a)
        xb.append(b)
        left -= a.shape[0]
    a, b = torch.cat(xa), torch.cat(xb)
    t = sample_times(a.shape[0], (cfg.t_min, 1.0 - cfg.t_min), generator=gen, dtype=dtype).to(device)
    z = torch.randn(a.shape, generator=gen, dtype=dtype).to(device)
    return {"x0": a, "x1": b, "t": t, "z": z}


def _check_refine_settings(cfg: SBConfig) -> None:
    r = cfg.refine_rounds
    if r != "auto" and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
        raise ValueError(f"refine_rounds: expected 'auto' or an int >= 0, got {r!r}")
    f = cfg.refine_share
    if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f < 1:
        raise ValueError(f"refine_share: expected a fraction in (0, 1), got {f!r}")
    for name, low in (("refine_pairs", 2), ("refine_sde_steps", 1)):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {v!r}")


#: rows of the SDE integrated at once when drawing refinement pairs
REFINE_CHUNK = 8192


def _sde_pairs(drift: nn.Module, x0: Tensor, n: int, eps: float, steps: int, gen: torch.Generator):
    """``n`` pairs ``(x0[i], X1)``: rows of ``x0`` drawn with replacement and ``X1`` from the SDE
    ``dX = drift dt + sqrt(2 eps) dW`` started there (end-refined Heun grid, as
    :meth:`BridgeResult.sample`)."""
    from .result import forward_sde

    xa = x0[torch.randint(0, x0.shape[0], (n,), generator=gen).to(x0.device)]
    chunks = [xa[i : i + REFINE_CHUNK] for i in range(0, n, REFINE_CHUNK)]
    xb = torch.cat([forward_sde(drift, eps, c, steps=steps, generator=gen).x for c in chunks])
    if not bool(torch.isfinite(xb).all()):
        raise FloatingPointError("coupling refinement: the learned SDE gave NaN or Inf samples; the max-min diverged")
    return xa, xb


def _clone_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def build_interpolant(
    cfg: SBConfig, d: int, eps: float, generator: torch.Generator | None = None
) -> FourierInterpolant | NeuralInterpolant:
    """The outer variable of ``cfg.interpolant`` on ``gamma_0 = sqrt(2 eps t(1-t))``, the
    Brownian bridge of the SB's reference process. Either family starts as the linear interpolant
    (zero Fourier coefficients; ``N_phi``'s last layer at zero). ``generator`` draws the neural
    interpolant's initial weights."""
    gamma0 = BrownianGamma(a=2.0 * eps)
    if cfg.interpolant == "fourier":
        return FourierInterpolant(
            cfg.n_modes, dim=d if cfg.diagonal else None, gamma=gamma0, learn_gamma=cfg.learn_gamma
        )
    if cfg.interpolant == "neural":
        for name in ("neural_hidden", "neural_depth"):
            v = getattr(cfg, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        return NeuralInterpolant(
            d,
            gamma=gamma0,
            hidden=cfg.neural_hidden,
            depth=cfg.neural_depth,
            generator=generator,
            learn_gamma=cfg.learn_gamma,
            n_modes=cfg.n_modes,
        )
    raise ValueError(f"interpolant: expected one of {', '.join(INTERPOLANTS)}, got {cfg.interpolant!r}")


class EndpointDrift(nn.Module):
    r"""``u(t, x) = (D(t, x) - x) / (1 - t)``: the drift through an endpoint predictor ``D``.

    For the Brownian-bridge interpolant the SB drift is exactly this with
    ``D = E[x_1 | x_t = x]`` (SPEC §5: ``(x_1 - x_t)/(1 - t)`` is the conditional drift), so the
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
    r"""The two-network forms (SPEC §5): a velocity network and the denoiser ``eta_z = E[z | x_t]``
    learned apart, ``u = b_F = b + eps s`` with ``s = -eta_z / gamma`` (SPEC §2).

    The drift's regression target is ``d/dt I + c z`` with ``c = gamma_dot - eps / gamma``
    (SPEC §5). The velocity network learns ``E[d/dt I + kappa z | x_t]`` and
    ``u = velocity + (c - kappa) eta_z``, for one of three splits of ``c``:

    * ``"b"``: ``kappa = gamma_dot``: the velocity network is ``b`` (SPEC §2), ``u = b - eps eta_z / gamma``;
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
    Measured on the Gaussian d = 2 benchmark problem (120 s, mean squared error against the exact
    SB drift along the exact marginals in the time bands ``t < 0.1 / t > 0.9``, from
    ``benchmarks/sb_diagnose.py``; see :class:`SBConfig`): ``"b"`` 0.037 / 0.019, ``"w"`` 0.005 /
    0.029.

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


DRIFT_FORMS = ("u", "endpoint", "b,eta", "v,eta", "w,eta")


def _check_gradient_drift(value) -> None:
    if value not in (True, False, "auto") or value in (0, 1) and not isinstance(value, bool):
        raise ValueError(f"gradient_drift: expected True, False or 'auto', got {value!r}")


def build_drift(cfg: SBConfig, d: int, generator: torch.Generator | None = None) -> nn.Module:
    """The inner variable ``u(t, x)``: an MLP with SiLU activations (smooth, for the SDE), used
    directly (``drift_form="u"``) or through :class:`EndpointDrift` or :class:`TwoNetDrift`. With
    ``cfg.gradient_drift`` each MLP is a scalar ``V`` and the field is ``grad_x V``
    (:class:`~bridge.models.GradientField`); the combinations the forms make of such fields are
    gradients as well (``x = grad |x|^2/2`` in the endpoint form, scalar coefficients in ``t``
    in the two-network forms)."""
    if cfg.drift_form not in DRIFT_FORMS:
        raise ValueError(f"drift_form: expected one of {', '.join(DRIFT_FORMS)}, got {cfg.drift_form!r}")
    _check_gradient_drift(cfg.gradient_drift)

    def mlp():
        if cfg.gradient_drift is not True:  # "auto": solve_bridge rebuilds the drift once it is resolved
            return MLP(d, hidden=cfg.hidden, depth=cfg.depth, activation="silu", generator=generator)
        scalar = MLP(d, hidden=cfg.hidden, depth=cfg.depth, activation="silu", out_dim=1, generator=generator)
        return GradientField(scalar)

    net = mlp()
    if cfg.drift_form.endswith(",eta"):
        eta = mlp()
        return TwoNetDrift(net, eta, cfg.t_min, split=cfg.drift_form[0])
    return net if cfg.drift_form == "u" else EndpointDrift(net)


def _flat_optimizer(opt: torch.optim.Optimizer | None) -> dict[str, Tensor]:
    """An optimizer's state as a flat ``{name: tensor}`` dict (checkpoints hold tensors only)."""
    if opt is None:
        return {}
    sd = opt.state_dict()
    out = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            out[f"{idx}.{k}"] = v if isinstance(v, Tensor) else torch.tensor(v)
    return out


def _load_optimizer(opt: torch.optim.Optimizer | None, flat: dict[str, Tensor]) -> None:
    if opt is None:
        return
    sd = opt.state_dict()
    state: dict = {}
    for key, v in flat.items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    sd["state"] = state
    opt.load_state_dict(sd)


def solve_bridge(
    x0: Tensor,
    x1: Tensor,
    eps: float,
    *,
    interpolant: nn.Module | None = None,
    config: SBConfig | None = None,
    progress: Callable[[str], None] | None = None,
    checkpoint=None,
    checkpoint_every: float = 30.0,
    resume: bool = False,
):
    r"""Solve the Schrödinger bridge between samples ``x0`` and ``x1`` by max–min (SPEC §5).

    Args:
        x0, x1: source and target samples ``(n, d)`` (the sizes may differ).
        eps: the paper's eps (diffusion ``sqrt(2 eps) dW``), ``> 0``.
        interpolant: a learnable interpolant (an ``nn.Module`` :class:`Interpolant`); default
            :func:`build_interpolant`.
        config: :class:`SBConfig`.
        progress: where progress lines go (default stderr).
        checkpoint: file for the training state (networks, optimisers, random state, history,
            Sinkhorn coupling), written atomically every ``checkpoint_every`` seconds of training
            and at the end; ``None``: none.
        checkpoint_every: seconds between checkpoints.
        resume: continue from ``checkpoint`` when it exists. The same data, eps and config give
            the same continuation as an uninterrupted run; ``time_budget``, ``outer_steps``
            (to extend a finished run), ``threads`` and ``log_every`` may change. An interrupted
            run (Ctrl-C, a killed process) keeps its last checkpoint, at most ``checkpoint_every``
            seconds old; the interrupted step itself is not saved, so the file is always a
            consistent state.

    Returns:
        :class:`~bridge.sb.result.BridgeResult`.

    Raises:
        ValueError: bad samples or eps, an unknown coupling.
        CheckpointMismatchError: ``resume`` with a checkpoint of another problem.
        bridge.ot.ConvergenceError: the Sinkhorn coupling did not converge.
    """
    cfg = config if config is not None else SBConfig()
    if cfg.threads is not None and (not isinstance(cfg.threads, int) or cfg.threads < 1):
        raise ValueError(f"threads: expected None or an int >= 1, got {cfg.threads!r}")
    before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _solve(x0, x1, eps, interpolant, cfg, progress, checkpoint, checkpoint_every, resume)
    finally:
        torch.set_num_threads(before)


def _solve(x0, x1, eps, interpolant, cfg, progress, checkpoint, checkpoint_every, resume):
    from ..checkpoint import load_checkpoint, save_checkpoint
    from .result import BridgeResult

    eps = float(eps)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a finite number > 0, got {eps!r}")
    _sampler(x0, "x0"), _sampler(x1, "x1")
    if cfg.coupling not in COUPLINGS:
        raise ValueError(f"coupling: expected one of {', '.join(COUPLINGS)}, got {cfg.coupling!r}")
    if x0.shape[1] != x1.shape[1]:
        raise ValueError(f"x0 has dimension {x0.shape[1]} but x1 has dimension {x1.shape[1]}")
    _check_validation_settings(cfg)
    _check_refine_settings(cfg)
    d, dtype, device = x0.shape[1], x0.dtype, x0.device
    problem = {"d": d, "eps": eps, "n0": x0.shape[0], "n1": x1.shape[0], "config": asdict(cfg)}
    for key in ("time_budget", "threads", "log_every", "outer_steps", "patience"):  # a resumed run may change these
        problem["config"].pop(key)
    problem["data_sha256"] = _data_digest(x0, x1)
    gen_val = torch.Generator().manual_seed(cfg.seed + VAL_SEED_OFFSET)
    x0, x1, held_out = _split_holdout(x0, x1, cfg, gen_val)
    say = progress if progress is not None else (lambda m: print(m, file=sys.stderr, flush=True))
    gen = torch.Generator().manual_seed(cfg.seed)
    if interpolant is None:
        interpolant = build_interpolant(cfg, d, eps, gen)
        if isinstance(interpolant, NeuralInterpolant):
            interpolant.net.to(dtype=dtype)  # N_phi sees the data (the Fourier weights stay float64)
    if not (isinstance(interpolant, nn.Module) and isinstance(interpolant, Interpolant)):
        raise TypeError(f"interpolant: expected a learnable Interpolant (nn.Module), got {type(interpolant).__name__}")
    interpolant = interpolant.to(device)
    interp_init = _clone_state(interpolant)  # what each refinement round starts from
    if cfg.ema is not None and not (isinstance(cfg.ema, float | int) and 0.0 < cfg.ema < 1.0):
        raise ValueError(f"ema: expected None or a number in (0, 1), got {cfg.ema!r}")
    _check_gradient_drift(cfg.gradient_drift)

    def bound(net):
        if isinstance(net, TwoNetDrift):
            net.bind(interpolant, eps)
        return net

    def spare_drift(config):
        """A drift of ``config``'s shape that only holds weights (the moving average, the best state)."""
        return bound(build_drift(config, d).to(dtype=dtype, device=device).requires_grad_(False))

    def drift_nets(config, generator):
        """The drift, its moving average (or None) and the inner optimiser."""
        net = bound(build_drift(config, d, generator).to(dtype=dtype, device=device))
        avg = None
        if config.ema is not None:  # the returned drift: a moving average of u's weights
            avg = spare_drift(config)
            avg.load_state_dict(net.state_dict())
        return net, avg, torch.optim.Adam(net.parameters(), lr=config.lr_inner)

    run_cfg = replace(cfg, gradient_drift=cfg.gradient_drift is True)  # "auto" is resolved with the coupling
    u, u_avg, opt_in = drift_nets(run_cfg, gen)
    outer_params = [p for p in interpolant.parameters() if p.requires_grad]
    opt_out = torch.optim.Adam(outer_params, lr=cfg.lr_outer) if outer_params else None
    t_range = (cfg.t_min, 1.0 - cfg.t_min)
    ckpt = Path(checkpoint) if checkpoint is not None else None

    start = time.perf_counter()
    elapsed0 = 0.0  # training time of earlier sessions (resume)
    history: list = []
    step, warm_done, n_inner = 0, 0, 0
    restored = None
    if resume and ckpt is not None and ckpt.is_file():
        restored = load_checkpoint(ckpt)
        if restored[1].get("problem") != problem:
            raise CheckpointMismatchError(
                f"{ckpt}: checkpoint is from another problem (data, eps or config); remove it or set resume=False"
            )
    restored_kind = restored[1]["coupling_info"].get("coupling") if restored is not None else None
    if restored_kind == "sinkhorn":
        cp = restored[0]["coupling"]
        draw_pairs, coupling_info = _PlanPairs(cp["a"], cp["b"], cp["cdf"], gen), restored[1]["coupling_info"]
    elif restored_kind in ("independent", "minibatch"):
        # also an "auto" run that chose one: its first plan is not rebuilt (the generator is restored below)
        chosen = replace(cfg, coupling=restored_kind)
        draw_pairs, coupling_info = _pair_sampler(x0, x1, eps, chosen, gen, say)[0], restored[1]["coupling_info"]
        if restored_kind == "minibatch":
            draw_pairs.tensors = dict(restored[0].get("coupling", {}))
    else:
        draw_pairs, coupling_info = _pair_sampler(x0, x1, eps, cfg, gen, say)
    if cfg.gradient_drift == "auto" and coupling_info["coupling"] == "independent":
        # built from their own stream, so that every other run's draws stay as they were
        run_cfg = replace(cfg, gradient_drift=True)
        u, u_avg, opt_in = drift_nets(run_cfg, torch.Generator().manual_seed(cfg.seed + GRADIENT_SEED_OFFSET))
        say("[solve] independent coupling: the drift is learned as a gradient field (gradient_drift='auto')")
    net_out = u_avg if u_avg is not None else u  # the drift the result returns
    n_rounds = cfg.refine_rounds
    if n_rounds == "auto":
        n_rounds = 1 if coupling_info["coupling"] == "independent" else 0
    # phase 0: the max-min on the chosen coupling; phases 1..n_rounds: coupling refinement
    phase, phase_start = 0, 0.0  # phase_start: the budget fraction where the phase began
    refine_info = {"rounds": n_rounds, "share": cfg.refine_share, "pairs": cfg.refine_pairs, "started": []}
    vstate = {"set": None, "best": None, "best_step": None, "best_loss": None, "since_best": 0, "curve": []}
    if held_out is not None:
        if restored is not None and "validation" in restored[0]:
            vstate["set"] = restored[0]["validation"]
        else:
            vstate["set"] = _validation_set(held_out, eps, coupling_info["coupling"], cfg, gen_val, dtype, device)
            say(
                f"[solve] validation: {held_out[0].shape[0]} + {held_out[1].shape[0]} held-out points, "
                f"{cfg.val_size} pairs ({coupling_info['coupling']} coupling), every {cfg.val_every} outer steps"
            )

    def state_now():
        tensors = {
            "drift": u.state_dict(),
            "interpolant": interpolant.state_dict(),
            "opt_inner": _flat_optimizer(opt_in),
            "opt_outer": _flat_optimizer(opt_out),
            "rng": {"generator": gen.get_state()},
        }
        if getattr(draw_pairs, "tensors", None):
            tensors["coupling"] = draw_pairs.tensors
        if u_avg is not None:
            tensors["drift_ema"] = u_avg.state_dict()
        if vstate["set"] is not None:
            tensors["validation"] = vstate["set"]
        if vstate["best"] is not None:
            tensors["best_drift"], tensors["best_interpolant"] = vstate["best"]
        if phase > 0:
            tensors["refine_pool"] = draw_pairs.pool
        meta = {
            "kind": "bridge-solve-state",
            "problem": problem,
            "coupling_info": coupling_info,
            "step": step,
            "warmup_done": warm_done,
            "inner_done": n_inner,
            "history": history,
            "elapsed_s": elapsed0 + time.perf_counter() - start,
            "validation": {k: vstate[k] for k in ("best_step", "best_loss", "since_best", "curve")},
            "refine": {"phase": phase, "phase_start": phase_start, "started": refine_info["started"]},
        }
        return tensors, meta

    if restored is not None:
        tensors, meta = restored
        u.load_state_dict(tensors["drift"])
        interpolant.load_state_dict(tensors["interpolant"])
        _load_optimizer(opt_in, tensors["opt_inner"])
        _load_optimizer(opt_out, tensors["opt_outer"])
        gen.set_state(tensors["rng"]["generator"])
        if u_avg is not None:
            u_avg.load_state_dict(tensors["drift_ema"])
        n_inner = int(meta["inner_done"])
        step, warm_done, history = int(meta["step"]), int(meta["warmup_done"]), list(meta["history"])
        elapsed0 = float(meta["elapsed_s"])
        if "best_drift" in tensors:
            vstate["best"] = (tensors["best_drift"], tensors["best_interpolant"])
        vstate |= meta.get("validation") or {}
        refined = meta.get("refine") or {}
        if refined.get("phase", 0) > 0:
            phase, phase_start = int(refined["phase"]), float(refined["phase_start"])
            refine_info["started"] = list(refined["started"])
            draw_pairs = _PairedRows(tensors["refine_pool"], gen)
        say(f"[solve] resumed from {ckpt} at outer step {step} ({elapsed0:.1f}s of training so far)")

    def batch():
        xa, xb = draw_pairs(cfg.batch_size)
        t = sample_times(cfg.batch_size, t_range, generator=gen, dtype=dtype).to(device)
        z = torch.randn(xa.shape, generator=gen, dtype=dtype).to(device)
        return xa, xb, t, z

    def inner_loss(net, s):
        """The inner loss per sample (antithetic pairs) of ``net`` on interpolant samples ``s``."""
        if isinstance(net, TwoNetDrift):
            # L_b + L_eta (SPEC §2): same minimisers as L_b + eps^2 L_s, the score through eta;
            # splits "v", "w": the velocity's target is d/dt I + kappa z (TwoNetDrift)
            if net.split == "b":
                odd = s.drift_odd
            else:  # kappa z
                odd = bcast(net.coefficients(s.t)["kappa"].to(s.noise.dtype), s.noise) * s.noise
            per = quadratic_loss(net.first, s, s.drift_even, odd, antithetic=True)
            per = per + quadratic_loss(net.eta, s, torch.zeros_like(s.noise), s.noise, antithetic=True)
        else:
            per = _objective(net, s, eps)
        if cfg.drift_form == "endpoint":
            # same pointwise minimiser; (1-t)^2 turns it into the regression of D on
            # x_t + (1-t) * target, whose variance stays bounded as t -> 1
            per = per * (1.0 - s.t).pow(2)
        return per

    def inner_step():
        nonlocal n_inner
        xa, xb, t, z = batch()
        with torch.no_grad():  # the interpolant is held fixed in the inner step
            s = interpolant.sample(t, xa, xb, z)
        loss = inner_loss(u, s).mean()
        opt_in.zero_grad(set_to_none=True)
        loss.backward()
        opt_in.step()
        n_inner += 1
        if u_avg is not None:
            ema_update(u_avg, u, cfg.ema, n_inner)
        return float(loss.detach())

    def elapsed():
        return elapsed0 + time.perf_counter() - start

    u_best = None  # holds the best state's drift weights, to be compared under the current interpolant

    def validate():
        """The returned drift against the best state so far, both under the current interpolant,
        on the validation set: the inner loss is ``1/2 E|u - u*_I|^2 - 1/2 E|u*_I|^2``, whose
        second term moves with the interpolant ``I`` (the outer loop raises it), so only drifts
        under the same interpolant are compared. The better one becomes (or stays) the best."""
        nonlocal u_best
        vs = vstate["set"]
        with torch.no_grad():
            s = interpolant.sample(vs["t"], vs["x0"], vs["x1"], vs["z"])
            per = inner_loss(net_out, s)
            loss, held, se = float(per.mean()), None, None
            if vstate["best"] is not None:
                if u_best is None:
                    u_best = spare_drift(run_cfg)
                u_best.load_state_dict(vstate["best"][0])
                diff = per - inner_loss(u_best, s)
                held, se = loss - float(diff.mean()), float(diff.std() / math.sqrt(diff.numel()))
        rec = {"step": step, "val_loss": loss, "best_val_loss": held, "diff_se": se, "wall_s": round(elapsed(), 3)}
        vstate["curve"].append(rec)
        if math.isfinite(loss) and (held is None or not math.isfinite(held) or loss < held):
            vstate["best"] = (_clone_state(net_out), _clone_state(interpolant))
            vstate["best_step"], vstate["best_loss"], vstate["since_best"] = step, loss, 0
        else:
            vstate["since_best"] += 1
        if cfg.log_every:
            against = "" if held is None else f", the best state's {held:+.5f} (difference s.e. {se:.1e})"
            say(f"[solve] validation loss {loss:+.5f}{against} at outer step {step} (best: step {vstate['best_step']})")

    last_save = time.perf_counter()

    def maybe_save(force: bool = False):
        nonlocal last_save
        if ckpt is not None and (force or time.perf_counter() - last_save >= checkpoint_every):
            save_checkpoint(ckpt, *state_now())
            last_save = time.perf_counter()

    stopped_by = "steps"
    budget = cfg.time_budget

    def frac_done(k):
        """The budget fraction used after ``k`` outer steps: steps or time, whichever is further."""
        return k / cfg.outer_steps if budget is None else max(k / cfg.outer_steps, elapsed() / budget)

    def phase_end(p):
        return 1.0 if p >= n_rounds else 1.0 - cfg.refine_share + p * cfg.refine_share / n_rounds

    def start_round():
        """Coupling refinement (``SBConfig.refine_rounds``): pairs from the learned SDE, then the
        starting interpolant, fresh outer optimiser state and a new warm-up on them."""
        nonlocal phase, phase_start, draw_pairs, warm_done
        t0, wall0 = time.perf_counter(), elapsed()
        phase_start = frac_done(step)
        xa, xb = _sde_pairs(net_out, x0, cfg.refine_pairs, eps, cfg.refine_sde_steps, gen)
        gen_s = time.perf_counter() - t0
        phase += 1
        draw_pairs = _PairedRows({"x0": xa, "x1": xb}, gen)
        interpolant.load_state_dict(interp_init)
        if opt_out is not None:
            opt_out.state.clear()
        if vstate["set"] is not None:  # validate on held-out x0 and their partners from the same SDE
            va, vb = _sde_pairs(net_out, held_out[0], cfg.val_size, eps, cfg.refine_sde_steps, gen_val)
            vstate["set"] = _validation_set((va, vb), eps, "paired", cfg, gen_val, dtype, device)
            vstate.update(best=None, best_step=None, best_loss=None, since_best=0)
        refine_info["started"].append({"round": phase, "step": step, "wall_s": round(wall0, 3), "pairs_s": gen_s})
        say(
            f"[solve] coupling refinement, round {phase}/{n_rounds}: {cfg.refine_pairs} pairs from the learned SDE "
            f"({cfg.refine_sde_steps} steps, {gen_s:.1f}s); interpolant reset, training on them"
        )
        warm_done = 0
        for grp in opt_in.param_groups:
            grp["lr"] = cfg.lr_inner

    while warm_done < cfg.warmup_steps:
        if budget is not None and elapsed() >= budget:
            stopped_by = "time_budget"
            break
        inner_step()
        warm_done += 1
        maybe_save()
    while stopped_by == "steps" and step < cfg.outer_steps:
        if budget is not None and elapsed() >= budget:
            stopped_by = "time_budget"
            break
        if phase < n_rounds and frac_done(step) >= phase_end(phase):
            start_round()
        if warm_done < cfg.warmup_steps:  # a refinement round's warm-up
            inner_step()
            warm_done += 1
            maybe_save()
            continue
        step += 1
        frac = frac_done(step)
        local = (frac - phase_start) / max(phase_end(phase) - phase_start, 1e-12)  # the phase's own schedule
        decay = 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(max(local, 0.0), 1.0)))
        for grp in opt_in.param_groups:
            grp["lr"] = cfg.lr_inner * decay
        first = last = 0.0
        for k in range(cfg.inner_steps):
            val = inner_step()
            first, last = (val, val) if k == 0 else (first, val)
        if opt_out is not None and cfg.lr_outer > 0:
            for grp in opt_out.param_groups:
                grp["lr"] = cfg.lr_outer * decay
            xa, xb, t, z = batch()
            obj = sb_objective(u, interpolant, xa, xb, eps, t=t, z=z).mean()
            opt_out.zero_grad(set_to_none=True)
            (-obj).backward()  # ascent on the interpolant
            opt_out.step()
            value = float(obj.detach())
        else:
            value = last
        if cfg.log_every and (step % cfg.log_every == 0 or step == 1):
            with torch.no_grad():
                xa, xb, t, z = batch()
                s = interpolant.sample(t, xa, xb, z)
                kinetic = float(u(s.t, s.xt).pow(2).sum(-1).mean())
            rec = {
                "step": step,
                "phase": phase,
                "objective": value,
                "kinetic": kinetic,
                "inner_gap": first - last,
                "wall_s": round(elapsed(), 3),
            }
            history.append(rec)
            say(
                f"[solve] outer {step:>6d}/{cfg.outer_steps}  objective {value:+.4f}  "
                f"kinetic {kinetic:.4f}  inner gap {first - last:+.2e}  {rec['wall_s']:.1f}s"
            )
        if vstate["set"] is not None and step % cfg.val_every == 0:
            validate()
            if cfg.patience is not None and vstate["since_best"] >= cfg.patience:
                stopped_by = "early_stop"
                say(
                    f"[solve] early stop: no better validation loss in {cfg.patience} evaluations "
                    f"(best at outer step {vstate['best_step']})"
                )
        maybe_save()
    maybe_save(force=True)  # before the last comparison, so that an extended run continues as an uninterrupted one
    if vstate["set"] is not None and (not vstate["curve"] or vstate["curve"][-1]["step"] != step):
        validate()  # the last state is a candidate too
    if step == 0 and stopped_by == "time_budget":
        msg = (
            f"solve_bridge: the time budget ({budget:g}s) ran out after {warm_done} warm-up and no outer steps; "
            "the result is barely trained"
        )
        say(f"[solve] warning: {msg[len('solve_bridge: ') :]}")
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    validation = {}
    if vstate["set"] is not None:
        last = vstate["curve"][-1]
        # the last state, trained longest at the lowest learning rate, unless the best one is
        # better by more than the comparison's noise
        returned = step
        if vstate["best_step"] != step and not (
            last["val_loss"] - last["best_val_loss"] <= VAL_NOISE_Z * last["diff_se"]
        ):
            net_out.load_state_dict(vstate["best"][0])
            interpolant.load_state_dict(vstate["best"][1])
            returned = vstate["best_step"]
        validation = {
            "holdout": cfg.holdout,
            "held_out": [held_out[0].shape[0], held_out[1].shape[0]],
            "pairs": int(vstate["set"]["x0"].shape[0]),
            "coupling": coupling_info["coupling"],
            "every": cfg.val_every,
            "best_step": vstate["best_step"],
            "best_loss": vstate["best_loss"],
            "returned_step": returned,
            "noise_z": VAL_NOISE_Z,
            "curve": vstate["curve"],
        }
        if returned != step:
            say(
                f"[solve] returning the state of outer step {returned}: on the held-out samples the last state is "
                f"worse by {last['val_loss'] - last['best_val_loss']:.2e} (> {VAL_NOISE_Z:g} standard errors)"
            )
        elif vstate["best_step"] != step:
            say(
                f"[solve] keeping the last state: on the held-out samples it is within {VAL_NOISE_Z:g} standard errors "
                f"of the best one (step {vstate['best_step']})"
            )
    u = net_out
    u.eval()
    return BridgeResult(
        drift_net=u,
        interpolant=interpolant,
        eps=eps,
        history=history,
        steps=step,
        wall_s=elapsed(),
        stopped_by=stopped_by,
        config=run_cfg,  # with gradient_drift resolved: what BridgeResult.load rebuilds
        coupling=coupling_info | ({"refine": refine_info} if n_rounds else {}),
        validation=validation,
    )
