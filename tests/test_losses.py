"""Quadratic losses (docs/math.md §2, SI 2.13, 2.16, 2.19, 2.29) and field conversions against the exact
Gaussian-mixture fields of :class:`bridge.reference.InterpolantOracle`.

The excess-loss identity. For every loss ``L[f] = E[1/2 |f(x_t)|^2 - target . f(x_t)]`` with
minimiser ``f* = E[target | x_t]``, and a perturbation ``f = f* + h``, the per-sample difference on
common random numbers is

    D_i = L_i[f* + h] - L_i[f*] = Q_i + E_i,   Q_i = 1/2 |h(t_i, x_i)|^2,   E_i = (f* - target)_i . h(t_i, x_i)

(with antithetic pairs: ``Q_i = 1/4 (|h(x+)|^2 + |h(x-)|^2)`` and ``E_i`` the average of the two
cross terms). ``E[E_i] = 0`` exactly when ``f*`` is the conditional expectation (tower property),
so ``mean(D) - mean(Q) = mean(E)`` must be within a few standard errors ``std(E) / sqrt(n)`` of
zero. That tests the oracle fields and the loss targets (signs, 1/gamma, antithetic flips) together:
a wrong target or a wrong f* shifts ``mean(E)`` by ``E[h . error]``.

Tolerances
----------
==========================  ======================  ===============================================
check                       tolerance               reason
==========================  ======================  ===============================================
excess identity             Z_TOL = 4 SE of E       SE = std(E_i)/sqrt(n) from the same samples;
                                                    two-sided false-alarm rate 6e-5 per case with
                                                    a CLT (the 1/gamma terms make E heavy tailed,
                                                    hence 4 rather than 3); seeds are fixed
resolution of that check    mean(Q) >= RES * SE     the excess itself is resolved (RES = 5; measured
                                                    >= 17), so an error in f* or in a target worth
                                                    a fraction Z_TOL / 17 of the excess is seen
wrong f* is detected        |mean(E)| >= 8 SE       x1 means off by 0.3: measured 12-19 SE
antithetic variance ratio   >= ANTI_RATIO = 30      near t = 0 the plain L_s has variance ~ E|s|^2
                                                    / gamma^2 >= 1e3 E|s|^2 for t <= 1e-3; the
                                                    antithetic one stays O(E|s|^2 + E|grad s|^2);
                                                    measured 1.5e2; a pairing that did nothing
                                                    would give ~1
exact conversions           rtol = atol = 1e-8      float64 closed forms
==========================  ======================  ===============================================
"""

import math

import pytest
import torch

from bridge.fields import (
    Fields,
    b_from_v_s,
    eta_from_s,
    mirror_b_from_eta,
    one_sided_b_from_eta,
    s_from_eta,
)
from bridge.interpolants import (
    BrownianGamma,
    FunctionSchedule,
    Linear,
    Mirror,
    OneSidedLinear,
    OneSidedTrig,
    SpatiallyLinearInterpolant,
    Trig,
)
from bridge.losses import FULL_T_RANGE, SCORE_T_RANGE, loss_b, loss_eta, loss_s, loss_v
from bridge.reference import GaussianMixture, InterpolantOracle, standard_normal

DT = torch.float64
EXACT = dict(rtol=1e-8, atol=1e-8)
Z_TOL = 4.0
RES = 5.0
ANTI_RATIO = 30.0
N = 10_000
D = 2


