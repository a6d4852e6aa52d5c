"""Gaussian-mixture closed forms (docs/math.md §7, SI App. A) against independent references.

Independent references used here: scipy's multivariate normal (log-density), autograd (score
= grad log rho; the transport equation d/dt log rho + div b + b . grad log rho = 0, which pins
down b given log rho), Monte-Carlo samples of ``interp.x_t`` (marginal moments), and docs/math.md §7's
Gaussian formula ``b = m_dot + 1/2 C_dot C^{-1}(x - m)`` with ``m_dot, C_dot`` by autograd.

Tolerances
----------
=====================  ==========================  ==============================================
check                  tolerance                   reason
=====================  ==========================  ==============================================
exact identities       rtol = atol = 1e-8          float64 closed forms vs autograd / scipy; the
                                                   covariances have condition numbers <= 1e3,
                                                   so rounding stays far below 1e-8
float32 vs float64     rtol = 1e-4, atol = 1e-5    float32 eps 1.2e-7 times condition <= 1e3
MC moments (mean)      Z_TOL = 5 standard errors   SE = sqrt(Var x_j / n), Var from the exact cov
MC moments (cov)       Z_TOL = 5 standard errors   SE = std((x_i - m_i)(x_j - m_j)) / sqrt(n),
                                                   estimated from the same samples; 5 SE is a
                                                   two-sided false-alarm rate of 6e-7 per entry
                                                   (< 1e-4 over all entries; seeds are fixed)
=====================  ==========================  ==============================================
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bridge.fields import Fields
from bridge.interpolants import (
    BrownianGamma,
    EncoderDecoder,
    FunctionSchedule,
    Linear,
    LinearDown,
    LinearUp,
    Mirror,
    OneSidedLinear,
    OneSidedTrig,
    QuadraticGamma,
    SpatiallyLinearInterpolant,
    Trig,
    ZeroGamma,
)
from bridge.reference import GaussianMixture, InterpolantOracle, gaussian, standard_normal

DT = torch.float64
EXACT = dict(rtol=1e-8, atol=1e-8)
F32 = dict(rtol=1e-4, atol=1e-5)
Z_TOL = 5.0
N_MC = 50_000


# -- problem generators ------------------------------------------------------------------------
def random_mixture(d, K, seed, *, diagonal=False, spread=2.0):
    """A mixture with well-separated-ish means and SPD covariances (condition number <= ~1e2)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(K, generator=g, dtype=DT) + 0.5
    w = w / w.sum()
    means = spread * torch.randn(K, d, generator=g, dtype=DT)
    if diagonal:
        covs = torch.diag_embed(0.2 + torch.rand(K, d, generator=g, dtype=DT))
    else:
        a = torch.randn(K, d, d, generator=g, dtype=DT)
        covs = 0.3 * a @ a.mT / d + 0.1 * torch.eye(d, dtype=DT)
    return GaussianMixture(w, means, covs)


def per_dim_interpolant(d):
    """alpha_k = (1-t)(1 + c_k t), beta_k = t(1 + e_k (1-t)): per-dimension (n, d) coefficients
    satisfying the boundary conditions, derivatives from autograd."""
    c = torch.linspace(-0.5, 1.0, d, dtype=DT)
    e = torch.linspace(0.8, -0.4, d, dtype=DT)
    alpha = FunctionSchedule(lambda t: (1 - t)[:, None] * (1 + c.to(t) * t[:, None]))
    beta = FunctionSchedule(lambda t: t[:, None] * (1 + e.to(t) * (1 - t)[:, None]))
    return SpatiallyLinearInterpolant(alpha, beta, BrownianGamma(0.7))


