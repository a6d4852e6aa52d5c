"""The corrected potential v = v_mix exp(f) (bridge.sb.CorrectedPotential, fit_corrected; docs/math.md §5.14).

Truths: with f = 0 everything is the mixture's (exactly); with K = 1 and a quadratic f the
normaliser, the conditional and the gradients are integrals over the plane, computed here by
quadrature on a grid with torch.distributions' Gaussian density (no formula of the module);
a fit with a wrong, frozen Gaussian mixture recovers the closed-form Gaussian SB
(bridge.reference.gaussian_sb) through f alone.

Tolerances (one row per check):

| check | tolerance | why |
|---|---|---|
| f = 0: log v, log c, loss | 1e-12 (float64) | the same numbers up to a log-sum-exp of zeros |
| log c estimate, bound (20000 draws) | 4 standard errors of the Monte Carlo mean | CLT (delta method) |
| SIR moments (M = 256, 20000 draws) | 4 standard errors + 0.02 | CLT; SIR's O(1/M) bias at ESS ~ 0.7 M |
| gradient of the bound | 4 standard errors (from 8 independent repeats) | CLT |
| K = 3: Z and gradients in all parameters | 4 standard errors (from 8 repeats) | CLT |
| Gaussian SB through f | 0.1 (mean), 25% (variance) | an 800-step fit; seen 0.033 and 9.4% |
"""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, Normal

from bridge.reference import gaussian_sb
from bridge.sb import (
    CorrectedPotential,
    Correction,
    MixturePotential,
    corrected_loss,
    fit_corrected,
    fit_lightsb,
    lightsb_loss,
)

DT = torch.float64
QUIET = dict(progress=lambda m: None)
EPS = 0.5  # r = 1


class Quadratic(nn.Module):
    """f(y) = -a |y|^2 / 2 + <b, y>, with a and b parameters."""

    def __init__(self, a: float, b):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=DT))
        self.b = nn.Parameter(torch.tensor(b, dtype=DT))

    def forward(self, y):
        return -0.5 * self.a * (y * y).sum(-1) + y @ self.b


def _one_gaussian():
    mu, s = torch.tensor([[0.5, -0.3]], dtype=DT), torch.tensor([[0.8, 1.3]], dtype=DT)
    return MixturePotential.from_components(torch.ones(1, dtype=DT), mu, s, EPS), mu[0], s[0]


def _grid(half=9.0, n=601):
    u = torch.linspace(-half, half, n, dtype=DT)
    yy = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    return yy, (u[1] - u[0]) ** 2


def _quadrature(mu, s, f: nn.Module, x0):
    """log c(x0) = log int exp(<x0, y>/r) N(y; mu, r S) e^{f(y)} dy and the conditional's mean and
    covariance, on a grid, for each row of x0."""
    r = 2 * EPS
    yy, area = _grid()
    log_v = MultivariateNormal(mu, torch.diag(r * s)).log_prob(yy) + f(yy)
    logits = x0 @ yy.T / r + log_v  # (n, grid)
    log_c = torch.logsumexp(logits, -1) + torch.log(area)
    w = torch.softmax(logits, -1)
    mean = w @ yy
    cov = torch.einsum("ng,gi,gj->nij", w, yy, yy) - mean.unsqueeze(-1) * mean.unsqueeze(-2)
    return log_c, mean, cov


X0 = torch.tensor([[0.0, 0.0], [1.0, -0.5], [-0.7, 1.2]], dtype=DT)


def test_zero_correction_is_the_mixture():
    g = torch.Generator().manual_seed(0)
    mix = MixturePotential(2, 4, eps=EPS, generator=g, dtype=DT)
    pot = CorrectedPotential(mix, generator=g)
    x0, x1 = torch.randn(50, 2, generator=g, dtype=DT), torch.randn(60, 2, generator=g, dtype=DT)
    assert torch.equal(pot.log_v(x1), mix.log_v(x1))
    torch.testing.assert_close(pot.log_c_estimate(x0, 3, generator=g), mix.log_c(x0), rtol=0, atol=1e-12)
    torch.testing.assert_close(pot.log_c_bound(x0, torch.zeros(50, dtype=DT)), mix.log_c(x0), rtol=0, atol=1e-12)
    torch.testing.assert_close(corrected_loss(pot, x0, x1), lightsb_loss(mix, x0, x1), rtol=0, atol=1e-12)
    draws = pot.importance_draws(x0, 16, generator=g)
    torch.testing.assert_close(draws.effective_sample_size(), torch.full((50,), 16.0, dtype=DT))


