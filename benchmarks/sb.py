r"""Benchmark: the SB solver against peers on problems with a known plan (docs/math.md §5-§7).

All methods see the same training samples ``x0_train ~ rho0``, ``x1_train ~ rho1`` (independent,
unpaired) and are scored on the same test inputs ``x ~ rho0``:

* **bridge**: :func:`bridge.sb.solve_bridge` with ``SBConfig(time_budget=B)`` (the budget, not a
  step count, ends training), then ``result.sample(x, per_point=K, steps=S)`` (stochastic Heun).
* **pot**: discrete entropic OT on the training samples at the same eps (``reg = 4 eps``), used
  out of sample through its dual potentials: :math:`\pi(y_j \mid x) \propto
  \exp((g_j - |x - y_j|^2)/\mathrm{reg})` (:meth:`bridge.ot.EntropicPotentials.conditional_sample`).
  POT's log-domain Sinkhorn (:func:`bridge.ot.entropic_plan`) up to ``--pot-dense-max`` points,
  otherwise :func:`bridge.ot.entropic_potentials` (``start="anneal"``, no dense plan); its
  marginal error is recorded. Its "train" time is the Sinkhorn solve; no SDE.
* **sf2m**: simulation-free score and flow matching (Tong et al., AISTATS 2024): minibatch entropic
  OT pairs, the Brownian bridge :math:`x_t = (1-t)x_0 + t x_1 + \sigma\sqrt{t(1-t)}\,z`, a flow net
  regressed on :math:`x_1 - x_0 + \sigma\frac{1-2t}{2\sqrt{t(1-t)}} z` and a score net on
  :math:`\lambda_t s + z = 0`, :math:`\lambda_t = 2\sigma\sqrt{t(1-t)}/\sigma^2` (so the score net
  learns :math:`\tfrac{\sigma^2}{2}\nabla\log p_t`); samples from
  :math:`dX = [v + \tfrac{\sigma^2}{2}\nabla\log p_t]\,dt + \sigma\,dW`. It uses torchcfm's
  ``SchrodingerBridgeConditionalFlowMatcher`` when ``torchcfm`` is importable (an optional
  benchmark dependency; ``pip install --no-deps torchcfm`` is enough: its flow-matching module
  needs only torch, numpy and POT), otherwise our own implementation of the same construction
  (``--sf2m-impl`` forces one; method ``sf2m-own`` runs ours next to torchcfm's); the table and
  JSON say which ran. torchcfm's minibatch Sinkhorn is POT's standard-domain ``ot.sinkhorn``,
  which underflows at small ``reg`` (e.g. r = 0.1 in d = 16) and then falls back to a uniform
  (independent) plan: the JSON counts these fallbacks and the table notes them. Ours uses a
  log-domain Sinkhorn (:func:`minibatch_plan`).
  **Noise level.** torchcfm's SB path has standard deviation ``sigma * sqrt(t (1 - t))``
  (``compute_sigma_t``), the Brownian bridge of :math:`\sigma W`, and couples minibatches with
  POT at ``reg = 2 sigma**2`` on the squared distance (``OTPlanSampler``); our SB has diffusion
  :math:`\sqrt{2\epsilon}\,dW` and ``reg = 4 eps``. Hence ``sigma = sqrt(2 eps)``
  (:func:`bridge.conventions.reference_variance`), and then both numbers agree (checked at run
  time). Its networks are the bridge's drift MLP (same width/depth), trained with Adam for the
  same wall-clock budget; its SDE uses the same integrator and step count.
* **bridge-mixture**: ``solve_bridge`` with ``drift_family="mixture"`` (the Schrödinger-potential
  mixture family, docs/math.md §5.10-5.11; its "auto" settings: the independent coupling, the
  Brownian-bridge interpolant, its own learning rate), sampled exactly (no SDE).
* **bridge-auto**: ``solve_bridge`` with ``drift_family="auto"``, the default: the mixture
  family's trial, then the mixture or the networks by an energy test on held-out samples
  (:mod:`bridge.sb.family`); the JSON records the test under ``family``.
* **lightsb**: LightSB (Korotin et al., ICLR 2024), the SB in the Gaussian-mixture potential
  family fitted by its KL objective, sampled exactly (``benchmarks/lightsb.py``: settings,
  ``--lightsb-set``, and its published numbers, printed beside ours on the mixture problems).
* **gauss-plugin** (Gaussian problems only): the closed-form SB between the Gaussians fitted to the
  training samples (their means and covariances), sampled exactly: what 10000 samples allow a
  method that knows the family, so a bound on the accuracy that the training data permit, not a
  peer.
* **floor**: exact conditional samples (``ref.sample_conditional``) at the same test inputs and
  ``K``: cBW2-UVP with ``K`` samples per input is biased upwards by sampling noise (docs/math.md §6), so
  a method's number is only meaningful against this floor.

Problems (``--problems``, comma-separated):

* ``gauss{d}``: :math:`N(a, A) \to N(b, B)` with random rotations, eigenvalues in [0.5, 2] and
  random means (non-commuting covariances), eps = ``--gauss-eps``; closed form
  :func:`bridge.reference.gaussian_sb`. Metrics: cBW2-UVP and the relative Frobenius error of
  :math:`\mathrm{Cov}(x_0, X_1)` against the closed-form ``C``, from ``--cov-points`` inputs with
  one sample each (default 100000: with 10000 the exact-sample floor of this error is 3-5% at
  d = 5-10, with 100000 about 1%). Default d = 2, 5, 10.
* ``mix{d}-r{r}``: the mixture benchmark with a known plan (:func:`bridge.reference.make_mixture_benchmark`,
  reference variance ``r = 2 eps``). Metric: cBW2-UVP. Default d = 2, 16, 64 and r = 0.1, 1, 10.

Training data (``--n-train``, default 10000 per side): the first 10000 samples of each side are
drawn before the test inputs and any further ones after them, so a run with more data (e.g.
``--n-train 1000000``, about as many as a 300-s run draws, i.e. close to the sampler access of
the published mixture benchmark) is scored on the same test inputs, against the same floor.

Ratios are ``metric / bridge's metric`` (above 1: bridge is better). A method that fails on a
problem (e.g. Sinkhorn that does not converge) is recorded with its error message.

Usage::

    python benchmarks/sb.py                 # all 12 problems, 300 s per method per problem (hours)
    python benchmarks/sb.py --quick         # smoke run: 2 problems, 20 s budgets, fewer test points
    python benchmarks/sb.py --problems gauss5,mix16-r1 --budget 60 --methods bridge,sf2m
    python benchmarks/sb.py --quick --bridge-set drift_form=endpoint --bridge-set plan_size=4096

It prints a markdown table and writes JSON (default ``benchmarks/results/sb.json``, rewritten
after every problem); progress lines go to stderr. Timings use one CPU thread (``--threads``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import platform
import re
import sys
import time
import traceback
import warnings
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from bridge import __version__
from bridge.conventions import pot_reg, reference_variance
from bridge.metrics import cbw2_uvp, cross_covariance_error
from bridge.models import MLP
from bridge.ot import entropic_plan, entropic_potentials, minibatch_log_plan
from bridge.reference import gaussian_sb, make_mixture_benchmark
from bridge.samplers import StochasticHeun, sample_sde
from bridge.sb import SBConfig, end_grid_sde, solve_bridge
from bridge.sb.auto import learning_rates

sys.path.insert(0, str(Path(__file__).parent))
import lightsb as lightsb_peer  # noqa: E402  (the LightSB peer and its published numbers)
from keyvalue import parse_overrides  # noqa: E402

DT = torch.float64  # references and metrics
TRAIN_DT = torch.float32  # training data, networks and their samples
ALL_PROBLEMS = ["gauss2", "gauss5", "gauss10"] + [f"mix{d}-r{r}" for d in (2, 16, 64) for r in ("0.1", "1", "10")]
QUICK = dict(problems="gauss5,mix16-r1", budget=20.0, n_train=4000, test_points=200, per_point=200, sde_steps=100)
FULL = dict(
    problems=",".join(ALL_PROBLEMS), budget=300.0, n_train=10_000, test_points=500, per_point=500, sde_steps=200
)
BRIDGE_GRID = "end"  # bridge's SDE grid (BridgeResult.sample's default), passed and recorded
ROWS_PER_CHUNK = 2**17  # SDE paths integrated at once
FIRST_TRAIN = 10_000  # training samples per side drawn before the test inputs (build_problem)
OWN_SF2M = (
    "SF2M (own implementation of Tong et al. 2024: minibatch entropic OT coupling + Brownian bridge "
    "+ flow and score matching)"
)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- problems ---------------------------------------------------------------------------------
@dataclass
class Problem:
    name: str
    kind: str  # "gauss" or "mix"
    d: int
    eps: float
    ref: object  # GaussianSB or SBMixtureBenchmark
    x0_train: torch.Tensor
    x1_train: torch.Tensor
    x_test: torch.Tensor  # (N, d) float64
    true_means: torch.Tensor
    true_covs: torch.Tensor
    target_trace: float
    x_cov: torch.Tensor | None = None  # Gaussian only: inputs of the cross-covariance estimate
    C: torch.Tensor | None = None  # Gaussian only: closed-form Cov(x0, x1)


def parse_problem(name: str) -> dict:
    m = re.fullmatch(r"gauss(\d+)", name)
    if m and int(m.group(1)) >= 1:
        return {"kind": "gauss", "d": int(m.group(1))}
    m = re.fullmatch(r"mix(\d+)-r([0-9.]+(?:e-?\d+)?)", name)
    if m and int(m.group(1)) >= 1:
        try:
            r = float(m.group(2))
        except ValueError:
            r = 0.0
        if r > 0:
            return {"kind": "mix", "d": int(m.group(1)), "r": r}
    raise ValueError(f"--problems: expected names like gauss5 or mix16-r1 (r > 0), got {name!r}")


def _spd(d: int, g: torch.Generator) -> torch.Tensor:
    """``Q diag(lambda) Q^T`` with a Haar-random rotation ``Q`` and ``lambda ~ U[0.5, 2]``."""
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=DT))
    q = q * torch.sign(torch.diagonal(r))
    lam = 0.5 + 1.5 * torch.rand(d, generator=g, dtype=DT)
    return (q * lam) @ q.T


def _normal(mean: torch.Tensor, cov: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    return mean + torch.randn(n, mean.shape[0], generator=g, dtype=DT) @ torch.linalg.cholesky(cov).T


def _draw_more(x: torch.Tensor, n: int, draw) -> torch.Tensor:
    """``x`` topped up to ``n`` rows with ``draw(k)`` (training samples beyond ``FIRST_TRAIN``)."""
    return torch.cat([x, draw(n - x.shape[0])]) if n > x.shape[0] else x


def build_problem(name: str, args) -> Problem:
    spec = parse_problem(name)
    d = spec["d"]
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + zlib.crc32(name.encode()))
    n, N = args.n_train, args.test_points
    # the first FIRST_TRAIN training samples are drawn before the test inputs, any more after them:
    # runs with more training data keep the test inputs, the floor and the first samples
    n_first = min(n, FIRST_TRAIN)
    if spec["kind"] == "gauss":
        a, A = torch.randn(d, generator=g, dtype=DT), _spd(d, g)
        b, B = torch.randn(d, generator=g, dtype=DT), _spd(d, g)
        ref = gaussian_sb(a, A, b, B, eps=args.gauss_eps)
        x0, x1 = _normal(a, A, n_first, g), _normal(b, B, n_first, g)
        x_test = _normal(a, A, N, g)
        x_cov = _normal(a, A, args.cov_points, g)
        x0 = _draw_more(x0, n, lambda k: _normal(a, A, k, g))
        x1 = _draw_more(x1, n, lambda k: _normal(b, B, k, g))
        return Problem(
            name, "gauss", d, ref.eps, ref, x0.to(TRAIN_DT), x1.to(TRAIN_DT), x_test,
            ref.conditional_mean(x_test), ref.conditional_cov().expand(N, d, d), float(torch.trace(B)),
            x_cov=x_cov, C=ref.C,
        )  # fmt: skip
    ref = make_mixture_benchmark(d, r=spec["r"], generator=g)
    x0, x1 = ref.sample_source(n_first, generator=g), ref.sample_target(n_first, generator=g)
    x_test = ref.sample_source(N, generator=g)
    trace = float(torch.trace(ref.target_moments(args.trace_samples, generator=g)[1]))
    x0 = _draw_more(x0, n, lambda k: ref.sample_source(k, generator=g))
    x1 = _draw_more(x1, n, lambda k: ref.sample_target(k, generator=g))
    return Problem(
        name, "mix", d, ref.eps, ref, x0.to(TRAIN_DT), x1.to(TRAIN_DT), x_test,
        ref.conditional_mean(x_test), ref.conditional_cov(x_test), trace,
    )  # fmt: skip


# -- scoring ----------------------------------------------------------------------------------
def _draw_chunked(draw, x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    per = max(1, ROWS_PER_CHUNK // k)
    out = [draw(x[s : s + per], k, g) for s in range(0, x.shape[0], per)]
    y = torch.cat(out).to(DT)
    if not bool(torch.isfinite(y).all()):
        raise FloatingPointError("samples contain NaN or Inf")
    return y


def evaluate(prob: Problem, draw, args, g: torch.Generator, x_dtype=TRAIN_DT) -> dict:
    """cBW2-UVP on ``test_points x per_point`` samples; cross-covariance error on ``cov_points x 1``."""
    t0 = time.perf_counter()
    y = _draw_chunked(draw, prob.x_test.to(x_dtype), args.per_point, g)
    out = {"sample_s": time.perf_counter() - t0}
    out["cbw2_uvp"] = cbw2_uvp(y, prob.true_means, prob.true_covs, prob.target_trace)
    if prob.C is not None:
        t0 = time.perf_counter()
        y1 = _draw_chunked(draw, prob.x_cov.to(x_dtype), 1, g)[:, 0]
        out["cov_sample_s"] = time.perf_counter() - t0
        out["cross_cov_error"] = cross_covariance_error(prob.x_cov, y1, prob.C)
    return out


def floor(prob: Problem, args) -> dict:
    g = torch.Generator().manual_seed(args.seed + 7)
    return evaluate(prob, lambda x, k, gen: prob.ref.sample_conditional(x, k, generator=gen), args, g, x_dtype=DT)


# -- methods ----------------------------------------------------------------------------------
def bridge_config(args) -> SBConfig:
    """SBConfig defaults, the budget, the seed, the threads, then ``--bridge-set`` overrides."""
    steps = args.bridge_outer_steps if args.bridge_outer_steps else 10**6  # default: the budget decides
    cfg = dict(time_budget=args.budget, outer_steps=steps, seed=args.seed, threads=args.threads or None)
    return SBConfig(**(cfg | args.bridge_set))


def run_bridge(prob: Problem, args, family: str = "network") -> dict:
    cfg = replace(bridge_config(args), drift_family=family)
    t0 = time.perf_counter()
    res = solve_bridge(prob.x0_train, prob.x1_train, prob.eps, config=cfg, progress=lambda m: say(f"  {m}"))
    train_s = time.perf_counter() - t0
    g = torch.Generator().manual_seed(args.seed + 11)
    out = {
        "implementation": "bridge.sb.solve_bridge (max-min over interpolants, docs/math.md §5)",
        "train_s": train_s,
        "sde_steps": args.sde_steps,
        "sde_grid": BRIDGE_GRID,
        "outer_steps": res.steps,
        "stopped_by": res.stopped_by,
        "sampling": res.sampling_method(),
        "coupling": res.coupling,
        "validation": res.validation,
        "history": res.history,  # objective, kinetic energy along the interpolant path, inner gap
        "config": asdict(res.config),  # as resolved by the solver (gradient_drift="auto")
        "family": res.family,  # drift_family="auto": the mixture family's test (bridge.sb.family)
    }
    draw = lambda x, k, gen: res.sample(x, per_point=k, steps=args.sde_steps, generator=gen, grid=BRIDGE_GRID)
    return out | evaluate(prob, draw, args, g) | _with_all_components(prob, res, args)


def _with_all_components(prob: Problem, res, args) -> dict:
    """Where the solver switched mixture components off (bridge.sb.prune): the same potential with
    every component on, scored on the same draws, as ``all_components``."""
    if not res.family.get("pruned", {}).get("switched_off"):
        return {}
    pot = copy.deepcopy(res.drift_net)
    off = ~pot.active
    pot.active.fill_(True)
    draw = lambda x, k, gen: pot.sample(x, k, generator=gen)
    out = evaluate(prob, draw, args, torch.Generator().manual_seed(args.seed + 11))
    with torch.no_grad():  # the switched-off components' share of x1 | x0 at the test sources
        share = pot.conditional_log_weights(prob.x_test.to(TRAIN_DT)).exp()[:, off].sum(1)
        var = pot.cov_matrix().diagonal(dim1=-2, dim2=-1)
    out |= {
        "off_share_max": float(share.max()),
        "test_sources_off_share_over_1pct": int((share > 0.01).sum()),
        "variance_range_off": [float(var[off].min()), float(var[off].max())],
        "variance_range_kept": [float(var[~off].min()), float(var[~off].max())],
    }
    return {"all_components": out}


def run_pot(prob: Problem, args) -> dict:
    n = max(prob.x0_train.shape[0], prob.x1_train.shape[0])
    t0 = time.perf_counter()
    if n <= args.pot_dense_max:
        res = entropic_plan(prob.x0_train, prob.x1_train, prob.eps, tol=args.pot_tol, check=False)
        how = "bridge.ot.entropic_plan (POT sinkhorn_log, dense plan)"
    else:
        res = entropic_potentials(
            prob.x0_train, prob.x1_train, prob.eps, start="anneal", tol=args.pot_tol,
            max_iter=args.pot_max_iter, check=False,
        )  # fmt: skip
        how = "bridge.ot.entropic_potentials (annealed log-domain Sinkhorn, no dense plan)"
    train_s = time.perf_counter() - t0
    out = {
        "implementation": f"{how}, reg = 4 eps = {pot_reg(prob.eps):g}, out-of-sample entropic conditional",
        "train_s": train_s,
        "sde_steps": None,
        "marginal_error": res.marginal_error,
        "sinkhorn_iterations": res.n_iter,
        "converged": res.converged,
        "tol": args.pot_tol,
    }
    if not res.converged:
        out["note"] = f"marginal error {res.marginal_error:.2g} > tol {args.pot_tol:g}"
    g = torch.Generator().manual_seed(args.seed + 13)
    return out | evaluate(prob, lambda x, k, gen: res.conditional_sample(x, k, generator=gen), args, g)


class TorchCFMPath:
    """Minibatch SB pairs, bridge points and regression targets from torchcfm (a peer library).

    torchcfm draws ``t`` and the minibatch plan from torch's and numpy's global generators (seeded
    by :func:`run_sf2m`); its warnings and prints about failed plans are counted, not shown.
    """

    def __init__(self, eps: float, ot_method: str, generator: torch.Generator, t_min: float):
        import torchcfm
        from torchcfm.conditional_flow_matching import SchrodingerBridgeConditionalFlowMatcher

        self.sigma = math.sqrt(reference_variance(eps))  # sigma W = sqrt(2 eps) W
        self.fm = SchrodingerBridgeConditionalFlowMatcher(sigma=self.sigma, ot_method=ot_method)
        if ot_method == "sinkhorn" and not math.isclose(self.fm.ot_sampler.reg, pot_reg(eps)):
            raise RuntimeError(f"torchcfm's minibatch reg {self.fm.ot_sampler.reg} is not 4 eps = {pot_reg(eps)}")
        self.label = (
            f"SF2M (torchcfm {torchcfm.__version__} SchrodingerBridgeConditionalFlowMatcher, "
            f"sigma = sqrt(2 eps), ot_method={ot_method!r})"
        )
        self.counts = {"uniform_plan_fallbacks": 0, "other_warnings": 0, "nonfinite_plan_reports": 0}
        self.messages: dict[str, int] = {}  # the distinct warnings (first 10), for the record

    def __call__(self, x0: torch.Tensor, x1: torch.Tensor):
        buf = io.StringIO()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(buf):
            warnings.simplefilter("always")
            t, xt, ut, z = self.fm.sample_location_and_conditional_flow(x0, x1, return_noise=True)
            lam = self.fm.compute_lambda(t)
        for w in caught:
            msg = str(w.message).strip()[:100]
            self.counts["uniform_plan_fallbacks" if "uniform plan" in msg else "other_warnings"] += 1
            if msg in self.messages or len(self.messages) < 10:
                self.messages[msg] = self.messages.get(msg, 0) + 1
        self.counts["nonfinite_plan_reports"] += buf.getvalue().count("not finite")
        return t, xt, ut, z, lam


def minibatch_plan(x0: torch.Tensor, x1: torch.Tensor, reg: float, *, tol: float = 1e-2, max_iter: int = 200):
    r"""Entropic plan of a minibatch at POT's ``reg`` (``= 4 eps``) on the squared distance, uniform
    weights: :func:`bridge.ot.minibatch_log_plan` (log-domain Sinkhorn on the precomputed cost,
    annealed from ``max C``; the row marginal is exact, the column marginal within ``tol``).
    Returns ``(plan (n, m) float64, marginal error)``.
    """
    res = minibatch_log_plan(x0, x1, reg / 4.0, tol=tol, max_iter=max_iter)
    return res.log_plan.exp(), res.marginal_error


class OwnSF2MPath:
    r"""Our implementation of the SF2M training pairs (Tong et al. 2024, Alg. 1), written from the paper.

    For a minibatch ``(x0_i), (x1_j)``: the entropic plan at the same eps (``reg = 4 eps``,
    :func:`minibatch_plan`; ``"exact"``: unregularised, ``ot.emd``), ``n`` index
    pairs drawn from it, ``t ~ U[t_min, 1 - t_min]``, ``z ~ N(0, I)`` and, with
    ``sigma_t = sigma sqrt(t(1-t))``,

    .. math::
        x_t = (1-t)x_0 + t x_1 + \sigma_t z,\quad
        u_t = x_1 - x_0 + \frac{\dot\sigma_t}{\sigma_t}(x_t - \mu_t)
            = x_1 - x_0 + \sigma\frac{1-2t}{2\sqrt{t(1-t)}}\,z,\quad
        \lambda_t = \frac{2\sigma_t}{\sigma^2}.
    """

    def __init__(self, eps: float, ot_method: str, generator: torch.Generator, t_min: float):
        self.eps, self.ot_method, self.g, self.t_min = eps, ot_method, generator, t_min
        self.sigma = math.sqrt(reference_variance(eps))
        self.label = OWN_SF2M + f", ot_method={ot_method!r}"
        self.counts = {"max_minibatch_marginal_error": 0.0}
        self.messages: dict[str, int] = {}

    def _pairs(self, x0: torch.Tensor, x1: torch.Tensor):
        n, m = x0.shape[0], x1.shape[0]
        if self.ot_method == "sinkhorn":
            plan, err = minibatch_plan(x0, x1, pot_reg(self.eps))
            self.counts["max_minibatch_marginal_error"] = max(self.counts["max_minibatch_marginal_error"], err)
        else:
            import ot

            a, b = x0.double(), x1.double()
            plan = ot.emd(a.new_full((n,), 1 / n), b.new_full((m,), 1 / m), ot.dist(a, b))
        idx = torch.multinomial(plan.flatten().clamp_min(0), n, replacement=True, generator=self.g)
        return x0[idx // m], x1[idx % m]

    def __call__(self, x0: torch.Tensor, x1: torch.Tensor):
        x0, x1 = self._pairs(x0, x1)
        n = x0.shape[0]
        t = self.t_min + (1 - 2 * self.t_min) * torch.rand(n, generator=self.g, dtype=x0.dtype)
        z = torch.randn(x0.shape, generator=self.g, dtype=x0.dtype)
        root = torch.sqrt(t * (1 - t)).unsqueeze(1)
        xt = (1 - t).unsqueeze(1) * x0 + t.unsqueeze(1) * x1 + self.sigma * root * z
        ut = x1 - x0 + self.sigma * (1 - 2 * t).unsqueeze(1) / (2 * root) * z
        return t, xt, ut, z, 2 * root.squeeze(1) / self.sigma


def sf2m_path(eps: float, impl: str, ot_method: str, g: torch.Generator, t_min: float):
    """The torchcfm path when it is importable (or forced), else ours; and why ours."""
    if impl in ("auto", "torchcfm"):
        try:
            return TorchCFMPath(eps, ot_method, g, t_min), None
        except Exception as err:  # ImportError, or an import that breaks inside a dependency
            if impl == "torchcfm":
                raise
            why = f"torchcfm not importable ({type(err).__name__}: {err})"
            return OwnSF2MPath(eps, ot_method, g, t_min), why
    return OwnSF2MPath(eps, ot_method, g, t_min), "own implementation requested"


def run_sf2m(prob: Problem, args, impl: str | None = None) -> dict:
    cfg = bridge_config(args)  # the same MLP size and learning rate as bridge's drift networks
    cfg = replace(cfg, lr_inner=learning_rates(replace(cfg, drift_family="network"))[0])
    g = torch.Generator().manual_seed(args.seed + 17)
    torch.manual_seed(args.seed)  # torchcfm draws from the global generators (a script may seed them)
    np.random.seed(args.seed)
    path, why = sf2m_path(prob.eps, impl or args.sf2m_impl, args.sf2m_ot, g, cfg.t_min)
    d = prob.d
    flow = MLP(d, hidden=cfg.hidden, depth=cfg.depth, activation="silu", generator=g)
    score = MLP(d, hidden=cfg.hidden, depth=cfg.depth, activation="silu", generator=g)
    opt = torch.optim.Adam([*flow.parameters(), *score.parameters()], lr=cfg.lr_inner)
    x0, x1, bs = prob.x0_train, prob.x1_train, args.sf2m_batch
    t0 = time.perf_counter()
    steps, last_log, losses = 0, t0, (math.nan, math.nan)
    while (elapsed := time.perf_counter() - t0) < args.budget:
        decay = 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(elapsed / args.budget, 1.0)))  # as bridge's
        for grp in opt.param_groups:
            grp["lr"] = cfg.lr_inner * decay
        i0 = torch.randint(0, x0.shape[0], (bs,), generator=g)
        i1 = torch.randint(0, x1.shape[0], (bs,), generator=g)
        t, xt, ut, z, lam = path(x0[i0], x1[i1])
        flow_loss = (flow(t, xt) - ut).pow(2).mean()
        score_loss = (lam.unsqueeze(1) * score(t, xt) + z).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        (flow_loss + score_loss).backward()
        opt.step()
        steps += 1
        losses = (float(flow_loss.detach()), float(score_loss.detach()))
        if time.perf_counter() - last_log > max(10.0, args.budget / 10):
            last_log = time.perf_counter()
            say(f"  [sf2m] step {steps}  flow loss {losses[0]:.4f}  score loss {losses[1]:.4f}  {last_log - t0:.1f}s")
    train_s = time.perf_counter() - t0
    flow.eval(), score.eval()

    def drift(t, x):  # v + (sigma^2 / 2) grad log p: the score net already carries sigma^2 / 2
        return flow(t, x) + score(t, x)

    sde_drift, sde_eps = (drift, prob.eps) if args.sf2m_grid == "uniform" else end_grid_sde(drift, prob.eps)

    def draw(x, k, gen):
        with torch.no_grad():
            xk = x.repeat_interleave(k, dim=0)
            res = sample_sde(sde_drift, xk, eps=sde_eps, steps=args.sde_steps, solver=StochasticHeun(), generator=gen)
        return res.x.reshape(x.shape[0], k, d)

    out = {
        "implementation": path.label,
        "fallback_reason": why,
        "train_s": train_s,
        "sde_steps": args.sde_steps,
        "sde_grid": args.sf2m_grid,
        "train_steps": steps,
        "batch_size": bs,
        "final_losses": {"flow": losses[0], "score": losses[1]},
        "sigma": path.sigma,
        "path_counts": dict(path.counts),
        "path_warnings": dict(path.messages),
    }
    if path.counts.get("uniform_plan_fallbacks"):
        out["note"] = f"{path.counts['uniform_plan_fallbacks']}/{steps} minibatch plans fell back to uniform"
    return out | evaluate(prob, draw, args, torch.Generator().manual_seed(args.seed + 19))


def run_gauss_plugin(prob: Problem, args) -> dict:
    if prob.kind != "gauss":
        raise ValueError("gauss-plugin: Gaussian problems only")
    t0 = time.perf_counter()
    x0, x1 = prob.x0_train.to(DT), prob.x1_train.to(DT)
    fit = gaussian_sb(x0.mean(0), torch.cov(x0.T), x1.mean(0), torch.cov(x1.T), eps=prob.eps)
    out = {"implementation": "bridge.reference.gaussian_sb of the training samples' means and covariances"}
    out["sampling"] = "exact"
    out["train_s"] = time.perf_counter() - t0
    draw = lambda x, k, gen: fit.sample_conditional(x, k, generator=gen)
    return out | evaluate(prob, draw, args, torch.Generator().manual_seed(args.seed + 11), x_dtype=DT)


METHODS = {
    "bridge": run_bridge,
    "bridge-mixture": lambda prob, args: run_bridge(prob, args, family="mixture"),
    "bridge-auto": lambda prob, args: run_bridge(prob, args, family="auto"),
    "pot": run_pot,
    "sf2m": run_sf2m,  # torchcfm when importable (--sf2m-impl)
    "sf2m-own": lambda prob, args: run_sf2m(prob, args, impl="own"),  # ours, e.g. next to torchcfm's
    "lightsb": lambda prob, args: lightsb_peer.run(prob, args, evaluate, say),
    "gauss-plugin": run_gauss_plugin,
}
LABELS = {
    "bridge": "bridge",
    "bridge-mixture": "bridge (mixture)",
    "bridge-auto": "bridge (auto family)",
    "pot": "Sinkhorn (discrete)",
    "sf2m": "SF2M",
    "sf2m-own": "SF2M",
    "lightsb": "LightSB",
    "gauss-plugin": "Gaussian plug-in (bound)",
}


# -- one problem, the table, the record -------------------------------------------------------
def bench_problem(name: str, args) -> dict:
    t0 = time.perf_counter()
    prob = build_problem(name, args)
    rec = {
        "name": name,
        "kind": prob.kind,
        "d": prob.d,
        "eps": prob.eps,
        "r": 2 * prob.eps,
        "n_train": args.n_train,
        "test_points": args.test_points,
        "per_point": args.per_point,
        "cov_points": args.cov_points if prob.kind == "gauss" else None,
        "target_cov_trace": prob.target_trace,
        "setup_s": time.perf_counter() - t0,
    }
    rec["floor"] = floor(prob, args)
    say(f"[{name}] floor: cBW2-UVP {rec['floor']['cbw2_uvp']:.3f}%")
    rec["methods"] = {}
    for key in args.methods:
        say(
            f"[{name}] {key}: "
            + {"pot": "Sinkhorn on the training samples", "gauss-plugin": "the training samples' Gaussians"}.get(
                key, f"training for {args.budget:g}s"
            )
        )
        try:
            res = METHODS[key](prob, args)
        except Exception as err:  # a failed method is a result, not the end of the run
            traceback.print_exc(file=sys.stderr)
            res = {"error": f"{type(err).__name__}: {err}"}
        rec["methods"][key] = res
        say(f"[{name}] {key}: " + (res["error"] if "error" in res else f"cBW2-UVP {res['cbw2_uvp']:.3f}%"))
    base = rec["methods"].get("bridge", {})
    for res in rec["methods"].values():
        for metric in ("cbw2_uvp", "cross_cov_error"):
            if metric in res:
                res[f"{metric}_over_floor"] = res[metric] - rec["floor"][metric]
                ok = base.get(metric) not in (None, 0.0)
                res[f"{metric}_ratio_to_bridge"] = res[metric] / base[metric] if ok else None
    rec["wall_s"] = time.perf_counter() - t0
    return rec


def _f(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def table(records: list[dict]) -> str:
    lines = [
        "| problem | method | train (s) | sample (s) | SDE steps | cBW2-UVP (%) | − floor | / bridge "
        "| cross-cov err (%) | / bridge | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in records:
        fl = rec["floor"]
        cc = fl.get("cross_cov_error")
        lines.append(
            f"| {rec['name']} | exact samples (floor) | — | {fl['sample_s']:.1f} | — | {fl['cbw2_uvp']:.3f} | — | — "
            f"| {_f(None if cc is None else 100 * cc, '.2f')} | — | {rec['test_points']} x {rec['per_point']} |"
        )
        for key, res in rec["methods"].items():
            impl = res.get("implementation", "")
            label = LABELS[key] + (
                " (own)" if "own implementation" in impl else " (torchcfm)" if "torchcfm" in impl else ""
            )
            if "error" in res:
                msg = res["error"].replace("|", "/").replace("\n", " ")
                lines.append(f"| {rec['name']} | {label} | — | — | — | — | — | — | — | — | failed: {msg[:120]} |")
                continue
            cc = res.get("cross_cov_error")
            cells = [
                rec["name"],
                label,
                f"{res['train_s']:.1f}",
                f"{res['sample_s']:.1f}",
                "exact"
                if res.get("sampling") == "exact"
                else _f(res["sde_steps"], "d") + (f" ({res['sde_grid']})" if res.get("sde_grid") else ""),
                f"{res['cbw2_uvp']:.3f}",
                f"{res['cbw2_uvp_over_floor']:.3f}",
                _f(res["cbw2_uvp_ratio_to_bridge"], ".2f"),
                _f(None if cc is None else 100 * cc, ".2f"),
                _f(res.get("cross_cov_error_ratio_to_bridge"), ".2f"),
                res.get("note", ""),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions() -> dict:
    import ot

    out = {
        "bridge": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pot": ot.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torchcfm

        out["torchcfm"] = torchcfm.__version__
    except Exception:
        out["torchcfm"] = None
    return out


def warm_up() -> None:
    """One-time process costs (importing POT; torch's first optimizer imports its compiler stack,
    ~3 s here) paid before any timing, so that they do not land on whichever method runs first."""
    import ot  # noqa: F401

    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1e-3)
    w.sum().backward()
    opt.step()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    p.add_argument("--problems", default=None, help=f"comma-separated (default: {FULL['problems']})")
    p.add_argument("--budget", type=float, default=None, help="training seconds per method per problem (default 300)")
    p.add_argument("--sde-steps", type=int, default=None, help="SDE steps of bridge and SF2M (default 200)")
    p.add_argument("--n-train", type=int, default=None, help="training samples per side (default 10000)")
    p.add_argument("--test-points", type=int, default=None, help="test inputs for cBW2-UVP (default 500)")
    p.add_argument("--per-point", type=int, default=None, help="samples per test input (default 500)")
    p.add_argument("--cov-points", type=int, default=None, help="inputs (1 sample each) for the cross-covariance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default="bridge,pot,sf2m", help="comma-separated subset of " + ",".join(METHODS))
    p.add_argument("--gauss-eps", type=float, default=0.5, help="eps of the Gaussian problems")
    p.add_argument("--trace-samples", type=int, default=100_000, help="samples for tr Cov(rho1) (mixtures)")
    p.add_argument("--bridge-outer-steps", type=int, default=None, help="cap on outer steps (default: the budget)")
    p.add_argument(
        "--bridge-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='SBConfig field for bridge (JSON value), e.g. drift_form="endpoint" or plan_size=4096; repeatable. '
        "hidden, depth and lr_inner also size SF2M's networks",
    )
    p.add_argument("--pot-dense-max", type=int, default=2000, help="largest n for the dense POT plan")
    p.add_argument("--pot-tol", type=float, default=1e-3, help="Sinkhorn marginal L1 tolerance")
    p.add_argument("--pot-max-iter", type=int, default=300, help="Sinkhorn sweeps after annealing (large n)")
    p.add_argument("--sf2m-impl", choices=("auto", "torchcfm", "own"), default="auto")
    p.add_argument("--sf2m-ot", choices=("sinkhorn", "exact"), default="sinkhorn", help="minibatch coupling")
    p.add_argument(
        "--sf2m-grid",
        choices=("uniform", "end"),
        default="uniform",
        help="SF2M's SDE grid: uniform steps in t (as SF2M samples), or bridge's end-refined grid "
        "(bridge.sb.end_grid_sde), to see what the grid alone is worth",
    )
    p.add_argument("--sf2m-batch", type=int, default=256, help="SF2M minibatch (256 as in torchcfm's SF2M tutorial)")
    lightsb_peer.add_arguments(p)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: leave as is)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "sb.json"))
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, val in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, val)
    if args.cov_points is None:
        args.cov_points = 10_000 if args.quick else 100_000
    args.bridge_set = parse_overrides(args.bridge_set, set(SBConfig.__dataclass_fields__), "--bridge-set", p.error)
    args.lightsb_set = lightsb_peer.parse_overrides(args.lightsb_set, p.error)
    args.problems = [s.strip() for s in args.problems.split(",") if s.strip()]
    for name in args.problems:
        parse_problem(name)
    args.methods = [s.strip() for s in args.methods.split(",") if s.strip()]
    bad = [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f"--methods: unknown {', '.join(bad)}; expected a subset of {', '.join(METHODS)}")
    for key in ("n_train", "test_points", "cov_points", "sde_steps", "sf2m_batch"):
        if getattr(args, key) < 1:
            p.error(f"--{key.replace('_', '-')}: expected a positive int, got {getattr(args, key)}")
    if args.per_point < 2:
        p.error(f"--per-point: expected >= 2 (a sample covariance per input), got {args.per_point}")
    if not args.budget > 0:
        p.error(f"--budget: expected a positive number of seconds, got {args.budget}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "what": "SB solver vs discrete Sinkhorn and SF2M on problems with a known plan",
        "config": vars(args),
        "seed": args.seed,
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "problems": [],
    }
    warm_up()
    t_all = time.perf_counter()
    for name in args.problems:
        record["problems"].append(bench_problem(name, args))
        record["total_wall_s"] = time.perf_counter() - t_all
        out.write_text(json.dumps(record, indent=2, default=str))  # partial results survive a stop
    sf2m = {res.get("implementation") for r in record["problems"] for k, res in r["methods"].items() if "sf2m" in k}
    record["sf2m_implementation"] = sorted(s for s in sf2m if s)
    out.write_text(json.dumps(record, indent=2, default=str))
    print(table(record["problems"]))
    print()
    print("Floor: cBW2-UVP of exact conditional samples at the same inputs and K (sampling noise only).")
    print("'− floor': the method's excess over it; '/ bridge': the method's metric over bridge's (> 1: bridge better).")
    for s in record["sf2m_implementation"]:
        print(f"SF2M ran as: {s}")
    published = lightsb_peer.published_table(record["problems"])
    if published:
        print()
        print("LightSB's published cBW2-UVP (its paper; other instances of the same design, other test sizes):")
        print(published)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