def cases(dims=(1, 2, 3)):
    """(id, oracle) for every family of docs/math.md §1 and mixtures in several dimensions."""
    out = []
    for d in dims:
        r0, r1 = random_mixture(d, 2, 10 + d), random_mixture(d, 3, 20 + d)
        r1_diag = random_mixture(d, 3, 30 + d, diagonal=True)
        out += [
            (f"linear-d{d}", InterpolantOracle(Linear(BrownianGamma()), r0, r1)),
            (
                f"linear-diag-d{d}",
                InterpolantOracle(Linear(QuadraticGamma()), random_mixture(d, 2, 40 + d, diagonal=True), r1_diag),
            ),
            (f"trig-d{d}", InterpolantOracle(Trig(), r0, r1)),
            (f"encdec-d{d}", InterpolantOracle(EncoderDecoder(), r0, r1)),
            (f"onesided-d{d}", InterpolantOracle(OneSidedLinear(), standard_normal(d), r1)),
            (f"onesided-trig-diag-d{d}", InterpolantOracle(OneSidedTrig(), standard_normal(d), r1_diag)),
            (f"mirror-d{d}", InterpolantOracle(Mirror(), r1, r1)),
            (f"perdim-d{d}", InterpolantOracle(per_dim_interpolant(d), r0, r1)),
        ]
    return out


CASES = cases()
CASE_IDS = [c[0] for c in CASES]
ORACLES = [c[1] for c in CASES]


def points(oracle, n, seed, t_lo=0.0, t_hi=1.0):
    """Times spread over [t_lo, t_hi] and points near rho(t): draws of x_t plus N(0, 0.25 I) jitter."""
    g = torch.Generator().manual_seed(seed)
    t = t_lo + (t_hi - t_lo) * torch.rand(n, generator=g, dtype=DT)
    x0, x1 = oracle.rho0.sample(n, generator=g), oracle.rho1.sample(n, generator=g)
    z = torch.randn(x0.shape, generator=g, dtype=DT)
    x = oracle.interp.x_t(t, x0, x1, z)
    return t, x + 0.5 * torch.randn(x.shape, generator=g, dtype=DT)


# -- GaussianMixture ---------------------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 3])
def test_mixture_log_prob_matches_scipy(d):
    rho = random_mixture(d, 4, d)
    x = 2.0 * torch.randn(50, d, generator=torch.Generator().manual_seed(1), dtype=DT)
    comp = np.stack(
        [multivariate_normal(m.numpy(), c.numpy()).logpdf(x.numpy()).reshape(-1) for m, c in zip(rho.means, rho.covs)],
        axis=1,
    )
    ref = logsumexp(comp + np.log(rho.weights.numpy()), axis=1)
    torch.testing.assert_close(rho.log_prob(x), torch.from_numpy(ref), **EXACT)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_mixture_score_is_grad_log_prob(d):
    rho = random_mixture(d, 4, d)
    x = 2.0 * torch.randn(50, d, generator=torch.Generator().manual_seed(2), dtype=DT).requires_grad_(True)
    (grad,) = torch.autograd.grad(rho.log_prob(x).sum(), x)
    torch.testing.assert_close(rho.score(x.detach()), grad, **EXACT)


@pytest.mark.parametrize("d", [1, 3])
def test_mixture_sample_moments(d):
    rho = random_mixture(d, 3, 5 + d)
    x = rho.sample(N_MC, generator=torch.Generator().manual_seed(3))
    assert x.shape == (N_MC, d) and x.dtype == DT
    _assert_moments(x, rho.mean(), rho.cov())


def _assert_moments(x, mean, cov):
    n = x.shape[0]
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert ((x.mean(0) - mean).abs() <= Z_TOL * se_mean).all(), (x.mean(0), mean)
    dx = x - mean
    prods = dx[:, :, None] * dx[:, None, :]
    se_cov = prods.std(0) / math.sqrt(n)
    assert ((prods.mean(0) - cov).abs() <= Z_TOL * se_cov).all(), (prods.mean(0), cov)