def test_zero_correction_samples_the_mixture():
    """SIR with f = 0 resamples exact mixture draws: mean and covariance of the mixture's conditional."""
    g = torch.Generator().manual_seed(1)
    mix = MixturePotential(2, 3, eps=EPS, generator=g, dtype=DT)
    y = CorrectedPotential(mix).sample(X0, 20_000, proposals=8, generator=g)
    cond = mix.conditional(X0)
    se = (cond.cov().diagonal(dim1=-2, dim2=-1) / y.shape[1]).sqrt()
    assert ((y.mean(1) - cond.mean()).abs() < 4 * se).all()


def test_quadratic_correction_log_c_against_quadrature():
    """K = 1, f quadratic: the stratified log-mean estimate (biased low by ~Var/2N, negligible at
    N = 20000) and the bound at a = the exact log E e^f (unbiased) against quadrature."""
    mix, mu, s = _one_gaussian()
    f = Quadratic(0.4, [0.3, -0.6])
    pot = CorrectedPotential(mix, f)
    log_c, _, _ = _quadrature(mu, s, f, X0)
    g = torch.Generator().manual_seed(2)
    J = 20_000
    with torch.no_grad():
        fy = pot._stratified_f(X0, J, g)
        ratio = torch.exp(fy - torch.logsumexp(fy, -1, keepdim=True) + math.log(J))
        se = ratio.std(-1) / math.sqrt(J)  # of the log of the mean, by the delta method
        est = pot.log_c_estimate(X0, J, generator=g)
        a = (log_c - mix.log_c(X0)).detach()
        bound = pot.log_c_bound(X0, a, J, generator=g)
    assert ((est - log_c).abs() < 4 * se).all(), (est - log_c, se)
    assert ((bound - log_c).abs() < 4 * se).all(), (bound - log_c, se)
    assert ((pot.mixture.log_c(X0) - log_c).abs() > 20 * se).sum() >= 2  # the correction matters here


def test_bound_gradient_is_the_gradient_of_log_c():
    """At a = log E e^f, the bound's gradient in f's parameters is grad log c in expectation:
    against autograd through the quadrature."""
    mix, mu, s = _one_gaussian()
    f = Quadratic(0.4, [0.3, -0.6])
    pot = CorrectedPotential(mix, f)
    log_c, _, _ = _quadrature(mu, s, f, X0)
    want = torch.autograd.grad(log_c.sum(), [f.a, f.b])
    a = (log_c - mix.log_c(X0)).detach()
    g = torch.Generator().manual_seed(3)
    reps = []
    for _ in range(8):
        got = torch.autograd.grad(pot.log_c_bound(X0, a, 5000, generator=g).sum(), [f.a, f.b])
        reps.append(torch.cat([got[0].reshape(1), got[1]]))
    reps = torch.stack(reps)
    se = reps.std(0) / math.sqrt(reps.shape[0])
    want = torch.cat([want[0].reshape(1), want[1]])
    assert ((reps.mean(0) - want).abs() < 4 * se + 1e-9).all(), (reps.mean(0), want, se)


def _mixture_quadrature(mix: MixturePotential, f: nn.Module, x0):
    """log c(x0) of v_mix e^f by quadrature, v_mix from the potential's raw parameters through
    torch.distributions (differentiable in them)."""
    r = 2 * EPS
    yy, area = _grid()
    comp = Normal(mix.means, torch.exp(mix.raw_cov / 2) * math.sqrt(r))  # (K, d) diagonal components
    log_v = torch.logsumexp(torch.log_softmax(mix.logits, 0) + comp.log_prob(yy.unsqueeze(1)).sum(-1), -1) + f(yy)
    return torch.logsumexp(x0 @ yy.T / r + log_v, -1) + torch.log(area)