def random_mixture(d, K, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(K, generator=g, dtype=DT) + 0.5
    a = torch.randn(K, d, d, generator=g, dtype=DT)
    return GaussianMixture(
        w / w.sum(), 2.0 * torch.randn(K, d, generator=g, dtype=DT), 0.3 * a @ a.mT / d + 0.1 * torch.eye(d, dtype=DT)
    )


def per_dim_interpolant(d):
    """Per-dimension coefficients (n, d): alpha_k = (1-t)(1 + c_k t), beta_k = t(1 + e_k (1-t))."""
    c, e = torch.linspace(-0.5, 1.0, d, dtype=DT), torch.linspace(0.8, -0.4, d, dtype=DT)
    return SpatiallyLinearInterpolant(
        FunctionSchedule(lambda t: (1 - t)[:, None] * (1 + c.to(t) * t[:, None])),
        FunctionSchedule(lambda t: t[:, None] * (1 + e.to(t) * (1 - t)[:, None])),
        BrownianGamma(0.7),
    )


RHO0, RHO1 = random_mixture(D, 2, 1), random_mixture(D, 3, 2)
ORACLES = {
    "linear": InterpolantOracle(Linear(BrownianGamma()), RHO0, RHO1),
    "trig": InterpolantOracle(Trig(), RHO0, RHO1),
    "onesided": InterpolantOracle(OneSidedLinear(), standard_normal(D), RHO1),
    "perdim": InterpolantOracle(per_dim_interpolant(D), RHO0, RHO1),
}
# loss, oracle field, t-range for (antithetic, plain). Plain L_b and L_s have a singular
# gamma_dot z or z / gamma term whose variance diverges like int dt / t at the ends: they get the
# score range [2e-4, 1 - 2e-4], where it is finite (~ log 5e3); everything else the full range.
LOSSES = {
    "b": (loss_b, "b", FULL_T_RANGE, SCORE_T_RANGE),
    "s": (loss_s, "s", SCORE_T_RANGE, SCORE_T_RANGE),
    "eta": (loss_eta, "eta", FULL_T_RANGE, FULL_T_RANGE),
    "v": (loss_v, "v", FULL_T_RANGE, FULL_T_RANGE),
}
# One-sided plain L_s: its x0 / alpha term has variance ~ int dt / (1-t)^2 = 1 / (1 - t_max), i.e.
# 5e3 on the score range; stop at t_max = 0.98 (variance ~ 50) so n = 1e4 resolves the excess.
PLAIN_RANGE_OVERRIDE = {("onesided", "s"): (SCORE_T_RANGE[0], 0.98)}
W = torch.tensor([[1.0, 0.5], [-0.3, 0.8]], dtype=DT)


def h(t, x):
    """A fixed smooth perturbation, O(1) and varying in both t and x; its constant part makes the
    check sensitive to errors in the mean of a field."""
    return torch.sin(x @ W.T + 2.0 * t[:, None]) + 0.3 * torch.cos(x.flip(-1)) + 0.5


def memo(f):
    """Evaluate an expensive field once per distinct input (the two losses of a common-random-
    numbers pair call it on equal tensors)."""
    cache = {}

    def g(t, x):
        key = (t.shape, float(t.sum()), float(x.sum()))
        if key not in cache or not (torch.equal(cache[key][0], t) and torch.equal(cache[key][1], x)):
            cache[key] = (t, x, f(t, x))
        return cache[key][2]

    return g


def draw(oracle, n, seed, t_range):
    g = torch.Generator().manual_seed(seed)
    x0, x1 = oracle.rho0.sample(n, generator=g), oracle.rho1.sample(n, generator=g)
    z = torch.randn(n, D, generator=g, dtype=DT)
    lo, hi = t_range
    t = lo + (hi - lo) * torch.rand(n, generator=g, dtype=DT)
    return t, x0, x1, z


def excess_terms(loss, f_star, interp, t, x0, x1, z, antithetic, scale=1.0):
    """Per-sample D_i = L_i[f* + scale h] - L_i[f*] and Q_i (see the module docstring)."""
    kw = dict(t=t, z=z, antithetic=antithetic)
    d = loss(lambda s, x: f_star(s, x) + scale * h(s, x), interp, x0, x1, **kw) - loss(f_star, interp, x0, x1, **kw)
    smp = interp.sample(t, x0, x1, z)
    hp = scale * h(t, smp.xt)
    if antithetic and smp.xt_anti is not None:
        hm = scale * h(t, smp.xt_anti)
        q = 0.25 * (hp.pow(2).sum(-1) + hm.pow(2).sum(-1))
    else:
        q = 0.5 * hp.pow(2).sum(-1)
    return d, q


def stats(d, q):
    e = d - q
    return e.mean(), e.std() / math.sqrt(e.shape[0]), q.mean()


CASES = [(i, l, a) for i in ORACLES for l in LOSSES for a in (True, False)]


@pytest.mark.parametrize(
    "interp_name,loss_name,antithetic", CASES, ids=[f"{i}-{l}-{'anti' if a else 'plain'}" for i, l, a in CASES]
)
def test_excess_loss_identity(interp_name, loss_name, antithetic):
    """L[f* + h] - L[f*] = 1/2 E|h|^2 (docs/math.md §2) for the exact Gaussian-mixture f*."""
    oracle = ORACLES[interp_name]
    loss, field, range_anti, range_plain = LOSSES[loss_name]
    seed = 100 + CASES.index((interp_name, loss_name, antithetic))
    t_range = range_anti if antithetic else PLAIN_RANGE_OVERRIDE.get((interp_name, loss_name), range_plain)
    t, x0, x1, z = draw(oracle, N, seed, t_range)
    f_star = memo(getattr(oracle, field))
    mean_e, se, mean_q = stats(*excess_terms(loss, f_star, oracle.interp, t, x0, x1, z, antithetic))
    assert abs(mean_e) <= Z_TOL * se, f"mean(D - Q) = {mean_e:.3g}, SE {se:.3g}"
    assert mean_q >= RES * se, f"excess {mean_q:.3g} not resolved, SE {se:.3g}"


@pytest.mark.parametrize("loss_name", list(LOSSES))
def test_excess_identity_detects_a_wrong_field(loss_name):
    """The check has power: the exact field of a slightly different target (x1 means moved by
    0.3) violates the identity by many standard errors (measured 12-19)."""
    oracle = ORACLES["linear"]
    r1 = RHO1
    wrong = InterpolantOracle(oracle.interp, RHO0, GaussianMixture(r1.weights, r1.means + 0.3, r1.covs))
    loss, field, range_anti, _ = LOSSES[loss_name]
    t, x0, x1, z = draw(oracle, N, 7, range_anti)
    mean_e, se, _ = stats(*excess_terms(loss, memo(getattr(wrong, field)), oracle.interp, t, x0, x1, z, True))
    assert abs(mean_e) >= 8 * se, f"mean(D - Q) = {mean_e:.3g}, SE {se:.3g}"


def test_antithetic_reduces_score_loss_variance_near_t0():
    """Per-sample variance of L_s at the exact score for t in [1e-4, 1e-3] (docs/math.md §2)."""
    oracle = ORACLES["linear"]
    t, x0, x1, z = draw(oracle, N, 8, (1e-4, 1e-3))
    s = memo(oracle.s)
    plain = loss_s(s, oracle.interp, x0, x1, t=t, z=z, antithetic=False)
    anti = loss_s(s, oracle.interp, x0, x1, t=t, z=z, antithetic=True)
    ratio = plain.var() / anti.var()
    assert ratio >= ANTI_RATIO, f"variance ratio {ratio:.3g}"
    # both are unbiased estimators of the same L_s; the plain one is far noisier
    assert abs(plain.mean() - anti.mean()) <= Z_TOL * plain.std() / math.sqrt(N)


@pytest.mark.parametrize(
    "interp_name,loss_name", [("linear", l) for l in LOSSES] + [("onesided", "s"), ("onesided", "eta")]
)
def test_exact_field_minimises_loss(interp_name, loss_name):
    """Among f* + c h on a grid of c, the Monte-Carlo loss (common random numbers) is smallest at c = 0."""
    oracle = ORACLES[interp_name]
    loss, field, t_range, _ = LOSSES[loss_name]
    t, x0, x1, z = draw(oracle, 4 * N, 9, t_range)
    f_star = memo(getattr(oracle, field))
    grid = [-0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.5]
    values = [
        float(loss(lambda s, x, c=c: f_star(s, x) + c * h(s, x), oracle.interp, x0, x1, t=t, z=z).mean()) for c in grid
    ]
    assert min(range(len(grid)), key=values.__getitem__) == grid.index(0.0), dict(zip(grid, values))


# -- bridge.fields against the exact fields ------------------------------------------------
def grid_points(oracle, ts, seed, per_t=8):
    g = torch.Generator().manual_seed(seed)
    t = torch.tensor(ts, dtype=DT).repeat_interleave(per_t)
    x = 2.0 * torch.randn(t.shape[0], D, generator=g, dtype=DT)
    return t, x


@pytest.mark.parametrize("name", ["linear", "trig", "perdim"])
def test_drift_from_velocity_and_score(name):
    """b = v - gamma gamma_dot s (SI 2.27), including t = 0 and 1 where gamma_dot is singular."""
    oracle = ORACLES[name]
    t, x = grid_points(oracle, [0.0, 1e-6, 0.3, 0.5, 0.9, 1.0], 0)
    f = Fields(oracle.interp, v=oracle.v, s=oracle.s)
    assert f.has_drift
    torch.testing.assert_close(f.drift(t, x), oracle.b(t, x), **EXACT)
    ref = b_from_v_s(oracle.v(t, x), oracle.s(t, x), oracle.interp.gamma_gamma_dot(t))
    torch.testing.assert_close(ref, oracle.b(t, x), **EXACT)
    torch.testing.assert_close(f.forward_drift(0.7)(t, x), oracle.b(t, x) + 0.7 * oracle.s(t, x), **EXACT)
    torch.testing.assert_close(f.backward_drift(0.7)(t, x), oracle.b(t, x) - 0.7 * oracle.s(t, x), **EXACT)


@pytest.mark.parametrize("name", ["linear", "trig", "perdim", "onesided"])
def test_score_from_denoiser(name):
    """s = -eta / c, c = gamma (alpha one-sided) (SI 2.14, 4.20), away from c = 0."""
    oracle = ORACLES[name]
    t, x = grid_points(oracle, [1e-3, 0.2, 0.5, 0.8, 0.999], 1)
    eta, c = oracle.eta(t, x), oracle.interp.noise_scale(t)
    torch.testing.assert_close(s_from_eta(eta, c), oracle.s(t, x), **EXACT)
    torch.testing.assert_close(eta_from_s(oracle.s(t, x), c), eta, **EXACT)
    f = Fields(oracle.interp, eta=oracle.eta)
    torch.testing.assert_close(f.score(t, x), oracle.s(t, x), **EXACT)
    torch.testing.assert_close(f.denoiser(t, x), eta, **EXACT)


@pytest.mark.parametrize("interp", [OneSidedLinear(), OneSidedTrig()], ids=repr)
def test_one_sided_drift_from_denoiser(interp):
    """b = (beta_dot/beta) x + (alpha_dot - alpha beta_dot/beta) eta (SI 4.19-4.20), and the
    t = 0 limit alpha_dot(0) x + beta_dot(0) E[x1] (needs x1_mean)."""
    oracle = InterpolantOracle(interp, standard_normal(D), RHO1)
    t, x = grid_points(oracle, [0.0, 1e-4, 0.1, 0.5, 0.9, 0.999], 2)
    ref = oracle.b(t, x)
    got = one_sided_b_from_eta(interp, t, x, oracle.eta(t, x), x1_mean=RHO1.mean())
    torch.testing.assert_close(got, ref, **EXACT)
    f = Fields(interp, eta=oracle.eta, x1_mean=RHO1.mean())
    torch.testing.assert_close(f.drift(t, x), ref, **EXACT)
    torch.testing.assert_close(oracle.fields().drift(t, x), ref, **EXACT)
    # just above t = 0 the formula divides by beta: rounding error ~ eps |x| beta_dot / beta
    tn, xn = grid_points(oracle, [1e-7], 3)
    got = one_sided_b_from_eta(interp, tn, xn, oracle.eta(tn, xn), x1_mean=RHO1.mean())
    bound = 100 * torch.finfo(DT).eps * float(interp.beta_dot(tn[:1]) / interp.beta(tn[:1]))
    torch.testing.assert_close(got, oracle.b(tn, xn), rtol=0, atol=bound)
    with pytest.raises(ValueError, match="x1_mean"):
        one_sided_b_from_eta(interp, t, x, oracle.eta(t, x))


def test_mirror_drift_from_denoiser():
    """Mirror (rho0 = rho1): b = gamma_dot eta (docs/math.md §2)."""
    oracle = InterpolantOracle(Mirror(), RHO1, RHO1)
    t, x = grid_points(oracle, [1e-4, 0.2, 0.5, 0.7, 1 - 1e-4], 3)
    ref = oracle.b(t, x)
    torch.testing.assert_close(mirror_b_from_eta(oracle.interp, t, oracle.eta(t, x)), ref, **EXACT)
    torch.testing.assert_close(Fields(oracle.interp, eta=oracle.eta).drift(t, x), ref, **EXACT)