def test_gaussian_constructors():
    g = gaussian([1.0, 2.0], 3.0)
    assert g.n_components == 1 and g.dim == 2 and g.weights.dtype == DT
    torch.testing.assert_close(g.cov(), 3.0 * torch.eye(2, dtype=DT))
    torch.testing.assert_close(gaussian([0.0, 0.0], [1.0, 2.0]).cov(), torch.diag(torch.tensor([1.0, 2.0], dtype=DT)))
    full = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=DT)
    torch.testing.assert_close(gaussian(torch.zeros(2, dtype=DT), full).cov(), full)
    assert gaussian(torch.zeros(2), 1.0).weights.dtype == torch.float32
    s = standard_normal(3, dtype=torch.float32)
    assert s.means.dtype == torch.float32 and s.dim == 3
    torch.testing.assert_close(s.cov(), torch.eye(3))


def test_mixture_validation():
    w, m, c = torch.ones(1, dtype=DT), torch.zeros(1, 2, dtype=DT), torch.eye(2, dtype=DT)[None]
    with pytest.raises(TypeError, match="weights"):
        GaussianMixture([1.0], m, c)
    with pytest.raises(TypeError, match="dtype"):
        GaussianMixture(w.float(), m, c)
    with pytest.raises(ValueError, match="means"):
        GaussianMixture(w, torch.zeros(2, 2, dtype=DT), c)
    with pytest.raises(ValueError, match="covs"):
        GaussianMixture(w, m, torch.eye(3, dtype=DT)[None])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.tensor([1.5, -0.5], dtype=DT), torch.zeros(2, 2, dtype=DT), c.expand(2, 2, 2))
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture(torch.tensor([0.5, 0.6], dtype=DT), torch.zeros(2, 2, dtype=DT), c.expand(2, 2, 2))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(w, m, torch.tensor([[[1.0, 2.0], [2.0, 1.0]]], dtype=DT))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture(w, m, torch.tensor([[[1.0, 0.5], [0.0, 1.0]]], dtype=DT))
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(w, torch.full((1, 2), float("nan"), dtype=DT), c)
    with pytest.raises(ValueError, match="cov"):
        gaussian([0.0, 0.0], torch.ones(3))
    rho = standard_normal(2)
    with pytest.raises(ValueError, match="x"):
        rho.log_prob(torch.zeros(3, 3, dtype=DT))
    with pytest.raises(ValueError, match="n"):
        rho.sample(-1)


# -- oracle: score and drift against autograd ----------------------------------------------
@pytest.mark.parametrize("oracle", ORACLES, ids=CASE_IDS)
def test_oracle_score_is_grad_log_density(oracle):
    t, x = points(oracle, 40, 0)
    t = torch.cat([t, t.new_tensor([0.0, 0.5, 1.0])])  # exact ends and the encoder-decoder midpoint
    x = torch.cat([x, x[:3]])
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(oracle.log_density(t, xg).sum(), xg)
    torch.testing.assert_close(oracle.s(t, x), grad, **EXACT)


@pytest.mark.parametrize("oracle", ORACLES, ids=CASE_IDS)
def test_oracle_drift_solves_transport_equation(oracle):
    """d/dt log rho + div b + b . grad log rho = 0 (continuity equation divided by rho)."""
    t, x = points(oracle, 30, 1, 0.05, 0.95)
    t = t.clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)
    logp = oracle.log_density(t, x)
    dlogp_dt, score = torch.autograd.grad(logp.sum(), (t, x))
    b = oracle.b(t.detach(), x)
    div = sum(torch.autograd.grad(b[:, j].sum(), x, retain_graph=True)[0][:, j] for j in range(x.shape[1]))
    residual = dlogp_dt + div + (b * score).sum(-1)
    scale = 1.0 + dlogp_dt.abs() + div.abs() + (b * score).sum(-1).abs()
    assert (residual.abs() <= 1e-8 * scale).all(), residual.abs().max()