def test_stratified_draws_over_three_components():
    """K = 3 with unequal weights: the systematic draws over components give an unbiased Z and,
    through the bound, the gradient of log c in f's and in every mixture parameter (the weights'
    through the score of the chosen component), against autograd through quadrature."""
    g = torch.Generator().manual_seed(9)
    mix = MixturePotential.from_components(
        torch.tensor([0.6, 0.3, 0.1], dtype=DT),
        torch.tensor([[1.0, 0.0], [-1.0, 0.5], [0.0, -1.5]], dtype=DT),
        torch.tensor([[0.5, 0.8], [1.0, 0.4], [0.7, 0.7]], dtype=DT),
        EPS,
    )
    f = Quadratic(0.3, [0.4, -0.2])
    pot = CorrectedPotential(mix, f)
    params = [mix.logits, mix.means, mix.raw_cov, f.b]
    log_c = _mixture_quadrature(mix, f, X0)
    want = torch.cat([p.reshape(-1) for p in torch.autograd.grad(log_c.sum(), params)])
    a = (log_c - mix.log_c(X0)).detach()
    reps = []
    for _ in range(8):
        bound = pot.log_c_bound(X0, a, 4000, generator=g)
        reps.append(torch.cat([p.reshape(-1) for p in torch.autograd.grad(bound.sum(), params)]))
    reps = torch.stack(reps)
    se = reps.std(0) / math.sqrt(8)
    assert ((reps.mean(0) - want).abs() < 4 * se + 1e-9).all(), (reps.mean(0) - want, se)
    with torch.no_grad():  # few draws per row (4 for 3 components), many rows: the allocation is unbiased
        n = 20_000
        values = pot.log_c_bound(X0.repeat(n, 1), a.repeat(n), 4, generator=g).view(n, 3)
    se_v = values.std(0) / math.sqrt(n)
    assert ((values.mean(0) - log_c.detach()).abs() < 4 * se_v).all(), (values.mean(0) - log_c, se_v)


def test_sir_moments_match_quadrature_and_one_proposal_does_not():
    mix, mu, s = _one_gaussian()
    f = Quadratic(0.4, [0.3, -0.6])
    pot = CorrectedPotential(mix, f)
    _, mean, cov = _quadrature(mu, s, f, X0)
    g = torch.Generator().manual_seed(4)
    n = 20_000
    y = pot.sample(X0, n, proposals=256, generator=g)
    se_mean = (cov.diagonal(dim1=-2, dim2=-1) / n).sqrt()
    se_var = cov.diagonal(dim1=-2, dim2=-1) * math.sqrt(2 / n)
    var = y.var(1)
    assert ((y.mean(1) - mean).abs() < 4 * se_mean + 0.02).all(), (y.mean(1), mean)
    assert ((var - cov.diagonal(dim1=-2, dim2=-1)).abs() < 4 * se_var + 0.02).all(), (var, cov)
    y1 = pot.sample(X0, n, proposals=1, generator=g)  # no resampling: the mixture's conditional
    assert ((y1.mean(1) - mean).abs() > 10 * se_mean).any()
    ess = pot.importance_draws(X0, 256, generator=g).effective_sample_size()
    assert ((ess > 0.3 * 256) & (ess <= 256)).all()


def test_sample_at_is_the_brownian_bridge_to_the_draws():
    mix, _, _ = _one_gaussian()
    pot = CorrectedPotential(mix, Quadratic(0.4, [0.3, -0.6]))
    g = torch.Generator().manual_seed(5)
    assert torch.equal(pot.sample_at(0.0, X0, 3, generator=g)[:, 0], X0)
    gens = [torch.Generator().manual_seed(6) for _ in range(2)]
    x1 = pot.sample(X0, 4, proposals=8, generator=gens[0])
    z = torch.randn(x1.shape, generator=gens[0], dtype=DT)
    xt = pot.sample_at(0.3, X0, 4, proposals=8, generator=gens[1])
    torch.testing.assert_close(xt, 0.7 * X0.unsqueeze(1) + 0.3 * x1 + math.sqrt(0.3 * 0.7) * z)