@pytest.mark.parametrize("interp", [Linear(BrownianGamma()), Trig()], ids=repr)
def test_oracle_drift_matches_gaussian_closed_form(interp):
    """docs/math.md §7: b = m_dot + 1/2 C_dot C^{-1}(x - m) for one Gaussian and scalar coefficients."""
    d = 3
    r0, r1 = random_mixture(d, 1, 50), random_mixture(d, 1, 51)
    oracle = InterpolantOracle(interp, r0, r1)
    m0, m1, c0, c1 = r0.means[0], r1.means[0], r0.covs[0], r1.covs[0]

    def moments(s):
        a, b, g = interp.alpha(s), interp.beta(s), interp.gamma(s)
        return a * m0 + b * m1, a**2 * c0 + b**2 * c1 + g**2 * torch.eye(d, dtype=DT)

    g = torch.Generator().manual_seed(4)
    for t in [0.02, 0.1, 0.5, 0.77, 0.98]:  # interior: d/dt gamma^2 via sqrt is NaN at the ends
        tt = torch.tensor(t, dtype=DT)
        m, C = moments(tt)
        m_dot, C_dot = torch.autograd.functional.jacobian(moments, tt)
        x = torch.randn(5, d, generator=g, dtype=DT)
        ref = m_dot + 0.5 * torch.linalg.solve(C, (x - m).T).T @ C_dot.T
        torch.testing.assert_close(oracle.b(torch.full((5,), t, dtype=DT), x), ref, **EXACT)
        torch.testing.assert_close(oracle.s(t, x), -torch.linalg.solve(C, (x - m).T).T, **EXACT)


# -- oracle: marginals ---------------------------------------------------------------------
@pytest.mark.parametrize("oracle", ORACLES, ids=CASE_IDS)
def test_marginal_endpoints(oracle):
    x = 2.0 * torch.randn(30, oracle.dim, generator=torch.Generator().manual_seed(5), dtype=DT)
    rho0 = oracle.rho1 if oracle.interp.mirror else oracle.rho0  # mirror: rho0 = rho1, x0 unused
    torch.testing.assert_close(oracle.marginal(0.0).log_prob(x), rho0.log_prob(x), **EXACT)
    torch.testing.assert_close(oracle.marginal(1.0).log_prob(x), oracle.rho1.log_prob(x), **EXACT)
    # log_density with a per-row time agrees with the marginal
    torch.testing.assert_close(oracle.log_density(torch.zeros(30, dtype=DT), x), rho0.log_prob(x), **EXACT)
    assert oracle.marginal(0.3).n_components == oracle.n_components


MC_CASES = [c for c in CASES if c[0].endswith("d2")]


@pytest.mark.parametrize("oracle", [c[1] for c in MC_CASES], ids=[c[0] for c in MC_CASES])
def test_marginal_moments_match_monte_carlo(oracle):
    g = torch.Generator().manual_seed(6)
    n, d = N_MC, oracle.dim
    x0 = oracle.rho0.sample(n, generator=g)
    x1 = oracle.rho1.sample(n, generator=g)
    z = torch.randn(n, d, generator=g, dtype=DT)
    for t in [0.2, 0.5, 0.85]:
        xt = oracle.interp.x_t(torch.full((n,), t, dtype=DT), x0, x1, z)
        mt = oracle.marginal(t)
        _assert_moments(xt, mt.mean(), mt.cov())


# -- oracle: conversions, dtypes, chunking, errors -----------------------------------------
@pytest.mark.parametrize("oracle", ORACLES, ids=CASE_IDS)
def test_oracle_fields_bundle(oracle):
    t, x = points(oracle, 20, 7, 0.05, 0.95)
    f = oracle.fields()
    assert isinstance(f, Fields)
    torch.testing.assert_close(f.drift(t, x), oracle.b(t, x))
    torch.testing.assert_close(f.score(t, x), oracle.s(t, x))
    # eta = -c s with c = gamma (two-sided, mirror) or alpha (one-sided), SI 2.14 / 4.20
    c = oracle.interp.noise_scale(t)
    c = c[:, None] if c.dim() == 1 else c
    torch.testing.assert_close(oracle.eta(t, x), -c * oracle.s(t, x), **EXACT)
    torch.testing.assert_close(f.x1_mean, oracle.rho1.mean())


@pytest.mark.parametrize(
    "oracle", [ORACLES[CASE_IDS.index(i)] for i in ["linear-d3", "linear-diag-d3", "onesided-d3", "perdim-d3"]]
)
def test_oracle_float32(oracle):
    t, x = points(oracle, 20, 8, 0.02, 0.98)
    for name in ["b", "v", "s", "eta", "log_density"]:
        ref = getattr(oracle, name)(t, x)
        got = getattr(oracle, name)(t.float(), x.float())
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), ref, **F32)


def test_oracle_chunking_and_shared_times():
    """Rows grouped by time (sorted, chunked solves) agree with rows evaluated one by one."""
    r0, r1 = random_mixture(3, 2, 60), random_mixture(3, 3, 61)
    # K = 6, d = 3: K d^2 = 54 entries per row, K d = 18 per row in the grouped path
    small = InterpolantOracle(Linear(), r0, r1, chunk_elements=120)
    g = torch.Generator().manual_seed(9)
    n = 30  # >= 8 rows per distinct time: the grouped path
    t = torch.tensor([0.1, 0.7, 0.55], dtype=DT)[torch.randint(0, 3, (n,), generator=g)]
    x = torch.randn(n, 3, generator=g, dtype=DT)
    one_by_one = {
        name: torch.cat([getattr(small, name)(t[i : i + 1], x[i : i + 1]) for i in range(n)])
        for name in ["b", "v", "s", "eta", "log_density"]
    }
    for o in [small, InterpolantOracle(Linear(), r0, r1)]:
        for name, ref in one_by_one.items():
            torch.testing.assert_close(getattr(o, name)(t, x), ref, **EXACT)
            # per-row path (distinct times are forced by a time that carries a gradient)
            torch.testing.assert_close(getattr(o, name)(t.clone().requires_grad_(True), x).detach(), ref, **EXACT)
    # a scalar time is broadcast to every row
    torch.testing.assert_close(small.b(0.4, x), small.b(torch.full((n,), 0.4, dtype=DT), x), **EXACT)
    # gradients flow through the grouped path (one time, chunked rows, reassembled by index)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(small.log_density(t, xg).sum(), xg)
    torch.testing.assert_close(grad, one_by_one["s"], **EXACT)


def test_oracle_errors():
    r = random_mixture(2, 2, 70)
    with pytest.raises(TypeError, match="interp"):
        InterpolantOracle("linear", r, r)
    with pytest.raises(TypeError, match="rho1"):
        InterpolantOracle(Linear(), r, None)
    with pytest.raises(ValueError, match="rho0, rho1"):
        InterpolantOracle(Linear(), r, random_mixture(3, 2, 70))
    with pytest.raises(ValueError, match="rho0"):
        InterpolantOracle(OneSidedLinear(), r, r)
    deterministic = SpatiallyLinearInterpolant(LinearDown(), LinearUp(), ZeroGamma())
    o = InterpolantOracle(deterministic, r, r)
    x = torch.zeros(4, 2, dtype=DT)
    with pytest.raises(ValueError, match="eta"):
        o.eta(0.5, x)
    assert o.fields().eta is None
    o.b(0.5, x)  # b and v are fine without latent noise
    with pytest.raises(ValueError, match="t"):
        o.b(torch.full((4,), 1.5, dtype=DT), x)
    with pytest.raises(ValueError, match="t"):
        o.b(torch.zeros(3, dtype=DT), x)
    with pytest.raises(ValueError, match="x"):
        o.b(0.5, torch.zeros(4, 3, dtype=DT))
    with pytest.raises(ValueError, match="singular"):
        # alpha = beta = gamma = 0 at t = 1/2 in the first dimension: C(t) is singular there
        bad = SpatiallyLinearInterpolant(
            FunctionSchedule(lambda t: torch.stack([(1 - 2 * t).abs(), 1 - t], -1)),
            FunctionSchedule(lambda t: torch.stack([torch.zeros_like(t), t], -1)),
        )
        InterpolantOracle(bad, gaussian([0.0, 0.0], 1.0), gaussian([0.0, 0.0], 1.0)).s(0.5, x)