def test_correction_starts_at_zero_and_bad_input_is_named():
    f = Correction(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(f(torch.randn(5, 3)), torch.zeros(5))
    mix, _, _ = _one_gaussian()
    pot = CorrectedPotential(mix)
    with pytest.raises(ValueError, match="proposals"):
        pot.sample(X0, 2, proposals=0)
    with pytest.raises(ValueError, match="draws"):
        pot.log_c_estimate(X0, 0)
    with pytest.raises(ValueError, match="^a:"):
        pot.log_c_bound(X0, torch.zeros(2, dtype=DT))
    with pytest.raises(ValueError, match="x0"):
        pot.sample(torch.zeros(3, 5, dtype=DT))
    with pytest.raises(TypeError, match="mixture"):
        CorrectedPotential(Correction(2))
    x = torch.randn(100, 2, dtype=DT)
    for kw, name in [
        (dict(estimator="mc"), "estimator"),
        (dict(draws=0), "draws"),
        (dict(mixture_lr=-1.0), "mixture_lr"),
        (dict(steps=None, time_budget=None), "steps, time_budget"),
        (dict(mixture=MixturePotential(3, 1, eps=EPS)), "mixture"),
    ]:
        with pytest.raises(ValueError, match=name):
            fit_corrected(x, x, EPS, **kw, **QUIET)


def test_fit_keeps_the_given_mixture_and_samples_in_time():
    g = torch.Generator().manual_seed(7)
    x0, x1 = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g) + 1
    first = fit_lightsb(x0, x1, EPS, n_components=3, steps=30, generator=g, **QUIET)
    before = [p.detach().clone() for p in first.potential.parameters()]
    res = fit_corrected(x0, x1, EPS, mixture=first, steps=20, mixture_lr=1e-2, generator=g, **QUIET)
    assert all(torch.equal(p, q) for p, q in zip(before, first.potential.parameters()))
    assert not torch.equal(res.potential.mixture.means, first.potential.means)  # trained jointly
    assert res.steps == 20 and res.mixture_fit is None and res.normaliser is not None
    assert res.sample(x0[:5], 3, time=0.0, generator=g).shape == (5, 3, 2)
    assert torch.equal(res.sample(x0[:5], 3, time=0.0, generator=g)[:, 1], x0[:5])
    assert res.effective_sample_size(x0[:5], generator=g).shape == (5,)


@pytest.mark.slow
def test_fit_recovers_the_gaussian_sb_through_f_alone():
    """A K = 1 mixture N(1, r) frozen away from the truth: f must carry the whole correction (a
    quadratic). The fitted conditional's mean and variance against gaussian_sb's closed form."""
    g = torch.Generator().manual_seed(8)
    n = 20_000
    x0 = torch.randn(n, 1, generator=g, dtype=DT)
    x1 = 2.0 + 0.6 * torch.randn(n, 1, generator=g, dtype=DT)
    ref = gaussian_sb(torch.zeros(1, dtype=DT), torch.eye(1, dtype=DT), torch.full((1,), 2.0, dtype=DT),
                      torch.full((1, 1), 0.36, dtype=DT), eps=EPS)  # fmt: skip
    wrong = MixturePotential.from_components(torch.ones(1, dtype=DT), torch.ones(1, 1, dtype=DT),
                                             torch.ones(1, 1, dtype=DT), EPS)  # fmt: skip
    res = fit_corrected(x0, x1, EPS, mixture=wrong, steps=800, lr=3e-3, draws=16, generator=g, **QUIET)
    xs = torch.tensor([[-1.0], [0.0], [1.0]], dtype=DT)
    y = res.sample(xs, 4000, proposals=256, generator=g)
    assert ((y.mean(1) - ref.conditional_mean(xs)).abs() < 0.1).all(), (y.mean(1), ref.conditional_mean(xs))
    var = ref.conditional_cov()[0, 0]
    assert ((y.var(1) / var - 1).abs() < 0.25).all(), (y.var(1), var)
    wrong_mean = wrong.conditional(xs).mean()
    assert ((wrong_mean - ref.conditional_mean(xs)).abs() > 0.7).any()  # the mixture alone is far off
